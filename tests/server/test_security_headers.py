"""Browser-facing security headers, the templates they hold to, and DNS rebinding.

Issue 16 item 7. The real app in-process (httpx's ASGI transport with a chosen peer address
and scheme) and a real uvicorn server on a socket (a loopback peer sending a foreign Host, as a
DNS-rebinding page in a browser on this machine would), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.config import Settings
from podium.server.app import create_app
from podium.server.security_headers import CSP, host_allowed, parse_hosts
from tests.conftest import LiveServer, ProjectKeys, ServerThread

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "podium" / "server" / "ui" / "templates"
BROWSER_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _client(app: Any, *, peer: str = "127.0.0.1", scheme: str = "http", host: str = "127.0.0.1:8700",
            **kw: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://{host}", **kw)


async def test_every_kind_of_response_carries_the_browser_headers(store: Any, project: ProjectKeys) -> None:
    app = create_app(Settings(), store=store)
    async with _client(app, auth=project.basic()) as c:
        responses = {
            "ui page": await c.get("/traces", headers={"accept": "text/html"}),
            "ui error page": await c.get("/traces/no-such-trace", headers={"accept": "text/html"}),
            "api": await c.get("/api/v1/traces"),
            "api error": await c.get("/api/v1/traces/no-such-trace"),
            "gateway": await c.get("/v1/models", headers={"authorization": f"Bearer {project.secret_key}"}),
            "static file": await c.get("/ui/static/app.js"),
            "health": await c.get("/api/v1/health"),
        }
    for what, r in responses.items():
        assert r.status_code < 500, (what, r.status_code)
        for name, value in BROWSER_HEADERS.items():
            assert r.headers.get(name) == value, (what, name, r.headers.get(name))
        assert "strict-transport-security" not in r.headers, what  # plain HTTP: never
    assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP
    assert "unsafe-eval" not in CSP and "'unsafe-inline'" not in CSP.split("script-src")[1].split(";")[0]


async def test_hsts_only_over_tls(store: Any, project: ProjectKeys) -> None:
    app = create_app(Settings(), store=store)
    async with _client(app, scheme="https") as c:
        r = await c.get("/api/v1/health")
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    async with _client(app, scheme="http") as c:
        assert "strict-transport-security" not in (await c.get("/api/v1/health")).headers
    off = create_app(Settings(hsts_max_age=0), store=store)
    async with _client(off, scheme="https") as c:
        assert "strict-transport-security" not in (await c.get("/api/v1/health")).headers


def test_hsts_when_a_trusted_proxy_says_https(server: LiveServer) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS): the proxy terminated TLS.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert "strict-transport-security" in c.get("/api/v1/health", headers={"x-forwarded-proto": "https"}).headers
        assert "strict-transport-security" not in c.get("/api/v1/health").headers


def test_templates_hold_no_inline_script_or_event_handler() -> None:
    """The CSP (script-src 'self') would block them in the browser: catch them at review time."""
    problems = []
    for path in sorted(TEMPLATES.glob("*.html")):
        text = path.read_text()
        for m in re.finditer(r"<script\b([^>]*)>", text, re.I):
            attrs = m.group(1)
            if "src=" not in attrs and 'type="application/json"' not in attrs:
                problems.append(f"{path.name}: inline <script{attrs}>")
        for m in re.finditer(r"<[a-z][^>]*?\s(on[a-z]+)\s*=", text, re.I):
            problems.append(f"{path.name}: event handler attribute {m.group(1)}=")
        if re.search(r"javascript:", text, re.I):
            problems.append(f"{path.name}: javascript: URL")
        if re.search(r"\bhx-on\b|hx-on:|hx-vars|js:", text):
            problems.append(f"{path.name}: htmx attribute that evaluates script")
    assert not problems, problems
    base = (TEMPLATES / "base.html").read_text()
    assert '"allowEval":false' in base.replace(" ", "")  # htmx configured by <meta>, no eval


def test_ui_cookies_are_httponly_samesite_and_secure_over_tls(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as c:
        r = c.post("/login", data={"public_key": server.keys.public_key, "secret_key": server.keys.secret_key},
                   headers={"x-forwarded-for": "203.0.113.7"})
        cookies = r.headers.get_list("set-cookie")
        assert cookies, (r.status_code, r.text[:300])
        for ck in cookies:
            low = ck.lower()
            assert "httponly" in low and "samesite=" in low, ck
            assert "secure" not in low.split(";")[1:], ck  # plain HTTP: a Secure cookie would be dropped
        r = c.post("/login", data={"public_key": server.keys.public_key, "secret_key": server.keys.secret_key},
                   headers={"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"})
        for ck in r.headers.get_list("set-cookie"):
            assert "secure" in [p.strip().lower() for p in ck.split(";")], ck


# --- DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 -------------

@pytest.fixture
def local(store: Any, project: ProjectKeys) -> Iterator[LiveServer]:
    app = create_app(Settings(host="127.0.0.1"), store=store)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th)
    th.stop()


def _raw(port: int, request: str) -> tuple[int, dict[str, str], str]:
    """One HTTP/1.1 request over a socket from this machine (the browser's connection after the
    rebinding: peer 127.0.0.1, Host the attacker's name)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    return int(lines[0].split()[1]), headers, body.decode("utf-8", "replace")


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.1.nip.io:{port}"])
def test_dns_rebinding_page_gets_no_local_mode(local: LiveServer, host: str) -> None:
    port = local.thread.port
    h = host.format(port=port)
    # The same requests with a loopback Host are local mode: the UI answers without a login.
    ok, _, _ = _raw(port, f"GET /traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n"
                          "Connection: close\r\n\r\n")
    assert ok == 200
    # UI page: the login page, not the project.
    status, headers, _ = _raw(port, f"GET /traces HTTP/1.1\r\nHost: {h}\r\nAccept: text/html\r\n"
                                    "Connection: close\r\n\r\n")
    assert status == 303 and headers["location"].startswith("/login"), (status, headers)
    # UI form (create a key in the settings): refused, nothing created.
    before = len(local.store.projects.list_keys(local.keys.project_id))
    form = "role=admin&note=rebinding"
    status, headers, _ = _raw(port, f"POST /settings/keys HTTP/1.1\r\nHost: {h}\r\nOrigin: http://{h}\r\n"
                                    "Content-Type: application/x-www-form-urlencoded\r\n"
                                    f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n{form}")
    assert status in (303, 401, 403), status
    assert len(local.store.projects.list_keys(local.keys.project_id)) == before
    # API and gateway: a key is required, as from anywhere.
    status, _, body = _raw(port, f"GET /api/v1/traces HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n")
    assert status == 401 and '"unauthorized"' in body, (status, body)
    chat = '{"model": "local", "messages": [{"role": "user", "content": "hi"}]}'
    status, _, body = _raw(port, f"POST /v1/chat/completions HTTP/1.1\r\nHost: {h}\r\n"
                                 f"Content-Type: application/json\r\nContent-Length: {len(chat)}\r\n"
                                 f"Connection: close\r\n\r\n{chat}")
    assert status == 401, (status, body)
    status, _, _ = _raw(port, f"GET /metrics HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n")
    assert status in (401, 403)


async def test_allowed_hosts_refuses_other_host_headers_in_the_pinned_shape(store: Any,
                                                                            project: ProjectKeys) -> None:
    app = create_app(Settings(allowed_hosts="podium.example.com, *.internal.example"), store=store)
    for host, ok in (("podium.example.com", True), ("podium.example.com:8443", True),
                     ("eu.internal.example", True), ("attacker.example", False),
                     ("internal.example", False), ("127.0.0.1:8700", False)):
        async with _client(app, peer="203.0.113.7", host=host, auth=project.basic()) as c:
            r = await c.get("/api/v1/traces")
        if ok:
            assert r.status_code == 200, (host, r.text)
        else:
            assert r.status_code == 400, (host, r.status_code)
            err = r.json()["error"]
            assert set(err) == {"code", "message", "details"} and "PODIUM_ALLOWED_HOSTS" in err["message"]
            assert err["details"][0]["field"] == "header.host"
            assert r.headers["x-frame-options"] == "DENY"


def test_host_matching_rules() -> None:
    allowed = parse_hosts(" Podium.Example.com ,*.corp.example,[::1]")
    assert host_allowed("podium.example.com:443", allowed)
    assert host_allowed("a.b.corp.example", allowed) and not host_allowed("corp.example", allowed)
    assert not host_allowed("evilcorp.example", allowed)
    assert not host_allowed(None, allowed) and host_allowed(None, ())
    assert host_allowed("anything", parse_hosts("*"))


# --- the API docs page -------------------------------------------------------------------------

async def test_api_docs_are_served_from_this_server(store: Any) -> None:
    app = create_app(Settings(), store=store)
    async with _client(app) as c:
        page = await c.get("/api/v1/docs")
        assert page.status_code == 200 and "cdn." not in page.text and "<script>" not in page.text
        srcs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert all(s.startswith("/api/v1/docs/") or s.startswith("data:") for s in srcs), srcs
        for s in srcs:
            if s.startswith("/"):
                r = await c.get(s)
                assert r.status_code == 200 and r.content, s
        assert (await c.get("/api/v1/docs/../config.py")).status_code == 404
        assert (await c.get("/api/v1/docs/htmx.min.js")).status_code == 404
