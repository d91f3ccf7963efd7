"""Metric queries and dashboards: ``GET/POST /api/v1/metrics/query`` (a metric query, a time
range and an interval -> one series per dimension value), ``GET /api/v1/metrics/catalog``
(what a query may name), and ``/api/v1/dashboards`` (list, create, get, change, delete; the
default dashboards are listed too, read-only, and copied with ``copy_from``). Reads need a read
key, changes a write (admin or member) key. The SQL is ``podium.store.repos.metrics``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from podium.core.metrics import MetricQuery
from podium.core.records import utc
from podium.core.roles import Action
from podium.errors import BadRequest, NotFound
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.dashboards_default import DEFAULT_PREFIX, default_dashboard, default_dashboards
from podium.server.state import AppState
from podium.store import Store
from podium.store.repos.dashboards import CHART_TYPES
from podium.store.repos.metrics import AGGS, DIMENSIONS, FILTERS, MAX_BUCKETS, METRICS, aggs_for
from podium.store.repos.projects import ApiKey

__all__ = ["INTERVALS", "auto_interval", "chart_series", "get_dashboard", "recent_score_names", "router",
           "time_range"]

router = APIRouter(prefix="/api/v1", tags=["dashboards"], route_class=StrictJSONRoute)

_read = Annotated[ApiKey, needs(Action.READ, "read metrics and dashboards")]
_write = Annotated[ApiKey, needs(Action.WRITE, "change dashboards")]

DAY = 86400
#: The intervals picked automatically: the first that gives at most ``TARGET_BUCKETS`` buckets.
INTERVALS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 7 * DAY)
TARGET_BUCKETS = 120
MAX_RANGE_S = 400 * DAY
_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST = datetime(2500, 1, 1, tzinfo=UTC)

_Finite = Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)]
_Filters = Annotated[
    dict[Annotated[str, Field(max_length=64)],
         Annotated[str, Field(max_length=1000)] | _Finite
         | Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=20)]],
    Field(max_length=20),
]
_Metric = Annotated[str, Field(min_length=1, max_length=300)]
_Agg = Annotated[str, Field(min_length=1, max_length=16)]
_Dim = Annotated[str, Field(min_length=1, max_length=32)]
_Interval = Annotated[int, Field(ge=1, le=30 * DAY)]
_RangeS = Annotated[int, Field(ge=60, le=MAX_RANGE_S)]
_Top = Annotated[int, Field(ge=1, le=50)]


def auto_interval(seconds: float) -> int:
    """The shortest of ``INTERVALS`` that cuts ``seconds`` into at most ``TARGET_BUCKETS`` buckets."""
    return next((i for i in INTERVALS if seconds / i <= TARGET_BUCKETS), INTERVALS[-1])


def time_range(start: datetime | None, end: datetime | None, range_s: int | None,
               default_s: int = DAY) -> tuple[datetime, datetime]:
    """[start, end): ``end`` defaults to now, ``start`` to ``end - range_s`` (else ``default_s``)."""
    end = utc(end) if end is not None else datetime.now(UTC)
    if start is None:
        start = end - timedelta(seconds=range_s or default_s)
    start = utc(start)
    if not (_EPOCH <= start < end <= _LATEST):
        raise BadRequest("give 1970-01-02 <= start < end <= 2500-01-01 (ISO 8601 times, UTC when no offset)",
                         details=[{"field": "start"}])
    if (end - start).total_seconds() > MAX_RANGE_S:
        raise BadRequest(f"the range may span at most {MAX_RANGE_S // DAY} days", details=[{"field": "start"}])
    return start, end


def chart_series(store: Store, project_id: str, chart: dict[str, Any], start: datetime, end: datetime,
                 interval_s: int | None = None) -> dict[str, Any]:
    """One chart's data: ``series()`` plus the chart's query (interval: the chart's, else ``interval_s``,
    else picked from the range)."""
    q = MetricQuery(metric=chart["metric"], agg=chart.get("agg") or "avg", dimension=chart.get("dimension"),
                    filters=chart.get("filters") or {})
    interval = chart.get("interval_s") or interval_s or auto_interval((end - start).total_seconds())
    out = store.metrics.series(project_id, q, start, end, int(interval), top=int(chart.get("top") or 10))
    out.update(metric=q.metric, agg=q.agg, dimension=q.dimension, filters=q.filters,
               start=start.isoformat(), end=end.isoformat())
    return out


def recent_score_names(store: Store, project_id: str) -> list[str]:
    """The project's most used score names of the last 30 days (for the default "Scores" dashboard)."""
    now = datetime.now(UTC)
    return store.metrics.names(project_id, "score", now - timedelta(days=30), now + timedelta(seconds=1), limit=6)


