"""Hostile input against a real server: gzip bombs, huge OTLP exports, deep and non-finite JSON,
Unicode digits. Each test reproduces an attack from issue 10 (items 3, 4, 5, 8, 9) and checks
the answer, the time it takes, that the event loop stays responsive, and that what is accepted
reads back through every endpoint on both databases."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from podium.core.records import MAX_JSON_DEPTH
from podium.server.body import MAX_GZIP_MEMBERS, inflate
from tests.conftest import LiveServer
from tests.server.test_api import assert_error, span_item

# --- helpers ------------------------------------------------------------------------------------------


def nest(depth: int, leaf: Any = "leaf") -> Any:
    """``depth`` levels of alternating arrays and objects around ``leaf``."""
    v = leaf
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


def depth_of(v: Any) -> int:
    d = 0
    while isinstance(v, dict | list):
        d += 1
        v = v["k"] if isinstance(v, dict) else v[0]
    return d


class HealthProbe:
    """Polls /api/v1/health from another thread; records each round trip's latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[tuple[float, float]] = []  # (finished at, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.is_set():
                t0 = time.monotonic()
                assert c.get("/api/v1/health").status_code == 200
                self.latencies.append((time.monotonic(), time.monotonic() - t0))
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        while not self.latencies:  # the first answer: the probe is running
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def during(self, start: float, end: float) -> list[float]:
        return [lat for at, lat in self.latencies if start <= at <= end]


# --- 3. gzip bombs ----------------------------------------------------------------------------------------


