"""Who is looking at the UI, and what they may do: the REST API's keys and roles.

- **Local mode**: the server is bound to a loopback address (``PODIUM_HOST`` is 127.0.0.1,
  localhost or ::1), the request comes *from* a loopback address (the TCP peer, not only the
  Host header), names a loopback host, and was not forwarded by a reverse proxy
  (``X-Forwarded-For``, ``Forwarded``, ``X-Real-IP``, ``Via``..., or HTTP/1.0 as nginx sends
  by default). The UI then acts as an admin of the default project (the one ``podium up``
  creates; else the oldest project), with no login. The Host check keeps a DNS-rebinding
  page from getting that free pass; the peer and proxy checks keep a reverse proxy on this
  machine (which rewrites Host to ``127.0.0.1:PORT``) from handing it to everyone. Behind
  such a proxy local mode needs ``PODIUM_TRUST_PROXY_LOCAL_MODE=true`` (and a client the
  proxy names as loopback, if it names one);
  ``PODIUM_LOCAL_MODE=false`` turns it off altogether.
- **Otherwise** a key or a person is needed: ``Authorization`` (Basic ``pk:sk`` or ``Bearer sk-…``,
  as for the API) or the key login form, which keeps the secret key in an HTTP-only,
  SameSite=Strict cookie. Every request re-checks it through the API's ``Authenticator``,
  so a revoked key is logged out within its cache TTL (at once in this process). Or a user's
  sign-in (password or OIDC): a server-side session in an HTTP-only, SameSite=Lax cookie
  (``podium.governance.sessions``), whose role is the user's role in the session's project,
  re-read on every request. A key (header or key cookie) wins over a session; a session wins
  over local mode (so a signed-in person is recorded as themselves). Local mode stays on when
  users exist (``PODIUM_LOCAL_MODE=false`` turns it off).

Roles are the API's, from the one table (``podium.core.roles``): every UI route is tagged
with the action it needs (``@ui_action(Action.WRITE)``; ``None`` for the login pages) and its
handler checks that same action (``pages._viewer(request, Action.WRITE, "change prompts")``);
``tests/server/test_role_matrix.py`` walks every tagged route (GET pages and POST forms) for
every role and fails on an untagged one. State-changing requests must come from this origin
(Origin/Referer check) as a CSRF guard, and those made with a session cookie must also carry the
session's CSRF token (``csrf_token`` form field or ``X-CSRF-Token`` header: base.html adds both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Request

from podium.core.roles import Action, allowed, key_roles_for, roles_for, user_roles_for
from podium.errors import Unauthorized
from podium.governance.actor import Actor, set_actor
from podium.governance.sessions import Principal
from podium.server.auth import (
    client_ip,
    csrf_ok,
    is_loopback_host,
    key_actor,
    loopback_request,
    session_principal,
    user_actor,
    user_key,
)
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = [
    "COOKIE",
    "LOCAL_ACTOR",
    "PROMPT_WRITE_ROLES",
    "SESSION_COOKIE",
    "NeedLogin",
    "UiError",
    "Viewer",
    "check_origin",
    "is_loopback_host",
    "local_mode",
    "resolve_viewer",
    "safe_next",
    "ui_action",
]

COOKIE = "podium_ui_key"
#: A signed-in user's session cookie (podium.governance.sessions).
SESSION_COOKIE = "podium_session"

# The same role sets as podium.server.auth's require_read / require_write / require_admin.
READ_ROLES = roles_for(Action.READ)
WRITE_ROLES = roles_for(Action.INGEST)
ADMIN_ROLES = roles_for(Action.ADMIN)
# podium.server.routes.prompts: creating versions and moving labels (protected labels: admin).
PROMPT_WRITE_ROLES = roles_for(Action.WRITE)
#: Who the local-mode UI is, where an actor or a key is recorded (label history, gateway calls).
LOCAL_ACTOR = "ui-local"

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def ui_action(action: Action | None) -> Callable[[_Handler], _Handler]:
    """Tag a UI route handler with the one action of the role matrix it needs (``None``: no key
    needed, the login pages). Put it under ``@router.get/post``; the handler checks the same
    action with ``_viewer(request, action, what)``. The tag is what the role-matrix test expects
    of the route (as ``podium_action`` on the API's role dependencies)."""

    def tag(handler: _Handler) -> _Handler:
        handler.podium_action = action  # type: ignore[attr-defined]  # a plain function attribute
        return handler

    return tag


class NeedLogin(Exception):
    """Control flow: rendered as a redirect to /login."""

    def __init__(self, next_url: str, message: str | None = None) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.message = message


class UiError(Exception):
    """An error page: status, a title and a message that says what to do."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class Viewer:
    project_id: str
    project_name: str
    role: str
    public_key: str | None  # None in local mode
    local: bool
    key: ApiKey | None = None  # the key this request authenticated with; None in local mode
    principal: Principal | None = None  # the signed-in user, when a session authenticated this request

    @property
    def user_email(self) -> str | None:
        return self.principal.user.email if self.principal is not None else None

    @property
    def actor(self) -> str:
        """What label history and the gateway record as "who": the public key, or ``ui-local``."""
        return self.public_key or LOCAL_ACTOR

    def api_key(self) -> ApiKey:
        """The key the gateway and the REST handlers see: the viewer's own (its limits and model
        list apply), or in local mode an admin stand-in with no limits of its own (the project's
        limits still apply)."""
        if self.key is not None:
            return self.key
        return ApiKey(id=LOCAL_ACTOR, project_id=self.project_id, public_key=LOCAL_ACTOR, secret_hint="",
                      role=self.role, note="web UI (local mode)", created_at=datetime.now(UTC), revoked_at=None)

    @property
    def can_read(self) -> bool:
        return self.role in READ_ROLES

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    @property
    def can_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def can_edit_prompts(self) -> bool:
        return self.role in PROMPT_WRITE_ROLES

    def need(self, action: Action, what: str) -> None:
        """403 unless this viewer's role may perform ``action`` (podium.core.roles, the one table)."""
        if not allowed(self.role, action):
            if self.principal is not None:
                raise UiError(403, "Not allowed",
                              f"your role {self.role!r} in this project cannot {what}; ask an owner or admin of "
                              f"the project for role {' or '.join(user_roles_for(action))}")
            roles = key_roles_for(action)
            raise UiError(
                403,
                "Not allowed",
                f"a key with role {self.role!r} cannot {what}; log in with a key with role "
                f"{' or '.join(roles)}",
            )


