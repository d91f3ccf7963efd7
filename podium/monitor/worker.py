"""The background worker: runs the periodic :class:`~podium.monitor.jobs.Job` s, each in its
own daemon thread, in the server process (``PODIUM_WORKER_EMBEDDED``, the default) or in
``podium worker`` processes.

- :class:`Worker`: calls a job's ``run_once`` again at once while it returns > 0, else sleeps
  the job's ``interval_s``; logs what a round raises and goes on; ``stop()`` returns within
  about a second (a round still running finishes in its daemon thread).
- :class:`QueueConsumer`: a Job that claims a batch of one kind from the :class:`JobQueue`,
  hands it to a handler, acks what succeeded and nacks what failed.
- :func:`build_jobs`: the one place that lists the jobs every worker runs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from podium.config import Settings
from podium.monitor.jobs import Job
from podium.monitor.queue.base import JobQueue, QueuedJob
from podium.store import Store

if TYPE_CHECKING:
    from podium.gateway.service import Gateway

__all__ = [
    "PING_KIND",
    "JobCounters",
    "QueueConsumer",
    "Worker",
    "build_jobs",
    "default_worker_id",
    "start_embedded_worker",
]

logger = logging.getLogger("podium.worker")

#: A no-op job kind every worker consumes: enqueue pings to check that workers are alive and
#: draining the queue end to end (``podium worker --once`` acks them).
PING_KIND = "podium.ping"

#: A handler gets one claimed batch and returns the failures (``{job_id: error}``); the rest
#: are acked. Raising fails the whole batch.
Handler = Callable[[list[QueuedJob]], dict[str, str] | None]


def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in ``leased_by``."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class JobCounters:
    """What a job did in this process (for ``/metrics``)."""

    rounds: int = 0
    handled: int = 0
    errors: int = 0
    last_round_s: float = 0.0


class QueueConsumer:
    """A :class:`Job` that drains one kind of the queue in batches (at-least-once: the handler
    must be idempotent). Failed jobs come back after ``retry_delay_s``, and are dead after
    ``max_attempts`` claims."""

    def __init__(self, queue: JobQueue, kind: str, handler: Handler, *, name: str | None = None,
                 batch: int = 200, lease_s: float = 60.0, interval_s: float = 1.0, max_attempts: int = 5,
                 retry_delay_s: float = 5.0, worker_id: str | None = None) -> None:
        self.queue = queue
        self.kind = kind
        self.handler = handler
        self.name = name or f"queue:{kind}"
        self.batch = batch
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.worker_id = worker_id or default_worker_id()
        self.failed = 0

    def run_once(self) -> int:
        jobs = self.queue.claim(self.worker_id, self.batch, lease_s=self.lease_s, kinds=[self.kind])
        if not jobs:
            return 0
        try:
            failures = self.handler(jobs) or {}
        except Exception as e:
            logger.exception("%s: a batch of %d failed", self.name, len(jobs))
            failures = {j.id: f"{e.__class__.__name__}: {e}" for j in jobs}
        ok = [j.id for j in jobs if j.id not in failures]
        if ok:
            self.queue.ack(ok)
        if failures:
            self.failed += len(failures)
            by_error: dict[str, list[str]] = {}
            for jid, err in failures.items():
                by_error.setdefault(err, []).append(jid)
            for err, ids in by_error.items():
                self.queue.nack(ids, error=err, delay_s=self.retry_delay_s, max_attempts=self.max_attempts)
        return len(jobs)


def _ping(jobs: list[QueuedJob]) -> dict[str, str] | None:
    logger.debug("ping: %d", len(jobs))
    return None


class Worker:
    """Runs jobs in daemon threads until :meth:`stop` (see the module docstring)."""

    def __init__(self, jobs: Sequence[Job], *, worker_id: str | None = None) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique, got {names}")
        self.jobs = list(jobs)
        self.worker_id = worker_id or default_worker_id()
        self.counters: dict[str, JobCounters] = {j.name: JobCounters() for j in self.jobs}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for job in self.jobs:
            t = threading.Thread(target=self._loop, args=(job,), name=f"podium-job-{job.name}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.jobs:
            logger.info("worker %s started: %s", self.worker_id, ", ".join(j.name for j in self.jobs))

    def _round(self, job: Job) -> int:
        c = self.counters[job.name]
        t0 = time.perf_counter()
        try:
            n = int(job.run_once() or 0)
        except Exception:
            c.errors += 1
            logger.exception("job %s failed (worker %s); next round in %.1f s", job.name, self.worker_id,
                             job.interval_s)
            n = 0
        c.rounds += 1
        c.handled += max(n, 0)
        c.last_round_s = time.perf_counter() - t0
        return n

    def _loop(self, job: Job) -> None:
        while not self._stop.is_set():
            if self._round(job) > 0:
                continue
            self._stop.wait(max(job.interval_s, 0.01))

    def stop(self, timeout: float = 1.0) -> None:
        """Ask every job to stop and wait up to ``timeout`` s in all (a round still running
        goes on in its daemon thread and is abandoned at exit; its leases run out)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.0))
        busy = [t.name for t in self._threads if t.is_alive()]
        if busy:
            logger.warning("worker %s stopped; still finishing a round: %s", self.worker_id, ", ".join(busy))
        self._threads = []

    def drain(self, *, max_rounds: int = 1_000_000) -> dict[str, int]:
        """Run every job in this thread until a round handles nothing (``podium worker --once``);
        returns what each handled."""
        done: dict[str, int] = {}
        for job in self.jobs:
            total = 0
            for _ in range(max_rounds):
                n = self._round(job)
                if n <= 0 or self._stop.is_set():
                    break
                total += n
            done[job.name] = total
        return done

    def run_forever(self, *, install_signals: bool = True) -> None:
        """Start, then block until SIGTERM / SIGINT (or :meth:`stop` from another thread)."""
        previous: dict[int, Any] = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            def _on_signal(signum: int, _frame: FrameType | None) -> None:
                logger.info("worker %s: %s, stopping", self.worker_id, signal.Signals(signum).name)
                self._stop.set()

            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, _on_signal)
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _drift_job(store: Store, worker_id: str | None) -> Job:
    from podium.monitor.drift.job import DriftJob

    return DriftJob(store, owner=worker_id)


