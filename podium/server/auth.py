"""API-key authentication: HTTP Basic ``public:secret`` or ``Authorization: Bearer sk-...``;
a signed-in user's session cookie (the UI's own REST calls: same role checks, and a CSRF token on
every state-changing request); and who counts as "this machine" (loopback peer, loopback Host, not
forwarded by a proxy)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request

from podium.core.roles import Action, allowed, key_roles_for, user_roles_for
from podium.core.ttlcache import TTLCache
from podium.errors import Forbidden, Unauthorized
from podium.governance.actor import Actor, set_actor
from podium.governance.login_limits import LoginLimiter
from podium.governance.oidc import OidcClient
from podium.governance.sessions import COOKIE as SESSION_COOKIE
from podium.governance.sessions import CSRF_FIELD, CSRF_HEADER, Principal, SessionManager, csrf_token
from podium.store import Store
from podium.store.repos.projects import ApiKey, hash_secret

__all__ = [
    "SESSION_COOKIE",
    "Authenticator",
    "CsrfFormMiddleware",
    "CurrentKey",
    "People",
    "client_ip",
    "csrf_ok",
    "forwarded_by_proxy",
    "is_loopback_host",
    "key_actor",
    "loopback_request",
    "needs",
    "people",
    "require_admin",
    "require_read",
    "require_write",
    "session_principal",
    "user_actor",
    "user_key",
]

logger = logging.getLogger("podium.server")

_HINT = (
    "send `Authorization: Bearer sk-...` or HTTP Basic `public_key:secret_key`; "
    "`podium up` prints the default project's keys (kept in $PODIUM_HOME/default-keys.env); "
    "`podium keys create --role member` makes another"
)


class Authenticator:
    """Resolves keys with a short in-process cache (:class:`TTLCache`; invalid keys are
    cached as misses for ``negative_ttl`` seconds).

    A revocation made in this process drops the cache at once, and is published to the
    other processes when Redis is configured (see ``podium.server.revocations``). One made elsewhere (another
    server, or ``podium keys revoke``, which writes the database directly) is seen within
    ``revocation_poll`` seconds: at most that often, a cache hit first reads a cheap
    revocation marker (the count and latest time of revoked keys) and clears the cache when
    it moved. Other key changes made elsewhere (role, limits) show within ``ttl`` seconds."""

    def __init__(self, store: Store, ttl: float = 5.0, revocation_poll: float = 0.5,
                 negative_ttl: float = 1.0, max_entries: int = 10_000) -> None:
        self._store = store
        self._ttl = ttl
        self._poll = revocation_poll
        # Keys by (secret hash, public key); an invalid key is kept as a miss for `negative_ttl`.
        self._cache: TTLCache[ApiKey] = TTLCache(ttl, negative_ttl=negative_ttl, max_entries=max_entries)
        self._lock = threading.Lock()
        self._marker: Any = None
        self._marker_checked = float("-inf")
        self._marker_busy = False
        self.on_revoke: list[Any] = []  # callables run after invalidate(): e.g. publish to other processes

    def invalidate(self, *, broadcast: bool = True) -> None:
        """Forget every cached key (a key was revoked or changed); with ``broadcast``, tell the
        other processes too (Redis pub/sub, when configured)."""
        self._cache.clear()
        if broadcast:
            for fn in list(self.on_revoke):
                try:
                    fn()
                except Exception:
                    logger.warning("could not broadcast a key revocation", exc_info=True)

    def _due(self, now: float) -> bool:
        with self._lock:
            if self._marker_busy or now - self._marker_checked < self._poll:
                return False
            self._marker_checked = now  # one caller looks; the others use the cache meanwhile
            self._marker_busy = True
            return True

    def _check_revocations(self) -> None:
        """Clear the cache when a key was revoked anywhere since the last look (one small
        query per ``revocation_poll`` seconds per process, whatever the traffic)."""
        try:
            marker = self._store.projects.revocation_marker()
        except Exception:  # the store is down: keys resolve (or fail) as before, look again later
            logger.warning("could not read the key revocation marker", exc_info=True)
            return
        finally:
            with self._lock:
                self._marker_busy = False
        with self._lock:
            changed = marker != self._marker
            first = self._marker is None
            self._marker = marker
        if changed and not first:
            self._cache.clear()

    def _parse(self, authorization: str | None) -> tuple[str, str | None, str]:
        if not authorization:
            raise Unauthorized(f"missing API key: {_HINT}")
        scheme, _, value = authorization.partition(" ")
        public: str | None = None
        scheme = scheme.lower()
        if scheme == "bearer":
            secret = value.strip()
        elif scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized(f"malformed Basic credentials: {_HINT}")
            public, _, secret = decoded.partition(":")
        else:
            raise Unauthorized(f"unsupported authorization scheme {scheme!r}: {_HINT}")
        if not secret:
            raise Unauthorized(f"empty secret key: {_HINT}")
        return secret, public, hash_secret(secret) + "|" + (public or "")

    def authenticate(self, authorization: str | None) -> ApiKey:
        """For synchronous callers (FastAPI runs sync dependencies in a worker thread)."""
        secret, public, cache_key = self._parse(authorization)
        if self._due(time.monotonic()):
            self._check_revocations()
        key = self._cache.load(cache_key, lambda: self._store.projects.authenticate(secret, public))
        if key is None:
            raise Unauthorized(f"invalid or revoked API key: {_HINT}")
        return key

    async def authenticate_async(self, authorization: str | None) -> ApiKey:
        """For the event loop (the gateway): no SQL runs on the loop. A cache miss loads in a
        worker thread; the revocation marker is read by a background thread while this
        request goes on with the cache."""
        secret, public, cache_key = self._parse(authorization)
        if self._due(time.monotonic()):
            fut = asyncio.get_running_loop().run_in_executor(None, self._check_revocations)
            fut.add_done_callback(_ignore_result)
        key = await self._cache.get_or_load(cache_key, lambda: self._store.projects.authenticate(secret, public))
        if key is None:
            raise Unauthorized(f"invalid or revoked API key: {_HINT}")
        return key


    async def authenticate_public(self, public_key: str) -> ApiKey:
        """The active key with this public key, for ``POST /api/v1/feedback`` only (the public key
        ships in browsers and apps; every other route still needs the secret). Cached like the rest."""
        if not public_key.startswith("pk-") or len(public_key) > 128:
            raise Unauthorized("invalid public key: send the project's public key (pk-...) in the "
                               "`x-podium-public-key` header; `podium keys list` shows it")
        if self._due(time.monotonic()):
            fut = asyncio.get_running_loop().run_in_executor(None, self._check_revocations)
            fut.add_done_callback(_ignore_result)
        key = await self._cache.get_or_load("public|" + public_key,
                                            lambda: self._store.projects.by_public_key(public_key))
        if key is None:
            raise Unauthorized("invalid or revoked public key: send an active key's public key (pk-...); "
                               "`podium keys list` shows them")
        return key


def _ignore_result(fut: Any) -> None:
    if not fut.cancelled():
        fut.exception()


# --- "this machine": local mode and the default /metrics ----------------------------------

#: Headers a reverse proxy adds; a request carrying any of them came through one.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "via",
                 "x-forwarded-server", "true-client-ip", "cf-connecting-ip")


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback IPs (127.0.0.0/8, ::1), with or without brackets."""
    if not host:
        return False
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def forwarded_by_proxy(scope: Any) -> bool:
    """Whether a reverse proxy forwarded this request: it carries a forwarding header, or it
    speaks HTTP/1.0 (nginx's default ``proxy_http_version``; browsers use 1.1 or later)."""
    if scope.get("http_version") == "1.0":
        return True
    return any(k.decode("latin-1").lower() in PROXY_HEADERS for k, _ in scope.get("headers") or ())