def local_mode(request: Request) -> bool:
    """No-login admin: see the module docstring (``podium.server.auth.loopback_request``)."""
    st: AppState = request.app.state.podium
    s = st.settings
    return s.local_mode and loopback_request(request.scope, s.host, trust_proxy=s.trust_proxy_local_mode)


def _next_url(request: Request) -> str:
    url = request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def resolve_viewer(request: Request) -> Viewer:
    """The viewer of this request, or NeedLogin."""
    st: AppState = request.app.state.podium
    header = request.headers.get("authorization")
    cookie = request.cookies.get(COOKIE)
    if header or cookie:
        try:
            key = st.auth.authenticate(header or f"Bearer {cookie}")
        except Unauthorized:
            if header:
                raise
            raise NeedLogin(_next_url(request), "your key was revoked or is no longer valid; log in again")
        project = st.store.projects.get_project(key.project_id)
        set_actor(request.state, key_actor(key, request))
        return Viewer(key.project_id, project.name, key.role, key.public_key, local=False, key=key)
    principal = session_principal(request) if request.cookies.get(SESSION_COOKIE) else None
    if principal is not None and (principal.role is None or principal.project_id is None):
        # Removed from the session's project: move the session to another project of theirs, if any.
        ms = st.store.users.memberships(principal.user.id)
        if ms:
            st.store.users.set_session_project(principal.session.id, ms[0].project_id)
            principal = replace(principal, project_id=ms[0].project_id, role=ms[0].role)
    if principal is not None:
        if principal.role is None or principal.project_id is None:
            raise UiError(403, "No project",
                          "you are not a member of this session's project any more; pick another project on the "
                          "account page (/account) or ask an admin to invite you again")
        if not csrf_ok(request):
            raise UiError(403, "Security token missing",
                          "this form did not carry your session's security token (it may be from an older page); "
                          "reload the page and submit it again")
        project = st.store.projects.get_project(principal.project_id)
        set_actor(request.state, user_actor(principal, request))
        key = user_key(principal)
        return Viewer(project.id, project.name, key.role, key.public_key, local=False, key=key, principal=principal)
    if local_mode(request):
        projects = st.store.projects.list_projects()
        if not projects:
            raise UiError(
                503,
                "No project yet",
                "this database has no project: start the server with `podium up` (it creates the "
                "default project) or run `podium projects create NAME`",
            )
        chosen = next((p for p in projects if p.name == "default"), projects[0])
        set_actor(request.state, Actor("local", LOCAL_ACTOR, role="admin", project_id=chosen.id,
                                       ip=client_ip(request)))
        return Viewer(chosen.id, chosen.name, "admin", None, local=True)
    raise NeedLogin(_next_url(request))


def check_origin(request: Request) -> None:
    """CSRF guard for POSTs: a browser's Origin (or Referer) must name this very host."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    if source is None:
        return  # not a browser form post (browsers always send Origin on cross-site POSTs)
    if source == "null" or urlsplit(source).netloc.lower() != host.lower():
        raise UiError(
            403,
            "Cross-site request refused",
            "this form was posted from another site; open the page on this server and submit it there",
        )


def safe_next(url: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url
