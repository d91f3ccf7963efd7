"""The experiment engine: run a task over dataset items, score each result, record everything.

::

    result = podium.evaluate(
        dataset="qa-golden",                      # a server dataset (name or "name@3"), a file, a list, a Dataset
        task=answer,                              # a function, PromptTask(...) or HttpTask(...)
        scorers=["exact-match", {"type": "rouge-l", "threshold": 0.4}, my_scorer],
        repetitions=3, max_concurrency=8,
    )
    print(result)                                 # per-scorer means with 95% CIs, pass rate, errors

How a run goes:

* Units are (item, repetition) pairs. A coordinating thread starts each unit in its own
  daemon thread while fewer than the limiter allows are in flight (:mod:`podium.evals.limiter`: AIMD, 429
  back-off, optional rpm). A unit that exceeds ``timeout`` seconds is recorded as a
  ``timeout`` error (its thread is abandoned, and its late result ignored).
* The task runs inside a Podium trace (a ``chain`` span named after the task, tagged ``eval``,
  with the experiment and item ids in the trace metadata) when the client has keys, so every
  run shows up in traces, and the model calls a prompt task makes through the gateway are
  children of that span. The item records the trace id.
* Rate limits (429) and transient errors (5xx, network) are retried with back-off (rate limits
  up to ``max(8, max_retries)`` times, others ``max_retries`` times); any other exception is the
  item's error at once (the run goes on).
* Scorers run right after the task in the unit's thread, except batching scorers (``similar``,
  any scorer that overrides ``compute_batch``), which the coordinator runs over up to
  ``score_batch`` finished items at a time. A scorer that fails on an item (a missing field, an
  unparseable judge verdict) marks that item errored with the reason; the run completes.
* Results go to a recorder in batches: the server (``POST /api/v1/experiments/{id}/items``) or
  memory. Against a server a run is resumable: pass the experiment id again and the items
  already stored are skipped (task errors are retried). Ctrl-C records what finished, marks the
  experiment ``interrupted`` and raises :class:`Interrupted` (it says how to resume).
* When every unit is done the recorder computes the summary (:mod:`podium.evals.analysis`): per-scorer
  means with bootstrap 95% confidence intervals, pass rate, spread across repetitions.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from podium.core.datasets import Dataset, DatasetItem, items_from_records, parse_dataset_file
from podium.errors import ConfigurationError, PodiumError
from podium.evals import analysis
from podium.evals.limiter import AimdLimiter
from podium.evals.scorers import FunctionScorer, Score, Scorer, as_scorer
from podium.experiments.executor import resolve_executor, run_on_executor
from podium.experiments.judges import use_registry_prompts
from podium.experiments.results import ItemResult, ScoreEntry
from podium.experiments.tasks import TaskContext, TaskOutput, as_task, classify_error
from podium.sdk.context import propagate_attributes

__all__ = [
    "ExperimentResult",
    "HttpRecorder",
    "Interrupted",
    "MemoryRecorder",
    "Recorder",
    "RunConfig",
    "Runner",
    "evaluate",
    "resolve_dataset",
    "resolve_scorers",
    "scorer_info",
]

logger = logging.getLogger("podium.experiments")

RETRY_ON_RESUME = ("task_error", "timeout", "rate_limited", "upstream_error", "cancelled")


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); what finished is recorded. ``experiment`` is the record."""

    def __init__(self, experiment: Mapping[str, Any], hint: str) -> None:
        super().__init__(hint)
        self.experiment = dict(experiment)
        self.hint = hint


