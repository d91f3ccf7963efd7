"""Canary gates on the columnar span store: ``CanaryRepo`` with its live reads (the deployment's
calls, the online scores on their traces and the guardrail decisions under them) from ClickHouse;
canaries, their events and the alert rules stay in SQL (inherited).

The same rows as the SQL repo's (in no particular order, as there); ``model IS NOT NULL`` goes before
``FINAL`` (the writer never clears a model), every other condition after it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.metrics import window_spans
from podium.store.repos.canaries import CanaryRepo

__all__ = ["ColumnarCanaryRepo", "model_spans"]

_TS = "DateTime64(6, 'UTC')"


def model_spans(cols: str, *, late: tuple[str, ...] = ()) -> str:
    """``SELECT cols`` of the project's (``{p}``) latest spans whose model is one of ``{models}`` and that
    started at or after ``{since}``."""
    return window_spans(cols, since=False, early=["model IS NOT NULL"],
                        late=["model IN {models:Array(String)}", f"start_time >= {{since:{_TS}}}", *late])


def _json(v: Any) -> Any:
    return json.loads(v) if v is not None else None


class ColumnarCanaryRepo(CanaryRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

    def spans_since(self, project_id: str, models: list[str], since: datetime, *,
                    limit: int = 200_000) -> list[dict[str, Any]]:
        rows = self._c.query(
            model_spans("id, trace_id, model, status, latency_ms, metadata",
                        late=("kind IN ('generation', 'embedding')",)) + f" LIMIT {int(limit)}",
            {"p": project_id, "models": list(models), "since": since})
        out = []
        for sid, tid, model, status, latency, meta in rows:
            md = _json(meta)
            gw = md.get("gateway") if isinstance(md, dict) else None
            gw = gw if isinstance(gw, dict) else {}
            out.append({"id": sid, "trace_id": tid, "model": model, "status": status, "latency_ms": latency,
                        "alias": gw.get("alias"),
                        "attempts": gw.get("attempts") if isinstance(gw.get("attempts"), list) else None})
        return out

    def online_scores(self, project_id: str, models: list[str], since: datetime
                      ) -> list[tuple[str, str, str, float]]:
        rows = self._c.query(
            f"SELECT s.trace_id, s.id, sc.name, sc.value FROM ({model_spans('trace_id, id')}) AS s "
            "INNER JOIN (SELECT trace_id, span_id, name, value FROM $db.score FINAL WHERE project_id = {p:String} "
            "AND source = 'online' AND value IS NOT NULL AND data_type IN ('numeric', 'boolean')) AS sc "
            "ON sc.trace_id = s.trace_id WHERE sc.span_id IS NULL OR sc.span_id = s.id",
            {"p": project_id, "models": list(models), "since": since})
        return [(r[0], r[1], r[2], float(r[3])) for r in rows]

    def guardrail_actions(self, project_id: str, models: list[str], since: datetime
                          ) -> list[tuple[str, str, str]]:
        rows = self._c.query(
            f"SELECT s.trace_id, s.id, g.output, g.status FROM ({model_spans('trace_id, id')}) AS s "
            "INNER JOIN (SELECT trace_id, parent_id, output, status FROM $db.span FINAL WHERE project_id = {p:String} "
            "AND kind = 'guardrail') AS g ON g.trace_id = s.trace_id AND g.parent_id = s.id",
            {"p": project_id, "models": list(models), "since": since})
        out = []
        for tid, sid, output, status in rows:
            o = _json(output)
            action = o.get("action") if isinstance(o, dict) else None
            out.append((tid, sid, str(action or ("block" if status == "error" else "allow"))))
        return out
