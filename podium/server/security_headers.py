"""Browser-facing security headers on every response, and the optional Host allow-list.

A pure ASGI middleware (no per-request allocation beyond the header list), added last so it
wraps every route, the UI's error pages and the gateway alike (docs/governance.md#web-security):

- ``Content-Security-Policy``: scripts only from this origin (``script-src 'self'``: no inline
  scripts, no ``eval``; the UI's JavaScript lives in ``podium/server/ui/static``, HTMX is
  configured through a ``<meta>`` tag with ``allowEval: false``), no plug-ins, no ``<base>``
  from elsewhere, forms only to this origin, and ``frame-ancestors 'none'`` (no framing:
  clickjacking). Styles allow ``'unsafe-inline'``: the templates draw bars, meters and the
  span waterfall with ``style="width: N%"`` attributes computed on the server, and HTMX adds
  its indicator ``<style>``. Styles cannot run script; this is the one relaxation.
- ``X-Frame-Options: DENY`` (frame-ancestors for older browsers), ``X-Content-Type-Options:
  nosniff``, ``Referrer-Policy: same-origin`` (trace ids in URLs never leave for another site),
  ``Cross-Origin-Opener-Policy: same-origin`` and a ``Permissions-Policy`` that turns off
  camera, microphone and geolocation.
- ``Strict-Transport-Security`` only when the request came over TLS: ``scope["scheme"]`` is
  ``https``, which uvicorn sets for its own TLS and for ``X-Forwarded-Proto: https`` from the
  proxies it trusts (``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default). A plain-HTTP answer never
  carries it (a browser ignores it there, and a wrong one locks users out).
- ``PODIUM_ALLOWED_HOSTS``: when set, a request whose ``Host`` is not listed is refused (400,
  pinned error shape) before any route runs, a second line against DNS rebinding for servers
  not bound to loopback (local mode already requires a loopback ``Host``).

A response that sets one of these headers itself keeps its own value (the API docs page sets
its own policy).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CSP", "SecurityHeadersMiddleware", "host_allowed", "parse_hosts"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_STATIC: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


def parse_hosts(value: str) -> tuple[str, ...]:
    """``PODIUM_ALLOWED_HOSTS`` as lower-case names: comma-separated, ``*.example.com`` allowed."""
    return tuple(h.strip().lower() for h in value.split(",") if h.strip())


def _host_name(raw: str) -> str:
    """The name part of a Host header: ``[::1]:8700`` -> ``::1``, ``a.example:443`` -> ``a.example``."""
    h = raw.strip().lower()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def host_allowed(raw: str | None, allowed: tuple[str, ...]) -> bool:
    if not allowed or "*" in allowed:
        return True
    if not raw:
        return False
    name = _host_name(raw)
    for pattern in allowed:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
                return True
        elif name == pattern:
            return True
    return False


class SecurityHeadersMiddleware:
    def __init__(self, app: Any, *, allowed_hosts: str = "", hsts_max_age: int = 31_536_000) -> None:
        self.app = app
        self.allowed = parse_hosts(allowed_hosts)
        self.hsts = f"max-age={hsts_max_age}".encode() if hsts_max_age > 0 else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
            if not host_allowed(host, self.allowed):
                await _refuse_host(send, host)
                return
        extra = list(_STATIC)
        if self.hsts is not None and scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self.hsts))

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse_host(send: Any, host: str | None) -> None:
    body = json.dumps({"error": {
        "code": "bad_request",
        "message": f"Host {host!r} is not one this server answers to (PODIUM_ALLOWED_HOSTS); use the server's "
                   "own name, or ask the operator to add this one",
        "details": [{"field": "header.host", "message": "not in PODIUM_ALLOWED_HOSTS"}],
    }}).encode()
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *_STATIC]})
    await send({"type": "http.response.body", "body": body})
