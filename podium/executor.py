"""Executors: where the heavy client-side work runs (issue 18 item 2, docs/ray.md).

Experiments, suites, sweeps, red-team runs and online-evaluation backfills split their work
into items (a dataset item × repetition, a probe, a trial, a trace). An :class:`Executor` runs
a function over batches of those items and hands each batch's results back **on the driver**,
in item order, so the caller alone records them (store writes, HTTP calls to the server, the
progress bar never leave the process that started the run)::

    ex = get_executor("ray", address="127.0.0.1:6379")   # or get_executor() for PODIUM_EXECUTOR
    results = ex.map(score_batch, items, on_batch=record)  # score_batch(list) -> list, same length

* :class:`LocalExecutor`: batches on a thread pool in this process (what every entry point did
  before this module; the experiment runner keeps its own AIMD loop for ``local``).
* :class:`RayExecutor`: each batch is one Ray task (``ray.remote(max_retries=...)``) on a
  running cluster (``address``) or on a private local instance bound to 127.0.0.1. The
  function is put in the object store once and shared by every task. A task whose worker or
  node dies is re-run by Ray; results are keyed by the batch's first item index and each key is
  accepted once, so a retried batch is never counted twice.

Layering: this module sits beside :mod:`podium.config` and :mod:`podium.errors`, outside the
layer stack, because the experiments engine, the red-team runner (siblings that may not import
each other), the tune sweep and the online evaluator (a layer lower) all use it. It imports
nothing of Podium's but the settings and the error tree; Ray is imported only when used.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar, runtime_checkable

from podium.errors import ConfigurationError

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "get_executor", "ray_missing"]

logger = logging.getLogger("podium.executor")

T = TypeVar("T")
R = TypeVar("R")
EXECUTORS = ("local", "ray")
RAY_HINT = "pip install 'podium[ray]'"


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn`` over batches of ``items``; see the module docstring."""

    name: str

    def map(self, fn: Callable[[list[T]], list[R]], items: Sequence[T], *, batch_size: int | None = None,
            on_batch: Callable[[int, list[R]], None] | None = None) -> list[R]:
        """``fn(batch)`` for consecutive batches (one result per item, in order); ``on_batch(start,
        results)`` on the calling thread as each batch completes (any order); returns every result
        in item order."""
        ...

    def close(self) -> None: ...


def _check_batch(start: int, batch: Sequence[Any], out: Any) -> list[Any]:
    if not isinstance(out, list) or len(out) != len(batch):
        got = len(out) if isinstance(out, list) else type(out).__name__
        raise ConfigurationError(f"an executor batch function must return a list with one result per item: batch at "
                                 f"{start} has {len(batch)} items, got {got}")
    return out


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    size = max(1, size)
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


class LocalExecutor:
    """Batches on ``max_workers`` threads in this process."""

    name = "local"

    def __init__(self, max_workers: int = 8, *, batch_size: int = 1) -> None:
        if max_workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.batch_size = batch_size

    def map(self, fn: Callable[[list[T]], list[R]], items: Sequence[T], *, batch_size: int | None = None,
            on_batch: Callable[[int, list[R]], None] | None = None) -> list[R]:
        spans = _batches(len(items), batch_size or self.batch_size)
        ends = dict(spans)
        results: dict[int, list[R]] = {}
        with ThreadPoolExecutor(max_workers=min(self.max_workers, max(1, len(spans))),
                                thread_name_prefix="podium-exec") as pool:
            futs: dict[Future[list[R]], int] = {pool.submit(fn, list(items[lo:hi])): lo for lo, hi in spans}
            pending = set(futs)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    lo = futs[f]
                    hi = ends[lo]
                    out = _check_batch(lo, items[lo:hi], f.result())
                    results[lo] = out
                    if on_batch is not None:
                        on_batch(lo, out)
        return [r for lo, _ in spans for r in results[lo]]

    def close(self) -> None:
        pass


def ray_missing() -> str | None:
    """None when Ray can be imported, else the message saying how to install it."""
    try:
        import ray  # noqa: F401
    except ImportError as e:
        return (f"the ray executor needs Ray, which is not installed ({e}): run `{RAY_HINT}` (Ray 2.40 or newer, "
                "the same version on every node of the cluster)")
    return None


def _call_batch(fn: Callable[[list[Any]], list[Any]], batch: list[Any]) -> list[Any]:
    """The body of every Ray task (module level, so Ray pickles it by reference)."""
    return fn(batch)


