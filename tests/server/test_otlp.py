"""OTLP/HTTP trace bodies (protobuf and JSON) from the real OpenTelemetry SDK -> Podium spans."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id

from podium.core.pricing import PriceTable
from podium.core.records import SpanIn
from podium.errors import BadRequest, UnsupportedMediaType
from podium.server.convert import BatchBuilder
from podium.server.otlp import decode_into, decode_traces, encode_response

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "service.version": "1.4.2", "deployment.environment.name": "prod"}
        )
    )
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp, exporter
    tp.shutdown()


def make_spans(tp: TracerProvider, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """A small agent trace: root chain, an LLM call (gen_ai), a tool call that fails."""
    tracer = tp.get_tracer("my.app", "0.3.0")
    with tracer.start_as_current_span(
        "agent run",
        kind=SpanKind.SERVER,
        attributes={
            "openinference.span.kind": "AGENT",
            "input.value": '{"task": "weather"}',
            "session.id": "s-1",
        },
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.stop_sequences": ["\n"],
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 4,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                ),
                "user.id": "u-9",
                "http.payload": b"\x00\xff",
                "langfuse.trace.tags": ["beta", "eu"],
            },
        ) as llm:
            llm.add_event(
                "gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": '{"content": "hello"}'}
            )
        with tracer.start_as_current_span(
            "execute_tool get_weather", attributes={"gen_ai.operation.name": "execute_tool"}
        ) as tool:
            tool.record_exception(TimeoutError("upstream timed out"))
            tool.set_status(Status(StatusCode.ERROR))
    return list(exporter.get_finished_spans())


def to_protobuf(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def by_name(decoded: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in decoded}


def hex_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the spec defines it: hex ids, integer enums."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64decode(link[key]).hex()
    return json.dumps(doc).encode()


# --- protobuf ----------------------------------------------------------------------------------


def test_protobuf_from_the_sdk(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    sdk_spans = make_spans(*provider)
    spans, errors = decode_traces(to_protobuf(sdk_spans), content_type=PROTOBUF)
    assert errors == []
    assert len(spans) == 3
    for d in spans:
        SpanIn.model_validate(d)

    sdk = {s.name: s for s in sdk_spans}
    got = by_name(spans)
    for name, s in sdk.items():
        assert got[name]["trace_id"] == format_trace_id(s.context.trace_id)
        assert got[name]["id"] == format_span_id(s.context.span_id)
        assert got[name]["parent_id"] == (format_span_id(s.parent.span_id) if s.parent else None)
        start = SpanIn.model_validate(got[name]).start_time
        assert start == datetime.fromtimestamp(s.start_time // 10**9, UTC) + timedelta(
            microseconds=s.start_time % 10**9 // 1000
        )

    root = got["agent run"]
    assert root["kind"] == "agent"
    assert root["input"] == {"task": "weather"}
    assert root["session_id"] == "s-1"
    assert root["attributes"] == {"otel.span_kind": "SERVER"}
    assert root["metadata"]["resource"]["service.name"] == "checkout"
    assert root["metadata"]["scope"] == "my.app"
    assert root["metadata"]["scope_version"] == "0.3.0"
    assert (root["release"], root["environment"]) == ("1.4.2", "prod")

    llm = got["chat gpt-4o"]
    assert llm["kind"] == "generation"
    assert (llm["model"], llm["provider"]) == ("gpt-4o", "openai")
    assert llm["model_parameters"] == {"temperature": 0.2, "stop_sequences": ["\n"]}
    assert llm["usage"] == {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}
    assert llm["input"] == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert llm["output"] == [{"role": "assistant", "content": "hello", "index": 0, "finish_reason": "stop"}]
    assert llm["user_id"] == "u-9"
    assert llm["tags"] == ["beta", "eu"]
    assert llm["attributes"] == {
        "gen_ai.operation.name": "chat",
        "http.payload": base64.b64encode(b"\x00\xff").decode(),
        "otel.span_kind": "CLIENT",
    }

    tool = got["execute_tool get_weather"]
    assert tool["kind"] == "tool"
    assert tool["status"] == "error"
    assert tool["status_message"] == "TimeoutError: upstream timed out"
    assert tool["attributes"]["otel.events"][0]["name"] == "exception"


def test_empty_protobuf_request_is_fine() -> None:
    assert decode_traces(b"", content_type=PROTOBUF) == ([], [])
    assert decode_traces(ExportTraceServiceRequest().SerializeToString(), content_type=PROTOBUF) == ([], [])


def test_protobuf_bad_spans_are_reported_one_by_one(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    request = encode_spans(make_spans(*provider))
    spans_pb = request.resource_spans[0].scope_spans[0].spans
    spans_pb[0].trace_id = b"\x00" * 16  # all-zero trace id
    spans_pb[1].span_id = b""  # missing span id
    bad_times = PbSpan()
    bad_times.CopyFrom(spans_pb[2])
    bad_times.span_id = bytes.fromhex("00000000000000aa")
    bad_times.name = "backwards"
    bad_times.end_time_unix_nano = bad_times.start_time_unix_nano - 1_000_000_000
    spans_pb.append(bad_times)

    spans, errors = decode_traces(request.SerializeToString(), content_type=PROTOBUF)
    assert len(spans) == 1 and len(errors) == 3
    assert "resourceSpans[0].scopeSpans[0].spans[0]" in errors[0]
    assert "trace_id is missing or all zeros" in errors[0]
    assert "span_id is missing or all zeros" in errors[1]
    assert "name='backwards'" in errors[2] and "end_time" in errors[2]

    # decode_into (what the routes run) reads the message straight into the builder: the same
    # spans kept, the same messages, in the same order
    builder = BatchBuilder("p1", PriceTable.default)
    assert decode_into(request.SerializeToString(), PROTOBUF, builder) == errors
    assert [(r["trace_id"], r["id"]) for r in builder.batch.spans] == [
        (s["trace_id"], s["id"]) for s in spans
    ]


def test_decode_into_matches_decode_traces(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    """The protobuf fast path (no pending list) and the OTLP/JSON path build the rows that
    validating decode_traces' dicts builds, events and links included."""
    request = encode_spans(make_spans(*provider))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(name="exception", time_unix_nano=span.start_time_unix_nano + 1)
    event.attributes.add(key="exception.type").value.string_value = "ValueError"
    event.attributes.add(key="n").value.double_value = float("nan")
    link = span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    link.attributes.add(key="why").value.string_value = "retry"
    for body, ctype in (
        (request.SerializeToString(), PROTOBUF),
        (json.dumps(json_format.MessageToDict(request)).encode(), JSON),
    ):
        dicts, errors = decode_traces(body, content_type=ctype)
        assert not errors and dicts
        expected = BatchBuilder("p1", PriceTable.default)
        for d in dicts:
            expected.add_span(SpanIn.model_validate(d))
        builder = BatchBuilder("p1", PriceTable.default)
        assert decode_into(body, ctype, builder) == []
        assert builder.batch.spans == expected.batch.spans


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not a protobuf at all", "not a valid OTLP ExportTraceServiceRequest protobuf"),
        (b"\x0a\xff\xff\xff\xff\x0f", "not a valid OTLP ExportTraceServiceRequest protobuf"),  # truncated
        (b'{"resourceSpans": []}', "looks like JSON: send it with Content-Type application/json"),
        (gzip.compress(b"\x0a\x00", mtime=0), "looks gzip-compressed: send it with Content-Encoding: gzip"),
    ],
)
def test_malformed_protobuf(body: bytes, needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_traces(body, content_type=PROTOBUF)
    assert needle in info.value.message
    assert info.value.status_code == 400


def test_protobuf_content_type_variants(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    body = to_protobuf(make_spans(*provider))
    a, _ = decode_traces(body, content_type="application/x-protobuf")
    b, _ = decode_traces(body, content_type="application/protobuf")
    c, _ = decode_traces(body, content_type="Application/X-Protobuf; charset=binary")
    assert a == b == c and len(a) == 3


def test_unsupported_content_type() -> None:
    with pytest.raises(UnsupportedMediaType, match="send application/x-protobuf or application/json"):
        decode_traces(b"{}", content_type="text/plain")


# --- OTLP/JSON ---------------------------------------------------------------------------------


def test_json_hex_ids_and_base64_ids_decode_alike(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    sdk_spans = make_spans(*provider)
    request = encode_spans(sdk_spans)
    from_pb, _ = decode_traces(request.SerializeToString(), content_type=PROTOBUF)

    spec_json = hex_json(request)  # hex ids, as the OTLP spec says
    assert format_trace_id(sdk_spans[0].context.trace_id).encode() in spec_json
    from_hex, errors_hex = decode_traces(spec_json, content_type=JSON)

    proto_json = json_format.MessageToJson(request).encode()  # protobuf's mapping: base64 ids, enum names
    assert format_trace_id(sdk_spans[0].context.trace_id).encode() not in proto_json
    from_b64, errors_b64 = decode_traces(proto_json, content_type="application/json; charset=utf-8")

    assert errors_hex == errors_b64 == []
    assert from_hex == from_b64 == from_pb
    ids = {(d["trace_id"], d["id"]) for d in from_hex}
    assert ids == {
        (format_trace_id(s.context.trace_id), format_span_id(s.context.span_id)) for s in sdk_spans
    }


def test_json_snake_case_keys(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    request = encode_spans(make_spans(*provider))
    from_pb, _ = decode_traces(request.SerializeToString(), content_type=PROTOBUF)
    snake = json_format.MessageToJson(request, preserving_proto_field_name=True).encode()
    assert b'"resource_spans"' in snake
    from_snake, errors = decode_traces(snake, content_type=JSON)
    assert errors == []
    assert from_snake == from_pb


def test_hand_written_otlp_json() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hand"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "",
                                "name": "llm",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000001500000000,
                                "attributes": [
                                    {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
                                    {"key": "llm.model_name", "value": {"stringValue": "llama3"}},
                                    {"key": "llm.token_count.prompt", "value": {"intValue": "21"}},
                                    {"key": "llm.token_count.completion", "value": {"intValue": 5}},
                                    {"key": "ratio", "value": {"doubleValue": 0.25}},
                                    {"key": "not_a_number", "value": {"doubleValue": "NaN"}},
                                    {"key": "ok", "value": {"boolValue": True}},
                                    {"key": "blob", "value": {"bytesValue": "AAE="}},
                                    {
                                        "key": "list",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"intValue": "1"}, {"stringValue": "b"}]
                                            }
                                        },
                                    },
                                    {
                                        "key": "map",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [{"key": "k", "value": {"boolValue": False}}]
                                            }
                                        },
                                    },
                                    {"key": "empty", "value": {}},
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": "1700000001000000000",
                                        "name": "exception",
                                        "attributes": [
                                            {"key": "exception.type", "value": {"stringValue": "RateLimit"}},
                                            {
                                                "key": "exception.message",
                                                "value": {"stringValue": "slow down"},
                                            },
                                        ],
                                    }
                                ],
                                "status": {"code": "STATUS_CODE_ERROR"},
                                "unknownField": "ignored",
                            }
                        ],
                    }
                ],
            }
        ]
    }
    spans, errors = decode_traces(json.dumps(body).encode(), content_type=JSON)
    assert errors == []
    (d,) = spans
    assert d["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert d["id"] == "eee19b7ec3c1b174"
    assert d["parent_id"] is None
    assert d["kind"] == "generation"
    assert d["model"] == "llama3"
    assert d["usage"] == {"input_tokens": 21, "output_tokens": 5, "total_tokens": 26}
    assert d["status"] == "error"
    assert d["status_message"] == "RateLimit: slow down"
    assert d["start_time"] == "2023-11-14T22:13:20.000000Z"
    assert d["end_time"] == "2023-11-14T22:13:21.500000Z"
    assert d["metadata"] == {"resource": {"service.name": "hand"}, "scope": "manual"}
    attrs = d["attributes"]
    assert attrs["ratio"] == 0.25
    assert attrs["not_a_number"] == "NaN"
    assert attrs["ok"] is True
    assert attrs["blob"] == "AAE="
    assert attrs["list"] == [1, "b"]
    assert attrs["map"] == {"k": False}
    assert attrs["empty"] is None
    assert attrs["otel.span_kind"] == "CLIENT"
    SpanIn.model_validate(d)


def test_json_bad_spans_are_reported_one_by_one() -> None:
    good = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "good"}
    good["startTimeUnixNano"] = "1700000000000000000"
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            good,
                            {**good, "spanId": "zzzz", "name": "bad id"},
                            {**good, "spanId": "0000000000000000", "name": "zero id"},
                            {
                                **good,
                                "spanId": "00f067aa0ba902b7",
                                "startTimeUnixNano": "soon",
                                "name": "bad time",
                            },
                            {
                                **good,
                                "spanId": "00f067aa0ba902b8",
                                "startTimeUnixNano": None,
                                "name": "no time",
                            },
                            "not an object",
                        ]
                    }
                ]
            }
        ]
    }
    spans, errors = decode_traces(json.dumps(body).encode(), content_type=JSON)
    assert [d["name"] for d in spans] == ["good"]
    assert len(errors) == 5
    assert "spans[1]" in errors[0] and "neither 16 hex characters nor base64 of 8 bytes" in errors[0]
    assert "spans[2]" in errors[1] and "span_id is missing or all zeros" in errors[1]
    assert "spans[3]" in errors[2] and "startTimeUnixNano 'soon' is not an integer" in errors[2]
    assert "spans[4]" in errors[3] and "startTimeUnixNano is missing" in errors[3]
    assert "spans[5]" in errors[4] and "must be a JSON object" in errors[4]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b"\xff\xfe", "body is not valid JSON"),
        (b"[1, 2]", 'an OTLP/JSON trace export is a JSON object {"resourceSpans": [...]}'),
        (b'{"batch": []}', "the JSON object has no resourceSpans"),
        (b'{"resourceSpans": {}}', "resourceSpans must be a JSON array"),
        (b'{"resourceSpans": [7]}', "resourceSpans[0] must be a JSON object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}',
            "scopeSpans[0].spans must be a JSON array",
        ),
        (gzip.compress(b"{}", mtime=0), "looks gzip-compressed"),
    ],
)
def test_malformed_json(body: bytes, needle: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_traces(body, content_type=JSON)
    assert needle in info.value.message


def test_empty_json_request_is_fine() -> None:
    assert decode_traces(b"{}", content_type=JSON) == ([], [])
    assert decode_traces(b'{"resourceSpans": []}', content_type=JSON) == ([], [])


# --- response ----------------------------------------------------------------------------------


def test_encode_response_protobuf_round_trip() -> None:
    empty = ExportTraceServiceResponse()
    empty.ParseFromString(encode_response(rejected_spans=0, error_message="", json=False))
    assert not empty.HasField("partial_success")

    partial = ExportTraceServiceResponse()
    partial.ParseFromString(encode_response(rejected_spans=3, error_message="span x: bad id", json=False))
    assert partial.HasField("partial_success")
    assert partial.partial_success.rejected_spans == 3
    assert partial.partial_success.error_message == "span x: bad id"


def test_encode_response_json_round_trip() -> None:
    assert json.loads(encode_response(rejected_spans=0, error_message="", json=True)) == {}

    raw = encode_response(rejected_spans=2, error_message="two bad spans", json=True)
    doc = json.loads(raw)
    assert doc == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "two bad spans"}}
    parsed = json_format.Parse(raw, ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 2
    assert parsed.partial_success.error_message == "two bad spans"


def test_decode_then_respond(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    request = encode_spans(make_spans(*provider))
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b""
    spans, errors = decode_traces(request.SerializeToString(), content_type=PROTOBUF)
    response = ExportTraceServiceResponse()
    response.ParseFromString(
        encode_response(rejected_spans=len(errors), error_message="; ".join(errors), json=False)
    )
    assert len(spans) == 2
    assert response.partial_success.rejected_spans == 1
    assert "span_id is missing" in response.partial_success.error_message
