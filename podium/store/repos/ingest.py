"""The write path: idempotent upserts of spans, traces and scores, then trace aggregates.

Called only by the server's single writer (one per process and database). One call is
one transaction; the caller acknowledges items only after it returns.

Merge rules (so retries never duplicate and a span's end may arrive after its start):
- spans and traces are upserted by (project_id, [trace_id,] id); a column sent as NULL keeps
  the stored value (COALESCE), a value overwrites; a span row with an empty name is a partial
  update that keeps the stored name and start time (OTLP GenAI log events, server/otlp_logs.py);
- a trace row is derived from its spans: start = min(start), end = max(end), totals are sums
  over the spans whose usage is counted, name/input/output come from the root span unless set
  explicitly (trace item or trace_name);
- usage is counted once per actual model call (``span.usage_counted``, docs/data-model.md): a
  span's usage counts unless a descendant carries usage (it wraps the real call: a framework's
  wrapper, or a client span around the gateway's span of the same call) or it is a failed call
  with estimated usage. Spans of a trace arrive in any order and batch, so the flags of every
  touched trace are recomputed from all its spans in the same transaction, before its totals;
- tags accumulate; scores are replaced whole by id.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NotRequired, TypedDict, cast

import msgspec
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Engine,
    Numeric,
    bindparam,
)
from sqlalchemy.dialects import postgresql, sqlite

from podium.store import tables as t
from podium.store.types import UtcDateTime

__all__ = ["IngestBatch", "IngestRepo", "ScoreRow", "SpanRow", "TagRow", "TraceRow"]

_CHUNK = 500


# --- the rows of the seam (server/convert.py builds them, IngestRepo.write stores them) -------------
# TypedDicts: plain dicts at run time (nothing added to the hot path), checked by mypy where built.


class SpanRow(TypedDict):
    """One span as written: every ``span`` column (``usage_counted`` is the writer's to set).
    A row with an empty ``name`` is a partial update (see ``_span_upsert``)."""

    project_id: str
    trace_id: str
    id: str
    parent_id: str | None
    name: str
    kind: str
    start_time: datetime
    end_time: datetime | None
    latency_ms: float | None
    status: str
    status_message: str | None
    model: str | None
    provider: str | None
    model_parameters: Any
    input: Any
    output: Any
    metadata: Any
    attributes: Any
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    usage_details: Any
    usage_estimated: bool | None
    usage_counted: NotRequired[bool | None]
    cost_input: Decimal | None
    cost_output: Decimal | None
    cost_total: Decimal | None
    completion_start_time: datetime | None
    prompt_name: str | None
    prompt_version: int | None
    updated_at: datetime | None  # stamped by the writer


class TraceRow(TypedDict):
    """Trace-level fields sent with a span (hints) or as a trace item (explicit ones). None keeps
    what is stored; the aggregates are derived from the spans, never sent."""

    project_id: str
    id: str
    name: str | None
    user_id: str | None
    session_id: str | None
    release: str | None
    environment: str | None
    metadata: Any
    input: Any
    output: Any
    start_time: NotRequired[datetime | None]  # trace items only


class ScoreRow(TypedDict):
    """One score as written (replaced whole by id)."""

    project_id: str
    id: str
    trace_id: str | None
    span_id: str | None
    session_id: str | None
    name: str
    data_type: str
    value: float | None
    string_value: str | None
    source: str
    comment: str | None
    metadata: Any
    timestamp: datetime


#: One trace tag: (project_id, trace_id, tag). Tags accumulate.
TagRow = tuple[str, str, str]


@dataclass
class IngestBatch:
    """Rows ready for the store (already validated, priced and flattened)."""

    spans: list[SpanRow] = field(default_factory=list)
    traces: list[TraceRow] = field(default_factory=list)  # trace-level hints / explicit fields
    tags: list[TagRow] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.traces) + len(self.scores)


SPAN_COLUMNS = [c.name for c in t.span.columns]
TRACE_HINT_COLUMNS = ["user_id", "session_id", "release", "environment", "metadata"]


def _insert(conn: Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class IngestRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        #: A lock file the writers of several server processes on one SQLite file take around
        #: each transaction (``podium up --workers N``, podium/server/processes.py): a waiting
        #: writer wakes when the other commits instead of polling in SQLite's busy handler.
        self.process_lock: str | None = None
        self._lock_fd: int | None = None
        self._thread_lock = threading.Lock()

    def write(self, batch: IngestBatch) -> None:
        # The span rows' driver values are computed before the transaction (and before the
        # process lock): on SQLite with several processes, only the statements are serial.
        params = self._span_params(batch.spans) if batch.spans else None
        if self.process_lock is None:
            with self._engine.begin() as conn:
                self._write(conn, batch, params)
            return
        import fcntl  # POSIX only; set only by the multi-process server on Linux/macOS

        with self._thread_lock:
            if self._lock_fd is None:
                self._lock_fd = os.open(self.process_lock, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks without the GIL
            try:
                with self._engine.begin() as conn:
                    self._write(conn, batch, params)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, conn: Connection, batch: IngestBatch, span_params: list[tuple[Any, ...]] | None = None) -> None:
        now = datetime.now(UTC)
        if batch.spans:
            self._upsert_spans(conn, self._span_params(batch.spans) if span_params is None else span_params, now)
        touched = {(s["project_id"], s["trace_id"]) for s in batch.spans}
        if batch.traces or batch.spans:
            self._upsert_trace_hints(conn, batch, now)
        if batch.tags:
            stmt = _insert(conn, t.trace_tag).on_conflict_do_nothing()
            rows = [{"project_id": p, "trace_id": tr, "tag": tag} for p, tr, tag in set(batch.tags)]
            conn.execute(stmt, rows)
        if touched:
            self._mark_usage(conn, touched)
            self._refresh_traces(conn, touched, now)
        if batch.scores:
            # Scores are replaced whole by id: the last one in the batch wins.
            self._upsert_scores(conn, list({(r["project_id"], r["id"]): r for r in batch.scores}.values()))

    # --- spans -------------------------------------------------------------------------------
    def _span_params(self, spans: list[SpanRow]) -> list[tuple[Any, ...]]:
        """The driver values of the span upsert, one tuple per span (merged by key), without
        ``updated_at`` (the statement's last column, stamped inside the transaction)."""
        rows = _dedupe(spans, ("project_id", "trace_id", "id"))
        for r in rows:
            # The span's own verdict; _mark_usage corrects it against the rest of its trace.
            r["usage_counted"] = _counts_alone(r)
        convert = _span_upsert(self._engine.dialect.name)[1]
        return list(map(convert, cast(list[dict[str, Any]], rows)))

    def _upsert_spans(self, conn: Connection, params: list[tuple[Any, ...]], now: datetime) -> None:
        # The hottest statement in Podium: a hand-built upsert run through the driver's
        # executemany, with values converted once per column. SQLAlchemy's per-row bind
        # processing cost ~3x the database's own time here (see docs/benchmarks.md).
        sql = _span_upsert(conn.dialect.name)[0]
        stamp = (_converter(t.span.c.updated_at.type, conn.dialect.name)(now),)
        sql.run(conn, [p + stamp for p in params])

    # --- traces ------------------------------------------------------------------------------
    def _upsert_trace_hints(self, conn: Connection, batch: IngestBatch, now: datetime) -> None:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for s in batch.spans:
            key = (s["project_id"], s["trace_id"])
            m = merged.get(key)
            if m is None:
                merged[key] = _blank_trace(key, s["start_time"], now)
            elif s["start_time"] < m["start_time"]:
                m["start_time"] = s["start_time"]
        for h in cast(list[dict[str, Any]], batch.traces):  # TraceRows, read by column name
            key = (h["project_id"], h["id"])
            m = merged.setdefault(key, _blank_trace(key, h.get("start_time") or now, now))
            for c in (*TRACE_HINT_COLUMNS, "input", "output"):
                if h.get(c) is not None:
                    m[c] = h[c]
            if h.get("name") is not None:
                m["name"], m["name_explicit"] = h["name"], True
            if h.get("input") is not None:
                m["input_explicit"] = True
            if h.get("output") is not None:
                m["output_explicit"] = True
        if not merged:
            return
        sql, convert = _trace_upsert(conn.dialect.name)
        sql.run(conn, list(map(convert, merged.values())))

    def _mark_usage(self, conn: Connection, touched: set[tuple[str, str]]) -> None:
        """Recompute ``usage_counted`` for every span of the touched traces (see the module
        docstring), and link a counted call that names no prompt to the prompt of the wrapper
        whose usage it replaces (so prompt analytics keep the call). Writes only what changed."""
        by_project: dict[str, list[str]] = {}
        for p, tr in touched:
            by_project.setdefault(p, []).append(tr)
        select_sql, flag_sql, prompt_sql = _usage_statements(conn.dialect.name)
        for project_id, trace_ids in by_project.items():
            for chunk in _chunks(sorted(trace_ids)):
                ids: Any = list(chunk)
                per_trace: dict[str, list[Any]] = {}
                for row in conn.execute(select_sql, {"p": project_id, "ids": ids}).all():  # one fetchall
                    per_trace.setdefault(row[0], []).append(row)
                flags: list[dict[str, Any]] = []
                prompts: list[dict[str, Any]] = []
                for trace_id, rows in per_trace.items():
                    changed, linked = usage_flags(rows)
                    flags += [{"p": project_id, "t": trace_id, "i": i, "c": c} for i, c in changed]
                    prompts += [{"p": project_id, "t": trace_id, "i": i, "n": n, "v": v} for i, n, v in linked]
                if flags:
                    conn.execute(flag_sql, flags)
                if prompts:
                    conn.execute(prompt_sql, prompts)

    def _refresh_traces(self, conn: Connection, touched: set[tuple[str, str]], now: datetime) -> None:
        """Recompute the derived columns of the touched traces from their spans, in SQL."""
        by_project: dict[str, list[str]] = {}
        for p, tr in touched:
            by_project.setdefault(p, []).append(tr)
        stmt = _refresh_statement(conn.dialect.name)
        stamp = _converter(t.trace.c.updated_at.type, conn.dialect.name)(now)
        for project_id, trace_ids in by_project.items():
            for chunk in _chunks(sorted(trace_ids)):
                conn.execute(stmt, {"p": project_id, "ids": list(chunk), "now": stamp})

    # --- scores ------------------------------------------------------------------------------
    def _upsert_scores(self, conn: Connection, rows: list[ScoreRow]) -> None:
        stmt = _insert(conn, t.score)
        stmt = stmt.on_conflict_do_update(
            index_elements=["project_id", "id"],
            set_={c.name: stmt.excluded[c.name] for c in t.score.columns if c.name not in ("project_id", "id")},
        )
        conn.execute(stmt, rows)


class _Upsert:
    """An upsert as ``head + row, row, ... + tail``.

    PostgreSQL: psycopg's executemany with the one-row statement. SQLite: multi-row
    ``VALUES`` statements of up to ~30,000 parameters. Python's sqlite3 ``executemany``
    releases and re-takes the GIL for every row, so with the event loop busy (the gateway
    under load) each row waited for the GIL: the writer fell to ~400 items/s and its
    backlog grew without bound. One statement per chunk takes the GIL once per chunk.
    """

    __slots__ = ("clear_sql", "copy_sql", "head", "insert_select", "row", "stage_sql", "tail", "width")

    def __init__(self, head: str, row: str, tail: str, *, table: str | None = None,
                 cols: Sequence[str] = ()) -> None:
        self.head, self.row, self.tail = head, row, tail
        self.width = row.count("?") + row.count("%s")
        # PostgreSQL, larger batches: COPY into a per-connection temporary staging table, then one
        # INSERT ... SELECT ... ON CONFLICT. psycopg's executemany runs Python per row (adapt,
        # prepare, pipeline bookkeeping); COPY adapts rows in C. See docs/benchmarks.md.
        self.stage_sql = self.copy_sql = self.insert_select = self.clear_sql = ""
        if table is not None and "%s" in row:
            stage = f"podium_stage_{table}"
            names = iter(cols)
            select = row.strip()[1:-1].replace("%s", "{}").format(*names)
            # Only the copied columns, without constraints (the INSERT into the real table checks them).
            self.stage_sql = (
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
                f"AS SELECT {', '.join(cols)} FROM {table} WITH NO DATA"
            )
            self.copy_sql = f"COPY {stage} ({', '.join(cols)}) FROM STDIN"
            self.clear_sql = f"DELETE FROM {stage}"
            self.insert_select = head.removesuffix("VALUES ") + f"SELECT {select} FROM {stage}" + tail

    @functools.lru_cache(maxsize=32)  # noqa: B019 - ~10 power-of-two chunk sizes per statement
    def _many(self, n: int) -> str:
        return self.head + ", ".join([self.row] * n) + self.tail

    def run(self, conn: Connection, params: list[tuple[Any, ...]]) -> None:
        if not params:
            return
        if conn.dialect.name != "sqlite":
            if self.copy_sql and len(params) >= _COPY_MIN_ROWS:
                self._copy(conn, params)
            else:
                conn.exec_driver_sql(self.head + self.row + self.tail, params)
            return
        # Chunks of power-of-two sizes: sqlite3 caches every distinct statement it prepares
        # (a 500-row VALUES program is megabytes), so only ~10 distinct sizes may exist.
        per = 1 << (max(1, 30_000 // self.width).bit_length() - 1)
        i = 0
        while i < len(params):
            n = min(per, 1 << ((len(params) - i).bit_length() - 1))
            chunk = params[i : i + n]
            conn.exec_driver_sql(self._many(n), tuple(v for row in chunk for v in row))
            i += n


    def _copy(self, conn: Connection, params: list[tuple[Any, ...]]) -> None:
        raw: Any = conn.connection.dbapi_connection  # psycopg 3, inside SQLAlchemy's transaction
        with raw.cursor() as cur:
            # Once per connection (a no-op afterwards); ON COMMIT DELETE ROWS empties it per transaction.
            cur.execute(self.stage_sql)
            with cur.copy(self.copy_sql) as copy:
                write = copy.write_row
                for row in params:
                    write(row)
            cur.execute(self.insert_select)
            cur.execute(self.clear_sql)  # empty again, for a second upsert in the same transaction


#: Below this many rows psycopg's executemany is as cheap as COPY's extra statements.
_COPY_MIN_ROWS = 32

_SPAN_KEY = ("project_id", "trace_id", "id")
_SPAN_ALWAYS = ("name", "start_time", "updated_at")


@functools.cache
def _span_upsert(dialect: str) -> tuple[_Upsert, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """``INSERT ... ON CONFLICT DO UPDATE`` for spans (the same SQL on SQLite >= 3.24 and
    PostgreSQL) and per-column value converters matching what SQLAlchemy would bind."""
    ph = "?" if dialect == "sqlite" else "%s"
    # updated_at last: the row tuples are built before the transaction, the stamp added in it.
    cols = [c for c in SPAN_COLUMNS if c != "updated_at"] + ["updated_at"]
    sets = []
    for c in cols:
        if c in _SPAN_KEY:
            continue
        if c in ("name", "start_time"):
            # A row with an empty name is a partial update (e.g. GenAI log events that arrived
            # before or after their span): it never renames or moves the stored span.
            sets.append(f"{c} = CASE WHEN excluded.name = '' THEN span.{c} ELSE excluded.{c} END")
        elif c in _SPAN_ALWAYS:
            sets.append(f"{c} = excluded.{c}")
        elif c == "kind":
            # The generic "span" never hides a specific kind sent earlier (e.g. by the start write).
            sets.append("kind = CASE WHEN excluded.kind = 'span' THEN span.kind ELSE excluded.kind END")
        elif c == "status":
            # A later "unset" never hides an earlier ok/error.
            sets.append("status = CASE WHEN excluded.status = 'unset' THEN span.status ELSE excluded.status END")
        else:
            # NULL never erases: a span's end may arrive after its start.
            sets.append(f"{c} = COALESCE(excluded.{c}, span.{c})")
    sql = _Upsert(
        f"INSERT INTO span ({', '.join(cols)}) VALUES ",
        f"({', '.join([ph] * len(cols))})",
        f" ON CONFLICT (project_id, trace_id, id) DO UPDATE SET {', '.join(sets)}",
        table="span", cols=cols,
    )
    return sql, _row_tuple(t.span, cols[:-1], dialect)


_TRACE_INSERT_COLUMNS = (
    "project_id", "id", "name", "name_explicit", "user_id", "session_id", "release", "environment",
    "metadata", "input", "output", "input_explicit", "output_explicit", "start_time", "updated_at",
)


@functools.cache
def _trace_upsert(dialect: str) -> tuple[_Upsert, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """Create traces (zeroed aggregates) or merge trace-level hints into existing ones."""
    ph = "?" if dialect == "sqlite" else "%s"
    cols = list(_TRACE_INSERT_COLUMNS)
    zeros = {"latency_ms": "0", "status": "'ok'", "span_count": "0", "error_count": "0", "input_tokens": "0",
             "output_tokens": "0", "total_tokens": "0", "total_cost": "0"}
    sets = [f"{c} = COALESCE(excluded.{c}, trace.{c})" for c in TRACE_HINT_COLUMNS]
    sets += [
        "name = CASE WHEN excluded.name_explicit THEN excluded.name ELSE trace.name END",
        "name_explicit = (trace.name_explicit OR excluded.name_explicit)",
        "input = CASE WHEN excluded.input_explicit THEN excluded.input ELSE trace.input END",
        "output = CASE WHEN excluded.output_explicit THEN excluded.output ELSE trace.output END",
        "input_explicit = (trace.input_explicit OR excluded.input_explicit)",
        "output_explicit = (trace.output_explicit OR excluded.output_explicit)",
        "start_time = CASE WHEN excluded.start_time < trace.start_time THEN excluded.start_time "
        "ELSE trace.start_time END",
        "updated_at = excluded.updated_at",
    ]
    sql = _Upsert(
        f"INSERT INTO trace ({', '.join(cols + list(zeros))}) VALUES ",
        f"({', '.join([ph] * len(cols) + list(zeros.values()))})",
        f" ON CONFLICT (project_id, id) DO UPDATE SET {', '.join(sets)}",
        table="trace", cols=cols,
    )
    return sql, _row_tuple(t.trace, cols, dialect)


@functools.cache
def _refresh_statement(dialect: str) -> Any:
    """One UPDATE ... FROM (aggregate over span) for a chunk of traces (SQLite >= 3.33, PostgreSQL)."""
    from sqlalchemy import text

    if dialect == "sqlite":
        # Times are stored as 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds via strftime('%s') plus the
        # fraction, exact to the microsecond (julianday() loses ~10 us at today's dates).
        latency = (
            "((CAST(strftime('%s', a.en) AS INTEGER) - CAST(strftime('%s', a.st) AS INTEGER)) "
            "+ (CAST(substr(a.en, 20) AS REAL) - CAST(substr(a.st, 20) AS REAL))) * 1000.0"
        )
    else:
        latency = "EXTRACT(EPOCH FROM (a.en - a.st)) * 1000.0"

    def root(col: str) -> str:
        return (
            f"(SELECT r.{col} FROM span r WHERE r.project_id = trace.project_id AND r.trace_id = trace.id "
            "AND r.parent_id IS NULL ORDER BY r.start_time LIMIT 1)"
        )

    aggregates = """
        MIN(start_time) AS st, MAX(COALESCE(end_time, start_time)) AS en, COUNT(*) AS n,
        SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errs,
        SUM(CASE WHEN usage_counted THEN COALESCE(input_tokens, 0) ELSE 0 END) AS itok,
        SUM(CASE WHEN usage_counted THEN COALESCE(output_tokens, 0) ELSE 0 END) AS otok,
        SUM(CASE WHEN usage_counted THEN COALESCE(total_tokens, 0) ELSE 0 END) AS ttok,
        ROUND(SUM(CASE WHEN usage_counted THEN COALESCE(cost_total, 0) ELSE 0 END), 10) AS cost"""
    if dialect == "sqlite":
        source = f"SELECT trace_id, {aggregates} FROM span WHERE project_id = :p AND trace_id IN :ids GROUP BY trace_id"
    else:
        # PostgreSQL plans `trace_id = ANY(...)` as a filter over the project's spans (it read
        # every span of the project per write); driving from the id list keeps it an index lookup.
        source = (
            f"SELECT k.id AS trace_id, agg.* FROM unnest(CAST(:ids AS text[])) AS k(id) CROSS JOIN LATERAL "
            f"(SELECT {aggregates} FROM span WHERE project_id = :p AND trace_id = k.id) AS agg"
        )
    sql = f"""
        UPDATE trace SET
            start_time = a.st, end_time = a.en, latency_ms = {latency},
            span_count = a.n, error_count = a.errs,
            status = CASE WHEN a.errs > 0 THEN 'error' ELSE 'ok' END,
            input_tokens = a.itok, output_tokens = a.otok, total_tokens = a.ttok, total_cost = a.cost,
            name = CASE WHEN trace.name_explicit THEN trace.name ELSE COALESCE({root("name")}, trace.name) END,
            input = CASE WHEN trace.input_explicit THEN trace.input
                         ELSE COALESCE({root("input")}, trace.input) END,
            output = CASE WHEN trace.output_explicit THEN trace.output
                          ELSE COALESCE({root("output")}, trace.output) END,
            updated_at = :now
        FROM ({source}) AS a
        WHERE trace.project_id = :p AND trace.id = a.trace_id AND a.n > 0
    """
    if dialect == "sqlite":
        return text(sql).bindparams(bindparam("ids", expanding=True))
    return text(sql)


def _counts_alone(r: SpanRow) -> bool | None:
    """A span's usage verdict on its own: None (no usage), False (a failed call whose usage was
    only estimated: it never reached a model, or we cannot know what it used), True."""
    if r.get("total_tokens") is None and r.get("cost_total") is None:
        return None
    return not (bool(r.get("usage_estimated")) and r.get("status") == "error")


def usage_flags(rows: Sequence[Any]) -> tuple[list[tuple[str, bool | None]], list[tuple[str, str, int | None]]]:
    """The usage rule over all spans of one trace.

    ``rows``: ``(trace_id, id, parent_id, status, usage_estimated, has_usage, usage_counted,
    prompt_name, prompt_version, is_gateway, start_time, end_time, input_tokens,
    output_tokens)``. A span's usage counts when it carries usage, is not a failed call with
    estimated usage, no descendant carries countable usage (then the descendant is the actual
    model call and this span a wrapper of it), and it is not the client's span of a call the
    gateway logged beside it (below). Returns the ``(id, flag)`` pairs that differ from the
    stored flags, and ``(id, prompt_name, prompt_version)`` for counted spans without a prompt
    under a wrapper (or beside a client span) that names one.

    The gateway's span of a call joins the trace as the child of the span that was current
    when the request left (``traceparent``). Most instrumentations make their LLM span current
    (the gateway's span is then its child); LangChain's never is, so the gateway's span lands
    beside it, under the same parent. A sibling that carries usage, is not itself a gateway
    span, was running when the gateway's span started and reports the same token counts (or
    only estimated ones) is that call's client span; each gateway span pairs with one.
    """
    parent: dict[str, str | None] = {}
    alone: dict[str, bool | None] = {}
    stored: dict[str, bool | None] = {}
    prompt: dict[str, tuple[str, int | None]] = {}
    info: dict[str, tuple[Any, ...]] = {}
    for _tr, sid, pid, status, estimated, has, counted, pname, pver, gw, st, en, itok, otok in rows:
        parent[sid] = pid
        alone[sid] = (not (bool(estimated) and status == "error")) if has else None
        stored[sid] = None if counted is None else bool(counted)
        if pname is not None:
            prompt[sid] = (pname, pver)
        if has:
            info[sid] = (bool(gw), st, en if en is not None else st, itok, otok, bool(estimated))
    wrappers: set[str] = set()
    twins = _client_twins(parent, alone, info)
    twin_of = {g: c for c, g in twins.items()}
    for sid, ok in alone.items():
        if not ok:
            continue
        p = parent[sid]
        # Walk up to the root; an ancestor already marked had its own ancestors marked too.
        while p is not None and p in parent and p not in wrappers and p != sid:
            wrappers.add(p)
            p = parent[p]
    changed: list[tuple[str, bool | None]] = []
    linked: list[tuple[str, str, int | None]] = []
    for sid, ok in alone.items():
        flag = None if ok is None else (ok and sid not in wrappers and sid not in twins)
        if flag != stored[sid]:
            changed.append((sid, flag))
        if flag and sid not in prompt:
            twin = twin_of.get(sid)
            if twin is not None and twin in prompt:
                linked.append((sid, *prompt[twin]))
                continue
            p, seen = parent[sid], 0
            while p is not None and p in parent and seen < len(parent):
                if p in prompt and alone[p] is not None:
                    linked.append((sid, *prompt[p]))
                    break
                p, seen = parent[p], seen + 1
    return changed, linked


def _client_twins(parent: dict[str, str | None], alone: dict[str, bool | None],
                  info: dict[str, tuple[Any, ...]]) -> dict[str, str]:
    """``{client span id: gateway span id}`` for client spans logged beside the gateway's span
    of the same call (see ``usage_flags``). Per parent, clients sorted by start: a gateway span
    looks back over the (at most 64) latest clients that started before it, so a trace of many
    calls stays linear."""
    gateways = sorted((sid for sid, v in info.items() if v[0] and alone.get(sid)), key=lambda g: info[g][1])
    if not gateways:
        return {}
    clients: dict[str | None, list[tuple[Any, str]]] = {}
    for c, v in info.items():
        if not v[0] and alone.get(c):
            clients.setdefault(parent.get(c), []).append((v[1], c))
    for group in clients.values():
        group.sort()
    twins: dict[str, str] = {}
    for g in gateways:
        _, g_start, _, g_in, g_out, _ = info[g]
        group = clients.get(parent[g], [])
        best: tuple[int, Any, str] | None = None
        hi = bisect.bisect_right(group, g_start, key=lambda x: x[0])
        for c_start, c in reversed(group[max(0, hi - 64):hi]):
            _, _, c_end, c_in, c_out, c_est = info[c]
            if c in twins or c_end < g_start:
                continue
            same = (c_in, c_out) == (g_in, g_out)
            if not (same or c_est):
                continue
            rank = (0 if same else 1, c_start, c)
            if best is None or rank < best:
                best = rank
        if best is not None:
            twins[best[2]] = g
    return twins


@functools.cache
def _usage_statements(dialect: str) -> tuple[Any, Any, Any]:
    from sqlalchemy import text

    has = "(s.total_tokens IS NOT NULL OR s.cost_total IS NOT NULL)"
    # Whether the span is one the gateway logged (metadata.gateway), read only for spans with usage.
    if dialect == "sqlite":
        gateway = f"CASE WHEN {has} THEN json_extract(s.metadata, '$.gateway') IS NOT NULL ELSE 0 END"
    else:
        gateway = f"CASE WHEN {has} THEN (s.metadata -> 'gateway') IS NOT NULL ELSE false END"
    cols = (
        f"s.trace_id, s.id, s.parent_id, s.status, s.usage_estimated, {has} AS has_usage, s.usage_counted, "
        f"s.prompt_name, s.prompt_version, {gateway} AS is_gateway, s.start_time, s.end_time, "
        "s.input_tokens, s.output_tokens"
    )
    if dialect == "sqlite":
        select_sql = text(f"SELECT {cols} FROM span s WHERE s.project_id = :p AND s.trace_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
    else:
        # Driven from the id list (an index lookup per trace), as the refresh statement. A plain
        # join, or a lateral subquery PostgreSQL flattens into one, was planned (with the stale
        # statistics of a fast-growing table) as a hash of all the project's spans; OFFSET 0
        # keeps the subquery a per-trace index lookup.
        select_sql = text(
            f"SELECT {cols} FROM unnest(CAST(:ids AS text[])) AS k(id) CROSS JOIN LATERAL "
            "(SELECT * FROM span WHERE span.project_id = :p AND span.trace_id = k.id OFFSET 0) AS s"
        )
    where = " WHERE project_id = :p AND trace_id = :t AND id = :i"
    flag_sql = text("UPDATE span SET usage_counted = :c" + where).bindparams(bindparam("c", type_=Boolean()))
    prompt_sql = text("UPDATE span SET prompt_name = :n, prompt_version = :v" + where + " AND prompt_name IS NULL")
    return select_sql, flag_sql, prompt_sql


def _sqlite_time(v: datetime | None) -> str | None:
    """The text SQLAlchemy stores for a DateTime on SQLite (naive UTC, microseconds)."""
    if v is None:
        return None
    if v.tzinfo is not UTC:
        v = v.astimezone(UTC)
    return v.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def _identity(v: Any) -> Any:
    return v


def _json_text(v: Any) -> str | None:
    """JSON column text: msgspec (C, several times faster than ``json.dumps``; compact, UTF-8),
    falling back to ``json.dumps`` for anything msgspec refuses."""
    if v is None:
        return None
    try:
        return _encode(v).decode()
    except (TypeError, ValueError, OverflowError):
        return json.dumps(v)


_encode = msgspec.json.Encoder().encode


def _row_tuple(table: Any, cols: list[str], dialect: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A compiled ``row -> tuple of driver values`` for ``cols`` of ``table``: one Python
    function with the columns unrolled (no per-column generator or identity calls; the value
    conversion was ~45% of the SQLite writer's CPU)."""
    env: dict[str, Any] = {}
    parts = []
    for i, c in enumerate(cols):
        f = _converter(table.c[c].type, dialect)
        if f is _identity:
            parts.append(f"r[{c!r}]")
        else:
            env[f"f{i}"] = f
            parts.append(f"f{i}(r[{c!r}])")
    src = f"def row(r):\n    return ({', '.join(parts)},)\n"
    exec(compile(src, f"<{table.name} row>", "exec"), env)  # built from the table's column names only
    return cast(Callable[[dict[str, Any]], tuple[Any, ...]], env["row"])


def _converter(type_: Any, dialect: str) -> Callable[[Any], Any]:
    if isinstance(type_, UtcDateTime):
        if dialect == "sqlite":
            return _sqlite_time
        return lambda v: None if v is None else (v if v.tzinfo else v.replace(tzinfo=UTC))
    if isinstance(type_, JSON):
        return _json_text
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
        "input_explicit": False,
        "output_explicit": False,
        "start_time": start,
        "updated_at": now,
    }


def _dedupe(rows: list[SpanRow], key: tuple[str, ...]) -> list[SpanRow]:
    """One row per key within a statement (PostgreSQL refuses to upsert a row twice in one
    statement); later rows merge over earlier ones, keeping non-null values. Rows with
    distinct keys (the usual batch) come back as they are, without a copy."""
    if len({tuple(r[c] for c in key) for r in cast(list[dict[str, Any]], rows)}) == len(rows):
        return rows
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in cast(list[dict[str, Any]], rows):  # merged column by column
        k = tuple(r[c] for c in key)
        prev = out.get(k)
        if prev is None:
            out[k] = dict(r)
        else:
            for c, v in r.items():
                # Same rules as the upsert: NULL, "unset" status and the generic "span" kind never win.
                if v is None or (c == "status" and v == "unset") or (c == "kind" and v == "span"):
                    continue
                if c in ("name", "start_time") and r["name"] == "":  # a partial row (see _span_upsert)
                    continue
                prev[c] = v
    return cast(list[SpanRow], list(out.values()))
