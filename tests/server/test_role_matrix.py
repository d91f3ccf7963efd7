"""Every route, every role: 403 exactly where podium.core.roles says no, for API keys of every key
role and for signed-in users (session cookie + CSRF token) of every member role.

The route -> action mapping is read from the code: FastAPI routes carry it on their role
dependency (``podium.server.auth.needs`` sets ``podium_action``), the gateway's ASGI endpoints
carry it as a class attribute, and the web UI's handlers carry it as their ``@ui_action`` tag
(``podium.server.ui.access``; every UI route must have one). A route that takes a key but names
no action is open to any valid key (and must then never answer 403).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from podium.core.roles import ROLES, USER_ROLES, Action, allowed
from podium.governance import users
from podium.governance.sessions import COOKIE, csrf_token
from tests.conftest import LiveServer, ProjectKeys, make_project

_NO_KEY = object()  # the route takes no key at all (health, schema)


def _actions(dependant: Any) -> tuple[set[Action], bool]:
    """The actions a FastAPI route's dependencies name, and whether it takes a key at all."""
    actions: set[Action] = set()
    takes_key = False
    stack = [dependant]
    while stack:
        d = stack.pop()
        call = d.call
        action = getattr(call, "podium_action", None)
        if action is not None:
            actions.add(action)
        if getattr(call, "__name__", "") == "_current_key":
            takes_key = True
        stack.extend(d.dependencies)
    return actions, takes_key


def _flat(routes: list[Any]) -> list[Any]:
    """Routes, with included routers (FastAPI keeps them nested) flattened."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_flat(inner.routes) if inner is not None else [r])
    return out


def _routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path, action | None | _NO_KEY) for every API, Langfuse, OTLP and gateway route."""
    out: list[tuple[str, str, Any]] = []
    for r in _flat(app.routes):
        if isinstance(r, APIRoute):
            if not r.path.startswith(("/api/", "/v1/")):
                continue
            actions, takes_key = _actions(r.dependant)
            assert len(actions) <= 1, f"{r.path} names several actions: {actions}"
            what: Any = next(iter(actions)) if actions else (None if takes_key else _NO_KEY)
            out.extend((m, r.path, what) for m in sorted(r.methods - {"HEAD"}))
        elif isinstance(r, Route) and r.path.startswith("/v1/") and hasattr(r.endpoint, "podium_action"):
            out.extend((m, r.path, r.endpoint.podium_action) for m in sorted((r.methods or set()) - {"HEAD"}))
    return out


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nonexistent-x", path)


@pytest.fixture
def keys(server: LiveServer) -> dict[str, ProjectKeys]:
    out = {}
    for role in ROLES:
        k = server.store.projects.create_key(server.keys.project_id, role=role)
        out[role] = ProjectKeys(server.keys.project_id, k.key.public_key, k.secret_key)
    return out


_PASSWORD = "a long enough password"


def sign_in(server: LiveServer, email: str) -> dict[str, str]:
    """Sign in through the real login form; the session cookie and the CSRF header to send."""
    r = httpx.post(server.url + "/login/password", data={"email": email, "password": _PASSWORD},
                   follow_redirects=False, timeout=120)
    assert r.status_code == 303, r.text[:300]
    token = r.cookies[COOKIE]
    return {"cookie": f"{COOKIE}={token}", "x-csrf-token": csrf_token(token)}


@pytest.fixture
def sessions(server: LiveServer) -> dict[str, dict[str, str]]:
    """A signed-in user of the server's project for each member role: the headers their requests carry."""
    out = {}
    for role in USER_ROLES:
        users.create_user(server.store, f"{role}@example.com", password=_PASSWORD, role=role,
                          project_id=server.keys.project_id)
        out[role] = sign_in(server, f"{role}@example.com")
    return out


#: Key-only routes: the OpenAI-compatible gateway (apps call it with keys) and end-user feedback (the public
#: key alone). A session cookie there is no credential (401), never a 5xx.
_KEY_ONLY = ("/v1/", "/api/v1/feedback")


