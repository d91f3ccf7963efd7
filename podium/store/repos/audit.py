"""The audit log's storage (``audit_event``, ``audit_head``): append-only, one hash chain.

Each event stores the previous event's hash and its own: ``sha256`` over the canonical JSON of
its fields plus ``prev_hash`` (:func:`event_hash`). Appends are serialised on the single
``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite makes
each append the only writer), so two concurrent appends never fork the chain: the head is read,
the event written and the head moved in one transaction.

The canonical forms live here, not in :mod:`podium.governance.audit`, because the appender
computes them inside that transaction and the store cannot import upward; the governance module
walks the chain (``verify``) and formats exports. Values (``before``/``after``/``detail``) are
stored as canonical JSON *text*, so what was hashed is byte for byte what is read back on both
databases (JSONB would normalise it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from podium.store import tables as t
from podium.store.repos._tx import locked_write
from podium.store.repos.traces import Page, _bad_cursor, decode_cursor, encode_cursor

__all__ = [
    "GENESIS",
    "VALUE_LIMIT",
    "AuditEvent",
    "AuditRepo",
    "canonical",
    "digest",
    "event_hash",
]

#: The ``prev_hash`` of the first event.
GENESIS = "0" * 64
#: ``before``/``after`` values whose canonical JSON is under this many bytes are stored as well as
#: their digest; larger ones are stored as the digest alone.
VALUE_LIMIT = 4096
#: Fields covered by an event's hash, in this order (``prev_hash`` last).
HASHED = ("seq", "created_at", "project_id", "actor_kind", "actor_id", "actor_name", "actor_role", "action",
          "target_type", "target_id", "method", "route", "path", "status", "ip", "user_agent", "before_digest",
          "after_digest", "detail", "prev_hash")
# Built once: an append runs three statements and building them costs more than running them.
_INSERT_EVENT = insert(t.audit_event)
_LOCK_HEAD = select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1).with_for_update()
_MOVE_HEAD = update(t.audit_head).where(t.audit_head.c.id == 1).values(
    seq=bindparam("n"), hash=bindparam("h"), updated_at=bindparam("at"))
_LENGTHS: dict[str, int] = {c.name: int(getattr(c.type, "length", 0)) for c in t.audit_event.columns
                             if getattr(c.type, "length", None)}


def _default(v: Any) -> Any:
    if isinstance(v, datetime):
        return _stamp(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, set | frozenset | tuple):
        return sorted(v, key=str) if isinstance(v, set | frozenset) else list(v)
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json")
    if hasattr(v, "__dataclass_fields__"):
        return asdict(v)
    return str(v)


def canonical(value: Any) -> str:
    """The canonical JSON of ``value``: sorted keys, no spaces, UTF-8; datetimes as UTC ISO."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default,
                      allow_nan=False)


def digest(value: Any) -> str | None:
    """``sha256`` (hex) of ``value``'s canonical JSON; None for None (nothing there)."""
    if value is None:
        return None
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def _stamp(v: datetime) -> str:
    return v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(fields: dict[str, Any]) -> str:
    """The hash of one event: ``sha256`` over the canonical JSON of :data:`HASHED` fields."""
    body = {k: (_stamp(fields[k]) if k == "created_at" else fields.get(k)) for k in HASHED}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """One recorded change (``id`` is its position in the chain)."""

    seq: int
    created_at: datetime
    project_id: str | None
    actor_kind: str
    actor_id: str
    actor_name: str | None
    actor_role: str | None
    action: str
    target_type: str | None
    target_id: str | None
    method: str | None
    route: str | None
    path: str | None
    status: int | None
    ip: str | None
    user_agent: str | None
    before_digest: str | None
    after_digest: str | None
    before_value: str | None
    after_value: str | None
    detail: str | None
    prev_hash: str
    hash: str

    @property
    def before(self) -> Any:
        return json.loads(self.before_value) if self.before_value is not None else None

    @property
    def after(self) -> Any:
        return json.loads(self.after_value) if self.after_value is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The API's shape: values decoded, digests beside them."""
        return {
            "id": self.seq, "created_at": self.created_at, "project_id": self.project_id,
            "actor": {"kind": self.actor_kind, "id": self.actor_id, "name": self.actor_name,
                      "role": self.actor_role},
            "action": self.action, "target_type": self.target_type, "target_id": self.target_id,
            "method": self.method, "route": self.route, "path": self.path, "status": self.status,
            "ip": self.ip, "user_agent": self.user_agent,
            "before": self.before, "after": self.after,
            "before_digest": self.before_digest, "after_digest": self.after_digest,
            "detail": json.loads(self.detail) if self.detail else {},
            "prev_hash": self.prev_hash, "hash": self.hash,
        }


def _event(row: Any) -> AuditEvent:
    return AuditEvent(**{k: v for k, v in row._mapping.items()})


def _clip(name: str, v: Any) -> Any:
    n = _LENGTHS.get(name)
    return v[:n] if isinstance(v, str) and n else v


class AuditRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- writing ---------------------------------------------------------------------------------
    def append(self, *, project_id: str | None, actor: Any, action: str, target_type: str | None = None,
               target_id: str | None = None, before: Any = None, after: Any = None,
               detail: dict[str, Any] | None = None, status: int | None = None, method: str | None = None,
               route: str | None = None, path: str | None = None, ip: str | None = None,
               user_agent: str | None = None) -> AuditEvent:
        """Add one event at the head of the chain. ``actor`` is a
        :class:`podium.governance.actor.Actor` (anything with ``kind``, ``id``, ``name``, ``role``
        and ``ip``); ``ip`` defaults to the actor's. The request fields (``method`` ... ``user_agent``)
        are filled by the audit middleware; CLI commands and jobs leave them out."""
        b_json = canonical(before) if before is not None else None
        a_json = canonical(after) if after is not None else None
        base: dict[str, Any] = {
            "project_id": project_id, "actor_kind": str(actor.kind), "actor_id": str(actor.id),
            "actor_name": getattr(actor, "name", None), "actor_role": getattr(actor, "role", None),
            "action": action, "target_type": target_type,
            "target_id": str(target_id) if target_id is not None else None,
            "method": method, "route": route, "path": path, "status": status,
            "ip": ip if ip is not None else getattr(actor, "ip", None), "user_agent": user_agent,
            "before_digest": hashlib.sha256(b_json.encode()).hexdigest() if b_json is not None else None,
            "after_digest": hashlib.sha256(a_json.encode()).hexdigest() if a_json is not None else None,
            "before_value": b_json if b_json is not None and len(b_json.encode()) < VALUE_LIMIT else None,
            "after_value": a_json if a_json is not None and len(a_json.encode()) < VALUE_LIMIT else None,
            "detail": canonical(detail) if detail else None,
        }
        base = {k: _clip(k, v) for k, v in base.items()}

        def tx(conn: Connection) -> AuditEvent:
            seq, prev = self._lock_head(conn)
            now = datetime.now(UTC)
            fields = dict(base, seq=seq + 1, created_at=now, prev_hash=prev)
            fields["hash"] = event_hash(fields)
            conn.execute(_INSERT_EVENT, fields)
            conn.execute(_MOVE_HEAD, {"n": fields["seq"], "h": fields["hash"], "at": now})
            return AuditEvent(**fields)

        return locked_write(self._engine, tx, what="the audit log")

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        """The head (seq, hash), locked for this transaction; created on the first append."""
        row = conn.execute(_LOCK_HEAD).first()
        if row is None:  # the first append (or the tables were emptied): create the head, then lock it
            h = t.audit_head
            dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(dialect_insert(h).values(id=1, seq=0, hash=GENESIS, updated_at=datetime.now(UTC))
                         .on_conflict_do_nothing(index_elements=["id"]))
            row = conn.execute(_LOCK_HEAD).one()
        return int(row.seq), str(row.hash)

    # --- reading ---------------------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """The chain's head as recorded in ``audit_head``: (seq, hash); (0, GENESIS) when empty."""
        with self._engine.connect() as conn:
            row = conn.execute(select(t.audit_head.c.seq, t.audit_head.c.hash).where(t.audit_head.c.id == 1)).first()
        return (int(row.seq), str(row.hash)) if row is not None else (0, GENESIS)

    def get(self, seq: int, *, project_id: str | None = None) -> AuditEvent | None:
        c = t.audit_event.c
        conds: list[Any] = [c.seq == seq]
        if project_id is not None:
            conds.append(c.project_id == project_id)
        with self._engine.connect() as conn:
            row = conn.execute(select(t.audit_event).where(*conds)).first()
        return _event(row) if row is not None else None

    def _conds(self, project_id: str | None, *, actor: str | None, action: str | None, target_type: str | None,
               target_id: str | None, since: datetime | None, until: datetime | None) -> list[Any]:
        c = t.audit_event.c
        conds: list[Any] = []
        if project_id is not None:
            conds.append(c.project_id == project_id)
        if actor:
            conds.append((c.actor_id == actor) | (c.actor_name == actor))
        if action:
            # a prefix on whole dotted parts: "prompt.label" matches prompt.label.move, not prompt.labels
            conds.append((c.action == action) | c.action.startswith(action.rstrip(".") + ".", autoescape=True))
        if target_type:
            conds.append(c.target_type == target_type)
        if target_id:
            conds.append(c.target_id == target_id)
        if since is not None:
            conds.append(c.created_at >= since)
        if until is not None:
            conds.append(c.created_at < until)
        return conds

    def list_events(self, project_id: str | None, *, actor: str | None = None, action: str | None = None,
             target_type: str | None = None, target_id: str | None = None, since: datetime | None = None,
             until: datetime | None = None, limit: int = 50, cursor: str | None = None) -> Page:
        """Events, newest first (``project_id`` None: the whole installation, for the CLI)."""
        c = t.audit_event.c
        conds = self._conds(project_id, actor=actor, action=action, target_type=target_type, target_id=target_id,
                            since=since, until=until)
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 1 or not isinstance(vals[0], int):
                raise _bad_cursor()
            conds.append(c.seq < vals[0])
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.audit_event).where(*conds).order_by(c.seq.desc()).limit(limit + 1)).all()
        items = [_event(r).to_dict() for r in rows[:limit]]
        nxt = encode_cursor([items[-1]["id"]]) if len(rows) > limit and items else None
        return Page(items=items, next_cursor=nxt)

    def iter_events(self, project_id: str | None = None, *, actor: str | None = None, action: str | None = None,
                    target_type: str | None = None, target_id: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, batch: int = 1000) -> Iterator[AuditEvent]:
        """Every matching event in chain order (oldest first), read ``batch`` at a time."""
        c = t.audit_event.c
        conds = self._conds(project_id, actor=actor, action=action, target_type=target_type, target_id=target_id,
                            since=since, until=until)
        after = 0
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(select(t.audit_event).where(*conds, c.seq > after)
                                    .order_by(c.seq).limit(batch)).all()
            for r in rows:
                yield _event(r)
            if len(rows) < batch:
                return
            after = int(rows[-1].seq)
