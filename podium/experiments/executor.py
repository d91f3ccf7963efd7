"""The experiment runner on an :class:`~podium.executor.Executor` other than ``local`` (docs/ray.md).

``Runner(..., executor=get_executor("ray"))`` (``podium eval run --executor ray``,
``podium.evaluate(executor="ray")``) sends the run's units (item × repetition) to the executor
in batches. What runs where:

* **In the task (a Ray worker)**: the task itself (a Python function, a ``PromptTask`` calling
  the gateway's HTTP API at its ``base_url``, an ``HttpTask``), its retries (rate limits and
  transient errors, with the same back-off as the local loop), its timeout, the inline scorers
  and the batching scorers (``similar``: the MiniLM embedder loads once per worker process)
  over the task's batch.
* **On the driver**: the experiment record, every store write (the recorder: memory or
  ``POST /api/v1/experiments/{id}/items``), resume (units already stored are never sent), the
  progress bar and the summary. Results are keyed by the unit's position, so a batch Ray re-runs
  after its node died is recorded once.

Not on Ray: the per-item traces (a Ray worker has no SDK client; ``trace_id`` is null and the
gateway still logs the model calls) and the AIMD limiter (concurrency is the cluster's CPUs;
``max_concurrency`` bounds the threads inside one task).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podium.core.datasets import DatasetItem
from podium.errors import PodiumError
from podium.evals import analysis
from podium.evals.scorers import Scorer
from podium.executor import Executor, LocalExecutor, get_executor
from podium.experiments.tasks import TaskContext, TaskOutput, classify_error

__all__ = ["RemoteItemError", "UnitWork", "resolve_executor", "run_on_executor"]


class RemoteItemError(PodiumError):
    """An item's error as it came back from a task on another process (its text and code)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def resolve_executor(executor: Any) -> Executor | None:
    """None for the runner's own local loop; an :class:`Executor` otherwise (a name, None for
    ``PODIUM_EXECUTOR``, or an executor object)."""
    ex = get_executor(executor) if executor is None or isinstance(executor, str) else executor
    return None if isinstance(ex, LocalExecutor) else ex


@dataclass
class _Done:
    """What a task sends back for one unit (plain data: pickles across processes)."""

    position: int  # index in the driver's unit list: the key
    output: Any = None
    task_output: TaskOutput | None = None
    error: str | None = None
    error_type: str | None = None
    latency_ms: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    scores: dict[str, Any] = field(default_factory=dict)


def _error_text(e: BaseException) -> str:
    if isinstance(e, PodiumError):
        return e.message
    msg = str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