def _canary_job(store: Store, settings: Settings, gateway: Gateway | None) -> Job:
    from podium.monitor.canary.job import CanaryJob

    return CanaryJob(store, gateway=gateway, base_url=settings.base_url,
                     check_every_s=settings.canary_check_interval_s,
                     interval_s=min(2.0, settings.canary_check_interval_s))


def build_jobs(store: Store, settings: Settings, gateway: Gateway | None, *,
               queue: JobQueue | None = None, worker_id: str | None = None) -> list[Job]:
    """Every job a worker runs: the one place to add one (one line each). Called on the event loop
    that runs ``gateway`` (the server's, or ``podium worker``'s own): a job that calls the gateway
    from its thread may keep ``asyncio.get_running_loop()`` and use ``run_coroutine_threadsafe``."""
    from podium.governance.retention import RetentionJob
    from podium.monitor.alerting.job import AlertJob
    from podium.monitor.online.jobs import online_jobs
    from podium.monitor.queue.factory import make_queue

    q = queue if queue is not None else make_queue(settings, store)
    jobs: list[Job] = [
        QueueConsumer(q, PING_KIND, _ping, name="ping", interval_s=2.0, worker_id=worker_id),
        *online_jobs(store, settings, gateway, queue=q, worker_id=worker_id),  # online evaluation rules
        _drift_job(store, worker_id),  # due drift monitors (podium.monitor.drift.job)
        AlertJob(store, base_url=settings.base_url),  # due alert rules (podium.monitor.alerting.job)
        _canary_job(store, settings, gateway),  # running canary deployments (podium.monitor.canary.job)
        RetentionJob(store, settings),  # retention periods, in batches (podium.governance.retention)
    ]
    return jobs


def start_embedded_worker(store: Store, settings: Settings, gateway: Gateway | None) -> Worker | None:
    """The server's in-process worker (``PODIUM_WORKER_EMBEDDED``, default on), started; None when
    disabled. A failure to build the jobs is logged, never stops the server."""
    if not settings.worker_embedded:
        return None
    try:
        worker_id = default_worker_id()
        worker = Worker(build_jobs(store, settings, gateway, worker_id=worker_id), worker_id=worker_id)
    except Exception:
        logger.exception("the embedded worker could not start; run `podium worker` instead")
        return None
    worker.start()
    return worker
