"""The UI's routes: server-rendered pages and the HTMX fragments they load.

Handlers read through the same store repositories as the REST routes, scoped to the
viewer's project, with the same role checks; writes (scores) go through the same ingest
writer. Fragments answer HTMX requests (``HX-Request``); the same URLs without HTMX
answer with a full page or a redirect, so links and forms work without JavaScript.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from podium.core.records import ScoreIn
from podium.core.roles import Action, allowed
from podium.errors import BadRequest, NotFound, PodiumError
from podium.server.audit_log import noted
from podium.server.convert import BatchBuilder
from podium.server.state import AppState
from podium.server.ui.access import (
    COOKIE,
    UiError,
    Viewer,
    check_origin,
    local_mode,
    resolve_viewer,
    safe_next,
    ui_action,
)
from podium.server.ui.render import chat_messages, environment, path_segment, query
from podium.store.repos.dashboard import Bucketing, DashboardRepo
from podium.store.repos.projects import ROLES
from podium.store.repos.scores import ScoreFilter
from podium.store.repos.traces import TraceFilter

__all__ = ["router"]

env = environment()

#: Spans per lazy-tree request (roots, or one span's children); "load more" fetches the next page.
TREE_PAGE = 100
#: A trace with at most this many spans opens with its whole tree expanded.
SMALL_TRACE = 20
TRACES_PAGE = 50

RANGES: dict[str, tuple[str, int, int]] = {
    # key: (label, seconds, bucket seconds)
    "1h": ("Last hour", 3600, 60),
    "6h": ("Last 6 hours", 6 * 3600, 300),
    "24h": ("Last 24 hours", 86400, 900),
    "7d": ("Last 7 days", 7 * 86400, 2 * 3600),
    "30d": ("Last 30 days", 30 * 86400, 6 * 3600),
    "90d": ("Last 90 days", 90 * 86400, 86400),
}
TRACE_RANGES = {"15m": ("Last 15 minutes", 900), **{k: (v[0], v[1]) for k, v in RANGES.items()}}
SORTS = {
    "start_time": "Start time",
    "latency_ms": "Latency",
    "total_cost": "Cost",
    "total_tokens": "Tokens",
    "span_count": "Spans",
}
RAW_SPAN_FIELDS = ("input", "output", "metadata", "attributes", "model_parameters", "usage_details")
RAW_TRACE_FIELDS = ("input", "output", "metadata")


def _mark_ui(request: Request) -> None:
    request.state.ui = True


router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])


# --- plumbing -------------------------------------------------------------------------------------


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _viewer(request: Request, action: Action = Action.READ, what: str = "read data") -> Viewer:
    """The viewer of this request, or a 403 page unless its role may perform ``action`` (the
    action the route is tagged with, ``@ui_action``)."""
    v = resolve_viewer(request)
    request.state.viewer = v
    v.need(action, what)
    return v


def _dash(request: Request) -> DashboardRepo:
    store = _st(request).store
    repo = getattr(store, "dashboard", None)  # the columnar one when spans live in ClickHouse
    return repo if isinstance(repo, DashboardRepo) else DashboardRepo(store.engine)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true" and not request.headers.get("hx-history-restore-request")


def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    st = _st(request)
    ctx.setdefault("viewer", getattr(request.state, "viewer", None))
    ctx.setdefault("nav", "")
    ctx.setdefault("assets_missing", getattr(request.app.state, "ui_assets_missing", False))
    ctx["request"] = request
    ctx["version"] = request.app.version
    ctx["local_mode"] = local_mode(request)
    ctx["settings"] = st.settings
    html = env.get_template(template).render(**ctx)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def fragment(template: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(env.get_template(template).render(**ctx), status_code=status,
                        headers={"Cache-Control": "no-store", **(headers or {})})


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (what HTMX and plain forms send), last value wins."""
    ctype = request.headers.get("content-type", "")
    if ctype and not ctype.startswith("application/x-www-form-urlencoded"):
        raise UiError(415, "Unsupported form", "send the form as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > 256 * 1024:
        raise UiError(413, "Form too large", "keep form fields under 256 KB")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _get(request: Request, name: str) -> str | None:
    v = request.query_params.get(name)
    return v.strip() if v is not None and v.strip() != "" else None


# --- dashboard --------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
@ui_action(Action.READ)
def dashboard(request: Request) -> HTMLResponse:
    v = _viewer(request)
    rng = request.query_params.get("range", "7d")
    if rng not in RANGES:
        rng = "7d"
    _label, seconds, bucket_s = RANGES[rng]
    now = datetime.now(UTC)
    b = Bucketing.covering(now - timedelta(seconds=seconds), now + timedelta(seconds=1), bucket_s)
    repo = _dash(request)
    overview = repo.overview(v.project_id, b)
    models = repo.by_model(v.project_id, b)
    prompts = repo.by_prompt(v.project_id, b.start, b.end)
    users = repo.top_groups(v.project_id, "user_id", b.start, b.end)
    sessions = repo.top_groups(v.project_id, "session_id", b.start, b.end)
    pv_calls = repo.prompt_series(v.project_id, b, [(p["prompt_name"], p["prompt_version"]) for p in prompts[:8]])
    chart = {**overview["series"], "bucket": bucket_s, "models": models["models"], "model_cost": models["cost"],
             "model_calls": models["calls"], "prompt_versions": list(pv_calls), "prompt_calls": pv_calls}
    return page(
        request, "dashboard.html", nav="dashboard", range=rng, ranges=RANGES, totals=overview["totals"],
        chart=chart, models=models["rows"], prompts=prompts, top_users=users, top_sessions=sessions,
        start=b.start, end=now,
    )


# --- traces ----------------------------------------------------------------------------------------


def _num(request: Request, name: str, errors: list[str], label: str) -> float | None:
    raw = _get(request, name)
    if raw is None:
        return None
    try:
        x = float(raw)
    except ValueError:
        errors.append(f"{label} must be a number, got {raw!r}")
        return None
    if x != x or abs(x) > 1e300:
        errors.append(f"{label} must be a finite number")
        return None
    return x


def _time(request: Request, name: str, errors: list[str], label: str) -> datetime | None:
    raw = _get(request, name)
    if raw is None:
        return None
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        errors.append(f"{label} must be a date and time like 2026-03-01T09:00, got {raw!r}")
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def trace_filter(request: Request) -> tuple[TraceFilter, list[str]]:
    """The traces page's filters from the query string (the REST names, plus ``range``)."""
    errors: list[str] = []
    tags: list[str] = []
    for raw in request.query_params.getlist("tag"):
        tags.extend(t.strip() for t in raw.split(",") if t.strip())
    start_after = _time(request, "from", errors, "From")
    rng = _get(request, "range")
    if rng:
        if rng in TRACE_RANGES:
            since = datetime.now(UTC) - timedelta(seconds=TRACE_RANGES[rng][1])
            start_after = max(start_after, since) if start_after else since
        else:
            errors.append(f"unknown time range {rng!r}")
    status = _get(request, "status")
    if status not in (None, "ok", "error"):
        errors.append("status must be ok or error")
        status = None
    f = TraceFilter(
        start_after=start_after,
        start_before=_time(request, "to", errors, "To"),
        name=_get(request, "name"),
        q=_get(request, "q"),
        user_id=_get(request, "user_id"),
        session_id=_get(request, "session_id"),
        tags=tags[:50],
        status=status,
        model=_get(request, "model"),
        environment=_get(request, "environment"),
        release=_get(request, "release"),
        min_latency_ms=_num(request, "min_latency_ms", errors, "Min latency"),
        max_latency_ms=_num(request, "max_latency_ms", errors, "Max latency"),
        min_cost=_num(request, "min_cost", errors, "Min cost"),
        max_cost=_num(request, "max_cost", errors, "Max cost"),
        score_name=_get(request, "score_name"),
        min_score=_num(request, "min_score", errors, "Min score"),
        max_score=_num(request, "max_score", errors, "Max score"),
    )
    if (f.min_score is not None or f.max_score is not None) and not f.score_name:
        errors.append("a score range needs a score name")
    return f, errors


@router.get("/traces", response_class=HTMLResponse)
@ui_action(Action.READ)
def traces(request: Request) -> HTMLResponse:
    v = _viewer(request)
    f, errors = trace_filter(request)
    sort = request.query_params.get("sort", "start_time")
    sort = sort if sort in SORTS else "start_time"
    order = "asc" if request.query_params.get("order") == "asc" else "desc"
    cursor = _get(request, "cursor")
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val != ""]
    rows: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        try:
            pg = _st(request).store.traces.list_traces(v.project_id, f, sort=sort, order=order,  # type: ignore[arg-type]
                                                       limit=TRACES_PAGE, cursor=cursor)
            rows, next_cursor = pg.items, pg.next_cursor
        except BadRequest as e:
            errors.append(e.message)
    ctx: dict[str, Any] = dict(rows=rows, next_cursor=next_cursor, params=params, errors=errors, cursor=cursor,
                               f=f, sort=sort, order=order)
    if _is_htmx(request) and request.headers.get("hx-target") == "results":
        return fragment("_traces_table.html", **ctx)
    return page(request, "traces.html", nav="traces", sorts=SORTS, ranges=TRACE_RANGES,
                q=request.query_params, tags=", ".join(f.tags), **ctx)


