"""The audit log's rules: walking the hash chain (:func:`verify`), exporting it, and who the CLI is.

Events are written by :meth:`podium.store.repos.audit.AuditRepo.append` (the request middleware
``podium.server.audit_log`` and the CLI commands that write the database directly). There is one
chain across the installation, not one per project: installation-level changes (projects,
users, keys of several projects) belong to no single project, one writer lock is simpler and
cheaper than one per project, and one head hash is all an operator has to keep elsewhere.
Reading stays project-scoped: the API and UI show a project's own events only.

:func:`verify` recomputes every event's hash in chain order and checks three things: the
positions run 1, 2, 3 ... with no gap (a deleted row), each ``prev_hash`` is the previous event's
hash (a reordered or replaced row), and each stored hash matches its fields (an edited row); then
that the last event is the head recorded in ``audit_head`` (deleted newest rows). Someone with
write access to the database can still rewrite the whole chain and the head together; printing
the head hash (``podium audit verify``) lets operators keep it elsewhere and compare.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from podium.governance.actor import Actor
from podium.store.repos.audit import GENESIS, AuditEvent, event_hash

__all__ = ["CSV_FIELDS", "EXPORT_FORMATS", "VerifyResult", "cli_actor", "export_lines", "verify"]

EXPORT_FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("id", "created_at", "project_id", "actor_kind", "actor_id", "actor_name", "actor_role", "action",
              "target_type", "target_id", "method", "route", "path", "status", "ip", "user_agent",
              "before_digest", "after_digest", "before", "after", "detail", "prev_hash", "hash")


def cli_actor() -> Actor:
    """Who a CLI command that writes the database directly acts as: ``cli:<OS user>``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container: still recorded
        user = "unknown"
    return Actor("cli", user, name=user)


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found. ``broken_seq`` names the first bad event (None when intact)."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "head_seq": self.head_seq, "head_hash": self.head_hash,
                "broken_event": self.broken_seq, "reason": self.reason}


def _value_ok(value: str | None, stored_digest: str | None) -> bool:
    return value is None or hashlib.sha256(value.encode()).hexdigest() == stored_digest


def verify(events: Iterable[AuditEvent], head: tuple[int, str]) -> VerifyResult:
    """Walk ``events`` (the whole chain, oldest first) and compare the end with ``head``."""
    expected_seq, prev = 1, GENESIS
    checked = 0

    def broken(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, head[0], head[1], seq, reason)

    for e in events:
        if e.seq != expected_seq:
            return broken(expected_seq, f"event {expected_seq} is missing: the chain jumps from "
                                        f"{expected_seq - 1} to {e.seq} (rows were deleted)")
        if e.prev_hash != prev:
            return broken(e.seq, f"event {e.seq} does not follow event {e.seq - 1}: its prev_hash is not "
                                 "that event's hash (an event was replaced or rewritten)")
        if event_hash(e.__dict__) != e.hash:
            return broken(e.seq, f"event {e.seq} was changed after it was written: its hash does not match "
                                 "its fields")
        if not (_value_ok(e.before_value, e.before_digest) and _value_ok(e.after_value, e.after_digest)):
            return broken(e.seq, f"event {e.seq}'s before/after value does not match its digest")
        prev, expected_seq = e.hash, e.seq + 1
        checked += 1
    last = expected_seq - 1
    if head[0] > last:
        return broken(last + 1, f"event {last + 1} is missing: the head says the chain has {head[0]} "
                                f"events but it ends at {last} (the newest rows were deleted)")
    if head[0] < last or head[1] != prev:
        return broken(last, f"the recorded head (event {head[0]}) does not match the chain's last event "
                            f"{last}: the head row or the last event was changed")
    return VerifyResult(True, checked, head[0], head[1])


def _row(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.seq, "created_at": e.created_at.isoformat(), "project_id": e.project_id,
        "actor_kind": e.actor_kind, "actor_id": e.actor_id, "actor_name": e.actor_name,
        "actor_role": e.actor_role, "action": e.action, "target_type": e.target_type, "target_id": e.target_id,
        "method": e.method, "route": e.route, "path": e.path, "status": e.status, "ip": e.ip,
        "user_agent": e.user_agent, "before_digest": e.before_digest, "after_digest": e.after_digest,
        "before": e.before_value, "after": e.after_value, "detail": e.detail, "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def export_lines(events: Iterable[AuditEvent], fmt: str) -> Iterator[str]:
    """``events`` as JSON Lines (values decoded) or CSV (values as their JSON text), line by line."""
    if fmt == "jsonl":
        for e in events:
            d = _row(e)
            for k in ("before", "after", "detail"):
                d[k] = json.loads(d[k]) if d[k] is not None else None
            yield json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    yield buf.getvalue()
    for e in events:
        buf.seek(0)
        buf.truncate()
        w.writerow(_row(e))
        yield buf.getvalue()
