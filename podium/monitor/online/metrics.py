"""Prometheus series of online evaluation, served on the server's ``GET /metrics``::

    podium_online_eval_enqueued_total                 traces (or backfill items) queued by rules
    podium_online_eval_evaluated_total                traces (spans) evaluated
    podium_online_eval_failures_total{kind}           scorer failures (scorer, guardrail, judge)
    podium_online_eval_scorer_latency_seconds{kind}   one scorer over one batch
    podium_online_eval_lag_seconds                    trace update -> its scores written
    podium_online_eval_judge_calls_total              judge calls through the gateway
    podium_online_eval_judge_cost_usd_total           their cost (the gateway's price of their usage)

One registry per process (like ``podium.guardrails.metrics``); :func:`register` forwards it
into an app's registry. Without ``prometheus_client`` every function is a no-op. Per-rule
figures are in ``GET /api/v1/evaluation-rules/{id}/stats`` (labels per rule would grow without
bound).
"""

from __future__ import annotations

from typing import Any

from podium.core.process_series import ProcessSeries

__all__ = ["observe_batch", "observe_enqueued", "register"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LAG = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = r = CollectorRegistry(auto_describe=True)
        self.enqueued = Counter("podium_online_eval_enqueued", "Traces queued for online evaluation by rules "
                                "(new ones: a trace already queued is not counted twice)", registry=r)
        self.evaluated = Counter("podium_online_eval_evaluated", "Traces (or spans) evaluated by online rules",
                                 registry=r)
        self.failures = Counter("podium_online_eval_failures", "Online scorer failures on one trace (the trace's "
                                "other scores are kept), by kind: scorer, guardrail, judge", ["kind"], registry=r)
        self.latency = Histogram("podium_online_eval_scorer_latency_seconds", "Time one scorer took over one "
                                 "batch of traces, by kind", ["kind"], buckets=_LATENCY, registry=r)
        self.lag = Histogram("podium_online_eval_lag_seconds", "From a trace's last update to its online scores "
                             "being written", buckets=_LAG, registry=r)
        self.judge_calls = Counter("podium_online_eval_judge_calls", "Online judge calls through the gateway",
                                   registry=r)
        self.judge_cost = Counter("podium_online_eval_judge_cost_usd", "Cost of online judge calls (USD, the "
                                  "gateway's price of their usage)", registry=r)


_SERIES: ProcessSeries[_Metrics] = ProcessSeries("online_eval", lambda: _Metrics())
_metrics = _SERIES.get


def observe_enqueued(n: int) -> None:
    m = _metrics()
    if m is not None and n:
        m.enqueued.inc(n)


def observe_batch(*, evaluated: int, failures: dict[str, int], latency: list[tuple[str, float]],
                  lags: list[float], judge_calls: int, judge_cost: float) -> None:
    m = _metrics()
    if m is None:
        return
    if evaluated:
        m.evaluated.inc(evaluated)
    for kind, n in failures.items():
        if n:
            m.failures.labels(kind).inc(n)
    for kind, s in latency:
        m.latency.labels(kind).observe(s)
    for lag in lags:
        m.lag.observe(max(lag, 0.0))
    if judge_calls:
        m.judge_calls.inc(judge_calls)
    if judge_cost:
        m.judge_cost.inc(judge_cost)


def register(registry: Any) -> bool:
    """Serve these series from ``registry``, once per registry. False without prometheus_client."""
    return _SERIES.register(registry)
