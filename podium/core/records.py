"""Wire records of the native ingestion API (``POST /api/v1/ingest``).

A batch is ``{"batch": [{"type": "span"|"trace"|"score", "body": {...}}, ...]}``. Each
item is validated on its own: a bad item is reported with its index and never stops
the valid ones from being stored. Writes are idempotent upserts keyed by id, so a
retried batch never duplicates; a field sent as ``null`` or left out never erases
what an earlier write stored (a span's end may arrive after its start).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

__all__ = [
    "ID_PATTERN",
    "JSON_CHECKED_CONTEXT",
    "MAX_JSON_DEPTH",
    "CostIn",
    "IngestItem",
    "ScoreDataType",
    "ScoreIn",
    "SpanIn",
    "SpanKind",
    "SpanStatus",
    "TraceIn",
    "UsageIn",
    "format_path",
    "json_problem",
    "utc",
]

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")

#: The deepest nesting of JSON objects/arrays the server accepts, in a request body and in
#: every stored JSON value (``{"a": [1]}`` is 2 levels). One limit for both, well under what
#: the response serializer can write back (pydantic stops at 254), so whatever is accepted
#: can be read back through every endpoint.
MAX_JSON_DEPTH = 128

NON_FINITE_MESSAGE = (
    "is not a finite number (NaN, Infinity and numbers outside the double range such as 1e999 "
    "are not JSON); send a finite number, null or a string"
)


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[list[str | int], str] | None:
    """The first thing in a parsed JSON value that the store cannot keep the same on every
    database, as ``(path, message)``: a non-finite float, or nesting deeper than ``max_depth``.
    Iterative (no recursion limit) and stops at the first problem."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ([], NON_FINITE_MESSAGE)
    if not isinstance(value, dict | list):
        return None
    if max_depth < 1:
        return [], f"nests deeper than {max_depth} levels of objects/arrays; flatten it"
    keys: list[str | int] = []
    stack: list[Iterator[tuple[Any, Any]]] = [iter(value.items()) if isinstance(value, dict) else enumerate(value)]
    while stack:
        for k, v in stack[-1]:
            if isinstance(v, float):
                if not math.isfinite(v):
                    return [*keys, k], NON_FINITE_MESSAGE
            elif isinstance(v, dict | list):
                if len(stack) >= max_depth:
                    return [*keys, k], (
                        f"nests deeper than {max_depth} levels of objects/arrays (MAX_JSON_DEPTH); "
                        "flatten it or send the deep part as a JSON string"
                    )
                keys.append(k)
                stack.append(iter(v.items()) if isinstance(v, dict) else enumerate(v))
                break
        else:
            stack.pop()
            if keys:
                keys.pop()
    return None


_JSON_CHECKED = "podium.json_checked"
#: ``Model.model_validate(data, context=JSON_CHECKED_CONTEXT)`` skips the per-field JSON walk
#: (non-finite numbers, nesting depth): only for data whose every JSON value the caller has
#: already checked, e.g. ``conventions.span_from_otel(..., json_checked=...)`` output.
JSON_CHECKED_CONTEXT: dict[str, Any] = {_JSON_CHECKED: True}


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


def format_path(path: list[str | int], *, head: int = 8) -> str:
    """``["batch", 0, "body", "input"]`` -> ``batch[0].body.input`` (long paths shortened)."""
    out = ""
    for i, p in enumerate(path):
        if i == head and len(path) > head + 2:
            return out + f"...({len(path)} levels)"
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.match(p):
            out += ("." if out else "") + p
        else:
            out += "[" + json.dumps(p[:64], ensure_ascii=False) + "]"
    return out


def _check_id(v: str) -> str:
    if not ID_PATTERN.match(v):
        raise ValueError(
            "ids are 1-128 characters of letters, digits, '_', '-', '.', ':' "
            "(OpenTelemetry hex ids and UUIDs both fit)"
        )
    return v


def utc(v: datetime) -> datetime:
    """Make a datetime timezone-aware UTC (naive values are taken as UTC)."""
    if v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    try:
        return v.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{v.isoformat()} is outside the range of representable UTC times")


Id = Annotated[str, AfterValidator(_check_id)]
UtcTime = Annotated[datetime, AfterValidator(utc)]
Name = Annotated[str, Field(max_length=1000)]
Tag = Annotated[str, Field(min_length=1, max_length=200)]


class SpanKind(StrEnum):
    SPAN = "span"
    GENERATION = "generation"
    TOOL = "tool"
    RETRIEVAL = "retrieval"
    EMBEDDING = "embedding"
    AGENT = "agent"
    CHAIN = "chain"
    EVENT = "event"
    GUARDRAIL = "guardrail"
    EVALUATOR = "evaluator"
    RERANKER = "reranker"


class SpanStatus(StrEnum):
    UNSET = "unset"
    OK = "ok"
    ERROR = "error"


