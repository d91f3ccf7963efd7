"""People in the web UI: password and single sign-on sign-in, sign-out, the first-run page, members
and invitations (/settings/members), accepting an invitation, and the account page.

Sign-in pages need no key (``@ui_action(None)``); the rest check the one role matrix like every
UI route. A successful sign-in starts a server-side session (``podium.governance.sessions``) in
an HTTP-only, SameSite=Lax cookie (Secure over https); forms posted with it carry its CSRF token
(base.html adds it), checked in ``podium.server.ui.access.resolve_viewer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from podium.core.roles import USER_ROLES, Action, allowed
from podium.errors import PodiumError, TooManyRequests
from podium.governance import invitations, users
from podium.governance.actor import note
from podium.governance.oidc import OidcError, Pending
from podium.governance.passwords import MIN_LENGTH
from podium.governance.sessions import csrf_token
from podium.server.auth import client_ip, people, session_principal
from podium.server.routes.users import base_url
from podium.server.ui.access import (
    COOKIE,
    SESSION_COOKIE,
    UiError,
    Viewer,
    check_origin,
    safe_next,
    ui_action,
)
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page
from podium.store.repos.users import User

__all__ = ["router"]

logger = logging.getLogger("podium.server.ui")
router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

_OIDC_COOKIE = "podium_oidc"


def _https(request: Request) -> bool:
    public = _st(request).settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def _signed_in(request: Request, user: User, method: str, next_url: str, project_id: str | None = None) -> Response:
    """End any old session of this browser, start a new one, set its cookie and go to ``next_url``."""
    mgr = people(request).sessions
    mgr.end(request.cookies.get(SESSION_COOKIE))
    token = mgr.start(user, project_id=project_id, ip=client_ip(request),
                      user_agent=request.headers.get("user-agent"), method=method)
    resp = RedirectResponse(next_url, status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=_https(request),
                    max_age=int(mgr.absolute.total_seconds()), path="/")
    return resp


def _login_page(request: Request, status: int, error: str, next_url: str, email: str = "",
                headers: dict[str, str] | None = None) -> HTMLResponse:
    resp = page(request, "login.html", status=status, next=next_url, error=error, email=email)
    resp.headers.update(headers or {})
    return resp


# --- password sign-in and sign-out ---------------------------------------------------------


@router.post("/login/password", response_class=HTMLResponse)
@ui_action(None)
async def password_login(request: Request) -> Response:
    check_origin(request)
    form = await _form(request)
    email, password = form.get("email", "").strip(), form.get("password", "")
    nxt = safe_next(form.get("next"))
    st = _st(request)
    try:
        user = users.password_login(st.store, people(request).limiter, email, password, client_ip(request))
    except TooManyRequests as e:
        return _login_page(request, 429, e.message, nxt, email,
                           headers={"Retry-After": str(max(1, round(e.retry_after)))})
    except PodiumError as e:
        return _login_page(request, e.status_code, e.message, nxt, email)
    if not st.store.users.memberships(user.id):
        return _login_page(request, 403, "your account is not a member of any project yet; ask an admin of a "
                           "project to invite you", nxt, email)
    return _signed_in(request, user, "password", nxt)


@router.post("/auth/logout")
@ui_action(None)
async def logout(request: Request) -> Response:
    """Sign out: end this session (and forget a key login too)."""
    check_origin(request)
    principal = session_principal(request)
    if people(request).sessions.end(request.cookies.get(SESSION_COOKIE)) and principal is not None:
        logger.info("session ended user=%s", principal.user.email)
    resp = RedirectResponse("/login?message=" + quote("signed out", safe=""), status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    resp.delete_cookie(COOKIE, path="/")
    return resp


# --- single sign-on -------------------------------------------------------------------------


def _redirect_uri(request: Request) -> str:
    return base_url(request) + "/auth/oidc/callback"


@router.get("/auth/oidc/login")
@ui_action(None)
async def oidc_login(request: Request) -> Response:
    client = people(request).oidc
    if client is None:
        raise UiError(404, "Single sign-on is off",
                      "set PODIUM_OIDC_ISSUER and PODIUM_OIDC_CLIENT_ID to sign in through an identity provider")
    try:
        url, pending = await client.begin(_redirect_uri(request), safe_next(request.query_params.get("next")))
    except OidcError as e:
        raise UiError(502, "Identity provider unreachable", e.message)
    resp = RedirectResponse(url, status_code=303)
    resp.set_cookie(_OIDC_COOKIE, pending.dump(), httponly=True, samesite="lax", secure=_https(request),
                    max_age=600, path="/auth/oidc")
    return resp


@router.get("/auth/oidc/callback")
@ui_action(None)
async def oidc_callback(request: Request) -> Response:
    client = people(request).oidc
    if client is None:
        raise UiError(404, "Single sign-on is off", "set PODIUM_OIDC_ISSUER and PODIUM_OIDC_CLIENT_ID")
    st = _st(request)
    try:
        pending = Pending.load(request.cookies.get(_OIDC_COOKIE))
        identity = await client.finish(dict(request.query_params), pending, _redirect_uri(request))
        user = users.oidc_user(st.store, identity, allowed_domains=st.settings.oidc_allowed_domains,
                               default_role=st.settings.oidc_default_role, project=st.settings.oidc_project)
    except OidcError as e:
        logger.warning("login.failed method=oidc ip=%s reason=%s", client_ip(request), e.message)
        resp = _login_page(request, 400, "single sign-on failed: " + e.message, "/")
        resp.delete_cookie(_OIDC_COOKIE, path="/auth/oidc")
        return resp
    except PodiumError as e:
        logger.warning("login.failed method=oidc ip=%s reason=%s", client_ip(request), e.message)
        return _login_page(request, e.status_code, e.message, "/")
    done = _signed_in(request, user, "oidc", pending.next)
    done.delete_cookie(_OIDC_COOKIE, path="/auth/oidc")
    return done


# --- first run ------------------------------------------------------------------------------


@router.get("/setup", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
def setup_form(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, "create the first user")
    return page(request, "account_setup.html", nav="settings", viewer=v, done=_st(request).store.users.count_users() > 0,
                min_length=MIN_LENGTH, form={})


@router.post("/setup", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def setup(request: Request) -> Response:
    """Create the first user (owner of the viewer's project); only while no user exists."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "create the first user")
    form = await _form(request)
    st = _st(request)
    if st.store.users.count_users() > 0:
        raise UiError(409, "Already set up", "this server has users already; invite people from Settings > Members")
    try:
        user = users.create_user(st.store, form.get("email", ""), password=form.get("password", ""), role="owner",
                                 project_id=v.project_id, name=form.get("name") or None)
    except PodiumError as e:
        return page(request, "account_setup.html", status=e.status_code, nav="settings", viewer=v, done=False,
                    min_length=MIN_LENGTH, error=e.message, form={"email": form.get("email", "")})
    note(request.state, "user.create", target_type="user", target_id=user.id,
         after={"email": user.email, "role": "owner"}, project_id=v.project_id)
    return _signed_in(request, user, "password", "/settings/members")


# --- members and invitations ----------------------------------------------------------------


def _members_ctx(request: Request, v: Viewer, **extra: Any) -> dict[str, Any]:
    st = _st(request)
    now = datetime.now(UTC)
    invs = [(i, i.state(now)) for i in st.store.users.list_invitations(v.project_id)]
    return dict(nav="settings", viewer=v, members=st.store.users.list_members(v.project_id),
                invitations=invs, roles=USER_ROLES, can_own=allowed(v.role, Action.OWN),
                me=v.principal.user.id if v.principal else None, **extra)


@router.get("/settings/members", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
def members(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, "manage members")
    return page(request, "members.html", **_members_ctx(request, v))


@router.post("/settings/members/invite", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def invite(request: Request) -> HTMLResponse:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "invite people")
    form = await _form(request)
    st = _st(request)
    actor = getattr(request.state, "podium_actor", None)
    try:
        inv, token = invitations.invite(st.store, v.project_id, form.get("email", ""), form.get("role", "member"),
                                        invited_by=actor.label() if actor else None,
                                        ttl=timedelta(hours=st.settings.invitation_ttl_hours), actor_role=v.role)
    except PodiumError as e:
        return page(request, "members.html", status=e.status_code, error=e.message, **_members_ctx(request, v))
    note(request.state, "user.invite", target_type="invitation", target_id=inv.id,
         after={"email": inv.email, "role": inv.role}, project_id=v.project_id)
    return page(request, "members.html", status=201, link=f"{base_url(request)}/invite/{token}", invited=inv,
                **_members_ctx(request, v))


def _member_change(request: Request, what: str, change: Callable[[Viewer], tuple[str, dict[str, Any]]]) -> Response:
    """An admin's change on the members page: ``change`` does it and returns the audit event and its
    fields; a refusal re-renders the page with the error, success goes back to the list."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, what)
    try:
        event, fields = change(v)
    except PodiumError as e:
        return page(request, "members.html", status=e.status_code, error=e.message, **_members_ctx(request, v))
    note(request.state, event, project_id=v.project_id, **fields)
    return RedirectResponse("/settings/members", status_code=303)


@router.post("/settings/members/{user_id}/role", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def change_role(request: Request, user_id: str) -> Response:
    role = (await _form(request)).get("role", "")

    def change(v: Viewer) -> tuple[str, dict[str, Any]]:
        old = users.set_role(_st(request).store, v.project_id, user_id, role, actor_role=v.role)
        return "member.role.change", {"target_type": "user", "target_id": user_id, "before": {"role": old},
                                      "after": {"role": role}}

    return _member_change(request, "change roles", change)


@router.post("/settings/members/{user_id}/remove", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def remove(request: Request, user_id: str) -> Response:
    def change(v: Viewer) -> tuple[str, dict[str, Any]]:
        old = users.remove_member(_st(request).store, v.project_id, user_id, actor_role=v.role)
        return "member.remove", {"target_type": "user", "target_id": user_id, "before": {"role": old}}

    return _member_change(request, "remove members", change)


@router.post("/settings/invitations/{invitation_id}/revoke", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def revoke_invitation(request: Request, invitation_id: str) -> Response:
    def change(v: Viewer) -> tuple[str, dict[str, Any]]:
        inv = _st(request).store.users.revoke_invitation(v.project_id, invitation_id)
        return "invitation.revoke", {"target_type": "invitation", "target_id": inv.id,
                                     "before": {"email": inv.email, "role": inv.role}}

    return _member_change(request, "revoke invitations", change)


# --- accepting an invitation ---------------------------------------------------------------


@router.get("/invite/{token}", response_class=HTMLResponse)
@ui_action(None)
def invite_form(request: Request, token: str) -> HTMLResponse:
    st = _st(request)
    try:
        inv = invitations.pending(st.store, token)
    except PodiumError as e:
        return page(request, "invite.html", status=e.status_code, error=e.message, inv=None, token=token)
    project = st.store.projects.get_project(inv.project_id)
    principal = session_principal(request)
    return page(request, "invite.html", inv=inv, project=project, token=token, min_length=MIN_LENGTH,
                signed_in=principal.user.email if principal else None,
                csrf=csrf_token(request.cookies[SESSION_COOKIE]) if principal else None,
                has_account=st.store.users.by_email(inv.email) is not None)


@router.post("/invite/{token}", response_class=HTMLResponse)
@ui_action(None)
async def accept_invite(request: Request, token: str) -> Response:
    check_origin(request)
    form = await _form(request)
    st = _st(request)
    principal = session_principal(request)
    try:
        user, inv = invitations.accept(st.store, token, user=principal.user if principal else None,
                                       password=form.get("password"), name=form.get("name") or None)
    except PodiumError as e:
        return page(request, "invite.html", status=e.status_code, error=e.message, inv=None, token=token)
    logger.info("invitation accepted user=%s project=%s role=%s", user.email, inv.project_id, inv.role)
    if principal is not None:
        st.store.users.set_session_project(principal.session.id, inv.project_id)
        return RedirectResponse("/", status_code=303)
    return _signed_in(request, user, "invite", "/", project_id=inv.project_id)


# --- the account page ----------------------------------------------------------------------


def _account_ctx(request: Request, v: Viewer, **extra: Any) -> dict[str, Any]:
    st = _st(request)
    ctx: dict[str, Any] = dict(nav="account", viewer=v, min_length=MIN_LENGTH, **extra)
    if v.principal is not None:
        ctx["user"] = v.principal.user
        ctx["memberships"] = st.store.users.memberships(v.principal.user.id)
        ctx["sessions"] = st.store.users.list_sessions(v.principal.user.id, active_at=datetime.now(UTC))
        ctx["current_session"] = v.principal.session.id
    return ctx


def _need_user(v: Viewer) -> None:
    if v.principal is None:
        raise UiError(400, "Not signed in as a person",
                      "you are using a key or local mode; the account page is for people who signed in with an "
                      "email (create the first user at /setup, or `podium users create`)")


@router.get("/account", response_class=HTMLResponse)
@ui_action(Action.READ)
def account(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ, "see the account page")
    return page(request, "account.html", **_account_ctx(request, v, saved=request.query_params.get("saved")))


@router.post("/account/password", response_class=HTMLResponse)
@ui_action(Action.READ)
async def change_password(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.READ, "change your password")
    _need_user(v)
    assert v.principal is not None
    form = await _form(request)
    try:
        users.change_password(_st(request).store, v.principal.user, form.get("current_password"),
                              form.get("new_password", ""))
    except PodiumError as e:
        return page(request, "account.html", status=e.status_code, **_account_ctx(request, v, error=e.message))
    note(request.state, "user.password.change", target_type="user", target_id=v.principal.user.id)
    return RedirectResponse("/account?saved=password", status_code=303)


@router.post("/account/sessions/revoke", response_class=HTMLResponse)
@ui_action(Action.READ)
async def sign_out_everywhere(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.READ, "sign out everywhere")
    _need_user(v)
    assert v.principal is not None
    n = people(request).sessions.end_all(v.principal.user.id)
    note(request.state, "session.revoke", target_type="user", target_id=v.principal.user.id, detail={"sessions": n})
    resp = RedirectResponse("/login?message=" + quote(f"signed out of {n} session(s)", safe=""), status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.post("/account/project", response_class=HTMLResponse)
@ui_action(Action.READ)
async def switch_project(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.READ, "switch projects")
    _need_user(v)
    assert v.principal is not None
    form = await _form(request)
    pid = form.get("project_id", "")
    st = _st(request)
    if st.store.users.role_of(pid, v.principal.user.id) is None:
        raise UiError(404, "Not one of your projects",
                      "you are not a member of that project; pick one from the list, or ask its admins to invite you")
    st.store.users.set_session_project(v.principal.session.id, pid)
    return RedirectResponse("/", status_code=303)