def test_many_empty_gzip_members_are_refused_fast_while_health_answers(server: LiveServer) -> None:
    member = gzip.compress(b"")
    bomb = member * (4_000_000 // len(member))  # ~4 MB, ~200,000 empty members: 12.7 s on the event loop before
    with server.client() as c, HealthProbe(server.url) as probe:
        t0 = time.monotonic()
        r = c.post("/api/v1/ingest", content=bomb,
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
        t1 = time.monotonic()
        e = assert_error(r, 400)
        assert f"more than {MAX_GZIP_MEMBERS} members" in e["message"]
        assert t1 - t0 < 5, f"the bomb took {t1 - t0:.1f} s"
        print(f"gzip bomb: {len(bomb)} bytes answered {r.status_code} in {t1 - t0:.3f} s")
        time.sleep(0.1)
        assert max(probe.during(t0, time.monotonic()), default=0.0) < 1.0
        # The same on the OTLP endpoint.
        r = c.post("/v1/traces", content=bomb,
                   headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"})
        assert_error(r, 400)


def test_gzip_that_inflates_past_the_limit_is_413_and_stops_inflating(server: LiveServer) -> None:
    limit = server.app.state.podium.settings.max_request_bytes
    bomb = gzip.compress(b" " * (limit + 10), compresslevel=9)  # ~20 KB on the wire
    with server.client() as c:
        t0 = time.monotonic()
        e = assert_error(c.post("/api/v1/ingest", content=bomb,
                                headers={"content-type": "application/json", "content-encoding": "gzip"}), 413)
        assert "PODIUM_MAX_REQUEST_BYTES" in e["message"] and time.monotonic() - t0 < 5


def test_legitimate_multi_member_gzip_and_deflate_still_work(server: LiveServer) -> None:
    doc = json.dumps({"batch": [span_item("gz", "a")]}).encode()
    two_members = gzip.compress(doc[:10]) + gzip.compress(doc[10:])
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=two_members,
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert r.status_code == 200, r.text
        r = c.post("/api/v1/ingest", content=zlib.compress(doc),
                   headers={"content-type": "application/json", "content-encoding": "deflate"})
        assert r.status_code == 200, r.text
        e = assert_error(c.post("/api/v1/ingest", content=gzip.compress(doc)[:-9],
                                headers={"content-type": "application/json", "content-encoding": "gzip"}), 400)
        assert "truncated" in e["message"]


def test_inflate_is_linear_in_members() -> None:
    # At the member cap, with every member's remainder being large: no quadratic copying.
    body = gzip.compress(b"x") * MAX_GZIP_MEMBERS + b"\0" * 0
    t0 = time.monotonic()
    assert inflate(body, "gzip", 10_000) == b"x" * MAX_GZIP_MEMBERS
    assert time.monotonic() - t0 < 1.0


def test_a_unicode_digit_content_length_is_not_a_server_error(server: LiveServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall("POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: ³\r\n\r\n".encode())
        status = s.recv(4096).split(b"\r\n", 1)[0]
    assert not status.split(b" ")[1].startswith(b"5"), status  # uvicorn refuses it (400) before Podium


# --- 4. OTLP: span cap, decoding off the event loop ----------------------------------------------------------


def otlp_request(n: int, attrs: int = 0) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        sp = ss.spans.add()
        sp.trace_id = (i // 100 + 1).to_bytes(16, "big")
        sp.span_id = (i + 1).to_bytes(8, "big")
        sp.name = f"s{i}"
        sp.start_time_unix_nano = 1_770_000_000_000_000_000 + i
        sp.end_time_unix_nano = 1_770_000_000_000_000_000 + i + 1000
        for a in range(attrs):
            kv = sp.attributes.add()
            kv.key = f"attr.{a}"
            kv.value.string_value = "v" * 20
    return req.SerializeToString()


def test_otlp_over_the_span_cap_is_413_naming_the_limit(server: LiveServer) -> None:
    cap = server.app.state.podium.settings.max_batch_items
    assert cap == 5000
    with server.client() as c:
        e = assert_error(c.post("/v1/traces", content=otlp_request(cap + 1),
                                headers={"content-type": "application/x-protobuf"}), 413, "payload_too_large")
        assert "5001 spans" in e["message"] and "limit of 5000" in e["message"]
        assert "PODIUM_MAX_BATCH_ITEMS" in e["message"]
        # OTLP/JSON counts the same way.
        spans = [{"traceId": "ab" * 16, "spanId": f"{i + 1:016x}", "name": "s", "startTimeUnixNano": "1"}
                 for i in range(cap + 1)]
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        assert_error(c.post("/v1/traces", json=doc), 413)
        assert c.get("/api/v1/traces").json()["data"] == []  # nothing half-stored


@pytest.mark.slow
def test_otlp_decoding_runs_off_the_event_loop(server: LiveServer) -> None:
    body = otlp_request(5000, attrs=5)  # the largest accepted export: seconds of CPU to decode and validate
    with server.client() as c, HealthProbe(server.url) as probe:
        t0 = time.monotonic()
        r = c.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
        t1 = time.monotonic()
        assert r.status_code == 200, r.text
        during = probe.during(t0 + 0.05, t1)
    print(f"5,000-span export: {t1 - t0:.2f} s; {len(during)} health checks meanwhile, slowest {max(during or [0]):.3f} s")
    assert during, f"no health check answered during a {t1 - t0:.2f} s export"
    assert max(during) < max(0.5, (t1 - t0) / 2), (max(during), t1 - t0)
    with server.client() as c:
        assert c.get("/api/v1/traces", params={"limit": 100}).status_code == 200


def test_otlp_json_nested_100k_levels_is_a_fast_400(server: LiveServer) -> None:
    deep = b'{"resourceSpans": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    with server.client() as c:
        t0 = time.monotonic()
        e = assert_error(c.post("/v1/traces", content=deep, headers={"content-type": "application/json"}), 400)
        assert time.monotonic() - t0 < 5 and str(MAX_JSON_DEPTH) in e["message"]
        # Deep but parseable (300 levels): refused with the field named, not stored half-readable.
        value: Any = {"stringValue": "x"}
        for _ in range(60):
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        doc = {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "s", "startTimeUnixNano": "1",
            "attributes": [{"key": "deep", "value": value}]}]}]}]}
        e = assert_error(c.post("/v1/traces", json=doc), 400)
        assert "resourceSpans[0].scopeSpans[0]" in e["message"]


# --- 5. depth: whatever is accepted reads back everywhere -------------------------------------------------------

_ENVELOPE = 4  # {"batch": [{"body": {"input": ...}}]}


def read_back_everywhere(c: httpx.Client, trace_id: str, span_id: str) -> list[Any]:
    """The span's input through every read endpoint that serves it."""
    detail = c.get(f"/api/v1/traces/{trace_id}")
    spans = c.get(f"/api/v1/traces/{trace_id}/spans")
    one = c.get(f"/api/v1/traces/{trace_id}/spans/{span_id}")
    listed = c.get("/api/v1/traces", params={"include_io": "true"})
    for r in (detail, spans, one, listed):
        assert r.status_code == 200, (r.request.url, r.text[:300])
    return [detail.json()["spans"][0]["input"], spans.json()["data"][0]["input"], one.json()["input"],
            listed.json()["data"][0]["input"]]


