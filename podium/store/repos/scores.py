"""Read side of scores (writes go through the ingest writer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, select

from podium.store import tables as t
from podium.store.repos.traces import Page, _keyset, encode_cursor

__all__ = ["ScoreFilter", "ScoreRepo"]


@dataclass
class ScoreFilter:
    trace_id: str | None = None
    span_id: str | None = None
    session_id: str | None = None
    name: str | None = None
    source: str | None = None
    data_type: str | None = None
    after: datetime | None = None
    before: datetime | None = None


class ScoreRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_scores(self, project_id: str, f: ScoreFilter, *, limit: int = 50, cursor: str | None = None) -> Page:
        sc = t.score.c
        conds: list[ColumnElement[bool]] = [sc.project_id == project_id]
        for col in ("trace_id", "span_id", "session_id", "name", "source", "data_type"):
            v = getattr(f, col)
            if v is not None:
                conds.append(sc[col] == v)
        if f.after:
            conds.append(sc.timestamp >= f.after)
        if f.before:
            conds.append(sc.timestamp < f.before)
        ks = _keyset(sc.timestamp, sc.id, cursor, True)
        if ks is not None:
            conds.append(ks)
        stmt = select(t.score).where(*conds).order_by(sc.timestamp.desc(), sc.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [_score(dict(r._mapping)) for r in conn.execute(stmt)]
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor([rows[-1]["timestamp"], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)

    def get_score(self, project_id: str, score_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(t.score).where(t.score.c.project_id == project_id,
                                                     t.score.c.id == score_id)).first()
        return _score(dict(row._mapping)) if row is not None else None

    def delete_score(self, project_id: str, score_id: str) -> bool:
        """Delete one score; False when there was none with this id."""
        with self._engine.begin() as conn:
            res = conn.execute(delete(t.score).where(t.score.c.project_id == project_id, t.score.c.id == score_id))
        return bool(res.rowcount)


def _score(r: dict[str, Any]) -> dict[str, Any]:
    dt = r["data_type"]
    if dt == "boolean":
        r["value"] = bool(r["value"])
    elif dt in ("categorical", "text"):
        r["value"] = r["string_value"]
    r.pop("string_value", None)
    return r
