"""Alerts: the project's rules with their state, last value and mute / unmute / resolve / test
buttons, the recent history with each delivery (``/alerts``); a rule's page with its form, a
chart of the watched value against the threshold and its own history (``/alerts/{rule}``); and
the form for a new rule (``/alerts/new``).

The forms call the ``/api/v1/alert-rules`` handlers' own checks (``routes.alerts.check_rule``,
``mute_until``) and the same :class:`~podium.monitor.alerting.Alerting` for resolve and test, so
the UI accepts and refuses exactly what the API does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from podium.core.metrics import MetricQuery
from podium.core.roles import Action
from podium.errors import PodiumError
from podium.server.routes.alerts import (
    MuteIn,
    RuleIn,
    alerting_for,
    check_rule,
    mute_until,
    public_rule,
    rule_fields,
)
from podium.server.ui.access import UiError, Viewer, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page
from podium.store.repos.alerts import AlertRepo

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

METRICS = ["error_rate", "errors", "traces", "latency", "cost", "tokens", "input_tokens", "output_tokens", "spans",
           "score:", "guardrail:*"]
AGGS = ["rate", "avg", "count", "sum", "min", "max", "p50", "p90", "p95", "p99"]
#: Points in a rule page's chart.
CHART_POINTS = 60


def _repo(request: Request) -> AlertRepo:
    return AlertRepo(_st(request).store.engine)


def _rule_or_404(request: Request, v: Viewer, ref: str) -> dict[str, Any]:
    row = _repo(request).get_rule(v.project_id, ref)
    if row is None:
        raise UiError(404, "Alert rule not found", f"no alert rule {ref!r} in this project; see the list on /alerts")
    return row


def _chart(request: Request, v: Viewer, rule: dict[str, Any]) -> dict[str, Any] | None:
    """The watched value per window-sized bucket over the last ``CHART_POINTS`` windows (metric rules)."""
    cond = rule["condition"]
    if "metric" not in cond:
        return None
    now = datetime.now(UTC)
    step = max(60, int(rule["window_s"]))
    start = now - timedelta(seconds=step * CHART_POINTS)
    q = MetricQuery(metric=cond["metric"], agg=cond.get("agg") or "avg", filters=dict(cond.get("filters") or {}))
    try:
        data = _st(request).store.metrics.series(v.project_id, q, start, now, step, top=1)
    except (PodiumError, AttributeError):
        return None
    values = data["series"][0]["values"] if data.get("series") else [None] * len(data.get("buckets", []))
    thr = rule["threshold"] if rule["kind"] == "threshold" else None
    return {"t": data.get("buckets", []), "values": values, "threshold": thr,
            "label": f"{q.agg}({q.metric})"}


def _form_body(form: dict[str, str], current: dict[str, Any] | None) -> dict[str, Any]:
    """A ``RuleIn`` body from the form (blank fields: the defaults; blank channels on an edit:
    keep the rule's channels, which the page never shows in full)."""
    def num(name: str) -> Any:
        raw = form.get(name, "").strip()
        if raw == "":
            return None
        try:
            return float(raw) if name == "threshold" else int(raw)
        except ValueError:
            raise UiError(400, "Not saved", f"{name.replace('_', ' ')} must be a number, not {raw!r}")

    body: dict[str, Any] = {"name": form.get("name", "").strip(), "severity": form.get("severity") or "warning",
                            "kind": form.get("kind") or "threshold", "op": form.get("op") or ">",
                            "enabled": form.get("enabled") == "on", "two_sided": form.get("two_sided") == "on",
                            "description": form.get("description", "").strip() or None,
                            "change_mode": form.get("change_mode") or "relative"}
    for f in ("threshold", "window_s", "baseline_offset_s", "anomaly_windows", "min_samples", "cooldown_s",
              "renotify_s", "eval_interval_s"):
        val = num(f)
        if val is not None:
            body[f] = val
    if form.get("watch") == "drift":
        body["condition"] = {"drift": form.get("drift", "").strip(), "statistic": form.get("statistic", "").strip()}
    else:
        filters: dict[str, Any] = {}
        for line in form.get("filters", "").splitlines():
            if line.strip():
                k, sep, val = line.partition("=")
                if not sep:
                    raise UiError(400, "Not saved", f"write each filter as name=value, not {line.strip()!r}")
                filters[k.strip()] = val.strip()
        body["condition"] = {"metric": form.get("metric", "").strip(), "agg": form.get("agg") or "avg",
                             "filters": filters}
    raw = form.get("channels", "").strip()
    if raw:
        try:
            body["channels"] = json.loads(raw)
        except ValueError as e:
            raise UiError(400, "Not saved", f"channels must be JSON, e.g. "
                                            f'[{{"type": "webhook", "params": {{"url": "env:SLACK_URL"}}}}]: {e}')
    elif current is not None:
        body["channels"] = current.get("channels") or []
    return body


def _validate(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return check_rule(RuleIn.model_validate(body))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise UiError(400, "Not saved", f"{where}: {first.get('msg')}") from None


def _form_ctx(rule: dict[str, Any] | None) -> dict[str, Any]:
    if rule is None:
        return {"f": {"severity": "warning", "kind": "threshold", "op": ">", "window_s": 300, "cooldown_s": 300,
                      "renotify_s": 0, "eval_interval_s": 30, "min_samples": 0, "baseline_offset_s": 86400,
                      "anomaly_windows": 12, "change_mode": "relative", "enabled": True, "metric": "error_rate",
                      "agg": "rate", "watch": "metric", "filters": "", "threshold": ""}}
    f = rule_fields(rule)
    cond = rule["condition"]
    f.update(watch="drift" if "drift" in cond else "metric", metric=cond.get("metric", ""), agg=cond.get("agg", ""),
             drift=cond.get("drift", ""), statistic=cond.get("statistic", ""),
             filters="\n".join(f"{k}={v}" for k, v in (cond.get("filters") or {}).items()))
    f.setdefault("baseline_offset_s", 86400)
    f.setdefault("anomaly_windows", 12)
    f.setdefault("change_mode", "relative")
    return {"f": f}


def _rule_page(request: Request, v: Viewer, rule: dict[str, Any] | None, *, status: int = 200,
               error: str | None = None, form: dict[str, Any] | None = None, done: str | None = None) -> HTMLResponse:
    ctx = _form_ctx(rule)
    if form is not None:
        ctx["f"].update(form)
    events: list[dict[str, Any]] = []
    chart = None
    if rule is not None:
        events, _ = _repo(request).events(v.project_id, rule_id=rule["id"], limit=50)
        chart = _chart(request, v, rule)
    return page(request, "alert_rule.html", status=status, nav="alerts", rule=public_rule(rule) if rule else None,
                events=events, chart=chart, error=error, done=done, metrics=METRICS, aggs=AGGS,
                can_write=v.can_edit_prompts, **ctx)


@router.get("/alerts", response_class=HTMLResponse)
@ui_action(Action.READ)
def alerts_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    repo = _repo(request)
    rules = [public_rule(r) for r in repo.list_rules(v.project_id)]
    events, _ = repo.events(v.project_id, limit=30)
    now = datetime.now(UTC)
    return page(request, "alerts.html", nav="alerts", rules=rules, events=events, now=now,
                can_write=v.can_edit_prompts, done=request.query_params.get("done"),
                error=request.query_params.get("error"))


@router.get("/alerts/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def new_rule_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.WRITE, "create alert rules")
    return _rule_page(request, v, None)


@router.post("/alerts/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def create_rule(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "create alert rules")
    form = await _form(request)
    try:
        fields = _validate(_form_body(form, None))
        row = await run_in_threadpool(_repo(request).create_rule, v.project_id, fields, now=datetime.now(UTC),
                                      actor=v.actor)
    except (UiError, PodiumError) as e:
        return _rule_page(request, v, None, status=400, error=e.message, form=form)
    return RedirectResponse(f"/alerts/{row['id']}?done=created", status_code=303)


@router.get("/alerts/{rule_ref}", response_class=HTMLResponse)
@ui_action(Action.READ)
def rule_page(request: Request, rule_ref: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    return _rule_page(request, v, _rule_or_404(request, v, rule_ref), done=request.query_params.get("done"))


@router.post("/alerts/{rule_ref}", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def save_rule(request: Request, rule_ref: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change alert rules")
    rule = _rule_or_404(request, v, rule_ref)
    form = await _form(request)
    try:
        fields = _validate(_form_body(form, rule))
        await run_in_threadpool(_repo(request).update_rule, v.project_id, rule["id"], fields, now=datetime.now(UTC))
    except (UiError, PodiumError) as e:
        return _rule_page(request, v, rule, status=400, error=e.message, form=form)
    return RedirectResponse(f"/alerts/{rule['id']}?done=saved", status_code=303)


@router.post("/alerts/{rule_ref}/{action}", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def rule_action(request: Request, rule_ref: str, action: str) -> Response:
    """mute (``duration``), unmute, resolve, test, delete; back to ``next`` (this rule or /alerts)."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change alert rules")
    rule = _rule_or_404(request, v, rule_ref)
    form = await _form(request)
    back = "/alerts" if form.get("next") == "list" else f"/alerts/{rule['id']}"
    repo = _repo(request)
    now = datetime.now(UTC)
    try:
        if action == "mute":
            until = mute_until(MuteIn(duration=form.get("duration") or "1h"), now)
            await run_in_threadpool(repo.set_muted, v.project_id, rule["id"], until, now=now, event={
                "status": "muted", "episode": rule["episode"], "actor": v.actor,
                "message": f"muted until {until.isoformat(timespec='seconds')} by {v.actor}"})
        elif action == "unmute":
            await run_in_threadpool(repo.set_muted, v.project_id, rule["id"], None, now=now, event={
                "status": "unmuted", "episode": rule["episode"], "actor": v.actor, "message": f"unmuted by {v.actor}"})
        elif action == "resolve":
            if rule["state"] != "firing":
                raise UiError(409, "Not resolved", f"alert rule {rule['name']!r} is not firing")
            await run_in_threadpool(alerting_for(request).resolve, rule, v.actor)
        elif action == "test":
            if not rule.get("channels"):
                raise UiError(400, "Not sent", "this rule has no channels; add one in its form first")
            sent = await run_in_threadpool(alerting_for(request).test, rule, v.actor)
            failed = [d for d in sent if not d.ok]
            if failed:
                raise UiError(502, "Test alert not delivered",
                              "; ".join(f"{d.channel}: {d.error}" for d in failed))
        elif action == "delete":
            await run_in_threadpool(repo.delete_rule, v.project_id, rule["id"])
            return RedirectResponse("/alerts?done=deleted", status_code=303)
        else:
            raise UiError(404, "Unknown action", f"alert rules take mute, unmute, resolve, test or delete, not {action!r}")
    except PodiumError as e:
        raise UiError(e.status_code, "Not done", e.message) from None
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}done={action}", status_code=303)
