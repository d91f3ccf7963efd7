"""Guardrails: how often the project's guardrails allow, warn, flag, redact and block, each
rule's runs, firings, errors and latency, the recent decisions that were not "allow", the
project's default policy, and *Mark wrong*.

Marking a decision wrong (a false positive, or the action it should have taken) does two
things: a score ``guardrail.false_positive`` = true on the decision's span (source
``human``, through the ingest writer like every score from the UI), and an item in the
dataset ``guardrail-reviews`` (made when missing, through the same ``EvalService`` as
``POST /api/v1/datasets/{name}/items``): input the text as the guardrail saw it (redacted
where a rule redacted: originals are never stored), expected ``{"action": ...}``, metadata
the policy, rule, scanner, trace and span. Marking the same decision again replaces both.

The policy box calls the ``/api/v1/guardrails`` handlers (``guardrail_policies``), so the
names it accepts and the caches it clears are the API's.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from podium.core.records import ScoreDataType, ScoreIn
from podium.core.roles import Action, roles_for
from podium.errors import BadRequest, NotFound, PodiumError
from podium.evals.service import EvalService
from podium.server.convert import BatchBuilder
from podium.server.routes import guardrail_policies
from podium.server.ui.access import UiError, Viewer, check_origin, safe_next, ui_action
from podium.server.ui.pages import _form, _get, _is_htmx, _mark_ui, _st, _viewer, fragment, page
from podium.store.repos.guardrails import ACTIONS, FALSE_POSITIVE, SAMPLE_LIMIT

__all__ = ["REVIEW_DATASET", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

#: Where *Mark wrong* collects the decisions people disagreed with.
REVIEW_DATASET = "guardrail-reviews"
#: Marking needs both a score (ingest) and a dataset change (write): admin or member keys.
MARK_ROLES = roles_for(Action.WRITE)
WINDOWS: dict[str, tuple[str, int]] = {
    "24h": ("Last 24 hours", 86400),
    "7d": ("Last 7 days", 7 * 86400),
    "30d": ("Last 30 days", 30 * 86400),
}
_ATTR = "podium.guardrail."
#: The form's choice for "follow gateway.yaml" (null in the API).
INHERIT = "(file)"


def _window(request: Request) -> str:
    w = request.query_params.get("range", "24h")
    return w if w in WINDOWS else "24h"


def _policy_ctx(request: Request, v: Viewer) -> dict[str, Any]:
    """The project's default policy and the names it may pick (``GET /api/v1/guardrails/policies``)."""
    if _st(request).gateway is None:
        return {"policy_box": None}
    data = guardrail_policies.list_policies(request, v.api_key())
    return {"policy_box": {"default": data["default"], "policies": data["data"]}}