class ScoreDataType(StrEnum):
    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    TEXT = "text"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1_000_000)

    @model_validator(mode="after")
    def _check_json_values(self, info: ValidationInfo) -> Any:
        # JSON-valued fields (input, output, metadata, attributes, ...) must be servable:
        # finite numbers only, at most MAX_JSON_DEPTH levels (see json_problem). Skipped when
        # the caller has checked them already (JSON_CHECKED_CONTEXT).
        if info.context is not None and info.context.get(_JSON_CHECKED):
            return self
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, dict | list):
                problem = json_problem(value)
                if problem is not None:
                    raise ValueError(f"{format_path([name, *problem[0]])}: {problem[1]}")
        return self


MAX_TOKENS = 2**53  # fits BIGINT and a double exactly


class UsageIn(_Strict):
    input_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    output_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    total_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    details: dict[str, Annotated[int, Field(ge=0, le=MAX_TOKENS)]] | None = None  # cached_tokens, reasoning_tokens


class CostIn(_Strict):
    """Cost in USD, when the caller knows it; otherwise the server prices the usage."""

    input: float | None = Field(default=None, ge=0, lt=1e9, allow_inf_nan=False)
    output: float | None = Field(default=None, ge=0, lt=1e9, allow_inf_nan=False)
    total: float | None = Field(default=None, ge=0, lt=1e9, allow_inf_nan=False)


class _TraceHints(_Strict):
    """Trace-level attributes that may ride on any span (propagate_attributes)."""

    user_id: Annotated[str, Field(max_length=256)] | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None
    tags: list[Tag] | None = Field(default=None, max_length=100)
    release: Annotated[str, Field(max_length=256)] | None = None
    environment: Annotated[str, Field(max_length=256)] | None = None


class SpanIn(_TraceHints):
    id: Id
    trace_id: Id
    parent_id: Id | None = None
    name: Name
    kind: SpanKind = SpanKind.SPAN
    start_time: UtcTime
    end_time: UtcTime | None = None
    status: SpanStatus | None = None
    status_message: Annotated[str, Field(max_length=10_000)] | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None  # raw OTel attributes we did not map
    model: Annotated[str, Field(max_length=256)] | None = None
    provider: Annotated[str, Field(max_length=256)] | None = None
    model_parameters: dict[str, Any] | None = None
    usage: UsageIn | None = None
    cost: CostIn | None = None
    completion_start_time: UtcTime | None = None  # first token: time to first token = this - start
    prompt_name: Annotated[str, Field(max_length=256)] | None = None
    prompt_version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    trace_name: Name | None = None  # sets the trace's name (else the root span's name is used)
    trace_metadata: dict[str, Any] | None = None
    trace_input: Any = None  # explicit trace input/output (win over the root span's)
    trace_output: Any = None

    @model_validator(mode="after")
    def _check_times(self) -> SpanIn:
        if self.end_time is not None and self.end_time < self.start_time:
            raise ValueError(
                f"end_time {self.end_time.isoformat()} is before start_time "
                f"{self.start_time.isoformat()}; send UTC timestamps from one clock"
            )
        if self.parent_id is not None and self.parent_id == self.id:
            raise ValueError("parent_id equals id: a span cannot be its own parent")
        return self


class TraceIn(_TraceHints):
    """Explicit trace-level data (name, input/output, metadata). Optional: traces are
    created from their spans; this only adds or overrides trace-level fields."""

    id: Id
    name: Name | None = None
    metadata: dict[str, Any] | None = None
    input: Any = None
    output: Any = None
    timestamp: UtcTime | None = None


class ScoreIn(_Strict):
    id: Id | None = None  # give one to make retries idempotent; the server generates one otherwise
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)] | bool | Annotated[
        str, Field(max_length=10_000)
    ]
    data_type: ScoreDataType | None = None  # inferred from value when left out
    config_id: Id | None = None  # a score config to validate against (a config with this name applies anyway)
    trace_id: Id | None = None
    span_id: Id | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None
    source: Literal["api", "sdk", "human", "eval", "llm", "otel", "guardrail", "feedback"] = "api"
    comment: Annotated[str, Field(max_length=10_000)] | None = None
    metadata: dict[str, Any] | None = None
    timestamp: UtcTime | None = None

    @model_validator(mode="after")
    def _check_target(self) -> ScoreIn:
        if self.trace_id is None and self.session_id is None:
            raise ValueError("a score needs trace_id (optionally with span_id) or session_id")
        if self.span_id is not None and self.trace_id is None:
            raise ValueError("span_id needs trace_id too: span ids are unique only within a trace")
        if self.data_type is None:
            if isinstance(self.value, bool):
                self.data_type = ScoreDataType.BOOLEAN
            elif isinstance(self.value, int | float):
                self.data_type = ScoreDataType.NUMERIC
            else:
                self.data_type = ScoreDataType.CATEGORICAL
        if self.data_type in (ScoreDataType.NUMERIC, ScoreDataType.BOOLEAN) and isinstance(self.value, str):
            raise ValueError(f"data_type {self.data_type.value} needs a number or boolean value, got a string")
        if self.data_type in (ScoreDataType.CATEGORICAL, ScoreDataType.TEXT) and not isinstance(self.value, str):
            self.value = str(self.value)
        return self


class IngestItem(_Strict):
    type: Literal["span", "trace", "score"]
    body: dict[str, Any]
