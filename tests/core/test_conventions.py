"""OTel span -> SpanIn mapping: GenAI semconv (current and deprecated), OpenInference, Langfuse."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from podium.core.conventions import OtelSpanError, nanos_to_iso, span_from_otel
from podium.core.records import SpanIn

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
PARENT = "00f067aa0ba902b7"
START = 1_700_000_000_123_456_789
END = 1_700_000_002_000_000_000


def convert(
    attributes: dict[str, Any] | None = None,
    *,
    events: list[dict[str, Any]] | None = None,
    resource: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """span_from_otel with defaults; every result must validate as SpanIn."""
    kwargs: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "parent_span_id": PARENT,
        "name": "op",
        "kind": 1,
        "start_time_unix_nano": START,
        "end_time_unix_nano": END,
        "status_code": 0,
        "status_message": None,
        "attributes": attributes or {},
        "events": events or [],
        "resource_attributes": resource or {},
        "scope_name": None,
    }
    kwargs.update(overrides)
    out = span_from_otel(**kwargs)
    SpanIn.model_validate(out)
    json.dumps(out, allow_nan=False)  # JSON-safe all the way down
    return out


# --- basics ------------------------------------------------------------------------------------


def test_plain_span_fields() -> None:
    out = convert({"http.method": "GET"})
    assert out["id"] == SPAN
    assert out["trace_id"] == TRACE
    assert out["parent_id"] == PARENT
    assert out["name"] == "op"
    assert out["kind"] == "span"
    assert out["status"] == "unset"
    assert out["start_time"] == "2023-11-14T22:13:20.123456Z"
    assert out["end_time"] == "2023-11-14T22:13:22.000000Z"
    assert out["attributes"] == {"http.method": "GET"}
    assert "metadata" not in out
    span = SpanIn.model_validate(out)
    assert span.start_time.microsecond == 123456
    assert span.start_time.tzinfo is not None


def test_nanos_to_iso() -> None:
    assert nanos_to_iso(0) == "1970-01-01T00:00:00.000000Z"
    assert nanos_to_iso(1_500_000_001) == "1970-01-01T00:00:01.500000Z"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"trace_id": TRACE.upper(), "span_id": SPAN.upper()}, (TRACE, SPAN, PARENT)),
        ({"parent_span_id": "0000000000000000"}, (TRACE, SPAN, None)),
        ({"parent_span_id": ""}, (TRACE, SPAN, None)),
        ({"parent_span_id": None}, (TRACE, SPAN, None)),
        ({"trace_id": bytes.fromhex(TRACE), "span_id": bytes.fromhex(SPAN)}, (TRACE, SPAN, PARENT)),
        ({"parent_span_id": SPAN}, (TRACE, SPAN, None)),  # a span is never its own parent
    ],
)
def test_ids(overrides: dict[str, Any], expected: tuple[str, str, str | None]) -> None:
    out = convert(**overrides)
    assert (out["trace_id"], out["id"], out["parent_id"]) == expected


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"trace_id": "0" * 32}, "trace_id is missing or all zeros"),
        ({"trace_id": ""}, "trace_id is missing"),
        ({"span_id": "0" * 16}, "span_id is missing or all zeros"),
        ({"span_id": None}, "span_id is missing"),
        ({"span_id": "not-hex!"}, "is not a hex id"),
        ({"start_time_unix_nano": 0}, "start_time_unix_nano is missing"),
    ],
)
def test_unusable_spans_are_rejected(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(OtelSpanError, match=needle):
        convert(**overrides)


def test_end_time_zero_is_open_and_name_is_trimmed() -> None:
    out = convert(end_time_unix_nano=0, name="x" * 1500)
    assert "end_time" not in out
    assert len(out["name"]) == 1000


def test_inputs_are_not_modified() -> None:
    attrs = {"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1, "user.id": "u"}
    resource = {"service.name": "svc"}
    events = [{"name": "exception", "time_unix_nano": START, "attributes": {"exception.type": "E"}}]
    before = copy.deepcopy((attrs, resource, events))
    convert(attrs, resource=resource, events=events)
    assert (attrs, resource, events) == before


# --- kind --------------------------------------------------------------------------------------

OPENINFERENCE_KINDS = {
    "LLM": "generation",
    "CHAIN": "chain",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "AGENT": "agent",
    "RERANKER": "reranker",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "UNKNOWN": "span",
}
GENAI_OPERATIONS = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "completion": "generation",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "something_else": "span",
}
LANGFUSE_TYPES = {
    "generation": "generation",
    "span": "span",
    "event": "event",
    "tool": "tool",
    "retriever": "retrieval",
    "embedding": "embedding",
    "agent": "agent",
    "chain": "chain",
    "evaluator": "evaluator",
    "guardrail": "guardrail",
}


@pytest.mark.parametrize(("value", "kind"), OPENINFERENCE_KINDS.items())
def test_kind_openinference(value: str, kind: str) -> None:
    out = convert({"openinference.span.kind": value})
    assert out["kind"] == kind
    # a recognised kind is consumed; an unknown one stays for the record
    assert ("openinference.span.kind" in out.get("attributes", {})) == (kind == "span")


@pytest.mark.parametrize(("value", "kind"), GENAI_OPERATIONS.items())
def test_kind_genai_operation(value: str, kind: str) -> None:
    out = convert({"gen_ai.operation.name": value})
    assert out["kind"] == kind
    assert out["attributes"]["gen_ai.operation.name"] == value  # kept: it says chat vs completion


@pytest.mark.parametrize(("value", "kind"), LANGFUSE_TYPES.items())
def test_kind_langfuse(value: str, kind: str) -> None:
    out = convert({"langfuse.observation.type": value})
    assert out["kind"] == kind
    assert "attributes" not in out


@pytest.mark.parametrize(
    ("attrs", "kind"),
    [
        (
            {
                "langfuse.observation.type": "tool",
                "openinference.span.kind": "LLM",
                "gen_ai.operation.name": "chat",
            },
            "tool",
        ),
        ({"openinference.span.kind": "RETRIEVER", "gen_ai.operation.name": "chat"}, "retrieval"),
        ({"langfuse.observation.type": "bogus", "openinference.span.kind": "AGENT"}, "agent"),
        ({"openinference.span.kind": "UNKNOWN", "gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 3}, "generation"),
        ({"llm.model_name": "gpt-4o", "llm.token_count.total": 3}, "generation"),
        ({"gen_ai.request.model": "gpt-4o"}, "span"),  # a model alone is not enough
        ({"openinference.span.kind": "CHAIN", "llm.model_name": "m", "llm.token_count.prompt": 1}, "chain"),
        (
            {
                "langfuse.observation.type": "span",
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 1,
            },
            "span",
        ),
    ],
)
def test_kind_precedence(attrs: dict[str, Any], kind: str) -> None:
    assert convert(attrs)["kind"] == kind


# --- model, provider, parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "model", "provider", "left"),
    [
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}, "gpt-4o", "openai", {}),
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.system": "openai"}, "gpt-4o", "openai", {}),
        (
            {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"},
            "gpt-4o-2024-08-06",
            None,
            {"gen_ai.request.model": "gpt-4o"},  # the differing request model is kept
        ),
        (
            {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o", "llm.model_name": "gpt-4o"},
            "gpt-4o",
            None,
            {},
        ),
        ({"llm.model_name": "claude-3", "llm.provider": "anthropic"}, "claude-3", "anthropic", {}),
        ({"llm.model_name": "claude-3", "llm.system": "anthropic"}, "claude-3", "anthropic", {}),
        (
            {"langfuse.observation.model.name": "mistral", "gen_ai.request.model": "mistral"},
            "mistral",
            None,
            {},
        ),
        (
            {"gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "aws.bedrock", "llm.provider": "aws"},
            None,
            "aws.bedrock",
            {"llm.provider": "aws"},
        ),
    ],
)
def test_model_and_provider(
    attrs: dict[str, Any], model: str | None, provider: str | None, left: dict[str, Any]
) -> None:
    out = convert(attrs)
    assert out.get("model") == model
    assert out.get("provider") == provider
    assert out.get("attributes", {}) == left


def test_model_parameters_from_all_conventions() -> None:
    out = convert(
        {
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 100,
            "gen_ai.request.top_p": 0.9,
            "gen_ai.request.top_k": 40,
            "gen_ai.request.frequency_penalty": 0.1,
            "gen_ai.request.presence_penalty": 0.3,
            "gen_ai.request.stop_sequences": ["\n\n"],
            "gen_ai.request.seed": 7,
            "gen_ai.request.choice.count": 2,
            "llm.invocation_parameters": '{"temperature": 0.5, "response_format": {"type": "json_object"}}',
            "langfuse.observation.model.parameters": '{"max_tokens": "256"}',
        }
    )
    assert out["model_parameters"] == {
        "temperature": 0.5,  # OpenInference overrides gen_ai
        "max_tokens": "256",  # Langfuse overrides both
        "top_p": 0.9,
        "top_k": 40,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.3,
        "stop_sequences": ["\n\n"],
        "seed": 7,
        "choice_count": 2,
        "response_format": {"type": "json_object"},
    }
    assert "attributes" not in out


def test_unparseable_invocation_parameters_stay_in_attributes() -> None:
    out = convert({"llm.invocation_parameters": "temperature=0.3"})
    assert "model_parameters" not in out
    assert out["attributes"] == {"llm.invocation_parameters": "temperature=0.3"}


# --- usage and cost ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "usage"),
    [
        (
            {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5},
            {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        ),
        (
            {
                "gen_ai.usage.prompt_tokens": 10,
                "gen_ai.usage.completion_tokens": 5,
                "gen_ai.usage.total_tokens": 16,
            },
            {"input_tokens": 10, "output_tokens": 5, "total_tokens": 16},
        ),
        (
            {"llm.token_count.prompt": 7, "llm.token_count.completion": 3, "llm.token_count.total": 10},
            {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
        ),
        ({"gen_ai.usage.input_tokens": "12"}, {"input_tokens": 12, "total_tokens": 12}),
        (
            {"langfuse.observation.usage_details": '{"input": 4, "output": 6, "cache_read_input_tokens": 2}'},
            {
                "input_tokens": 4,
                "output_tokens": 6,
                "total_tokens": 10,
                "details": {"cache_read_input_tokens": 2},
            },
        ),
        (
            {"langfuse.observation.usage_details": {"input": 4, "total": 20}},  # already a kvlist
            {"input_tokens": 4, "total_tokens": 20},
        ),
        (
            {
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 50,
                "gen_ai.usage.cache_read.input_tokens": 30,
                "gen_ai.usage.cache_creation.input_tokens": 10,
            },
            {
                "input_tokens": 100,
                "output_tokens": 50,
                "total_tokens": 150,
                "details": {"cached_tokens": 30, "cache_creation_tokens": 10},
            },
        ),
        (
            {
                "llm.token_count.prompt": 100,
                "llm.token_count.completion": 50,
                "llm.token_count.prompt_details.cache_read": 30,
                "llm.token_count.prompt_details.cache_write": 5,
                "llm.token_count.prompt_details.audio": 4,
                "llm.token_count.completion_details.reasoning": 20,
                "llm.token_count.completion_details.audio": 3,
            },
            {
                "input_tokens": 100,
                "output_tokens": 50,
                "total_tokens": 150,
                "details": {
                    "cached_tokens": 30,
                    "cache_creation_tokens": 5,
                    "input_audio_tokens": 4,
                    "reasoning_tokens": 20,
                    "output_audio_tokens": 3,
                },
            },
        ),
    ],
)
def test_usage(attrs: dict[str, Any], usage: dict[str, Any]) -> None:
    out = convert(attrs)
    assert out["usage"] == usage
    assert "attributes" not in out


def test_usage_precedence_and_conflicts() -> None:
    out = convert(
        {
            "langfuse.observation.usage_details": '{"input": 5}',
            "gen_ai.usage.input_tokens": 5,  # same value: consumed
            "llm.token_count.prompt": 9,  # a different value: kept for the record
            "gen_ai.usage.output_tokens": 2,
        }
    )
    assert out["usage"] == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    assert out["attributes"] == {"llm.token_count.prompt": 9}


def test_bad_token_counts_stay_in_attributes() -> None:
    out = convert({"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": -1})
    assert "usage" not in out
    assert out["attributes"] == {"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": -1}


@pytest.mark.parametrize(
    ("attrs", "cost", "left"),
    [
        (
            {"langfuse.observation.cost_details": '{"input": 0.001, "output": 0.002, "total": 0.003}'},
            {"input": 0.001, "output": 0.002, "total": 0.003},
            {},
        ),
        (
            {"llm.cost.prompt": 0.01, "llm.cost.completion": 0.02, "llm.cost.total": 0.03},
            {"input": 0.01, "output": 0.02, "total": 0.03},
            {},
        ),
        ({"llm.cost.total": "0.5"}, {"total": 0.5}, {}),
        (
            {"langfuse.observation.cost_details": '{"total": 1.0}', "llm.cost.total": 2.0},
            {"total": 1.0},
            {"llm.cost.total": 2.0},
        ),
    ],
)
def test_cost(attrs: dict[str, Any], cost: dict[str, float], left: dict[str, Any]) -> None:
    out = convert(attrs)
    assert out["cost"] == cost
    assert out.get("attributes", {}) == left


# --- input / output ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected_input", "expected_output", "left"),
    [
        # Langfuse: JSON-serialised values are parsed, plain strings stay strings
        (
            {"langfuse.observation.input": '{"question": "why?"}', "langfuse.observation.output": "because"},
            {"question": "why?"},
            "because",
            {},
        ),
        # OpenInference input.value / output.value with mime types
        (
            {
                "input.value": '{"query": "x"}',
                "input.mime_type": "application/json",
                "output.value": '{"not": "parsed"}',
                "output.mime_type": "text/plain",
            },
            {"query": "x"},
            '{"not": "parsed"}',
            {},
        ),
        ({"input.value": '["a", "b"]', "output.value": "42"}, ["a", "b"], "42", {}),
        ({"input.value": "{broken json", "input.mime_type": "application/json"}, "{broken json", None, {}),
        # OpenInference flattened messages (with tool calls) win over input.value, which is kept
        (
            {
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "be brief",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "weather?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city": "Oslo"}',
                "input.value": '{"messages": []}',
            },
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather?"}],
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
                    ],
                }
            ],
            {"input.value": '{"messages": []}'},
        ),
        # 10+ messages keep their numeric order
        (
            {f"llm.input_messages.{i}.message.content": str(i) for i in range(12)},
            [{"content": str(i)} for i in range(12)],
            None,
            {},
        ),
        # GenAI semconv (current): JSON messages plus system instructions
        (
            {
                "gen_ai.system_instructions": '[{"type": "text", "content": "be brief"}]',
                "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
                "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "hello"}], '
                '"finish_reason": "stop"}]',
            },
            [
                {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
            ],
            [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}],
            {},
        ),
        (
            {"gen_ai.input.messages": '[{"role": "user", "parts": []}]'},
            [{"role": "user", "parts": []}],
            None,
            {},
        ),
        # GenAI deprecated: gen_ai.prompt / gen_ai.completion strings or JSON
        ({"gen_ai.prompt": "Say hi", "gen_ai.completion": "hi"}, "Say hi", "hi", {}),
        (
            {"gen_ai.prompt": '[{"role": "user", "content": "Say hi"}]'},
            [{"role": "user", "content": "Say hi"}],
            None,
            {},
        ),
        # GenAI deprecated: indexed gen_ai.prompt.N.* / gen_ai.completion.N.*
        (
            {
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "be brief",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "hi",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "hello",
                "gen_ai.completion.0.finish_reason": "stop",
            },
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            [{"role": "assistant", "content": "hello", "finish_reason": "stop"}],
            {},
        ),
        # tool spans
        (
            {"gen_ai.tool.call.arguments": '{"city": "Oslo"}', "gen_ai.tool.call.result": '{"temp": 3}'},
            {"city": "Oslo"},
            {"temp": 3},
            {},
        ),
        # OpenInference retriever documents
        (
            {
                "input.value": "what is podium?",
                "retrieval.documents.0.document.id": "d1",
                "retrieval.documents.0.document.content": "Podium is...",
                "retrieval.documents.0.document.score": 0.9,
                "retrieval.documents.1.document.id": "d2",
                "retrieval.documents.1.document.metadata": '{"source": "docs"}',
            },
            "what is podium?",
            [
                {"id": "d1", "content": "Podium is...", "score": 0.9},
                {"id": "d2", "metadata": {"source": "docs"}},
            ],
            {},
        ),
    ],
)
def test_input_output(
    attrs: dict[str, Any], expected_input: Any, expected_output: Any, left: dict[str, Any]
) -> None:
    out = convert(attrs)
    assert out.get("input") == expected_input
    assert out.get("output") == expected_output
    assert out.get("attributes", {}) == left


def test_input_precedence_langfuse_wins() -> None:
    out = convert(
        {
            "langfuse.observation.input": '"from langfuse"',
            "input.value": "from openinference",
            "gen_ai.prompt": "from gen_ai",
        }
    )
    assert out["input"] == "from langfuse"
    assert out["attributes"] == {"input.value": "from openinference", "gen_ai.prompt": "from gen_ai"}


def test_deprecated_message_events() -> None:
    events = [
        {"name": "gen_ai.system.message", "time_unix_nano": START, "attributes": {"content": "be brief"}},
        {
            "name": "gen_ai.user.message",
            "time_unix_nano": START,
            "attributes": {"gen_ai.system": "openai", "content": "weather?"},
        },
        {
            "name": "gen_ai.assistant.message",
            "time_unix_nano": START,
            "attributes": {"tool_calls": '[{"id": "c1", "type": "function"}]'},
        },
        {"name": "gen_ai.tool.message", "time_unix_nano": START, "attributes": {"content": "3C", "id": "c1"}},
        {
            "name": "gen_ai.choice",
            "time_unix_nano": END,
            "attributes": {"index": 0, "finish_reason": "stop", "message": '{"content": "It is 3C"}'},
        },
        {"name": "custom", "time_unix_nano": END, "attributes": {"k": "v"}},
    ]
    out = convert({"gen_ai.operation.name": "chat"}, events=events)
    assert out["kind"] == "generation"
    assert out["input"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "content": "3C", "id": "c1"},
    ]
    assert out["output"] == [
        {"content": "It is 3C", "role": "assistant", "index": 0, "finish_reason": "stop"}
    ]
    # events that were not turned into messages are kept
    assert out["attributes"]["otel.events"] == [
        {"name": "custom", "time": "2023-11-14T22:13:22.000000Z", "attributes": {"k": "v"}}
    ]


def test_message_events_are_kept_when_attributes_give_the_input() -> None:
    events = [{"name": "gen_ai.user.message", "time_unix_nano": START, "attributes": {"content": "hi"}}]
    out = convert({"gen_ai.prompt": "hi"}, events=events)
    assert out["input"] == "hi"
    assert [e["name"] for e in out["attributes"]["otel.events"]] == ["gen_ai.user.message"]


# --- trace-level hints, metadata, prompt -------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "resource", "expected"),
    [
        ({"langfuse.user.id": "u1", "user.id": "u2"}, {}, {"user_id": "u1"}),
        ({"user.id": "u2"}, {}, {"user_id": "u2"}),
        ({"enduser.id": "u3"}, {}, {"user_id": "u3"}),
        ({"user.id": 42}, {}, {"user_id": "42"}),
        ({"langfuse.session.id": "s1", "session.id": "s2"}, {}, {"session_id": "s1"}),
        ({"session.id": "s2"}, {}, {"session_id": "s2"}),
        ({"gen_ai.conversation.id": "conv"}, {}, {"session_id": "conv"}),
        ({"langfuse.release": "r1"}, {"service.version": "2.0"}, {"release": "r1"}),
        ({}, {"service.version": "2.0"}, {"release": "2.0"}),
        (
            {"langfuse.environment": "staging"},
            {"deployment.environment.name": "prod"},
            {"environment": "staging"},
        ),
        ({}, {"deployment.environment.name": "prod"}, {"environment": "prod"}),
        ({}, {"deployment.environment": "dev"}, {"environment": "dev"}),
        ({"deployment.environment": "qa"}, {}, {"environment": "qa"}),
        ({}, {"langfuse.environment": "x", "deployment.environment.name": "y"}, {"environment": "x"}),
        ({"langfuse.trace.name": "my-trace"}, {}, {"trace_name": "my-trace"}),
        ({"langfuse.observation.prompt.name": "greeting"}, {}, {"prompt_name": "greeting"}),
        ({"langfuse.observation.prompt.version": 3}, {}, {"prompt_version": 3}),
        ({"langfuse.observation.prompt.version": "4"}, {}, {"prompt_version": 4}),
    ],
)
def test_trace_hints_and_prompt(
    attrs: dict[str, Any], resource: dict[str, Any], expected: dict[str, Any]
) -> None:
    out = convert(attrs, resource=resource)
    for key, value in expected.items():
        assert out[key] == value
    # the winning value is consumed; a different value under a lower-precedence key is kept
    left = out.get("attributes", {})
    assert all(left.get(k) != v for k, v in attrs.items() if str(v) in expected.values())


def test_lower_precedence_values_that_differ_are_kept() -> None:
    out = convert(
        {"langfuse.user.id": "u1", "user.id": "u2", "session.id": "s", "gen_ai.conversation.id": "s"}
    )
    assert (out["user_id"], out["session_id"]) == ("u1", "s")
    assert out["attributes"] == {"user.id": "u2"}


def test_invalid_prompt_version_stays_in_attributes() -> None:
    out = convert({"langfuse.observation.prompt.version": 0})
    assert "prompt_version" not in out
    assert out["attributes"] == {"langfuse.observation.prompt.version": 0}


@pytest.mark.parametrize(
    ("attrs", "tags"),
    [
        ({"langfuse.trace.tags": ["a", "b"]}, ["a", "b"]),
        ({"langfuse.trace.tags": '["a", "b"]'}, ["a", "b"]),
        ({"tag.tags": ["x"], "langfuse.trace.tags": ["a", "x"]}, ["a", "x"]),
        ({"tag.tags": "solo"}, ["solo"]),
        ({"tag.tags": ["", "  ", "ok"]}, ["ok"]),
    ],
)
def test_tags(attrs: dict[str, Any], tags: list[str]) -> None:
    out = convert(attrs)
    assert out["tags"] == tags
    assert "attributes" not in out


def test_too_many_and_too_long_tags_are_clipped() -> None:
    out = convert({"langfuse.trace.tags": [f"t{i}" for i in range(150)] + ["y" * 300]})
    assert len(out["tags"]) == 100


def test_metadata_and_trace_metadata() -> None:
    out = convert(
        {
            "metadata": '{"from": "openinference", "n": 1}',
            "langfuse.observation.metadata.customer": "acme",
            "langfuse.observation.metadata.flags": '{"beta": true}',
            "langfuse.trace.metadata.team": "search",
            "langfuse.trace.metadata": '{"ticket": "T-1"}',
        },
        resource={"service.name": "svc", "host.name": "h1"},
        scope_name="openinference.instrumentation.openai",
        scope_version="0.1.0",
    )
    assert out["metadata"] == {
        "from": "openinference",
        "n": 1,
        "customer": "acme",
        "flags": {"beta": True},
        "resource": {"service.name": "svc", "host.name": "h1"},
        "scope": "openinference.instrumentation.openai",
        "scope_version": "0.1.0",
    }
    assert out["trace_metadata"] == {"team": "search", "ticket": "T-1"}
    assert "attributes" not in out  # resource attributes never bloat attributes


def test_non_object_metadata_stays_in_attributes() -> None:
    out = convert({"metadata": "just text"})
    assert out["attributes"] == {"metadata": "just text"}
    assert "metadata" not in out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00.250Z", "2024-05-01T12:00:00.250000Z"),
        ('"2024-05-01T12:00:00.250000+00:00"', "2024-05-01T12:00:00.250000Z"),  # Langfuse JSON-quotes it
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.000000Z"),
        (1_714_564_800_250_000_000, "2024-05-01T12:00:00.250000Z"),  # nanoseconds
        ("1714564800250000000", "2024-05-01T12:00:00.250000Z"),
        (1_714_564_800_250, "2024-05-01T12:00:00.250000Z"),  # milliseconds
        (1_714_564_800.25, "2024-05-01T12:00:00.250000Z"),  # seconds
    ],
)
def test_completion_start_time(value: Any, expected: str) -> None:
    out = convert(
        {"langfuse.observation.completion_start_time": value},
        start_time_unix_nano=1_714_564_799_000_000_000,
        end_time_unix_nano=1_714_564_801_000_000_000,
    )
    assert out["completion_start_time"] == expected
    assert "attributes" not in out


def test_unparseable_completion_start_time_stays_in_attributes() -> None:
    out = convert({"langfuse.observation.completion_start_time": "soon"})
    assert "completion_start_time" not in out
    assert out["attributes"] == {"langfuse.observation.completion_start_time": "soon"}


# --- status ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, "unset"),
        (1, "ok"),
        (2, "error"),
        ("STATUS_CODE_UNSET", "unset"),
        ("STATUS_CODE_OK", "ok"),
        ("STATUS_CODE_ERROR", "error"),
        ("ERROR", "error"),
        ("ok", "ok"),
        ("2", "error"),
        (7, "unset"),
        ("nonsense", "unset"),
    ],
)
def test_status_codes(code: int | str, status: str) -> None:
    assert convert(status_code=code)["status"] == status


def test_status_message_sources() -> None:
    exc = {
        "name": "exception",
        "time_unix_nano": END,
        "attributes": {
            "exception.type": "ValueError",
            "exception.message": "boom",
            "exception.stacktrace": "...",
        },
    }
    out = convert(status_code=2, events=[exc])
    assert out["status_message"] == "ValueError: boom"
    assert out["attributes"]["otel.events"][0]["attributes"]["exception.stacktrace"] == "..."

    out = convert(status_code=2, status_message="explicit", events=[exc])
    assert out["status_message"] == "explicit"

    out = convert({"langfuse.observation.status_message": "from langfuse"}, events=[exc])
    assert out["status_message"] == "from langfuse"
    assert out["status"] == "unset"


@pytest.mark.parametrize(("level", "status"), [("ERROR", "error"), ("WARNING", "ok"), ("DEFAULT", "ok")])
def test_langfuse_level(level: str, status: str) -> None:
    out = convert({"langfuse.observation.level": level}, status_code=1)
    assert out["status"] == status
    assert out["attributes"] == {"langfuse.observation.level": level}


def test_long_status_message_is_clipped() -> None:
    out = convert(status_code=2, status_message="x" * 20_000)
    assert len(out["status_message"]) == 10_000


# --- leftovers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (0, None),
        (1, None),
        (2, "SERVER"),
        (3, "CLIENT"),
        (4, "PRODUCER"),
        (5, "CONSUMER"),
        ("SPAN_KIND_CLIENT", "CLIENT"),
        ("SPAN_KIND_INTERNAL", None),
        ("server", "SERVER"),
    ],
)
def test_otel_span_kind_kept_when_meaningful(kind: int | str, expected: str | None) -> None:
    out = convert(kind=kind)
    assert out.get("attributes", {}).get("otel.span_kind") == expected


def test_leftover_attributes_are_json_safe() -> None:
    out = convert(
        {
            "http.status_code": 200,
            "ratio": 0.5,
            "nan": float("nan"),
            "inf": float("inf"),
            "raw": b"\x00\x01",
            "list": [1, "two", None],
            "nested": {"a": {"b": [b"x"]}},
            "flag": False,
        }
    )
    assert out["attributes"] == {
        "http.status_code": 200,
        "ratio": 0.5,
        "nan": "NaN",
        "inf": "Infinity",
        "raw": "AAE=",
        "list": [1, "two", None],
        "nested": {"a": {"b": ["eA=="]}},
        "flag": False,
    }


def test_links_are_kept() -> None:
    links = [{"trace_id": TRACE, "span_id": PARENT, "attributes": {"rel": "follows"}}]
    out = convert(links=links)
    assert out["attributes"]["otel.links"] == [
        {"trace_id": TRACE, "span_id": PARENT, "attributes": {"rel": "follows"}}
    ]


def test_a_full_openinference_llm_span() -> None:
    out = convert(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.invocation_parameters": '{"temperature": 0}',
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "2+2?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "4",
            "llm.token_count.prompt": 9,
            "llm.token_count.completion": 1,
            "llm.token_count.total": 10,
            "session.id": "sess",
            "user.id": "user",
            "tag.tags": ["math"],
            "metadata": '{"run": 1}',
            "llm.prompt_template.template": "{q}",
        },
        resource={"service.name": "calc"},
        scope_name="openinference.instrumentation.openai",
    )
    assert out["kind"] == "generation"
    assert out["model"] == "gpt-4o-mini"
    assert out["provider"] == "openai"
    assert out["model_parameters"] == {"temperature": 0}
    assert out["usage"] == {"input_tokens": 9, "output_tokens": 1, "total_tokens": 10}
    assert out["input"] == [{"role": "user", "content": "2+2?"}]
    assert out["output"] == [{"role": "assistant", "content": "4"}]
    assert (out["session_id"], out["user_id"], out["tags"]) == ("sess", "user", ["math"])
    assert out["metadata"] == {
        "run": 1,
        "resource": {"service.name": "calc"},
        "scope": "openinference.instrumentation.openai",
    }
    assert out["attributes"] == {"llm.prompt_template.template": "{q}"}


def test_a_full_langfuse_generation() -> None:
    out = convert(
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.model.parameters": '{"temperature": 0.7}',
            "langfuse.observation.input": '[{"role": "user", "content": "hi"}]',
            "langfuse.observation.output": '{"role": "assistant", "content": "hello"}',
            "langfuse.observation.usage_details": '{"input": 3, "output": 1}',
            "langfuse.observation.cost_details": '{"total": 0.0001}',
            "langfuse.observation.prompt.name": "greet",
            "langfuse.observation.prompt.version": 2,
            "langfuse.observation.completion_start_time": '"2023-11-14T22:13:21.000000Z"',
            "langfuse.trace.name": "chat",
            "langfuse.trace.tags": ["prod"],
            "langfuse.user.id": "u",
            "langfuse.session.id": "s",
            "langfuse.release": "v1",
            "langfuse.environment": "production",
        }
    )
    span = SpanIn.model_validate(out)
    assert span.kind == "generation"
    assert span.model == "gpt-4o"
    assert span.model_parameters == {"temperature": 0.7}
    assert span.input == [{"role": "user", "content": "hi"}]
    assert span.output == {"role": "assistant", "content": "hello"}
    assert span.usage is not None and span.usage.total_tokens == 4
    assert span.cost is not None and span.cost.total == 0.0001
    assert (span.prompt_name, span.prompt_version) == ("greet", 2)
    assert span.completion_start_time is not None and span.completion_start_time.second == 21
    assert (span.trace_name, span.tags, span.user_id, span.session_id) == ("chat", ["prod"], "u", "s")
    assert (span.release, span.environment) == ("v1", "production")
    assert span.attributes is None


# --- embeddings, OpenInference kinds, time to first token, GenAI log events -----------------------


def test_embedding_model_name_is_the_model_and_vectors_are_summarised() -> None:
    vec = [0.1 * i for i in range(384)]
    out = convert(
        {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "text-embedding-3-small",
            "embedding.embeddings.0.embedding.text": "hello",
            "embedding.embeddings.0.embedding.vector": vec,
            "embedding.embeddings.1.embedding.text": "world",
            "embedding.embeddings.1.embedding.vector": vec,
            "custom.scores": [0.5] * 100,
        }
    )
    assert out["kind"] == "embedding" and out["model"] == "text-embedding-3-small"
    assert out["input"] == ["hello", "world"]
    attrs = out["attributes"]
    assert attrs["embedding.embeddings"] == [
        {"vector": "<vector of 384 numbers omitted>"},
        {"vector": "<vector of 384 numbers omitted>"},
    ]
    assert attrs["custom.scores"] == "<vector of 100 numbers omitted>"
    assert len(json.dumps(out)) < 2000  # no floats stored


def test_embedding_vectors_in_output_are_summarised_and_short_lists_kept() -> None:
    body = {"data": [{"embedding": [0.25] * 1536, "index": 0}], "model": "m"}
    out = convert(
        {
            "openinference.span.kind": "EMBEDDING",
            "output.value": json.dumps(body),
            "output.mime_type": "application/json",
            "small": [1.5, 2.5],
            "ids": list(range(100)),  # integers only: not a vector
        }
    )
    assert out["output"] == {"data": [{"embedding": "<vector of 1536 numbers omitted>", "index": 0}], "model": "m"}
    assert out["attributes"]["small"] == [1.5, 2.5]
    assert out["attributes"]["ids"] == list(range(100))


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("LLM", "generation"),
        ("CHAIN", "chain"),
        ("TOOL", "tool"),
        ("RETRIEVER", "retrieval"),
        ("EMBEDDING", "embedding"),
        ("AGENT", "agent"),
        ("RERANKER", "reranker"),
        ("GUARDRAIL", "guardrail"),
        ("EVALUATOR", "evaluator"),
        ("PROMPT", "span"),
    ],
)
def test_every_openinference_kind_is_mapped(kind: str, expected: str) -> None:
    out = convert({"openinference.span.kind": kind})
    assert out["kind"] == expected
    if kind == "PROMPT":  # no Podium counterpart: the original kind is kept
        assert out["attributes"]["openinference.span.kind"] == "PROMPT"
    else:
        assert "openinference.span.kind" not in out.get("attributes", {})


@pytest.mark.parametrize(
    "event", ["First Token Stream Event", "llm.content.completion.chunk", "gen_ai.content.chunk", "llm.first_token"]
)
def test_first_token_event_sets_completion_start_time(event: str) -> None:
    first = START + 250_000_000
    events = [
        {"name": event, "time_unix_nano": first + 10_000_000, "attributes": {}},
        {"name": event, "time_unix_nano": first, "attributes": {}},
        {"name": "other", "time_unix_nano": first, "attributes": {"k": 1}},
    ]
    out = convert({"openinference.span.kind": "LLM"}, events=events)
    assert out["completion_start_time"] == nanos_to_iso(first)
    assert [e["name"] for e in out["attributes"]["otel.events"]] == ["other"]  # chunk events consumed


def test_first_token_from_ms_attribute_and_langfuse_wins() -> None:
    out = convert({"ai.response.msToFirstChunk": 120.5})
    assert out["completion_start_time"] == nanos_to_iso(START + 120_500_000)
    assert "ai.response.msToFirstChunk" not in out.get("attributes", {})
    lf = nanos_to_iso(START + 5_000_000)
    out = convert(
        {"langfuse.observation.completion_start_time": lf},
        events=[{"name": "First Token Stream Event", "time_unix_nano": START + 9_000_000, "attributes": {}}],
    )
    assert out["completion_start_time"] == lf


def test_genai_log_io_legacy_events() -> None:
    from podium.core.conventions import genai_log_io

    records = [
        {"name": "gen_ai.system.message", "body": {"content": "be brief"}, "attributes": {"gen_ai.system": "openai"}},
        {"name": "gen_ai.user.message", "body": {"content": "hi"}, "attributes": {"gen_ai.system": "openai"}},
        {"name": "gen_ai.tool.message", "body": {"content": "42", "id": "call_1"}, "attributes": {}},
        {
            "name": "gen_ai.choice",
            "body": {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}},
            "attributes": {"gen_ai.system": "openai"},
        },
        {"name": "app.log", "body": "ignored", "attributes": {}},
    ]
    inp, out = genai_log_io(records)
    assert inp == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "42", "id": "call_1"},
    ]
    assert out == [{"role": "assistant", "content": "hello", "index": 0, "finish_reason": "stop"}]
    assert genai_log_io([{"name": "x", "body": None, "attributes": {}}]) == (None, None)


def test_genai_log_io_operation_details_event() -> None:
    from podium.core.conventions import genai_log_io

    msgs = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    outs = [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}], "finish_reason": "stop"}]
    inp, out = genai_log_io(
        [
            {
                "name": "gen_ai.client.inference.operation.details",
                "body": None,
                "attributes": {
                    "gen_ai.input.messages": json.dumps(msgs),
                    "gen_ai.output.messages": outs,
                    "gen_ai.system_instructions": "be brief",
                },
            }
        ]
    )
    assert inp == [{"role": "system", "parts": [{"type": "text", "content": "be brief"}]}, *msgs]
    assert out == outs
