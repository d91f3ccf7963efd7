"""Retention, legal hold and data-subject requests: ``/api/v1/retention``,
``/api/v1/retention/run``, ``/api/v1/legal-hold`` and ``/api/v1/subjects/{user_id}``. Admin keys
only; every change and every export is audited (docs/governance.md#retention,
docs/governance.md#data-subject-requests)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from podium.core.roles import Action
from podium.governance.actor import Actor, actor_of, note
from podium.governance.retention import policy_view, run_retention, run_view
from podium.governance.subject_requests import delete_subject, export_subject, subject_overview
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.lifecycle import KINDS
from podium.store.repos.projects import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["governance"], route_class=StrictJSONRoute)
Admin = Annotated[ApiKey, needs(Action.ADMIN, "manage retention and data-subject requests")]
_Days = Annotated[int, Field(ge=0, le=100_000)] | None
UserId = Annotated[str, Path(min_length=1, max_length=256, description="the trace user id (trace.user_id)")]


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _actor(request: Request, key: ApiKey) -> Actor:
    return actor_of(request.state) or Actor("key", key.public_key, role=key.role, project_id=key.project_id)


class RetentionIn(BaseModel):
    """Periods in days per kind: 0 keeps forever, null inherits the installation default
    (PODIUM_RETENTION_DAYS). Kinds left out keep their period."""

    model_config = ConfigDict(extra="forbid")
    traces: _Days = Field(default=None, description="traces with their spans, scores, tags and annotations")
    scores: _Days = Field(default=None, description="scores (by their timestamp)")
    gateway: _Days = Field(default=None, description="gateway request logs (the traces the gateway starts)")


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(default=True, description="count what would be deleted, delete nothing")


class LegalHoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool
    reason: Annotated[str, Field(max_length=2000)] | None = None


@router.get("/retention", summary="Retention periods, legal hold and the last runs (admin)")
def get_retention(request: Request, key: Admin) -> dict[str, Any]:
    st = _st(request)
    return policy_view(st.store, st.settings, key.project_id)


@router.put("/retention", summary="Set retention periods (admin; audited as retention.set)")
def put_retention(request: Request, body: RetentionIn, key: Admin) -> dict[str, Any]:
    st = _st(request)
    before = policy_view(st.store, st.settings, key.project_id)["periods"]
    periods = {k: getattr(body, k) for k in KINDS if k in body.model_fields_set}
    st.store.lifecycle.set_periods(key.project_id, periods, actor=_actor(request, key).label())
    out = policy_view(st.store, st.settings, key.project_id)
    note(request.state, "retention.set", target_type="project", target_id=key.project_id, before=before,
         after=out["periods"])
    return out


@router.post("/retention/run", summary="Run retention now, or count what it would delete (admin)")
async def post_retention_run(request: Request, key: Admin, body: RunIn | None = None) -> dict[str, Any]:
    st = _st(request)
    body = body or RunIn()
    actor = _actor(request, key)
    run = await anyio.to_thread.run_sync(
        lambda: run_retention(st.store, st.settings, key.project_id, actor=actor, dry_run=body.dry_run))
    view = run_view(run)
    if not body.dry_run:
        note(request.state, "retention.run", target_type="project", target_id=key.project_id,
             after={"counts": view["counts"], "run_id": run.id})
    return view


@router.get("/legal-hold", summary="The project's legal hold (admin)")
def get_legal_hold(request: Request, key: Admin) -> dict[str, Any]:
    p = _st(request).store.lifecycle.policy(key.project_id)
    return {"on": p.legal_hold, "reason": p.legal_hold_reason, "updated_by": p.updated_by,
            "updated_at": p.updated_at.isoformat() if p.updated_at else None}


@router.put("/legal-hold", summary="Turn the legal hold on or off (admin; audited as legal_hold.set)")
def put_legal_hold(request: Request, body: LegalHoldIn, key: Admin) -> dict[str, Any]:
    st = _st(request)
    before = st.store.lifecycle.policy(key.project_id)
    p = st.store.lifecycle.set_legal_hold(key.project_id, body.on, reason=body.reason,
                                          actor=_actor(request, key).label())
    note(request.state, "legal_hold.set", target_type="project", target_id=key.project_id,
         before={"on": before.legal_hold, "reason": before.legal_hold_reason},
         after={"on": p.legal_hold, "reason": p.legal_hold_reason})
    return {"on": p.legal_hold, "reason": p.legal_hold_reason, "updated_by": p.updated_by,
            "updated_at": p.updated_at.isoformat() if p.updated_at else None}


@router.get("/subjects/{user_id}", summary="What the project holds about a user id: rows per table (admin)")
async def get_subject(request: Request, user_id: UserId, key: Admin) -> dict[str, Any]:
    st = _st(request)
    return await anyio.to_thread.run_sync(lambda: subject_overview(st.store, key.project_id, user_id))


@router.delete("/subjects/{user_id}", summary="Delete everything about a user id; returns the receipt (admin)")
async def delete_subject_route(request: Request, user_id: UserId, key: Admin) -> dict[str, Any]:
    """Traces of the user with their spans, scores, tags and annotations; feedback they gave;
    dataset items made from their traces; experiment results on those items. The receipt (rows
    per table, request id, when, who) is stored and the deletion audited as ``subject.delete``.
    Refused (409 ``legal_hold``) while the project is under a legal hold."""
    st = _st(request)
    actor = _actor(request, key)
    receipt = await anyio.to_thread.run_sync(
        lambda: delete_subject(st.store, st.settings, key.project_id, user_id, actor=actor))
    out = receipt.as_dict()
    note(request.state, "subject.delete", target_type="user", target_id=user_id, after=out)
    return out


@router.get("/subjects/{user_id}/export", response_class=StreamingResponse,
            summary="Everything about a user id as one JSON document, streamed (admin; audited)")
def export_subject_route(request: Request, user_id: UserId, key: Admin) -> StreamingResponse:
    st = _st(request)
    note(request.state, "subject.export", target_type="user", target_id=user_id)
    chunks = (s.encode() for s in export_subject(st.store, key.project_id, user_id))
    return StreamingResponse(chunks, media_type="application/json",
                             headers={"Content-Disposition": 'attachment; filename="subject-export.json"'})


@router.get("/subjects", summary="Past data-subject requests (receipts, newest first; admin)")
def list_subject_requests(request: Request, key: Admin) -> list[dict[str, Any]]:
    return [r.as_dict() for r in _st(request).store.lifecycle.requests(key.project_id)]
