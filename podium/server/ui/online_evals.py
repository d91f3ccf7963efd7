"""Evaluators: the online evaluation rules of the project (docs/online-evaluation.md).

``/evaluators`` lists each rule with its backlog, lag, evaluated per minute, failures and judge
cost, and (for write keys) a form to create one: filter, sample rate, a scorer picked from the
registered scorers, judges and guardrail scanners, its parameters, and the mapping.
``/evaluators/{id}`` shows one rule: its stats and per-minute chart, recent scores, enable /
disable, a backfill form and delete. Every change goes through the same checks as the REST API
(``podium.monitor.online.rules``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import BadRequest, NotFound, PodiumError
from podium.evals import scorer_specs
from podium.guardrails.registry import scanner_specs
from podium.monitor.online.backfill import backfill
from podium.monitor.online.mapping import DEFAULT_TRACE_MAPPING
from podium.monitor.online.rules import check_rule, parse_rule
from podium.monitor.online.scorers import is_judge_type
from podium.server.routes.online_evals import job_queue, rule_stats
from podium.server.ui.access import UiError, Viewer, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page
from podium.store.repos.scores import ScoreFilter

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

_FILTER_FIELDS = ("environment", "name", "user_id", "release", "model", "status")


def _picker() -> dict[str, list[dict[str, str]]]:
    """The scorer picker: registered scorers by category, judges, guardrail scanners."""
    scorers: list[dict[str, str]] = []
    judges: list[dict[str, str]] = []
    for s in scorer_specs():
        item = {"value": f"type:{s.type}", "label": s.type, "description": s.description,
                "params": ", ".join(p for p in s.params if p not in ("judge", "prompt_source", "weight", "invert"))}
        (judges if is_judge_type(s.type) else scorers).append({**item, "category": s.category})
    guards = [{"value": f"guardrail:{n}", "label": n, "description": sp.description, "category": "guardrail",
               "params": ""} for n, sp in sorted(scanner_specs().items())]
    return {"scorers": scorers, "judges": judges, "guardrails": guards}


def _list_page(request: Request, v: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    repo = _st(request).store.online_evals
    rules = repo.list_rules(v.project_id)
    stats = {r["id"]: rule_stats(request, r, queue_backlog=False) for r in rules}
    extra.setdefault("error", None)
    extra.setdefault("form", {})
    return page(request, "evaluators.html", status=status, nav="evaluators", rules=rules, stats=stats,
                picker=_picker() if v.can_write else None, filter_fields=_FILTER_FIELDS,
                default_mapping=DEFAULT_TRACE_MAPPING, **extra)


@router.get("/evaluators", response_class=HTMLResponse)
@ui_action(Action.READ)
def evaluators_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    return _list_page(request, v, deleted=request.query_params.get("deleted"))


def rule_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The create form as a rule body (the same checks as ``POST /api/v1/evaluation-rules``)."""
    raw_scorers = form.get("scorers_json", "").strip()
    if raw_scorers:
        try:
            scorers = json.loads(raw_scorers)
        except ValueError as e:
            raise BadRequest(f"scorers (JSON): {e}; write a list like "
                             '[{"type": "icontains", "params": {"value": "refund"}}]') from None
    else:
        pick = form.get("scorer", "")
        kind, _, name = pick.partition(":")
        if kind not in ("type", "guardrail") or not name:
            raise BadRequest("pick a scorer (or write the scorers as JSON)")
        params: Any = {}
        if form.get("params", "").strip():
            try:
                params = json.loads(form["params"])
            except ValueError as e:
                raise BadRequest(f"parameters (JSON): {e}; write an object like {{\"value\": \"refund\"}}") from None
        one: dict[str, Any] = {kind: name, "params": params}
        if form.get("model", "").strip() and kind == "type":
            one["model"] = form["model"].strip()
        scorers = [one]
    mapping: dict[str, Any] = {}
    for line in form.get("mapping", "").splitlines():
        if not line.strip():
            continue
        field, eq, path = line.partition("=")
        if not eq:
            raise BadRequest(f"mapping: write one `field = path` per line, got {line.strip()!r}")
        mapping[field.strip()] = path.strip() or None
    filt: dict[str, Any] = {k: form[f"f_{k}"].strip() for k in _FILTER_FIELDS if form.get(f"f_{k}", "").strip()}
    tags = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    if tags:
        filt["tags"] = tags
    body: dict[str, Any] = {"name": form.get("name", "").strip(), "filter": filt, "scorers": scorers,
                            "mapping": mapping}
    for key, conv in (("sample_rate", float), ("delay_s", float)):
        if form.get(key, "").strip():
            try:
                body[key] = conv(form[key])
            except ValueError:
                raise BadRequest(f"{key} must be a number") from None
    if form.get("target") == "span":
        body["target"] = {"type": "span", **{k: form[f"span_{k}"].strip() for k in ("name", "kind")
                                             if form.get(f"span_{k}", "").strip()}}
    return parse_rule(body)


