"""The ingest queue and its single writer.

Requests validate their items, then ``await Ingester.submit(batch)``: the batch joins a
bounded queue; one writer thread per process drains it, merging waiting batches into
one transaction of up to ``write_batch`` items, and resolves each request's future only
after COMMIT. So an acknowledged item is stored, and on SQLite there is exactly one
writer. When the queue holds ``max_items`` the request gets 429 with Retry-After rather
than a silent drop. If a merged transaction fails, each batch is retried alone so one
bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from podium.errors import ServiceUnavailable, TooManyRequests
from podium.store.repos.ingest import IngestBatch, IngestRepo

__all__ = ["Ingester"]

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    batch: IngestBatch
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[list[Rejected]] | None  # None: fire-and-forget (submit_nowait)
    size: int


#: An item the database refused: (("span", trace_id, id) | ("trace", id) | ("score", id), message).
Rejected = tuple[tuple[str, ...], str]

# Errors that say the database is unavailable (retry later), as opposed to refusing the data.
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, TimeoutError)


class Ingester:
    def __init__(self, repo: IngestRepo, *, max_items: int = 200_000, write_batch: int = 5000) -> None:
        self._repo = repo
        self._max_items = max_items
        self._write_batch = write_batch
        self._queue: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Counters, exposed at /api/v1/health and in logs.
        self.written = 0
        self.rejected_busy = 0
        self.write_errors = 0
        self._rate = 20_000.0  # items/s estimate for Retry-After

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="podium-ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def pending(self) -> int:
        return self._pending

    # --- producer side -----------------------------------------------------------------------
    async def submit(self, batch: IngestBatch) -> list[Rejected]:
        """Queue ``batch`` and return once it is committed, with the items the database refused
        (normally none: validation catches bad data first)."""
        size = len(batch)
        if size == 0:
            return []
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Rejected]] = loop.create_future()
        with self._cond:
            if self._stopping or self._thread is None:
                raise ServiceUnavailable("the server is shutting down; retry against a running server")
            if self._pending + size > self._max_items and self._pending > 0:
                self.rejected_busy += size
                retry = max(1.0, round(self._pending / max(self._rate, 1.0), 1))
                raise TooManyRequests(
                    f"ingestion queue is full ({self._pending} items waiting to be written); "
                    f"retry after {retry:g} s. Nothing from this request was stored.",
                    retry_after=retry,
                )
            self._pending += size
            self._queue.append(_Entry(batch, loop, fut, size))
            self._cond.notify()
        return await fut

    def submit_nowait(self, batch: IngestBatch) -> bool:
        """Queue ``batch`` without waiting for the commit (the gateway's request path).
        False (and nothing queued) when the queue is full or the writer is stopped."""
        size = len(batch)
        if size == 0:
            return True
        with self._cond:
            if self._stopping or self._thread is None or (
                self._pending + size > self._max_items and self._pending > 0
            ):
                self.rejected_busy += size
                return False
            self._pending += size
            self._queue.append(_Entry(batch, None, None, size))
            self._cond.notify()
        return True

    # --- writer thread -----------------------------------------------------------------------
    def _take(self) -> list[_Entry] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait(0.5)
            taken: list[_Entry] = []
            n = 0
            while self._queue and (not taken or n + self._queue[0].size <= self._write_batch):
                e = self._queue.popleft()
                taken.append(e)
                n += e.size
            return taken

    def _run(self) -> None:
        while True:
            entries = self._take()
            if entries is None:
                return
            t0 = time.perf_counter()
            n = sum(e.size for e in entries)
            try:
                if len(entries) == 1:
                    self._repo.write(entries[0].batch)
                else:
                    merged = IngestBatch()
                    for e in entries:
                        merged.spans.extend(e.batch.spans)
                        merged.traces.extend(e.batch.traces)
                        merged.tags.extend(e.batch.tags)
                        merged.scores.extend(e.batch.scores)
                    self._repo.write(merged)
                for e in entries:
                    _resolve(e, [])
                self.written += n
            except Exception as exc:
                if len(entries) == 1:
                    self._retry_alone(entries[0], exc)
                else:
                    for e in entries:  # isolate the bad batch
                        try:
                            self._repo.write(e.batch)
                            _resolve(e, [])
                            self.written += e.size
                        except Exception as exc2:
                            self._retry_alone(e, exc2)
            dt = time.perf_counter() - t0
            if dt > 0:
                self._rate = 0.8 * self._rate + 0.2 * (n / dt)
            with self._cond:
                self._pending -= n
            logger.debug("wrote %d items in %d requests in %.1f ms", n, len(entries), dt * 1000)

    def _retry_alone(self, e: _Entry, exc: Exception) -> None:
        """A batch failed on its own. If the database is unavailable, fail it (503, retry);
        if it refused some data, write item by item so the valid ones are still stored."""
        if isinstance(exc, _UNAVAILABLE):
            self._fail(e, exc)
            return
        rejected: list[Rejected] = []
        for key, unit in _units(e.batch):
            try:
                self._repo.write(unit)
                self.written += len(unit)
            except Exception as exc2:
                if isinstance(exc2, _UNAVAILABLE):
                    self._fail(e, exc2)
                    return
                rejected.append((key, _db_message(exc2)))
        if rejected:
            self.write_errors += len(rejected)
            logger.warning("the database refused %d items (first: %s)", len(rejected), rejected[0][1])
        _resolve(e, rejected)

    def _fail(self, e: _Entry, exc: Exception) -> None:
        self.write_errors += e.size
        logger.warning(
            "could not store %d items: %s", e.size, exc, exc_info=logger.isEnabledFor(logging.DEBUG)
        )
        _resolve(
            e,
            ServiceUnavailable(
                f"the store could not write this batch ({type(exc).__name__}); nothing was acknowledged, "
                "retry it (writes are idempotent)"
            ),
        )


def _units(batch: IngestBatch) -> list[tuple[tuple[str, ...], IngestBatch]]:
    """Split a batch into independently writable items (a span with its trace's hints and tags)."""
    hints: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for h in batch.traces:
        hints.setdefault((h["project_id"], h["id"]), []).append(h)
    tags: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for tg in batch.tags:
        tags.setdefault((tg[0], tg[1]), []).append(tg)
    units: list[tuple[tuple[str, ...], IngestBatch]] = []
    covered: set[tuple[str, str]] = set()
    for sp in batch.spans:
        tk = (sp["project_id"], sp["trace_id"])
        first = tk not in covered
        covered.add(tk)
        units.append((
            ("span", sp["trace_id"], sp["id"]),
            IngestBatch(spans=[sp], traces=hints.get(tk, []) if first else [], tags=tags.get(tk, []) if first else []),
        ))
    for tk, hs in hints.items():
        if tk not in covered:
            units.append((("trace", tk[1]), IngestBatch(traces=hs, tags=tags.get(tk, []))))
    for sc in batch.scores:
        units.append((("score", sc["id"]), IngestBatch(scores=[sc])))
    return units


def _db_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return f"the database refused this item ({type(orig).__name__}: {text[:300]})"


def _resolve(e: _Entry, result: list[Rejected] | Exception) -> None:
    if e.future is None or e.loop is None:  # fire-and-forget
        if isinstance(result, Exception) or result:
            logger.warning("a queued gateway log batch was not fully stored: %s", result)
        return

    def done() -> None:
        assert e.future is not None
        if e.future.done():
            return
        if isinstance(result, Exception):
            e.future.set_exception(result)
        else:
            e.future.set_result(result)

    try:
        e.loop.call_soon_threadsafe(done)
    except RuntimeError:  # loop closed: the client went away
        pass
