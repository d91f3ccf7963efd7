"""Prompt analytics on the columnar span store: ``PromptRepo`` with the per-version figures of the
calls linked to a prompt (``analytics``) read from ClickHouse; prompts, versions, labels and their
history stay in SQL (inherited).

The same answers as the SQL repo's ``_usage``: calls are the spans naming the prompt whose usage
counts (``usage_counted`` not false), latency percentiles by nearest rank, and the average of the
numeric/boolean scores on those calls' traces (trace-level scores) or on any span naming the prompt
(span-level scores), each score counted once per version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.metrics import nearest_rank_expr, window_spans
from podium.store.columnar.rows import utc
from podium.store.repos.prompts import PromptRepo

__all__ = ["ColumnarPromptRepo"]

_TS = "DateTime64(6, 'UTC')"
_SCORED = "data_type IN ('numeric', 'boolean')"


class ColumnarPromptRepo(PromptRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

    def _usage(self, project_id: str, name: str, *, start: datetime | None, end: datetime | None,
               version: int | None) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]],
                                             dict[Any, dict[str, Any]]]:
        params: dict[str, Any] = {"p": project_id, "pn": name}
        late = ["prompt_name = {pn:String}"]
        if start is not None:
            late.append(f"start_time >= {{ps:{_TS}}}")
            params["ps"] = start
        if end is not None:
            late.append(f"start_time < {{pe:{_TS}}}")
            params["pe"] = end
        if version is not None:
            late.append("prompt_version = {pv:Int32}")
            params["pv"] = version
        # ``prompt_name IS NOT NULL`` may go before FINAL (the writer never clears it); the name, the
        # start and the version may change in a later version of a span, so they apply after FINAL.
        cols = ("trace_id, id, prompt_version, status, input_tokens, output_tokens, total_tokens, cost_total, "
                "latency_ms, start_time, ifNull(usage_counted, true) AS counted")
        spans = window_spans(cols, since=False, early=["prompt_name IS NOT NULL"], late=late)
        stats: dict[Any, dict[str, Any]] = {}
        pcts: dict[Any, dict[str, Any]] = {}
        for r in self._c.query(
            "SELECT prompt_version, count(), uniqExact(trace_id), countIf(status = 'error'), sum(input_tokens), "
            "sum(output_tokens), sum(total_tokens), sum(cost_total), avg(latency_ms), min(start_time), "
            f"max(start_time), {nearest_rank_expr('latency_ms', 0.5)}, {nearest_rank_expr('latency_ms', 0.95)}, "
            f"max(latency_ms) FROM ({spans}) WHERE counted GROUP BY prompt_version",
            params,
        ):
            v = None if r[0] is None else int(r[0])
            stats[v] = {"v": v, "count": int(r[1]), "traces": int(r[2]), "errors": int(r[3]),
                        "input_tokens": r[4], "output_tokens": r[5], "total_tokens": r[6], "cost": r[7],
                        "avg_latency": r[8], "first_seen": utc(r[9]), "last_seen": utc(r[10])}
            if r[13] is not None:  # the SQL repo ranks only calls with a latency
                pcts[v] = {"v": v, "p50": r[11], "p95": r[12], "max": r[13]}
        score_cols = "trace_id, span_id, id, name, value"
        trace_scores = (f"SELECT l.v AS v, sc.name AS name, sc.id AS id, sc.value AS value FROM "
                        f"(SELECT DISTINCT trace_id, prompt_version AS v FROM ({spans}) WHERE counted) AS l "
                        f"INNER JOIN (SELECT {score_cols} FROM $db.score FINAL WHERE project_id = {{p:String}} "
                        f"AND span_id IS NULL AND {_SCORED}) AS sc ON sc.trace_id = l.trace_id")
        span_scores = (f"SELECT s.prompt_version AS v, sc.name AS name, sc.id AS id, sc.value AS value FROM "
                       f"({spans}) AS s INNER JOIN (SELECT {score_cols} FROM $db.score FINAL WHERE project_id = "
                       f"{{p:String}} AND span_id IS NOT NULL AND {_SCORED}) AS sc "
                       "ON sc.trace_id = s.trace_id AND sc.span_id = s.id")
        scores: dict[Any, dict[str, Any]] = {}
        for v, sname, avg, n in self._c.query(
            f"SELECT v, name, avg(value), count() FROM (SELECT DISTINCT v, name, id, value FROM "
            f"({trace_scores} UNION ALL {span_scores})) GROUP BY v, name ORDER BY name",
            params,
        ):
            scores.setdefault(None if v is None else int(v), {})[sname] = {
                "avg": float(avg) if avg is not None else None, "count": int(n)}
        return stats, pcts, scores
