"""Prometheus series of alert rules, served on the server's ``GET /metrics`` and on
``podium worker --metrics-port``::

    podium_alert_evaluations_total{outcome}        rule evaluations: ok, breached, no_data, error
    podium_alert_events_total{status}              history events: fired, resolved, renotified, ...
    podium_alert_deliveries_total{channel,ok}      notifications through channels (ok: true/false)
    podium_alert_delivery_seconds{channel}         one delivery, all its attempts

Per-rule figures are the rule's own state and history (``GET /api/v1/alert-rules``,
``GET /api/v1/alerts``): labels per rule would grow without bound. Without ``prometheus_client``
every function is a no-op.
"""

from __future__ import annotations

from typing import Any

from podium.alerts import Delivery
from podium.core.process_series import ProcessSeries

__all__ = ["observe_deliveries", "observe_evaluation", "observe_event", "register"]

_DELIVERY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = r = CollectorRegistry(auto_describe=True)
        self.evaluations = Counter("podium_alert_evaluations", "Alert rule evaluations by outcome: ok, breached, "
                                   "no_data (too few samples), error (the watched value could not be read)",
                                   ["outcome"], registry=r)
        self.events = Counter("podium_alert_events", "Alert history events recorded, by status", ["status"],
                              registry=r)
        self.deliveries = Counter("podium_alert_deliveries", "Alert notifications through channels, by channel "
                                  "type and whether they were delivered", ["channel", "ok"], registry=r)
        self.latency = Histogram("podium_alert_delivery_seconds", "Time one alert delivery took, all its attempts",
                                 ["channel"], buckets=_DELIVERY, registry=r)


_SERIES: ProcessSeries[_Metrics] = ProcessSeries("alerts", lambda: _Metrics())


def observe_evaluation(breached: bool | None, error: str | None) -> None:
    m = _SERIES.get()
    if m is not None:
        m.evaluations.labels("error" if error else "no_data" if breached is None
                             else "breached" if breached else "ok").inc()


def observe_event(status: str) -> None:
    m = _SERIES.get()
    if m is not None:
        m.events.labels(status).inc()


def observe_deliveries(deliveries: list[Delivery]) -> None:
    m = _SERIES.get()
    if m is None:
        return
    for d in deliveries:
        m.deliveries.labels(d.channel, "true" if d.ok else "false").inc()
        m.latency.labels(d.channel).observe(max(d.latency_ms, 0.0) / 1000)


def register(registry: Any) -> bool:
    """Serve these series from ``registry``, once per registry. False without prometheus_client."""
    return _SERIES.register(registry)