def _trace_or_404(request: Request, v: Viewer, trace_id: str) -> dict[str, Any]:
    try:
        return _st(request).store.traces.get_trace(v.project_id, trace_id)
    except NotFound:
        raise UiError(404, "Trace not found",
                      f"no trace {trace_id!r} in project {v.project_name!r}; traces appear about a second "
                      "after the SDK flushes them")


def _tree_items(request: Request, v: Viewer, trace: dict[str, Any], *, parent_id: str | None, level: int,
                cursor: str | None, shown: int = 0, total: int | None = None,
                open_path: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of the lazy tree, flat, in display order: one page of roots (``parent_id`` None) or of
    one span's children, then a "load more" row when there are more. Spans named in
    ``open_path`` (a top-down chain of ancestors) are expanded in place, so a deep link to a
    nested span shows where it sits."""
    pg = _st(request).store.traces.list_spans(
        v.project_id, trace["id"], parent_id=parent_id, roots_only=parent_id is None, limit=TREE_PAGE,
        cursor=cursor, include_io=False, with_child_counts=True,
    )
    items: list[dict[str, Any]] = []
    for s in pg.items:
        _waterfall(s, trace)
        expand = bool(open_path) and s["id"] == open_path[0] and s["child_count"] > 0
        items.append({"kind": "span", "span": s, "level": level, "expanded": expand})
        if expand:
            items += _tree_items(request, v, trace, parent_id=s["id"], level=level + 1, cursor=None,
                                 total=s["child_count"], open_path=open_path[1:])
    shown += len(pg.items)
    if pg.next_cursor:
        items.append({"kind": "more", "level": level, "parent_id": parent_id, "cursor": pg.next_cursor,
                      "shown": shown, "total": total})
    return items


def _waterfall(s: dict[str, Any], trace: dict[str, Any]) -> None:
    """The span's bar in the waterfall, as percentages of the trace's duration."""
    total_ms = max(float(trace.get("latency_ms") or 0.0), 0.0)
    off = (s["start_time"] - trace["start_time"]).total_seconds() * 1000.0
    dur = float(s["latency_ms"] or 0.0)
    if total_ms > 0:
        left = min(max(off / total_ms * 100.0, 0.0), 100.0)
        width = min(max(dur / total_ms * 100.0, 0.3), 100.0 - left) if s["end_time"] else 100.0 - left
    else:
        left, width = 0.0, 100.0
    s["wf_left"] = round(left, 3)
    s["wf_width"] = round(max(width, 0.3), 3)


def _small_tree_items(request: Request, v: Viewer, trace: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The whole tree, every span expanded, for a trace of at most SMALL_TRACE spans (None for a
    bigger one: it opens lazily). A span whose parent has not arrived shows at the top level."""
    pg = _st(request).store.traces.list_spans(v.project_id, trace["id"], limit=SMALL_TRACE, include_io=False)
    if pg.next_cursor:
        return None
    ids = {s["id"] for s in pg.items}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in pg.items:  # already in (start_time, id) order
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else None, []).append(s)
    items: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(parent: str | None, level: int) -> None:
        for s in children.get(parent, []):
            if s["id"] in seen:  # a parent cycle in bad data
                continue
            seen.add(s["id"])
            s["child_count"] = len(children.get(s["id"], []))
            _waterfall(s, trace)
            items.append({"kind": "span", "span": s, "level": level, "expanded": s["child_count"] > 0})
            walk(s["id"], level + 1)

    walk(None, 1)
    return items