def test_native_ingest_round_trips_at_exactly_the_depth_limit(server: LiveServer) -> None:
    at_limit = nest(MAX_JSON_DEPTH - _ENVELOPE)
    over = nest(MAX_JSON_DEPTH - _ENVELOPE + 1)
    with server.client() as c:
        r = c.post("/api/v1/ingest", json={"batch": [span_item("deep", "s", input=at_limit, output=at_limit)]})
        assert r.status_code == 200, r.text
        for got in read_back_everywhere(c, "deep", "s"):
            assert got == at_limit and depth_of(got) == MAX_JSON_DEPTH - _ENVELOPE
        e = assert_error(c.post("/api/v1/ingest", json={"batch": [span_item("deeper", "s", input=over)]}), 400)
        assert e["message"].startswith("body field batch[0].body.input")
        assert f"deeper than {MAX_JSON_DEPTH} levels" in e["message"]
        assert e["details"][0]["field"].startswith("batch[0].body.input")
        # ~500 levels (the old accepted limit) and 100k levels: 400, and the list still reads.
        for n in (500, 100_000):
            raw = b'{"batch": [' + b"[" * n + b"]" * n + b"]}"
            assert_error(c.post("/api/v1/ingest", content=raw, headers={"content-type": "application/json"}), 400)
        assert len(c.get("/api/v1/traces", params={"include_io": "true"}).json()["data"]) == 1