def _stats_page(request: Request, v: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    window = _window(request)
    now = datetime.now(UTC)
    start = now - timedelta(seconds=WINDOWS[window][1])
    stats = _st(request).store.guardrails.stats(v.project_id, start, now + timedelta(seconds=1))
    extra.setdefault("marked", request.query_params.get("marked"))
    extra.setdefault("saved", request.query_params.get("saved"))
    extra.setdefault("error", None)
    return page(request, "guardrails.html", status=status, nav="guardrails", window=window, windows=WINDOWS,
                stats=stats, start=start, end=now, sample_limit=SAMPLE_LIMIT, actions=ACTIONS,
                review_dataset=REVIEW_DATASET, inherit=INHERIT, can_mark=v.role in MARK_ROLES,
                **_policy_ctx(request, v), **extra)


@router.get("/guardrails", response_class=HTMLResponse)
@ui_action(Action.READ)
def guardrails_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    return _stats_page(request, v)



# --- mark wrong --------------------------------------------------------------------------------------


def _guard_span(request: Request, v: Viewer, trace_id: str, span_id: str) -> dict[str, Any]:
    try:
        span = _st(request).store.traces.get_span(v.project_id, trace_id, span_id)
    except NotFound:
        raise UiError(404, "Decision not found", f"no span {span_id!r} in trace {trace_id!r} of this project")
    if span["kind"] != "guardrail":
        raise UiError(400, "Not a guardrail decision",
                      f"span {span_id!r} is a {span['kind']} span; only guardrail spans can be marked wrong")
    return span


def blamed_rule(span: dict[str, Any]) -> dict[str, Any] | None:
    """The outcome a decision's reason names: the rule that blocked, else the first that fired."""
    attrs: dict[str, Any] = span["attributes"] if isinstance(span.get("attributes"), dict) else {}
    outcomes = [o for o in attrs.get(_ATTR + "outcomes") or [] if isinstance(o, dict)]
    by = attrs.get(_ATTR + "blocked_by")
    return (next((o for o in outcomes if o.get("rule") == by), None)
            or next((o for o in outcomes if o.get("action") not in (None, "none")), None))


def _item_id(trace_id: str, span_id: str) -> str:
    """One dataset item and one score per decision: marking again replaces them."""
    return "gr-" + hashlib.sha256(f"{trace_id}\x00{span_id}".encode()).hexdigest()[:32]


async def mark_wrong(request: Request, v: Viewer, form: dict[str, str]) -> dict[str, Any]:
    """Record a person's "this decision was wrong": the score and the dataset item."""
    st = _st(request)
    trace_id, span_id = form.get("trace_id", "").strip(), form.get("span_id", "").strip()
    if not trace_id or not span_id:
        raise BadRequest("say which decision: the form needs trace_id and span_id")
    span = await run_in_threadpool(_guard_span, request, v, trace_id, span_id)
    attrs: dict[str, Any] = span["attributes"] if isinstance(span.get("attributes"), dict) else {}
    action = attrs.get(_ATTR + "action")
    expected = form.get("expected", "allow").strip() or "allow"
    if expected not in ACTIONS:
        raise BadRequest(f"the expected action is one of {', '.join(ACTIONS)}, got {expected!r}")
    if expected == action:
        raise BadRequest(f"the guardrail already decided {action!r}; pick the action it should have taken")
    outcome = blamed_rule(span) or {}
    rule, scanner = outcome.get("rule"), outcome.get("scanner")
    policy = attrs.get(_ATTR + "policy")
    comment = form.get("comment", "").strip()[:10_000] or None
    meta = {"policy": policy, "rule": rule, "scanner": scanner, "trace_id": trace_id, "span_id": span_id}
    text = span.get("input")
    item = {"id": _item_id(trace_id, span_id), "input": text if text is not None else "",
            "expected": {"action": expected}, "metadata": {**meta, "action": action, "comment": comment},
            "source_trace_id": trace_id}
    body = {"items": [item], "create": True,
            "message": f"{'false positive' if expected == 'allow' else 'should be ' + expected}: "
                       f"{rule or 'guardrail'} on trace {trace_id}",
            "description": "guardrail decisions people marked wrong (the guardrails page's Mark wrong)"}
    # EvalRepo is what EvalService runs on in the API too (routes.evals._svc); its keyword
    # arguments are spelled out where the EvalStore protocol says **kw.
    svc = EvalService(st.store.evals)
    change = await run_in_threadpool(svc.change_items, v.project_id, REVIEW_DATASET, body, actor=v.actor,
                                     source={"kind": "guardrail-review"})
    try:
        score = ScoreIn(id=_item_id(trace_id, span_id), name=FALSE_POSITIVE, value=True,
                        data_type=ScoreDataType.BOOLEAN,
                        trace_id=trace_id, span_id=span_id, source="human", comment=comment,
                        metadata={**meta, "action": action, "expected": expected})
    except ValidationError as e:
        raise BadRequest(str(e.errors()[0].get("msg", "invalid score")))
    builder = BatchBuilder(v.project_id, lambda: st.prices_for(v.project_id))
    builder.add_score(score)
    refused = await st.ingester.submit(builder.batch)
    if refused:
        raise BadRequest(refused[0][1])
    return {"rule": rule, "expected": expected, "version": change.get("version"), "trace_id": trace_id,
            "span_id": span_id}


@router.post("/guardrails/mark", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def mark(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "mark guardrail decisions wrong")
    form = await _form(request)
    try:
        done = await mark_wrong(request, v, form)
        error = None
    except (BadRequest, NotFound) as e:
        done, error = None, e.message
    except PodiumError as e:
        done, error = None, e.message
    if _is_htmx(request):
        return fragment("_guard_marked.html", status=400 if error else 200, done=done, error=error,
                        review_dataset=REVIEW_DATASET)
    if error:
        raise UiError(400, "Not marked", error)
    back = safe_next(form.get("next") or "/guardrails")
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}marked={done['span_id'] if done else ''}", status_code=303)


# --- the project's default policy ---------------------------------------------------------------------


@router.post("/guardrails/policy", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_policy(request: Request) -> Response:
    """The project's default policy (``PUT /api/v1/guardrails/default``)."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "change the project's guardrail policy")
    form = await _form(request)
    raw = form.get("policy", "").strip()
    name: str | None = None if raw in ("", INHERIT) else raw
    try:
        if _st(request).gateway is None:
            raise BadRequest("the gateway is not enabled in this process; set guardrails in gateway.yaml")
        await run_in_threadpool(guardrail_policies.put_default, request, v.api_key(), {"policy": name})
    except PodiumError as e:
        return _stats_page(request, v, status=e.status_code, error=e.message)
    window = _get(request, "range") or form.get("range") or "24h"
    return RedirectResponse(f"/guardrails?range={window if window in WINDOWS else '24h'}&saved=policy",
                            status_code=303)