def _walk_api(server: LiveServer, who: dict[str, dict[str, Any]], *, sessions: bool = False) -> list[str]:
    """Call every API route as each principal (``who``: name -> httpx.Client kwargs); the failures."""
    routes = _routes(server.app)
    if sessions:
        routes = [r for r in routes if not r[1].startswith(_KEY_ONLY)]
    # Destructive routes last, so a (rejected-anyway) delete never changes what later calls see.
    routes.sort(key=lambda t: t[0] == "DELETE")
    failures: list[str] = []
    for role, client_kw in who.items():
        with httpx.Client(base_url=server.url, timeout=120, **client_kw) as c:
            for method, path, action in routes:
                kw: dict[str, Any] = {}
                if method in {"POST", "PUT", "PATCH"}:
                    kw["json"] = {}
                r = c.request(method, _fill(path), **kw)
                where = f"{role:8} {method} {path} ({getattr(action, 'value', action)}): {r.status_code}"
                if r.status_code >= 500 or r.status_code == 401:
                    failures.append(where + " " + r.text[:200])
                elif action is _NO_KEY or action is None:
                    if r.status_code == 403:
                        failures.append(where + " (open to anyone signed in, got 403)")
                elif (r.status_code == 403) != (not allowed(role, action)):
                    failures.append(where + f" expected {'403' if not allowed(role, action) else 'not 403'}: "
                                    + r.text[:200])
    return failures


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_api_route_follows_the_role_matrix_for_signed_in_users(
        server: LiveServer, sessions: dict[str, dict[str, str]]) -> None:
    """The UI's own REST calls: a session cookie (and its CSRF token on writes) authenticates the API with the
    user's role in the project, checked against the same table."""
    failures = _walk_api(server, {role: {"headers": h} for role, h in sessions.items()}, sessions=True)
    assert not failures, "\n".join(failures)
    # The owner-only routes exist and are walked.
    assert any(a is Action.OWN for _, _, a in _routes(server.app))
    for path in ("/v1/models", "/api/v1/feedback"):
        r = httpx.request("GET" if path == "/v1/models" else "POST", server.url + path, headers=sessions["owner"],
                          json={} if path != "/v1/models" else None, timeout=120)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])


def test_every_api_route_follows_the_role_matrix(server: LiveServer, keys: dict[str, ProjectKeys]) -> None:
    routes = _routes(server.app)
    schema = httpx.get(server.url + "/api/v1/openapi.json", timeout=120).json()
    # Every operation of the published schema is walked (and maps to a route above).
    walked = {(m, p.replace(":path}", "}")) for m, p, _ in routes}
    for path, ops in schema["paths"].items():
        for method in ops:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"} and path != "/api/v1/health":
                assert (method.upper(), path) in walked, f"{method.upper()} {path} has no route with an action"
    paths = {p for _, p, _ in routes}
    for must in ("/v1/traces", "/v1/logs", "/v1/chat/completions", "/v1/models", "/api/public/ingestion"):
        assert must in paths, must
    # Destructive routes last, so a (rejected-anyway) delete never changes what later calls see.
    routes.sort(key=lambda t: t[0] == "DELETE")
    failures: list[str] = []
    for role, k in keys.items():
        with httpx.Client(base_url=server.url, timeout=120, auth=k.basic()) as c:
            for method, path, action in routes:
                kw: dict[str, Any] = {}
                if method in {"POST", "PUT", "PATCH"}:
                    kw["json"] = {}
                r = c.request(method, _fill(path), **kw)
                where = f"{role:8} {method} {path} ({getattr(action, 'value', action)}): {r.status_code}"
                if r.status_code >= 500 or r.status_code == 401:
                    failures.append(where + " " + r.text[:200])
                elif action is _NO_KEY or action is None:
                    if r.status_code == 403:
                        failures.append(where + " (open to any key, got 403)")
                elif (r.status_code == 403) != (not allowed(role, action)):
                    failures.append(where + f" expected {'403' if not allowed(role, action) else 'not 403'}: "
                                    + r.text[:200])
    assert not failures, "\n".join(failures)


