"""People over the REST API: members of the calling project, invitations, and who is calling.

Every route declares its action (``needs``): listing and managing members and invitations is
``admin``; making, unmaking or removing owners and admins, and disabling a user, is ``own``
(owners only). A signed-in user's session cookie works here too (with ``X-CSRF-Token`` on
writes); API keys never hold ``owner``, so the ``own`` routes are for people.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from podium.core.roles import Action
from podium.errors import Conflict, NotFound
from podium.governance import invitations, users
from podium.governance.actor import actor_of, note
from podium.server.auth import CurrentKey, needs, people, session_principal
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey
from podium.store.repos.users import Invitation, Member

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["people"], route_class=StrictJSONRoute)

Admin = Annotated[ApiKey, needs(Action.ADMIN, "manage members and invitations")]
Owner = Annotated[ApiKey, needs(Action.OWN, "disable users")]


def _st(request: Request) -> AppState:
    return request.app.state.podium


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str | None = None
    role: str
    since: datetime
    disabled: bool
    sso: bool


class RoleIn(BaseModel):
    role: str = Field(description="owner | admin | member | viewer (owner and admin: owners only)")


class InvitationIn(BaseModel):
    email: str = Field(max_length=320)
    role: str = Field(default="member", description="owner | admin | member | viewer (owner and admin: owners only)")
    expires_in_hours: int | None = Field(default=None, ge=1, le=24 * 90,
                                         description="Default: PODIUM_INVITATION_TTL_HOURS (72)")


class InvitationOut(BaseModel):
    id: str
    email: str
    role: str
    state: str
    invited_by: str | None = None
    created_at: datetime
    expires_at: datetime


class NewInvitationOut(InvitationOut):
    token: str = Field(description="The one-time token (shown once); the link is `url`")
    url: str


class WhoAmI(BaseModel):
    kind: str = Field(description="user | key")
    project_id: str
    role: str
    user_id: str | None = None
    email: str | None = None
    projects: list[dict[str, str]] = Field(default_factory=list)


def _member(m: Member) -> dict[str, Any]:
    return {"user_id": m.user.id, "email": m.user.email, "name": m.user.name, "role": m.role, "since": m.since,
            "disabled": m.user.disabled_at is not None, "sso": m.user.oidc_subject is not None}


def _invitation(i: Invitation) -> dict[str, Any]:
    return {"id": i.id, "email": i.email, "role": i.role, "state": i.state(datetime.now(UTC)),
            "invited_by": i.invited_by, "created_at": i.created_at, "expires_at": i.expires_at}


def _who(request: Request, key: ApiKey) -> str:
    actor = actor_of(request.state)
    return actor.label() if actor is not None else f"key:{key.public_key}"


def base_url(request: Request) -> str:
    """Where links to this server start: PODIUM_PUBLIC_URL, or the request's own scheme and host."""
    configured = _st(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


@router.get("/users/me", response_model=WhoAmI, summary="Who is calling: the signed-in user or the key")
def whoami(request: Request, key: CurrentKey) -> dict[str, Any]:
    principal = session_principal(request) if key.id.startswith("user:") else None
    if principal is None:
        return {"kind": "key", "project_id": key.project_id, "role": key.role}
    ms = _st(request).store.users.memberships(principal.user.id)
    return {"kind": "user", "project_id": key.project_id, "role": key.role, "user_id": principal.user.id,
            "email": principal.user.email,
            "projects": [{"id": m.project_id, "name": m.project_name, "role": m.role} for m in ms]}


@router.get("/members", response_model=list[MemberOut], summary="Members of this project and their roles")
def list_members(request: Request, key: Admin) -> list[dict[str, Any]]:
    return [_member(m) for m in _st(request).store.users.list_members(key.project_id)]


@router.put("/members/{user_id}", response_model=MemberOut, summary="Change a member's role")
def set_member_role(request: Request, user_id: str, body: RoleIn, key: Admin) -> dict[str, Any]:
    st = _st(request)
    old = users.set_role(st.store, key.project_id, user_id, body.role, actor_role=key.role)
    note(request.state, "member.role.change", target_type="user", target_id=user_id, before={"role": old},
         after={"role": body.role}, project_id=key.project_id)
    member = next(m for m in st.store.users.list_members(key.project_id) if m.user.id == user_id)
    return _member(member)


@router.delete("/members/{user_id}", response_model=MemberOut, summary="Remove a member from this project")
def remove_member(request: Request, user_id: str, key: Admin) -> dict[str, Any]:
    st = _st(request)
    member = next((m for m in st.store.users.list_members(key.project_id) if m.user.id == user_id), None)
    if member is None:
        raise NotFound(f"user {user_id!r} is not a member of this project; GET /api/v1/members lists them")
    users.remove_member(st.store, key.project_id, user_id, actor_role=key.role)
    note(request.state, "member.remove", target_type="user", target_id=user_id, before={"role": member.role},
         project_id=key.project_id)
    return _member(member)


@router.post("/users/{user_id}/sessions/revoke", summary="Sign a member out everywhere")
def revoke_sessions(request: Request, user_id: str, key: Admin) -> dict[str, Any]:
    st = _st(request)
    role = st.store.users.role_of(key.project_id, user_id)
    if role is None:
        raise NotFound(f"user {user_id!r} is not a member of this project; GET /api/v1/members lists them")
    users.check_may_manage(key.role, role)
    n = people(request).sessions.end_all(user_id)
    note(request.state, "session.revoke", target_type="user", target_id=user_id, detail={"sessions": n},
         project_id=key.project_id)
    return {"user_id": user_id, "revoked": n}


@router.post("/users/{user_id}/disable", response_model=MemberOut, summary="Disable a user (owners only)")
def disable_user(request: Request, user_id: str, key: Owner) -> dict[str, Any]:
    st = _st(request)
    member = next((m for m in st.store.users.list_members(key.project_id) if m.user.id == user_id), None)
    if member is None:
        raise NotFound(f"user {user_id!r} is not a member of this project; GET /api/v1/members lists them")
    others = [m for m in st.store.users.memberships(user_id) if m.project_id != key.project_id]
    if others:
        raise Conflict("this user is also a member of other projects; remove them from this project instead, or "
                       "disable them with `podium users disable` on the server")
    if member.role == "owner" and st.store.users.count_owners(key.project_id) <= 1:
        raise Conflict("this is the project's last owner; make someone else an owner first")
    user = st.store.users.update_user(user_id, disabled_at=datetime.now(UTC))
    people(request).sessions.end_all(user_id)
    note(request.state, "user.disable", target_type="user", target_id=user_id, before={"disabled": False},
         after={"disabled": True}, project_id=key.project_id)
    return _member(Member(user, member.role, member.since))


@router.get("/invitations", response_model=list[InvitationOut], summary="Invitations to this project")
def list_invitations(request: Request, key: Admin) -> list[dict[str, Any]]:
    return [_invitation(i) for i in _st(request).store.users.list_invitations(key.project_id)]


@router.post("/invitations", response_model=NewInvitationOut, status_code=201,
             summary="Invite an email with a role (a one-time link)")
def create_invitation(request: Request, body: InvitationIn, key: Admin) -> dict[str, Any]:
    st = _st(request)
    hours = body.expires_in_hours or st.settings.invitation_ttl_hours
    inv, token = invitations.invite(st.store, key.project_id, body.email, body.role, invited_by=_who(request, key),
                                    ttl=timedelta(hours=hours), actor_role=key.role)
    note(request.state, "user.invite", target_type="invitation", target_id=inv.id,
         after={"email": inv.email, "role": inv.role, "expires_at": inv.expires_at.isoformat()},
         project_id=key.project_id)
    return {**_invitation(inv), "token": token, "url": f"{base_url(request)}/invite/{token}"}


@router.delete("/invitations/{invitation_id}", response_model=InvitationOut, summary="Revoke a pending invitation")
def revoke_invitation(request: Request, invitation_id: str, key: Admin) -> dict[str, Any]:
    inv = _st(request).store.users.revoke_invitation(key.project_id, invitation_id)
    note(request.state, "invitation.revoke", target_type="invitation", target_id=invitation_id,
         before={"email": inv.email, "role": inv.role}, project_id=key.project_id)
    return _invitation(inv)

