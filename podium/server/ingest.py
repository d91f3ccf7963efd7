"""The ingest queue and its single writer.

Requests validate their items, then ``await Ingester.submit(batch)``: the batch joins a
bounded queue; one writer thread per process drains it, merging waiting batches into
one transaction of up to ``write_batch`` items, and resolves each request's future only
after COMMIT. So an acknowledged item is stored, and on SQLite there is exactly one
writer. If a merged transaction fails, each batch is retried alone so one bad request
cannot fail its neighbours.

Overload is answered early, with 429 and Retry-After rather than a silent drop or a
long wait, when any of three bounds is hit (docs/ingestion.md, "Back-pressure"):

- bytes: every ingest request reserves its body size (``reserve``) before the body is
  read, and releases it once its items are written and answered, so the memory held by
  requests in flight is bounded (``max_bytes``); a request that does not fit is refused
  before its body is parsed;
- items: rows waiting for the writer (spans + trace-hint rows + scores, ``max_items``);
- time: the estimated wait (rows waiting / measured write rate, ``max_wait`` seconds),
  so an accepted request is answered well within a client's timeout.

After a burst has drained, the writer hands freed heap back to the OS (glibc
``malloc_trim``; Linux only) so RSS falls back instead of staying at its peak.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from podium.errors import ServiceUnavailable, TooManyRequests
from podium.store.repos.ingest import IngestBatch, IngestRepo, TagRow, TraceRow

if TYPE_CHECKING:
    from podium.config import Settings
    from podium.governance.redaction import Redactor

__all__ = ["IngestRoom", "Ingester", "ingest_room"]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
#: Compressed bodies reserve this many times their wire size (capped at the request limit):
#: what they will hold once inflated is not known before they are read.
COMPRESSED_FACTOR = 8
#: Hand freed heap back to the OS once this many request bytes have been released since the
#: last trim and nothing is in flight.
TRIM_AFTER_BYTES = 16 * MiB
TRIM_DELAY = 0.5  # seconds of quiet (nothing in flight) before the trim
RETRY_AFTER_MAX = 60
#: Tries of one transaction when SQLite reports the database locked (each after busy_timeout).
LOCKED_RETRIES = 5


@dataclass
class _Entry:
    batch: IngestBatch
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[list[Rejected]] | None  # None: fire-and-forget (submit_nowait)
    size: int
    spans: int
    traces: int
    scores: int
    redact: bool = False  # redact in the writer thread first (submit_nowait: no event loop to wait on)


#: An item the database refused: (("span", trace_id, id) | ("trace", id) | ("score", id), message).
Rejected = tuple[tuple[str, ...], str]

# Errors that say the database is unavailable (retry later), as opposed to refusing the data.
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, TimeoutError)


def _load_malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``: return free heap pages (all arenas) to the OS. None where
    there is none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: int(fn(0))


_malloc_trim = _load_malloc_trim()


class Ingester:
    def __init__(
        self,
        repo: IngestRepo,
        *,
        max_items: int = 25_000,
        max_bytes: int = 64 * MiB,
        max_wait: float = 5.0,
        write_batch: int = 5000,
    ) -> None:
        self._repo = repo
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_wait = max_wait
        self._write_batch = write_batch
        self._queue: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # rows waiting for (or in) the writer: spans + trace hints + scores
        self._pending_spans = 0
        self._pending_traces = 0
        self._pending_scores = 0
        self._bytes = 0  # request bytes reserved by requests in flight
        self._released = 0  # bytes released since the last malloc_trim
        self._trim_due = False
        self._trim_at = 0.0
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Counters, exposed at /api/v1/health and in logs.
        self.written = 0
        self.rejected_busy = 0  # rows refused with 429 (after parsing)
        self.rejected_requests = 0  # requests refused with 429 (before or after parsing)
        self.write_errors = 0
        self.lock_retries = 0  # transactions retried because SQLite said "database is locked"
        self.trims = 0
        #: Called by the writer after each transaction with (rows, seconds): podium.server.metrics.
        self.observe_write: Callable[[int, float], None] | None = None
        self._rate = 10_000.0  # rows/s the writer commits when busy (moving average)
        #: Redaction before storage (podium.governance.redaction, docs/governance.md#redaction): every
        #: batch passes through it before it is queued; set by create_app.
        self.redactor: Redactor | None = None

    @classmethod
    def from_settings(cls, repo: IngestRepo, settings: Settings) -> Ingester:
        return cls(
            repo,
            max_items=settings.ingest_queue_max_items,
            max_bytes=settings.ingest_queue_max_bytes,
            max_wait=settings.ingest_queue_max_wait,
            write_batch=settings.ingest_write_batch,
        )

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

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, Any]:
        """What /api/v1/health shows under ``ingest``."""
        with self._cond:
            return {
                "pending": self._pending,
                "pending_spans": self._pending_spans,
                "pending_trace_rows": self._pending_traces,
                "pending_scores": self._pending_scores,
                "queued_bytes": self._bytes,
                "max_items": self._max_items,
                "max_bytes": self._max_bytes,
                "max_wait_s": self._max_wait,
                "write_rate": round(self._rate),
                "estimated_wait_s": round(self._pending / max(self._rate, 1.0), 2),
                "written": self.written,
                "rejected_busy": self.rejected_busy,
                "rejected_requests": self.rejected_requests,
                "write_errors": self.write_errors,
                "lock_retries": self.lock_retries,
                "memory_trims": self.trims,
                **({"redaction": self.redactor.stats()} if self.redactor is not None else {}),
            }

    # --- producer side -----------------------------------------------------------------------
    def reserve(self, nbytes: int) -> None:
        """Admit a request of ``nbytes`` before its body is read, or raise 429 (503 when
        stopping). Pair every successful call with ``release(nbytes)``."""
        with self._cond:
            if self._stopping or self._thread is None:
                raise ServiceUnavailable("the server is shutting down; retry against a running server")
            if self._bytes > 0 and self._bytes + nbytes > self._max_bytes:
                self.rejected_requests += 1
                raise self._busy(
                    f"ingestion is busy ({self._bytes // 1024} KiB of requests in flight, limit "
                    f"{self._max_bytes // 1024} KiB: PODIUM_INGEST_QUEUE_MAX_BYTES)"
                )
            if self._pending >= self._max_items:
                self.rejected_requests += 1
                raise self._busy(f"ingestion queue is full ({self._pending} items waiting to be written)")
            wait = self._pending / max(self._rate, 1.0)
            if self._pending > 0 and wait > self._max_wait:
                self.rejected_requests += 1
                raise self._busy(
                    f"ingestion is behind ({self._pending} items waiting, about {wait:.1f} s of work)"
                )
            self._bytes += nbytes

    def release(self, nbytes: int) -> None:
        with self._cond:
            self._bytes = max(0, self._bytes - nbytes)
            self._released += nbytes
            if self._released >= TRIM_AFTER_BYTES and _malloc_trim is not None:
                self._trim_due = True
                self._released = 0
            if self._trim_due and self._bytes == 0:
                # Trim a little later, once the finished requests' objects are gone too.
                self._trim_at = time.monotonic() + TRIM_DELAY
                self._cond.notify()

    def _busy(self, what: str) -> TooManyRequests:
        """429 with a Retry-After of about the time the writer needs for what is queued."""
        retry = min(RETRY_AFTER_MAX, max(1, math.ceil(self._pending / max(self._rate, 1.0))))
        return TooManyRequests(
            f"{what}; retry after {retry} s. Nothing from this request was stored.", retry_after=retry
        )

    async def submit(self, batch: IngestBatch) -> list[Rejected]:
        """Queue ``batch`` and return once it is committed, with the items the database refused
        (normally none: validation catches bad data first)."""
        size = len(batch)
        if size == 0:
            return []
        redacted: list[Rejected] = []
        if self.redactor is not None and self.redactor.needed(batch):
            # Redaction before storage: CPU work (and a rules query on a cache miss), so a worker
            # thread; what cannot be redacted under fail-closed comes back as rejected items.
            batch, redacted = await asyncio.to_thread(self.redactor.redact_batch, batch)
            size = len(batch)
            if size == 0:
                return redacted
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Rejected]] = loop.create_future()
        with self._cond:
            if self._stopping or self._thread is None:
                raise ServiceUnavailable("the server is shutting down; retry against a running server")
            if self._pending > 0 and (
                self._pending + size > self._max_items
                or (self._pending + size) / max(self._rate, 1.0) > self._max_wait
            ):
                self.rejected_busy += size
                self.rejected_requests += 1
                raise self._busy(f"ingestion queue is full ({self._pending} items waiting to be written)")
            self._enqueue(_entry(batch, loop, fut))
        refused = await fut
        return redacted + refused if redacted else refused

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
            e = _entry(batch, None, None)
            e.redact = self.redactor is not None and self.redactor.needed(batch)
            self._enqueue(e)
        return True

    def _enqueue(self, e: _Entry) -> None:  # holding self._cond
        self._pending += e.size
        self._pending_spans += e.spans
        self._pending_traces += e.traces
        self._pending_scores += e.scores
        self._queue.append(e)
        self._cond.notify()

    # --- writer thread -----------------------------------------------------------------------
    def _take(self) -> list[_Entry] | None:
        """The next entries to write; [] when idle and memory should be trimmed; None to stop."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                wait = 0.5
                if self._trim_due and self._bytes == 0:
                    wait = self._trim_at - time.monotonic()
                    if wait <= 0:
                        self._trim_due = False
                        return []
                self._cond.wait(min(wait, 0.5))
            taken: list[_Entry] = []
            n = 0
            while self._queue and (not taken or n + self._queue[0].size <= self._write_batch):
                e = self._queue.popleft()
                taken.append(e)
                n += e.size
            return taken

    def _trim(self) -> None:
        if _malloc_trim is None:
            return
        t0 = time.perf_counter()
        _malloc_trim()
        self.trims += 1
        logger.debug("malloc_trim after a burst took %.1f ms", (time.perf_counter() - t0) * 1000)

    def _run(self) -> None:
        while True:
            entries = self._take()
            if entries is None:
                return
            if not entries:
                self._trim()
                continue
            t0 = time.perf_counter()
            n = sum(e.size for e in entries)
            dropped = sum(self._redact_queued(e) for e in entries if e.redact)
            busy = n >= 200 or bool(self._queue)  # a backlog: the rate measured is the writer's capacity
            try:
                if len(entries) == 1:
                    self._write(entries[0].batch)
                else:
                    merged = IngestBatch()
                    for e in entries:
                        merged.spans.extend(e.batch.spans)
                        merged.traces.extend(e.batch.traces)
                        merged.tags.extend(e.batch.tags)
                        merged.scores.extend(e.batch.scores)
                    self._write(merged)
                for e in entries:
                    _resolve(e, [])
                self.written += n - dropped
            except Exception as exc:
                if len(entries) == 1:
                    self._retry_alone(entries[0], exc)
                else:
                    for e in entries:  # isolate the bad batch
                        try:
                            self._write(e.batch)
                            _resolve(e, [])
                            self.written += e.size
                        except Exception as exc2:
                            self._retry_alone(e, exc2)
            dt = time.perf_counter() - t0
            if self.observe_write is not None:
                try:  # metrics must never stop the writer
                    self.observe_write(n, dt)
                except Exception:
                    logger.warning("the ingest write observer failed", exc_info=True)
            if dt > 0 and busy:
                self._rate = 0.8 * self._rate + 0.2 * (n / dt)
            with self._cond:
                self._pending -= n
                self._pending_spans -= sum(e.spans for e in entries)
                self._pending_traces -= sum(e.traces for e in entries)
                self._pending_scores -= sum(e.scores for e in entries)
            logger.debug("wrote %d items in %d requests in %.1f ms", n, len(entries), dt * 1000)

    def _write(self, batch: IngestBatch) -> None:
        """One transaction; retried when SQLite says the database is locked (another process
        held the write lock past ``busy_timeout``), so that never reaches a client as a 503."""
        for attempt in range(LOCKED_RETRIES):
            try:
                self._repo.write(batch)
                return
            except OperationalError as exc:
                if attempt == LOCKED_RETRIES - 1 or not _is_locked(exc):
                    raise
                self.lock_retries += 1
                logger.info("the database was locked; retrying the write (attempt %d)", attempt + 2)
                time.sleep(min(1.0, 0.05 * (attempt + 1)))

    def _redact_queued(self, e: _Entry) -> int:
        """Redact a fire-and-forget batch (the gateway's log, guard scans) in the writer thread;
        the number of items it rejected (fail-closed), which are dropped with a warning."""
        e.redact = False
        assert self.redactor is not None
        try:
            batch, refused = self.redactor.redact_batch(e.batch)
        except Exception as exc:  # never store what could not be redacted
            logger.warning("redaction failed on a queued gateway log batch (%s); its %d items were not stored",
                           type(exc).__name__, e.size)
            batch, refused = IngestBatch(), [(("batch",), type(exc).__name__)]
        if refused:
            logger.warning("redaction rejected %d queued gateway log items (fail-closed)", len(refused))
        e.batch = batch
        return e.size - len(batch)

    def _retry_alone(self, e: _Entry, exc: Exception) -> None:
        """A batch failed on its own. If the database is unavailable, fail it (503, retry);
        if it refused some data, write item by item so the valid ones are still stored."""
        if isinstance(exc, _UNAVAILABLE):
            self._fail(e, exc)
            return
        rejected: list[Rejected] = []
        for key, unit in _units(e.batch):
            try:
                self._write(unit)
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
        # Only the error's type and first line: SQLAlchemy's text carries the statement's parameters
        # (the items' values), which never go to the log.
        logger.warning("could not store %d items: %s", e.size, _brief(exc))
        _resolve(
            e,
            ServiceUnavailable(
                f"the store could not write this batch ({type(exc).__name__}); nothing was acknowledged, "
                "retry it (writes are idempotent)"
            ),
        )


