"""``span_record`` builds the ``SpanIn`` record without validating the mapper's own dict (issue 18
item 4): for every span it must give exactly what ``SpanIn.model_validate(span_from_otel(...))``
gives (same ``__dict__``, same types, same fields set), or raise exactly its ValidationError."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from podium.core import conventions as conv
from podium.core.records import MAX_JSON_DEPTH, MAX_TOKENS, CostIn, SpanIn, UsageIn

NS = 1_765_000_000_123_456_789
BASE: dict[str, Any] = {
    "trace_id": bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
    "span_id": bytes.fromhex("b7ad6b7169203331"),
    "parent_span_id": bytes.fromhex("00f067aa0ba902b7"),
    "name": "chat gpt-4o",
    "kind": 3,
    "start_time_unix_nano": NS,
    "end_time_unix_nano": NS + 1_500_000_000,
    "status_code": 1,
    "status_message": None,
}
RESOURCE = {"service.name": "svc", "service.version": "1.2.3", "deployment.environment.name": "prod", "user.id": "r"}


def _nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


def _both(attrs: dict[str, Any], resource: dict[str, Any] | None = None, **kw: Any) -> tuple[Any, Any]:
    """(record or ValidationError text) from span_record, and from SpanIn.model_validate of
    span_from_otel's dict (the reference)."""
    args = {**BASE, **kw}
    scope = conv.OtelScope(resource if resource is not None else RESOURCE, "app", "0.1")
    try:
        got: Any = conv.span_record(**args, attributes=attrs, scope=scope)
    except ValidationError as e:
        got = str(e)
    try:
        want: Any = SpanIn.model_validate(
            conv.span_from_otel(
                **args, attributes=attrs, resource_attributes=resource if resource is not None else RESOURCE,
                scope_name="app", scope_version="0.1",
            )
        )
    except ValidationError as e:
        want = str(e)
    return got, want


def _same(got: Any, want: Any) -> None:
    if isinstance(want, str):
        assert got == want  # the same ValidationError, word for word
        return
    assert isinstance(got, SpanIn)
    assert got.__dict__ == want.__dict__
    assert list(got.__dict__) == list(want.__dict__)  # pydantic's field order
    assert got.model_fields_set == want.model_fields_set
    for name, value in want.__dict__.items():
        assert type(getattr(got, name)) is type(value), name
    for sub in ("usage", "cost"):
        if getattr(want, sub) is not None:
            assert getattr(got, sub).model_fields_set == getattr(want, sub).model_fields_set
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pydantic serializer warnings (str where an enum belongs)
        assert got.model_dump() == want.model_dump()
        assert got.model_dump_json() == want.model_dump_json()


GENERATION = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 30,
    "gen_ai.usage.cache_read.input_tokens": 10,
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi ü"}]}]),
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]),
    "metadata": json.dumps({"tenant": "t7", "ratio": 0.25}),
    "session.id": "s-1",
    "langfuse.trace.tags": ["a", "b"],
}


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        GENERATION,
        {**GENERATION, "llm.cost.total": 0.5, "langfuse.observation.prompt.name": "p",
         "langfuse.observation.prompt.version": 3, "langfuse.trace.name": "t", "langfuse.trace.input": '{"q": 1}',
         "langfuse.observation.completion_start_time": "2025-12-06T05:46:41.5+01:00",
         "langfuse.trace.metadata.k": "v", "langfuse.observation.metadata": '{"m": [1, 2]}'},
        {"openinference.span.kind": "RETRIEVER", "input.value": '{"q": "rain"}', "input.mime_type": "application/json",
         "output.value": "[1, 2, 3]", "user.id": "u-1", "score": float("nan"), "blob": [1.5, float("inf")]},
        {"openinference.span.kind": "PROMPT", "ai.response.msToFirstChunk": 250, "nested": {"k": [1, {"z": 2.5}]}},
        {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3,
         "embedding.embeddings.0.embedding.text": "t", "embedding.embeddings.0.embedding.vector": [0.5] * 40},
        {"metadata": "{}", "x": b"\x00\xff".hex()},
        {"metadata": {}},  # a kvlist: the caller's dict, never the record's
    ],
)
def test_span_record_is_spanin_validation_of_span_from_otel(attrs: dict[str, Any]) -> None:
    before = json.dumps(attrs, default=repr)
    got, want = _both(attrs)
    _same(got, want)
    assert json.dumps(attrs, default=repr) == before  # inputs not modified
    assert isinstance(got, SpanIn) and got.start_time.tzinfo is UTC