def _ui_routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path, action | None) for every route of the web UI (any module of podium.server.ui),
    GET pages and POST forms alike; the action is the handler's ``@ui_action`` tag. An untagged
    route is reported with ``_UNTAGGED`` (so a new UI module's routes are walked from day one)."""
    out: list[tuple[str, str, Any]] = []
    for r in _flat(app.routes):
        if not isinstance(r, APIRoute) or not r.endpoint.__module__.startswith("podium.server.ui"):
            continue
        action = getattr(r.endpoint, "podium_action", _UNTAGGED)
        out.extend((m, r.path, action) for m in sorted(r.methods - {"HEAD"}))
    return out


_UNTAGGED = object()


def test_every_ui_route_is_tagged_with_its_action(server: LiveServer) -> None:
    routes = _ui_routes(server.app)
    untagged = [f"{m} {p}" for m, p, a in routes if a is _UNTAGGED]
    assert not untagged, ("UI routes without @ui_action(Action.X) (podium.server.ui.access): tag each with the "
                          "action its handler checks: " + ", ".join(untagged))
    methods = {m for m, _, _ in routes}
    assert methods == {"GET", "POST"}, methods
    paths = {p for _, p, _ in routes}
    for must in ("/", "/traces", "/prompts", "/settings", "/settings/keys", "/traces/{trace_id}/scores"):
        assert must in paths, must
    # Only the sign-in pages need no key.
    assert {p for _, p, a in routes if a is None} == {
        "/login", "/logout", "/login/password", "/auth/logout", "/auth/oidc/login", "/auth/oidc/callback",
        "/invite/{token}"}


def test_every_ui_route_follows_the_role_matrix(server: LiveServer, keys: dict[str, ProjectKeys]) -> None:
    """Every UI GET page and POST form, remote (local mode off: a non-loopback Host), with each role's key:
    a role the route's action denies gets the 403 page; the others never a 403, a 401 or a 5xx.

    POSTs carry an empty form and ids that do not exist, so an allowed role gets a 400 or 404 (or a
    harmless save) and nothing the walk depends on changes."""
    failures = _walk_ui(server, {role: {"auth": k.basic()} for role, k in keys.items()})
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_ui_route_follows_the_role_matrix_for_signed_in_users(
        server: LiveServer, sessions: dict[str, dict[str, str]]) -> None:
    """The same walk with a signed-in user of each member role (forms carry the session's CSRF token)."""
    failures = _walk_ui(server, {role: {"headers": h} for role, h in sessions.items()})
    assert not failures, "\n".join(failures)


def _walk_ui(server: LiveServer, who: dict[str, dict[str, Any]]) -> list[str]:
    routes = [(m, p, a) for m, p, a in _ui_routes(server.app) if a is not None and a is not _UNTAGGED]
    assert any(m == "POST" for m, _, _ in routes)
    # Pages first, then the forms; signing out everywhere last (it ends the walker's own session).
    routes.sort(key=lambda t: (t[0] == "POST", t[1] == "/account/sessions/revoke"))
    failures: list[str] = []
    for role, client_kw in who.items():
        headers = {"host": "podium.example", "accept": "text/html", **client_kw.pop("headers", {})}
        with httpx.Client(base_url=server.url, timeout=120, headers=headers, **client_kw) as c:
            for method, path, action in routes:
                kw: dict[str, Any] = {"data": {}} if method == "POST" else {}
                r = c.request(method, _fill(path), follow_redirects=False, **kw)
                where = f"{role:8} {method} {path} ({action.value}): {r.status_code}"
                if r.status_code >= 500 or r.status_code == 401:
                    failures.append(where + " " + r.text[:200])
                elif not allowed(role, action):
                    if r.status_code != 403 or not r.headers.get("content-type", "").startswith("text/html"):
                        failures.append(where + " expected the 403 page")
                elif r.status_code == 403:
                    failures.append(where + " expected not 403: " + r.text[:200])
    return failures


def test_users_of_one_project_never_reach_another(server: LiveServer, sessions: dict[str, dict[str, str]]) -> None:
    """Project B's members, keys, invitations and its id stay out of reach of every user of project A,
    whatever their role; a user cannot move their session onto a project they are not a member of."""
    b = make_project(server.store, "project-b")
    bob = users.create_user(server.store, "bob@b.example", password=_PASSWORD, role="owner", project_id=b.project_id)
    for role, headers in sessions.items():
        with httpx.Client(base_url=server.url, timeout=120, headers=headers) as c:
            assert c.get("/api/v1/project").json()["id"] == server.keys.project_id
            r = c.get("/api/v1/members")
            if allowed(role, Action.ADMIN):
                assert "bob@b.example" not in r.text and "owner@example.com" in r.text
                assert b.public_key not in c.get("/api/v1/keys").text
                assert c.put(f"/api/v1/members/{bob.id}", json={"role": "viewer"}).status_code == 404
                assert c.delete(f"/api/v1/members/{bob.id}").status_code == 404
                assert c.post(f"/api/v1/users/{bob.id}/sessions/revoke").status_code == 404
            else:
                assert r.status_code == 403
            me = c.get("/api/v1/users/me").json()
            assert [p["id"] for p in me["projects"]] == [server.keys.project_id]
            r = c.post("/account/project", data={"project_id": b.project_id, "csrf_token": headers["x-csrf-token"]},
                       follow_redirects=False)
            assert r.status_code == 404, r.text[:200]
            assert c.get("/api/v1/project").json()["id"] == server.keys.project_id
    assert server.store.users.role_of(b.project_id, bob.id) == "owner"