def _scores(request: Request, v: Viewer, trace_id: str, span_id: str | None = None) -> list[dict[str, Any]]:
    pg = _st(request).store.scores.list_scores(v.project_id, ScoreFilter(trace_id=trace_id, span_id=span_id),
                                               limit=500)
    return pg.items


def _span_ctx(request: Request, v: Viewer, trace: dict[str, Any], span_id: str) -> dict[str, Any]:
    try:
        span = _st(request).store.traces.get_span(v.project_id, trace["id"], span_id)
    except NotFound:
        raise UiError(404, "Span not found", f"no span {span_id!r} in trace {trace['id']!r}")
    cst = span.get("completion_start_time")
    span["ttft_ms"] = (cst - span["start_time"]).total_seconds() * 1000.0 if cst else None
    chat_in = chat_out = None
    if span["kind"] == "generation" or isinstance(span.get("input"), list | dict):
        chat_in = chat_messages(span.get("input"))
        chat_out = chat_messages(span.get("output"), default_role="assistant" if chat_in else None)
    return dict(span=span, trace=trace, chat_in=chat_in, chat_out=chat_out,
                span_scores=_scores(request, v, trace["id"], span_id))


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def trace_page(request: Request, trace_id: str) -> HTMLResponse:
    v = _viewer(request)
    trace = _trace_or_404(request, v, trace_id)
    repo = _dash(request)
    roots_total = repo.count_roots(v.project_id, trace_id)
    selected = _get(request, "span")
    missing = None
    try:
        detail = _span_ctx(request, v, trace, selected) if selected else {}
    except UiError:  # e.g. a gateway span still in the ingest queue: show the trace, say so
        detail, missing, selected = {}, selected, None
    detail.pop("trace", None)
    items = _small_tree_items(request, v, trace) if trace["span_count"] <= SMALL_TRACE else None
    if items is None:
        path = tuple(repo.span_path(v.project_id, trace_id, selected)[:-1]) if selected else ()
        items = _tree_items(request, v, trace, parent_id=None, level=1, cursor=None, total=roots_total,
                            open_path=path)
    from podium.server.ui.attributions import panel_context  # that module builds on this one

    return page(request, "trace.html", nav="traces", trace=trace, items=items, roots_total=roots_total,
                scores=_scores(request, v, trace_id), detail=bool(detail), selected=selected,
                missing_span=missing, **detail, **panel_context(request, v, trace_id))