@pytest.mark.parametrize(
    ("attrs", "kw", "needle"),
    [
        ({}, {"end_time_unix_nano": NS - 1000}, "is before start_time"),
        ({"gen_ai.usage.input_tokens": MAX_TOKENS + 1, "gen_ai.request.model": "m"}, {}, "usage.input_tokens"),
        ({"gen_ai.usage.cache_read.input_tokens": MAX_TOKENS + 1}, {}, "usage.details"),
        ({"langfuse.observation.usage_details": json.dumps({"input": 1, "x": MAX_TOKENS + 1})}, {}, "usage.details"),
        ({"llm.cost.total": 1e9}, {}, "cost.total"),
        ({"langfuse.observation.prompt.version": 2**31}, {}, "prompt_version"),
        ({"metadata": '{"bad\\ud800": 1}'}, {}, "unicode"),  # json.loads keeps the lone surrogate
        ({"langfuse.observation.model.parameters": '{"k\\udc00": 1}'}, {}, "unicode"),
        ({"k" * 1_000_001: 1}, {}, "at most 1000000 characters"),
        ({}, {"name": "n\ud800"}, "unicode"),
        ({}, {"status_message": "boom \udfff"}, "unicode"),
        ({"deep": _nested(MAX_JSON_DEPTH)}, {}, "nests deeper than"),
        ({"input.value": "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)}, {}, "nests deeper than"),
    ],
)
def test_what_the_mapper_cannot_guarantee_gets_spanins_own_error(
    attrs: dict[str, Any], kw: dict[str, Any], needle: str
) -> None:
    got, want = _both(attrs, **kw)
    assert isinstance(want, str) and needle in want
    _same(got, want)


def test_values_at_the_bounds_are_kept() -> None:
    attrs = {
        "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": MAX_TOKENS, "gen_ai.usage.output_tokens": 0,
        "llm.cost.total": 1e9 - 1, "langfuse.observation.prompt.version": 2**31 - 1,
        "metadata": '{"\\ud83d\\ude00": "ü"}',  # a surrogate pair is one valid character
        "input.value": "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH,
    }
    got, want = _both(attrs, end_time_unix_nano=NS)
    _same(got, want)
    assert got.usage.input_tokens == MAX_TOKENS and got.prompt_version == 2**31 - 1


def test_a_deep_resource_is_reported_for_every_span_of_its_scope() -> None:
    got, want = _both({}, resource={"deep": _nested(MAX_JSON_DEPTH - 1)})  # metadata.resource.deep: 1 too deep
    assert isinstance(want, str) and "nests deeper than" in want
    _same(got, want)
    got, want = _both({}, resource={"deep": _nested(MAX_JSON_DEPTH - 2)})
    _same(got, want)


@pytest.mark.parametrize(
    "span_attrs",
    [{}, {"user.id": "span-user"}, {"user.id": "  "}, {"session.id": 7}, {"service.version": "2.0"},
     {"langfuse.environment": "dev", "deployment.environment.name": "prod"}],
)
@pytest.mark.parametrize(
    "resource", [{}, RESOURCE, {"enduser.id": "e", "session.id": "", "deployment.environment": "stage"}]
)
def test_trace_hints_from_the_scope_equal_the_per_span_lookup(
    span_attrs: dict[str, Any], resource: dict[str, Any]
) -> None:
    got, want = _both(span_attrs, resource=resource)
    _same(got, want)


def test_construct_equals_validation() -> None:
    values = {"input_tokens": 3, "total_tokens": 3, "details": {"cached_tokens": 1}}
    made = conv._construct(UsageIn, conv._USAGE_TEMPLATE, dict(values))
    ref = UsageIn.model_validate(values)
    assert made == ref and made.__dict__ == ref.__dict__ and made.model_fields_set == ref.model_fields_set
    cost = conv._construct(CostIn, conv._COST_TEMPLATE, {"total": 0.5})
    assert cost == CostIn(total=0.5) and list(cost.__dict__) == list(CostIn(total=0.5).__dict__)


@pytest.mark.parametrize(
    "nanos",
    [1, 999, 1000, NS, 3_999_999_999_999_999_999, 4_000_000_000_000_000_000, 253_402_300_799_999_999_999],
)
def test_nanos_to_datetime_is_what_spanin_parses_from_nanos_to_iso(nanos: int) -> None:
    iso = conv.nanos_to_iso(nanos)
    assert conv._nanos_to_datetime(nanos) == SpanIn.model_validate(
        {"id": "a", "trace_id": "b", "name": "", "start_time": iso}
    ).start_time
    assert conv._nanos_to_datetime(nanos) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanos // 1000)


def test_nanos_to_datetime_out_of_range_raises_as_nanos_to_iso() -> None:
    for n in (253_402_300_800 * 10**9, 10**30):
        with pytest.raises(OverflowError):
            conv.nanos_to_iso(n)
        with pytest.raises(OverflowError):
            conv._nanos_to_datetime(n)


def test_the_key_caches_stay_small() -> None:
    """Per-key-set and per-key caches never keep long keys (a client could send many)."""
    long_key = "gen_ai.request." + "k" * 5000
    out = conv.span_from_otel(**BASE, attributes={long_key: 1, "gen_ai.request.model": "m"})
    assert out["model_parameters"] == {"k" * 5000: 1}
    assert all(sum(map(len, keys)) <= conv._CACHED_KEYS_TEXT for keys in conv._FEATURES_CACHE)
    assert long_key not in conv._PARAM_NAMES


# --- the inline fast paths of _map_span (ids, times, OTel kind and status codes) ---------------


def _outcome(fn: Any) -> Any:
    """A function's result, or its error's class and text."""
    try:
        return fn()
    except (ValidationError, conv.OtelSpanError) as e:
        return (type(e).__name__, str(e))


@pytest.mark.parametrize(
    "value",
    [
        b"\x01",
        b"\x00\x01",
        b"\x00" * 8,
        b"",
        b"\xff" * 64,
        b"\xff" * 65,
        bytearray(b"\x01\x02"),
        "0AF7651916CD43DD",
        " 0af7651916cd43dd ",
        "0000",
        "zz",
        None,
        12345,
    ],
)
@pytest.mark.parametrize("field", ["trace_id", "span_id"])
def test_inline_ids_are_what_hex_id_gives(field: str, value: Any) -> None:
    """Protobuf ids are made hex inline; every other value goes through _hex_id: the same id or the same error."""
    want = _outcome(lambda: conv._hex_id(value, field, required=True))
    record = _outcome(lambda: conv.span_record(**{**BASE, field: value}, attributes={}, scope=conv.OtelScope()))
    got = record if not isinstance(record, SpanIn) else record.trace_id if field == "trace_id" else record.id
    assert got == want


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (1, 2),
        (NS, None),
        (NS, 0),
        (NS, NS - 1000),  # end before start: SpanIn's own error
        (4 * 10**21 - 1, 4 * 10**21),  # around the float-exact bound
        (4 * 10**21, 4 * 10**21 + 5_000),
        (253_402_300_799_999_999_999, None),  # 9999-12-31T23:59:59.999999
        (253_402_300_800 * 10**9, None),  # out of range
        (NS, 253_402_300_800 * 10**9),
        (True, None),
        (NS, True),
        (float(NS), None),
        (str(NS), str(NS + 1000)),
        (0, None),
        (-5, None),
    ],
)
def test_inline_times_are_what_validation_gives(start: Any, end: Any) -> None:
    """Integer nanoseconds become datetimes inline (span_record); the reference is SpanIn validation
    of span_from_otel's ISO strings, which do not take that path."""
    scope = conv.OtelScope()
    args = {**BASE, "start_time_unix_nano": start, "end_time_unix_nano": end, "attributes": {}}
    got = _outcome(lambda: conv.span_record(**args, scope=scope))
    want = _outcome(lambda: SpanIn.model_validate(conv.span_from_otel(**args, scope=scope)))
    if isinstance(want, SpanIn):
        _same(got, want)
    else:
        assert got == want


