"""Drift on the columnar span store: ``DriftRepo`` with the samples a run compares (traces, spans
and their scores) read from ClickHouse; monitors, leases and results stay in SQL (inherited)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.reads import ColumnarTraceRepo
from podium.store.columnar.rows import from_db
from podium.store.repos.drift import ID_SCAN_CAP, DriftRepo, sample_keys
from podium.store.repos.traces import TraceFilter

__all__ = ["ColumnarDriftRepo"]

_CH_CHUNK = 2000  # ids per ClickHouse array parameter
_DT = "DateTime64(6, 'UTC')"


def _chunks(seq: Sequence[Any], n: int = _CH_CHUNK) -> list[Sequence[Any]]:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


class ColumnarDriftRepo(DriftRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client
        self._traces = ColumnarTraceRepo(engine, client)

    def sample_records(self, project_id: str, f: TraceFilter, start: datetime, end: datetime, n: int, *,
                       span_kind: str | None = None, span_name: str | None = None,
                       seed: int = 0) -> tuple[list[dict[str, Any]], int]:
        f = TraceFilter(**{**f.__dict__, "start_after": start, "start_before": end})
        rng = random.Random(seed)
        if span_kind is None and span_name is None:
            ids: list[str] = []
            cursor: str | None = None
            while len(ids) < ID_SCAN_CAP:
                page = self._traces.list_traces(project_id, f, limit=min(5000, ID_SCAN_CAP - len(ids)), cursor=cursor)
                ids.extend(r["id"] for r in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            total = len(ids)
            chosen = sorted(rng.sample(ids, n)) if total > n else sorted(ids)
            out: list[dict[str, Any]] = []
            for chunk in _chunks(chosen):
                out.extend({"trace_id": r["id"], "input": r["input"], "output": r["output"]}
                           for r in (from_db("trace", x) for x in self._c.query_dicts(
                               "SELECT id, input, output FROM $db.trace FINAL WHERE project_id = {p:String} "
                               "AND id IN {ids:Array(String)}", {"p": project_id, "ids": list(chunk)})))
            return out, total
        where = f"project_id = {{p:String}} AND start_time >= {{s:{_DT}}} AND start_time < {{e:{_DT}}}"
        params: dict[str, Any] = {"p": project_id, "s": start, "e": end}
        if span_kind is not None:
            where += " AND kind = {kind:String}"
            params["kind"] = span_kind
        if span_name is not None:
            where += " AND name = {name:String}"
            params["name"] = span_name
        narrowed = any(v not in (None, [], "") for k, v in f.__dict__.items() if k not in ("start_after", "start_before"))
        allowed: set[str] | None = None
        if narrowed:  # the spans of the traces the filter matches (traces start before their spans)
            allowed_ids, _ = self.sample_records(project_id, TraceFilter(**{**f.__dict__, "start_after": None}),
                                                 start - timedelta(days=1), end, ID_SCAN_CAP)
            allowed = {r["trace_id"] for r in allowed_ids}
        keys = [(tid, sid) for tid, sid in self._c.query(
            f"SELECT trace_id, id FROM $db.span FINAL WHERE {where} ORDER BY start_time, id LIMIT {ID_SCAN_CAP}",
            params)]
        total, by_trace = sample_keys(keys, allowed, n, rng)
        chosen_keys = [(tid, sid) for tid, sids in by_trace.items() for sid in sids]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in _chunks(chosen_keys):
            for r in self._c.query_dicts(
                    "SELECT trace_id, id, input, output FROM $db.span FINAL WHERE project_id = {p:String} "
                    "AND trace_id IN {ids:Array(String)} AND (trace_id, id) IN {keys:Array(Tuple(String, String))}",
                    {"p": project_id, "ids": sorted({k[0] for k in chunk}), "keys": [tuple(k) for k in chunk]}):
                x = from_db("span", r)
                found[(x["trace_id"], x["id"])] = {"trace_id": x["trace_id"], "input": x["input"], "output": x["output"]}
        recs = [found[k] for tid, sids in by_trace.items() for k in ((tid, s) for s in sids) if k in found]
        return recs, total

    def score_values(self, project_id: str, names: Sequence[str], trace_ids: Sequence[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {n: [] for n in names}
        if not names or not trace_ids:
            return out
        for chunk in _chunks(list(trace_ids)):
            for name, value in self._c.query(
                    "SELECT name, value FROM $db.score FINAL WHERE project_id = {p:String} "
                    "AND name IN {names:Array(String)} AND trace_id IN {ids:Array(String)} AND value IS NOT NULL",
                    {"p": project_id, "names": list(names), "ids": list(chunk)}):
                out[name].append(float(value))
        return out

