"""One bounded, thread-safe TTL cache, for the values a hot path reads and the database owns
(API keys, project limits, gateway aliases, price tables).

* ``get_or_load(key, loader)`` (async) runs a synchronous ``loader`` in a worker thread, so
  an event loop never blocks on SQL, and coalesces concurrent loads of the same key into one.
* ``load(key, loader)`` is the same for synchronous callers (already off the event loop).
* A loader that returns ``None`` is a miss; with ``negative_ttl > 0`` the miss is kept that
  long (e.g. an invalid API key: a flood of them costs one query per key per ``negative_ttl``).
* At most ``max_entries`` entries; the oldest-inserted entry is evicted first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["MISSING", "TTLCache"]

V = TypeVar("V")
_MISS = object()


class TTLCache(Generic[V]):
    def __init__(self, ttl: float, *, negative_ttl: float = 0.0, max_entries: int = 10_000) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, tuple[V | None, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, asyncio.Future[V | None]] = {}
        self._generation = 0  # bumped by invalidate/clear: a load that started before does not store

    def __len__(self) -> int:
        return len(self._data)

    def peek(self, key: Hashable) -> object:
        """The fresh cached value (``None`` for a cached miss), or :data:`MISSING` when absent/expired."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return _MISS
            if hit[1] <= time.monotonic():
                del self._data[key]
                return _MISS
            return hit[0]

    def get(self, key: Hashable) -> V | None:
        v = self.peek(key)
        return None if v is _MISS else v  # type: ignore[return-value]

    def put(self, key: Hashable, value: V | None, generation: int | None = None) -> None:
        ttl = self.ttl if value is not None else self.negative_ttl
        with self._lock:
            if generation is not None and generation != self._generation:
                return  # invalidated while loading: the value may be stale
            if ttl <= 0:
                self._data.pop(key, None)
                return
            self._data.pop(key, None)
            self._data[key] = (value, time.monotonic() + ttl)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def invalidate(self, key: Hashable) -> None:
        with self._lock:
            self._data.pop(key, None)
            self._generation += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._generation += 1

    def load(self, key: Hashable, loader: Callable[[], V | None]) -> V | None:
        """Synchronous read-through (for code already off the event loop)."""
        v = self.peek(key)
        if v is not _MISS:
            return v  # type: ignore[return-value]
        gen = self._generation
        value = loader()
        self.put(key, value, gen)
        return value

    async def get_or_load(self, key: Hashable, loader: Callable[[], V | None]) -> V | None:
        """Read-through without blocking the event loop: a miss runs ``loader`` in a thread;
        concurrent misses of one key wait for the same load."""
        v = self.peek(key)
        if v is not _MISS:
            return v  # type: ignore[return-value]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        gen = self._generation
        try:
            value = await asyncio.to_thread(loader)
        except BaseException as e:
            if not fut.done():
                if isinstance(e, Exception):
                    fut.set_exception(e)
                    fut.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                else:
                    fut.cancel()
            raise
        else:
            self.put(key, value, gen)
            fut.set_result(value)
            return value
        finally:
            if self._loading.get(key) is fut:
                del self._loading[key]


MISSING = _MISS
