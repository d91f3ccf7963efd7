"""Online evaluation on the columnar span store: ``OnlineEvalRepo`` with the traces a rule matches
and the traces and spans its scorers read taken from ClickHouse; rules, cursors and counters stay in
SQL (inherited)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.reads import _Cond, trace_conditions
from podium.store.columnar.rows import SPAN_COLUMNS, TRACE_COLUMNS, from_db, select_list, utc
from podium.store.repos.online_evals import JUDGE_TAG, OnlineEvalRepo, trace_filter

__all__ = ["ColumnarOnlineEvalRepo"]

_CH_CHUNK = 2000  # ids per ClickHouse array parameter
_DT = "DateTime64(6, 'UTC')"


def _filter(project_id: str, raw: dict[str, Any] | None) -> _Cond:
    """The trace list's filter, never matching the online judges' own gateway calls."""
    c = trace_conditions(project_id, trace_filter(raw))
    c.add("id NOT IN (SELECT trace_id FROM $db.trace_tag WHERE project_id = {p:String} AND tag = {judge:String})",
          judge=JUDGE_TAG)
    return c


class ColumnarOnlineEvalRepo(OnlineEvalRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

    def candidates(self, rule: dict[str, Any], *, until: datetime, limit: int = 1000) -> list[tuple[str, datetime]]:
        c = _filter(rule["project_id"], rule.get("filter"))
        c.add(f"updated_at <= {{until:{_DT}}}", until=until)
        ct, cid = rule.get("cursor_time"), rule.get("cursor_id")
        if ct is not None:
            c.add(f"(updated_at > {{ct:{_DT}}} OR (updated_at = {{ct:{_DT}}} AND id > {{cid:String}}))",
                  ct=ct, cid=cid or "")
        rows = self._c.query(f"SELECT id, updated_at FROM $db.trace FINAL WHERE {c.sql()} "
                             f"ORDER BY updated_at, id LIMIT {int(limit)}", c.params)
        return [(tid, _utc(at)) for tid, at in rows]

    def in_range(self, project_id: str, filter_: dict[str, Any] | None, start: datetime, end: datetime, *,
                 after: tuple[datetime, str] | None = None, limit: int = 1000) -> list[tuple[str, datetime]]:
        c = _filter(project_id, filter_)
        c.add(f"start_time >= {{rs:{_DT}}} AND start_time < {{re:{_DT}}}", rs=start, re=end)
        if after is not None:
            c.add(f"(start_time > {{at:{_DT}}} OR (start_time = {{at:{_DT}}} AND id > {{aid:String}}))",
                  at=after[0], aid=after[1])
        rows = self._c.query(f"SELECT id, start_time FROM $db.trace FINAL WHERE {c.sql()} "
                             f"ORDER BY start_time, id LIMIT {int(limit)}", c.params)
        return [(tid, _utc(at)) for tid, at in rows]

    def load_traces(self, project_id: str, trace_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ids = sorted(set(trace_ids))
        for i in range(0, len(ids), _CH_CHUNK):
            p = {"p": project_id, "ids": ids[i:i + _CH_CHUNK]}
            for r in self._c.query_dicts(f"SELECT {select_list(TRACE_COLUMNS)} FROM $db.trace FINAL "
                                         "WHERE project_id = {p:String} AND id IN {ids:Array(String)}", p):
                row = from_db("trace", r)
                row["tags"] = []
                out[row["id"]] = row
            for tid, tag in self._c.query("SELECT DISTINCT trace_id, tag FROM $db.trace_tag WHERE project_id = "
                                          "{p:String} AND trace_id IN {ids:Array(String)} ORDER BY tag", p):
                if tid in out:
                    out[tid]["tags"].append(tag)
        return out

    def load_spans(self, project_id: str, trace_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        ids = sorted(set(trace_ids))
        for i in range(0, len(ids), _CH_CHUNK):
            for r in self._c.query_dicts(
                    f"SELECT {select_list(SPAN_COLUMNS)} FROM $db.span FINAL WHERE project_id = {{p:String}} "
                    "AND trace_id IN {ids:Array(String)} ORDER BY trace_id, start_time, id",
                    {"p": project_id, "ids": ids[i:i + _CH_CHUNK]}):
                out.setdefault(r["trace_id"], []).append(from_db("span", r))
        return out


def _utc(v: datetime) -> datetime:
    out = utc(v)
    assert out is not None
    return out