@dataclass
class RunConfig:
    repetitions: int = 1
    max_concurrency: int = 8
    rpm: float | None = None
    max_retries: int = 3
    timeout: float | None = None  # seconds per task call
    retry_backoff: float = 0.5
    max_backoff: float = 30.0
    score_batch: int = 64

    def check(self) -> None:
        problems = []
        if not isinstance(self.repetitions, int) or self.repetitions < 1:
            problems.append(f"repetitions must be a whole number >= 1, got {self.repetitions!r}")
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            problems.append(f"max_concurrency must be a whole number >= 1, got {self.max_concurrency!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            problems.append(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        if self.timeout is not None and not (isinstance(self.timeout, int | float) and self.timeout > 0):
            problems.append(f"timeout must be a number of seconds > 0, got {self.timeout!r}")
        if self.rpm is not None and not (isinstance(self.rpm, int | float) and self.rpm > 0):
            problems.append(f"rpm must be > 0, got {self.rpm!r}")
        if problems:
            raise ConfigurationError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {"repetitions": self.repetitions, "max_concurrency": self.max_concurrency, "rpm": self.rpm,
                "max_retries": self.max_retries, "timeout": self.timeout}


# --- scorers ---------------------------------------------------------------------------------------


def _batches(s: Scorer) -> bool:
    """Does this scorer gain from scoring many items at once (it overrides compute_batch)?"""
    if isinstance(s, FunctionScorer):
        return getattr(s, "_batch_fn", None) is not None
    return type(s).compute_batch is not Scorer.compute_batch


def scorer_info(s: Scorer) -> dict[str, Any]:
    """What an experiment stores about a scorer."""
    return {"name": s.name, "type": getattr(s, "type", "") or "python", "direction": s.direction or "higher",
            "weight": s.weight, "threshold": s.threshold, "invert": s.invert}


def resolve_scorers(scorers: Iterable[Any]) -> list[Scorer]:
    """Scorers from scorers, functions, type names or assertion mappings; names made unique."""
    out = [as_scorer(s) for s in scorers]
    _unique_names(out)
    return out


def _unique_names(scorers: list[Scorer]) -> None:
    seen: dict[str, int] = {}
    for s in scorers:
        n = seen.get(s.name, 0) + 1
        seen[s.name] = n
        if n > 1:
            s.name = f"{s.name}#{n}"


# --- results -----------------------------------------------------------------------------------------


def _jsonable(v: Any) -> Any:
    """A JSON-safe copy: NaN/Infinity become None, unknown objects their str()."""
    if v is None or isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_jsonable(x) for x in v]
    dump = getattr(v, "model_dump", None)
    if callable(dump):
        try:
            return _jsonable(dump(mode="json"))
        except Exception:
            pass
    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict):
        try:
            return _jsonable(to_dict())
        except Exception:
            pass
    try:
        return json.loads(json.dumps(v))
    except (TypeError, ValueError):
        return str(v)


def _error_text(e: BaseException) -> str:
    if isinstance(e, PodiumError):
        return e.message
    msg = str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _entry(s: Scorer, result: Score | BaseException) -> ScoreEntry:
    kind, direction, weight = getattr(s, "type", "") or "python", s.direction or "higher", s.weight
    if isinstance(result, BaseException):
        code = getattr(result, "code", None) or "scorer_error"
        return {"type": kind, "direction": direction, "weight": weight, "value": None, "passed": None,
                "error": _error_text(result), "error_type": code}
    value = _jsonable(result.value)
    if value is None:
        return {"type": kind, "direction": direction, "weight": weight, "value": None, "passed": False,
                "error": f"scorer {s.name!r} returned a value that is not a finite number",
                "error_type": "scorer_error"}
    return {"type": kind, "direction": direction, "weight": weight, "value": value, "passed": result.passed,
            "explanation": result.explanation,
            "metadata": _jsonable(dict(result.metadata)) if result.metadata else {}}


def _weighted(entries: Mapping[str, ScoreEntry]) -> float | None:
    total = 0.0
    weights = 0.0
    for e in entries.values():
        w = float(e.get("weight") or 0.0)
        if w <= 0:
            continue
        if e.get("error"):
            s: float | None = 0.0
        elif e.get("passed") is not None:
            s = 1.0 if e["passed"] else 0.0
        else:
            v = e.get("value")
            s = float(v) if isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0 \
                and e.get("direction") != "lower" else None
        if s is None:
            continue
        total += w * s
        weights += w
    return total / weights if weights else None


@dataclass
class _Unit:
    index: int  # position of the item
    item: DatasetItem
    repetition: int
    scorers: list[Scorer]
    pass_threshold: float | None = None
    attempts: int = 0
    rate_limited: int = 0
    token: int = 0
    epoch: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.item.id, self.repetition)


@dataclass
class _Outcome:
    unit: _Unit
    token: int
    output: Any = None
    task_output: TaskOutput | None = None
    error: BaseException | None = None
    error_type: str | None = None
    trace_id: str | None = None
    latency_ms: float | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    scores: dict[str, ScoreEntry] = field(default_factory=dict)


