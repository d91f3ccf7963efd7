"""The cheap paths of the OTel mapping give exactly what the general ones give (issue 18 item 4):
msgspec-parsed JSON strings, JSON-safe conversion with its depth bound, the skipped SpanIn JSON
walk, and BatchBuilder's usage/cost copies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from podium.core import conventions as conv
from podium.core.records import JSON_CHECKED_CONTEXT, MAX_JSON_DEPTH, CostIn, SpanIn, UsageIn
from podium.server.convert import _COST_FIELDS, _USAGE_FIELDS, _fields

BASE: dict[str, Any] = {
    "trace_id": "0af7651916cd43dd8448eb211c80319c",
    "span_id": "b7ad6b7169203331",
    "parent_span_id": None,
    "name": "n",
    "kind": 1,
    "start_time_unix_nano": 1_700_000_000_123_456_789,
    "end_time_unix_nano": 1_700_000_001_000_000_000,
    "status_code": 0,
    "status_message": None,
}


def _nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, "x"], "b": null}',
        '{"a": NaN, "b": Infinity}',  # msgspec refuses these: json.loads reads them
        "[1e999]",
        '"\\ud800"',  # a lone surrogate
        '{"a": 1, "a": 2}',  # duplicate keys: the last wins in both
        "123456789012345678901234567890",
        " [true, false] ",
        "\ufeff[1]",
        "not json",
        "[1,]",
        "[" * 3000 + "]" * 3000,
    ],
)
def test_loads_parses_as_json_loads(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except RecursionError:
        with pytest.raises(RecursionError):
            conv._loads(text)
        return
    except ValueError:
        assert conv._structured(text) == text  # left as text, as before
        return
    got = conv._loads(text)
    assert json.dumps(got) == json.dumps(expected)  # NaN-safe comparison, types included
    assert type(got) is type(expected)


def test_bounded_equals_json_safe() -> None:
    class Key(str):
        pass

    value = {
        "s": "x",
        1: [1.5, float("nan"), float("inf"), -float("inf"), b"\x00\xff", (1, 2), {3}, None, True],
        Key("k"): {"d": datetime(2026, 1, 1, tzinfo=UTC), "deep": _nested(20)},
        "o": ValueError("not JSON"),
    }
    assert conv._bounded(value, 1) == conv._json_safe(value)
    assert conv._bounded(_nested(MAX_JSON_DEPTH), 1) == _nested(MAX_JSON_DEPTH)  # json_problem's bound
    with pytest.raises(conv._TooDeep):
        conv._bounded(_nested(MAX_JSON_DEPTH + 1), 1)


def test_json_checked_only_when_the_spanin_walk_would_pass() -> None:
    attrs = {"a": json.dumps({"x": [1.0, 2]}), "b": float("nan"), "c": [1, 2]}
    checked: list[bool] = []
    span = conv.span_from_otel(**BASE, attributes=attrs, json_checked=checked)
    assert checked == [True]
    assert SpanIn.model_validate(span, context=JSON_CHECKED_CONTEXT) == SpanIn.model_validate(span)

    # attributes is level 1, so _nested(d) reaches level d + 1: MAX_JSON_DEPTH - 1 fits, one more
    # does not; then the span is not marked and SpanIn's own walk reports it, as before.
    checked = []
    span = conv.span_from_otel(**BASE, attributes={"deep": _nested(MAX_JSON_DEPTH - 1)}, json_checked=checked)
    assert checked == [True]
    SpanIn.model_validate(span)
    checked = []
    span = conv.span_from_otel(**BASE, attributes={"deep": _nested(MAX_JSON_DEPTH)}, json_checked=checked)
    assert checked == [] and span["attributes"] == {"deep": _nested(MAX_JSON_DEPTH)}
    with pytest.raises(ValidationError, match="nests deeper than"):
        SpanIn.model_validate(span)


def test_nanos_to_iso_unchanged() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for n in (1, 999, 1_700_000_000_123_456_789, 253_402_300_799_999_999_999, 86_400 * 10**9):
        secs, rem = divmod(n, 1_000_000_000)
        old = (epoch + timedelta(seconds=secs, microseconds=rem // 1000)).isoformat(timespec="microseconds")
        assert conv.nanos_to_iso(n) == old.replace("+00:00", "Z")
    with pytest.raises(OverflowError):
        conv.nanos_to_iso(10**30)


def test_usage_and_cost_copies_match_model_dump() -> None:
    for usage in (
        UsageIn(),
        UsageIn(input_tokens=3),
        UsageIn(input_tokens=3, output_tokens=0, total_tokens=3, details={"cached_tokens": 1}),
    ):
        assert _fields(usage, _USAGE_FIELDS) == usage.model_dump(exclude_none=True)
    for cost in (CostIn(), CostIn(total=0.5), CostIn(input=0.1, output=0.2, total=0.3)):
        assert _fields(cost, _COST_FIELDS) == cost.model_dump(exclude_none=True)


# span_from_otel skips a mapping section when no attribute has one of its keys (one pass over the
# keys, conventions._features): each section must still see every key it reads, alone or in company.
@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("embedding.model_name", "e5", "model", "e5"),
        ("llm.system", "openai", "provider", "openai"),
        ("llm.token_count.prompt_details.cache_read", 3, "usage", {"details": {"cached_tokens": 3}}),
        ("gen_ai.usage.reasoning_tokens", 4, "usage", {"details": {"reasoning_tokens": 4}}),
        (
            "langfuse.observation.usage_details",
            '{"input": 2}',
            "usage",
            {"input_tokens": 2, "total_tokens": 2},
        ),
        ("llm.cost.total", 0.5, "cost", {"total": 0.5}),
        ("langfuse.observation.cost_details", '{"input": 0.25}', "cost", {"input": 0.25}),
        ("gen_ai.request.seed", 7, "model_parameters", {"seed": 7}),
        ("llm.invocation_parameters", '{"temperature": 0}', "model_parameters", {"temperature": 0}),
        ("langfuse.observation.model.parameters", '{"top_p": 1}', "model_parameters", {"top_p": 1}),
        ("llm.input_messages.0.message.content", "hi", "input", [{"content": "hi"}]),
        ("gen_ai.prompt.0.content", "hi", "input", [{"content": "hi"}]),
        ("embedding.embeddings.0.embedding.text", "doc", "input", ["doc"]),
        ("llm.output_messages.0.message.content", "yo", "output", [{"content": "yo"}]),
        ("retrieval.documents.0.document.content", "d", "output", [{"content": "d"}]),
        ("gen_ai.completion.0.content", "yo", "output", [{"content": "yo"}]),
        ("langfuse.trace.name", "qa", "trace_name", "qa"),
        ("langfuse.observation.metadata.k", "v", "metadata", {"k": "v"}),
        ("langfuse.trace.metadata.k", "v", "trace_metadata", {"k": "v"}),
        ("langfuse.observation.prompt.version", 3, "prompt_version", 3),
        ("ai.response.msToFirstChunk", 250, "completion_start_time", "2023-11-14T22:13:20.373456Z"),
        # the exact input/output keys (a span without any of them, and without events, skips _input_output)
        ("input.value", "q", "input", "q"),
        ("gen_ai.input.messages", '[{"role": "user"}]', "input", [{"role": "user"}]),
        (
            "gen_ai.system_instructions",
            "be brief",
            "input",
            [{"role": "system", "parts": [{"type": "text", "content": "be brief"}]}],
        ),
        ("gen_ai.tool.call.arguments", '{"a": 1}', "input", {"a": 1}),
        ("gen_ai.prompt", "hi", "input", "hi"),
        ("langfuse.observation.input", '{"q": 1}', "input", {"q": 1}),
        ("output.value", "a", "output", "a"),
        ("gen_ai.output.messages", '[{"role": "assistant"}]', "output", [{"role": "assistant"}]),
        ("gen_ai.tool.call.result", '{"r": 2}', "output", {"r": 2}),
        ("gen_ai.completion", "yo", "output", "yo"),
        ("langfuse.observation.output", "[1]", "output", [1]),
    ],
)
@pytest.mark.parametrize("company", [{}, {"other.key": 1, "gen_ai.operation.name": "chat", "llm.model": "x"}])
def test_every_section_sees_its_keys(
    key: str, value: Any, field: str, expected: Any, company: dict[str, Any]
) -> None:
    attrs = {**company, key: value}
    out = conv.span_from_otel(**BASE, attributes=attrs)
    got = out[field]
    if isinstance(expected, dict) and isinstance(got, dict):
        got = {k: got[k] for k in expected}
    assert got == expected
    assert key not in (out.get("attributes") or {})
    SpanIn.model_validate(out)


@pytest.mark.parametrize(
    "nanos",
    [
        1,
        59_999_999_999,
        60_000_000_000,
        1_700_000_000_123_456_789,
        1_700_000_059_999_999_999,
        253_402_300_799_999_999_999,
        -1,
        -60_000_000_001,
    ],
)
def test_nanos_to_iso_matches_datetime(nanos: int) -> None:
    """ISO times come from a per-minute prefix cache; they equal datetime's own formatting."""
    secs, rem = divmod(nanos, 1_000_000_000)
    dt = datetime(1970, 1, 1) + timedelta(seconds=secs, microseconds=rem // 1000)
    for _ in range(2):  # cold, then cached
        assert conv.nanos_to_iso(nanos) == dt.isoformat(timespec="microseconds") + "Z"


def test_nanos_to_iso_out_of_range_still_raises() -> None:
    with pytest.raises(OverflowError):
        conv.nanos_to_iso(253_402_300_800 * 10**9)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("b7ad6b7169203331", "b7ad6b7169203331"),
        ("B7AD6B7169203331", "b7ad6b7169203331"),
        (" b7ad6b7169203331\n", "b7ad6b7169203331"),
        ("b7ad6b7169203331\n", "b7ad6b7169203331"),
        (bytes.fromhex("b7ad6b7169203331"), "b7ad6b7169203331"),
    ],
)
def test_hex_ids_fast_and_slow_paths_agree(value: Any, expected: str) -> None:
    assert conv.span_from_otel(**{**BASE, "span_id": value}, attributes={})["id"] == expected


def test_non_finite_floats_in_kept_attributes_become_strings() -> None:
    out = conv.span_from_otel(
        **BASE, attributes={"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": -float("inf"), "e": -0.0}}
    )
    assert out["attributes"] == {"a": "NaN", "b": [1.5, "Infinity"], "c": {"d": "-Infinity", "e": -0.0}}
