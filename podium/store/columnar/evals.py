"""Experiments on the columnar span store: ``EvalRepo`` with the scores an experiment's item results
give their traces written to ClickHouse (where the trace pages, filters and score lists read them);
datasets, experiments and their items stay in SQL (inherited).

The scores go in inside the SQL transaction that stores the item results, before it commits: a
failed insert stores nothing; a failed commit after it leaves the scores, which the runner's retry
replaces (their ids come from experiment, item, repetition and scorer).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.ingest import _Clock
from podium.store.columnar.rows import insert_scores
from podium.store.repos.evals import EvalRepo

__all__ = ["ColumnarEvalRepo"]


class ColumnarEvalRepo(EvalRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client
        self._clock = _Clock()

    def _put_scores(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        insert_scores(self._c, rows, self._clock.next())
