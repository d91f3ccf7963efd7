"""Gateway calls -> the ingest queue, off the request path.

``record`` only appends to a bounded buffer (O(1), no I/O); a task drains it every
``interval`` seconds into store rows (priced like any ingested span) and hands them to
the ingest writer without waiting. When the buffer is full the span is dropped and
counted (``podium_gateway_log_dropped``): the gateway never slows down for its log.
The project's redaction rules are applied by the ingest queue (``Ingester.submit_nowait``:
in its writer thread, before the write), as on every other ingest path (docs/governance.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from podium.core.pricing import PriceTable
from podium.core.records import ScoreIn, SpanIn
from podium.server.convert import BatchBuilder
from podium.server.ingest import Ingester

__all__ = ["GatewayLog"]

logger = logging.getLogger("podium.gateway")


class GatewayLog:
    def __init__(self, ingester: Ingester, prices: Callable[[str], PriceTable], *, max_buffer: int = 50_000,
                 interval: float = 0.2) -> None:
        self._ingester = ingester
        self._prices = prices
        self._max = max_buffer
        self._interval = interval
        self._buf: list[tuple[str, SpanIn | ScoreIn]] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

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
        if not self._buf:
            return
        items, self._buf = self._buf, []
        builders: dict[str, BatchBuilder] = {}
        for pid, item in items:
            b = builders.get(pid)
            if b is None:
                b = builders[pid] = BatchBuilder(pid, lambda pid=pid: self._prices(pid))  # type: ignore[misc]
            try:
                if isinstance(item, ScoreIn):
                    b.add_score(item)
                else:
                    b.add_span(item)
            except Exception as exc:  # the type only: the span's content never goes to the log
                logger.warning("could not convert a gateway span (%s); it was not logged", type(exc).__name__)
                self.dropped += 1
        for b in builders.values():
            if not self._ingester.submit_nowait(b.batch):
                self.dropped += len(b.batch.spans)
                logger.warning("ingest queue full: %d gateway spans and %d scores not logged", len(b.batch.spans),
                               len(b.batch.scores))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.flush()
            except Exception:
                logger.exception("gateway log flush failed")