@dataclass
class UnitWork:
    """The function every task runs over its batch of units: ``(position, item, repetition,
    scorers)`` tuples. Shipped once per run (the executor puts it in Ray's object store)."""

    task: Any
    max_retries: int = 3
    timeout: float | None = None
    retry_backoff: float = 0.5
    max_backoff: float = 30.0
    max_concurrency: int = 8
    experiment_id: str | None = None
    batches: Callable[[Scorer], bool] | None = None  # the runner's rules (it passes them: this module may
    entry: Callable[[Scorer, Any], Any] | None = None  # not import the runner, which imports it)

    def __call__(self, units: list[tuple[int, DatasetItem, int, list[Scorer]]]) -> list[_Done]:
        assert self.batches is not None and self.entry is not None, "UnitWork needs the runner's batches and entry"
        _batches, _entry = self.batches, self.entry
        width = max(1, min(self.max_concurrency, len(units)))
        if width == 1:
            done = [self._one(u) for u in units]
        else:  # up to max_concurrency units at once in this task (a model call mostly waits)
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="podium-ray-unit") as pool:
                done = list(pool.map(self._one, units))
        # Scorers: inline ones per unit, batching ones over the batch (as the local loop's flush).
        ok = [(d, units[i]) for i, d in enumerate(done) if d.error is None]
        for d, (_, item, _, scorers) in ok:
            inline = [s for s in scorers if not _batches(s)]
            try:
                self._score(inline, [(d, item)], _entry)
            except BaseException as e:  # a configuration error: fail the item loudly
                d.error, d.error_type = _error_text(e), getattr(e, "code", "scorer_error")
        ok = [(d, u) for d, u in ok if d.error is None]
        batched: list[Scorer] = []
        for _, (_, _, _, scorers) in ok:
            for s in scorers:
                if _batches(s) and not any(s is b for b in batched):
                    batched.append(s)
        for s in batched:
            rows = [(d, u[1]) for d, u in ok if any(x is s for x in u[3])]
            self._score([s], rows, _entry)
        return done

    @staticmethod
    def _score(scorers: Sequence[Scorer], rows: list[tuple[_Done, DatasetItem]], entry: Any) -> None:
        if not scorers or not rows:
            return
        fields = []
        for d, it in rows:
            to = d.task_output
            trace = {"trace_id": None, "latency_ms": d.latency_ms, "duration_ms": d.latency_ms,
                     "start_time": d.started_at, "end_time": d.ended_at,
                     "total_cost": to.cost if to else None, "usage": to.usage if to else None}
            fields.append({"input": it.input, "output": d.output, "expected": it.expected, "context": it.context,
                           "metadata": dict(it.metadata) or None, "trace": trace})
        for s in scorers:
            for (d, _), r in zip(rows, s.score_batch(fields), strict=True):
                d.scores[s.name] = entry(s, r)

    def _attempt(self, item: DatasetItem, rep: int) -> tuple[TaskOutput | None, BaseException | None, bool]:
        """One call of the task, bounded by the timeout: (output, error, timed_out)."""
        ctx = TaskContext(repetition=rep, experiment_id=self.experiment_id, timeout=self.timeout)
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["out"] = self.task.run(item, ctx)
            except BaseException as e:  # the item's error; never the task's
                box["err"] = e

        if self.timeout is None:
            call()
        else:
            t = threading.Thread(target=call, daemon=True)
            t.start()
            t.join(self.timeout)
            if t.is_alive():
                return None, TimeoutError(f"the task did not finish within {self.timeout:g} s"), True
        return box.get("out"), box.get("err"), False

    def _one(self, unit: tuple[int, DatasetItem, int, list[Scorer]]) -> _Done:
        pos, item, rep, _ = unit
        d = _Done(pos)
        rate_limited = 0
        max_rl = max(8, self.max_retries)
        while True:
            d.attempts += 1
            d.started_at = datetime.now(UTC)
            t0 = time.perf_counter()
            res, err, timed_out = self._attempt(item, rep)
            d.latency_ms = (time.perf_counter() - t0) * 1000.0
            d.ended_at = datetime.now(UTC)
            if err is None and res is not None:
                d.task_output, d.output = res, res.output
                return d
            assert err is not None
            if timed_out:
                d.error, d.error_type = _error_text(err), "timeout"
                d.latency_ms = (self.timeout or 0.0) * 1000.0
                return d
            kind, retry_after = classify_error(err)
            if kind == "rate_limited":
                rate_limited += 1
                if rate_limited <= max_rl:
                    time.sleep(min(self.max_backoff, retry_after if retry_after is not None
                                   else self.retry_backoff * 2 ** (rate_limited - 1)) * random.uniform(0.8, 1.2))
                    continue
                d.error, d.error_type = _error_text(err), "rate_limited"
                return d
            if kind == "transient" and d.attempts - rate_limited <= self.max_retries:
                n = d.attempts - rate_limited
                wait = retry_after if retry_after is not None else min(self.max_backoff,
                                                                         self.retry_backoff * 2 ** (n - 1))
                time.sleep(wait * random.uniform(0.8, 1.2))
                continue
            code = getattr(err, "code", None) if kind != "transient" else "upstream_error"
            d.error = _error_text(err)
            d.error_type = code if code in analysis.TASK_ERRORS else "task_error"
            return d


def run_on_executor(runner: Any, executor: Executor, units: Sequence[Any], prog: Any, *, outcome: Any,
                    batches: Callable[[Scorer], bool], entry: Callable[[Scorer, Any], Any]) -> None:
    """Run ``units`` (the runner's ``_Unit`` list) on ``executor``; record every batch on this
    (the driver's) thread as it comes back, each unit once. ``outcome`` (the runner's ``_Outcome``),
    ``batches`` and ``entry`` (its scoring rules) come from the runner, which imports this module."""
    if not units:
        return
    _Outcome = outcome
    cfg = runner.config
    work = UnitWork(runner.task, max_retries=cfg.max_retries, timeout=cfg.timeout, retry_backoff=cfg.retry_backoff,
                    max_backoff=cfg.max_backoff, max_concurrency=cfg.max_concurrency,
                    experiment_id=runner.experiment.get("id"), batches=batches, entry=entry)
    todo = list(units)
    payload = [(i, u.item, u.repetition, u.scorers) for i, u in enumerate(todo)]
    seen: set[int] = set()

    def record(start: int, done: list[_Done]) -> None:
        outs = []
        for d in done:
            if d.position in seen:  # a re-run batch: already recorded
                continue
            seen.add(d.position)
            u = todo[d.position]
            u.attempts = d.attempts
            o = _Outcome(u, 0, output=d.output, task_output=d.task_output, latency_ms=d.latency_ms,
                         started_at=d.started_at, ended_at=d.ended_at, scores=dict(d.scores))
            if d.error is not None:
                o.error = RemoteItemError(d.error, d.error_type or "task_error")
                o.error_type = d.error_type
            outs.append(o)
        rows = [runner._result(o) for o in outs]
        runner.recorder.record(rows)
        runner.results.extend(rows)
        for r in rows:
            prog.advance(bool(r["passed"]), r["error"] is not None, width)

    cpus = getattr(executor, "cluster_cpus", None)
    width = cpus() if callable(cpus) else 1
    executor.map(work, payload, on_batch=record)