@router.post("/evaluators", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def create_evaluator(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "create evaluation rules")
    form = await _form(request)
    try:
        rule = rule_from_form(form)
        rule["cursor_time"] = datetime.now(UTC)
        row = await run_in_threadpool(_st(request).store.online_evals.create, v.project_id, rule)
    except PodiumError as e:
        return _list_page(request, v, status=e.status_code, error=e.message, form=form)
    return RedirectResponse(f"/evaluators/{row['id']}?created=1", status_code=303)


def _rule(request: Request, v: Viewer, rule_id: str) -> dict[str, Any]:
    row = _st(request).store.online_evals.get(v.project_id, rule_id)
    if row is None:
        raise UiError(404, "Evaluator not found", f"no evaluation rule {rule_id!r} in this project")
    return row


def _recent_scores(request: Request, v: Viewer, rule_id: str, n: int = 20) -> list[dict[str, Any]]:
    page_ = _st(request).store.scores.list_scores(v.project_id, ScoreFilter(source="online"), limit=500)
    return [s for s in page_.items if (s.get("metadata") or {}).get("online_eval_rule") == rule_id][:n]


def _detail(request: Request, v: Viewer, rule_id: str, status: int = 200, **extra: Any) -> HTMLResponse:
    rule = _rule(request, v, rule_id)
    stats = rule_stats(request, rule)
    extra.setdefault("error", None)
    extra.setdefault("notice", None)
    by_minute = {s["minute"]: s for s in stats["series"]}
    top = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = [(top - timedelta(minutes=k)).isoformat() for k in range(59, -1, -1)]
    chart = {"minutes": minutes, "evaluated": [by_minute.get(m, {}).get("evaluated", 0) for m in minutes],
             "failed": [by_minute.get(m, {}).get("failed", 0) for m in minutes]}
    return page(request, "evaluator.html", status=status, nav="evaluators", rule=rule, stats=stats, chart=chart,
                scores=_recent_scores(request, v, rule_id), rule_json=json.dumps(
                    _no_nulls({k: rule[k] for k in ("target", "filter", "sample_rate", "scorers", "mapping", "delay_s")}),
                    indent=2, default=str), **extra)


def _no_nulls(v: Any) -> Any:
    """A rule as someone would write it: without the null and empty defaults."""
    if isinstance(v, dict):
        return {k: _no_nulls(x) for k, x in v.items() if x not in (None, {}, [])}
    if isinstance(v, list):
        return [_no_nulls(x) for x in v]
    return v


@router.get("/evaluators/{rule_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def evaluator_page(request: Request, rule_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    notice = "Created. It judges traces that arrive from now on; backfill below for older ones." \
        if request.query_params.get("created") else None
    return _detail(request, v, rule_id, notice=notice)


@router.post("/evaluators/{rule_id}/enabled", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def toggle_evaluator(request: Request, rule_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change evaluation rules")
    form = await _form(request)
    rule = _rule(request, v, rule_id)
    on = form.get("enabled") == "true"
    check_rule({**rule, "enabled": on})
    await run_in_threadpool(_st(request).store.online_evals.update, v.project_id, rule_id, {"enabled": on})
    return RedirectResponse(f"/evaluators/{rule_id}", status_code=303)


@router.post("/evaluators/{rule_id}/backfill", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def backfill_evaluator(request: Request, rule_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "backfill evaluation rules")
    form = await _form(request)
    rule = _rule(request, v, rule_id)
    try:
        if not rule["enabled"]:
            raise BadRequest("this evaluator is disabled; enable it before a backfill")
        start, end = (_when(form.get(k, ""), k) for k in ("start", "end"))
        got = await run_in_threadpool(backfill, _st(request).store, job_queue(request), rule, start, end)
    except PodiumError as e:
        return _detail(request, v, rule_id, status=e.status_code, error=e.message)
    return _detail(request, v, rule_id, notice=f"Backfill: {got['matched']} traces in range, "
                                               f"{got['enqueued']} queued for evaluation.")


def _when(raw: str, field: str) -> datetime:
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest(f"{field}: give a date and time such as 2026-03-01T12:00 (UTC)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@router.post("/evaluators/{rule_id}/delete", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def delete_evaluator(request: Request, rule_id: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "delete evaluation rules")
    if not await run_in_threadpool(_st(request).store.online_evals.delete, v.project_id, rule_id):
        raise NotFound(f"no evaluation rule {rule_id!r} in this project")
    return RedirectResponse("/evaluators?deleted=1", status_code=303)
