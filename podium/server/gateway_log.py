"""Gateway calls -> the ingest queue, off the request path.

``record`` only appends to a bounded buffer (O(1), no I/O); a task drains it every
``interval`` seconds into store rows (priced like any ingested span) and hands them to
the ingest writer without waiting. The conversion runs in slices of ``slice_items`` with a
yield to the event loop between them, so a large drain never holds requests up for more
than a slice (~2 ms). When the buffer is full (``max_buffer`` items: a bound on the memory
the log can hold while the writer lags) the span is dropped and counted; so is a batch the
ingest queue refuses (``podium_gateway_log_dropped``): the gateway never slows down for its
log. ``podium_gateway_log_buffered`` is the buffer's size at the last drain.
The project's redaction rules are applied by the ingest queue (``Ingester.submit_nowait``:
in its writer thread, before the write), as on every other ingest path (docs/governance.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from podium.core.pricing import PriceTable
from podium.core.records import ScoreIn, SpanIn
from podium.gateway.service import ensure_tokenizer
from podium.server.convert import BatchBuilder
from podium.server.ingest import Ingester

__all__ = ["GatewayLog"]

logger = logging.getLogger("podium.gateway")


class GatewayLog:
    def __init__(self, ingester: Ingester, prices: Callable[[str], PriceTable], *, max_buffer: int = 10_000,
                 interval: float = 0.2, slice_items: int = 64) -> None:
        self._ingester = ingester
        self._prices = prices
        self._max = max_buffer
        self._interval = interval
        self._slice = max(1, slice_items)
        self._buf: list[tuple[str, SpanIn | ScoreIn]] = []
        self._task: asyncio.Task[None] | None = None
        self._counted = False  # the tokenizer is loaded (spans without usage are counted in flush)
        self.dropped = 0
        #: The gateway's :class:`~podium.gateway.metrics.GatewayMetrics` (``log_dropped``, ``log_buffered``), when set.
        self.metrics: Any = None

    def record(self, project_id: str, item: SpanIn | ScoreIn) -> bool:
        """Queue a span (the generation, a guardrail decision) or a score (a guardrail rule's)."""
        if len(self._buf) >= self._max:
            self.dropped += 1
            return False
        self._buf.append((project_id, item))
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.flush()

    def flush(self) -> None:
        """Convert and queue everything buffered now (at shutdown; the loop drains in slices)."""
        if not self._buf:
            return
        items, self._buf = self._buf, []
        builders: dict[str, BatchBuilder] = {}
        self._convert(items, builders)
        self._submit(builders)

    def _builder(self, builders: dict[str, BatchBuilder], pid: str) -> BatchBuilder:
        b = builders.get(pid)
        if b is None:
            b = builders[pid] = BatchBuilder(pid, lambda pid=pid: self._prices(pid))  # type: ignore[misc]
        return b

    def _convert(self, items: list[tuple[str, SpanIn | ScoreIn]], builders: dict[str, BatchBuilder]) -> None:
        for pid, item in items:
            b = builders.get(pid) or self._builder(builders, pid)
            try:
                if isinstance(item, ScoreIn):
                    b.add_score(item)
                else:
                    b.add_span(item)
            except Exception as exc:  # the type only: the span's content never goes to the log
                logger.warning("could not convert a gateway span (%s); it was not logged", type(exc).__name__)
                self._drop(1)

    def _submit(self, builders: dict[str, BatchBuilder]) -> None:
        for b in builders.values():
            if not self._ingester.submit_nowait(b.batch):
                self._drop(len(b.batch.spans))
                logger.warning("ingest queue full: %d gateway spans and %d scores not logged", len(b.batch.spans),
                               len(b.batch.scores))

    def _drop(self, n: int) -> None:
        self.dropped += n
        if self.metrics is not None and n:
            self.metrics.log_dropped.inc(n)

    def _needs_count(self, items: list[tuple[str, SpanIn | ScoreIn]]) -> bool:
        """A span without usage is counted with the tokenizer (BatchBuilder): load it off the loop first."""
        return any(isinstance(it, SpanIn) and it.usage is None and it.model for _pid, it in items)

    async def _drain(self) -> None:
        if self.metrics is not None:
            self.metrics.log_buffered.set(len(self._buf))
        if not self._buf:
            return
        items, self._buf = self._buf, []
        if not self._counted and self._needs_count(items):
            await ensure_tokenizer()
            self._counted = True
        builders: dict[str, BatchBuilder] = {}
        step = self._slice
        for i in range(0, len(items), step):
            if i:
                await asyncio.sleep(0)  # let requests in between slices
            self._convert(items[i:i + step], builders)
        self._submit(builders)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("gateway log flush failed")