class _NullProgress:
    def __init__(self, *a: Any, **k: Any) -> None:
        pass

    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *a: Any) -> None:
        pass

    def advance(self, ok: bool, errored: bool, limit: int) -> None:
        pass


class _Progress:
    """A rich progress bar on stderr: done/total, pass and error counts, rate, ETA, concurrency."""

    def __init__(self, total: int, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[err]} err[/]"),
            TextColumn("{task.fields[rate]}/s · ×{task.fields[limit]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._total = total
        self._desc = description
        self._ok = 0
        self._err = 0
        self._t0 = time.monotonic()
        self._id: Any = None

    def __enter__(self) -> _Progress:
        self._p.__enter__()
        self._id = self._p.add_task(self._desc, total=self._total, ok=0, err=0, rate="0.0", limit="-")
        return self

    def __exit__(self, *a: Any) -> None:
        self._p.__exit__(*a)

    def advance(self, ok: bool, errored: bool, limit: int) -> None:
        self._ok += bool(ok)
        self._err += bool(errored)
        done = self._p.tasks[0].completed + 1
        rate = done / max(1e-9, time.monotonic() - self._t0)
        self._p.update(self._id, advance=1, ok=self._ok, err=self._err, rate=f"{rate:.1f}", limit=limit)


# --- recorders ---------------------------------------------------------------------------------------


class Recorder(Protocol):
    def start(self, spec: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, int]]]: ...

    def record(self, items: list[ItemResult]) -> None: ...

    def finish(self, status: str) -> dict[str, Any]: ...


class MemoryRecorder:
    """Keeps results in memory (no server); the summary is computed here."""

    def __init__(self) -> None:
        self.experiment: dict[str, Any] = {}
        self.items: list[ItemResult] = []
        self._lock = threading.Lock()

    def start(self, spec: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, int]]]:
        now = datetime.now(UTC)
        self.experiment = {**spec, "id": spec.get("id") or uuid.uuid4().hex, "status": "running", "created_at": now,
                           "labels": list(spec.get("labels") or [])}
        return self.experiment, set()

    def record(self, items: list[ItemResult]) -> None:
        with self._lock:
            self.items.extend(items)

    def finish(self, status: str) -> dict[str, Any]:
        summary = analysis.summarize(self.items, self.experiment.get("scorers") or [])
        self.experiment.update(status=status, summary=summary, ended_at=datetime.now(UTC),
                               item_count=len(self.items), error_count=sum(1 for i in self.items if i.get("error")))
        return self.experiment


class HttpRecorder:
    """Records to a Podium server through its REST API (``podium.sdk.evals.EvalClient``)."""

    def __init__(self, client: Any, *, batch_size: int = 200) -> None:
        self.client = client
        self.batch_size = batch_size
        self.experiment: dict[str, Any] = {}

    def start(self, spec: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, int]]]:
        eid = spec.get("id")
        if eid:
            existing = self.client.find_experiment(eid)
            if existing is not None:
                for k in ("dataset_name", "dataset_version"):
                    if spec.get(k) != existing.get(k):
                        raise ConfigurationError(
                            f"experiment {eid} ran on dataset {existing.get('dataset_name')}@"
                            f"{existing.get('dataset_version')}; cannot resume it on {spec.get('dataset_name')}@"
                            f"{spec.get('dataset_version')}")
                done = {(k[0], int(k[1])) for k in self.client.experiment_done_keys(eid, retry=RETRY_ON_RESUME)}
                self.experiment = self.client.update_experiment(eid, status="running")
                return self.experiment, done
        self.experiment = self.client.create_experiment(spec)
        return self.experiment, set()

    def record(self, items: list[ItemResult]) -> None:
        for i in range(0, len(items), self.batch_size):
            self.client.add_experiment_items(self.experiment["id"], items[i:i + self.batch_size])

    def finish(self, status: str) -> dict[str, Any]:
        self.experiment = self.client.finish_experiment(self.experiment["id"], status=status)
        return self.experiment


# --- the engine ----------------------------------------------------------------------------------------


def _has_keys(client: Any) -> bool:
    return client is not None and bool(getattr(getattr(client, "settings", None), "secret_key", None))


