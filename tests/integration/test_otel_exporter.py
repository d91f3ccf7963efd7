"""The real OpenTelemetry SDK and OTLP/HTTP exporter against our endpoints."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.conftest import LiveServer

pytestmark = pytest.mark.integration


def _provider(server: LiveServer, path: str, headers: dict[str, str], compression: Compression) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-app", "deployment.environment.name": "staging"}))
    exporter = OTLPSpanExporter(endpoint=server.url + path, headers=headers, compression=compression)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _make_spans(provider: TracerProvider) -> str:
    tracer = provider.get_tracer("test-app")
    with tracer.start_as_current_span("agent-run") as root:
        root.set_attribute("session.id", "sess-7")
        root.set_attribute("user.id", "bob")
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.system", "openai")
            llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.request.temperature", 0.2)
            llm.set_attribute("gen_ai.usage.input_tokens", 100)
            llm.set_attribute("gen_ai.usage.output_tokens", 20)
            llm.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]))
            llm.set_attribute("custom.flag", True)
        with tracer.start_as_current_span("lookup") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("input.value", "weather in Paris")
            tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
        return format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("path", ["/v1/traces", "/api/public/otel/v1/traces"])
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_otlp_protobuf_exporter(server: LiveServer, path: str, compression: Compression) -> None:
    token = base64.b64encode(f"{server.keys.public_key}:{server.keys.secret_key}".encode()).decode()
    provider = _provider(server, path, {"Authorization": f"Basic {token}"}, compression)
    trace_id = _make_spans(provider)
    provider.shutdown()
    with server.client() as c:
        tr = c.get(f"/api/v1/traces/{trace_id}").json()
    assert tr["name"] == "agent-run" and tr["user_id"] == "bob" and tr["session_id"] == "sess-7"
    assert tr["environment"] == "staging" and tr["span_count"] == 3 and tr["status"] == "error"
    spans = {s["name"]: s for s in tr["spans"]}
    llm = spans["chat gpt-4o-mini"]
    assert llm["kind"] == "generation" and llm["model"] == "gpt-4o-mini" and llm["provider"] == "openai"
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (100, 20, 120)
    assert llm["model_parameters"]["temperature"] == 0.2 and float(llm["cost_total"]) > 0
    assert llm["attributes"]["custom.flag"] is True
    assert llm["parent_id"] == spans["agent-run"]["id"]
    tool = spans["lookup"]
    assert tool["kind"] == "tool" and tool["status"] == "error" and tool["status_message"] == "tool timed out"
    assert tool["input"] == "weather in Paris"


def test_otlp_with_bearer_and_bad_keys(server: LiveServer) -> None:
    provider = _provider(server, "/v1/traces", {"Authorization": f"Bearer {server.keys.secret_key}"},
                         Compression.NoCompression)
    trace_id = _make_spans(provider)
    provider.shutdown()
    with server.client() as c:
        assert c.get(f"/api/v1/traces/{trace_id}").status_code == 200
    r = httpx.post(server.url + "/v1/traces", content=b"", headers={"content-type": "application/x-protobuf",
                                                                     "authorization": "Bearer sk-pd-wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_otlp_json_and_partial_success(server: LiveServer) -> None:
    body: dict[str, Any] = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
            "scopeSpans": [{"scope": {"name": "s"}, "spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "ok-span",
                 "kind": 1, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
                 "attributes": [{"key": "llm.model_name", "value": {"stringValue": "claude-3-5-sonnet"}},
                                {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                                {"key": "llm.token_count.prompt", "value": {"intValue": "10"}}]},
                {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b175", "name": "bad",
                 "startTimeUnixNano": "1700000000000000000"},
            ]}],
        }]
    }
    with server.client() as c:
        r = c.post("/v1/traces", json=body)
        assert r.status_code == 200, r.text
        resp = r.json()
        assert resp["partialSuccess"]["rejectedSpans"] in (1, "1")
        tr = c.get("/api/v1/traces/5b8efff798038103d269b633813fc60c").json()
        assert tr["spans"][0]["kind"] == "generation" and tr["spans"][0]["model"] == "claude-3-5-sonnet"
        bad = c.post("/v1/traces", content=b"\xff\xfe garbage", headers={"content-type": "application/x-protobuf"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] in ("bad_request", "validation_error")
        wrong = c.post("/v1/traces", content=b"x", headers={"content-type": "text/plain"})
        assert wrong.status_code == 415