def test_otlp_value_at_the_depth_limit_round_trips_and_deeper_is_rejected(server: LiveServer) -> None:
    at_limit = nest(MAX_JSON_DEPTH)
    spans = [
        {"traceId": "ab" * 16, "spanId": "01" * 8, "name": "ok", "startTimeUnixNano": "1770000000000000000",
         "attributes": [{"key": "input.value", "value": {"stringValue": json.dumps(at_limit)}}]},
        {"traceId": "ab" * 16, "spanId": "02" * 8, "name": "deep", "startTimeUnixNano": "1770000000000000000",
         "attributes": [{"key": "input.value", "value": {"stringValue": json.dumps(nest(MAX_JSON_DEPTH + 1))}}]},
        {"traceId": "ab" * 16, "spanId": "03" * 8, "name": "deeper", "startTimeUnixNano": "1770000000000000000",
         "attributes": [{"key": "input.value", "value": {"stringValue": "[" * 5000 + "]" * 5000}}]},
    ]
    with server.client() as c:
        r = c.post("/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
        assert r.status_code == 200, r.text
        partial = r.json()["partialSuccess"]
        assert int(partial["rejectedSpans"]) == 2, partial
        assert "input" in partial["errorMessage"] and str(MAX_JSON_DEPTH) in partial["errorMessage"]
        for got in read_back_everywhere(c, "ab" * 16, "01" * 8):
            assert got == at_limit


# --- 8. Unicode digits ------------------------------------------------------------------------------------------


def test_unicode_digits_in_versions_are_4xx_not_500(server: LiveServer) -> None:
    with server.client() as c:
        assert c.post("/api/v1/prompts", json={"name": "qa", "prompt": "Hi {{x}}"}).status_code == 201
        assert c.post("/api/v1/datasets", json={"name": "ds", "items": [{"input": "a"}]}).status_code == 201
        for r in (
            c.get("/api/v1/prompts/qa/versions/%C2%B3"),
            c.get("/api/v1/prompts/qa/versions/\u0663"),  # ARABIC-INDIC DIGIT THREE
            c.get("/api/v1/prompts/qa/diff", params={"from": "³"}),
            c.get("/api/v1/prompts/qa/diff", params={"from": "1", "to": "99999999999999999999"}),
            c.get("/api/v1/prompts/qa/resolve", params={"version": "³"}),
            c.post("/api/v1/prompts/qa/versions/³/compile", json={"variables": {}}),
        ):
            assert r.status_code in (400, 404), (r.request.url, r.status_code, r.text)
            assert_error(r, r.status_code)
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as ui:
        for path, params in (
            ("/prompts/qa/versions/³", {}),
            ("/prompts/qa/diff", {"from": "³"}),
            ("/prompts/qa/labels/production/move", {"version": "³"}),
            ("/datasets/ds", {"version": "³"}),
        ):
            r = ui.get(path, params=params)
            assert r.status_code in (400, 404), (path, r.status_code, r.text[:300])


# --- 8/9. non-finite numbers: one 400 naming the field, on every JSON body route and both databases -----------

_NON_FINITE = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("literal", _NON_FINITE)
def test_non_finite_numbers_are_refused_naming_the_field(server: LiveServer, literal: str) -> None:
    def post(c: httpx.Client, method: str, path: str, raw: str) -> httpx.Response:
        return c.request(method, path, content=raw.encode(), headers={"content-type": "application/json"})

    cases = [
        ("POST", "/api/v1/ingest",
         '{"batch": [{"type": "span", "body": {"id": "s", "trace_id": "t", "name": "n", '
         '"start_time": "2026-01-01T00:00:00Z", "metadata": {"v": %s}}}]}', "batch[0].body.metadata.v"),
        ("POST", "/api/v1/prompts", '{"name": "qa", "prompt": "hi", "config": {"temperature": %s}}',
         "config.temperature"),
        ("POST", "/api/v1/datasets", '{"name": "ds", "metadata": {"a": [1, %s]}}', "metadata.a[1]"),
        ("POST", "/api/v1/scores", '{"name": "q", "value": %s, "trace_id": "t"}', "value"),
        ("PUT", "/api/v1/prompts/qa/labels/prod", '{"versions": [{"version": 1, "weight": %s}]}',
         "versions[0].weight"),
        ("POST", "/api/v1/prompts/qa/versions/1/compile", '{"variables": {"x": %s}}', "variables.x"),
    ]
    with server.client() as c:
        for method, path, template, field in cases:
            e = assert_error(post(c, method, path, template % literal), 400)
            assert e["details"][0]["field"] == field, (path, e)
            assert field in e["message"] and "finite" in e["message"], e
        # Nothing was stored on either database, and everything still reads.
        assert c.get("/api/v1/traces").json()["data"] == []
        assert c.get("/api/v1/prompts").json()["data"] == []
        assert c.get("/api/v1/datasets").json()["data"] == []


def test_finite_extremes_are_accepted_on_both_databases(server: LiveServer) -> None:
    with server.client() as c:
        meta = {"big": 1.7976931348623157e308, "small": -1.7976931348623157e308, "tiny": 5e-324}
        r = c.post("/api/v1/ingest", json={"batch": [span_item("f", "s", metadata=meta)]})
        assert r.status_code == 200, r.text
        got = c.get("/api/v1/traces/f/spans/s").json()["metadata"]
        # PostgreSQL's jsonb keeps the decimal value and writes 1.79e308 back as 309 digits (an integer).
        assert {k: float(v) for k, v in got.items()} == meta
        r = c.post("/api/v1/prompts", json={"name": "qa", "prompt": "hi", "config": {"temperature": 1e308}})
        assert r.status_code == 201, r.text
        assert float(c.get("/api/v1/prompts/qa/versions/1").json()["config"]["temperature"]) == 1e308


def test_nul_in_query_and_path_parameters_is_a_400_on_both_databases(server: LiveServer) -> None:
    # Found by schemathesis: PostgreSQL refuses NUL in text (500 DataError); SQLite answered.
    with server.client() as c:
        for r, field in (
            (c.get("/api/v1/traces", params={"tag": ["ok", "b)\x00E"]}), "query.tag"),
            (c.get("/api/v1/scores", params={"name": "a\x00"}), "query.name"),
            (c.get("/api/v1/prompts/qa%00b"), "path.name"),
            (c.get("/api/v1/traces/t%00/spans"), "path.trace_id"),
        ):
            e = assert_error(r, 400)
            assert e["details"][0]["field"] == field, e
    # The UI and the Langfuse-compatible API (its own error shape): 400 before any query runs.
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as ui:
        for path in ("/traces?tag=a%00", "/traces?q=a%00", "/prompts/qa%00", "/datasets/ds%00"):
            e = assert_error(ui.get(path), 400)
            assert "NUL" in e["message"]
    with server.client() as c:
        for path in ("/api/public/v2/prompts/a%00", "/api/public/traces?userId=%00"):
            r = c.get(path)
            assert r.status_code == 400 and "NUL" in r.json()["message"], r.text


def test_prices_out_of_the_columns_range_are_a_400(server: LiveServer) -> None:
    # Found by schemathesis: NUMERIC(20, 10) overflow was a 500 DataError on PostgreSQL.
    with server.client() as c:
        for bad in (-9.2e44, 1e10, -1):
            r = c.put("/api/v1/prices/m", json={"input_per_million": bad, "output_per_million": 1})
            assert_error(r, 400)
        r = c.put("/api/v1/prices/m", json={"input_per_million": "NaN", "output_per_million": 1})
        assert_error(r, 400)
        r = c.put("/api/v1/prices/m", json={"input_per_million": 999_999_999.5, "output_per_million": 0})
        assert r.status_code == 200, r.text


def test_jsonl_dataset_upload_follows_the_depth_limit(server: LiveServer) -> None:
    with server.client() as c:
        at_limit = json.dumps({"input": nest(MAX_JSON_DEPTH - 1)})  # the item {"input": ...} is one more level
        over = json.dumps({"input": nest(MAX_JSON_DEPTH)})
        headers = {"content-type": "application/x-ndjson"}
        r = c.post("/api/v1/datasets/ds/items", params={"create": "true"}, content=at_limit + "\n", headers=headers)
        assert r.status_code == 200, r.text
        items = c.get("/api/v1/datasets/ds/items").json()["data"]
        assert items[0]["input"] == nest(MAX_JSON_DEPTH - 1)
        e = assert_error(c.post("/api/v1/datasets/ds/items", content=over + "\n", headers=headers), 400)
        assert e["details"][0]["field"].startswith("items[0].input")