def loopback_request(scope: Any, bind_host: str, *, trust_proxy: bool = False) -> bool:
    """A request from this very machine to a server bound to loopback: the bind address, the
    peer address (not only the Host header, which any client or proxy may set) and the Host
    header are all loopback, and no reverse proxy forwarded it (unless ``trust_proxy``)."""
    if not is_loopback_host(bind_host):
        return False
    client = scope.get("client")
    if not client or not is_loopback_host(str(client[0])):
        return False
    host = None
    for k, v in scope.get("headers") or ():
        if k.lower() == b"host":
            host = urlsplit("//" + v.decode("latin-1")).hostname
            break
    if not is_loopback_host(host):
        return False
    if not forwarded_by_proxy(scope):
        return True
    # Forwarded: local only if trusted, and only for a client the proxy says is loopback too.
    return trust_proxy and all(is_loopback_host(c) for c in _forwarded_for(scope))


def _forwarded_for(scope: Any) -> list[str]:
    """The client addresses a proxy names (the nearest hop of each header); none when it names none."""
    out: list[str] = []
    for k, v in scope.get("headers") or ():
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        if name in ("x-forwarded-for", "x-real-ip", "true-client-ip", "cf-connecting-ip"):
            out.append(value.split(",")[-1].strip())
        elif name == "forwarded":
            fors = [p.strip()[4:] for el in value.split(",") for p in el.split(";")
                    if p.strip().lower().startswith("for=")]
            if fors:
                host = fors[-1].strip('"')
                # for="[::1]:443" / for=127.0.0.1:80 -> the address alone
                out.append(host[1:host.index("]")] if host.startswith("[") and "]" in host
                           else host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    return out


def _current_key(request: Request) -> ApiKey:
    header = request.headers.get("authorization")
    if not header and request.cookies.get(SESSION_COOKIE):
        return _session_key(request)
    auth: Authenticator = request.app.state.podium.auth
    key = auth.authenticate(header)
    set_actor(request.state, key_actor(key, request))
    return key


# --- people: sessions, CSRF, the login limiter and SSO (podium.governance) -------------------

@dataclass
class People:
    """What sign-in needs, built once per app from its settings (:func:`people`)."""

    sessions: SessionManager
    limiter: LoginLimiter
    oidc: OidcClient | None


def people(request: Request) -> People:
    """The app's :class:`People` (made on first use)."""
    app_state = request.app.state
    found = getattr(app_state, "podium_people", None)
    if found is None:
        st = app_state.podium
        s = st.settings
        oidc = (OidcClient(s.oidc_issuer, s.oidc_client_id, s.oidc_client_secret, scopes=s.oidc_scopes)
                if s.oidc_issuer and s.oidc_client_id else None)
        found = People(
            SessionManager(st.store, idle=timedelta(minutes=s.session_idle_minutes),
                           absolute=timedelta(hours=s.session_max_hours)),
            LoginLimiter(per_account=s.login_max_failures_account, per_ip=s.login_max_failures_ip,
                         window=s.login_window_seconds, redis_url=s.redis_url),
            oidc,
        )
        app_state.podium_people = found
    return found


_PRINCIPAL = "podium_principal"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def session_principal(request: Request) -> Principal | None:
    """The signed-in user of this request's session cookie (None: no cookie, or it is no longer valid)."""
    if hasattr(request.state, _PRINCIPAL):
        return getattr(request.state, _PRINCIPAL)
    token = request.cookies.get(SESSION_COOKIE)
    principal = people(request).sessions.resolve(token) if token else None
    setattr(request.state, _PRINCIPAL, principal)
    if principal is not None and token:
        request.state.podium_csrf = csrf_token(token)  # base.html puts it in forms and HTMX headers
    return principal


def csrf_ok(request: Request) -> bool:
    """Whether a state-changing request made with a session cookie carries that session's CSRF token
    (the ``X-CSRF-Token`` header, or the ``csrf_token`` field of an urlencoded form)."""
    if request.method in _SAFE:
        return True
    token = request.cookies.get(SESSION_COOKIE) or ""
    given = request.headers.get(CSRF_HEADER) or getattr(request.state, "podium_csrf_form", None) or ""
    return bool(token and given) and hmac.compare_digest(given.encode(), csrf_token(token).encode())


def user_key(principal: Principal) -> ApiKey:
    """The key the REST handlers see for a signed-in user: their role in the session's project, no
    gateway limits of its own (the project's apply), named ``user:EMAIL`` where actors are recorded."""
    u = principal.user
    return ApiKey(id=f"user:{u.id}", project_id=principal.project_id or "", public_key=f"user:{u.email}"[:64],
                  secret_hint="", role=principal.role or "", note=u.email, created_at=principal.session.created_at,
                  revoked_at=None)


def user_actor(principal: Principal, request: Request) -> Actor:
    """The audit log's "who" for a signed-in user."""
    return Actor("user", principal.user.id, name=principal.user.email, role=principal.role,
                 project_id=principal.project_id, ip=client_ip(request))


def _session_key(request: Request) -> ApiKey:
    principal = session_principal(request)
    if principal is None:
        raise Unauthorized("your session expired or was signed out: sign in again at /login, or send an API key "
                           f"({_HINT})")
    if principal.role is None or principal.project_id is None:
        raise Forbidden("you are no longer a member of this session's project; pick another project on /account "
                        "or ask an admin to invite you again")
    set_actor(request.state, user_actor(principal, request))
    if not csrf_ok(request):
        raise Forbidden(f"missing or wrong CSRF token: a request signed in with a session cookie must send the "
                        f"session's token in the `X-CSRF-Token` header (or a `{CSRF_FIELD}` form field); reload the "
                        "page to get it, or use an API key instead")
    return user_key(principal)


class CsrfFormMiddleware:
    """For state-changing urlencoded form posts made with a session cookie and no ``X-CSRF-Token``
    header: read the body once, note its ``csrf_token`` field on ``request.state.podium_csrf_form``
    (for :func:`csrf_ok`) and hand the same body on. Other requests pass through untouched."""

    _LIMIT = 1024 * 1024

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        if (SESSION_COOKIE not in headers.get("cookie", "") or "authorization" in headers or CSRF_HEADER in headers
                or not headers.get("content-type", "").startswith("application/x-www-form-urlencoded")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(chunks, message, receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self._LIMIT:
                break
        if not more:
            body = b"".join(chunks)
            for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
                if k == CSRF_FIELD:
                    scope.setdefault("state", {})["podium_csrf_form"] = v
        await self.app(scope, _replay(chunks, None, receive, more=more), send)


def _replay(chunks: list[bytes], pending: Any, receive: Any, *, more: bool = False) -> Any:
    sent = False

    async def again() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            if pending is not None and not chunks:
                return pending
            return {"type": "http.request", "body": b"".join(chunks), "more_body": more}
        if pending is not None:
            return pending
        return await receive()

    return again


def client_ip(request: Request) -> str | None:
    """The TCP peer's address (what the audit log records as "from where")."""
    return request.client.host if request.client else None


def key_actor(key: ApiKey, request: Request) -> Actor:
    """The audit log's "who" for a request made with an API key."""
    return Actor("key", key.public_key, name=key.note or None, role=key.role, project_id=key.project_id,
                 ip=client_ip(request))


CurrentKey = Annotated[ApiKey, Depends(_current_key)]


def needs(action: Action, what: str) -> Any:
    """A ``Depends`` that admits keys whose role may perform ``action`` (per ``podium.core.roles``).

    The dependency carries ``podium_action`` so tools (and ``tests/server/test_role_matrix.py``)
    read each route's action from the route itself.
    """
    roles = key_roles_for(action)

    def dep(key: CurrentKey) -> ApiKey:
        if not allowed(key.role, action):
            if key.id.startswith("user:"):
                raise Forbidden(f"your role {key.role!r} in this project cannot {what}; ask an owner or admin for "
                                f"role {' or '.join(user_roles_for(action))}")
            raise Forbidden(f"a key with role {key.role!r} cannot {what}; use a key with role {' or '.join(roles)}")
        return key

    dep.podium_action = action  # type: ignore[attr-defined]
    return Depends(dep)


require_write = Annotated[ApiKey, needs(Action.INGEST, "write data")]
require_read = Annotated[ApiKey, needs(Action.READ, "read data")]
require_admin = Annotated[ApiKey, needs(Action.ADMIN, "manage keys and settings")]
