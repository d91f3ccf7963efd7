"""The server's Prometheus exposition (``GET /metrics``): the gateway's metrics, ingestion,
guardrail decisions (``podium.guardrails.metrics``), and the standard ``process_*``,
``python_info`` and ``python_gc_*`` collectors, in one registry.

Who may scrape (``check_scraper``):

- with ``PODIUM_METRICS_TOKEN`` set, anyone sending ``Authorization: Bearer <token>``;
- without it, only this machine, and only when the server is bound to a loopback address
  (the same test as the UI's local mode: loopback peer, loopback Host, not forwarded by a
  proxy). A server bound to a public address needs the token.

``_created`` series are not exported (``prometheus_client.disable_created_metrics()``,
called when an app is created, not at import).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podium.config import Settings
from podium.errors import Forbidden, Unauthorized
from podium.guardrails import metrics as guardrail_metrics
from podium.monitor.alerting import metrics as alert_metrics
from podium.monitor.canary import metrics as canary_metrics
from podium.monitor.online import metrics as online_eval_metrics
from podium.monitor.queue.factory import make_queue
from podium.monitor.queue.metrics import QueueCollector
from podium.server.auth import loopback_request

__all__ = ["ServerMetrics", "check_scraper", "install_metrics"]

_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _IngestCollector(Collector):
    """Reads the ingest queue's and the ingest routes' counters at scrape time (no work on
    the request path)."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def collect(self) -> Iterator[Any]:
        st = self._state
        ing = st.ingester
        accepted = CounterMetricFamily(
            "podium_ingest_items_accepted", "Items (spans, traces, scores) stored by /api/v1/ingest and OTLP /v1/traces"
        )
        accepted.add_metric([], float(st.accepted))
        yield accepted
        rejected = CounterMetricFamily(
            "podium_ingest_items_rejected",
            "Items refused: invalid (validation, per item), queue_full (429 with Retry-After), write_error "
            "(the database refused or was unavailable)",
            labels=["reason"],
        )
        rejected.add_metric(["invalid"], float(st.rejected))
        rejected.add_metric(["queue_full"], float(getattr(ing, "rejected_busy", 0)))
        rejected.add_metric(["write_error"], float(getattr(ing, "write_errors", 0)))
        yield rejected
        written = CounterMetricFamily("podium_ingest_items_written", "Items the ingest writer committed")
        written.add_metric([], float(getattr(ing, "written", 0)))
        yield written
        depth = GaugeMetricFamily("podium_ingest_queue_items", "Items waiting for the ingest writer")
        depth.add_metric([], float(getattr(ing, "pending", 0)))
        yield depth

    def describe(self) -> Iterator[Any]:
        return iter(())


class ServerMetrics:
    """One registry per app: the gateway's (when it runs here) plus ingestion and process."""

    def __init__(self, state: Any, registry: CollectorRegistry | None = None) -> None:
        gw = state.gateway
        self.registry = registry or (gw.metrics.registry if gw is not None else CollectorRegistry(auto_describe=True))
        r: CollectorRegistry = self.registry
        # podium_queue_* and podium_worker_* (podium.monitor.queue.metrics); the queue is made on the first scrape
        self.queue = QueueCollector(make=lambda: make_queue(state.settings, state.store))
        # A registry shared by two apps (tests inject one GatewayMetrics) gets its collectors once.
        if not getattr(r, "_podium_server_metrics", False):
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
            r.register(_IngestCollector(state))
            guardrail_metrics.register(r)  # per-scanner counters and latencies (podium.guardrails.metrics)
            online_eval_metrics.register(r)  # podium_online_eval_* (podium.monitor.online.metrics)
            alert_metrics.register(r)  # podium_alert_* (podium.monitor.alerting.metrics)
            canary_metrics.register(r)  # podium_canary_* (podium.monitor.canary.metrics)
            r.register(self.queue)
            self.write_seconds = Histogram(
                "podium_ingest_write_duration_seconds", "Time the ingest writer takes per committed transaction",
                buckets=_WRITE_BUCKETS, registry=r,
            )
            r._podium_server_metrics = self.write_seconds  # type: ignore[attr-defined]  # a marker set on the shared registry
        else:
            self.write_seconds = r._podium_server_metrics  # type: ignore[attr-defined]  # set above by the first app
        state.ingester.observe_write = self._observe_write

    def _observe_write(self, items: int, seconds: float) -> None:
        self.write_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def install_metrics(app: Any, state: Any) -> ServerMetrics:
    """Called by ``create_app``: no ``_created`` series, the collectors, the writer's hook."""
    disable_created_metrics()
    m = ServerMetrics(state)
    app.state.metrics = m
    return m


def check_scraper(scope: Any, headers: Any, settings: Settings) -> None:
    """Raise unless this request may read ``/metrics`` (see the module docstring)."""
    token = settings.metrics_token
    if token:
        scheme, _, value = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise Unauthorized(
                "GET /metrics needs `Authorization: Bearer <PODIUM_METRICS_TOKEN>`; in Prometheus, set "
                "`authorization: {credentials: <token>}` in the scrape config"
            )
        return
    if not loopback_request(scope, settings.host):
        raise Forbidden(
            "without PODIUM_METRICS_TOKEN, /metrics answers only this machine on a server bound to a loopback "
            "address; set PODIUM_METRICS_TOKEN and scrape with `Authorization: Bearer <token>`"
        )
