"""Backfill: queue a rule's matching traces that started in ``[start, end)``.

Read and queued in chunks of ``chunk`` traces (keyset on start time), each its own short
transaction, so a backfill over millions of traces never holds one giant one. Sampling and
dedup are the producer's: a trace already queued is not queued twice, and one evaluated before
gets its scores rewritten (same ids), not duplicated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.errors import BadRequest
from podium.monitor.online.producer import enqueue_traces
from podium.monitor.queue.base import JobQueue
from podium.store import Store

__all__ = ["backfill"]


def backfill(store: Store, queue: JobQueue, rule: dict[str, Any], start: datetime, end: datetime, *,
             chunk: int = 1000, limit: int = 1_000_000) -> dict[str, int]:
    """Queue the range; returns ``{"matched": traces read, "enqueued": new jobs}``."""
    if start >= end:
        raise BadRequest("backfill: `start` must be before `end`", details=[{"field": "start", "message": "not before end"}])
    repo = store.online_evals
    after: tuple[datetime, str] | None = None
    matched = enqueued = 0
    while matched < limit:
        rows = repo.in_range(rule["project_id"], rule.get("filter"), start, end, after=after,
                             limit=min(chunk, limit - matched))
        if not rows:
            break
        matched += len(rows)
        enqueued += enqueue_traces(queue, rule, rows, backfill=True)
        after = (rows[-1][1], rows[-1][0])
        if len(rows) < chunk:
            break
    if enqueued:
        repo.count(rule["project_id"], rule["id"], matched=enqueued)
    return {"matched": matched, "enqueued": enqueued}
