"""One OTLP export, four ways in: the same stored rows.

The same ``ExportTraceServiceRequest`` is sent as OTLP/HTTP protobuf, as OTLP/HTTP JSON (hex
ids, as exporters write it), over OTLP/gRPC, and - converted to Podium span dicts by
``decode_traces`` - through the native ``/api/v1/ingest`` batch API, each into its own project
of one real server. Every span and trace row must be identical (apart from the project and the
write time), so the fast decode paths (``decode_into``, msgspec) cannot drift from each other or
from the native path.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from sqlalchemy import select

from podium.store import tables as t
from tests.conftest import LiveServer, ServerThread, free_port, make_project

NS = 1_765_000_000_000_000_000  # 2025-12-06, Unix nanoseconds
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        av = AnyValue()
        av.array_value.values.extend(_value(x) for x in v)
        return av
    if isinstance(v, dict):
        av = AnyValue()
        av.kvlist_value.values.extend(KeyValue(key=k, value=_value(x)) for k, x in v.items())
        return av
    return AnyValue(string_value=v)


def _attrs(d: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_value(v)) for k, v in d.items()]


def _span(trace: int, sid: int, parent: int | None, name: str, start_ms: int, dur_ms: int,
          attrs: dict[str, Any], **kw: Any) -> Span:
    sp = Span(
        trace_id=trace.to_bytes(16, "big"), span_id=sid.to_bytes(8, "big"), name=name,
        start_time_unix_nano=NS + start_ms * 1_000_000, end_time_unix_nano=NS + (start_ms + dur_ms) * 1_000_000,
        **kw,
    )
    if parent is not None:
        sp.parent_span_id = parent.to_bytes(8, "big")
    sp.attributes.extend(_attrs(attrs))
    return sp


def export_request() -> ExportTraceServiceRequest:
    """Two traces covering the conventions: gen_ai (priced from usage), OpenInference JSON
    input/output, Langfuse trace attributes, events, links, an error, every AnyValue type."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(_attrs({"service.name": "parity", "service.version": "2.0.1",
                                          "deployment.environment.name": "staging"}))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "parity.app", "0.9"
    a, b = 0xA1, 0xB2
    ss.spans.extend([
        _span(a, 1, None, "agent run", 0, 900, {
            "openinference.span.kind": "AGENT", "input.value": '{"task": "weather", "n": 3}',
            "input.mime_type": "application/json", "output.value": "sunny", "user.id": "u-1",
            "session.id": "s-1", "langfuse.trace.tags": ["beta", "eu"], "langfuse.trace.name": "weather agent",
            "metadata": '{"tenant": "t7", "ratio": 0.25}',
        }, kind=Span.SPAN_KIND_SERVER),
        _span(a, 2, 1, "chat gpt-4o", 10, 400, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 256,
            "gen_ai.request.stop_sequences": ["\n", "END"], "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi ü"}]}]),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]),
            "http.payload": b"\x00\xff\x10", "big.number": 2**62, "flag": False,
            "nested": {"k": [1, 2.5, "x", True]},
        }, kind=Span.SPAN_KIND_CLIENT),
        _span(a, 3, 1, "lookup", 420, 60, {
            "openinference.span.kind": "TOOL", "input.value": '{"city": "Oslo"}',
            "output.value": "[1, 2, 3]",
        }, status=Status(code=Status.STATUS_CODE_ERROR, message="TimeoutError: 30s"),
            events=[Span.Event(name="exception", time_unix_nano=NS + 470_000_000,
                               attributes=_attrs({"exception.type": "TimeoutError", "exception.message": "30s"}))],
            links=[Span.Link(trace_id=b.to_bytes(16, "big"), span_id=(9).to_bytes(8, "big"),
                             attributes=_attrs({"why": "retry"}))]),
        _span(b, 9, None, "embed", 1000, 25, {
            "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 8, "input.value": "what is rain", "score": float("nan"),
        }),
    ])
    return req


def otlp_json(req: ExportTraceServiceRequest) -> bytes:
    doc = json_format.MessageToDict(req)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for f in ("traceId", "spanId", "parentSpanId"):
                    if f in sp:
                        sp[f] = base64.b64decode(sp[f]).hex()
                for link in sp.get("links", []):
                    for f in ("traceId", "spanId"):
                        link[f] = base64.b64decode(link[f]).hex()
    return json.dumps(doc).encode()


