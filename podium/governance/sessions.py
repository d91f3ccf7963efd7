"""Sign-in sessions: server-side rows, a random token in an HTTP-only cookie, idle and absolute expiry.

The cookie holds 32 random bytes (url-safe); the ``user_session`` row is keyed by their sha256,
so a database dump signs nobody in. A session ends when it is revoked (sign out, "sign out
everywhere", ``podium users disable``), when it was not used for ``idle`` (sliding: each use
moves ``last_seen_at``, written at most once a minute), or ``absolute`` after it began,
whichever comes first. Each request re-reads the user's role in the session's project, so a
role change or a removal applies at once.

CSRF: a session's token for forms and ``X-CSRF-Token`` is an HMAC of its cookie token
(:func:`csrf_token`), so it is per-session and checking it needs no database read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from podium.store import Store
from podium.store.repos.users import SessionRow, User

__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Principal", "SessionManager", "csrf_token", "token_hash"]

#: The session cookie's name.
COOKIE = "podium_session"
#: The form field and the header that carry the CSRF token.
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_TOUCH_EVERY = timedelta(seconds=60)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: HMAC-SHA256 of the cookie's token (unguessable without the cookie)."""
    return hmac.new(session_token.encode(), b"podium-csrf-v1", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Principal:
    """A signed-in user acting on one project (``role`` None: not a member of it any more)."""

    session: SessionRow
    user: User
    project_id: str | None
    role: str | None


class SessionManager:
    def __init__(self, store: Store, *, idle: timedelta, absolute: timedelta) -> None:
        self._store = store
        self.idle = idle
        self.absolute = absolute

    def start(self, user: User, *, project_id: str | None, ip: str | None, user_agent: str | None,
              method: str) -> str:
        """A new session for ``user``; returns the cookie's token (shown only now). ``project_id``
        defaults to the user's first project."""
        if project_id is None:
            ms = self._store.users.memberships(user.id)
            project_id = ms[0].project_id if ms else None
        token = secrets.token_urlsafe(32)
        self._store.users.create_session(token_hash(token), user_id=user.id, project_id=project_id,
                                         expires_at=datetime.now(UTC) + self.absolute, ip=ip,
                                         user_agent=user_agent, method=method)
        return token

    def resolve(self, token: str | None, *, now: datetime | None = None) -> Principal | None:
        """The live session for this cookie token, or None (unknown, revoked, expired, idle, user disabled)."""
        if not token or len(token) > 200:
            return None
        found = self._store.users.session_principal(token_hash(token))
        if found is None:
            return None
        row, user, role = found
        now = now or datetime.now(UTC)
        if row.revoked_at is not None or row.expires_at <= now or row.last_seen_at + self.idle <= now:
            return None
        if user.disabled_at is not None:
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            self._store.users.touch_session(row.id, now)
        return Principal(row, user, row.project_id, role)

    def end(self, token: str | None) -> bool:
        return bool(token) and self._store.users.revoke_session(token_hash(token or ""))

    def end_all(self, user_id: str) -> int:
        return self._store.users.revoke_user_sessions(user_id)
