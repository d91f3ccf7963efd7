"""Prometheus metrics of the gateway (one registry per app, served at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "podium_gateway_requests", "Gateway requests by model alias, deployment, key and outcome",
            ["model", "deployment", "key", "status"], registry=r,
        )
        self.errors = Counter(
            "podium_gateway_errors", "Gateway errors by model alias and error type", ["model", "type"], registry=r
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
            "podium_gateway_spend_usd", "Spend in USD by model alias and key", ["model", "key"], registry=r
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
        self.in_flight = Gauge("podium_gateway_in_flight", "Gateway requests being served", registry=r)
        self.log_dropped = Counter(
            "podium_gateway_log_dropped", "Generation spans not logged because the ingest queue was full",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