class Runner:
    """Runs one experiment (see the module docstring). Build it, then call :meth:`run`.

    ``client`` is the SDK client (a :class:`podium.Podium`) the run works through: tasks that
    need the server (a ``PromptTask("prompts:/qa@production")``) get it, and it traces every unit
    when it has keys (``tracer`` overrides that). The engine never reaches for a global client.
    """

    def __init__(
        self,
        task: Any,
        scorers: Sequence[Any] = (),
        *,
        config: RunConfig | None = None,
        recorder: Recorder | None = None,
        client: Any = None,
        tracer: Any = None,
        progress: bool | None = None,
        name: str | None = None,
        executor: Any = None,
    ) -> None:
        self.task = as_task(task)
        # None: PODIUM_EXECUTOR; "local"/"ray" or an Executor (podium.executor). Resolved per run.
        self.executor = executor
        self.client = client
        bind = getattr(self.task, "bind", None)
        if client is not None and callable(bind):
            bind(client)  # e.g. a PromptTask fetches its "prompts:/..." reference through client.prompts
        if tracer is None and _has_keys(client):
            tracer = client
        self.scorers = resolve_scorers(scorers)
        self.config = config or RunConfig()
        self.config.check()
        self.recorder: Recorder = recorder or MemoryRecorder()
        self.tracer = tracer if tracer is not None and getattr(tracer, "enabled", False) else None
        self.progress = progress
        self.name: str = name or str(getattr(self.task, "name", "experiment"))
        self.experiment: dict[str, Any] = {}
        self.results: list[ItemResult] = []
        self._q: queue.Queue[_Outcome] = queue.Queue()
        self._token = 0
        self._batch: list[_Outcome] = []

    # --- one unit, in its own thread -------------------------------------------------------------
    def _execute(self, unit: _Unit, token: int) -> None:
        out = _Outcome(unit, token, started_at=datetime.now(UTC))
        t0 = time.perf_counter()
        ctx = TaskContext(repetition=unit.repetition, experiment_id=self.experiment.get("id"),
                          timeout=self.config.timeout)
        try:
            if self.tracer is not None:
                meta = {"experiment_id": self.experiment.get("id"), "experiment": self.name, "item_id": unit.item.id,
                        "repetition": unit.repetition}
                with propagate_attributes(tags=["eval"], metadata=meta, trace_name=f"eval: {self.name}"), \
                        self.tracer.span(str(self.task.name), kind="chain", input=unit.item.input) as sp:
                    if sp.sampled:
                        ctx.trace_id, ctx.span_id = sp.trace_id, sp.id
                        out.trace_id = sp.trace_id
                    res = self.task.run(unit.item, ctx)
                    upd: dict[str, Any] = {"output": res.output if res.output is not None else ""}
                    if res.usage:
                        upd["usage"] = res.usage
                    sp.update(**upd)
            else:
                res = self.task.run(unit.item, ctx)
            out.task_output = res
            out.output = res.output
        except BaseException as e:  # the item's error; never the run's
            out.error = e
        out.latency_ms = (time.perf_counter() - t0) * 1000.0
        out.ended_at = datetime.now(UTC)
        if out.error is None:
            inline = [s for s in unit.scorers if not _batches(s)]
            if inline:
                try:
                    self._score(inline, [out])
                except BaseException as e:  # a configuration error: fail the item loudly
                    out.error = e
                    out.error_type = getattr(e, "code", "scorer_error")
        self._q.put(out)

    def _fields(self, o: _Outcome) -> dict[str, Any]:
        it = o.unit.item
        to = o.task_output
        trace = {"trace_id": o.trace_id, "latency_ms": o.latency_ms, "duration_ms": o.latency_ms,
                 "start_time": o.started_at, "end_time": o.ended_at,
                 "total_cost": to.cost if to else None, "usage": to.usage if to else None}
        return {"input": it.input, "output": o.output, "expected": it.expected, "context": it.context,
                "metadata": dict(it.metadata) or None, "trace": trace}

    def _score(self, scorers: Sequence[Scorer], outcomes: Sequence[_Outcome]) -> None:
        rows = [self._fields(o) for o in outcomes]
        for s in scorers:
            idx = [i for i, o in enumerate(outcomes) if any(x is s for x in o.unit.scorers)]
            if not idx:
                continue
            results = s.score_batch([rows[i] for i in idx])
            for i, r in zip(idx, results, strict=True):
                outcomes[i].scores[s.name] = _entry(s, r)

    # --- the coordinating loop ---------------------------------------------------------------
    def run(
        self,
        items: Sequence[DatasetItem],
        spec: Mapping[str, Any] | None = None,
        *,
        item_scorers: Callable[[DatasetItem], Sequence[Scorer]] | None = None,
        pass_thresholds: Mapping[str, float] | None = None,
    ) -> ExperimentResult:
        """Run every (item, repetition); ``item_scorers`` adds per-item scorers (suite tests)."""
        full = {"name": self.name, "task": self.task.describe(), "config": self.config.to_dict(),
                **dict(spec or {})}
        full["scorers"] = [scorer_info(s) for s in self.scorers]
        extra: dict[str, list[Scorer]] = {}
        if item_scorers is not None:
            for it in items:
                own = list(item_scorers(it))
                taken = {s.name for s in self.scorers}
                for s in own:
                    base, n = s.name, 1
                    while s.name in taken:
                        n += 1
                        s.name = f"{base}#{n}"
                    taken.add(s.name)
                extra[it.id] = own
        ex = resolve_executor(self.executor)  # before the record exists: a bad name or no Ray fails cleanly
        self.experiment, done = self.recorder.start(full)
        units: deque[_Unit] = deque()
        for pos, it in enumerate(items):
            for rep in range(self.config.repetitions):
                if (it.id, rep) in done:
                    continue
                units.append(_Unit(pos, it, rep, [*self.scorers, *extra.get(it.id, [])],
                                   (pass_thresholds or {}).get(it.id)))
        total = len(units)
        show = self.progress if self.progress is not None else (total > 0 and os.isatty(2))
        prog = _Progress(total, self.name) if show and total else _NullProgress()
        status = "completed"
        try:
            with prog:
                if ex is None:
                    self._loop(units, prog)
                else:  # units as batches of tasks elsewhere (Ray); recorded here (podium/experiments/executor.py)
                    run_on_executor(self, ex, list(units), prog, outcome=_Outcome, batches=_batches, entry=_entry)
        except KeyboardInterrupt:
            if self._batch:
                pending, self._batch = self._batch, []
                self._flush(pending, _NullProgress(), AimdLimiter(1))
            exp = self.recorder.finish("interrupted")
            raise Interrupted(exp, f"interrupted: {len(self.results)} of {total} items recorded in experiment "
                                   f"{exp.get('id')}; run again with the same experiment id to resume") from None
        except BaseException:
            try:
                self.recorder.finish("failed")
            except Exception:
                logger.warning("could not mark the experiment failed", exc_info=True)
            raise
        finally:
            if ex is not None and not hasattr(self.executor, "map"):  # made from a name here: ours to close
                ex.close()
        exp = self.recorder.finish(status)
        self.results.sort(key=lambda r: (r["position"], r["repetition"]))
        return ExperimentResult(exp, self.results)

    def _loop(self, units: deque[_Unit], prog: Any) -> None:
        cfg = self.config
        lim = AimdLimiter(cfg.max_concurrency, rpm=cfg.rpm, base_backoff=cfg.retry_backoff,
                          max_backoff=cfg.max_backoff)
        retries: list[tuple[float, int, _Unit]] = []
        inflight: dict[int, tuple[_Unit, float]] = {}  # token -> (unit, deadline)
        batch = self._batch
        batch_since = 0.0
        seq = 0
        max_rl = max(8, cfg.max_retries)
        while units or retries or inflight or batch:
            now = time.monotonic()
            while retries and retries[0][0] <= now:
                units.appendleft(heapq.heappop(retries)[2])
            while units and len(inflight) < lim.allowed and lim.ready_in(now) <= 0:
                u = units.popleft()
                self._token += 1
                u.token = self._token
                u.attempts += 1
                u.epoch = lim.started(now)
                deadline = now + cfg.timeout if cfg.timeout else math.inf
                inflight[u.token] = (u, deadline)
                threading.Thread(target=self._execute, args=(u, u.token), daemon=True,
                                 name=f"podium-eval-{u.token}").start()
            waits = [0.25]
            if retries:
                waits.append(retries[0][0] - now)
            if units and len(inflight) < lim.allowed:
                waits.append(lim.ready_in(now))
            if inflight and cfg.timeout:
                waits.append(min(d for _, d in inflight.values()) - now)
            if batch:
                waits.append(batch_since + 1.0 - now)
            got: _Outcome | None = None
            if inflight:
                try:
                    got = self._q.get(timeout=max(0.0, min(waits)))
                except queue.Empty:
                    got = None
            elif not batch:
                time.sleep(max(0.0, min(waits)))
            finished: list[_Outcome] = []
            while got is not None:
                if got.token in inflight:
                    u = inflight.pop(got.token)[0]
                    done = self._settle(got, u, lim, retries, max_rl, seq)
                    seq += 1
                    if done is not None:
                        finished.append(done)
                try:
                    got = self._q.get_nowait()
                except queue.Empty:
                    got = None
            now = time.monotonic()
            for token, (u, deadline) in list(inflight.items()):
                if deadline <= now:
                    del inflight[token]
                    o = _Outcome(u, token, error=TimeoutError(f"the task did not finish within {cfg.timeout:g} s"),
                                 error_type="timeout", latency_ms=cfg.timeout * 1000.0 if cfg.timeout else None)
                    finished.append(o)
            if finished:
                if not batch:
                    batch_since = now
                batch.extend(finished)
            idle = not inflight and not units and not retries
            if batch and (len(batch) >= cfg.score_batch or idle or now - batch_since >= 1.0):
                pending = list(batch)
                batch.clear()
                self._flush(pending, prog, lim)

    def _settle(self, o: _Outcome, u: _Unit, lim: AimdLimiter, retries: list[Any], max_rl: int,
                seq: int) -> _Outcome | None:
        """A unit came back: done (returned), or scheduled for a retry (None)."""
        if o.error is None or o.error_type is not None:
            if o.error is None:
                lim.success()
            return o
        kind, retry_after = classify_error(o.error)
        now = time.monotonic()
        if kind == "rate_limited":
            u.rate_limited += 1
            wait = lim.throttled(now, epoch=u.epoch, retry_after=retry_after)
            if u.rate_limited <= max_rl:
                heapq.heappush(retries, (now + wait, seq, u))
                return None
            o.error_type = "rate_limited"
            return o
        if kind == "transient" and u.attempts - u.rate_limited <= self.config.max_retries:
            backoff = retry_after if retry_after is not None else min(
                self.config.max_backoff, self.config.retry_backoff * 2 ** (u.attempts - u.rate_limited - 1))
            heapq.heappush(retries, (now + backoff * random.uniform(0.8, 1.2), seq, u))
            return None
        o.error_type = getattr(o.error, "code", None) if kind != "transient" else "upstream_error"
        if o.error_type not in analysis.TASK_ERRORS:
            o.error_type = "task_error"
        return o

    def _flush(self, batch: list[_Outcome], prog: Any, lim: AimdLimiter) -> None:
        ok = [o for o in batch if o.error is None]
        batched: list[Scorer] = []
        for o in ok:
            for s in o.unit.scorers:
                if _batches(s) and not any(s is b for b in batched):
                    batched.append(s)
        if batched:
            self._score(batched, ok)
        rows = [self._result(o) for o in batch]
        self.recorder.record(rows)
        self.results.extend(rows)
        for r in rows:
            prog.advance(bool(r["passed"]), r["error"] is not None, lim.allowed)

    def _result(self, o: _Outcome) -> ItemResult:
        u = o.unit
        it = u.item
        to = o.task_output
        error = _error_text(o.error) if o.error is not None else None
        error_type = o.error_type
        passed: bool | None
        if error is None:
            bad = [(n, e) for n, e in o.scores.items() if e.get("error")]
            if bad:
                name, first = bad[0]
                error = f"scorer {name!r}: {first['error']}"
                error_type = first.get("error_type") or "scorer_error"
            weighted = _weighted(o.scores)
            if u.pass_threshold is not None:
                passed = weighted is not None and weighted >= u.pass_threshold and not bad
            else:
                flags = [e.get("passed") for e in o.scores.values()]
                verdicts = [f for f in flags if f is not None]
                passed = False if bad else (all(verdicts) if verdicts else None)
        else:
            weighted = None
            passed = False
        return {
            "item_id": it.id, "repetition": u.repetition, "position": u.index,
            "input": _jsonable(it.input), "expected": _jsonable(it.expected), "context": _jsonable(it.context),
            "metadata": _jsonable(dict(it.metadata)) or None, "labels": _jsonable(dict(it.labels)) or None,
            "output": _jsonable(o.output), "error": error, "error_type": error_type, "trace_id": o.trace_id,
            "latency_ms": o.latency_ms, "cost": to.cost if to else None, "usage": to.usage if to else None,
            "scores": o.scores, "passed": passed, "weighted_score": weighted, "attempts": u.attempts,
        }


