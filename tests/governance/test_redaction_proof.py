"""The proof that redaction happens before storage (issue 16's "done when").

One server (API, OTLP/HTTP, OTLP/gRPC, the Langfuse-compatible API, the gateway in front of a fake
model) with the project's rules set to the card, e-mail and API-key presets and two JSON paths for a
password. Seeded secrets (a payment card number in two spellings, an e-mail address, an OpenAI-style
API key and a password) are sent through every ingest path: the native batch API (trace, span,
score comment), OTLP/HTTP protobuf and JSON, OTLP/gRPC, Langfuse ``trace-create`` and
``score-create``, and a gateway chat call whose prompt carries them and whose model answers with
them. Then the database itself is searched for the raw values:

- SQLite: the database FILE's bytes and its write-ahead log (after a checkpoint);
- PostgreSQL: every text, varchar, JSON and JSONB column of every table of the test's schema.

Zero hits, and the ``[REDACTED:...]`` markers are there. The server's log lines (every
``podium`` logger, at DEBUG) never contain a raw value either.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sqlalchemy import text

from tests.conftest import LiveServer, ProjectKeys, ServerThread, free_port
from tests.gateway.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "5555555555554444"  # a Mastercard test number, unspaced
EMAIL = "ana.seeded@example.org"
API_KEY = "sk-proj-Zq8xW2vB7nM4kL1pR9tY6uI3oE5aS0dF"
PASSWORD = "plain-Pa55word-never-stored"
SEEDS = (CARD, CARD_DIGITS, EMAIL, API_KEY, PASSWORD)
MARKERS = ("[REDACTED:card]", "[REDACTED:email]", "[REDACTED:secret]", "[REDACTED:password]")
SECRETS_TEXT = f"my card is {CARD}, the other {CARD_DIGITS}; mail {EMAIL}; key {API_KEY}"

RULES = {"fail_closed": False, "rules": [
    {"preset": "credit_card"},
    {"preset": "email"},
    {"preset": "api_key"},
    {"path": "metadata.password", "replacement": "[REDACTED:password]"},
    {"path": 'attributes["app.password"]', "replacement": "[REDACTED:password]"},
]}
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def full_server(store: Any, project: ProjectKeys, upstream: FakeUpstream, podium_home: Path
                ) -> Iterator[tuple[LiveServer, int]]:
    from podium.config import Settings
    from podium.server.app import create_app

    podium_home.mkdir(parents=True, exist_ok=True)
    cfg = podium_home / "gateway.yaml"
    cfg.write_text(f"""
router: {{retries: 0, timeout: 10}}
models:
  - name: fake
    deployments:
      - {{provider: openai, model: fake-a, api_base: "{upstream.base_url}"}}