@router.get("/traces/{trace_id}/children", response_class=HTMLResponse)
@ui_action(Action.READ)
def trace_children(request: Request, trace_id: str) -> HTMLResponse:
    """Rows of the lazy tree: roots (no parent_id) or one span's children, a page at a time."""
    v = _viewer(request)
    trace = _trace_or_404(request, v, trace_id)
    parent_id = _get(request, "parent_id")
    try:
        level = max(1, min(int(request.query_params.get("level", "1")), 1000))
        shown = max(0, int(request.query_params.get("shown", "0")))
        total = int(request.query_params["total"]) if request.query_params.get("total") else None
    except ValueError:
        raise UiError(400, "Bad request", "level, shown and total must be integers")
    items = _tree_items(request, v, trace, parent_id=parent_id, level=level, cursor=_get(request, "cursor"),
                        shown=shown, total=total)
    return fragment("_span_rows.html", trace=trace, items=items)


@router.get("/traces/{trace_id}/spans/{span_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def span_detail(request: Request, trace_id: str, span_id: str) -> Response:
    v = _viewer(request)
    if not _is_htmx(request):
        return RedirectResponse(f"/traces/{_seg(trace_id)}{query({'span': span_id})}", status_code=303)
    trace = _trace_or_404(request, v, trace_id)
    return fragment("_span_detail.html", viewer=v, **_span_ctx(request, v, trace, span_id))


def _seg(s: str) -> str:
    return path_segment(s)


def _raw(value: Any, name: str) -> Response:
    body = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": f'inline; filename="{name}.json"', "Cache-Control": "no-store",
                             "X-Content-Type-Options": "nosniff"})


