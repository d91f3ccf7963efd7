"""ProcessSeries: built once on first use, forwarded into each registry once, a no-op without
prometheus_client."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

from podium.core.process_series import ProcessSeries


class _Series:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.hits = Counter("podium_test_hits", "hits", registry=self.registry)


def test_built_once_and_served_from_every_registry_once() -> None:
    built: list[_Series] = []

    def build() -> _Series:
        built.append(_Series())
        return built[-1]

    series = ProcessSeries("test", build)
    assert series.get() is series.get() and len(built) == 1
    a, b = CollectorRegistry(), CollectorRegistry()
    assert series.register(a) and series.register(a) and series.register(b)  # twice into a: one collector
    m = series.get()
    assert m is not None
    m.hits.inc(3)
    for reg in (a, b):
        text = generate_latest(reg).decode()
        assert text.count("podium_test_hits_total 3.0") == 1, text


def test_without_prometheus_client_it_is_a_no_op() -> None:
    def build() -> Any:
        raise ImportError("No module named 'prometheus_client'")

    series: ProcessSeries[Any] = ProcessSeries("missing", build)
    assert series.get() is None and series.get() is None
    assert series.register(CollectorRegistry()) is False