@pytest.mark.parametrize(
    ("kind", "status_code"),
    [(0, 0), (2, 2), (5, 1), (9, 7), (-1, -1), (True, True), ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR"),
     ("3", "2"), ("producer", "ok"), (None, None), (2.0, 2.0)],
)
def test_inline_kind_and_status_codes(kind: Any, status_code: Any) -> None:
    """Integer OTel kinds and status codes are looked up inline; anything else by _otel_kind / _status."""
    out = conv.span_from_otel(**{**BASE, "kind": kind, "status_code": status_code}, attributes={})
    assert out["status"] == conv._status(status_code)
    otel_kind = conv._otel_kind(kind)
    assert (out.get("attributes") or {}).get("otel.span_kind") == (
        None if otel_kind in ("INTERNAL", "UNSPECIFIED") else otel_kind
    )


@pytest.mark.parametrize(
    "attrs",
    [
        {"openinference.span.kind": "TOOL"},  # no input/output source at all: _input_output skipped
        {"openinference.span.kind": "PROMPT"},  # kept in the attributes
        {"openinference.span.kind": " llm ", "langfuse.observation.type": "nope"},
        {"langfuse.observation.type": "GENERATION", "openinference.span.kind": "TOOL"},
        {"gen_ai.operation.name": " Execute_Tool ", "openinference.span.kind": "unknown"},
        {"gen_ai.system_instructions": "be brief"},
        {"gen_ai.tool.call.result": '{"r": 2}'},
    ],
)
def test_kind_rules_and_the_input_output_gate(attrs: dict[str, Any]) -> None:
    got, want = _both(attrs)
    _same(got, want)


def test_span_events_alone_still_give_input_and_output() -> None:
    """A span whose attributes have no input/output key still reads its GenAI message events."""
    events = [
        {"name": "gen_ai.user.message", "time_unix_nano": NS, "attributes": {"content": "hi"}},
        {"name": "gen_ai.choice", "time_unix_nano": NS, "attributes": {"message": '{"content": "yo"}'}},
    ]
    record = conv.span_record(**BASE, attributes={"openinference.span.kind": "LLM"}, events=events,
                              scope=conv.OtelScope())
    assert record.input == [{"role": "user", "content": "hi"}]
    assert record.output == [{"content": "yo", "role": "assistant"}]