@pytest.fixture
def grpc_server(store: Any, project: Any) -> Iterator[tuple[LiveServer, int]]:
    from podium.config import Settings
    from podium.server.app import create_app

    app = create_app(Settings(otlp_grpc_port=free_port()), store=store, otlp_grpc=True)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th), app.state.otlp_grpc.port
    th.stop()


def _rows(store: Any, table: Any, project_id: str) -> list[dict[str, Any]]:
    key = [table.c.trace_id, table.c.id] if "trace_id" in table.c else [table.c.id]
    with store.engine.connect() as c:
        rows = c.execute(select(table).where(table.c.project_id == project_id).order_by(*key)).mappings().all()
    out = []
    for r in rows:
        d = {k: v for k, v in r.items() if k not in ("project_id", "updated_at")}
        out.append({k: (float(v) if isinstance(v, Decimal) else v) for k, v in d.items()})
    return out


def test_the_same_export_stores_the_same_rows_every_way(grpc_server: tuple[LiveServer, int]) -> None:
    from podium.server.otlp import decode_traces

    server, port = grpc_server
    req = export_request()
    body = req.SerializeToString()
    projects = {way: make_project(server.store, f"parity-{way}") for way in ("native", "protobuf", "json", "grpc")}

    spans, problems = decode_traces(body, content_type="application/x-protobuf")
    assert problems == [] and len(spans) == 4
    with server.client(projects["native"]) as c:
        r = c.post("/api/v1/ingest", json={"batch": [{"type": "span", "body": s} for s in spans]})
        assert r.status_code == 200 and len(r.json()["successes"]) == 4, r.text
    with server.client(projects["protobuf"]) as c:
        r = c.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 200, r.text
        assert not ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans
    with server.client(projects["json"]) as c:
        r = c.post("/v1/traces", content=otlp_json(req), headers={"content-type": "application/json"})
        assert r.status_code == 200 and not r.json().get("partialSuccess"), r.text
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(TRACES, request_serializer=None, response_deserializer=None)
        out = call(body, metadata=[("authorization", f"Bearer {projects['grpc'].secret_key}")], timeout=30)
        assert not ExportTraceServiceResponse.FromString(out).partial_success.rejected_spans

    want_spans = _rows(server.store, t.span, projects["native"].project_id)
    want_traces = _rows(server.store, t.trace, projects["native"].project_id)
    assert len(want_spans) == 4 and len(want_traces) == 2
    chat = next(s for s in want_spans if s["name"] == "chat gpt-4o")
    assert chat["kind"] == "generation" and chat["cost_total"] and chat["input_tokens"] == 120
    assert chat["attributes"]["big.number"] == 2**62 and chat["input"][0]["parts"][0]["content"] == "hi ü"
    for way in ("protobuf", "json", "grpc"):
        pid = projects[way].project_id
        assert _rows(server.store, t.span, pid) == want_spans, way
        assert _rows(server.store, t.trace, pid) == want_traces, way


@pytest.mark.parametrize("ctype", ["application/x-protobuf", "application/json"])
def test_decode_into_builds_the_rows_decode_traces_describes(ctype: str) -> None:
    """The routes' one-pass path (decode_into: map, validate once, price) and the dict API
    (decode_traces, then SpanIn and BatchBuilder) give the same rows and the same errors."""
    from podium.core.pricing import PriceTable
    from podium.core.records import SpanIn
    from podium.server.convert import BatchBuilder
    from podium.server.otlp import decode_into, decode_traces

    req = export_request()
    bad = req.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(req.resource_spans[0].scope_spans[0].spans[0])
    bad.trace_id = b"\x00" * 16  # all zeros: rejected on its own
    body = otlp_json(req) if ctype == "application/json" else req.SerializeToString()
    prices = PriceTable.default()
    one = BatchBuilder("p", lambda: prices)
    errors = decode_into(body, ctype, one)
    two = BatchBuilder("p", lambda: prices)
    spans, problems = decode_traces(body, content_type=ctype)
    for d in spans:
        two.add_span(SpanIn.model_validate(d))
    assert len(errors) == 1 and "trace_id" in errors[0] and "spans[4]" in errors[0]
    assert errors == problems
    assert one.batch.spans == two.batch.spans and one.batch.traces == two.batch.traces
    assert one.batch.tags == two.batch.tags and len(one.batch.spans) == 4


