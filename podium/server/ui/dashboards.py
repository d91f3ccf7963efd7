"""Dashboards in the web UI: the list (defaults and saved), a dashboard's grid of charts with a
time range and interval picker, and the chart editor (metric, aggregation, dimension, filters,
interval, chart type) with a live preview. Charts are drawn by ``static/dashboards.js`` with the
vendored uPlot, from the series rendered into the page as JSON.

The data comes from the same functions as ``/api/v1/dashboards`` (``routes.dashboards``), so
the UI and the API show the same numbers. Viewing needs a read key; changing a dashboard (and
the editor) a write key (admin or member). Default dashboards are read-only: *Copy* makes an
editable one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action, roles_for
from podium.errors import BadRequest, NotFound, PodiumError
from podium.server.dashboards_default import DEFAULT_PREFIX, default_dashboards
from podium.server.routes.dashboards import chart_series, get_dashboard, recent_score_names
from podium.server.ui.access import UiError, Viewer, check_origin, ui_action
from podium.server.ui.pages import RANGES, _form, _get, _mark_ui, _st, _viewer, page
from podium.store.repos.dashboards import CHART_TYPES, check_chart
from podium.store.repos.metrics import AGGS, DIMENSIONS, aggs_for

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

#: Interval choices (seconds) besides "auto".
INTERVAL_CHOICES = {"60": "1 minute", "300": "5 minutes", "900": "15 minutes", "3600": "1 hour",
                    "21600": "6 hours", "86400": "1 day"}
#: The editor's filter fields (trace filters), by form name.
FILTER_FIELDS = {"environment": "Environment", "release": "Release", "model": "Model", "user_id": "User id",
                 "session_id": "Session id", "name": "Trace name", "tags": "Tag", "status": "Status",
                 "score_name": "Has score"}
#: The editor's metric menu; "score:" and "guardrail:" take the name in the next field.
METRIC_CHOICES = ["traces", "spans", "errors", "error_rate", "latency", "cost", "tokens", "input_tokens",
                  "output_tokens", "score:", "guardrail:"]


def _range(request: Request, d: dict[str, Any] | None = None) -> tuple[str, datetime, datetime]:
    rng = request.query_params.get("range") or ""
    if rng not in RANGES:
        layout = (d or {}).get("layout") or {}
        want = layout.get("range_s") if isinstance(layout, dict) else None
        rng = next((k for k, r in RANGES.items() if r[1] == want), "24h")
    now = datetime.now(UTC)
    return rng, now - timedelta(seconds=RANGES[rng][1]), now + timedelta(seconds=1)


def _interval(request: Request) -> int | None:
    raw = _get(request, "interval")
    return int(raw) if raw in INTERVAL_CHOICES else None


def value_format(metric: str, agg: str) -> str:
    """How the UI writes a chart's numbers: dur | money | pct | score | num."""
    if agg == "rate" or metric == "error_rate" or (metric.startswith("guardrail:") and agg == "avg"):
        return "pct"
    if agg in ("count", "sum") and metric not in ("latency", "cost") and not metric.startswith("score:"):
        return "num"
    if metric == "latency":
        return "dur"
    if metric == "cost":
        return "money"
    return "score" if metric.startswith("score:") else "num"


def _dashboard(request: Request, v: Viewer, dashboard_id: str) -> dict[str, Any]:
    try:
        return get_dashboard(_st(request).store, v.project_id, dashboard_id)
    except NotFound as e:
        raise UiError(404, "Dashboard not found", e.message)


def _data(request: Request, v: Viewer, chart: dict[str, Any], start: datetime, end: datetime,
          interval: int | None) -> dict[str, Any]:
    try:
        return chart_series(_st(request).store, v.project_id, chart, start, end, interval)
    except BadRequest as e:
        return {"error": e.message, "buckets": [], "series": []}


