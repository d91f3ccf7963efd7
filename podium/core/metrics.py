"""What a chart plots and what an alert rule watches: one metric query, pure data.

``MetricQuery(metric="latency", agg="p95", dimension="model", filters={"environment": "prod"})``
asks for the 95th percentile trace latency per model in production. The store answers it
(``store.metrics.series(...)`` for a chart, ``store.metrics.value(...)`` for one number over a
window, used by alert rules); the UI and the API accept the same fields.

Metrics (``metric``):
  ``traces``, ``spans``, ``errors`` (counts), ``error_rate`` (0..1), ``latency`` (ms),
  ``cost`` (USD), ``tokens`` / ``input_tokens`` / ``output_tokens``,
  ``score:<name>`` (the score's value; ``score:*`` every score, split with the ``score``
  dimension), ``guardrail:<scanner>`` (share of guarded calls the scanner flagged or blocked;
  ``guardrail:*`` any scanner).
Aggregations (``agg``): ``count``, ``sum``, ``avg``, ``min``, ``max``, ``p50``, ``p90``,
``p95``, ``p99``, ``rate``. Dimensions: ``model``, ``prompt`` (name and version), ``user_id``,
``session_id``, ``release``, ``environment``, ``name``, ``tag``, ``score`` (score metrics),
``rule`` / ``scanner`` (guardrail metrics), or ``None``. ``docs/dashboards.md`` is the reference;
``store.metrics.check_query`` says what is valid.
Filters: the trace filters (the fields of the traces list's filter: ``name``, ``user_id``,
``environment``, ``release``, ``model``, ``tags``, ``status``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MetricQuery"]


@dataclass(frozen=True)
class MetricQuery:
    metric: str
    agg: str = "avg"
    dimension: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
