"""The worker's drift job: run the monitors that are due, each exactly once.

Each round lists due monitors (``next_run_at`` passed, no live lease) and takes each with a
compare-and-set lease (``store.drift.try_lease``): of several workers racing for one monitor,
one wins, the others skip it. The winner runs it, stores the result (an ``error`` result when
the run raised, so the UI shows why) and releases the lease with the next run time. A worker
killed mid-run leaves its lease to expire (``lease_s``), after which another worker runs it.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.errors import PodiumError
from podium.monitor.drift.features import EmbeddingCache
from podium.monitor.drift.runner import run_monitor, windows
from podium.store import Store

__all__ = ["DriftJob", "record_run"]

logger = logging.getLogger(__name__)


def record_run(store: Store, project_id: str, monitor: dict[str, Any], *, now: datetime | None = None,
               cache: EmbeddingCache | None = None) -> dict[str, Any]:
    """Run ``monitor`` and store its result; a failed run is stored as an ``error`` result."""
    now = now or datetime.now(UTC)
    try:
        result = run_monitor(store, project_id, monitor, now=now, cache=cache)
    except Exception as e:  # the run's failure is the result the UI shows
        if not isinstance(e, PodiumError):
            logger.exception("drift monitor %s (%s) failed", monitor.get("name"), monitor.get("id"))
        start, end, rs, re_ = windows(monitor, now)
        msg = e.message if isinstance(e, PodiumError) else f"{type(e).__name__}: {e}"
        result = {"computed_at": now, "window_start": start, "window_end": end, "reference_start": rs,
                  "reference_end": re_, "status": "error", "error": msg[:2000], "drifted": False}
    return store.drift.add_result(project_id, monitor["id"], result)


class DriftJob:
    """Runs due drift monitors, at most ``batch`` per round (a run embeds up to 2x sample_size texts)."""

    name = "drift"

    def __init__(self, store: Store, *, interval_s: float = 30.0, lease_s: float = 900.0, batch: int = 2,
                 owner: str | None = None, cache: EmbeddingCache | None = None) -> None:
        self.store = store
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.batch = batch
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.cache = cache

    def run_once(self) -> int:
        now = datetime.now(UTC)
        done = 0
        for project_id, monitor_id in self.store.drift.due(now, limit=self.batch * 5):
            if done >= self.batch:
                break
            if not self.store.drift.try_lease(project_id, monitor_id, self.owner, now, self.lease_s):
                continue  # another worker took it
            monitor = self.store.drift.get(project_id, monitor_id)
            try:
                if monitor is not None:
                    record_run(self.store, project_id, monitor, cache=self.cache)
                    done += 1
            finally:
                interval = int(monitor["interval_s"]) if monitor is not None else 3600
                self.store.drift.release(project_id, monitor_id, self.owner,
                                         datetime.now(UTC) + timedelta(seconds=interval))
        return done