# --- results -------------------------------------------------------------------------------------------


class ExperimentResult:
    """What :func:`evaluate` returns: the experiment record (with ``summary``) and the item
    results run in this process."""

    def __init__(self, experiment: Mapping[str, Any], items: Sequence[ItemResult]) -> None:
        self.experiment = dict(experiment)
        self.items: list[ItemResult] = [cast(ItemResult, dict(i)) for i in items]

    @property
    def id(self) -> str:
        return str(self.experiment.get("id"))

    @property
    def name(self) -> str:
        return str(self.experiment.get("name"))

    @property
    def status(self) -> str:
        return str(self.experiment.get("status"))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.experiment.get("summary") or {})

    @property
    def dataset(self) -> str | None:
        n, v = self.experiment.get("dataset_name"), self.experiment.get("dataset_version")
        return f"{n}@{v}" if n else None

    def scores(self, name: str) -> dict[str, Any]:
        """The summary of one scorer (mean, low, high, n, errors, pass_rate, ...)."""
        try:
            return dict(self.summary["scorers"][name])
        except KeyError:
            raise KeyError(f"no scorer {name!r} in this experiment; it has {sorted(self.summary.get('scorers', {}))}")

    @property
    def pass_rate(self) -> float | None:
        return (self.summary.get("pass_rate") or {}).get("mean")

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": _jsonable(self.experiment), "items": _jsonable(self.items)}

    def __repr__(self) -> str:
        s = self.summary
        lines = [f"<ExperimentResult {self.name!r} id={self.id} status={self.status} items={s.get('items')} "
                 f"errors={s.get('errors')}>"]
        pr = s.get("pass_rate") or {}
        if pr.get("mean") is not None:
            lines.append(f"  pass_rate  {pr['mean']:.3f}  [{pr['low']:.3f}, {pr['high']:.3f}]")
        for name, m in (s.get("scorers") or {}).items():
            if m.get("mean") is None:
                lines.append(f"  {name:<10} (no values; {m.get('errors', 0)} errors)")
            else:
                lines.append(f"  {name:<10} {m['mean']:.3f}  [{m['low']:.3f}, {m['high']:.3f}]  n={m['n']}"
                             + (f"  errors={m['errors']}" if m.get("errors") else ""))
        return "\n".join(lines)