@router.get("/dashboards", response_class=HTMLResponse)
@ui_action(Action.READ)
def dashboards_page(request: Request) -> HTMLResponse:
    v = _viewer(request)
    st = _st(request).store
    defaults = default_dashboards(recent_score_names(st, v.project_id))
    saved = st.dashboards.list_dashboards(v.project_id)
    return page(request, "dashboards.html", nav="dashboards", defaults=defaults, saved=saved,
                can_write=v.role in _writers(), error=request.query_params.get("error"))


def _writers() -> tuple[str, ...]:
    return roles_for(Action.WRITE)


@router.post("/dashboards", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def create_dashboard(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change dashboards")
    form = await _form(request)
    name = form.get("name", "").strip()[:200]
    copy_from = form.get("copy_from", "").strip() or None
    try:
        if not name:
            if copy_from is None:
                raise BadRequest("give the new dashboard a name")
            src = await run_in_threadpool(_dashboard, request, v, copy_from)
            name = f"{src['name']} (copy {datetime.now(UTC):%Y-%m-%d %H:%M:%S})"
        charts: list[dict[str, Any]] = []
        description = form.get("description", "").strip()[:10_000] or None
        layout = None
        if copy_from is not None:
            src = await run_in_threadpool(_dashboard, request, v, copy_from)
            charts = [{k: val for k, val in c.items() if k != "id"} for c in src["charts"]]
            description = description or src.get("description")
            layout = src.get("layout")
        d = await run_in_threadpool(_st(request).store.dashboards.create, v.project_id, name=name,
                                    description=description, layout=layout, charts=charts, created_by=v.actor)
    except PodiumError as e:
        return RedirectResponse("/dashboards?" + urlencode({"error": e.message}), status_code=303)
    return RedirectResponse(f"/dashboards/{quote(d['id'], safe='')}", status_code=303)


@router.get("/dashboards/{dashboard_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def dashboard_view(request: Request, dashboard_id: str) -> HTMLResponse:
    v = _viewer(request)
    d = _dashboard(request, v, dashboard_id)
    rng, start, end = _range(request, d)
    interval = _interval(request)
    charts = [{"id": c["id"], "title": c["title"], "chart_type": c["chart_type"], "metric": c["metric"],
               "agg": c["agg"], "dimension": c["dimension"], "filters": c.get("filters") or {},
               "fmt": value_format(c["metric"], c["agg"]), **_data(request, v, c, start, end, interval)}
              for c in d["charts"]]
    return page(request, "dashboard_view.html", nav="dashboards", d=d, charts=charts, range=rng, ranges=RANGES,
                interval=str(interval or ""), intervals=INTERVAL_CHOICES, start=start, end=end,
                can_write=v.role in _writers(), editable=not d.get("default"),
                error=request.query_params.get("error"))


# --- the chart editor --------------------------------------------------------------------------------


def _chart_from(qp: Mapping[str, str], base: dict[str, Any] | None) -> dict[str, Any]:
    """The chart the editor's fields describe (query string or form; ``base`` on first open)."""
    if "metric" not in qp and base is not None:
        return dict(base)
    metric = (qp.get("metric") or "traces").strip()
    if metric in ("score:", "guardrail:"):
        metric += (qp.get("metric_arg") or "").strip() or ("*" if metric == "guardrail:" else "")
    filters: dict[str, Any] = {}
    for k in FILTER_FIELDS:
        val = (qp.get("f_" + k) or "").strip()
        if val:
            filters[k] = [val] if k == "tags" else val[:1000]
    top = (qp.get("top") or "").strip()
    interval = (qp.get("interval_s") or "").strip()
    return {"id": qp.get("chart") or None, "title": (qp.get("title") or "").strip()[:200],
            "metric": metric[:300], "agg": (qp.get("agg") or "count")[:16], "dimension": qp.get("dimension") or None,
            "filters": filters, "chart_type": (qp.get("chart_type") or "line")[:16],
            "interval_s": int(interval) if interval in INTERVAL_CHOICES else None,
            "top": int(top) if top.isdigit() and 1 <= int(top) <= 50 else None, "range_s": None}


def _editor(request: Request, v: Viewer, d: dict[str, Any], chart: dict[str, Any], status: int = 200,
            error: str | None = None) -> HTMLResponse:
    rng, start, end = _range(request, d)
    preview: dict[str, Any] | None = None
    try:
        checked = check_chart(chart)
        preview = {**checked, "fmt": value_format(checked["metric"], checked["agg"]),
                   **_data(request, v, checked, start, end, None)}
    except BadRequest as e:
        error = error or e.message
    metric = chart.get("metric") or ""
    try:
        valid_aggs = aggs_for(metric)
    except BadRequest:
        valid_aggs = list(AGGS)
    return page(request, "dashboard_chart.html", status=status, nav="dashboards", d=d, chart=chart,
                preview=preview, error=error, range=rng, ranges=RANGES, metrics=METRIC_CHOICES, aggs=AGGS,
                valid_aggs=valid_aggs, dimensions=DIMENSIONS, chart_types=CHART_TYPES, intervals=INTERVAL_CHOICES,
                filter_fields=FILTER_FIELDS)


@router.get("/dashboards/{dashboard_id}/chart", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def chart_editor(request: Request, dashboard_id: str) -> HTMLResponse:
    v = _viewer(request, Action.WRITE, "change dashboards")
    d = _dashboard(request, v, dashboard_id)
    if d.get("default"):
        raise UiError(400, "Default dashboards are read-only", "copy the dashboard first (the Copy button), "
                      "then add or change charts on the copy")
    cid = request.query_params.get("chart")
    base = next((c for c in d["charts"] if c["id"] == cid), None) if cid else None
    if cid and base is None:
        raise UiError(404, "Chart not found", f"dashboard {d['name']!r} has no chart {cid!r}")
    return _editor(request, v, d, _chart_from(request.query_params, base))


@router.post("/dashboards/{dashboard_id}/chart", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def save_chart(request: Request, dashboard_id: str) -> Response:
    """Add the chart (or replace the one with the form's ``chart`` id)."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change dashboards")
    form = await _form(request)
    d = await run_in_threadpool(_dashboard, request, v, dashboard_id)
    if d.get("default"):
        raise UiError(400, "Default dashboards are read-only", "copy the dashboard first, then change the copy")
    chart = _chart_from(form, None)
    charts = [dict(c) for c in d["charts"]]
    cid = chart.get("id")
    idx = next((i for i, c in enumerate(charts) if c["id"] == cid), None) if cid else None
    if idx is None:
        chart["id"] = None
        charts.append(chart)
    else:
        charts[idx] = chart
    try:
        await run_in_threadpool(_st(request).store.dashboards.update, v.project_id, d["id"], {"charts": charts})
    except PodiumError as e:
        return _editor(request, v, d, chart, status=e.status_code, error=e.message)
    return RedirectResponse(f"/dashboards/{quote(d['id'], safe='')}", status_code=303)


@router.post("/dashboards/{dashboard_id}/charts/{chart_id}/delete", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def delete_chart(request: Request, dashboard_id: str, chart_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change dashboards")
    d = await run_in_threadpool(_dashboard, request, v, dashboard_id)
    if d.get("default"):
        raise UiError(400, "Default dashboards are read-only", "copy the dashboard first, then change the copy")
    charts = [c for c in d["charts"] if c["id"] != chart_id]
    await run_in_threadpool(_st(request).store.dashboards.update, v.project_id, d["id"], {"charts": charts})
    return RedirectResponse(f"/dashboards/{quote(d['id'], safe='')}", status_code=303)


@router.post("/dashboards/{dashboard_id}/delete", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def delete_dashboard(request: Request, dashboard_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change dashboards")
    if dashboard_id.startswith(DEFAULT_PREFIX):
        raise UiError(400, "Default dashboards are read-only", "default dashboards cannot be deleted")
    try:
        await run_in_threadpool(_st(request).store.dashboards.delete, v.project_id, dashboard_id)
    except NotFound as e:
        raise UiError(404, "Dashboard not found", e.message)
    return RedirectResponse("/dashboards", status_code=303)