_INIT_LOCK = threading.Lock()


class RayExecutor:
    """Batches as Ray tasks. ``address``: a running cluster (``"127.0.0.1:6379"``, ``"auto"``,
    ``"ray://..."``); None starts a private local instance (bound to 127.0.0.1, no dashboard) that
    :meth:`close` shuts down. Connecting to a cluster someone else started never shuts it down."""

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 3, batch_size: int | None = None,
                 num_cpus: int | None = None, object_store_memory: int | None = None,
                 runtime_env: dict[str, Any] | None = None, max_in_flight: int | None = None) -> None:
        problem = ray_missing()
        if problem:
            raise ConfigurationError(problem)
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
        self.address = address or None
        self.max_retries = max_retries
        self.batch_size = batch_size or None
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.runtime_env = runtime_env
        self.max_in_flight = max_in_flight
        self._started_here = False

    # --- connection ----------------------------------------------------------------------------
    def _init(self) -> Any:
        import ray

        with _INIT_LOCK:
            if not ray.is_initialized():
                kw: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False,
                                      "logging_level": logging.WARNING}
                if self.runtime_env:
                    kw["runtime_env"] = self.runtime_env
                if self.address:
                    kw["address"] = self.address
                else:
                    # A private instance: nothing listens beyond this machine, no dashboard.
                    kw.update(include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=self.num_cpus,
                              object_store_memory=self.object_store_memory)
                    self._started_here = True
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                try:
                    ray.init(**kw)
                except ConnectionError as e:
                    raise ConfigurationError(
                        f"cannot reach the Ray cluster at {self.address}: {e}. Start one with `ray start --head "
                        "--node-ip-address=127.0.0.1 --port=6379 --include-dashboard=false`, give this process the "
                        "cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token), or fix PODIUM_RAY_ADDRESS (unset it "
                        "to run on a private local Ray instance); docs/ray.md") from e
        return ray

    def cluster_cpus(self) -> int:
        ray = self._init()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    # --- map -------------------------------------------------------------------------------------
    def map(self, fn: Callable[[list[T]], list[R]], items: Sequence[T], *, batch_size: int | None = None,
            on_batch: Callable[[int, list[R]], None] | None = None) -> list[R]:
        if not items:
            return []
        ray = self._init()
        cpus = self.cluster_cpus()
        size = batch_size or self.batch_size or max(16, -(-len(items) // (4 * cpus)))
        spans = _batches(len(items), size)
        remote = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_call_batch)
        fn_ref = ray.put(fn)  # shipped once, shared by every task
        limit = self.max_in_flight or max(2 * cpus, 2)
        todo = list(spans)
        refs: dict[Any, tuple[int, int]] = {}
        results: dict[int, list[R]] = {}
        while todo or refs:
            while todo and len(refs) < limit:
                lo, hi = todo.pop(0)
                refs[remote.remote(fn_ref, list(items[lo:hi]))] = (lo, hi)
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                lo, hi = refs.pop(ref)
                out = _check_batch(lo, items[lo:hi], ray.get(ref))
                if lo in results:  # never: Ray resolves a ref once; kept as the guard the docs promise
                    logger.warning("batch at %d came back twice; the second result is ignored", lo)
                    continue
                results[lo] = out
                if on_batch is not None:
                    on_batch(lo, out)
        return [r for lo, _ in spans for r in results[lo]]

    def close(self) -> None:
        if self._started_here:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            self._started_here = False


def get_executor(name: str | None = None, *, address: str | None = None, max_workers: int = 8,
                 max_retries: int | None = None, batch_size: int | None = None) -> Executor:
    """The executor ``name`` (``local`` or ``ray``; default ``PODIUM_EXECUTOR``). For ``ray``,
    ``address`` defaults to ``PODIUM_RAY_ADDRESS``, retries to ``PODIUM_RAY_MAX_RETRIES`` and the
    batch size to ``PODIUM_RAY_BATCH_SIZE``."""
    from podium.config import Settings

    s = Settings()
    kind = (name or s.executor).strip().lower()
    if kind not in EXECUTORS:
        raise ConfigurationError(f"unknown executor {name!r}: use one of {', '.join(EXECUTORS)}")
    if kind == "local":
        return LocalExecutor(max_workers=max_workers)
    return RayExecutor(address or s.ray_address, max_retries=s.ray_max_retries if max_retries is None else max_retries,
                       batch_size=batch_size or s.ray_batch_size or None)
