"""Prometheus metrics of the gateway (one registry per app, served at ``GET /metrics``).

Requests and errors carry the HTTP status the caller saw; errors also carry a ``reason``
(the error code: ``validation_error``, ``unauthorized``, ``not_found``, ``rate_limited``...),
including requests refused before any model was resolved (``model=""``). Metrics are never
labelled by API key unless ``key_labels`` (``PODIUM_METRICS_KEY_LABELS``) is on: the
exposition would otherwise name every key, and grow with them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from podium.errors import PodiumError
from podium.gateway import wire

__all__ = ["LOG_DROP_REASONS", "GatewayMetrics"]

#: Why the span log did not store an item (``podium_gateway_log_dropped_total{reason}``; podium.server.gateway_log).
LOG_DROP_REASONS = ("full", "write_error", "invalid", "shutdown")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, *, key_labels: bool = False) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.key_labels = key_labels
        r = self.registry
        by_key = ["key"] if key_labels else []
        self.requests = Counter(
            "podium_gateway_requests", "Gateway requests by model alias, deployment, HTTP status (ok: 200)"
            + (" and key" if key_labels else ""),
            ["model", "deployment", *by_key, "status"], registry=r,
        )
        self.errors = Counter(
            "podium_gateway_errors", "Gateway errors by model alias, HTTP status and reason (the error code)",
            ["model", "status", "reason"], registry=r,
        )
        self.latency = Histogram(
            "podium_gateway_request_duration_seconds", "Time from request to last byte, by model alias",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.ttft = Histogram(
            "podium_gateway_time_to_first_token_seconds", "Streaming: time to the first chunk, by model alias",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "podium_gateway_tokens", "Tokens by model alias and direction (input/output)", ["model", "kind"],
            registry=r,
        )
        self.spend = Counter(
            "podium_gateway_spend_usd", "Spend in USD by model alias" + (" and key" if key_labels else ""),
            ["model", *by_key], registry=r,
        )
        self.cache = Counter(
            "podium_gateway_cache", "Response cache lookups by model alias and result (hit/miss)",
            ["model", "result"], registry=r,
        )
        self.rejections = Counter(
            "podium_gateway_limit_rejections", "Requests refused by a rate limit or budget", ["scope"], registry=r
        )
        self.retries = Counter(
            "podium_gateway_retries", "Extra upstream attempts (retries and fallbacks) by deployment",
            ["deployment"], registry=r,
        )
        self.fallbacks = Counter(
            "podium_gateway_fallbacks", "Requests answered by a fallback alias", ["model"], registry=r
        )
        self.guardrails = Counter(
            "podium_gateway_guardrail_decisions",
            "Guardrail decisions by model alias, kind (input/output) and action (allow, warn, flag, redact, block)",
            ["model", "kind", "action"], registry=r,
        )
        self.in_flight = Gauge("podium_gateway_in_flight", "Gateway requests being served", registry=r)
        self.log_dropped = Counter(
            "podium_gateway_log_dropped", "Gateway spans and scores not stored, by reason: full (the log was still "
            "full after the wait), write_error (the ingest queue or the store refused them past the retries), "
            "invalid (not convertible), shutdown", ["reason"], registry=r,
        )
        for reason in LOG_DROP_REASONS:  # every series exported from the start (at 0), for alerts on rate()
            self.log_dropped.labels(reason)
        self.log_buffered = Gauge(
            "podium_gateway_log_buffered", "Gateway spans and scores waiting to be handed to the ingest writer "
            "(at the last drain)", registry=r,
        )
        self.log_bytes = Gauge(
            "podium_gateway_log_bytes", "Estimated memory the gateway's span log holds: buffered items and "
            "batches the ingest writer has not committed yet (bounded; calls wait while it is full)", registry=r,
        )
        self.log_waits = Counter(
            "podium_gateway_log_waits", "Gateway calls that waited for room in the span log before starting "
            "(back-pressure: the store logs calls slower than they arrive)", registry=r,
        )
        self.log_wait_seconds = Counter(
            "podium_gateway_log_wait_seconds", "Seconds gateway calls spent waiting for room in the span log",
            registry=r,
        )
        # Labelled children by (metric, label values): ``labels()`` validates and hashes its
        # arguments on every call (~3-5 µs); the hot path asks for the same few series each time.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached (series are never removed from these metrics)."""
        k = (id(metric), labels)
        c = self._children.get(k)
        if c is None:
            c = self._children[k] = metric.labels(*labels)
        return c

    # --- what the service and the endpoints call -------------------------------------------------
    def count_request(self, model: str, deployment: str, key: str, status: str) -> None:
        """One finished request; ``key`` (a public key) is used only with ``key_labels``."""
        if self.key_labels:
            self.child(self.requests, model, deployment, key, status).inc()
        else:
            self.child(self.requests, model, deployment, status).inc()

    def count_error(self, model: str, error: PodiumError) -> None:
        self.errors.labels(model, str(wire.http_status(error)), error.code).inc()

    def count_spend(self, model: str, key: str, cost: float) -> None:
        if self.key_labels:
            self.child(self.spend, model, key).inc(cost)
        else:
            self.child(self.spend, model).inc(cost)

    def count_guardrail(self, model: str, kind: str, action: str) -> None:
        self.guardrails.labels(model, kind, action).inc()

    def refused(self, error: PodiumError) -> None:
        """A request refused before a model was resolved (bad body, bad key, unknown model,
        too large): counted with ``model=""`` so names a caller makes up add no series."""
        self.count_request("", "none", "", str(wire.http_status(error)))
        self.count_error("", error)

    def render(self) -> bytes:
        return generate_latest(self.registry)
