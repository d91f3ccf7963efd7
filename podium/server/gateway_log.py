"""Gateway calls -> the ingest queue, off the request path, in bounded memory, nothing lost silently.

``record`` only appends to a buffer (O(1), no I/O) and adds the item's estimated size
(:func:`approx_bytes`: Python objects, ~5 KB for a small chat call plus its text) to the bytes the log
*holds*. A task drains the buffer every ``interval`` seconds into store rows (priced like any ingested
span), in slices of ``slice_items`` with a yield to the event loop between them (a large drain never
holds requests up for more than a slice), and hands each batch to the ingest writer with
:meth:`Ingester.submit`, which resolves once the rows are committed. Only then are the batch's bytes
released: the bytes held count the buffer *and* what the writer has not stored yet. New calls are
admitted while they are under ``max_bytes`` (16 MiB by default) and ``max_buffer`` items; a call
admitted always logs, so the log holds at most ``max_bytes`` plus the spans of the calls in flight.

Back-pressure instead of drops: while the log is full, a new gateway call waits (before it takes
any limit or calls the upstream; :meth:`wait_room`, at most ``max_wait`` seconds) until the writer
has stored enough. So when calls arrive faster than the store can log them, the gateway slows to
the writer's pace rather than buffering without end or dropping spans. What can still be lost is
counted in ``podium_gateway_log_dropped_total{reason}`` and said in the server log (one warning per
10 s at most, with the count):

* ``full``: a call found no room after waiting ``max_wait`` seconds (it is served all the same), and
  the log was still full when it ended; after one timed-out wait, later calls do not wait again
  until the writer stores something, so a stuck store does not delay every call by ``max_wait``;
  and, as a safety net, any item past 4 x ``max_bytes`` or 4 x ``max_buffer`` (``record`` says False);
* ``write_error``: the ingest queue refused a batch, or the store failed to write it, for longer
  than ``retry_for`` seconds (each retry after ~0.1-1 s; writes are idempotent), or the database
  refused its rows;
* ``invalid``: an item could not be converted to a store row (a bug; the type of error is logged,
  never the span's content);
* ``shutdown``: the process stopped with items the writer could not take.

``podium_gateway_log_waits_total`` / ``podium_gateway_log_wait_seconds_total`` count the calls that
waited and for how long; ``podium_gateway_log_bytes`` / ``podium_gateway_log_buffered`` are the bytes
held and the items buffered (set at each drain and commit). The project's redaction rules are applied
by the ingest queue (``Ingester.submit``), as on every other ingest path (docs/governance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from podium.core.pricing import PriceTable
from podium.core.records import ScoreIn, SpanIn
from podium.errors import ServiceUnavailable, TooManyRequests
from podium.gateway.service import ensure_tokenizer
from podium.server.convert import BatchBuilder
from podium.server.ingest import Ingester
from podium.store.repos.ingest import IngestBatch

__all__ = ["GatewayLog", "approx_bytes"]

logger = logging.getLogger("podium.gateway")

MiB = 1024 * 1024
#: The Python objects of a small gateway span (the record, its dicts, usage, cost, datetimes), measured
#: with tracemalloc: ~4.9 KB for a one-message chat call; its rows once converted, ~3 KB. The text it
#: carries (messages, answer, metadata) is added by :func:`approx_bytes`.
SPAN_BASE_BYTES = 4096
SCORE_BASE_BYTES = 1024
WARN_EVERY = 10.0  # seconds between two warnings about dropped spans


def _size(v: Any, depth: int = 0) -> int:
    """Rough heap bytes of a JSON-like value: strings by length, containers by entry."""
    t = type(v)
    if t is str:
        return 49 + len(v)
    if t is dict or t is list or t is tuple:
        if depth > 8:
            return 1024
        n = 64 + 40 * len(v)
        for x in (v.values() if t is dict else v):
            n += (49 + len(x)) if type(x) is str else _size(x, depth + 1)
        return n
    if t is bytes:
        return 33 + len(v)
    return 32


def approx_bytes(item: SpanIn | ScoreIn) -> int:
    """The memory a logged item holds until it is stored: a fixed part plus its payload (input,
    output, metadata, attributes). About 1-3 µs for a small call."""
    if isinstance(item, ScoreIn):
        return SCORE_BASE_BYTES + (len(item.comment) if item.comment else 0)
    d = item.__dict__
    n = SPAN_BASE_BYTES
    for k in ("input", "output", "metadata", "attributes"):
        v = d[k]
        if v is not None:
            n += _size(v)
    return n


Item = tuple[str, SpanIn | ScoreIn, int]  # (project id, record, estimated bytes)


class GatewayLog:
    def __init__(self, ingester: Ingester, prices: Callable[[str], PriceTable], *, max_buffer: int = 10_000,
                 max_bytes: int = 16 * MiB, max_wait: float = 2.0, interval: float = 0.2, slice_items: int = 64,
                 retry_for: float = 30.0) -> None:
        self._ingester = ingester
        self._prices = prices
        self._max_items = max(1, max_buffer)
        self._max_bytes = max(1, max_bytes)
        # A safety net only: calls admitted while there was room always log (their spans mostly reference
        # the request and answer objects those calls hold anyway), so the log's memory is about
        # max_bytes plus the spans of the calls in flight; past 4 x the bounds, records are refused.
        self._hard_items = 4 * self._max_items
        self._hard_bytes = 4 * self._max_bytes
        self._max_wait = max_wait
        self._interval = interval
        self._slice = max(1, slice_items)
        self._retry_for = retry_for
        self._buf: list[Item] = []
        self._held = 0  # estimated bytes: the buffer + batches handed to the writer and not yet committed
        self._room: asyncio.Future[None] | None = None  # resolved when the log has room again
        self._stalled = False  # a wait timed out and the writer stored nothing since: do not wait again
        self._task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._counted = False  # the tokenizer is loaded (spans without usage are counted in conversion)
        self._warned_at = 0.0
        self._unwarned = 0
        self.dropped = 0
        self.waits = 0
        self.wait_timeouts = 0
        self.written = 0  # items (spans and scores) the writer committed
        #: The gateway's :class:`~podium.gateway.metrics.GatewayMetrics` (``log_*``), when set.
        self.metrics: Any = None

    # --- the request path ------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        """No room for another call's span: new calls wait (:meth:`wait_room`)."""
        return self._held >= self._max_bytes or len(self._buf) >= self._max_items

    @property
    def held_bytes(self) -> int:
        return self._held

    async def wait_room(self) -> bool:
        """Wait until the log has room (at most ``max_wait`` seconds); False if it still has none.
        Called by the gateway before a call starts, only while :attr:`full`."""
        if not self.full:
            return True
        if self._stalled:  # the last wait timed out and nothing was written since
            return False
        self.waits += 1
        room = self._room
        if room is None or room.done():
            room = self._room = asyncio.get_running_loop().create_future()
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self._max_wait):
                await asyncio.shield(room)
            return True
        except TimeoutError:
            if self.full:
                self.wait_timeouts += 1
                self._stalled = True
                return False
            return True
        finally:
            m = self.metrics
            if m is not None:
                m.log_waits.inc()
                m.log_wait_seconds.inc(time.monotonic() - t0)

    def record(self, project_id: str, item: SpanIn | ScoreIn) -> bool:
        """Queue a span (the generation, a guardrail decision) or a score (a guardrail rule's).
        False (counted as dropped, reason ``full``) only past the safety cap (4 x the bounds)."""
        size = approx_bytes(item)
        if self._held + size > self._hard_bytes or len(self._buf) >= self._hard_items:
            self.drop(1, "full")
            return False
        self._buf.append((project_id, item, size))
        self._held += size
        return True

    def _wake(self) -> None:
        room = self._room
        if room is not None and not self.full:
            self._room = None
            if not room.done():
                room.set_result(None)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self, timeout: float = 10.0) -> None:
        """Hand over what is buffered and wait (up to ``timeout`` s) until the writer has it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a drain in progress hands its items over first
        try:
            await self._drain(final=True)
        except Exception:
            logger.exception("gateway log flush at shutdown failed")
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=timeout)
        for t in list(self._deliveries):  # still retrying: the writer is gone or refuses
            t.cancel()
        self.flush()

    def flush(self) -> None:
        """Convert and queue everything buffered now, without waiting (no event loop needed): what
        the ingest queue refuses is dropped and counted (reason ``shutdown``)."""
        if not self._buf:
            return
        items, self._buf = self._buf, []
        for batch, nbytes in self._convert(items):
            self._held -= nbytes
            if not self._ingester.submit_nowait(batch):
                self.drop(_items(batch), "shutdown")
        self._wake()

    # --- the drain -------------------------------------------------------------------------------
    def _builder(self, builders: dict[str, tuple[BatchBuilder, list[int]]], pid: str) -> tuple[BatchBuilder, list[int]]:
        b = builders.get(pid)
        if b is None:
            b = builders[pid] = (BatchBuilder(pid, lambda pid=pid: self._prices(pid)), [0])  # type: ignore[misc]
        return b

    def _convert_into(self, items: list[Item], builders: dict[str, tuple[BatchBuilder, list[int]]]) -> None:
        for pid, item, size in items:
            b, nbytes = builders.get(pid) or self._builder(builders, pid)
            try:
                if isinstance(item, ScoreIn):
                    b.add_score(item)
                else:
                    b.add_span(item)
                nbytes[0] += size
            except Exception as exc:  # the type only: the span's content never goes to the log
                logger.warning("could not convert a gateway span (%s); it was not logged", type(exc).__name__)
                self._held -= size
                self.drop(1, "invalid")

    def _convert(self, items: list[Item]) -> list[tuple[IngestBatch, int]]:
        builders: dict[str, tuple[BatchBuilder, list[int]]] = {}
        self._convert_into(items, builders)
        return [(b.batch, n[0]) for b, n in builders.values()]

    def _needs_count(self, items: list[Item]) -> bool:
        """A span without usage is counted with the tokenizer (BatchBuilder): load it off the loop first."""
        return any(isinstance(it, SpanIn) and it.usage is None and it.model for _pid, it, _n in items)

    async def _drain(self, final: bool = False) -> None:
        m = self.metrics
        if m is not None:
            m.log_buffered.set(len(self._buf))
            m.log_bytes.set(self._held)
        if not self._buf:
            return
        if not self._counted and self._needs_count(self._buf):
            await ensure_tokenizer()
            self._counted = True
        items, self._buf = self._buf, []
        builders: dict[str, tuple[BatchBuilder, list[int]]] = {}
        step = self._slice
        done = 0
        try:
            for i in range(0, len(items), step):
                if i:
                    await asyncio.sleep(0)  # let requests in between slices
                self._convert_into(items[i:i + step], builders)
                done = i + step
        except asyncio.CancelledError:  # stopping: convert the rest at once, hand everything over
            self._convert_into(items[done:], builders)
            self._hand(builders, final=True)
            raise
        self._hand(builders, final)

    def _hand(self, builders: dict[str, tuple[BatchBuilder, list[int]]], final: bool) -> None:
        for b, n in builders.values():
            if len(b.batch):
                t = asyncio.ensure_future(self._deliver(b.batch, n[0], final))
                self._deliveries.add(t)
                t.add_done_callback(self._deliveries.discard)
            else:
                self._held -= n[0]
        self._wake()  # the item bound is the buffer's: it has room again

    async def _deliver(self, batch: IngestBatch, nbytes: int, final: bool) -> None:
        """Hand ``batch`` to the writer and wait for its commit; retried while the ingest queue is
        busy or the store unavailable (up to ``retry_for`` s). Its bytes are held until then."""
        ing = self._ingester
        n = _items(batch)
        deadline = time.monotonic() + (min(self._retry_for, 5.0) if final else self._retry_for)
        delay = 0.1
        try:
            while True:
                try:
                    # Counted with the ingest requests' bytes in flight (one memory bound for the process,
                    # and the writer gives freed heap back to the OS after a burst).
                    ing.reserve(nbytes)
                    try:
                        refused = await ing.submit(batch)
                    finally:
                        ing.release(nbytes)
                except (TooManyRequests, ServiceUnavailable) as e:
                    if time.monotonic() + delay > deadline:
                        self.drop(n, "write_error")
                        logger.warning("gateway log: %d items not stored after %.0f s of retries (%s)", n,
                                       self._retry_for, type(e).__name__)
                        return
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 2)
                    continue
                if refused:  # the database refused some rows (normally none: the gateway built them)
                    self.drop(len(refused), "write_error")
                self.written += n - len(refused)
                self._stalled = False
                return
        finally:
            self._held -= nbytes
            m = self.metrics
            if m is not None:
                m.log_bytes.set(self._held)
            self._wake()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("gateway log flush failed")

    # --- drops -----------------------------------------------------------------------------------
    def drop(self, n: int, reason: str) -> None:
        """Count ``n`` items not stored (``podium_gateway_log_dropped_total{reason}``) and warn (at most
        every 10 s). The gateway calls it for a call that found no room after its wait and still finds
        the log full when it ends (reason ``full``)."""
        if n <= 0:
            return
        self.dropped += n
        if self.metrics is not None:
            self.metrics.log_dropped.labels(reason).inc(n)
        self._unwarned += n
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            logger.warning("gateway log: %d spans/scores not stored (last reason: %s; %d in all; "
                           "podium_gateway_log_dropped_total)", self._unwarned, reason, self.dropped)
            self._warned_at = now
            self._unwarned = 0


def _items(batch: IngestBatch) -> int:
    """Spans and scores of a batch (trace rows are derived from the spans)."""
    return len(batch.spans) + len(batch.scores)
