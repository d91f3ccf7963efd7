"""OTLP logs: GenAI events sent as log records reach their span, whichever arrives first.

The real OpenTelemetry SDK's OTLPLogExporter (HTTP/protobuf) and the real
``opentelemetry-instrumentation-openai-v2`` (event mode, run in a subprocess so its
patching and environment stay out of this process) against a real server.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace as trace_api
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import LiveServer, make_project

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("genai_app.py")


def _basic(server: LiveServer) -> str:
    return "Basic " + base64.b64encode(f"{server.keys.public_key}:{server.keys.secret_key}".encode()).decode()


def _trace(server: LiveServer, trace_id: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.get(f"/api/v1/traces/{trace_id}")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.mark.parametrize("path", ["/v1/logs", "/api/public/otel/v1/logs"])
def test_sdk_log_exporter_attaches_events_before_and_after_the_span(server: LiveServer, path: str) -> None:
    headers = {"Authorization": _basic(server)}
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.url + "/v1/traces", headers=headers))
    )
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=server.url + path, headers=headers, compression=Compression.Gzip)
        )
    )
    tracer = tracer_provider.get_tracer("app")
    logger = logger_provider.get_logger("app")
    system = {"gen_ai.system": "openai"}

    # 1. Events exported while the span is open (logs first, then the span).
    with tracer.start_as_current_span("chat first") as first:
        first.set_attribute("gen_ai.operation.name", "chat")
        first.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        first.set_attribute("gen_ai.usage.input_tokens", 12)
        first.set_attribute("gen_ai.usage.output_tokens", 3)
        logger.emit(LogRecord(event_name="gen_ai.system.message", body={"content": "be brief"}, attributes=system))
        logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "hi"}, attributes=system))
        logger.emit(
            LogRecord(
                event_name="gen_ai.choice",
                body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}},
                attributes=system,
            )
        )
    trace_id = format(first.get_span_context().trace_id, "032x")
    first_id = format(first.get_span_context().span_id, "016x")

    # 2. The span is exported first, its events later (with the span's context).
    with tracer.start_as_current_span("chat second") as second:
        second.set_attribute("gen_ai.operation.name", "chat")
        second.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        ctx = trace_api.set_span_in_context(second)
    trace_id2 = format(second.get_span_context().trace_id, "032x")
    second_id = format(second.get_span_context().span_id, "016x")
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "again"}, attributes=system, context=ctx))
    logger.emit(
        LogRecord(
            event_name="gen_ai.choice",
            body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "sure"}},
            attributes=system,
            context=ctx,
        )
    )
    tracer_provider.shutdown()
    logger_provider.shutdown()

    tr = _trace(server, trace_id)
    (span,) = tr["spans"]
    assert span["id"] == first_id and span["name"] == "chat first" and span["kind"] == "generation"
    assert span["model"] == "gpt-4o-mini" and (span["input_tokens"], span["output_tokens"]) == (12, 3)
    assert span["input"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert span["output"] == [{"role": "assistant", "content": "hello", "index": 0, "finish_reason": "stop"}]
    assert tr["name"] == "chat first" and tr["span_count"] == 1
    assert tr["input"] == span["input"]  # the root span's input is the trace's

    tr2 = _trace(server, trace_id2)
    (span2,) = tr2["spans"]
    assert span2["id"] == second_id and span2["name"] == "chat second" and span2["kind"] == "generation"
    assert span2["end_time"] is not None and span2["status"] != "error"
    assert span2["input"] == [{"role": "user", "content": "again"}]
    assert span2["output"][0]["content"] == "sure"
    assert tr2["name"] == "chat second" and tr2["output"] == span2["output"]


def test_logs_json_partial_success_and_errors(server: LiveServer) -> None:
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"

    def record(name: str, body: Any, *, span: str | None = span_id, **extra: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"timeUnixNano": "1700000000500000000", "eventName": name, "body": body, **extra}
        if span:
            rec.update(traceId=trace_id, spanId=span)
        return rec

    body = {
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
            "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [
                record("gen_ai.user.message", {"kvlistValue": {"values": [
                    {"key": "content", "value": {"stringValue": "what is 2+2?"}}]}}),
                # an older SDK: the event name as an attribute
                {"traceId": trace_id, "spanId": span_id, "timeUnixNano": "1700000000600000000",
                 "attributes": [{"key": "event.name", "value": {"stringValue": "gen_ai.choice"}}],
                 "body": {"kvlistValue": {"values": [
                     {"key": "index", "value": {"intValue": "0"}},
                     {"key": "message", "value": {"kvlistValue": {"values": [
                         {"key": "content", "value": {"stringValue": "4"}}]}}}]}}},
                record("gen_ai.user.message", {"stringValue": "lost"}, span=None),  # no span: rejected
                record("app.started", {"stringValue": "hello"}),  # not a GenAI event: rejected
            ]}],
        }]
    }
    with server.client() as c:
        r = c.post("/v1/logs", json=body)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        partial = r.json()["partialSuccess"]
        assert partial["rejectedLogRecords"] in (2, "2")
        assert "carry no trace_id/span_id" in partial["errorMessage"] and "'app.started'" in partial["errorMessage"]

        # Until its span arrives, the trace shows a nameless span holding the messages (API and UI).
        (early,) = c.get(f"/api/v1/traces/{trace_id}").json()["spans"]
        assert early["name"] == "" and early["input"] == [{"role": "user", "content": "what is 2+2?"}]
        with httpx.Client(base_url=server.url, headers={"accept": "text/html"}) as ui:  # local mode: no login
            page = ui.get(f"/traces/{trace_id}/spans/{span_id}", headers={"HX-Request": "true"})
            assert page.status_code == 200 and "what is 2+2?" in page.text
            assert ui.get(f"/traces/{trace_id}").status_code == 200

        # The span arrives after its events: name, times and kind from the span, input/output kept.
        spans = {"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "calc", "kind": 3,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}]}]}]}
        assert c.post("/v1/traces", json=spans).status_code == 200
        tr = c.get(f"/api/v1/traces/{trace_id}").json()
        (span,) = tr["spans"]
        assert span["name"] == "calc" and span["kind"] == "generation"
        assert span["start_time"].startswith("2023-11-14T22:13:20")
        assert span["input"] == [{"role": "user", "content": "what is 2+2?"}]
        assert span["output"] == [{"role": "assistant", "content": "4", "index": 0}]

        # Errors: not OTLP, wrong content type, no key, a viewer key.
        bad = c.post("/v1/logs", content=b"\xff\xfe garbage", headers={"content-type": "application/x-protobuf"})
        assert bad.status_code == 400 and "ExportLogsServiceRequest" in bad.json()["error"]["message"]
        assert c.post("/v1/logs", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        not_logs = c.post("/v1/logs", json={"resourceSpans": []})
        assert not_logs.status_code == 400 and "resourceLogs" in not_logs.json()["error"]["message"]
        # More log records than PODIUM_MAX_BATCH_ITEMS: 413, nothing stored.
        settings = server.app.state.podium.settings
        settings.max_batch_items = 3
        try:
            too_many = c.post("/v1/logs", json=body)
            assert too_many.status_code == 413 and "PODIUM_MAX_BATCH_ITEMS" in too_many.json()["error"]["message"]
        finally:
            settings.max_batch_items = 5000
    r = httpx.post(server.url + "/v1/logs", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    viewer = make_project(server.store, "viewers", role="viewer")
    with server.client(viewer) as c:
        assert c.post("/v1/logs", json=body).status_code == 403


#: opentelemetry-instrumentation-openai-v2 2.4b0 (with opentelemetry-util-genai 1.1b0) in event mode:
#: the message content travels only in a gen_ai.client.inference.operation.details log event.
#: (Its per-message gen_ai.*.message / gen_ai.choice events are what the SDK test above sends.)
EVENT_ONLY = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only",
    "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT": "true",
}


@pytest.mark.slow
def test_openai_v2_instrumentation_in_event_mode(server: LiveServer, upstream: Any) -> None:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PODIUM_"))} | EVENT_ONLY
    done = subprocess.run(
        [sys.executable, str(APP), server.url, server.keys.secret_key, upstream.base_url],
        env=run_env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.strip().splitlines()[-1]
    tr = _trace(server, trace_id)
    spans = {s["name"]: s for s in tr["spans"]}
    assert set(spans) == {"app", "chat gpt-4o-mini"}, spans.keys()
    llm = spans["chat gpt-4o-mini"]
    assert llm["kind"] == "generation" and llm["model"] == "gpt-4o-mini" and llm["parent_id"] == spans["app"]["id"]
    assert llm["input"] == [
        {"role": "system", "parts": [{"content": "be brief", "type": "text"}]},
        {"role": "user", "parts": [{"content": "say hi", "type": "text"}]},
    ]
    assert llm["output"] == [
        {"role": "assistant", "parts": [{"content": "Hello from the fake upstream", "type": "text"}], "finish_reason": "stop"}
    ]
    assert (llm["input_tokens"], llm["output_tokens"]) == (10, 5)
    assert tr["span_count"] == 2 and tr["name"] == "app"


@pytest.mark.parametrize("partial_first", [True, False])
def test_partial_span_row_merges_in_one_write(store: Any, partial_first: bool) -> None:
    """The writer merges concurrent requests into one transaction: a partial row (empty name)
    and the full span in the same batch, either order, give one span with both."""
    from podium.core.pricing import PriceTable
    from podium.core.records import SpanIn
    from podium.server.convert import BatchBuilder

    p = make_project(store, "merge")
    full = SpanIn(id="s1", trace_id="t1", name="chat", kind="generation", start_time="2026-01-01T00:00:00Z",
                  end_time="2026-01-01T00:00:02Z", model="gpt-4o-mini")
    partial = SpanIn(id="s1", trace_id="t1", name="", start_time="2026-01-01T00:00:01Z",
                     input=[{"role": "user", "content": "hi"}])
    builder = BatchBuilder(p.project_id, PriceTable.default)
    for s in ([partial, full] if partial_first else [full, partial]):
        builder.add_span(s)
    store.ingest.write(builder.batch)
    row = store.traces.get_span(p.project_id, "t1", "s1")
    assert row["name"] == "chat" and row["kind"] == "generation" and row["model"] == "gpt-4o-mini"
    assert row["start_time"].isoformat().startswith("2026-01-01T00:00:00")
    assert row["input"] == [{"role": "user", "content": "hi"}] and row["end_time"] is not None
