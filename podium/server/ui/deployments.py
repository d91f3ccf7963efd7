"""Canary deployments in the web UI: the list (``/deployments``, filtered by model or status) and
a canary's page (``/deployments/{id}``): its steps with the current one marked, the current
weights, the latest gate check (candidate against baseline, gate by gate), the eval-suite
evidence it started with and its audit trail, with Pause / Resume / Promote / Roll back / Abort
for admins. The buttons go through the same
:class:`~podium.monitor.canary.controller.CanaryController` as the API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.monitor.canary.controller import CanaryController
from podium.server.routes.deployments import public_canary
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

_STATUSES = ("active", "pending", "running", "paused", "promoted", "rolled_back", "aborted")
_ACTIONS = ("pause", "resume", "promote", "rollback", "abort")


def _ui(e: PodiumError) -> UiError:
    return UiError(e.status_code, "Not found" if e.status_code == 404 else "Not done", e.message)


@router.get("/deployments", response_class=HTMLResponse)
@ui_action(Action.READ)
def deployments_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    model = (request.query_params.get("model") or "").strip()[:200] or None
    status = request.query_params.get("status") or None
    if status not in _STATUSES:
        status = None
    rows = _st(request).store.canaries.list_canaries(v.project_id, status=status, model_name=model, limit=200)
    return page(request, "deployments.html", nav="deployments", canaries=[public_canary(r) for r in rows],
                model=model, picked=status, statuses=_STATUSES)


@router.get("/deployments/{canary_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def canary_page(request: Request, canary_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    repo = _st(request).store.canaries
    try:
        c = public_canary(repo.get(v.project_id, canary_id[:64]))
        events = repo.events(v.project_id, c["id"])
    except PodiumError as e:
        raise _ui(e) from None
    return page(request, "deployment.html", nav="deployments", c=c, events=list(reversed(events)),
                check=c.get("last_check") or None, can_admin=v.can_admin, done=request.query_params.get("done"))


@router.post("/deployments/{canary_id}/{action}", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def canary_action(request: Request, canary_id: str, action: str) -> Response:
    """pause, resume, promote, rollback or abort (``reason`` kept in the audit trail)."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "change canary deployments")
    if action not in _ACTIONS:
        raise UiError(404, "Unknown action", f"a canary takes {', '.join(_ACTIONS)}, not {action[:40]!r}")
    form = await _form(request)
    reason = (form.get("reason") or "").strip()[:2000] or None
    st = _st(request)
    ctl = CanaryController(st.store, gateway=st.gateway, base_url=st.settings.base_url)
    pid, actor = v.project_id, v.actor
    try:
        if action == "pause":
            await run_in_threadpool(ctl.pause, pid, canary_id, actor=actor)
        elif action == "resume":
            await run_in_threadpool(ctl.resume, pid, canary_id, actor=actor)
        elif action == "promote":
            await run_in_threadpool(ctl.promote, pid, canary_id, actor=actor, reason=reason)
        elif action == "rollback":
            await run_in_threadpool(ctl.rollback, pid, canary_id, actor=actor, reason=reason)
        else:
            await run_in_threadpool(ctl.abort, pid, canary_id, actor=actor, reason=reason)
    except PodiumError as e:
        raise _ui(e) from None
    return RedirectResponse(f"/deployments/{canary_id}?done={action}", status_code=303)