def _entry(
    batch: IngestBatch, loop: asyncio.AbstractEventLoop | None, fut: asyncio.Future[list[Rejected]] | None
) -> _Entry:
    spans, traces, scores = len(batch.spans), len(batch.traces), len(batch.scores)
    return _Entry(batch, loop, fut, spans + traces + scores, spans, traces, scores)


def _units(batch: IngestBatch) -> list[tuple[tuple[str, ...], IngestBatch]]:
    """Split a batch into independently writable items (a span with its trace's hints and tags)."""
    hints: dict[tuple[str, str], list[TraceRow]] = {}
    for h in batch.traces:
        hints.setdefault((h["project_id"], h["id"]), []).append(h)
    tags: dict[tuple[str, str], list[TagRow]] = {}
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


def _is_locked(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return "database is locked" in text or "database table is locked" in text or "database is busy" in text


def _brief(exc: Exception) -> str:
    """``Type: first line`` of a database error, without the statement and its parameters."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0][:300] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


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


# --- request admission (a FastAPI dependency of the ingest routes) -------------------------------


def request_bytes(request: Request, limit: int) -> int:
    """The bytes an ingest request is counted for while in flight: its Content-Length,
    ``COMPRESSED_FACTOR`` times that when compressed, or the request limit when unknown
    (chunked); never more than the limit."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return limit
    n = int(declared)
    if (request.headers.get("content-encoding") or "identity").strip().lower() not in ("", "identity"):
        n *= COMPRESSED_FACTOR
    return min(n, limit)


async def _discard_body(request: Request, limit: int, seconds: float = 1.0) -> None:
    """Read and drop a refused request's body (bounded), so the client reads the 429 instead
    of a connection reset while it is still sending."""

    async def drain() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return

    try:
        await asyncio.wait_for(drain(), seconds)
    except Exception:  # timeout or a client gone: the error response is all that is left
        pass


async def ingest_room(request: Request) -> AsyncIterator[None]:
    """Reserve the request's bytes before its body is read; 429 (body discarded unread)
    when ingestion is over a bound; released after the response's items are written."""
    st = request.app.state.podium
    limit: int = st.settings.max_request_bytes
    nbytes = request_bytes(request, limit)
    ingester: Ingester = st.ingester
    try:
        ingester.reserve(nbytes)
    except TooManyRequests:
        await _discard_body(request, limit)
        raise
    try:
        yield
    finally:
        ingester.release(nbytes)


#: Add ``_room: IngestRoom`` to an ingest route's parameters (after the auth dependency).
IngestRoom = Annotated[None, Depends(ingest_room)]