def test_large_batches_store_what_small_ones_store(server: LiveServer) -> None:
    """Batches of >= 32 rows take the bulk path (PostgreSQL: COPY into a staging table, then
    INSERT ... SELECT ... ON CONFLICT; SQLite: multi-row VALUES); small ones take executemany.
    The same spans (first written whole, then merged with partial updates that must keep the
    stored values) give the same rows either way."""
    big, small = (make_project(server.store, name) for name in ("bulk", "row-by-row"))

    def spans(partial: bool) -> list[dict[str, Any]]:
        out = []
        for k in range(36):
            tid = f"{k:032x}"
            for j, (sid, parent) in enumerate(((f"{k:08x}root", None), (f"{k:08x}call", f"{k:08x}root"))):
                body: dict[str, Any] = {"id": sid, "trace_id": tid, "name": "" if partial else f"step {j}",
                                        "start_time": f"2026-03-01T10:{k:02d}:0{j}.5Z"}
                if partial:  # a later write: only the end and an output; NULLs keep what is stored
                    body.update(end_time=f"2026-03-01T10:{k:02d}:0{j + 2}.25Z", output={"done": k})
                else:
                    body.update(parent_id=parent, kind="generation" if parent else "agent",
                                input={"q": f"question {k}", "ü": [1, 2.5]}, metadata={"k": k},
                                status="error" if k % 7 == 0 else "ok")
                    if parent:
                        body.update(model="gpt-4o-mini", usage={"input_tokens": 10 + k, "output_tokens": 3})
                    else:
                        body.update(user_id=f"u{k % 5}", session_id=f"s{k}", tags=["bulk", f"t{k % 3}"])
                out.append({"type": "span", "body": body})
        return out

    for partial in (False, True):
        items = spans(partial)
        with server.client(big) as c:
            r = c.post("/api/v1/ingest", json={"batch": items})
            assert r.status_code == 200, r.text
        with server.client(small) as c:
            for i in range(0, len(items), 4):
                r = c.post("/api/v1/ingest", json={"batch": items[i:i + 4]})
                assert r.status_code == 200, r.text
    for table in (t.span, t.trace):
        got, want = _rows(server.store, table, big.project_id), _rows(server.store, table, small.project_id)
        assert len(got) == (72 if table is t.span else 36) and got == want
    call = next(s for s in _rows(server.store, t.span, big.project_id) if s["id"] == "00000003call")
    assert call["name"] == "step 1" and call["input"] == {"q": "question 3", "ü": [1, 2.5]}
    assert call["output"] == {"done": 3} and call["model"] == "gpt-4o-mini" and call["cost_total"]


@pytest.mark.parametrize("body", [
    b'{"a": 1, "a": 2, "b": [1.5, -0.0, 1e308, 12345678901234567890123]}',
    b'{"nan": NaN, "inf": -Infinity}',  # msgspec refuses: json.loads reads them
    b'[1e999]',
    b'"\\ud800 lone surrogate"',
    '\ufeff{"bom": true}'.encode(),
    '{"ü": "\u2028"}'.encode("utf-16"),
    b"[" * 3000 + b"]" * 3000,  # deeper than msgspec or json recurse: json's RecursionError
    b'{"truncated": ',
])
def test_loads_parses_and_fails_as_json_loads(body: bytes) -> None:
    """body.loads (msgspec first) gives json.loads' result, or json.loads' error."""
    from podium.server.body import loads

    try:
        want: Any = json.loads(body)
    except (ValueError, RecursionError) as e:
        with pytest.raises(type(e)):
            loads(body)
        return
    got = loads(body)
    assert json.dumps(got) == json.dumps(want) and type(got) is type(want)


# --- random spans: decode_into's records (conventions.span_record, no SpanIn validation of the
# mapper's own dict) against decode_traces' dicts validated by SpanIn ----------------------------

