"""The columnar read side: ``ColumnarTraceRepo`` and ``ColumnarScoreRepo``, the same methods,
arguments, dict shapes, sort orders, cursors and errors as ``TraceRepo`` / ``ScoreRepo`` (SQL), in
ClickHouse SQL over the ``FINAL`` (latest) version of each row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Engine

from podium.errors import NotFound
from podium.store import tables as t
from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.ingest import _Clock
from podium.store.columnar.rows import (
    SCORE_COLUMNS,
    SPAN_COLUMNS,
    TRACE_COLUMNS,
    from_db,
    json_text,
    select_list,
    utc,
)
from podium.store.repos.scores import ScoreFilter, ScoreRepo, _score
from podium.store.repos.traces import (
    Page,
    TraceFilter,
    TraceRepo,
    TraceSort,
    _bad_cursor,
    _check_cursor_value,
    decode_cursor,
    encode_cursor,
)

__all__ = ["ColumnarScoreRepo", "ColumnarTraceRepo"]

_TRACE_LIST = [c for c in TRACE_COLUMNS if c not in ("input", "output", "name_explicit", "input_explicit",
                                                     "output_explicit")]
_TRACE_GET = [c for c in TRACE_COLUMNS if c not in ("name_explicit", "input_explicit", "output_explicit")]
_CH_TYPE = {
    "start_time": "DateTime64(6, 'UTC')", "latency_ms": "Float64", "total_cost": "Decimal(20, 10)",
    "total_tokens": "Int64", "span_count": "Int64", "timestamp": "DateTime64(6, 'UTC')",
}


class _Cond:
    """WHERE conditions with their server-side bound parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, sql: str, **params: Any) -> None:
        self.parts.append(sql)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "1"


def _keyset(c: _Cond, table: Any, col: str, cursor: str | None, desc: bool) -> None:
    if not cursor:
        return
    vals = decode_cursor(cursor)
    if len(vals) != 2:
        raise _bad_cursor()
    v, last_id = vals
    _check_cursor_value(table.c[col], v)
    if not isinstance(last_id, str):
        raise _bad_cursor()
    typ = _CH_TYPE[col]
    op = "<" if desc else ">"
    if typ.startswith("Decimal"):
        v = Decimal(v).quantize(Decimal("1e-10"))
    elif typ == "Int64":
        v = int(v)
    elif typ == "Float64":
        v = float(v)
    c.add(f"(`{col}` {op} {{kv:{typ}}} OR (`{col}` = {{kv:{typ}}} AND id {op} {{kid:String}}))", kv=v, kid=last_id)


def trace_conditions(project_id: str, f: TraceFilter, *, since: datetime | None = None,
                     until: datetime | None = None) -> _Cond:
    """The trace filter (``podium.store.repos.traces.trace_conditions``) in ClickHouse SQL; ``since`` /
    ``until`` bound ``start_time`` further (the trace list's time windows)."""
    c = _Cond()
    c.add("project_id = {p:String}", p=project_id)
    if since is not None:
        c.add("start_time >= {win_lo:DateTime64(6, 'UTC')}", win_lo=since)
    if until is not None:
        c.add("start_time <= {win_hi:DateTime64(6, 'UTC')}", win_hi=until)
    if f.start_after:
        c.add("start_time >= {sa:DateTime64(6, 'UTC')}", sa=f.start_after)
    if f.start_before:
        c.add("start_time < {sb:DateTime64(6, 'UTC')}", sb=f.start_before)
    if f.name:
        c.add("name = {name:String}", name=f.name)
    if f.q:
        c.add("positionCaseInsensitiveUTF8(ifNull(name, ''), {q:String}) > 0", q=f.q)
    for col, val in (("user_id", f.user_id), ("session_id", f.session_id), ("status", f.status),
                     ("environment", f.environment), ("release", f.release)):
        if val is not None:
            c.add(f"`{col}` = {{{col}:String}}", **{col: val})
    if f.min_latency_ms is not None:
        c.add("latency_ms >= {minl:Float64}", minl=f.min_latency_ms)
    if f.max_latency_ms is not None:
        c.add("latency_ms <= {maxl:Float64}", maxl=f.max_latency_ms)
    if f.min_cost is not None:
        c.add("toFloat64(total_cost) >= {minc:Float64}", minc=f.min_cost)
    if f.max_cost is not None:
        c.add("toFloat64(total_cost) <= {maxc:Float64}", maxc=f.max_cost)
    for i, tag in enumerate(f.tags):
        c.add(f"id IN (SELECT trace_id FROM $db.trace_tag WHERE project_id = {{p:String}} AND tag = {{tag{i}:String}})",
              **{f"tag{i}": tag})
    if f.score_name:
        sc = "project_id = {p:String} AND name = {sname:String} AND trace_id IS NOT NULL"
        params: dict[str, Any] = {"sname": f.score_name}
        if f.min_score is not None:
            sc += " AND value >= {mins:Float64}"
            params["mins"] = f.min_score
        if f.max_score is not None:
            sc += " AND value <= {maxs:Float64}"
            params["maxs"] = f.max_score
        c.add(f"id IN (SELECT trace_id FROM $db.score FINAL WHERE {sc})", **params)
    if f.model:
        # Spans are sorted by (project, trace): the spans of the traces the other conditions leave (a time
        # window's few hundred) are primary-key ranges, where "every span of that model" read the model
        # column of the whole project. Without FINAL: a span whose model a later re-send changed matches
        # its old model until ClickHouse merges the parts (docs/columnar.md, limits).
        c.add("id IN (SELECT trace_id FROM $db.span WHERE project_id = {p:String} AND model = {model:String} "
              f"AND trace_id IN (SELECT id FROM $db.trace WHERE {c.sql()}))", model=f.model)
    return c