""")
    app = create_app(Settings(gateway_config=cfg, otlp_grpc_port=free_port()), store=store, otlp_grpc=True)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th), app.state.otlp_grpc.port
    th.stop()


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _otlp_protobuf(trace_id: str) -> bytes:
    span = Span(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex("00000000000000b1"), name="chat",
                start_time_unix_nano=1_767_225_600_000_000_000, end_time_unix_nano=1_767_225_601_000_000_000,
                attributes=[_kv("app.password", PASSWORD), _kv("gen_ai.prompt", SECRETS_TEXT),
                            _kv("input.value", SECRETS_TEXT)])
    span.events.add(name="note", time_unix_nano=1_767_225_600_500_000_000, attributes=[_kv("said", SECRETS_TEXT)])
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    req.resource_spans[0].resource.attributes.append(_kv("owner.email", EMAIL))
    return req.SerializeToString()


def _otlp_json(trace_id: str) -> dict[str, Any]:
    attrs = [{"key": "app.password", "value": {"stringValue": PASSWORD}},
             {"key": "output.value", "value": {"stringValue": SECRETS_TEXT}},
             {"key": "http.request.body", "value": {"stringValue": json.dumps({"card": CARD_DIGITS})}}]
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "owner.email", "value": {"stringValue": EMAIL}}]},
                               "scopeSpans": [{"spans": [{
                                   "traceId": trace_id, "spanId": "00000000000000c1", "name": "tool",
                                   "startTimeUnixNano": "1767225600000000000",
                                   "endTimeUnixNano": "1767225601000000000", "attributes": attrs}]}]}]}


def _seed_everything(srv: LiveServer, grpc_port: int, upstream: FakeUpstream) -> dict[str, str]:
    """Send the seeds through every ingest path; the trace id each path used."""
    ids = {name: uuid.uuid4().hex for name in ("native", "otlp_pb", "otlp_json", "grpc", "langfuse")}
    with srv.client() as c:
        assert c.put("/api/v1/redaction-rules", json=RULES).status_code == 200
        r = c.post("/api/v1/ingest", json={"batch": [
            {"type": "trace", "body": {"id": ids["native"], "name": "checkout", "input": SECRETS_TEXT,
                                       "metadata": {"password": PASSWORD, "note": SECRETS_TEXT},
                                       "tags": [f"owner:{EMAIL}"]}},
            {"type": "span", "body": {
                "trace_id": ids["native"], "id": "s1", "name": "llm", "kind": "generation", "model": "gpt-4o-mini",
                "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
                "input": {"messages": [{"role": "user", "content": SECRETS_TEXT}]},
                "output": {"role": "assistant", "content": f"noted {EMAIL}", "card": int(CARD_DIGITS)},
                "metadata": {"password": PASSWORD}, "status_message": f"failed for {EMAIL}"}},
            {"type": "score", "body": {"id": "sc1", "trace_id": ids["native"], "name": "review", "value": 1,
                                       "comment": f"customer {EMAIL} paid with {CARD}"}},
        ]})
        assert r.status_code == 200 and r.json()["errors"] == [], r.text
        r = c.post("/v1/traces", content=_otlp_protobuf(ids["otlp_pb"]),
                   headers={"content-type": "application/x-protobuf"})
        assert r.status_code == 200, r.text
        r = c.post("/v1/traces", json=_otlp_json(ids["otlp_json"]))
        assert r.status_code == 200 and "rejectedSpans" not in r.json().get("partialSuccess", {}), r.text
        r = c.post("/api/public/ingestion", json={"batch": [
            {"id": "e1", "type": "trace-create", "timestamp": "2026-01-01T00:00:00Z",
             "body": {"id": ids["langfuse"], "name": "lf", "input": SECRETS_TEXT, "output": f"ok {API_KEY}",
                      "metadata": {"password": PASSWORD}}},
            {"id": "e2", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
             "body": {"id": "lf-score", "name": "q", "value": 0.5, "traceId": ids["langfuse"],
                      "comment": f"card {CARD_DIGITS}"}},
        ]})
        assert r.status_code == 207 and r.json()["errors"] == [], r.text
    token = base64.b64encode(f"{srv.keys.public_key}:{srv.keys.secret_key}".encode()).decode()
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(TRACES, request_serializer=None, response_deserializer=None)
        call(_otlp_protobuf(ids["grpc"]), metadata=[("authorization", f"Basic {token}")], timeout=20)
    upstream.script("fake-a", Reply(text=f"Sure: {CARD} and {API_KEY} for {EMAIL}"))
    with httpx.Client(base_url=srv.url, timeout=30, headers={"Authorization": f"Bearer {srv.keys.secret_key}"}) as g:
        r = g.post("/v1/chat/completions", json={
            "model": "fake", "messages": [{"role": "user", "content": SECRETS_TEXT}],
            "podium": {"metadata": {"password": PASSWORD}, "tags": [f"for:{EMAIL}"]}})
        assert r.status_code == 200, r.text
        assert EMAIL in r.json()["choices"][0]["message"]["content"]  # the caller gets the answer as is
        ids["gateway"] = r.headers["x-podium-trace-id"]
    return ids


def _wait_stored(srv: LiveServer, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    got: dict[str, dict[str, Any]] = {}
    with srv.client() as c:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < len(ids):
            for name, tid in ids.items():
                if name not in got:
                    r = c.get(f"/api/v1/traces/{tid}")
                    if r.status_code == 200 and (r.json()["spans"] or name == "langfuse"):
                        got[name] = r.json()
            time.sleep(0.1)
    assert set(got) == set(ids), f"not stored: {set(ids) - set(got)}"
    return got


def _sqlite_bytes(srv: LiveServer) -> bytes:
    path = Path(str(srv.store.engine.url.database))
    with srv.store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def _pg_hits(srv: LiveServer, needle: str) -> list[str]:
    """Every text/varchar/JSON/JSONB column of every table of the test's schema holding ``needle``."""
    hits = []
    with srv.store.engine.connect() as conn:
        cols = conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'character', 'ARRAY') "
            "ORDER BY table_name, column_name")).all()
        assert len(cols) > 50  # the whole schema, not an empty search path
        for table, column in cols:
            n = conn.execute(text(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE :p'),
                             {"p": f"%{needle}%"}).scalar()
            if n:
                hits.append(f"{table}.{column}: {n}")
    return hits


def test_seeded_secrets_never_reach_the_database_or_the_logs(
        full_server: tuple[LiveServer, int], upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="podium")
    srv, grpc_port = full_server
    ids = _seed_everything(srv, grpc_port, upstream)
    stored = _wait_stored(srv, ids)

    # What the API shows is redacted (and proves each path stored something).
    native = stored["native"]
    assert native["metadata"]["password"] == "[REDACTED:password]" and native["tags"] == ["owner:[REDACTED:email]"]
    assert native["scores"][0]["comment"] == "customer [REDACTED:email] paid with [REDACTED:card]"
    span = native["spans"][0]
    assert span["input"]["messages"][0]["content"] == ("my card is [REDACTED:card], the other [REDACTED:card]; "
                                                       "mail [REDACTED:email]; key [REDACTED:secret]")
    assert span["output"]["card"] == "[REDACTED:card]" and span["status_message"] == "failed for [REDACTED:email]"
    assert stored["grpc"]["spans"][0]["attributes"]["app.password"] == "[REDACTED:password]"
    assert stored["otlp_json"]["spans"][0]["attributes"]["http.request.body"] == '{"card": "[REDACTED:card]"}'
    gw = stored["gateway"]["spans"][0]
    assert gw["metadata"]["password"] == "[REDACTED:password]"
    assert gw["output"]["content"] == "Sure: [REDACTED:card] and [REDACTED:secret] for [REDACTED:email]"

    if srv.store.dialect == "sqlite":
        raw = _sqlite_bytes(srv)
        assert len(raw) > 100_000
        leaks = [s for s in SEEDS if s.encode() in raw]
        assert leaks == [], f"raw values in the SQLite file: {leaks}"
        missing = [m for m in MARKERS if m.encode() not in raw]
        assert missing == []
    else:
        pg_leaks = {s: _pg_hits(srv, s) for s in SEEDS}
        assert all(not v for v in pg_leaks.values()), f"raw values in PostgreSQL: {pg_leaks}"
        for m in MARKERS:
            assert _pg_hits(srv, m), f"{m} is in no column"

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert [s for s in SEEDS if s in logged] == []