_KEYS = (
    "gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "gen_ai.provider.name", "gen_ai.system",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "llm.token_count.total",
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.other", "langfuse.observation.usage_details",
    "langfuse.observation.cost_details", "llm.cost.total", "gen_ai.request.temperature", "llm.invocation_parameters",
    "gen_ai.operation.name", "openinference.span.kind", "langfuse.observation.type", "input.value", "input.mime_type",
    "output.value", "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "llm.input_messages.0.message.content", "retrieval.documents.1.document.metadata", "user.id", "session.id",
    "langfuse.session.id", "service.version", "deployment.environment", "langfuse.trace.tags", "tag.tags",
    "langfuse.trace.name", "langfuse.trace.input", "metadata", "langfuse.observation.metadata.k",
    "langfuse.trace.metadata", "langfuse.observation.prompt.name", "langfuse.observation.prompt.version",
    "langfuse.observation.completion_start_time", "ai.response.msToFirstChunk", "langfuse.observation.level",
    "http.method", "custom", "x\u00fc",
)
_JSONISH = (
    '{"a": 1, "b": [1, 2.5, "x"]}', '{"n": NaN}', '{"\\ud800": 1}', '{"k": "\\ud83d\\ude00"}', "[1, {\"x\": null}]",
    "plain text", '{"deep": ' + "[" * 130 + "]" * 130 + "}", '"quoted"', '{"\u00fc": "\u00e4"}',
    '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]', '{"input": 3, "output": 9007199254740993}',
    '{"total": 2e9}', '{"input": 0.1, "total": 0.3}',
)


def _random_value(rng: Any, key: str) -> Any:
    if "token" in key or key.endswith("prompt.version"):
        return rng.choice([5, 0, -1, 2**53, 2**53 + 1, "12", "x", 3.0, 2.5, 2**31, 2**31 - 1, True])
    if key == "llm.cost.total":
        return rng.choice([0.5, 1e9, 1e9 - 1, -1.0, float("nan"), "0.1"])
    if key.endswith("mime_type"):
        return rng.choice(["application/json", "text/plain"])
    if "tags" in key:
        return rng.choice([["a", "b", "a"], '["x", "y"]', "single", [str(i) for i in range(120)]])
    if key.endswith(("kind", "type", "operation.name")):
        return rng.choice(["LLM", "TOOL", "PROMPT", "chat", "embeddings", "generation", "bogus"])
    if "completion_start_time" in key:
        return rng.choice(["2025-01-01T00:00:00Z", '"2025-01-01T00:00:00+02:00"', 1.7e12, "x"])
    if key.startswith(("gen_ai.", "llm.", "langfuse.", "input.", "output.", "metadata", "retrieval.")) and rng.random() < 0.7:
        return rng.choice(_JSONISH)
    return rng.choice([7, 0.25, float("nan"), float("inf"), True, b"\x00\xff", [0.5] * 40, {"k": [1, {"z": 2.5}]},
                       "gpt-4o", "  ", "", "x" * 300, "m\u00fcller"])


def _random_request(seed: int) -> ExportTraceServiceRequest:
    import random

    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    for _ in range(2):
        rs = req.resource_spans.add()
        res = {k: _random_value(rng, k) for k in rng.sample(
            ["service.name", "service.version", "deployment.environment.name", "user.id", "session.id"], 3)}
        rs.resource.attributes.extend(_attrs(res))
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = rng.choice([("", ""), ("app", "1.0"), ("langfuse-sdk", "5.2.0")])
        for _ in range(25):
            t0 = NS + rng.randint(0, 10**12)
            sp = Span(trace_id=rng.choice([rng.randbytes(16), b"\0" * 16]), span_id=rng.randbytes(8),
                      name=rng.choice(["n", "", "x" * 1200, "na\u00efve"]), kind=rng.randint(0, 5),
                      start_time_unix_nano=rng.choice([t0, t0, 0]),
                      end_time_unix_nano=rng.choice([t0 + 10**6, 0, t0 - 5]))
            if rng.random() < 0.6:
                sp.parent_span_id = rng.randbytes(8)
            if rng.random() < 0.2:
                sp.status.CopyFrom(Status(code=rng.randint(0, 2), message=rng.choice(["", "boom"])))
            sp.attributes.extend(_attrs({k: _random_value(rng, k) for k in rng.sample(_KEYS, rng.randint(0, 12))}))
            if rng.random() < 0.2:
                for name in ("exception", "gen_ai.choice", "First Token Stream Event"):
                    sp.events.add(name=name, time_unix_nano=t0 + 5,
                                  attributes=_attrs({"exception.type": "E", "message": '{"role": "a"}'}))
            if rng.random() < 0.1:
                sp.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8))
            ss.spans.append(sp)
    return req