class ColumnarTraceRepo(TraceRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

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
        if sort not in _CH_TYPE or sort == "timestamp":
            raise _bad_cursor()
        cols = [c for c in TRACE_COLUMNS if include_io or c in _TRACE_LIST]
        desc = order == "desc"
        direction = "DESC" if desc else "ASC"
        sql = (f"SELECT {select_list(cols)} FROM $db.trace FINAL WHERE {{where}} "
               f"ORDER BY `{sort}` {direction}, id {direction} LIMIT {int(limit) + 1}")

        def conditions(f: TraceFilter, since: datetime | None = None, until: datetime | None = None) -> _Cond:
            cond = trace_conditions(project_id, f, since=since, until=until)
            _keyset(cond, t.trace, sort, cursor, desc)
            return cond

        if sort == "start_time":
            raw = self._time_windows(sql, conditions, f, desc, limit)
        else:
            cond = conditions(f)
            raw = self._c.query_dicts(sql.replace("{where}", cond.sql()), cond.params)
        rows = [from_db("trace", r) for r in raw]
        more = len(rows) > limit
        rows = rows[:limit]
        self._attach_tags(None, project_id, rows)
        nxt = encode_cursor([rows[-1][sort], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)

    def _time_windows(self, sql: str, conditions: Callable[..., _Cond], f: TraceFilter, desc: bool,
                      limit: int) -> list[dict[str, Any]]:
        """The newest (oldest) page by start time without a FINAL pass over every trace of the project:
        read a window next to the project's newest (oldest) trace, then 32x wider ones, until
        the page is full or the window covers everything. Rows outside a window sort after every row in
        it, so a full page from a window is the page. (``start_time`` leads ``trace``'s sorting key after
        the project, so a window reads only its own granules.)"""
        cond = conditions(f)

        def everything() -> list[dict[str, Any]]:
            return self._c.query_dicts(sql.replace("{where}", cond.sql()), cond.params)

        # The edges without the model filter (the cheap conditions on trace rows): the windows only
        # start narrower than they need to.
        edge_cond = conditions(replace(f, model=None))
        edge = self._c.query(f"SELECT min(start_time), max(start_time), count() FROM $db.trace WHERE "
                             f"{edge_cond.sql()}", edge_cond.params)
        if not edge or not edge[0][2]:
            return []
        lo, hi, versions = utc(edge[0][0]), utc(edge[0][1]), int(edge[0][2])
        assert lo is not None and hi is not None
        if versions <= 4 * limit:  # a small result: one pass
            return everything()
        anchor = hi if desc else lo
        # Twice the width that would hold a page if the traces were spread evenly (at least a second).
        span_s = max(1.0, (hi - lo).total_seconds() * 2 * (limit + 1) / versions)
        while True:
            bound = anchor - timedelta(seconds=span_s) if desc else anchor + timedelta(seconds=span_s)
            outside = (f.start_after is not None and desc and bound <= f.start_after) or (
                f.start_before is not None and not desc and bound >= f.start_before)
            if outside or span_s > 86_400 * 366 * 50:
                return everything()
            win = conditions(f, since=bound) if desc else conditions(f, until=bound)
            rows = self._c.query_dicts(sql.replace("{where}", win.sql()), win.params)
            if len(rows) > limit:
                return rows
            # Widen by what the window's yield says a full page needs (twice over), at most 32x: a model
            # filter keeps a fifth of the traces, and each trace in the window costs a read of its spans.
            span_s *= 32 if not rows else min(32.0, max(2.0, 2 * (limit + 1) / len(rows)))

    def _attach_tags(self, conn: Any, project_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        tags: dict[str, list[str]] = {}
        for trace_id, tag in self._c.query(
            "SELECT DISTINCT trace_id, tag FROM $db.trace_tag WHERE project_id = {p:String} "
            "AND trace_id IN {ids:Array(String)} ORDER BY tag",
            {"p": project_id, "ids": [r["id"] for r in rows]},
        ):
            tags.setdefault(trace_id, []).append(tag)
        for r in rows:
            r["tags"] = tags.get(r["id"], [])

    def get_trace(self, project_id: str, trace_id: str) -> dict[str, Any]:
        rows = self._c.query_dicts(
            f"SELECT {select_list(_TRACE_GET)} FROM $db.trace FINAL WHERE project_id = {{p:String}} "
            "AND id = {id:String} LIMIT 1",
            {"p": project_id, "id": trace_id},
        )
        if not rows:
            raise NotFound(
                f"no trace {trace_id!r} in this project; traces appear about a second after the SDK "
                "flushes them, and keys only see their own project's data"
            )
        out = from_db("trace", rows[0])
        self._attach_tags(None, project_id, [out])
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
        cols = [c for c in SPAN_COLUMNS if include_io or c not in ("input", "output", "attributes")]
        cond = _Cond()
        cond.add("project_id = {p:String} AND trace_id = {t:String}", p=project_id, t=trace_id)
        if roots_only:
            cond.add("parent_id IS NULL")
        elif parent_id is not None:
            cond.add("parent_id = {parent:String}", parent=parent_id)
        _keyset(cond, t.span, "start_time", cursor, False)
        rows = [
            from_db("span", r)
            for r in self._c.query_dicts(
                f"SELECT {select_list(cols)} FROM $db.span FINAL WHERE {cond.sql()} "
                f"ORDER BY start_time, id LIMIT {int(limit) + 1}",
                cond.params,
            )
        ]
        more = len(rows) > limit
        rows = rows[:limit]
        if with_child_counts and rows:
            counts: dict[str, int] = {
                pid: int(n)
                for pid, n in self._c.query(
                    "SELECT parent_id, count() FROM $db.span FINAL WHERE project_id = {p:String} "
                    "AND trace_id = {t:String} AND parent_id IN {ids:Array(String)} GROUP BY parent_id",
                    {"p": project_id, "t": trace_id, "ids": [r["id"] for r in rows]},
                )
            }
            for r in rows:
                r["child_count"] = counts.get(r["id"], 0)
        nxt = encode_cursor([rows[-1]["start_time"], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)

    def get_span(self, project_id: str, trace_id: str, span_id: str) -> dict[str, Any]:
        rows = self._c.query_dicts(
            f"SELECT {select_list(SPAN_COLUMNS)} FROM $db.span FINAL WHERE project_id = {{p:String}} "
            "AND trace_id = {t:String} AND id = {id:String} LIMIT 1",
            {"p": project_id, "t": trace_id, "id": span_id},
        )
        if not rows:
            raise NotFound(f"no span {span_id!r} in trace {trace_id!r} of this project")
        return from_db("span", rows[0])

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
        key = "session_id" if by == "session_id" else "user_id"
        cond = _Cond()
        cond.add(f"project_id = {{p:String}} AND {key} IS NOT NULL", p=project_id)
        if start_after:
            cond.add("start_time >= {sa:DateTime64(6, 'UTC')}", sa=start_after)
        if start_before:
            cond.add("start_time < {sb:DateTime64(6, 'UTC')}", sb=start_before)
        if user_id is not None and by == "session_id":
            cond.add("user_id = {uid:String}", uid=user_id)
        having = ""
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 2 or not isinstance(vals[0], datetime) or not isinstance(vals[1], str):
                raise _bad_cursor()
            having = ("HAVING g_last < {kv:DateTime64(6, 'UTC')} OR "
                      "(g_last = {kv:DateTime64(6, 'UTC')} AND g_id < {kid:String})")
            cond.params.update(kv=vals[0], kid=vals[1])
        extra = ", max(user_id) AS g_user" if by == "session_id" else ", uniqExact(session_id) AS g_sessions"
        rows = self._c.query_dicts(
            f"SELECT assumeNotNull({key}) AS g_id, count() AS g_count, min(start_time) AS g_first, "
            "max(start_time) AS g_last, sum(total_tokens) AS g_tokens, sum(total_cost) AS g_cost, "
            f"countIf(status = 'error') AS g_errors{extra} FROM $db.trace FINAL WHERE {cond.sql()} "
            f"GROUP BY g_id {having} ORDER BY g_last DESC, g_id DESC LIMIT {int(limit) + 1}",
            cond.params,
        )
        out: list[dict[str, Any]] = []
        for r in rows:
            item = {
                "id": r["g_id"], "trace_count": int(r["g_count"]), "first_seen": r["g_first"],
                "last_seen": r["g_last"], "total_tokens": int(r["g_tokens"]),
                "total_cost": Decimal(r["g_cost"]).quantize(Decimal("1e-10")), "error_count": int(r["g_errors"]),
            }
            if by == "session_id":
                item["user_id"] = r["g_user"]
            else:
                item["session_count"] = int(r["g_sessions"])
            item["first_seen"], item["last_seen"] = utc(item["first_seen"]), utc(item["last_seen"])
            out.append(item)
        more = len(out) > limit
        out = out[:limit]
        nxt = encode_cursor([out[-1]["last_seen"], out[-1]["id"]]) if more and out else None
        return Page(items=out, next_cursor=nxt)


class ColumnarScoreRepo(ScoreRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client
        self._clock = _Clock()

    def list_scores(self, project_id: str, f: ScoreFilter, *, limit: int = 50, cursor: str | None = None) -> Page:
        cond = _Cond()
        cond.add("project_id = {p:String}", p=project_id)
        for col in ("trace_id", "span_id", "session_id", "name", "source", "data_type"):
            v = getattr(f, col)
            if v is not None:
                cond.add(f"`{col}` = {{f_{col}:String}}", **{f"f_{col}": v})
        if f.after:
            cond.add("timestamp >= {after:DateTime64(6, 'UTC')}", after=f.after)
        if f.before:
            cond.add("timestamp < {before:DateTime64(6, 'UTC')}", before=f.before)
        _keyset(cond, t.score, "timestamp", cursor, True)
        rows = [
            _score(from_db("score", r))
            for r in self._c.query_dicts(
                f"SELECT {select_list(SCORE_COLUMNS)} FROM $db.score FINAL WHERE {cond.sql()} "
                f"ORDER BY timestamp DESC, id DESC LIMIT {int(limit) + 1}",
                cond.params,
            )
        ]
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor([rows[-1]["timestamp"], rows[-1]["id"]]) if more and rows else None
        return Page(items=rows, next_cursor=nxt)

    def _get(self, project_id: str, score_id: str) -> dict[str, Any] | None:
        rows = self._c.query_dicts(
            f"SELECT {select_list(SCORE_COLUMNS)} FROM $db.score FINAL WHERE project_id = {{p:String}} "
            "AND id = {id:String} LIMIT 1",
            {"p": project_id, "id": score_id},
        )
        return from_db("score", rows[0]) if rows else None

    def get_score(self, project_id: str, score_id: str) -> dict[str, Any] | None:
        row = self._get(project_id, score_id)
        return _score(row) if row is not None else None

    def delete_score(self, project_id: str, score_id: str) -> bool:
        """Delete one score (a tombstone version); False when there was none with this id."""
        row = self._get(project_id, score_id)
        if row is None:
            return False
        row["metadata"] = json_text(row["metadata"])
        cols = [*SCORE_COLUMNS, "version", "is_deleted"]
        row.update(version=self._clock.next(), is_deleted=1)
        self._c.insert("score", cols, [[row[c]] for c in cols])
        return True
