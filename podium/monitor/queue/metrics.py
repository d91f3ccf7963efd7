"""Prometheus metrics of the job queue and the worker, read when scraped.

``podium_queue_backlog`` / ``_leased`` / ``_dead`` / ``_oldest_age_seconds`` per kind come from
:meth:`JobQueue.stats` (one grouped query, or a few Redis calls, per scrape); the
``podium_worker_*`` counters from the worker running in this process, if any. Registered by the
server's ``/metrics`` (``podium.server.metrics``) and by ``podium worker --metrics-port``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podium.monitor.queue.base import JobQueue

if TYPE_CHECKING:
    from podium.monitor.worker import Worker

__all__ = ["QueueCollector"]

logger = logging.getLogger("podium.worker")


class QueueCollector(Collector):
    """``queue``: the queue, or ``make``: a function that makes it on the first scrape (so a server
    that is never scraped never connects to Redis). ``worker``: set when a worker runs here."""

    def __init__(self, queue: JobQueue | None = None, *, make: Callable[[], JobQueue] | None = None) -> None:
        if (queue is None) == (make is None):
            raise ValueError("pass either queue or make")
        self._queue = queue
        self._make = make
        self._lock = threading.Lock()
        self.worker: Worker | None = None

    def queue(self) -> JobQueue:
        with self._lock:
            if self._queue is None:
                assert self._make is not None
                self._queue = self._make()
            return self._queue

    def collect(self) -> Iterator[Any]:
        backlog = GaugeMetricFamily("podium_queue_backlog", "Jobs waiting or running (ready + leased), by kind",
                                    labels=["kind"])
        leased = GaugeMetricFamily("podium_queue_leased", "Jobs claimed by a worker and not yet finished, by kind",
                                   labels=["kind"])
        dead = GaugeMetricFamily("podium_queue_dead", "Jobs that failed max_attempts times (kept for inspection)",
                                 labels=["kind"])
        age = GaugeMetricFamily("podium_queue_oldest_age_seconds",
                                "Age of the oldest unfinished job (the queue's lag), by kind", labels=["kind"])
        try:
            st = self.queue().stats()
        except Exception:
            logger.warning("queue stats unavailable for /metrics", exc_info=True)
        else:
            for kind in sorted(set(st.by_kind) | set(st.dead_by_kind) | set(st.oldest_age_by_kind)):
                backlog.add_metric([kind], float(st.by_kind.get(kind, 0)))
                leased.add_metric([kind], float(st.leased_by_kind.get(kind, 0)))
                dead.add_metric([kind], float(st.dead_by_kind.get(kind, 0)))
                if kind in st.oldest_age_by_kind:
                    age.add_metric([kind], st.oldest_age_by_kind[kind])
        yield from (backlog, leased, dead, age)
        w = self.worker
        if w is not None:
            rounds = CounterMetricFamily("podium_worker_rounds", "Rounds each job ran in this process",
                                         labels=["job"])
            handled = CounterMetricFamily("podium_worker_handled", "Things each job handled in this process",
                                          labels=["job"])
            errors = CounterMetricFamily("podium_worker_errors", "Rounds that raised, per job", labels=["job"])
            for name, c in sorted(w.counters.items()):
                rounds.add_metric([name], float(c.rounds))
                handled.add_metric([name], float(c.handled))
                errors.add_metric([name], float(c.errors))
            yield from (rounds, handled, errors)

    def describe(self) -> Iterator[Any]:
        return iter(())
