"""The producer job: from each enabled rule's cursor, queue the traces it matches.

Each round, per rule: read up to ``batch`` traces matching the filter that were updated after
the rule's cursor and at least ``delay_s`` ago (so a trace has settled), keep the sampled ones,
``enqueue`` them as ``online_eval`` jobs with ``dedup_key = "<rule>:<trace>"``, then move the
cursor to the last trace read. Several workers may run it at once: the cursor only moves
forward and a double enqueue of a queued trace is skipped by the dedup key (and evaluating a
trace twice rewrites the same scores).

Sampling is deterministic: a trace is in a rule's sample when the first 8 bytes of
``sha256("<rule id>:<trace id>")`` read as a fraction are below ``sample_rate``, so every worker,
a backfill and a re-run agree on which traces are judged.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.monitor.online import metrics
from podium.monitor.queue.base import JobQueue
from podium.store import Store

__all__ = ["KIND", "OnlineEvalProducer", "enqueue_traces", "sampled"]

logger = logging.getLogger("podium.monitor.online")

#: The job kind online evaluation uses on the queue.
KIND = "online_eval"


def sampled(rule_id: str, trace_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.sha256(f"{rule_id}:{trace_id}".encode()).digest()[:8], "big")
    return h / 2**64 < rate


def enqueue_traces(queue: JobQueue, rule: dict[str, Any], traces: list[tuple[str, datetime]], *,
                   backfill: bool = False) -> int:
    """Queue the sampled ones of ``traces`` (``(trace id, time)``) for ``rule``; the number new."""
    rid = rule["id"]
    picked = [(tid, at) for tid, at in traces if sampled(rid, tid, float(rule["sample_rate"]))]
    if not picked:
        return 0
    payloads = [{"rule_id": rid, "trace_id": tid, "t": at.timestamp(), **({"backfill": True} if backfill else {})}
                for tid, at in picked]
    n = queue.enqueue(KIND, rule["project_id"], payloads, dedup_keys=[f"{rid}:{tid}" for tid, _ in picked])
    metrics.observe_enqueued(n)
    return n


class OnlineEvalProducer:
    """``run_once``: one pass over every enabled rule; returns the traces read (0: idle)."""

    name = "online-eval-producer"

    def __init__(self, store: Store, queue: JobQueue, *, interval_s: float = 1.0, batch: int = 1000,
                 settle_s: float = 1.0) -> None:
        self.store = store
        self.queue = queue
        self.interval_s = interval_s
        self.batch = batch
        self.settle_s = settle_s  # a floor under delay_s: writes commit a moment after their updated_at

    def run_once(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        total = 0
        for rule in self.store.online_evals.enabled():
            try:
                total += self._rule(rule, now)
            except Exception:
                logger.exception("online evaluation rule %s (%s): could not queue traces", rule["id"], rule["name"])
        return total

    def _rule(self, rule: dict[str, Any], now: datetime) -> int:
        repo = self.store.online_evals
        until = now - timedelta(seconds=max(float(rule["delay_s"]), self.settle_s))
        rows = repo.candidates(rule, until=until, limit=self.batch)
        new = enqueue_traces(self.queue, rule, rows) if rows else 0
        if len(rows) < self.batch:
            # every match up to `until` is queued: move past the traces the filter skipped too, so
            # the next round does not scan them again (a trace updated exactly at `until` may be
            # read twice: harmless)
            if rule.get("cursor_time") is None or rule["cursor_time"] < until:
                repo.advance_cursor(rule["project_id"], rule["id"], until, "")
        else:
            last_id, last_at = rows[-1]
            repo.advance_cursor(rule["project_id"], rule["id"], last_at, last_id)
        if new:
            repo.count(rule["project_id"], rule["id"], matched=new)
        return len(rows)
