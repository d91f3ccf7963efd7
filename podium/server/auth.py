"""API-key authentication: HTTP Basic ``public:secret`` or ``Authorization: Bearer sk-...``."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from typing import Annotated

from fastapi import Depends, Request

from podium.errors import Forbidden, Unauthorized
from podium.store import Store
from podium.store.repos.projects import ApiKey, hash_secret

__all__ = ["Authenticator", "CurrentKey", "require_admin", "require_read", "require_write"]

_HINT = (
    "send `Authorization: Bearer sk-...` or HTTP Basic `public_key:secret_key`; "
    "`make up` prints the default project's keys (also in $PODIUM_HOME/default-keys.env)"
)


class Authenticator:
    """Resolves keys with a short in-process cache (revocations here drop the entry at once;
    other processes see a revocation within ``ttl`` seconds)."""

    def __init__(self, store: Store, ttl: float = 5.0) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def authenticate(self, authorization: str | None) -> ApiKey:
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
        cache_key = hash_secret(secret) + "|" + (public or "")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = self._store.projects.authenticate(secret, public)
        if key is None:
            raise Unauthorized(f"invalid or revoked API key: {_HINT}")
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (key, now + self._ttl)
        return key


def _current_key(request: Request) -> ApiKey:
    auth: Authenticator = request.app.state.podium.auth
    return auth.authenticate(request.headers.get("authorization"))


CurrentKey = Annotated[ApiKey, Depends(_current_key)]


def _need(roles: tuple[str, ...], what: str):  # type: ignore[no-untyped-def]
    def dep(key: CurrentKey) -> ApiKey:
        if key.role not in roles:
            raise Forbidden(f"a key with role {key.role!r} cannot {what}; use a key with role {' or '.join(roles)}")
        return key

    return Annotated[ApiKey, Depends(dep)]


require_write = _need(("admin", "member", "ingest"), "write data")
require_read = _need(("admin", "member", "viewer"), "read data")
require_admin = _need(("admin",), "manage keys and settings")
