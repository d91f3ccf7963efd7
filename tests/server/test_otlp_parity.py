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