# --- evaluate() ----------------------------------------------------------------------------------------


def resolve_dataset(dataset: Any, *, client: Any = None, split: str | None = None) -> Dataset:
    """A :class:`Dataset` from a Dataset, a list of records, a file path, or a server dataset
    (``"name"``, ``"name@3"``; needs ``client``, an :class:`~podium.sdk.evals.EvalClient`)."""
    if isinstance(dataset, Dataset):
        ds = dataset
    elif isinstance(dataset, Path) or (isinstance(dataset, str) and (
            dataset.lower().endswith((".jsonl", ".csv", ".json", ".ndjson")) or os.path.exists(dataset))):
        ds = Dataset(items=tuple(parse_dataset_file(dataset)))
    elif isinstance(dataset, str):
        if client is None:
            raise ConfigurationError(f"dataset {dataset!r} lives on a server: set PODIUM_BASE_URL, PODIUM_PUBLIC_KEY "
                                     "and PODIUM_SECRET_KEY (or pass the items as a list or a file)")
        name, _, version = dataset.partition("@")
        if version and not version.isdigit():
            raise ConfigurationError(f"dataset reference {dataset!r}: use NAME or NAME@VERSION (a number)")
        ds = client.get_dataset(name, version=int(version) if version else None)
    elif isinstance(dataset, Sequence) and not isinstance(dataset, str | bytes):
        ds = Dataset(items=tuple(items_from_records(list(dataset))))
    else:
        raise ConfigurationError(f"cannot use {type(dataset).__name__} as a dataset: give a list of items, a "
                                 "file path, a Dataset or a server dataset name")
    return ds.split(split) if split is not None else ds


