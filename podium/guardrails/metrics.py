"""Prometheus metrics of guardrail decisions, served on the server's ``GET /metrics``.

``observe(decision)`` is the :class:`~podium.guardrails.engine.Guard` observer the gateway and
``POST /api/v1/guard/scan`` pass; it counts::

    podium_guardrail_decisions_total{policy,kind,action}          one per scanned text
    podium_guardrail_scanner_total{scanner,kind,verdict,action}   one per rule that ran
    podium_guardrail_scanner_latency_seconds{scanner,kind}        histogram, 0.1 ms .. 1 s
    podium_guardrail_errors_total{scanner,kind,kind_of_error}     timeout, or the exception's type

The series live in one registry per process (decisions are a process's, whichever app made
them); :func:`register` adds them to an app's registry (``podium.server.metrics`` does). Without
``prometheus_client`` (the ``server`` extra) everything here is a no-op, and nothing is
imported or created until the first call. Label values a caller can choose (policy names,
exception types) are capped at :data:`MAX_VALUES` distinct values each; later ones count as
``other``, so an inline policy per request cannot grow the exposition without bound.
"""

from __future__ import annotations

import threading
from typing import Any

from podium.core.process_series import ProcessSeries
from podium.guardrails.engine import Decision

__all__ = ["LATENCY_BUCKETS", "MAX_VALUES", "observe", "register"]

#: Scanner latency buckets in seconds: 0.1 ms (a regex) to 1 s (a model past its budget).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Distinct values kept per free-form label (policy, kind_of_error) before ``other``.
MAX_VALUES = 100

_LOCK = threading.Lock()  # the capped label values


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "podium_guardrail_decisions", "Guardrail decisions by policy, kind (input/output) and action "
            "(allow, warn, flag, redact, block)", ["policy", "kind", "action"], registry=r)
        self.scanner = Counter(
            "podium_guardrail_scanner", "Guardrail rules run, by scanner, kind, verdict (pass, fail, error, "
            "timeout) and the action taken (none when it passed)", ["scanner", "kind", "verdict", "action"],
            registry=r)
        self.latency = Histogram(
            "podium_guardrail_scanner_latency_seconds", "Time one scanner took on one text, by scanner and kind",
            ["scanner", "kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter(
            "podium_guardrail_errors", "Scanners that raised or ran past their time budget, by scanner, kind "
            "and kind_of_error (timeout, or the exception's type); each failed open or closed per its policy",
            ["scanner", "kind", "kind_of_error"], registry=r)
        self._seen: dict[str, set[str]] = {}

    def capped(self, label: str, value: str) -> str:
        seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) >= MAX_VALUES:
            return "other"
        seen.add(value)
        return value


_SERIES: ProcessSeries[_Metrics] = ProcessSeries("guardrail", lambda: _Metrics())
_metrics = _SERIES.get


def _error_kind(verdict: str, error: str | None) -> str:
    if verdict == "timeout":
        return "timeout"
    name = (error or "").split(":", 1)[0].strip()
    return name[:64] if name.isidentifier() else "error"


def observe(decision: Decision) -> None:
    """Count one decision (a no-op without prometheus_client)."""
    m = _metrics()
    if m is None:
        return
    kind = decision.kind
    with _LOCK:
        policy = m.capped("policy", decision.policy)
        errors = [(o.scanner, m.capped("kind_of_error", _error_kind(o.verdict, o.error)))
                  for o in decision.outcomes if o.verdict in ("error", "timeout")]
    m.decisions.labels(policy, kind, decision.action).inc()
    for o in decision.outcomes:
        m.scanner.labels(o.scanner, kind, o.verdict, o.action).inc()
        m.latency.labels(o.scanner, kind).observe(max(o.latency_ms, 0.0) / 1000)
    for scanner, what in errors:
        m.errors.labels(scanner, kind, what).inc()


def register(registry: Any) -> bool:
    """Serve the guardrail series from ``registry`` (a ``CollectorRegistry``), once per registry.
    False when prometheus_client is missing."""
    return _SERIES.register(registry)
