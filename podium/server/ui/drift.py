"""Drift: the project's drift monitors with their last status and a create form (``/drift``), and
one monitor's page (``/drift/{id}``): p-values and the chosen statistic over time with their
threshold lines (uPlot, ``static/drift.js``), the latest result's per-feature table, new topic
clusters with example texts, the run history, *Run now* and *Delete*.

The forms go through the same checks as ``/api/v1/drift-monitors`` (``check_monitor``) and the
same runner (``record_run``). Without the ``monitor`` extra the pages say how to install it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action, roles_for
from podium.errors import PodiumError, ValidationFailed
from podium.monitor.drift.spec import DEFAULT_THRESHOLDS, FEATURES, check_monitor
from podium.monitor.drift.stattests import INSTALL_HINT, require
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _form, _get, _mark_ui, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

WRITE_ROLES = roles_for(Action.WRITE)
WINDOWS = {"3600": "1 hour", "21600": "6 hours", "86400": "1 day", "604800": "7 days"}
REFERENCES = {"604800": "the 7 days before", "86400": "the day before", "2592000": "the 30 days before"}
#: Points on the chart at most (newest results).
CHART_POINTS = 500


def _extra_missing() -> str | None:
    try:
        require()
    except PodiumError as e:
        return e.message
    return None


def _list_page(request: Request, status: int = 200, error: str | None = None,
               form: dict[str, str] | None = None) -> HTMLResponse:
    v = request.state.viewer
    store = _st(request).store
    monitors = store.drift.monitors(v.project_id)
    latest = store.drift.latest_results(v.project_id)
    return page(request, "drift.html", status=status, nav="drift", monitors=monitors, latest=latest,
                can_write=v.role in WRITE_ROLES, error=error, form=form or {}, features=FEATURES,
                windows=WINDOWS, references=REFERENCES, missing=_extra_missing(), install_hint=INSTALL_HINT,
                defaults=DEFAULT_THRESHOLDS)


@router.get("/drift", response_class=HTMLResponse)
@ui_action(Action.READ)
def drift_page(request: Request) -> HTMLResponse:
    _viewer(request, Action.READ)
    return _list_page(request)


def fields_from_form(form: dict[str, str], features: list[str]) -> dict[str, Any]:
    """The create form's fields as the API's body (then ``check_monitor``)."""
    def integer(name: str, default: int) -> int:
        raw = form.get(name, "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ValidationFailed(f"{name}: {raw!r} is not a whole number",
                                   details=[{"field": name, "message": "not a whole number"}]) from None

    filt = {k: form[k].strip() for k in ("environment", "release", "model") if form.get(k, "").strip()}
    if form.get("trace_name", "").strip():
        filt["name"] = form["trace_name"].strip()
    scope: dict[str, Any] = {"filter": filt}
    if form.get("span_kind", "").strip():
        scope["span_kind"] = form["span_kind"].strip()
    dataset = form.get("dataset", "").strip()
    reference: dict[str, Any] = ({"kind": "dataset", "dataset": dataset} if dataset else
                                 {"kind": "rolling", "length_s": integer("reference_s", 7 * 86400)})
    scores = [s.strip() for s in form.get("scores", "").split(",") if s.strip()]
    return {"name": form.get("monitor_name", "").strip(), "description": form.get("description", "").strip() or None,
            "scope": scope, "reference": reference, "window_s": integer("window_s", 86400),
            "features": features + [f"score:{s}" for s in scores] or None,
            "sample_size": integer("sample_size", 1000), "interval_s": integer("interval_s", 3600)}


@router.post("/drift", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def create(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "create drift monitors")
    body = await request.body()
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) if len(body) < 256 * 1024 else []
    form = dict(pairs)
    features = [val for k, val in pairs if k == "feature" and val in FEATURES]
    store = _st(request).store
    try:
        require()
        fields = check_monitor(fields_from_form(form, features))
        ref = fields["reference"]
        if ref["kind"] == "dataset" and not store.drift.dataset_exists(v.project_id, ref["dataset"]):
            raise ValidationFailed(f"no dataset {ref['dataset']!r} in this project; leave it empty for a rolling "
                                   "reference")
        m = await run_in_threadpool(store.drift.create, v.project_id, fields)
    except PodiumError as e:
        return _list_page(request, status=e.status_code, error=e.message, form=form)
    return RedirectResponse(f"/drift/{m['id']}?created=1", status_code=303)


def _chart(results: list[dict[str, Any]], monitor: dict[str, Any], stat: str | None) -> dict[str, Any]:
    ok = [r for r in reversed(results) if r["status"] == "ok"][-CHART_POINTS:]
    th = {**DEFAULT_THRESHOLDS, **(monitor.get("thresholds") or {})}
    names = sorted({k for r in ok for k in (r["statistics"] or {}) if k.endswith("_p_value")})
    stats = sorted({k for r in ok for k in (r["statistics"] or {})
                    if not k.endswith(("_p_value", "_drifted")) and k not in ("reference_n", "current_n")})
    if stat not in stats:
        stat = "input_embedding_auc" if "input_embedding_auc" in stats else (stats[0] if stats else None)
    t = [int(r["computed_at"].timestamp()) for r in ok]
    return {
        "t": t,
        "p_values": {n.removesuffix("_p_value"): [(r["statistics"] or {}).get(n) for r in ok] for n in names},
        "p_threshold": th["p_value"],
        "stat": stat,
        "stat_values": [(r["statistics"] or {}).get(stat) for r in ok] if stat else [],
        "stat_threshold": th["embedding_auc"] if stat and stat.endswith("_auc") else None,
        "drifted": [1 if r["drifted"] else 0 for r in ok],
        "stats": stats,
    }


@router.get("/drift/{monitor_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def monitor_page(request: Request, monitor_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    store = _st(request).store
    m = store.drift.get(v.project_id, monitor_id)
    if m is None:
        raise UiError(404, "Drift monitor not found", f"no drift monitor {monitor_id!r} in this project; "
                                                      "see the list under Drift")
    results = store.drift.results(v.project_id, m["id"], limit=CHART_POINTS)
    latest = results[0] if results else None
    last_ok = next((r for r in results if r["status"] == "ok"), None)
    return page(request, "drift_monitor.html", nav="drift", m=m, results=results[:50], latest=latest,
                last_ok=last_ok, chart=_chart(results, m, _get(request, "stat")),
                can_write=v.role in WRITE_ROLES, missing=_extra_missing(), install_hint=INSTALL_HINT,
                thresholds={**DEFAULT_THRESHOLDS, **(m.get("thresholds") or {})},
                created=_get(request, "created"), ran=_get(request, "ran"), now=datetime.now(UTC))


@router.post("/drift/{monitor_id}/run", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def run_now(request: Request, monitor_id: str) -> Response:
    from podium.monitor.drift.job import record_run

    check_origin(request)
    v = _viewer(request, Action.WRITE, "run drift monitors")
    await _form(request)
    store = _st(request).store
    m = await run_in_threadpool(store.drift.get, v.project_id, monitor_id)
    if m is None:
        raise UiError(404, "Drift monitor not found", f"no drift monitor {monitor_id!r} in this project")
    try:
        require()
    except PodiumError as e:
        raise UiError(503, "Drift needs the monitor extra", e.message) from None
    await run_in_threadpool(record_run, store, v.project_id, m)
    return RedirectResponse(f"/drift/{m['id']}?ran=1", status_code=303)


@router.post("/drift/{monitor_id}/delete", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def delete(request: Request, monitor_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "delete drift monitors")
    await _form(request)
    store = _st(request).store
    m = await run_in_threadpool(store.drift.get, v.project_id, monitor_id)
    if m is None:
        raise UiError(404, "Drift monitor not found", f"no drift monitor {monitor_id!r} in this project")
    await run_in_threadpool(store.drift.delete, v.project_id, m["id"])
    return RedirectResponse("/drift", status_code=303)
