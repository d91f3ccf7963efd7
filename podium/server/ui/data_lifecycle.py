"""Settings › Retention (periods, legal hold, the last runs and what each deleted, a dry run) and
Settings › Data subjects (look up a user id: rows per table; delete with a confirmation; export;
past receipts). Admins only. The handlers call the same governance functions as the REST API and
write the same audit notes (docs/governance.md#retention, #data-subject-requests)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.governance.actor import Actor, actor_of, note
from podium.governance.retention import policy_view, run_retention, run_view
from podium.governance.subject_requests import delete_subject, export_subject, subject_overview
from podium.server.ui.access import Viewer, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page
from podium.store.repos.lifecycle import KINDS

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

_RET = "manage retention"
_DSR = "answer data-subject requests"


def _actor(request: Request, v: Viewer) -> Actor:
    return actor_of(request.state) or Actor("local" if v.local else "key", v.actor, role=v.role,
                                            project_id=v.project_id)


def _retention_page(request: Request, v: Viewer, status: int = 200, **extra: Any) -> HTMLResponse:
    st = _st(request)
    view = policy_view(st.store, st.settings, v.project_id)
    ctx: dict[str, Any] = dict(nav="settings", tab="retention", view=view, kinds=KINDS, error=None, saved=None,
                               dry=None)
    ctx.update(extra)
    return page(request, "settings_retention.html", status=status, **ctx)


@router.get("/settings/retention", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def retention_settings(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, _RET)
    saved = request.query_params.get("saved")
    return await run_in_threadpool(_retention_page, request, v, saved=saved if saved in ("periods", "hold") else None)


def _days(raw: str, kind: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 100_000:
        raise ValueError(f"{kind}: enter a whole number of days from 0 (keep forever) to 100000, or leave it "
                         "empty to follow the installation default")
    return int(raw)


@router.post("/settings/retention", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_retention(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, _RET)
    form = await _form(request)
    st = _st(request)
    try:
        periods = {k: _days(form.get(k, ""), k) for k in KINDS}
    except ValueError as e:
        msg = str(e)
        return await run_in_threadpool(lambda: _retention_page(request, v, status=400, error=msg))
    before = st.store.lifecycle.policy(v.project_id)
    await run_in_threadpool(lambda: st.store.lifecycle.set_periods(v.project_id, periods,
                                                                   actor=_actor(request, v).label()))
    note(request.state, "retention.set", target_type="project", target_id=v.project_id,
         before={k: before.days(k) for k in KINDS}, after=periods)
    return RedirectResponse("/settings/retention?saved=periods", status_code=303)


@router.post("/settings/retention/hold", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_legal_hold(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, _RET)
    form = await _form(request)
    on = form.get("on") in ("on", "true", "1")
    reason = (form.get("reason") or "").strip()[:2000] or None
    st = _st(request)
    before = st.store.lifecycle.policy(v.project_id)
    p = await run_in_threadpool(lambda: st.store.lifecycle.set_legal_hold(v.project_id, on, reason=reason,
                                                                          actor=_actor(request, v).label()))
    note(request.state, "legal_hold.set", target_type="project", target_id=v.project_id,
         before={"on": before.legal_hold, "reason": before.legal_hold_reason},
         after={"on": p.legal_hold, "reason": p.legal_hold_reason})
    return RedirectResponse("/settings/retention?saved=hold", status_code=303)


@router.post("/settings/retention/dry-run", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def retention_dry_run(request: Request) -> HTMLResponse:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, _RET)
    st = _st(request)
    actor = _actor(request, v)

    def go() -> HTMLResponse:
        try:
            run = run_retention(st.store, st.settings, v.project_id, actor=actor, dry_run=True)
        except PodiumError as e:
            return _retention_page(request, v, status=e.status_code, error=e.message)
        return _retention_page(request, v, dry=run_view(run))

    return await run_in_threadpool(go)


def _subjects_page(request: Request, v: Viewer, user_id: str | None, status: int = 200,
                   **extra: Any) -> HTMLResponse:
    st = _st(request)
    overview = subject_overview(st.store, v.project_id, user_id) if user_id else None
    ctx: dict[str, Any] = dict(nav="settings", tab="subjects", user_id=user_id or "", overview=overview,
                               receipts=[r.as_dict() for r in st.store.lifecycle.requests(v.project_id)],
                               receipt=None, error=None)
    ctx.update(extra)
    return page(request, "settings_subjects.html", status=status, **ctx)


@router.get("/settings/subjects", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def subjects_settings(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, _DSR)
    user_id = (request.query_params.get("user_id") or "").strip()[:256] or None
    return await run_in_threadpool(_subjects_page, request, v, user_id)


@router.post("/settings/subjects/delete", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def subjects_delete(request: Request) -> HTMLResponse:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, _DSR)
    form = await _form(request)
    user_id = (form.get("user_id") or "").strip()[:256]
    confirm = (form.get("confirm") or "").strip()
    st = _st(request)
    actor = _actor(request, v)
    if not user_id:
        return await run_in_threadpool(lambda: _subjects_page(request, v, None, status=400,
                                                              error="enter the user id to delete"))
    if confirm != user_id:
        return await run_in_threadpool(lambda: _subjects_page(
            request, v, user_id, status=400, error="type the user id again in the confirmation field to delete"))

    def go() -> HTMLResponse:
        try:
            receipt = delete_subject(st.store, st.settings, v.project_id, user_id, actor=actor)
        except PodiumError as e:
            return _subjects_page(request, v, user_id, status=e.status_code, error=e.message)
        out = receipt.as_dict()
        note(request.state, "subject.delete", target_type="user", target_id=user_id, after=out)
        return _subjects_page(request, v, user_id, receipt=out)

    return await run_in_threadpool(go)


@router.get("/settings/subjects/export")
@ui_action(Action.ADMIN)
async def subjects_export(request: Request) -> Response:
    v = _viewer(request, Action.ADMIN, _DSR)
    user_id = (request.query_params.get("user_id") or "").strip()[:256]
    if not user_id:
        return RedirectResponse("/settings/subjects", status_code=303)
    note(request.state, "subject.export", target_type="user", target_id=user_id)
    chunks = (s.encode() for s in export_subject(_st(request).store, v.project_id, user_id))
    return StreamingResponse(chunks, media_type="application/json",
                             headers={"Content-Disposition": 'attachment; filename="subject-export.json"'})
