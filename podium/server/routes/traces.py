"""Reads: traces, spans, sessions, users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from podium.core.records import utc
from podium.errors import BadRequest
from podium.server.auth import require_read
from podium.server.body import StrictJSONRoute
from podium.server.schemas import GroupPage, SpanOut, SpanPage, TraceDetail, TracePage
from podium.server.state import AppState
from podium.store.repos.scores import ScoreFilter
from podium.store.repos.traces import TraceFilter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["traces"], route_class=StrictJSONRoute)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]


MAX_TAG_FILTERS = 50


def utc_param(name: str, value: datetime | None) -> datetime | None:
    """A query-string time as UTC (naive means UTC), or a 400 naming the parameter."""
    if value is None:
        return None
    try:
        return utc(value)
    except ValueError as e:
        raise BadRequest(f"query parameter {name!r}: {e}", details=[{"field": f"query.{name}"}])


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _with_ttft(span: dict[str, Any]) -> dict[str, Any]:
    cst = span.get("completion_start_time")
    span["time_to_first_token_ms"] = (cst - span["start_time"]).total_seconds() * 1000.0 if cst else None
    return span


@router.get("/traces", response_model=TracePage, summary="List and filter traces")
def list_traces(
    request: Request,
    key: require_read,
    start_after: Annotated[datetime | None, Query(alias="from", description="start_time >= (ISO 8601)")] = None,
    start_before: Annotated[datetime | None, Query(alias="to", description="start_time < (ISO 8601)")] = None,
    name: str | None = None,
    q: Annotated[str | None, Query(description="case-insensitive substring of the trace name")] = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Annotated[list[str], Query(alias="tag", description="repeat for several: all must match")] = [],  # noqa: B006
    status: Literal["ok", "error"] | None = None,
    model: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    min_latency_ms: float | None = None,
    max_latency_ms: float | None = None,
    min_cost: float | None = None,
    max_cost: float | None = None,
    score_name: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    sort: Literal["start_time", "latency_ms", "total_cost", "total_tokens", "span_count"] = "start_time",
    order: Literal["asc", "desc"] = "desc",
    include_io: bool = False,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    if len(tags) > MAX_TAG_FILTERS:
        raise BadRequest(f"at most {MAX_TAG_FILTERS} tag filters per query; got {len(tags)}")
    f = TraceFilter(
        start_after=utc_param("from", start_after),
        start_before=utc_param("to", start_before),
        name=name,
        q=q,
        user_id=user_id,
        session_id=session_id,
        tags=tags,
        status=status,
        model=model,
        environment=environment,
        release=release,
        min_latency_ms=min_latency_ms,
        max_latency_ms=max_latency_ms,
        min_cost=min_cost,
        max_cost=max_cost,
        score_name=score_name,
        min_score=min_score,
        max_score=max_score,
    )
    page = _st(request).store.traces.list_traces(
        key.project_id, f, sort=sort, order=order, limit=limit, cursor=cursor, include_io=include_io
    )
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.get("/traces/{trace_id}", response_model=TraceDetail, summary="One trace with scores and its first spans")
def get_trace(
    request: Request,
    trace_id: str,
    key: require_read,
    span_limit: Annotated[int, Query(ge=0, le=5000)] = 1000,
) -> dict[str, Any]:
    """The trace, its scores and the first ``span_limit`` spans in start order (use
    ``spans_next_cursor`` with ``GET /traces/{id}/spans`` for the rest)."""
    st = _st(request)
    trace = st.store.traces.get_trace(key.project_id, trace_id)
    spans = st.store.traces.list_spans(key.project_id, trace_id, limit=max(span_limit, 1))
    scores = st.store.scores.list_scores(key.project_id, ScoreFilter(trace_id=trace_id), limit=1000)
    trace["spans"] = [_with_ttft(s) for s in spans.items[:span_limit]]
    trace["spans_next_cursor"] = spans.next_cursor if span_limit else None
    trace["scores"] = scores.items
    return trace


@router.get("/traces/{trace_id}/spans", response_model=SpanPage, summary="Spans of a trace, paginated")
def list_spans(
    request: Request,
    trace_id: str,
    key: require_read,
    parent_id: Annotated[str | None, Query(description="only the children of this span (lazy tree)")] = None,
    roots: Annotated[bool, Query(description="only top-level spans (lazy tree)")] = False,
    include_io: bool = True,
    limit: Limit = 1000,
    cursor: str | None = None,
) -> dict[str, Any]:
    st = _st(request)
    st.store.traces.get_trace(key.project_id, trace_id)  # 404 for unknown / other project
    page = st.store.traces.list_spans(
        key.project_id,
        trace_id,
        parent_id=parent_id,
        roots_only=roots,
        limit=limit,
        cursor=cursor,
        include_io=include_io,
        with_child_counts=roots or parent_id is not None,
    )
    return {"data": [_with_ttft(s) for s in page.items], "next_cursor": page.next_cursor}


@router.get("/traces/{trace_id}/spans/{span_id}", summary="One span with its full input and output")
def get_span(request: Request, trace_id: str, span_id: str, key: require_read) -> dict[str, Any]:
    span = _st(request).store.traces.get_span(key.project_id, trace_id, span_id)
    return SpanOut.model_validate(_with_ttft(span)).model_dump(mode="json")


@router.get("/sessions", response_model=GroupPage, summary="Sessions with aggregates")
def list_sessions(
    request: Request,
    key: require_read,
    user_id: str | None = None,
    start_after: Annotated[datetime | None, Query(alias="from")] = None,
    start_before: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = _st(request).store.traces.list_groups(
        key.project_id, "session_id", limit=limit, cursor=cursor, start_after=utc_param("from", start_after),
        start_before=utc_param("to", start_before), user_id=user_id,
    )
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.get("/users", response_model=GroupPage, summary="Users with aggregates")
def list_users(
    request: Request,
    key: require_read,
    start_after: Annotated[datetime | None, Query(alias="from")] = None,
    start_before: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = _st(request).store.traces.list_groups(
        key.project_id, "user_id", limit=limit, cursor=cursor, start_after=utc_param("from", start_after),
        start_before=utc_param("to", start_before),
    )
    return {"data": page.items, "next_cursor": page.next_cursor}
