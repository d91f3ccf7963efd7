"""The job queue in the project's database (``monitor_job``): the SQL backend of
:class:`podium.monitor.queue.base.JobQueue`.

One row per pending job; ``ack`` deletes it. ``available_at`` is when a row may be claimed next:
for a ready job when it is due (enqueue time, or the end of a nack's backoff), for a leased job
when its lease runs out. So one query claims both fresh jobs and jobs whose worker died
(crash recovery is just an expired lease). Every claim counts one attempt.

- Claim on PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` in a CTE and an ``UPDATE ... FROM``
  it, one short transaction: concurrent workers skip each other's rows and never wait.
- Claim on SQLite: one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` (SQLite 3.35+);
  SQLite has one writer at a time, so the statement is atomic.
- Dedup: ``(project_id, kind, dedup_key)`` is unique among the rows present (ready, leased or
  dead); once a job is acked its key may be enqueued again.

The queue serves every project (the worker claims across projects); rows still carry
``project_id`` and go when their project is deleted. The value types live here (the store may
not import :mod:`podium.monitor`); :mod:`podium.monitor.queue.base` re-exports them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from podium.store import tables as t

__all__ = ["JobRepo", "QueueStats", "QueuedJob"]

_CHUNK = 500  # ids per IN (...) list
_MAX_ERROR = 4000


@dataclass(frozen=True)
class QueuedJob:
    id: str
    kind: str
    project_id: str
    payload: dict[str, Any]
    attempts: int = 0
    enqueued_at: datetime | None = None


@dataclass(frozen=True)
class QueueStats:
    """For ``/metrics`` and the UI: ``backlog`` ready + leased jobs; ``oldest_age_s`` the lag
    (age of the oldest unfinished job); ``dead`` jobs that failed ``max_attempts`` times."""

    backlog: int
    leased: int
    dead: int
    oldest_age_s: float | None
    by_kind: dict[str, int] = field(default_factory=dict)
    #: Per kind: leased jobs, dead jobs, and the age (s) of the oldest unfinished job.
    leased_by_kind: dict[str, int] = field(default_factory=dict)
    dead_by_kind: dict[str, int] = field(default_factory=dict)
    oldest_age_by_kind: dict[str, float] = field(default_factory=dict)


def _chunks(seq: Sequence[str], n: int = _CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _insert(conn: Connection) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(t.monitor_job)
    return sqlite.insert(t.monitor_job)


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


class JobRepo:
    """The SQL job queue (see the module docstring); safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- producers ------------------------------------------------------------------------

    def enqueue(self, kind: str, project_id: str, payloads: list[dict[str, Any]], *,
                dedup_keys: list[str] | None = None, delay_s: float = 0.0) -> int:
        """Store jobs; returns how many were new (a ``(kind, dedup_key)`` already queued in the
        project, or repeated in this call, is skipped)."""
        if not payloads:
            return 0
        if dedup_keys is not None and len(dedup_keys) != len(payloads):
            raise ValueError(f"dedup_keys has {len(dedup_keys)} keys for {len(payloads)} payloads; pass one per payload")
        now = datetime.now(UTC)
        due = now + timedelta(seconds=delay_s) if delay_s > 0 else now
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, payload in enumerate(payloads):
            key = dedup_keys[i] if dedup_keys is not None else None
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            rows.append({"project_id": project_id, "id": new_job_id(), "kind": kind, "dedup_key": key,
                         "payload": payload, "status": "ready", "attempts": 0,
                         # +1 µs per job: a batch is claimed in the order it was enqueued
                         "available_at": due + timedelta(microseconds=len(rows)), "leased_by": None,
                         "lease_until": None, "last_error": None,
                         "enqueued_at": now + timedelta(microseconds=len(rows))})
        added = 0
        with self._engine.begin() as conn:
            stmt = _insert(conn).on_conflict_do_nothing().returning(t.monitor_job.c.id)
            for i in range(0, len(rows), _CHUNK):
                added += len(conn.execute(stmt, rows[i : i + _CHUNK]).all())
        return added

    # --- consumers ------------------------------------------------------------------------

    def claim(self, worker_id: str, n: int, *, lease_s: float = 60.0,
              kinds: list[str] | None = None) -> list[QueuedJob]:
        """Up to ``n`` due jobs (ready, or leased with an expired lease), oldest first, leased to
        ``worker_id`` until ``lease_s`` from now; each claim counts one attempt."""
        if n <= 0 or (kinds is not None and not kinds):
            return []
        c = t.monitor_job.c
        now = datetime.now(UTC)
        until = now + timedelta(seconds=lease_s)
        due = select(c.id).where(c.status != "dead", c.available_at <= now)
        if kinds is not None:
            due = due.where(c.kind.in_(kinds))
        due = due.order_by(c.available_at).limit(n)
        values = {"status": "leased", "leased_by": worker_id[:128], "lease_until": until, "available_at": until,
                  "attempts": c.attempts + 1}
        cols = (c.id, c.kind, c.project_id, c.payload, c.attempts, c.enqueued_at)
        if self._engine.dialect.name == "sqlite":
            # An UPDATE takes SQLite's one write lock even when nothing matches: look first (a read
            # takes no lock), so idle workers polling every second never delay the ingest writer.
            with self._engine.connect() as conn:
                if conn.execute(due.limit(1)).first() is None:
                    return []
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                picked = due.with_for_update(skip_locked=True).cte("picked")
                stmt = (update(t.monitor_job).where(c.id == picked.c.id).values(**values).returning(*cols))
            else:
                stmt = update(t.monitor_job).where(c.id.in_(due.scalar_subquery())).values(**values).returning(*cols)
            rows = conn.execute(stmt).all()
        jobs = [QueuedJob(id=r.id, kind=r.kind, project_id=r.project_id, payload=r.payload or {},
                          attempts=r.attempts, enqueued_at=r.enqueued_at) for r in rows]
        jobs.sort(key=lambda j: (j.enqueued_at or now, j.id))
        return jobs

    def ack(self, job_ids: list[str]) -> None:
        """Finished: delete them (unknown ids are ignored)."""
        if not job_ids:
            return
        c = t.monitor_job.c
        with self._engine.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(job_ids))):
                conn.execute(delete(t.monitor_job).where(c.id.in_(chunk)))

    def nack(self, job_ids: list[str], *, error: str = "", delay_s: float = 5.0,
             max_attempts: int = 5) -> None:
        """Failed: ready again ``delay_s`` from now, or dead once claimed ``max_attempts`` times."""
        if not job_ids:
            return
        c = t.monitor_job.c
        now = datetime.now(UTC)
        values = {
            "status": case((c.attempts >= max_attempts, "dead"), else_="ready"),
            "available_at": now + timedelta(seconds=max(delay_s, 0.0)),
            "leased_by": None, "lease_until": None, "last_error": error[:_MAX_ERROR] or None,
        }
        with self._engine.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(job_ids))):
                conn.execute(update(t.monitor_job).where(c.id.in_(chunk), c.status != "dead").values(**values))

    def extend(self, job_ids: list[str], *, lease_s: float = 60.0) -> None:
        """A heartbeat for long work: the leases of these (still leased) jobs run ``lease_s`` from now."""
        if not job_ids:
            return
        c = t.monitor_job.c
        until = datetime.now(UTC) + timedelta(seconds=lease_s)
        with self._engine.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(job_ids))):
                conn.execute(update(t.monitor_job).where(c.id.in_(chunk), c.status == "leased")
                             .values(lease_until=until, available_at=until))

    # --- operators ------------------------------------------------------------------------

    def stats(self, project_id: str | None = None) -> QueueStats:
        c = t.monitor_job.c
        stmt = select(c.kind, c.status, func.count(), func.min(c.enqueued_at)).group_by(c.kind, c.status)
        if project_id is not None:
            stmt = stmt.where(c.project_id == project_id)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        now = datetime.now(UTC)
        backlog: dict[str, int] = {}
        leased: dict[str, int] = {}
        dead: dict[str, int] = {}
        oldest: dict[str, datetime] = {}
        for kind, status, count, first in rows:
            if status == "dead":
                dead[kind] = dead.get(kind, 0) + count
                continue
            backlog[kind] = backlog.get(kind, 0) + count
            if status == "leased":
                leased[kind] = leased.get(kind, 0) + count
            if first is not None:
                first = first if first.tzinfo is not None else first.replace(tzinfo=UTC)
                oldest[kind] = min(oldest.get(kind, first), first)
        ages = {k: max((now - v).total_seconds(), 0.0) for k, v in oldest.items()}
        return QueueStats(backlog=sum(backlog.values()), leased=sum(leased.values()), dead=sum(dead.values()),
                          oldest_age_s=max(ages.values()) if ages else None, by_kind=backlog,
                          leased_by_kind=leased, dead_by_kind=dead, oldest_age_by_kind=ages)

    def dead(self, project_id: str, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The project's dead jobs, newest failure first (for inspection and :meth:`retry_dead`)."""
        c = t.monitor_job.c
        stmt = select(c.id, c.kind, c.payload, c.attempts, c.last_error, c.enqueued_at, c.available_at).where(
            c.project_id == project_id, c.status == "dead")
        if kind is not None:
            stmt = stmt.where(c.kind == kind)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt.order_by(c.available_at.desc()).limit(limit)).all()
        return [{"id": r.id, "kind": r.kind, "payload": r.payload, "attempts": r.attempts,
                 "last_error": r.last_error, "enqueued_at": r.enqueued_at, "failed_at": r.available_at}
                for r in rows]

    def retry_dead(self, project_id: str, job_ids: list[str] | None = None) -> int:
        """Make the project's dead jobs (all, or these) ready again with their attempts reset."""
        c = t.monitor_job.c
        stmt = update(t.monitor_job).where(c.project_id == project_id, c.status == "dead")
        if job_ids is not None:
            stmt = stmt.where(c.id.in_(job_ids))
        with self._engine.begin() as conn:
            return conn.execute(stmt.values(status="ready", attempts=0, available_at=datetime.now(UTC))).rowcount