def get_dashboard(store: Store, project_id: str, dashboard_id: str) -> dict[str, Any]:
    """A saved dashboard or a default one (``default-...``), charts included; NotFound otherwise."""
    if dashboard_id.startswith(DEFAULT_PREFIX):
        d = default_dashboard(dashboard_id, recent_score_names(store, project_id))
        if d is None:
            raise NotFound(f"no default dashboard {dashboard_id!r}; GET /api/v1/dashboards lists them")
        return d
    out = store.dashboards.get(project_id, dashboard_id)
    out["default"] = False
    return out


# --- metric queries --------------------------------------------------------------------------------


class MetricQueryIn(BaseModel):
    """A metric query over a time range (``podium.core.metrics.MetricQuery`` plus the range)."""

    model_config = ConfigDict(extra="forbid")
    metric: _Metric
    agg: _Agg = "avg"
    dimension: _Dim | None = None
    filters: _Filters = Field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    range_s: _RangeS | None = None
    interval: _Interval | None = None
    top: _Top = 10


def _query(request: Request, key: ApiKey, body: MetricQueryIn) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    start, end = time_range(body.start, body.end, body.range_s)
    chart = {"metric": body.metric, "agg": body.agg, "dimension": body.dimension, "filters": body.filters,
             "top": body.top}
    return chart_series(st.store, key.project_id, chart, start, end, body.interval)


@router.post("/metrics/query", summary="Run a metric query: one series per dimension value")
def query_post(request: Request, body: MetricQueryIn, key: _read) -> dict[str, Any]:
    return _query(request, key, body)


@router.get("/metrics/query", summary="Run a metric query (query parameters; filters as a JSON object)")
def query_get(
    request: Request,
    key: _read,
    metric: Annotated[str, Query(min_length=1, max_length=300)],
    agg: Annotated[str, Query(min_length=1, max_length=16)] = "avg",
    dimension: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    filters: Annotated[str | None, Query(max_length=10_000, description='a JSON object, e.g. {"environment": "prod"}')]
    = None,
    start: datetime | None = None,
    end: datetime | None = None,
    range_s: Annotated[int | None, Query(ge=60, le=MAX_RANGE_S)] = None,
    interval: Annotated[int | None, Query(ge=1, le=30 * DAY)] = None,
    top: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    parsed: Any = {}
    if filters:
        try:
            parsed = json.loads(filters)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise BadRequest('filters must be a JSON object, e.g. {"environment": "prod"}',
                             details=[{"field": "filters"}])
    try:
        body = MetricQueryIn(metric=metric, agg=agg, dimension=dimension, filters=parsed, start=start, end=end,
                             range_s=range_s, interval=interval, top=top)
    except ValueError as e:
        raise BadRequest(f"bad filters: {str(e).splitlines()[0]}", details=[{"field": "filters"}]) from None
    return _query(request, key, body)


@router.get("/metrics/catalog", summary="What a metric query may name: metrics, aggregations, dimensions, filters")
def catalog(key: _read) -> dict[str, Any]:
    return {
        "metrics": [{"metric": m, "aggs": aggs_for(m.replace("<name>", "x").replace("<rule>", "x"))}
                    for m in METRICS],
        "aggs": AGGS, "dimensions": DIMENSIONS, "filters": FILTERS, "chart_types": list(CHART_TYPES),
        "max_buckets": MAX_BUCKETS,
    }


# --- dashboards ------------------------------------------------------------------------------------


class ChartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    title: Annotated[str, Field(max_length=200)] | None = None
    metric: _Metric
    agg: _Agg = "avg"
    dimension: _Dim | None = None
    filters: _Filters | None = None
    chart_type: Annotated[str, Field(max_length=16)] = "line"
    interval_s: _Interval | None = None
    range_s: _RangeS | None = None
    top: _Top | None = None


_Charts = Annotated[list[ChartIn], Field(max_length=50)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]
_Desc = Annotated[str, Field(max_length=10_000)]
_Layout = Annotated[dict[Annotated[str, Field(max_length=64)], _Finite | Annotated[str, Field(max_length=200)]],
                    Field(max_length=20)]


class DashboardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name
    description: _Desc | None = None
    layout: _Layout | None = None
    charts: _Charts | None = None
    copy_from: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="copy the charts (and description) of this dashboard: a default or a saved one")


class DashboardPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name | None = None
    description: _Desc | None = None
    layout: _Layout | None = None
    charts: _Charts | None = None


def _store(request: Request) -> Store:
    st: AppState = request.app.state.podium
    return st.store


def _read_only(dashboard_id: str) -> None:
    if dashboard_id.startswith(DEFAULT_PREFIX):
        raise BadRequest(f"{dashboard_id!r} is a default dashboard and cannot change; copy it with "
                         f'POST /api/v1/dashboards {{"name": ..., "copy_from": "{dashboard_id}"}}',
                         details=[{"field": "dashboard_id"}])


@router.get("/dashboards", summary="List the saved dashboards and the default ones")
def list_dashboards(request: Request, key: _read) -> dict[str, Any]:
    st = _store(request)
    defaults = [{"id": d["id"], "name": d["name"], "description": d["description"], "default": True,
                 "chart_count": len(d["charts"])} for d in default_dashboards(recent_score_names(st, key.project_id))]
    saved = [{**d, "default": False} for d in st.dashboards.list_dashboards(key.project_id)]
    return {"data": saved, "defaults": defaults}


@router.post("/dashboards", status_code=201, summary="Create a dashboard (or copy one with copy_from)")
def create_dashboard(request: Request, body: DashboardIn, key: _write) -> dict[str, Any]:
    st = _store(request)
    charts = [c.model_dump() for c in body.charts] if body.charts is not None else None
    description = body.description
    layout = body.layout
    if body.copy_from is not None:
        src = get_dashboard(st, key.project_id, body.copy_from)
        if charts is None:
            charts = [{k: v for k, v in c.items() if k != "id"} for c in src["charts"]]
        description = description if description is not None else src.get("description")
        layout = layout if layout is not None else src.get("layout")
    out = st.dashboards.create(key.project_id, name=body.name, description=description, layout=layout,
                               charts=charts, created_by=key.public_key)
    out["default"] = False
    return out


@router.get("/dashboards/{dashboard_id}", summary="Get a dashboard and its charts")
def get_one(request: Request, dashboard_id: str, key: _read) -> dict[str, Any]:
    return get_dashboard(_store(request), key.project_id, dashboard_id)


@router.patch("/dashboards/{dashboard_id}", summary="Rename a dashboard or replace its charts")
def patch_dashboard(request: Request, dashboard_id: str, body: DashboardPatch, key: _write) -> dict[str, Any]:
    _read_only(dashboard_id)
    changes = body.model_dump(include=body.model_fields_set)
    if "name" in changes and changes["name"] is None:
        del changes["name"]
    if changes.get("charts") is None:
        changes.pop("charts", None)
    out = _store(request).dashboards.update(key.project_id, dashboard_id, changes)
    out["default"] = False
    return out


@router.delete("/dashboards/{dashboard_id}", status_code=204, summary="Delete a dashboard")
def delete_dashboard(request: Request, dashboard_id: str, key: _write) -> Response:
    _read_only(dashboard_id)
    _store(request).dashboards.delete(key.project_id, dashboard_id)
    return Response(status_code=204)


@router.get("/dashboards/{dashboard_id}/data", summary="Every chart's series for a time range")
def dashboard_data(
    request: Request,
    dashboard_id: str,
    key: _read,
    start: datetime | None = None,
    end: datetime | None = None,
    range_s: Annotated[int | None, Query(ge=60, le=MAX_RANGE_S)] = None,
    interval: Annotated[int | None, Query(ge=1, le=30 * DAY)] = None,
) -> dict[str, Any]:
    st = _store(request)
    d = get_dashboard(st, key.project_id, dashboard_id)
    layout = d.get("layout") or {}
    default_s = int(layout.get("range_s") or DAY) if isinstance(layout.get("range_s"), int | float) else DAY
    s, e = time_range(start, end, range_s, default_s)
    return {"id": d["id"], "start": s.isoformat(), "end": e.isoformat(),
            "charts": [{"id": c["id"], "title": c["title"], "chart_type": c["chart_type"],
                        **chart_series(st, key.project_id, c, s, e, interval)} for c in d["charts"]]}
