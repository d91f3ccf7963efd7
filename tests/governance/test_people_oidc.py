"""Single sign-on against a real local OpenID provider (oidc-provider-mock, in a thread on a free
port): the whole browser-less authorization-code flow over HTTP with redirects followed by hand,
ending in a user session; and the refusals (forged state, wrong nonce, wrong issuer, unverified email)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from podium.governance import users
from podium.governance.oidc import OidcClient, OidcError, Pending
from podium.governance.sessions import COOKIE
from tests.conftest import LiveServer, ProjectKeys, ServerThread

oidc_provider_mock = pytest.importorskip("oidc_provider_mock")

CLIENT_ID, CLIENT_SECRET = "podium-test", "s3cret"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    claims = [
        oidc_provider_mock.User(sub="alice", claims={"email": "alice@example.com", "email_verified": True,
                                                     "name": "Alice"}),
        oidc_provider_mock.User(sub="mallory", claims={"email": "mallory@example.com", "email_verified": False}),
        oidc_provider_mock.User(sub="eve", claims={"email": "eve@elsewhere.test", "email_verified": True}),
    ]
    with oidc_provider_mock.run_server_in_thread(port=0, require_nonce=True, user_claims=claims) as srv:
        yield f"http://localhost:{srv.server_port}"


@pytest.fixture
def sso_server(store: Any, project: ProjectKeys, provider: str) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    settings = Settings(oidc_issuer=provider, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
                        oidc_name="TestID", oidc_allowed_domains="example.com", oidc_default_role="member",
                        oidc_project=project.project_id)
    app = create_app(settings, store=store)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th)
    th.stop()


def _start(c: httpx.Client, next_url: str = "/traces") -> tuple[str, str]:
    """Podium's login redirect: (the provider's authorize URL, the pending-sign-in cookie)."""
    r = c.get("/auth/oidc/login", params={"next": next_url})
    assert r.status_code == 303, r.text[:300]
    assert "HttpOnly" in r.headers["set-cookie"]
    return r.headers["location"], r.cookies["podium_oidc"]


def _at_provider(authorize_url: str, sub: str) -> str:
    """The user picks ``sub`` at the provider's consent form; the redirect back to Podium's callback."""
    q = parse_qs(urlsplit(authorize_url).query)
    assert q["code_challenge_method"] == ["S256"] and q["code_challenge"][0] and q["nonce"][0] and q["state"][0]
    r = httpx.post(authorize_url, data={"sub": sub}, follow_redirects=False, timeout=60)
    assert r.status_code in (302, 303), r.text[:300]
    return r.headers["location"]


def _callback(c: httpx.Client, location: str, pending_cookie: str) -> httpx.Response:
    u = urlsplit(location)
    c.cookies.set("podium_oidc", pending_cookie, path="/auth/oidc")
    return c.get(u.path + "?" + u.query)


def test_login_page_offers_the_provider(sso_server: LiveServer) -> None:
    r = httpx.get(sso_server.url + "/login", headers={"host": "podium.example"}, timeout=60)
    assert "Sign in with TestID" in r.text and 'href="/auth/oidc/login' in r.text


def test_the_whole_flow_signs_the_user_in(sso_server: LiveServer) -> None:
    with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
        url, pending = _start(c)
        assert url.startswith(sso_server.app.state.podium.settings.oidc_issuer + "/oauth2/authorize?")
        location = _at_provider(url, "alice")
        assert location.startswith(sso_server.url + "/auth/oidc/callback?")
        r = _callback(c, location, pending)
        assert r.status_code == 303 and r.headers["location"] == "/traces", r.text[:500]
        session = r.cookies[COOKIE]
        me = c.get("/api/v1/users/me", cookies={COOKIE: session}).json()
    assert me["kind"] == "user" and me["email"] == "alice@example.com" and me["role"] == "member"
    user = sso_server.store.users.by_email("alice@example.com")
    assert user.oidc_subject.endswith("|alice") and user.password_hash is None and user.name == "Alice"
    # A second sign-in finds the same account through its subject.
    with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
        url, pending = _start(c, "/")
        assert _callback(c, _at_provider(url, "alice"), pending).status_code == 303
    assert sso_server.store.users.count_users() == 1


def test_existing_account_is_linked_by_verified_email(sso_server: LiveServer) -> None:
    users.create_user(sso_server.store, "alice@example.com", password="a long password here", role="admin",
                      project_id=sso_server.keys.project_id)
    with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
        url, pending = _start(c)
        r = _callback(c, _at_provider(url, "alice"), pending)
        assert r.status_code == 303
        me = c.get("/api/v1/users/me", cookies={COOKIE: r.cookies[COOKIE]}).json()
    assert me["role"] == "admin"
    assert sso_server.store.users.by_email("alice@example.com").oidc_subject.endswith("|alice")


def test_forged_state_is_refused(sso_server: LiveServer) -> None:
    with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
        url, pending = _start(c)
        location = _at_provider(url, "alice").replace("state=", "state=forged")
        r = _callback(c, location, pending)
    assert r.status_code == 400 and "state does not match" in r.text and COOKIE not in r.headers.get("set-cookie", "")


def test_wrong_nonce_is_refused(sso_server: LiveServer) -> None:
    with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
        url, pending = _start(c)
        p = Pending.load(pending)
        swapped = Pending(p.state, "another-nonce", p.verifier, p.next, p.started).dump()
        r = _callback(c, _at_provider(url, "alice"), swapped)
    assert r.status_code == 400 and "nonce" in r.text and "single sign-on failed" in r.text
    assert sso_server.store.users.count_users() == 0


def test_missing_pending_cookie_is_refused(sso_server: LiveServer) -> None:
    with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
        url, _ = _start(c)
        location = _at_provider(url, "alice")
        c.cookies.clear()
        u = urlsplit(location)
        r = c.get(u.path + "?" + u.query)
    assert r.status_code == 400 and "cookie is missing" in r.text


def test_unverified_email_and_other_domains_are_refused(sso_server: LiveServer) -> None:
    for sub, why in (("mallory", "not verified"), ("eve", "not an allowed domain")):
        with httpx.Client(base_url=sso_server.url, timeout=60, follow_redirects=False) as c:
            url, pending = _start(c)
            r = _callback(c, _at_provider(url, sub), pending)
        assert r.status_code == 400 and why in r.text, r.text[-800:]
    assert sso_server.store.users.count_users() == 0


def test_discovery_naming_another_issuer_is_refused(provider: str) -> None:
    """The discovery document must name exactly the configured issuer (here served as another issuer's)."""
    def handler(request: httpx.Request) -> httpx.Response:
        doc = httpx.get(provider + "/.well-known/openid-configuration", timeout=60).json()
        return httpx.Response(200, json={**doc, "issuer": "https://evil.example"})

    client = OidcClient(provider, CLIENT_ID, CLIENT_SECRET, http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    with pytest.raises(OidcError, match=r"names issuer 'https://evil\.example'"):
        asyncio.run(client.begin("http://127.0.0.1:1/auth/oidc/callback"))


def test_id_token_from_another_issuer_or_audience_is_refused(provider: str) -> None:
    """Validate a real id_token (from the provider's token endpoint) against the wrong issuer, audience, nonce
    and a broken signature."""
    async def flow() -> tuple[str, str]:
        client = OidcClient(provider, CLIENT_ID, CLIENT_SECRET)
        url, pending = await client.begin("http://127.0.0.1:9/cb")
        location = _at_provider(url, "alice")
        code = parse_qs(urlsplit(location).query)["code"][0]
        meta = await client.metadata()
        async with httpx.AsyncClient(timeout=60) as h:
            r = await h.post(meta["token_endpoint"], data={"grant_type": "authorization_code", "code": code,
                                                           "redirect_uri": "http://127.0.0.1:9/cb",
                                                           "code_verifier": pending.verifier},
                             auth=httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET))
        return r.json()["id_token"], pending.nonce

    id_token, nonce = asyncio.run(flow())
    good = OidcClient(provider, CLIENT_ID, CLIENT_SECRET)
    assert asyncio.run(good.validate(id_token, nonce=nonce)).email == "alice@example.com"
    # The same provider reached as 127.0.0.1 calls itself that issuer: its keys verify, its `iss` differs.
    other_iss = OidcClient(provider.replace("localhost", "127.0.0.1"), CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(OidcError, match="iss"):
        asyncio.run(other_iss.validate(id_token, nonce=nonce))
    other_aud = OidcClient(provider, "someone-else", CLIENT_SECRET)
    with pytest.raises(OidcError, match="aud"):
        asyncio.run(other_aud.validate(id_token, nonce=nonce))
    with pytest.raises(OidcError, match="nonce"):
        asyncio.run(good.validate(id_token, nonce="other"))
    tampered = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
    with pytest.raises(OidcError, match="signature"):
        asyncio.run(good.validate(tampered, nonce=nonce))
