"""The default dashboards: defined here (never stored), listed beside the saved ones, usable at
once and copyable into an editable dashboard. Ids start with ``default-``.

The "Scores" dashboard adds a chart per score name the project used in the last 30 days
(``store.metrics.names``), so it shows that project's own scores by prompt version.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PREFIX", "default_dashboard", "default_dashboards"]

DEFAULT_PREFIX = "default-"
DAY = 86400


def _c(title: str, metric: str, agg: str, dimension: str | None = None, chart_type: str = "line",
       filters: dict[str, Any] | None = None, top: int | None = None) -> dict[str, Any]:
    return {"title": title, "metric": metric, "agg": agg, "dimension": dimension, "filters": filters,
            "chart_type": chart_type, "interval_s": None, "range_s": None, "top": top}


def _board(key: str, name: str, description: str, charts: list[dict[str, Any]]) -> dict[str, Any]:
    for i, c in enumerate(charts):
        c["id"] = f"c{i + 1}"
    return {"id": DEFAULT_PREFIX + key, "name": name, "description": description, "default": True,
            "layout": {"range_s": 7 * DAY}, "charts": charts}


def default_dashboards(score_names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every default dashboard, charts included (``score_names``: the project's score names for
    the per-score charts of "Scores")."""
    scores = [
        _c("Average of each score", "score:*", "avg", "score"),
        _c("Scores recorded", "score:*", "count", "score", "bar"),
        *[_c(f"{n}: average by prompt version", f"score:{n}", "avg", "prompt") for n in (score_names or [])[:6]],
        *[_c(f"{n}: average by release", f"score:{n}", "avg", "release") for n in (score_names or [])[:2]],
    ]
    return [
        _board("latency", "Latency", "Trace latency percentiles, and model-call latency by model.", [
            _c("p95 trace latency", "latency", "p95", None, "number"),
            _c("Trace latency p50", "latency", "p50"),
            _c("Trace latency p95", "latency", "p95"),
            _c("Trace latency p99", "latency", "p99"),
            _c("p50 by model", "latency", "p50", "model"),
            _c("p95 by model", "latency", "p95", "model"),
            _c("p99 by model", "latency", "p99", "model"),
            _c("p95 by release", "latency", "p95", "release"),
        ]),
        _board("cost", "Cost", "Spend in USD: in all, by model, by prompt version and by user.", [
            _c("Total cost", "cost", "sum", None, "number"),
            _c("Cost", "cost", "sum", None, "bar"),
            _c("Cost by model", "cost", "sum", "model"),
            _c("Cost by prompt version", "cost", "sum", "prompt"),
            _c("Average cost per trace by release", "cost", "avg", "release"),
            _c("Cost by user (top 10)", "cost", "sum", "user_id", "bar", top=10),
        ]),
        _board("tokens", "Tokens", "Input and output tokens, by model and by prompt version.", [
            _c("Total tokens", "tokens", "sum", None, "number"),
            _c("Input tokens", "input_tokens", "sum", None, "bar"),
            _c("Output tokens", "output_tokens", "sum", None, "bar"),
            _c("Tokens by model", "tokens", "sum", "model"),
            _c("Tokens by prompt version", "tokens", "sum", "prompt"),
            _c("Average tokens per trace", "tokens", "avg"),
        ]),
        _board("errors", "Errors", "Failed traces and model calls: the rate by model and by release.", [
            _c("Error rate", "error_rate", "rate", None, "number"),
            _c("Errors", "errors", "count", None, "bar"),
            _c("Error rate by model", "error_rate", "rate", "model"),
            _c("Error rate by release", "error_rate", "rate", "release"),
            _c("Error rate by environment", "error_rate", "rate", "environment"),
            _c("Errors by trace name", "errors", "count", "name", "bar"),
        ]),
        _board("scores", "Scores", "Score averages by score name, by prompt version and by release.", scores),
        _board("guardrails", "Guardrails", "How often guardrails flag or block: by scanner, rule and model.", [
            _c("Flag or block rate", "guardrail:*", "rate", None, "number"),
            _c("Flag or block rate by scanner", "guardrail:*", "rate", "scanner"),
            _c("Fired checks by rule", "guardrail:*", "count", "rule", "bar"),
            _c("Flag or block rate by model", "guardrail:*", "rate", "model"),
            _c("Flag or block rate by environment", "guardrail:*", "rate", "environment"),
        ]),
        _board("users", "Users", "Traffic, cost and errors by user segment: top users and releases.", [
            _c("Traces", "traces", "count", None, "number"),
            _c("Traces by user (top 10)", "traces", "count", "user_id", "bar", top=10),
            _c("Cost by user (top 10)", "cost", "sum", "user_id", top=10),
            _c("Traces by release", "traces", "count", "release"),
            _c("Error rate by user (top 10)", "error_rate", "rate", "user_id", top=10),
            _c("Traces by environment", "traces", "count", "environment", "bar"),
        ]),
    ]


def default_dashboard(dashboard_id: str, score_names: list[str] | None = None) -> dict[str, Any] | None:
    return next((d for d in default_dashboards(score_names) if d["id"] == dashboard_id), None)
