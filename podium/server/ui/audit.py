"""The audit log's page: ``/settings/audit`` (a filtered table) and ``/settings/audit/{id}`` (one
event with its before and after). Admins only, like ``GET /api/v1/audit-events``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.server.ui.access import UiError, ui_action
from podium.server.ui.pages import _get, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_FILTERS = ("actor", "action", "target_type", "target_id", "since", "until")
_WHAT = "read the audit log"


def _time(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise UiError(400, "Bad time", f"{name} {raw!r} is not a date or time; use e.g. 2026-12-01 or "
                      "2026-12-01T09:30") from None


@router.get("/settings/audit", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def audit_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, _WHAT)
    filters = {k: _get(request, k) for k in _FILTERS}
    cursor = _get(request, "cursor")
    try:
        pg = await run_in_threadpool(
            _st(request).store.audit.list_events, v.project_id, actor=filters["actor"], action=filters["action"],
            target_type=filters["target_type"], target_id=filters["target_id"],
            since=_time(filters["since"], "since"), until=_time(filters["until"], "until"), limit=50, cursor=cursor)
    except PodiumError as e:
        raise UiError(e.status_code, "Cannot list the audit log", e.message) from e
    params = {k: val for k, val in filters.items() if val}
    return page(request, "audit.html", nav="settings", tab="audit", events=pg.items, next_cursor=pg.next_cursor,
                cursor=cursor, filters=filters, params=params)


@router.get("/settings/audit/{event_id}", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def audit_event_page(request: Request, event_id: str) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, _WHAT)
    if not event_id.isdigit() or len(event_id) > 18:
        raise UiError(404, "No such event", f"audit event {event_id!r} does not exist; event ids are numbers")
    e = await run_in_threadpool(_st(request).store.audit.get, int(event_id), project_id=v.project_id)
    if e is None:
        raise UiError(404, "No such event", f"this project has no audit event {event_id}")
    event: dict[str, Any] = e.to_dict()
    return page(request, "audit_event.html", nav="settings", tab="audit", e=event)