def _mangled_json(req: ExportTraceServiceRequest, seed: int) -> bytes:
    """OTLP/JSON with what only JSON can carry: lone surrogates (json.loads keeps them), base64 and
    upper-case ids, plain-map attributes, enum names, non-object spans."""
    import random

    rng = random.Random(seed)
    doc = json.loads(otlp_json(req))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                c = rng.random()
                if c < 0.05:
                    sp["name"] = "bad\ud800name"
                elif c < 0.1:
                    sp.setdefault("attributes", []).append({"key": "k\udc00", "value": {"stringValue": "v"}})
                elif c < 0.15:
                    sp["spanId"] = sp["spanId"].upper()
                elif c < 0.2:
                    sp["traceId"] = base64.b64encode(bytes.fromhex(sp["traceId"])).decode()
                elif c < 0.25:
                    sp["attributes"] = {"user.id": "plain-map", "n": 1.5}
                elif c < 0.3:
                    sp["kind"], sp["status"] = "SPAN_KIND_SERVER", {"code": "STATUS_CODE_ERROR", "message": "x\ud800"}
            ss["spans"].append("not a span")
    return json.dumps(doc).encode()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ctype", ["application/x-protobuf", "application/json", "mangled json"])
def test_random_spans_records_equal_validated_dicts(ctype: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Protobuf, OTLP/JSON as exporters write it (msgspec structs: otlp._convert_typed) and OTLP/JSON
    only the general path reads (_mangled_json) against the reference."""
    from podium.core.pricing import PriceTable
    from podium.core.records import SpanIn
    from podium.server import otlp
    from podium.server.convert import BatchBuilder
    from podium.server.otlp import decode_into, decode_traces

    req = _random_request(seed)
    if ctype == "application/x-protobuf":
        body = req.SerializeToString()
    elif ctype == "application/json":
        body = otlp_json(req)
    else:
        body, ctype = _mangled_json(req, seed), "application/json"
    typed: list[bool] = []
    convert_typed = otlp._convert_typed
    def spy(*args: Any) -> Any:
        out = convert_typed(*args)
        typed.append(out is not None)  # False: it left the body to the general path
        return out

    monkeypatch.setattr(otlp, "_convert_typed", spy)
    prices = PriceTable.default()
    fast, ref = BatchBuilder("p", lambda: prices), BatchBuilder("p", lambda: prices)
    errors = decode_into(body, ctype, fast)
    spans, problems = decode_traces(body, content_type=ctype)
    for d in spans:
        ref.add_span(SpanIn.model_validate(d))
    assert errors == problems and len(errors) > 5 and len(fast.batch.spans) > 5  # both kinds exercised
    assert fast.batch.spans == ref.batch.spans and fast.batch.traces == ref.batch.traces
    assert fast.batch.tags == ref.batch.tags
    for got, want in zip(fast.batch.spans, ref.batch.spans, strict=True):
        assert json.dumps(got, default=repr) == json.dumps(want, default=repr)  # key order, NaN-safe
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in want.items()}
    assert typed == ([True] if body == otlp_json(req) else [])  # which JSON path ran


def _deep_any_value(levels: int) -> dict[str, Any]:
    """An AnyValue of ``levels`` nested arrayValue lists (each adds 3 JSON levels: AnyValue,
    arrayValue, values)."""
    v: dict[str, Any] = {"intValue": "1"}
    for _ in range(levels):
        v = {"arrayValue": {"values": [v]}}
    return v


def _json_body(span_attrs: list[dict[str, Any]], resource_attrs: list[dict[str, Any]] | None = None,
               n: int = 2, **extra: Any) -> bytes:
    spans = [{"traceId": f"{k + 1:032x}", "spanId": f"{k + 1:016x}", "name": f"s{k}", "kind": 1,
              "startTimeUnixNano": str(NS), "endTimeUnixNano": str(NS + 10**6), "attributes": span_attrs}
             for k in range(n)]
    return json.dumps({"resourceSpans": [{"resource": {"attributes": resource_attrs or []},
                                          "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}], **extra}).encode()


@pytest.mark.parametrize(
    ("body", "typed"),
    [
        (_json_body([{"key": "a", "value": {"stringValue": "x"}}]), True),
        (_json_body([{"key": "a", "value": _deep_any_value(36)}]), True),  # deep, but well within 128
        (_json_body([{"key": "a", "value": _deep_any_value(39)}]), False),  # may be too deep: general path
        (_json_body([{"key": "a", "value": _deep_any_value(40)}]), False),  # is too deep: refused whole
        (_json_body([], [{"key": "r", "value": _deep_any_value(41)}]), False),
        (_json_body([{"key": "a", "value": "bare"}]), False),  # lenient shapes: general path only
        (_json_body([{"key": "a", "value": {"string_value": "x"}}]), False),
        (json.dumps({"resourceSpans": [{"instrumentationLibrarySpans": []}]}).encode(), False),
        (_json_body([{"key": "n", "value": {"doubleValue": "NaN"}}]), True),
        (_json_body([]).replace(b'"s0"', b'"\\ud800"'), False),  # msgspec refuses lone surrogates
        (_json_body([], extra=1), False),
        (b"{}", False),
        (b'{"resourceSpans": null}', False),
    ],
)
def test_typed_json_path_decides_as_the_general_one(body: bytes, typed: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """OTLP/JSON bodies the struct decoder takes, and those it leaves to the general path: the same
    rows, errors or refusal as the general path (``_convert_json``) alone."""
    from podium.core.pricing import PriceTable
    from podium.errors import PodiumError
    from podium.server import otlp
    from podium.server.convert import BatchBuilder

    prices = PriceTable.default()

    def run(allow_typed: bool) -> tuple[Any, Any]:
        builder = BatchBuilder("p", lambda: prices)
        if not allow_typed:
            monkeypatch.setattr(otlp, "_typed_json", lambda _body: None)
        try:
            return otlp.decode_into(body, "application/json", builder, max_spans=100), builder.batch.spans
        except PodiumError as e:
            return f"{type(e).__name__}: {e}", builder.batch.spans

    used: list[bool] = []
    convert_typed = otlp._convert_typed

    def spy(*args: Any) -> Any:
        out = convert_typed(*args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(otlp, "_convert_typed", spy)
    got = run(True)
    assert used == ([True] if typed else used and [False]), used
    want = run(False)
    assert got == want
    if isinstance(got[0], str):
        assert got[1] == []  # refused whole: nothing added


def test_typed_json_path_leaves_too_many_spans_to_the_general_path() -> None:
    from podium.errors import PayloadTooLarge
    from podium.server import otlp

    deep = _json_body([{"key": "a", "value": _deep_any_value(41)}], n=5)
    with pytest.raises(otlp.BadRequest, match="nests deeper than"):  # depth is checked before the count
        otlp.decode_into(deep, "application/json", _builder(), max_spans=3)
    with pytest.raises(PayloadTooLarge, match="5 spans"):
        otlp.decode_into(_json_body([], n=5), "application/json", _builder(), max_spans=3)


def _builder() -> Any:
    from podium.core.pricing import PriceTable
    from podium.server.convert import BatchBuilder

    prices = PriceTable.default()
    return BatchBuilder("p", lambda: prices)


def test_a_too_deep_value_refuses_the_body_even_in_a_span_with_bad_ids() -> None:
    """The general path refuses a body nested past MAX_JSON_DEPTH before converting any span; the
    struct path must find the deep value in every span (attributes, events, links), bad or not."""
    from podium.server import otlp

    deep = [{"key": "a", "value": _deep_any_value(40)}]
    doc = json.loads(_json_body([]))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    for where in ("attributes", "events", "links"):
        d = json.loads(json.dumps(doc))
        bad = d["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
        bad["traceId"] = "not hex"
        if where == "attributes":
            bad["attributes"] = deep
        elif where == "events":
            bad["events"] = [{"name": "e", "timeUnixNano": "x", "attributes": deep}]
        else:
            bad["links"] = [{"traceId": "zz", "spanId": span["spanId"], "attributes": deep}]
        with pytest.raises(otlp.BadRequest, match="nests deeper than"):
            otlp.decode_into(json.dumps(d).encode(), "application/json", _builder())
