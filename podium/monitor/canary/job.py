"""The canary job: every ``interval_s`` it claims the running canaries whose next check is due
(a compare-and-set on ``next_check_at``, so two workers never check the same canary at once) and
runs one :meth:`~podium.monitor.canary.controller.CanaryController.check` on each: hold, step,
promote or roll back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from podium.monitor.canary import metrics
from podium.monitor.canary.controller import CanaryController

__all__ = ["CanaryJob"]

log = logging.getLogger("podium.monitor.canary")


def _now() -> datetime:
    return datetime.now(UTC)


class CanaryJob:
    """The worker's job (:class:`podium.monitor.jobs.Job`): check due canaries."""

    name = "canaries"

    def __init__(self, store: Any, *, gateway: Any = None, base_url: str = "http://127.0.0.1:8700",
                 interval_s: float = 2.0, check_every_s: float = 5.0, batch: int = 20,
                 clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.interval_s = interval_s
        self.check_every_s = check_every_s
        self.batch = batch
        self.controller = CanaryController(store, gateway=gateway, base_url=base_url, clock=clock)
        self.outcomes: dict[str, int] = {}

    def run_once(self) -> int:
        now = self.controller.clock()
        due = self.store.canaries.claim_due(now, interval_s=self.check_every_s, limit=self.batch)
        for canary in due:
            try:
                what = self.controller.check(canary)
            except Exception:
                log.exception("canary %s: check failed", canary.get("id"))
                what = "error"
            self.outcomes[what] = self.outcomes.get(what, 0) + 1
        if due:
            metrics.set_active(self.store.canaries.count_active())
        return len(due)