@router.get("/traces/{trace_id}/spans/{span_id}/raw/{field}")
@ui_action(Action.READ)
def span_raw(request: Request, trace_id: str, span_id: str, field: str) -> Response:
    """One field of a span as plain JSON: the escape hatch from the truncated views."""
    v = _viewer(request)
    if field not in RAW_SPAN_FIELDS:
        raise UiError(404, "No such field", f"raw fields are: {', '.join(RAW_SPAN_FIELDS)}")
    try:
        span = _st(request).store.traces.get_span(v.project_id, trace_id, span_id)
    except NotFound:
        raise UiError(404, "Span not found", f"no span {span_id!r} in trace {trace_id!r}")
    return _raw(span.get(field), f"{span_id}-{field}")


@router.get("/traces/{trace_id}/raw/{field}")
@ui_action(Action.READ)
def trace_raw(request: Request, trace_id: str, field: str) -> Response:
    v = _viewer(request)
    if field not in RAW_TRACE_FIELDS:
        raise UiError(404, "No such field", f"raw fields are: {', '.join(RAW_TRACE_FIELDS)}")
    trace = _trace_or_404(request, v, trace_id)
    return _raw(trace.get(field), f"{trace_id}-{field}")


@router.get("/traces/{trace_id}/scores", response_class=HTMLResponse)
@ui_action(Action.READ)
def trace_scores(request: Request, trace_id: str) -> HTMLResponse:
    v = _viewer(request)
    trace = _trace_or_404(request, v, trace_id)
    return fragment("_scores.html", trace=trace, scores=_scores(request, v, trace_id), list_id="scores")


