"""The job queue contract: at-least-once delivery with leases.

Producers ``enqueue`` jobs (a kind, a project, a JSON payload and an optional dedup key:
enqueueing the same ``(kind, dedup_key)`` twice stores one job). Consumers ``claim`` up to
``n`` jobs for ``lease_s`` seconds; a claimed job is invisible to other consumers until its
lease runs out, so a consumer killed mid-batch loses nothing: its jobs come back after the
lease. ``ack`` removes finished jobs; ``nack`` makes failed ones visible again after
``delay_s`` (or parks them as dead after ``max_attempts``). Handlers must be idempotent
(delivery is at least once): online evaluation writes scores with deterministic ids.

Backends: SQL (the project's database: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL,
a single conditional UPDATE on SQLite) and Redis (a stream with a consumer group).
"""

from __future__ import annotations

from typing import Any, Protocol

# The value types live with the SQL backend (the store may not import podium.monitor).
from podium.store.repos.jobs import QueuedJob, QueueStats

__all__ = ["JobQueue", "QueueStats", "QueuedJob"]


class JobQueue(Protocol):
    def enqueue(self, kind: str, project_id: str, payloads: list[dict[str, Any]], *,
                dedup_keys: list[str] | None = None) -> int:
        """Store jobs; returns how many were new (duplicates by ``(kind, dedup_key)`` are skipped)."""
        ...

    def claim(self, worker_id: str, n: int, *, lease_s: float = 60.0,
              kinds: list[str] | None = None) -> list[QueuedJob]:
        """Up to ``n`` ready jobs, oldest first, leased to ``worker_id`` for ``lease_s``."""
        ...

    def ack(self, job_ids: list[str]) -> None:
        """Finished: remove them."""
        ...

    def nack(self, job_ids: list[str], *, error: str = "", delay_s: float = 5.0,
             max_attempts: int = 5) -> None:
        """Failed: ready again after ``delay_s``; after ``max_attempts`` claims, dead."""
        ...

    def stats(self, project_id: str | None = None) -> QueueStats: ...