def evaluate(
    *,
    dataset: Any,
    task: Any,
    scorers: Sequence[Any] = (),
    name: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    labels: Sequence[str] = (),
    repetitions: int = 1,
    max_concurrency: int = 8,
    rpm: float | None = None,
    max_retries: int = 3,
    timeout: float | None = None,
    split: str | None = None,
    dataset_name: str | None = None,
    experiment_id: str | None = None,
    run_group: str | None = None,
    record: bool | None = None,
    client: Any = None,
    judge_prompts: bool = True,
    progress: bool | None = None,
    executor: Any = None,
) -> ExperimentResult:
    """Run ``task`` over ``dataset``, score every output with ``scorers``, record it all.

    * ``dataset``: a server dataset (``"qa"`` is its latest version, ``"qa@3"`` version 3), a
      ``.jsonl``/``.csv``/``.json`` file, a list of items (``{"input", "expected", ...}``) or a
      :class:`~podium.core.datasets.Dataset`. With ``dataset_name``, local items are first
      synced to that server dataset (a new version when they changed), so the experiment
      records the version it ran on.
    * ``task``: a function of the item's input (or of ``input``/``expected``/``metadata``/
      ``item`` by name; ``async`` works), a :class:`~podium.experiments.tasks.PromptTask` (a prompt +
      model through the gateway) or an :class:`~podium.experiments.tasks.HttpTask`.
    * ``scorers``: functions (``def f(output, expected) -> bool | float | Score``), scorer type
      names (``"exact-match"``), assertion mappings (``{"type": "rouge-l", "threshold": 0.4}``)
      or :class:`~podium.evals.scorers.Scorer` objects.
    * ``record``: send the experiment to the server (default: when the client has keys); else
      it is kept in memory. ``experiment_id`` resumes a recorded experiment (items already stored
      are skipped). ``labels`` tag it (``"main"``: a baseline CI gates compare against).
    * ``client``: the SDK client (a :class:`podium.Podium`) for the server, the traces and the
      prompt registry. ``None`` runs offline: in memory, untraced, local datasets only.
      ``podium.evaluate`` passes the default client (``podium.get_client()``).
    * ``judge_prompts``: judge scorers use the prompt registry's ``podium/judge/...`` prompts when
      they exist (recording runs only), else their built-in templates.
    * ``executor``: ``"local"`` (threads here), ``"ray"`` (Ray tasks; ``PODIUM_RAY_ADDRESS``) or a
      :class:`podium.executor.Executor`; default ``PODIUM_EXECUTOR`` (docs/ray.md).

    Returns an :class:`ExperimentResult` (``print(result)`` shows the summary). Raises
    :class:`Interrupted` on Ctrl-C after recording what finished.
    """
    sdk = client
    has_keys = _has_keys(sdk)
    if record is None:
        record = has_keys
    if record and not has_keys:
        raise ConfigurationError("record=True needs a server: set PODIUM_BASE_URL, PODIUM_PUBLIC_KEY and "
                                 "PODIUM_SECRET_KEY (or pass a configured client=)")
    rest = sdk.evals if has_keys else None
    ds = resolve_dataset(dataset, client=rest, split=split)
    if dataset_name and rest is not None and record:
        info = rest.add_items(dataset_name, [i.to_dict() for i in ds.items], replace=True, create=True,
                              message=f"synced by evaluate() for {name or 'an experiment'}")
        ds = Dataset(items=ds.items, name=dataset_name, version=info["version"])
    cfg = RunConfig(repetitions=repetitions, max_concurrency=max_concurrency, rpm=rpm, max_retries=max_retries,
                    timeout=timeout)
    runner = Runner(task, scorers, config=cfg, recorder=HttpRecorder(rest) if record else MemoryRecorder(),
                    client=sdk, progress=progress, name=name, executor=executor)
    if judge_prompts and rest is not None:
        use_registry_prompts(runner.scorers, sdk.prompts)
    spec = {"id": experiment_id, "dataset_name": ds.name, "dataset_version": ds.version, "run_group": run_group,
            "metadata": {**dict(metadata or {}), **({"description": description} if description else {})},
            "labels": list(labels)}
    try:
        return runner.run(list(ds.items), spec)
    finally:
        if has_keys:
            sdk.flush(timeout=10)
