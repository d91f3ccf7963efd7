"""People: argon2id passwords, sessions (idle and absolute expiry, revocation), CSRF, the login rate
limit and invitations (expired, reused), on SQLite and PostgreSQL; the HTTP parts through a real server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from argon2 import extract_parameters
from argon2.low_level import Type

from podium.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, ValidationFailed
from podium.governance import invitations, users
from podium.governance.login_limits import LoginLimiter
from podium.governance.passwords import PARAMS, hash_password, needs_rehash, verify_password
from podium.governance.sessions import COOKIE, SessionManager, csrf_token, token_hash
from tests.conftest import LiveServer, make_project

PW = "correct horse battery staple"


# --- passwords -------------------------------------------------------------------------------


def test_passwords_are_argon2id_with_the_documented_parameters() -> None:
    h = hash_password(PW)
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    p = extract_parameters(h)
    assert (p.type, p.memory_cost, p.time_cost, p.parallelism) == (Type.ID, 65536, 3, 4)
    assert PARAMS["memory_cost"] == 65536
    assert verify_password(h, PW) and not verify_password(h, PW + "x")
    assert hash_password(PW) != h  # salted
    assert not verify_password(None, PW) and not verify_password("not a hash", PW)
    assert not needs_rehash(h)
    weak = h.replace("t=3", "t=1")  # other parameters: rehash on the next sign-in
    assert needs_rehash(weak)
    with pytest.raises(ValidationFailed, match="at least 10"):
        hash_password("short")


# --- sessions --------------------------------------------------------------------------------


@pytest.fixture
def owner(store: Any) -> tuple[Any, Any]:
    keys = make_project(store, "default")
    user = users.create_user(store, "Ana@Example.com", password=PW, role="owner", project_id=keys.project_id)
    return keys, user


def test_sessions_expire_when_idle_or_old_and_can_be_revoked(store: Any, owner: tuple[Any, Any]) -> None:
    keys, user = owner
    assert user.email == "ana@example.com"
    mgr = SessionManager(store, idle=timedelta(minutes=30), absolute=timedelta(hours=8))
    token = mgr.start(user, project_id=None, ip="10.0.0.1", user_agent="test", method="password")
    row = store.users.session_principal(token_hash(token))[0]
    assert row.id != token and row.project_id == keys.project_id  # only the hash is stored
    now = datetime.now(UTC)
    p = mgr.resolve(token, now=now + timedelta(minutes=29))
    assert p is not None and p.role == "owner" and p.user.id == user.id
    assert mgr.resolve(token, now=now + timedelta(minutes=29, seconds=30)) is not None  # use moved last_seen
    assert mgr.resolve(token, now=now + timedelta(minutes=58)) is not None  # sliding idle window
    assert mgr.resolve(token, now=now + timedelta(hours=2)) is None  # idle for longer than 30 minutes
    t2 = mgr.start(user, project_id=None, ip=None, user_agent=None, method="password")
    assert mgr.resolve(t2, now=now + timedelta(hours=8, seconds=1)) is None  # absolute expiry
    assert mgr.resolve("made-up-token") is None and mgr.resolve(None) is None
    # Role changes apply at once; disabling or "sign out everywhere" ends every session.
    t3 = mgr.start(user, project_id=None, ip=None, user_agent=None, method="password")
    store.users.set_member(keys.project_id, user.id, "viewer")
    p3 = mgr.resolve(t3)
    assert p3 is not None and p3.role == "viewer"
    assert mgr.end_all(user.id) >= 2
    assert mgr.resolve(t2) is None and mgr.resolve(t3) is None
    t4 = mgr.start(user, project_id=None, ip=None, user_agent=None, method="password")
    store.users.update_user(user.id, disabled_at=datetime.now(UTC))
    assert mgr.resolve(t4) is None


def test_csrf_token_is_per_session() -> None:
    assert csrf_token("a") != csrf_token("b") and csrf_token("a") == csrf_token("a")
    assert len(csrf_token("a")) == 64


# --- the login rate limit ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_login_rate_limit_per_account_and_per_address() -> None:
    clock = Clock()
    lim = LoginLimiter(per_account=3, per_ip=5, window=60, clock=clock)
    for _ in range(3):
        lim.check("ana@example.com", "1.1.1.1")
        lim.failed("ana@example.com", "1.1.1.1")
    with pytest.raises(TooManyRequests) as e:
        lim.check("ana@example.com", "2.2.2.2")  # the account is locked from anywhere
    assert 59 <= e.value.retry_after <= 60 and "account" in e.value.message
    lim.check("bo@example.com", "1.1.1.1")  # the address has 2 more tries
    lim.failed("bo@example.com", "1.1.1.1")
    lim.failed("cy@example.com", "1.1.1.1")
    with pytest.raises(TooManyRequests, match="address"):
        lim.check("dee@example.com", "1.1.1.1")
    clock.t += 61
    lim.check("ana@example.com", "1.1.1.1")  # the window passed
    lim.failed("ana@example.com", "3.3.3.3")
    lim.succeeded("ana@example.com")  # a success clears the account's count
    lim.check("ana@example.com", "3.3.3.3")


def test_login_rate_limit_through_redis() -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except redis.RedisError:
        pytest.fail("Redis must run at 127.0.0.1:6379 for this test (.ci/run starts it)")
    email = f"redis-{datetime.now(UTC).timestamp()}@example.com"
    a = LoginLimiter(per_account=2, per_ip=100, window=30, redis_url="redis://127.0.0.1:6379/0")
    b = LoginLimiter(per_account=2, per_ip=100, window=30, redis_url="redis://127.0.0.1:6379/0")
    a.failed(email, None)
    b.failed(email, None)  # another process: the count is shared
    with pytest.raises(TooManyRequests) as e:
        a.check(email, None)
    assert 1 <= e.value.retry_after <= 30
    b.succeeded(email)
    a.check(email, None)


def test_password_login(store: Any, owner: tuple[Any, Any]) -> None:
    _, user = owner
    lim = LoginLimiter(per_account=2, per_ip=100, window=60)
    assert users.password_login(store, lim, "ANA@example.com", PW, "1.2.3.4").id == user.id
    with pytest.raises(Unauthorized, match="wrong email or password"):
        users.password_login(store, lim, "ana@example.com", "wrong password", "1.2.3.4")
    with pytest.raises(Unauthorized, match="wrong email or password"):  # the same answer for an unknown email
        users.password_login(store, lim, "nobody@example.com", PW, "1.2.3.4")
    with pytest.raises(Unauthorized):
        users.password_login(store, lim, "ana@example.com", "wrong again!", "1.2.3.4")
    with pytest.raises(TooManyRequests):  # even the right password, until the window passes
        users.password_login(store, lim, "ana@example.com", PW, "1.2.3.4")


# --- roles and invitations ---------------------------------------------------------------------


def test_owner_rules(store: Any, owner: tuple[Any, Any]) -> None:
    keys, ana = owner
    bo = users.create_user(store, "bo@example.com", password=PW, role="admin", project_id=keys.project_id)
    cy = users.create_user(store, "cy@example.com", password=PW, role="member", project_id=keys.project_id)
    assert users.set_role(store, keys.project_id, cy.id, "viewer", actor_role="admin") == "member"
    with pytest.raises(Forbidden, match="only an owner"):
        users.set_role(store, keys.project_id, cy.id, "admin", actor_role="admin")
    with pytest.raises(Forbidden, match="only an owner"):
        users.remove_member(store, keys.project_id, bo.id, actor_role="admin")
    with pytest.raises(Conflict, match="last owner"):
        users.set_role(store, keys.project_id, ana.id, "admin", actor_role="owner")
    users.set_role(store, keys.project_id, bo.id, "owner", actor_role="owner")
    users.set_role(store, keys.project_id, ana.id, "member", actor_role="owner")  # another owner remains
    with pytest.raises(NotFound):  # the API never adds non-members by id
        users.set_role(store, keys.project_id, ana.id + "x", "member", actor_role="owner")
    with pytest.raises(ValidationFailed, match="one of owner, admin, member, viewer"):
        users.set_role(store, keys.project_id, cy.id, "ingest", actor_role="owner")


def test_invitations_expire_and_work_once(store: Any, owner: tuple[Any, Any]) -> None:
    keys, ana = owner
    with pytest.raises(Forbidden, match="only an owner may invite"):
        invitations.invite(store, keys.project_id, "x@example.com", "admin", invited_by="user:bo",
                           ttl=timedelta(hours=1), actor_role="admin")
    inv, token = invitations.invite(store, keys.project_id, "New@Example.com", "member", invited_by="user:ana",
                                    ttl=timedelta(hours=1), actor_role="owner")
    assert inv.email == "new@example.com" and store.users.invitation_by_token(token_hash(token)).id == inv.id
    with pytest.raises(ValidationFailed):  # a too-short password consumes nothing
        invitations.accept(store, token, password="short")
    user, got = invitations.accept(store, token, password=PW)
    assert got.id == inv.id and store.users.role_of(keys.project_id, user.id) == "member"
    assert store.users.list_invitations(keys.project_id)[0].accepted_by == user.id
    with pytest.raises(Conflict, match="accepted"):  # one-time
        invitations.accept(store, token, password=PW)
    # Expired
    _old, old_token = invitations.invite(store, keys.project_id, "late@example.com", "viewer", invited_by=None,
                                        ttl=timedelta(seconds=-1), actor_role="owner")
    with pytest.raises(Conflict, match="expired"):
        invitations.accept(store, old_token, password=PW)
    assert store.users.by_email("late@example.com") is None
    with pytest.raises(NotFound):
        invitations.pending(store, "made-up")
    # An existing account accepts while signed in, as the invited email only.
    p2 = make_project(store, "second")
    _inv2, t2 = invitations.invite(store, p2.project_id, "ana@example.com", "viewer", invited_by=None,
                                  ttl=timedelta(hours=1), actor_role="owner")
    with pytest.raises(Conflict, match="already has an account"):
        invitations.accept(store, t2, password=PW)
    with pytest.raises(Forbidden, match=r"is for ana@example\.com"):
        invitations.accept(store, t2, user=user)
    invitations.accept(store, t2, user=ana)
    assert {m.project_name: m.role for m in store.users.memberships(ana.id)} == {"default": "owner", "second": "viewer"}
    # Revoked
    inv3, t3 = invitations.invite(store, p2.project_id, "z@example.com", "viewer", invited_by=None,
                                  ttl=timedelta(hours=1), actor_role="owner")
    store.users.revoke_invitation(p2.project_id, inv3.id)
    with pytest.raises(Conflict, match="revoked"):
        invitations.accept(store, t3, password=PW)


# --- over HTTP ---------------------------------------------------------------------------------


def _sign_in(server: LiveServer, email: str, password: str = PW) -> httpx.Response:
    return httpx.post(server.url + "/login/password", data={"email": email, "password": password},
                      follow_redirects=False, timeout=60)


def test_sign_in_cookie_csrf_and_sign_out_over_http(server: LiveServer) -> None:
    users.create_user(server.store, "ana@example.com", password=PW, role="admin", project_id=server.keys.project_id)
    r = _sign_in(server, "ana@example.com")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; https adds Secure
    token = r.cookies[COOKIE]
    with httpx.Client(base_url=server.url, timeout=60, headers={"host": "podium.example"},
                      cookies={COOKIE: token}) as c:
        page = c.get("/settings/members")
        assert page.status_code == 200 and "ana@example.com" in page.text
        found = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text)
        assert found is not None
        csrf = found.group(1)
        assert csrf == csrf_token(token)
        # CSRF: a form without the token, or with another session's token, is refused.
        assert c.post("/settings/members/invite", data={"email": "x@example.com"}).status_code == 403
        assert c.post("/settings/members/invite",
                      data={"email": "x@example.com", "csrf_token": csrf_token("other")}).status_code == 403
        ok = c.post("/settings/members/invite", data={"email": "x@example.com", "role": "viewer",
                                                      "csrf_token": csrf})
        assert ok.status_code == 201 and "/invite/" in ok.text
        # The REST API with the cookie: reads need no token, writes need the header.
        assert c.get("/api/v1/members").status_code == 200
        r = c.post("/api/v1/invitations", json={"email": "y@example.com"})
        assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
        assert c.post("/api/v1/invitations", json={"email": "y@example.com"},
                      headers={"x-csrf-token": "0" * 64}).status_code == 403
        r = c.post("/api/v1/invitations", json={"email": "y@example.com"}, headers={"x-csrf-token": csrf})
        assert r.status_code == 201 and r.json()["url"].endswith("/invite/" + r.json()["token"])
        # An admin may not invite an owner.
        r = c.post("/api/v1/invitations", json={"email": "z@example.com", "role": "owner"},
                   headers={"x-csrf-token": csrf})
        assert r.status_code == 403 and "only an owner" in r.json()["error"]["message"]
        assert c.post("/auth/logout", data={}, follow_redirects=False).status_code == 303
        r = c.get("/api/v1/members")
        assert r.status_code == 401 and "sign in again" in r.json()["error"]["message"]


def test_login_rate_limit_over_http(server: LiveServer) -> None:
    users.create_user(server.store, "ana@example.com", password=PW, role="viewer", project_id=server.keys.project_id)
    for _ in range(5):
        assert _sign_in(server, "ana@example.com", "wrong password").status_code == 401
    r = _sign_in(server, "ana@example.com")
    assert r.status_code == 429 and 800 <= int(r.headers["retry-after"]) <= 900
    assert "too many failed sign-ins" in r.text


def test_invitation_accept_over_http(server: LiveServer) -> None:
    _inv, token = invitations.invite(server.store, server.keys.project_id, "new@example.com", "member",
                                    invited_by=None, ttl=timedelta(hours=1), actor_role="owner")
    with httpx.Client(base_url=server.url, timeout=60, headers={"host": "podium.example"}) as c:
        assert "Create account and join" in c.get(f"/invite/{token}").text
        r = c.post(f"/invite/{token}", data={"password": PW}, follow_redirects=False)
        assert r.status_code == 303 and COOKIE in r.headers["set-cookie"]
        me = c.get("/api/v1/users/me", cookies={COOKIE: r.cookies[COOKIE]}).json()
        assert me["email"] == "new@example.com" and me["role"] == "member"
        again = c.get(f"/invite/{token}")
        assert again.status_code == 409 and "was accepted" in again.text
