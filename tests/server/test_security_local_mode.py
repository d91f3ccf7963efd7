"""No-login local mode trusts only this machine: a loopback peer, a loopback Host, no proxy.

Issue 10 item 10: a reverse proxy on the same host rewrites Host to ``127.0.0.1:PORT``
(nginx's default), which used to hand every visitor the admin UI. Each test drives a real
server (uvicorn on a socket) or the real app with a chosen peer address (httpx's ASGI
transport), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podium.config import Settings
from podium.server.app import create_app
from tests.conftest import LiveServer, ServerThread

pytestmark = pytest.mark.integration


def _get(url: str, path: str = "/traces", **headers: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30, headers={"accept": "text/html", **headers}) as c:
        return c.get(path, follow_redirects=False)


def _is_login(r: httpx.Response) -> bool:
    return r.status_code == 303 and r.headers["location"].startswith("/login")


@pytest.fixture
def start(store: Any, project: Any) -> Iterator[Any]:
    threads: list[ServerThread] = []

    def make(**settings: Any) -> ServerThread:
        th = ServerThread(create_app(Settings(**settings), store=store)).start()
        threads.append(th)
        return th

    yield make
    for th in threads:
        th.stop()


def test_local_browser_gets_admin_without_login(server: LiveServer) -> None:
    assert _get(server.url).status_code == 200


@pytest.mark.parametrize("header", [
    {"x-forwarded-for": "203.0.113.7"},
    {"forwarded": "for=203.0.113.7;proto=https"},
    {"x-real-ip": "203.0.113.7"},
    {"via": "1.1 proxy.example"},
])
def test_request_forwarded_by_a_proxy_gets_the_login_page(server: LiveServer, header: dict[str, str]) -> None:
    # What nginx/Caddy/Apache on this machine send: Host rewritten to 127.0.0.1:PORT, a forwarding header.
    r = _get(server.url, host=f"127.0.0.1:{server.thread.port}", **header)
    assert _is_login(r), (r.status_code, r.headers)
    # ...and the API's key checks stay as they are: no key, no data.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/api/v1/traces", headers=header).status_code == 401


def test_http10_request_like_nginx_default_proxy_gets_the_login_page(server: LiveServer) -> None:
    # nginx proxies with HTTP/1.0 unless told otherwise, and adds no X-Forwarded-For by default.
    with socket.create_connection(("127.0.0.1", server.thread.port), timeout=10) as s:
        s.sendall(f"GET /traces HTTP/1.0\r\nHost: 127.0.0.1:{server.thread.port}\r\n"
                  "Accept: text/html\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.split()[1] == "303" and "location: /login" in head, head


def test_trust_proxy_setting_restores_local_mode_behind_a_proxy(start: Any) -> None:
    th = start(trust_proxy_local_mode=True)
    host = f"127.0.0.1:{th.port}"
    assert _get(th.url, host=host, **{"x-forwarded-for": "127.0.0.1"}).status_code == 200
    assert _get(th.url, host=host, **{"forwarded": 'for="[::1]:5000";proto=http'}).status_code == 200
    assert _get(th.url, host=host, via="1.1 local-proxy").status_code == 200
    # ...but only for a client the proxy itself says is on this machine.
    assert _is_login(_get(th.url, host=host, **{"x-real-ip": "203.0.113.7"}))
    assert _is_login(_get(th.url, host=host, **{"forwarded": "for=203.0.113.7:4711"}))


def test_local_mode_can_be_switched_off(start: Any) -> None:
    th = start(local_mode=False)
    assert _is_login(_get(th.url))


async def test_remote_peer_with_a_loopback_host_header_gets_the_login_page(store: Any, project: Any) -> None:
    # The Host header is the client's to choose; the peer address is not. The real app, with the
    # TCP peer set to a remote address (as uvicorn reports a connection from another machine).
    app = create_app(Settings(), store=store)
    for peer, local in ((("203.0.113.7", 50000), False), (("127.0.0.1", 50000), True)):
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8700",
                                     headers={"accept": "text/html"}) as c:
            r = await c.get("/traces", follow_redirects=False)
        assert (r.status_code == 200) is local and _is_login(r) is not local, (peer, r.status_code)


def test_loopback_rules() -> None:
    from podium.server.auth import loopback_request

    def scope(client: str, host: str, version: str = "1.1", **headers: str) -> dict[str, Any]:
        hs = [(b"host", host.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]
        return {"client": (client, 1), "http_version": version, "headers": hs}

    assert loopback_request(scope("127.0.0.1", "localhost:8700"), "127.0.0.1")
    assert loopback_request(scope("::1", "[::1]:8700"), "::1")
    assert not loopback_request(scope("127.0.0.1", "localhost:8700"), "0.0.0.0")  # public bind
    assert not loopback_request(scope("10.1.2.3", "127.0.0.1:8700"), "127.0.0.1")  # remote peer
    assert not loopback_request(scope("127.0.0.1", "podium.example.com"), "127.0.0.1")  # DNS rebinding
    assert not loopback_request(scope("127.0.0.1", "127.0.0.1", **{"X-Forwarded-For": "1.2.3.4"}), "127.0.0.1")
    assert not loopback_request(scope("127.0.0.1", "127.0.0.1", "1.0"), "127.0.0.1")
    assert loopback_request(scope("127.0.0.1", "127.0.0.1", "1.0"), "127.0.0.1", trust_proxy=True)
    xff = {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}  # the nearest hop is the one the proxy saw
    assert loopback_request(scope("127.0.0.1", "127.0.0.1", **xff), "127.0.0.1", trust_proxy=True)
    xff = {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}  # a client cannot spoof its way in
    assert not loopback_request(scope("127.0.0.1", "127.0.0.1", **xff), "127.0.0.1", trust_proxy=True)
    assert not loopback_request({"client": None, "headers": [(b"host", b"127.0.0.1")]}, "127.0.0.1")
