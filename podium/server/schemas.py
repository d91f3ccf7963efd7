"""Response models of the REST API (they make /api/v1/openapi.json useful)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_serializer

__all__ = [
    "GroupOut",
    "GroupPage",
    "KeyOut",
    "NewKeyOut",
    "PriceIn",
    "PriceOut",
    "ProjectOut",
    "ScoreOut",
    "ScorePage",
    "SpanOut",
    "SpanPage",
    "TraceDetail",
    "TraceOut",
    "TracePage",
]


class _Out(BaseModel):
    @field_serializer("*", when_used="json", check_fields=False)
    def _money(self, v: Any) -> Any:
        if isinstance(v, Decimal):
            return float(v)
        return v


class TraceOut(_Out):
    id: str
    name: str | None
    user_id: str | None
    session_id: str | None
    release: str | None
    environment: str | None
    tags: list[str] = []
    metadata: dict[str, Any] | None = None
    start_time: datetime
    end_time: datetime | None
    latency_ms: float
    status: str
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    total_cost: Decimal
    updated_at: datetime
    input: Any = None
    output: Any = None


class TracePage(BaseModel):
    data: list[TraceOut]
    next_cursor: str | None


class SpanOut(_Out):
    id: str
    trace_id: str
    parent_id: str | None
    name: str
    kind: str
    start_time: datetime
    end_time: datetime | None
    latency_ms: float | None
    status: str
    status_message: str | None
    model: str | None
    provider: str | None
    model_parameters: dict[str, Any] | None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    usage_details: dict[str, Any] | None
    usage_estimated: bool | None
    # Whether its usage and cost count toward totals (null: it carries none); docs/data-model.md.
    usage_counted: bool | None = None
    cost_input: Decimal | None
    cost_output: Decimal | None
    cost_total: Decimal | None
    completion_start_time: datetime | None
    time_to_first_token_ms: float | None = None
    prompt_name: str | None
    prompt_version: int | None
    child_count: int | None = None


class SpanPage(BaseModel):
    data: list[SpanOut]
    next_cursor: str | None


class ScoreOut(BaseModel):
    id: str
    trace_id: str | None
    span_id: str | None
    session_id: str | None
    name: str
    data_type: str
    value: float | bool | str | None
    source: str
    comment: str | None
    metadata: dict[str, Any] | None
    timestamp: datetime


class ScorePage(BaseModel):
    data: list[ScoreOut]
    next_cursor: str | None


class TraceDetail(TraceOut):
    scores: list[ScoreOut]
    spans: list[SpanOut]
    spans_next_cursor: str | None


class GroupOut(_Out):
    id: str
    trace_count: int
    first_seen: datetime
    last_seen: datetime
    total_tokens: int
    total_cost: Decimal
    error_count: int
    user_id: str | None = None
    session_count: int | None = None


class GroupPage(BaseModel):
    data: list[GroupOut]
    next_cursor: str | None


class ProjectOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class KeyOut(BaseModel):
    id: str
    project_id: str
    public_key: str
    secret_hint: str
    role: str
    note: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    secret_key: str


# USD per million tokens; the column holds 10 integer digits (NUMERIC(20, 10)).
PricePerMillion = Annotated[Decimal, Field(ge=0, lt=1_000_000_000, allow_inf_nan=False)]


class PriceIn(BaseModel):
    input_per_million: PricePerMillion
    output_per_million: PricePerMillion
    cached_input_per_million: PricePerMillion | None = None


class PriceOut(_Out):
    model: str
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None
    updated_at: datetime
