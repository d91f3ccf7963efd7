"""Annotation queues on the columnar span store: ``AnnotationRepo`` with what it reads or writes in
the span store on ClickHouse: the traces and spans an item may name, the trace list a filter adds
from, the input/output a reviewed item exports and the scores a submission writes. Queues, items
and annotations stay in SQL (inherited).

A submission writes its scores to ClickHouse inside the SQL transaction that records its
annotations, before that commits: a failed insert leaves nothing; a failed commit after it leaves
the scores, which submitting again replaces (their ids are the same).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.ingest import _Clock
from podium.store.columnar.reads import ColumnarTraceRepo
from podium.store.columnar.rows import from_db, insert_scores
from podium.store.repos.annotations import AnnotationRepo, Target
from podium.store.repos.traces import TraceRepo

__all__ = ["ColumnarAnnotationRepo"]

_CH_CHUNK = 2000  # ids per ClickHouse array parameter


class ColumnarAnnotationRepo(AnnotationRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client
        self._clock = _Clock()

    def _known_traces(self, conn: Connection, project_id: str, trace_ids: list[str]) -> set[str]:
        known: set[str] = set()
        for k in range(0, len(trace_ids), _CH_CHUNK):
            known.update(r[0] for r in self._c.query(
                "SELECT id FROM $db.trace FINAL WHERE project_id = {p:String} AND id IN {ids:Array(String)}",
                {"p": project_id, "ids": trace_ids[k:k + _CH_CHUNK]}))
        return known

    def _known_spans(self, conn: Connection, project_id: str, spans: list[Target]) -> set[tuple[str, str]]:
        have: set[tuple[str, str]] = set()
        for k in range(0, len(spans), _CH_CHUNK):
            chunk = spans[k:k + _CH_CHUNK]
            have.update((r[0], r[1]) for r in self._c.query(
                "SELECT trace_id, id FROM $db.span FINAL WHERE project_id = {p:String} "
                "AND trace_id IN {t:Array(String)} AND id IN {ids:Array(String)}",
                {"p": project_id, "t": sorted({x.trace_id for x in chunk}),
                 "ids": sorted({str(x.span_id) for x in chunk})}))
        return have

    def _trace_repo(self) -> TraceRepo:
        return ColumnarTraceRepo(self._engine, self._c)

    def _put_scores(self, conn: Connection, project_id: str, rows: list[dict[str, Any]]) -> None:
        insert_scores(self._c, rows, self._clock.next())

    def _io(self, project_id: str, items: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
        out: dict[tuple[str, str | None], dict[str, Any]] = {}
        trace_ids = sorted({it["trace_id"] for it in items if not it["span_id"]})
        spans = [it for it in items if it["span_id"]]
        for k in range(0, len(trace_ids), _CH_CHUNK):
            for r in self._c.query_dicts(
                    "SELECT id, input, output FROM $db.trace FINAL WHERE project_id = {p:String} "
                    "AND id IN {ids:Array(String)}", {"p": project_id, "ids": trace_ids[k:k + _CH_CHUNK]}):
                r = from_db("trace", r)
                out[(r["id"], None)] = {"input": r["input"], "output": r["output"]}
        for k in range(0, len(spans), _CH_CHUNK):
            chunk = spans[k:k + _CH_CHUNK]
            for r in self._c.query_dicts(
                    "SELECT trace_id, id, input, output FROM $db.span FINAL WHERE project_id = {p:String} "
                    "AND trace_id IN {t:Array(String)} AND id IN {ids:Array(String)}",
                    {"p": project_id, "t": sorted({c["trace_id"] for c in chunk}),
                     "ids": sorted({c["span_id"] for c in chunk})}):
                r = from_db("span", r)
                out[(r["trace_id"], r["id"])] = {"input": r["input"], "output": r["output"]}
        return out
