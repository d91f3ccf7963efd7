"""OTLP/gRPC: the real OpenTelemetry gRPC exporters against a real server's receiver."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry import trace as trace_api
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from podium.errors import ConfigurationError
from tests.conftest import LiveServer, ProjectKeys, ServerThread, free_port, make_project

pytestmark = pytest.mark.integration


@pytest.fixture
def grpc_server(store: Any, project: ProjectKeys) -> Iterator[tuple[LiveServer, int]]:
    from podium.config import Settings
    from podium.server.app import create_app

    app = create_app(Settings(otlp_grpc_port=free_port()), store=store, otlp_grpc=True)
    th = ServerThread(app).start()
    port = app.state.otlp_grpc.port
    yield LiveServer(th.url, store, project, app, th), port
    th.stop()


def _export(port: int, method: str, body: bytes, metadata: list[tuple[str, str]] | None) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return call(body, metadata=metadata, timeout=10)


TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_grpc_exporters_send_spans_and_genai_events(
    grpc_server: tuple[LiveServer, int], compression: grpc.Compression
) -> None:
    server, port = grpc_server
    token = base64.b64encode(f"{server.keys.public_key}:{server.keys.secret_key}".encode()).decode()
    endpoint = f"http://127.0.0.1:{port}"
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "grpc-app"}))
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=endpoint, insecure=True, headers=(("authorization", f"Basic {token}"),), compression=compression
            )
        )
    )
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=endpoint, insecure=True, headers={"authorization": f"Bearer {server.keys.secret_key}"})
        )
    )
    tracer = tracer_provider.get_tracer("app")
    logger = logger_provider.get_logger("app")
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("user.id", "ann")
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.usage.input_tokens", 7)
            llm.set_attribute("gen_ai.usage.output_tokens", 2)
            ctx = trace_api.set_span_in_context(llm)
    # The events come after their span, over gRPC too.
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": "hi"}, context=ctx))
    logger.emit(
        LogRecord(
            event_name="gen_ai.choice",
            body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hey"}},
            context=ctx,
        )
    )
    tracer_provider.shutdown()
    logger_provider.shutdown()
    trace_id = format(root.get_span_context().trace_id, "032x")
    with server.client() as c:
        r = c.get(f"/api/v1/traces/{trace_id}")
        assert r.status_code == 200, r.text
        tr = r.json()
    assert tr["name"] == "agent" and tr["user_id"] == "ann" and tr["span_count"] == 2
    spans = {s["name"]: s for s in tr["spans"]}
    chat = spans["chat gpt-4o-mini"]
    assert chat["kind"] == "generation" and chat["model"] == "gpt-4o-mini" and chat["parent_id"] == spans["agent"]["id"]
    assert (chat["input_tokens"], chat["output_tokens"]) == (7, 2)
    assert chat["input"] == [{"role": "user", "content": "hi"}]
    assert chat["output"] == [{"role": "assistant", "content": "hey", "index": 0, "finish_reason": "stop"}]


def test_grpc_status_codes_and_partial_success(grpc_server: tuple[LiveServer, int]) -> None:
    server, port = grpc_server
    bearer = [("authorization", f"Bearer {server.keys.secret_key}")]
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name, span.start_time_unix_nano = b"\x00" * 16, b"\x01" * 8, "bad", 1
    good = request.resource_spans[0].scope_spans[0].spans.add()
    good.trace_id, good.span_id, good.name, good.start_time_unix_nano = b"\x0a" * 16, b"\x0b" * 8, "good", 10**18
    resp = ExportTraceServiceResponse.FromString(_export(port, TRACES, request.SerializeToString(), bearer))
    assert resp.partial_success.rejected_spans == 1 and "trace_id" in resp.partial_success.error_message
    with server.client() as c:
        assert c.get("/api/v1/traces/" + "0a" * 16).json()["spans"][0]["name"] == "good"

    logs = ExportLogsServiceResponse.FromString(_export(port, LOGS, b"", bearer))  # an empty export
    assert logs.partial_success.rejected_log_records == 0

    def code(body: bytes, metadata: list[tuple[str, str]] | None, method: str = TRACES) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as e:
            _export(port, method, body, metadata)
        return e.value.code()  # type: ignore[no-any-return]

    assert code(b"", None) == grpc.StatusCode.UNAUTHENTICATED
    assert code(b"", [("authorization", "Bearer sk-pd-wrong")], LOGS) == grpc.StatusCode.UNAUTHENTICATED
    viewer = make_project(server.store, "viewers", role="viewer")
    assert code(b"", [("authorization", f"Bearer {viewer.secret_key}")]) == grpc.StatusCode.PERMISSION_DENIED
    assert code(b"\xff\xfe garbage", bearer) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(b"\xff\xfe garbage", bearer, LOGS) == grpc.StatusCode.INVALID_ARGUMENT
    # More spans than PODIUM_MAX_BATCH_ITEMS: INVALID_ARGUMENT (retrying the same batch cannot help).
    state = server.app.state.podium
    state.settings.max_batch_items = 1
    try:
        assert code(request.SerializeToString(), bearer) == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        state.settings.max_batch_items = 5000
    # Ingestion busy (its byte budget taken): RESOURCE_EXHAUSTED, which OTLP exporters retry.
    taken = state.settings.ingest_queue_max_bytes
    state.ingester.reserve(taken)
    try:
        assert code(request.SerializeToString(), bearer) == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        state.ingester.release(taken)


def test_grpc_port_in_use_is_a_clear_error(store: Any) -> None:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.server.otlp_grpc import OtlpGrpcServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        app = create_app(Settings(otlp_grpc_port=port), store=store, otlp_grpc=True)
        receiver = app.state.otlp_grpc
        assert isinstance(receiver, OtlpGrpcServer)
        asyncio.run(receiver.start())  # logged; the rest of the server still serves
        assert receiver.port == 0 and receiver.error and "PODIUM_OTLP_GRPC_PORT" in receiver.error
        strict = OtlpGrpcServer(app.state.podium, "127.0.0.1", port, strict=True)
        with pytest.raises(ConfigurationError, match="PODIUM_OTLP_GRPC_PORT"):
            asyncio.run(strict.start())
    # 0 disables it; the default app (tests, `podium gateway`) serves no gRPC.
    assert create_app(Settings(otlp_grpc_port=0), store=store, otlp_grpc=True).state.otlp_grpc is None
    assert create_app(Settings(), store=store).state.otlp_grpc is None


@pytest.mark.slow
def test_podium_up_serves_otlp_grpc(podium_home: Path) -> None:
    """`podium up` prints the gRPC address and takes a gRPC export with the default project's key."""
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PODIUM_HOME": str(podium_home), "PODIUM_OTLP_GRPC_PORT": str(grpc_port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "podium.cli", "up", "--port", str(http_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "podium up did not start"
            time.sleep(0.1)
        secret = next(
            line.split("=", 1)[1]
            for line in (podium_home / "default-keys.env").read_text().splitlines()
            if line.startswith("export PODIUM_SECRET_KEY=")
        )
        provider = TracerProvider()
        exporter = OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True, headers=(("authorization", f"Bearer {secret}"),)
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("t").start_as_current_span("over grpc") as span:
            pass
        provider.shutdown()
        trace_id = format(span.get_span_context().trace_id, "032x")
        r = httpx.get(f"{url}/api/v1/traces/{trace_id}", headers={"authorization": f"Bearer {secret}"})
        assert r.status_code == 200 and r.json()["name"] == "over grpc", r.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"OTLP/gRPC  127.0.0.1:{grpc_port}" in out, out


@pytest.mark.parametrize("size", [91, 123])  # '[' and '{': the first length byte after 0x0a
def test_protobuf_that_starts_like_json_is_decoded(size: int) -> None:
    from podium.server.otlp import decode_traces

    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.start_time_unix_nano = b"\x0c" * 16, b"\x0d" * 8, 10**18
    while len(rs.SerializeToString()) < size:
        span.name += "x"
    body = request.SerializeToString()
    assert body[:2] == bytes([0x0A, size])
    spans, errors = decode_traces(body, content_type="application/x-protobuf")
    assert errors == [] and spans[0]["name"] == span.name