def _parse_score(form: dict[str, str], trace_id: str) -> ScoreIn:
    kind = form.get("data_type", "numeric")
    raw = form.get("value", "").strip()
    value: float | bool | str
    if kind == "boolean":
        if raw.lower() in ("1", "true", "up", "yes"):
            value = True
        elif raw.lower() in ("0", "false", "down", "no"):
            value = False
        else:
            raise BadRequest("a thumbs score is up or down")
    elif kind == "numeric":
        try:
            value = float(raw)
        except ValueError:
            raise BadRequest(f"a numeric score needs a number, got {raw!r}")
    elif kind == "categorical":
        if not raw:
            raise BadRequest("a categorical score needs a category")
        value = raw
    else:
        raise BadRequest("the score type is thumbs, numeric or categorical")
    try:
        return ScoreIn(
            name=form.get("name", "").strip() or "human-feedback",
            value=value,
            data_type=kind,  # type: ignore[arg-type]
            trace_id=trace_id,
            span_id=form.get("span_id") or None,
            source="human",
            comment=form.get("comment", "").strip() or None,
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadRequest(f"{where + ': ' if where else ''}{first.get('msg', 'invalid score')}")


@router.post("/traces/{trace_id}/scores", response_class=HTMLResponse)
@ui_action(Action.INGEST)
async def add_score(request: Request, trace_id: str) -> Response:
    """A score by hand (source "human"): thumbs, numeric or categorical, with a comment."""
    check_origin(request)
    v = _viewer(request, Action.INGEST, "add scores")
    st = _st(request)
    form = await _form(request)
    trace = _trace_or_404(request, v, trace_id)
    span_id = form.get("span_id") or None
    error = None
    try:
        if span_id:
            st.store.traces.get_span(v.project_id, trace_id, span_id)  # 404 for a span of another trace
        score = _parse_score(form, trace_id)
        builder = BatchBuilder(v.project_id, lambda: st.prices_for(v.project_id))
        builder.add_score(score)
        refused = await st.ingester.submit(builder.batch)
        if refused:
            raise BadRequest(refused[0][1])
    except (BadRequest, NotFound) as e:
        error = e.message
    if not _is_htmx(request):
        if error:
            raise UiError(400, "Score not saved", error)
        back = f"/traces/{_seg(trace_id)}" + (query({"span": span_id}) if span_id else "")
        return RedirectResponse(back, status_code=303)
    can_read = v.can_read
    scores = _scores(request, v, trace_id, span_id) if can_read else []
    headers = {"HX-Trigger": "podium:scores-changed"} if span_id and not error else None
    return fragment("_scores.html", status=200 if not error else 400, headers=headers, trace=trace, scores=scores,
                    list_id="span-scores" if span_id else "scores", error=error, saved=not error)


# --- sessions and users -----------------------------------------------------------------------------


@router.get("/sessions", response_class=HTMLResponse)
@ui_action(Action.READ)
def sessions(request: Request) -> HTMLResponse:
    v = _viewer(request)
    user_id = _get(request, "user_id")
    try:
        pg = _st(request).store.traces.list_groups(v.project_id, "session_id", limit=TRACES_PAGE,
                                                   cursor=_get(request, "cursor"), user_id=user_id)
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val]
    return page(request, "sessions.html", nav="sessions", rows=pg.items, next_cursor=pg.next_cursor,
                params=params, user_id=user_id, cursor=_get(request, "cursor"))


@router.get("/sessions/{session_id:path}", response_class=HTMLResponse)
@ui_action(Action.READ)
def session_page(request: Request, session_id: str) -> HTMLResponse:
    v = _viewer(request)
    repo = _dash(request)
    summary = repo.group_summary(v.project_id, "session_id", session_id)
    if summary is None:
        raise UiError(404, "Session not found", f"no traces with session_id {session_id!r} in this project")
    try:
        pg = _st(request).store.traces.list_traces(
            v.project_id, TraceFilter(session_id=session_id), sort="start_time", order="asc", limit=TRACES_PAGE,
            cursor=_get(request, "cursor"), include_io=True,
        )
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    scores = _st(request).store.scores.list_scores(v.project_id, ScoreFilter(session_id=session_id), limit=200).items
    return page(request, "session.html", nav="sessions", session_id=session_id, summary=summary, turns=pg.items,
                next_cursor=pg.next_cursor, cursor=_get(request, "cursor"), session_scores=scores,
                score_stats=repo.scores_by_name(v.project_id, session_id=session_id))


@router.get("/users", response_class=HTMLResponse)
@ui_action(Action.READ)
def users(request: Request) -> HTMLResponse:
    v = _viewer(request)
    try:
        pg = _st(request).store.traces.list_groups(v.project_id, "user_id", limit=TRACES_PAGE,
                                                   cursor=_get(request, "cursor"))
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    return page(request, "users.html", nav="users", rows=pg.items, next_cursor=pg.next_cursor,
                cursor=_get(request, "cursor"))


@router.get("/users/{user_id:path}", response_class=HTMLResponse)
@ui_action(Action.READ)
def user_page(request: Request, user_id: str) -> HTMLResponse:
    v = _viewer(request)
    repo = _dash(request)
    summary = repo.group_summary(v.project_id, "user_id", user_id)
    if summary is None:
        raise UiError(404, "User not found", f"no traces with user_id {user_id!r} in this project")
    st = _st(request)
    try:
        sess = st.store.traces.list_groups(v.project_id, "session_id", limit=TRACES_PAGE, user_id=user_id,
                                           cursor=_get(request, "cursor"))
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    recent = st.store.traces.list_traces(v.project_id, TraceFilter(user_id=user_id), limit=10)
    return page(request, "user.html", nav="users", user_id=user_id, summary=summary, sessions=sess.items,
                next_cursor=sess.next_cursor, cursor=_get(request, "cursor"), recent=recent.items,
                score_stats=repo.scores_by_name(v.project_id, user_id=user_id))


