"""Prometheus series of canary deployments, served on the server's ``GET /metrics`` and on
``podium worker --metrics-port``::

    podium_canary_checks_total{verdict}       gate checks: pass, wait, breach
    podium_canary_transitions_total{action}   step, promote, rollback, pause, resume, abort
    podium_canary_active                      canaries running or paused (as of the last check round)

Per-canary figures are the canary's own state and audit trail (``GET /api/v1/canaries/{id}``):
labels per canary would grow without bound. Without ``prometheus_client`` every function is a
no-op.
"""

from __future__ import annotations

from typing import Any

from podium.core.process_series import ProcessSeries

__all__ = ["observe_check", "observe_transition", "register", "set_active"]


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = r = CollectorRegistry(auto_describe=True)
        self.checks = Counter("podium_canary_checks", "Canary gate checks by verdict: pass, wait (too few "
                              "candidate requests or the step's time not up), breach", ["verdict"], registry=r)
        self.transitions = Counter("podium_canary_transitions", "Canary changes by action: step, promote, rollback "
                                   "(automatic or by hand), pause, resume, abort", ["action"], registry=r)
        self.active = Gauge("podium_canary_active", "Canaries running or paused, as of the last check round",
                            registry=r)


_SERIES: ProcessSeries[_Metrics] = ProcessSeries("canary", lambda: _Metrics())


def observe_check(verdict: str) -> None:
    m = _SERIES.get()
    if m is not None:
        m.checks.labels(verdict).inc()


def observe_transition(action: str) -> None:
    m = _SERIES.get()
    if m is not None:
        m.transitions.labels(action).inc()


def set_active(n: int) -> None:
    m = _SERIES.get()
    if m is not None:
        m.active.set(n)


def register(registry: Any) -> bool:
    """Serve these series from ``registry``, once per registry. False without prometheus_client."""
    return _SERIES.register(registry)
