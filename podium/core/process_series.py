"""Process-wide Prometheus series: built on first use, served from any app's registry.

Some counters belong to the process, not to one app: guardrail decisions and online
evaluation happen wherever the code runs, whichever app (or worker) made them. Each such family
of series is a :class:`ProcessSeries`: ``build()`` creates them in their own
``CollectorRegistry`` on the first ``get()``; ``register(app_registry)`` forwards them into an
app's registry, once per registry. Without ``prometheus_client`` (the ``server`` extra) ``build``
raises ImportError, ``get()`` returns None and callers skip counting: the helper itself imports
nothing but the standard library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["ProcessSeries"]


class _HasRegistry(Protocol):
    registry: Any  # a prometheus_client CollectorRegistry holding the series


M = TypeVar("M", bound=_HasRegistry)


class ProcessSeries(Generic[M]):
    def __init__(self, name: str, build: Callable[[], M]) -> None:
        self.name = name
        self._build = build
        self._lock = threading.Lock()
        self._state: M | None = None
        self._missing = False  # prometheus_client is not installed

    def get(self) -> M | None:
        """The series, built on the first call; None without prometheus_client."""
        if self._state is not None or self._missing:
            return self._state
        with self._lock:
            if self._state is None and not self._missing:
                try:
                    self._state = self._build()
                except ImportError:
                    self._missing = True
        return self._state

    def register(self, registry: Any) -> bool:
        """Serve the series from ``registry`` too (once per registry). False without prometheus_client."""
        if self.get() is None:
            return False
        flag = f"_podium_{self.name}_series"
        with self._lock:
            if getattr(registry, flag, False):
                return True
            registry.register(_Forward(self))
            setattr(registry, flag, True)
        return True


class _Forward:
    """A collector that yields a :class:`ProcessSeries` into another registry."""

    def __init__(self, series: ProcessSeries[Any]) -> None:
        self._series = series

    def collect(self) -> Iterator[Any]:
        m = self._series.get()
        if m is not None:
            yield from m.registry.collect()

    def describe(self) -> Iterator[Any]:
        return iter(())