# --- settings: API keys -------------------------------------------------------------------------------


def _keys_ctx(request: Request, v: Viewer, **extra: Any) -> dict[str, Any]:
    keys = _st(request).store.projects.list_keys(v.project_id) if v.can_admin else []
    return dict(keys=keys, roles=ROLES, **extra)


@router.get("/settings", response_class=HTMLResponse)
@ui_action(Action.READ)
def settings_page(request: Request) -> HTMLResponse:
    v = _viewer(request)  # the project and its protected labels: a read
    project = _st(request).store.projects.get_project(v.project_id)
    protected = _st(request).store.prompts.get_settings(v.project_id)["protected_labels"]
    return page(request, "settings.html", nav="settings", project=project, protected=protected,
                saved=request.query_params.get("saved"), **_keys_ctx(request, v))


@router.post("/settings/keys", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def create_key(request: Request) -> HTMLResponse:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "manage keys and settings")
    form = await _form(request)
    role = form.get("role", "member")
    note = form.get("note", "").strip()[:500] or None
    error = new = None
    try:
        new = _st(request).store.projects.create_key(v.project_id, role=role, note=note)
        noted(request.state, "key.create", asdict(new.key), target_type="key", target_id=new.key.public_key)
    except PodiumError as e:
        error = e.message
    ctx = _keys_ctx(request, v, new=new, error=error)
    if _is_htmx(request):
        return fragment("_keys.html", status=400 if error else 201, viewer=v, **ctx)
    project = _st(request).store.projects.get_project(v.project_id)
    protected = _st(request).store.prompts.get_settings(v.project_id)["protected_labels"]
    return page(request, "settings.html", status=400 if error else 201, nav="settings", project=project,
                protected=protected, **ctx)


@router.post("/settings/keys/{public_key}/revoke", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def revoke_key(request: Request, public_key: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "manage keys and settings")
    st = _st(request)
    error = None
    try:
        noted(request.state, "key.revoke", asdict(st.store.projects.revoke_key(v.project_id, public_key)),
              target_type="key", target_id=public_key)
    except NotFound as e:
        error = e.message
    st.auth.invalidate()
    if not _is_htmx(request):
        if error:
            raise UiError(404, "Key not found", error)
        return RedirectResponse("/settings", status_code=303)
    if v.public_key == public_key:
        resp = fragment("_keys.html", viewer=v, **_keys_ctx(request, v, error=error))
        resp.headers["HX-Redirect"] = "/login"
        return resp
    return fragment("_keys.html", status=404 if error else 200, viewer=v, **_keys_ctx(request, v, error=error))


# --- login -----------------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
@ui_action(None)
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", next=safe_next(request.query_params.get("next")),
                message=request.query_params.get("message"))


@router.post("/login", response_class=HTMLResponse)
@ui_action(None)
async def login(request: Request) -> Response:
    check_origin(request)
    form = await _form(request)
    secret = form.get("secret_key", "").strip()
    nxt = safe_next(form.get("next"))
    try:
        key = _st(request).auth.authenticate(f"Bearer {secret}")
    except PodiumError:
        return page(request, "login.html", status=401, next=nxt,
                    error="that secret key is unknown or revoked; `podium up` prints the default project's "
                          "keys (kept in $PODIUM_HOME/default-keys.env), and `podium keys create --role viewer` "
                          "makes a new one")
    if not allowed(key.role, Action.READ):
        return page(request, "login.html", status=403, next=nxt,
                    error=f"a key with role {key.role!r} cannot read data; use an admin, member or viewer key")
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(COOKIE, secret, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    max_age=7 * 86400, path="/")
    return resp


@router.post("/logout")
@ui_action(None)
async def logout(request: Request) -> Response:
    check_origin(request)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp
