"""The write path: idempotent upserts of spans, traces and scores, then trace aggregates.

Called only by the server's single writer (one per process and database). One call is
one transaction; the caller acknowledges items only after it returns.

Merge rules (so retries never duplicate and a span's end may arrive after its start):
- spans and traces are upserted by (project_id, [trace_id,] id); a column sent as NULL keeps
  the stored value (COALESCE), a value overwrites;
- a trace row is derived from its spans: start = min(start), end = max(end), totals are sums,
  name/input/output come from the root span unless set explicitly (trace item or trace_name);
- tags accumulate; scores are replaced whole by id.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Engine,
    Numeric,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Insert

from podium.store import tables as t
from podium.store.types import UtcDateTime

__all__ = ["IngestBatch", "IngestRepo"]

_CHUNK = 500


@dataclass
class IngestBatch:
    """Rows ready for the store (already validated, priced and flattened)."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)  # trace-level hints / explicit fields
    tags: list[tuple[str, str, str]] = field(default_factory=list)  # (project_id, trace_id, tag)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.traces) + len(self.scores)


SPAN_COLUMNS = [c.name for c in t.span.columns]
TRACE_HINT_COLUMNS = ["user_id", "session_id", "release", "environment", "metadata"]


def _insert(conn: Connection, table: Any) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class IngestRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, batch: IngestBatch) -> None:
        with self._engine.begin() as conn:
            self._write(conn, batch)

    def _write(self, conn: Connection, batch: IngestBatch) -> None:
        now = datetime.now(UTC)
        if batch.spans:
            self._upsert_spans(conn, _dedupe(batch.spans, ("project_id", "trace_id", "id")), now)
        touched = {(s["project_id"], s["trace_id"]) for s in batch.spans}
        if batch.traces or batch.spans:
            self._upsert_trace_hints(conn, batch, now)
        if batch.tags:
            stmt = _insert(conn, t.trace_tag).on_conflict_do_nothing()
            rows = [{"project_id": p, "trace_id": tr, "tag": tag} for p, tr, tag in set(batch.tags)]
            conn.execute(stmt, rows)
        if touched:
            self._refresh_traces(conn, touched, now)
        if batch.scores:
            self._upsert_scores(conn, _dedupe(batch.scores, ("project_id", "id")))

    # --- spans -------------------------------------------------------------------------------
    def _upsert_spans(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
        # The hottest statement in Podium: a hand-built upsert run through the driver's
        # executemany, with values converted once per column. SQLAlchemy's per-row bind
        # processing cost ~3x the database's own time here (see docs/benchmarks.md).
        sql, convert = _span_upsert(conn.dialect.name)
        for r in rows:
            r["updated_at"] = now
        params = [tuple(f(r[c]) for c, f in convert) for r in rows]
        conn.exec_driver_sql(sql, params)

    # --- traces ------------------------------------------------------------------------------
    def _upsert_trace_hints(self, conn: Connection, batch: IngestBatch, now: datetime) -> None:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for s in batch.spans:
            key = (s["project_id"], s["trace_id"])
            m = merged.setdefault(key, _blank_trace(key, s["start_time"], now))
            if s["start_time"] < m["start_time"]:
                m["start_time"] = s["start_time"]
        for h in batch.traces:
            key = (h["project_id"], h["id"])
            m = merged.setdefault(key, _blank_trace(key, h.get("start_time") or now, now))
            for c in (*TRACE_HINT_COLUMNS, "input", "output"):
                if h.get(c) is not None:
                    m[c] = h[c]
            if h.get("name") is not None:
                m["name"], m["name_explicit"] = h["name"], True
            if h.get("input") is not None or h.get("output") is not None:
                m["io_explicit"] = True
        if not merged:
            return
        stmt = _insert(conn, t.trace)
        ex = stmt.excluded
        set_: dict[str, Any] = {c: func.coalesce(ex[c], t.trace.c[c]) for c in TRACE_HINT_COLUMNS}
        set_["name"] = case((ex.name_explicit, ex.name), else_=t.trace.c.name)
        set_["name_explicit"] = or_(t.trace.c.name_explicit, ex.name_explicit)
        set_["input"] = case((ex.io_explicit, ex.input), else_=t.trace.c.input)
        set_["output"] = case((ex.io_explicit, ex.output), else_=t.trace.c.output)
        set_["io_explicit"] = or_(t.trace.c.io_explicit, ex.io_explicit)
        set_["start_time"] = case(
            (ex.start_time < t.trace.c.start_time, ex.start_time), else_=t.trace.c.start_time
        )
        set_["updated_at"] = ex.updated_at
        stmt = stmt.on_conflict_do_update(index_elements=["project_id", "id"], set_=set_)
        conn.execute(stmt, list(merged.values()))

    def _refresh_traces(self, conn: Connection, touched: set[tuple[str, str]], now: datetime) -> None:
        by_project: dict[str, list[str]] = {}
        for p, tr in touched:
            by_project.setdefault(p, []).append(tr)
        s = t.span.c
        updates: list[dict[str, Any]] = []
        for project_id, trace_ids in by_project.items():
            for chunk in _chunks(sorted(trace_ids)):
                agg = conn.execute(
                    select(
                        s.trace_id,
                        func.min(s.start_time).label("start"),
                        func.max(func.coalesce(s.end_time, s.start_time)).label("end"),
                        func.count().label("n"),
                        func.sum(case((s.status == "error", 1), else_=0)).label("errors"),
                        func.sum(func.coalesce(s.input_tokens, 0)).label("in_tok"),
                        func.sum(func.coalesce(s.output_tokens, 0)).label("out_tok"),
                        func.sum(func.coalesce(s.total_tokens, 0)).label("tot_tok"),
                        func.sum(func.coalesce(s.cost_total, 0)).label("cost"),
                    )
                    .where(s.project_id == project_id, s.trace_id.in_(chunk))
                    .group_by(s.trace_id)
                ).all()
                roots: dict[str, Any] = {}
                for r in conn.execute(
                    select(s.trace_id, s.name, s.input, s.output)
                    .where(s.project_id == project_id, s.trace_id.in_(chunk), s.parent_id.is_(None))
                    .order_by(s.start_time)
                ):
                    roots.setdefault(r.trace_id, r)
                for a in agg:
                    root = roots.get(a.trace_id)
                    start, end = a.start, a.end
                    updates.append(
                        {
                            "b_project_id": project_id,
                            "b_id": a.trace_id,
                            "start_time": start,
                            "end_time": end,
                            "latency_ms": max((end - start).total_seconds() * 1000.0, 0.0),
                            "span_count": a.n,
                            "error_count": int(a.errors or 0),
                            "status": "error" if a.errors else "ok",
                            "input_tokens": int(a.in_tok or 0),
                            "output_tokens": int(a.out_tok or 0),
                            "total_tokens": int(a.tot_tok or 0),
                            "total_cost": a.cost or 0,
                            "root_name": root.name if root else None,
                            "root_input": root.input if root else None,
                            "root_output": root.output if root else None,
                            "updated_at": now,
                        }
                    )
        if not updates:
            return
        tr = t.trace.c
        stmt = (
            update(t.trace)
            .where(and_(tr.project_id == bindparam("b_project_id"), tr.id == bindparam("b_id")))
            .values(
                start_time=bindparam("start_time"),
                end_time=bindparam("end_time"),
                latency_ms=bindparam("latency_ms"),
                span_count=bindparam("span_count"),
                error_count=bindparam("error_count"),
                status=bindparam("status"),
                input_tokens=bindparam("input_tokens"),
                output_tokens=bindparam("output_tokens"),
                total_tokens=bindparam("total_tokens"),
                total_cost=bindparam("total_cost", type_=t.trace.c.total_cost.type),
                name=case(
                    (tr.name_explicit, tr.name),
                    else_=func.coalesce(bindparam("root_name", type_=tr.name.type), tr.name),
                ),
                input=case(
                    (tr.io_explicit, tr.input),
                    else_=func.coalesce(bindparam("root_input", type_=tr.input.type), tr.input),
                ),
                output=case(
                    (tr.io_explicit, tr.output),
                    else_=func.coalesce(bindparam("root_output", type_=tr.output.type), tr.output),
                ),
                updated_at=bindparam("updated_at"),
            )
        )
        conn.execute(stmt, updates)

    # --- scores ------------------------------------------------------------------------------
    def _upsert_scores(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        stmt = _insert(conn, t.score)
        stmt = stmt.on_conflict_do_update(
            index_elements=["project_id", "id"],
            set_={c.name: stmt.excluded[c.name] for c in t.score.columns if c.name not in ("project_id", "id")},
        )
        conn.execute(stmt, rows)


_SPAN_KEY = ("project_id", "trace_id", "id")
_SPAN_ALWAYS = ("name", "kind", "start_time", "updated_at")


@functools.cache
def _span_upsert(dialect: str) -> tuple[str, list[tuple[str, Callable[[Any], Any]]]]:
    """``INSERT ... ON CONFLICT DO UPDATE`` for spans (the same SQL on SQLite >= 3.24 and
    PostgreSQL) and per-column value converters matching what SQLAlchemy would bind."""
    ph = "?" if dialect == "sqlite" else "%s"
    cols = SPAN_COLUMNS
    sets = []
    for c in cols:
        if c in _SPAN_KEY:
            continue
        if c in _SPAN_ALWAYS:
            sets.append(f"{c} = excluded.{c}")
        elif c == "status":
            # A later "unset" never hides an earlier ok/error.
            sets.append("status = CASE WHEN excluded.status = 'unset' THEN span.status ELSE excluded.status END")
        else:
            # NULL never erases: a span's end may arrive after its start.
            sets.append(f"{c} = COALESCE(excluded.{c}, span.{c})")
    sql = (
        f"INSERT INTO span ({', '.join(cols)}) VALUES ({', '.join([ph] * len(cols))}) "
        f"ON CONFLICT (project_id, trace_id, id) DO UPDATE SET {', '.join(sets)}"
    )
    return sql, [(c, _converter(t.span.c[c].type, dialect)) for c in cols]


def _sqlite_time(v: datetime | None) -> str | None:
    """The text SQLAlchemy stores for a DateTime on SQLite (naive UTC, microseconds)."""
    if v is None:
        return None
    if v.tzinfo is not UTC:
        v = v.astimezone(UTC)
    return v.replace(tzinfo=None).isoformat(" ", "microseconds")


def _identity(v: Any) -> Any:
    return v


def _converter(type_: Any, dialect: str) -> Callable[[Any], Any]:
    if isinstance(type_, UtcDateTime):
        if dialect == "sqlite":
            return _sqlite_time
        return lambda v: None if v is None else (v if v.tzinfo else v.replace(tzinfo=UTC))
    if isinstance(type_, JSON):
        return lambda v: None if v is None else json.dumps(v)
    if dialect == "sqlite" and isinstance(type_, Numeric):
        return lambda v: None if v is None else float(v)
    if dialect == "sqlite" and isinstance(type_, Boolean):
        return lambda v: None if v is None else int(v)
    return _identity


def _blank_trace(key: tuple[str, str], start: datetime, now: datetime) -> dict[str, Any]:
    return {
        "project_id": key[0],
        "id": key[1],
        "name": None,
        "name_explicit": False,
        "user_id": None,
        "session_id": None,
        "release": None,
        "environment": None,
        "metadata": None,
        "input": None,
        "output": None,
        "io_explicit": False,
        "start_time": start,
        "updated_at": now,
    }


def _dedupe(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per key within a statement (PostgreSQL refuses to upsert a row twice in one
    statement); later rows merge over earlier ones, keeping non-null values."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        prev = out.get(k)
        if prev is None:
            out[k] = dict(r)
        else:
            for c, v in r.items():
                if v is not None:
                    prev[c] = v
    return list(out.values())
