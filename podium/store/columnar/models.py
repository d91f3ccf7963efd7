"""The model registry on the columnar span store: ``ModelRepo`` with a model's served traffic (its
lineage's ``served``) read from ClickHouse; models, versions, aliases and their history stay in SQL
(inherited)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.metrics import window_spans
from podium.store.columnar.rows import utc
from podium.store.repos.models import ModelRepo

__all__ = ["ColumnarModelRepo"]


class ColumnarModelRepo(ModelRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

    def served(self, project_id: str, models: list[str]) -> dict[str, Any]:
        spans = window_spans("trace_id, start_time", since=False, early=["model IS NOT NULL"],
                             late=["model IN {models:Array(String)}"])
        n, traces, first, last = self._c.query(
            f"SELECT count(), uniqExact(trace_id), if(count() = 0, NULL, min(start_time)), "
            f"if(count() = 0, NULL, max(start_time)) FROM ({spans})",
            {"p": project_id, "models": list(models)})[0]
        return {"spans": int(n or 0), "traces": int(traces or 0), "first_at": utc(first), "last_at": utc(last)}
