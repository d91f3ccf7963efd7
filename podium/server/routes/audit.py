"""The audit log's API: ``/api/v1/audit-events`` (list, one event, verify, export). Admin keys only.

A key sees its own project's events; ``verify`` walks the whole installation's chain (one chain,
docs/governance.md#audit-log) and answers with the first broken event's number and the head hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from podium.core.roles import Action
from podium.errors import NotFound
from podium.governance.actor import note
from podium.governance.audit import export_lines, verify
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/audit-events", tags=["audit"], route_class=StrictJSONRoute)
Admin = Annotated[ApiKey, needs(Action.ADMIN, "read the audit log")]


class AuditActor(BaseModel):
    kind: str = Field(description="key | user | local | cli | system | anonymous")
    id: str
    name: str | None = None
    role: str | None = None


class AuditEventOut(BaseModel):
    id: int = Field(description="the event's position in the hash chain")
    created_at: datetime
    project_id: str | None
    actor: AuditActor
    action: str = Field(description="dotted, e.g. prompt.label.move, key.create; http.<method> for generic events")
    target_type: str | None
    target_id: str | None
    method: str | None
    route: str | None = Field(description="the route template, e.g. /api/v1/prompts/{name}/labels/{label}")
    path: str | None
    status: int | None
    ip: str | None
    user_agent: str | None
    before: Any = Field(default=None, description="the value before (when under 4 KiB; else only its digest)")
    after: Any = None
    before_digest: str | None = Field(description="sha256 of the canonical JSON of the value before")
    after_digest: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    data: list[AuditEventOut]
    next_cursor: str | None


class VerifyOut(BaseModel):
    ok: bool
    checked: int = Field(description="events whose hash was recomputed")
    head_seq: int = Field(description="the number of the newest event")
    head_hash: str = Field(description="the newest event's hash: keep it elsewhere to detect a rewritten chain")
    broken_event: int | None = Field(description="the first event that fails the check")
    reason: str | None


def _st(request: Request) -> AppState:
    return request.app.state.podium


Since = Annotated[datetime | None, Query(description="events at or after this time (ISO 8601)")]
Until = Annotated[datetime | None, Query(description="events before this time (ISO 8601)")]
ActorQ = Annotated[str | None, Query(description="an actor's id or name (a public key, an email, `local`)")]
ActionQ = Annotated[str | None, Query(max_length=128, description="an action or a dotted prefix: `prompt.label`")]
TargetType = Annotated[str | None, Query(max_length=64, description="e.g. prompt, key, model")]
TargetId = Annotated[str | None, Query(max_length=512, description="e.g. a prompt's name")]


@router.get("", response_model=AuditPage, summary="Audit events of the project, newest first (admin)")
def list_events(
    request: Request, key: Admin, actor: ActorQ = None, action: ActionQ = None, target_type: TargetType = None,
    target_id: TargetId = None, since: Since = None, until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None,
) -> dict[str, Any]:
    page = _st(request).store.audit.list_events(key.project_id, actor=actor, action=action, target_type=target_type,
                                                target_id=target_id, since=since, until=until, limit=limit,
                                                cursor=cursor)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.get("/verify", response_model=VerifyOut, summary="Walk the hash chain; name the first broken event (admin)")
async def verify_chain(request: Request, key: Admin) -> dict[str, Any]:
    store = _st(request).store

    def run() -> dict[str, Any]:
        head = store.audit.head()
        return verify(store.audit.iter_events(), head).to_dict()

    return await anyio.to_thread.run_sync(run)


@router.get("/export", response_class=StreamingResponse,
            summary="Export the project's audit events as JSON Lines or CSV (admin; the export is audited)")
def export(
    request: Request, key: Admin, format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
    actor: ActorQ = None, action: ActionQ = None, target_type: TargetType = None, target_id: TargetId = None,
    since: Since = None, until: Until = None,
) -> StreamingResponse:
    """Oldest first. Values are decoded in JSON Lines and kept as their JSON text in CSV."""
    filters: dict[str, Any] = {"actor": actor, "action": action, "target_type": target_type,
                               "target_id": target_id, "since": since, "until": until}
    note(request.state, "audit.export", target_type="audit_log", target_id=key.project_id,
         detail={"format": format, "filters": {k: v for k, v in filters.items() if v is not None}})
    events = _st(request).store.audit.iter_events(key.project_id, **filters)
    media = "application/jsonl" if format == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse((s.encode() for s in export_lines(events, format)), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="audit-events.{format}"'})


@router.get("/{event_id}", response_model=AuditEventOut, summary="One audit event with its before and after (admin)")
def get_event(request: Request, event_id: Annotated[int, Path(ge=1, le=2**62)], key: Admin) -> dict[str, Any]:
    e = _st(request).store.audit.get(event_id, project_id=key.project_id)
    if e is None:
        raise NotFound(f"this project has no audit event {event_id}; list them with GET /api/v1/audit-events")
    return e.to_dict()
