"""Read side of traces, spans, sessions and users: filtered, sorted, cursor-paginated."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, and_, case, exists, func, or_, select

from podium.core.records import utc
from podium.errors import BadRequest, NotFound
from podium.store import tables as t
from podium.store.types import UtcDateTime

__all__ = ["Page", "TraceFilter", "TraceRepo", "decode_cursor", "encode_cursor", "trace_conditions"]

TraceSort = Literal["start_time", "latency_ms", "total_cost", "total_tokens", "span_count"]


@dataclass
class TraceFilter:
    start_after: datetime | None = None
    start_before: datetime | None = None
    name: str | None = None
    q: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    status: str | None = None
    model: str | None = None
    environment: str | None = None
    release: str | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    score_name: str | None = None
    min_score: float | None = None
    max_score: float | None = None


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(values: list[Any]) -> str:
    def conv(v: Any) -> Any:
        if isinstance(v, datetime):
            return {"t": v.isoformat()}
        if isinstance(v, Decimal):
            return {"d": str(v)}
        return v

    raw = json.dumps([conv(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"t"}:
            return utc(datetime.fromisoformat(v["t"]))
        if isinstance(v, dict) and set(v) == {"d"}:
            d = Decimal(v["d"])
            if not d.is_finite():
                raise ValueError("not finite")
            return d
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            return v
        raise ValueError("unexpected cursor value")

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        vals = json.loads(raw)
        if not isinstance(vals, list):
            raise ValueError("not a list")
        return [conv(v) for v in vals]
    except Exception:
        raise _bad_cursor()


def _bad_cursor() -> BadRequest:
    return BadRequest(
        "invalid cursor; pass the next_cursor value from the previous page unchanged "
        "(with the same sort and order)",
        details=[{"field": "cursor"}],
    )


def _check_cursor_value(col: Any, v: Any) -> None:
    """The cursor's value must fit the sort column (a cursor from another sort is refused)."""
    py = col.type.python_type if not isinstance(col.type, UtcDateTime) else datetime
    if py is datetime:
        ok = isinstance(v, datetime)
    elif py is str:
        ok = isinstance(v, str)
    else:
        ok = isinstance(v, int | float | Decimal) and abs(float(v)) < 1e300
        if ok and py is int:
            ok = abs(int(v)) < 2**63
    if not ok:
        raise _bad_cursor()


def _keyset(col: Any, id_col: Any, cursor: str | None, desc: bool) -> ColumnElement[bool] | None:
    if not cursor:
        return None
    vals = decode_cursor(cursor)
    if len(vals) != 2:
        raise _bad_cursor()
    v, last_id = vals
    _check_cursor_value(col, v)
    if not isinstance(last_id, str):
        raise _bad_cursor()
    if desc:
        return or_(col < v, and_(col == v, id_col < last_id))
    return or_(col > v, and_(col == v, id_col > last_id))


def trace_conditions(project_id: str, f: TraceFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions on ``trace`` for a filter (shared by the traces list and the metrics
    queries in ``podium.store.repos.metrics``)."""
    tr = t.trace.c
    conds: list[ColumnElement[bool]] = [tr.project_id == project_id]
    if f.start_after:
        conds.append(tr.start_time >= f.start_after)
    if f.start_before:
        conds.append(tr.start_time < f.start_before)
    if f.name:
        conds.append(tr.name == f.name)
    if f.q:
        conds.append(func.lower(tr.name).contains(f.q.lower(), autoescape=True))
    for col, val in (
        ("user_id", f.user_id),
        ("session_id", f.session_id),
        ("status", f.status),
        ("environment", f.environment),
        ("release", f.release),
    ):
        if val is not None:
            conds.append(tr[col] == val)
    if f.min_latency_ms is not None:
        conds.append(tr.latency_ms >= f.min_latency_ms)
    if f.max_latency_ms is not None:
        conds.append(tr.latency_ms <= f.max_latency_ms)
    if f.min_cost is not None:
        conds.append(tr.total_cost >= f.min_cost)
    if f.max_cost is not None:
        conds.append(tr.total_cost <= f.max_cost)
    for tag in f.tags:
        tg = t.trace_tag.c
        conds.append(
            exists().where(tg.project_id == project_id, tg.trace_id == tr.id, tg.tag == tag).correlate(t.trace)
        )
    if f.model:
        s = t.span.c
        # Correlated on trace only: a metrics query may join span or score in the outer FROM too.
        conds.append(exists().where(s.project_id == project_id, s.trace_id == tr.id, s.model == f.model)
                     .correlate(t.trace))
    if f.score_name:
        sc = t.score.c
        sconds = [sc.project_id == project_id, sc.trace_id == tr.id, sc.name == f.score_name]
        if f.min_score is not None:
            sconds.append(sc.value >= f.min_score)
        if f.max_score is not None:
            sconds.append(sc.value <= f.max_score)
        conds.append(exists().where(*sconds).correlate(t.trace))
    return conds


TRACE_LIST_COLUMNS = [
    c for c in t.trace.columns
    if c.name not in ("input", "output", "name_explicit", "input_explicit", "output_explicit")
]


class TraceRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- traces ------------------------------------------------------------------------------
    def list_traces(
        self,
        project_id: str,
        f: TraceFilter,
        *,
        sort: TraceSort = "start_time",
        order: Literal["asc", "desc"] = "desc",
        limit: int = 50,
        cursor: str | None = None,
        include_io: bool = False,
    ) -> Page:
        tr = t.trace.c
        sort_col = tr[sort]
        cols = list(t.trace.columns) if include_io else TRACE_LIST_COLUMNS
        conds = trace_conditions(project_id, f)
        desc = order == "desc"
        ks = _keyset(sort_col, tr.id, cursor, desc)
        if ks is not None:
            conds.append(ks)
        ordering = [sort_col.desc(), tr.id.desc()] if desc else [sort_col.asc(), tr.id.asc()]
        stmt = select(*cols).where(*conds).order_by(*ordering).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            more = len(rows) > limit
            rows = rows[:limit]
            self._attach_tags(conn, project_id, rows)
        nxt = encode_cursor([rows[-1][sort], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)

    def _attach_tags(self, conn: Any, project_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        tg = t.trace_tag.c
        tags: dict[str, list[str]] = {}
        for r in conn.execute(
            select(tg.trace_id, tg.tag)
            .where(tg.project_id == project_id, tg.trace_id.in_([r["id"] for r in rows]))
            .order_by(tg.tag)
        ):
            tags.setdefault(r.trace_id, []).append(r.tag)
        for r in rows:
            r["tags"] = tags.get(r["id"], [])

    def get_trace(self, project_id: str, trace_id: str) -> dict[str, Any]:
        tr = t.trace.c
        with self._engine.connect() as conn:
            row = conn.execute(select(t.trace).where(tr.project_id == project_id, tr.id == trace_id)).first()
            if row is None:
                raise NotFound(
                    f"no trace {trace_id!r} in this project; traces appear about a second after the SDK "
                    "flushes them, and keys only see their own project's data"
                )
            out = dict(row._mapping)
            self._attach_tags(conn, project_id, [out])
        out.pop("name_explicit", None)
        out.pop("input_explicit", None)
        out.pop("output_explicit", None)
        return out

    # --- spans -------------------------------------------------------------------------------
    def list_spans(
        self,
        project_id: str,
        trace_id: str,
        *,
        parent_id: str | None = None,
        roots_only: bool = False,
        limit: int = 1000,
        cursor: str | None = None,
        include_io: bool = True,
        with_child_counts: bool = False,
    ) -> Page:
        s = t.span.c
        cols = [c for c in t.span.columns if include_io or c.name not in ("input", "output", "attributes")]
        conds: list[ColumnElement[bool]] = [s.project_id == project_id, s.trace_id == trace_id]
        if roots_only:
            conds.append(s.parent_id.is_(None))
        elif parent_id is not None:
            conds.append(s.parent_id == parent_id)
        ks = _keyset(s.start_time, s.id, cursor, False)
        if ks is not None:
            conds.append(ks)
        stmt = select(*cols).where(*conds).order_by(s.start_time, s.id).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            more = len(rows) > limit
            rows = rows[:limit]
            if with_child_counts and rows:
                counts: dict[str, int] = dict(
                    conn.execute(
                        select(s.parent_id, func.count())
                        .where(
                            s.project_id == project_id,
                            s.trace_id == trace_id,
                            s.parent_id.in_([r["id"] for r in rows]),
                        )
                        .group_by(s.parent_id)
                    ).all()
                )
                for r in rows:
                    r["child_count"] = counts.get(r["id"], 0)
        nxt = encode_cursor([rows[-1]["start_time"], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)

    def get_span(self, project_id: str, trace_id: str, span_id: str) -> dict[str, Any]:
        s = t.span.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.span).where(s.project_id == project_id, s.trace_id == trace_id, s.id == span_id)
            ).first()
        if row is None:
            raise NotFound(f"no span {span_id!r} in trace {trace_id!r} of this project")
        return dict(row._mapping)

    # --- sessions and users ------------------------------------------------------------------
    def list_groups(
        self,
        project_id: str,
        by: Literal["session_id", "user_id"],
        *,
        limit: int = 50,
        cursor: str | None = None,
        start_after: datetime | None = None,
        start_before: datetime | None = None,
        user_id: str | None = None,
    ) -> Page:
        tr = t.trace.c
        key = tr[by]
        conds: list[ColumnElement[bool]] = [tr.project_id == project_id, key.is_not(None)]
        if start_after:
            conds.append(tr.start_time >= start_after)
        if start_before:
            conds.append(tr.start_time < start_before)
        if user_id is not None and by == "session_id":
            conds.append(tr.user_id == user_id)
        last = func.max(tr.start_time).label("last_seen")
        stmt = (
            select(
                key.label("id"),
                func.count().label("trace_count"),
                func.min(tr.start_time).label("first_seen"),
                last,
                func.sum(tr.total_tokens).label("total_tokens"),
                func.sum(tr.total_cost).label("total_cost"),
                # failed traces (a trace with two failed spans is one error)
                func.sum(case((tr.status == "error", 1), else_=0)).label("error_count"),
                *([func.max(tr.user_id).label("user_id")] if by == "session_id" else []),
                *([func.count(func.distinct(tr.session_id)).label("session_count")] if by == "user_id" else []),
            )
            .where(*conds)
            .group_by(key)
        )
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 2 or not isinstance(vals[0], datetime) or not isinstance(vals[1], str):
                raise _bad_cursor()
            v, last_id = vals
            stmt = stmt.having(or_(last < v, and_(last == v, key < last_id)))
        stmt = stmt.order_by(last.desc(), key.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor([rows[-1]["last_seen"], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)
