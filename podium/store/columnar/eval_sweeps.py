"""Eval sweeps on the columnar span store: ``EvalSweepRepo`` with the production traffic a trial's
cost forecast reads (``traffic``) from ClickHouse; sweeps and trials stay in SQL (inherited)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.metrics import window_spans
from podium.store.columnar.rows import utc
from podium.store.repos.eval_sweeps import EvalSweepRepo

__all__ = ["ColumnarEvalSweepRepo"]


class ColumnarEvalSweepRepo(EvalSweepRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

    def traffic(self, project_id: str, *, since: datetime, prompt_name: str | None = None,
                model: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"p": project_id, "since": since}
        late = ["start_time >= {since:DateTime64(6, 'UTC')}", "model IS NOT NULL", "ifNull(usage_counted, true)"]
        if prompt_name is not None:
            late.append("prompt_name = {pn:String}")
            params["pn"] = prompt_name
        elif model is not None:
            late.append("model = {m:String}")
            params["m"] = model
        spans = window_spans("start_time, input_tokens, output_tokens", since=False, early=["model IS NOT NULL"],
                             late=late)
        n, first, tin, tout = self._c.query(
            f"SELECT count(), if(count() = 0, NULL, min(start_time)), avg(toFloat64(input_tokens)), "
            f"avg(toFloat64(output_tokens)) FROM ({spans})", params)[0]
        return {"calls": int(n or 0), "first": utc(first), "input_mean": float(tin or 0.0),
                "output_mean": float(tout or 0.0)}
