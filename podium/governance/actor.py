"""Who made a request, and what an audited handler says it changed.

The seam between authentication (which knows who) and the audit log (which records it):
the API's key check, the UI's viewer check and the login session each put an :class:`Actor`
on the request's state with :func:`set_actor`; a handler that changes something may add an
:class:`AuditNote` (``note(request.state, action="prompt.label.move", target_type="prompt",
target_id="qa", before={...}, after={...})``); the audit middleware reads both once the
response is ready (docs/governance.md#audit-log).

Duck-typed on Starlette's ``request.state`` (any object that takes attributes), so nothing
here imports the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Actor", "AuditNote", "actor_of", "note", "notes_of", "set_actor"]

_ACTOR = "podium_actor"
_NOTES = "podium_audit_notes"


@dataclass(frozen=True)
class Actor:
    """Who acted: ``kind`` is ``key`` (an API key: ``id`` is its public key), ``user`` (a
    signed-in person: ``id`` is the user id, ``name`` the email), ``local`` (the no-login
    local mode) or ``system`` (a background job: ``id`` names it)."""

    kind: str
    id: str
    name: str | None = None
    role: str | None = None
    project_id: str | None = None
    ip: str | None = None

    def label(self) -> str:
        """How lists show it: ``user:ana@example.com``, ``key:pk-…``, ``local``."""
        if self.kind == "local":
            return "local"
        return f"{self.kind}:{self.name or self.id}"


@dataclass
class AuditNote:
    """What a handler changed, in its own words. ``before`` and ``after`` are JSON-able values
    (the audit log stores their digests, and the values themselves where small)."""

    action: str
    target_type: str | None = None
    target_id: str | None = None
    before: Any = None
    after: Any = None
    detail: dict[str, Any] = field(default_factory=dict)
    project_id: str | None = None


def set_actor(state: Any, actor: Actor) -> None:
    """Record who is acting on this request (the last call wins: a session over a key)."""
    setattr(state, _ACTOR, actor)


def actor_of(state: Any) -> Actor | None:
    """Who is acting on this request, when authentication said so."""
    value = getattr(state, _ACTOR, None)
    return value if isinstance(value, Actor) else None


def note(state: Any, action: str, **fields: Any) -> AuditNote:
    """Say what this request changed (several notes per request are kept in order)."""
    entry = AuditNote(action=action, **fields)
    notes = getattr(state, _NOTES, None)
    if notes is None:
        notes = []
        setattr(state, _NOTES, notes)
    notes.append(entry)
    return entry


def notes_of(state: Any) -> list[AuditNote]:
    """What handlers said this request changed (empty when none did)."""
    return list(getattr(state, _NOTES, None) or [])
