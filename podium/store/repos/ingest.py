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

A trace new to the database (the common case: an application's trace arrives in one batch, the
gateway logs one span per trace) is inserted with its final aggregates and its spans with their
final usage flags, computed in Python from the batch (``_final_rows``), instead of inserted zeroed
and then updated from its spans in SQL; the result is the same, value for value
(tests/store/test_ingest_final.py). Traces the database already has take the general path.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import math
import operator
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
_HINT_AND_IO = (*TRACE_HINT_COLUMNS, "input", "output")


def _insert(conn: Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


_flat = itertools.chain.from_iterable


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class IngestRepo:
    #: Traces new to the database are inserted with their final aggregates, computed in Python from
    #: the batch (``_final_rows``), instead of inserted zeroed and then updated from their spans in
    #: SQL. False: every trace takes the general path (the reference in tests/store/test_ingest_final.py).
    final_inserts: bool = True

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        #: A lock file the writers of several server processes on one SQLite file take around
        #: each transaction (``podium up --workers N``, podium/server/processes.py): a waiting
        #: writer wakes when the other commits instead of polling in SQLite's busy handler.
        self.process_lock: str | None = None
        self._lock_fd: int | None = None
        self._thread_lock = threading.Lock()

    def write(self, batch: IngestBatch) -> None:
        # The driver values of the span rows and the final rows of the batch's traces (as if new)
        # are computed before the transaction (and before the process lock): on SQLite with
        # several processes, only the statements are serial.
        plan = self._plan(batch)
        if self.process_lock is None:
            with self._engine.begin() as conn:
                self._write(conn, batch, plan)
            return
        import fcntl  # POSIX only; set only by the multi-process server on Linux/macOS

        with self._thread_lock:
            if self._lock_fd is None:
                self._lock_fd = os.open(self.process_lock, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # blocks without the GIL
            try:
                with self._engine.begin() as conn:
                    self._write(conn, batch, plan)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _plan(self, batch: IngestBatch) -> _Plan:
        dialect = self._engine.dialect.name
        merged = _merge_hints(batch, _utcnow()) if (batch.traces or batch.spans) else {}
        rows: list[SpanRow] = []
        params: list[tuple[Any, ...]] | None = None
        if batch.spans:
            rows, params = self._span_params(batch.spans)
        fresh: list[tuple[Any, ...]] = []
        restore: dict[tuple[str, str], list[tuple[int, tuple[Any, ...]]]] = {}
        by_trace: dict[tuple[str, str], list[int]] = {}
        if self.final_inserts and merged:
            fresh, restore, by_trace = _final_rows(dialect, merged, rows, params or [])
        return _Plan(params, merged, fresh, restore, by_trace)

    def _write(self, conn: Connection, batch: IngestBatch, plan: _Plan | None = None) -> None:
        if plan is None:
            plan = self._plan(batch)
        now = _utcnow()
        dialect = conn.dialect.name
        params = plan.span_params
        # Traces new to the database are inserted with their final aggregates (computed from this
        # batch's rows, which are all their spans) and never updated again in this transaction;
        # the others (RETURNING leaves them out) take the general path below.
        fresh: set[tuple[str, str]] = set()
        if plan.fresh:
            stamp = (_converter(t.trace.c.updated_at.type, dialect)(now),)
            got = _final_insert(dialect)[0].fetch(conn, [r + stamp for r in plan.fresh])
            fresh = {(r[0], r[1]) for r in got}
            if params is not None:
                for key, originals in plan.restore.items():
                    if key not in fresh:  # an existing trace: its spans as the general path writes them
                        for i, original in originals:
                            params[i] = original
        if params and fresh and dialect == "postgresql":
            # The spans of traces this transaction created cannot exist yet: COPY them straight into
            # the table (no staging table, no INSERT ... SELECT, no conflict check).
            mine = [i for key in fresh for i in plan.by_trace.get(key, ())]
            if len(mine) >= _COPY_MIN_ROWS:
                stamp = (_converter(t.span.c.updated_at.type, dialect)(now),)
                _copy_into(conn, "span", _span_upsert(dialect)[2], [params[i] + stamp for i in mine])
                if len(mine) == len(params):
                    params = None
                else:
                    skip = set(mine)
                    params = [q for i, q in enumerate(params) if i not in skip]
        if params:
            self._upsert_spans(conn, params, now)
        touched = {(s["project_id"], s["trace_id"]) for s in batch.spans}
        if fresh:
            touched -= fresh
        if plan.merged:
            self._upsert_trace_hints(conn, [m for k, m in plan.merged.items() if k not in fresh], now)
        if batch.tags:
            # Plain tuples through the driver (multi-row VALUES; COPY on PostgreSQL): SQLAlchemy's
            # per-row binding cost ~10 us per tag, as much as a whole span when traces are small.
            _tag_insert(dialect).run(conn, sorted(set(batch.tags)))
        if touched:
            self._mark_usage(conn, touched)
            self._refresh_traces(conn, touched, now)
        if batch.scores:
            # Scores are replaced whole by id: the last one in the batch wins.
            self._upsert_scores(conn, list({(r["project_id"], r["id"]): r for r in batch.scores}.values()))

    # --- spans -------------------------------------------------------------------------------
    def _span_params(self, spans: list[SpanRow]) -> tuple[list[SpanRow], list[tuple[Any, ...]]]:
        """The span rows merged by key and the driver values of their upsert, one tuple per row,
        without ``updated_at`` (the statement's last column, stamped inside the transaction)."""
        rows = _dedupe(spans, ("project_id", "trace_id", "id"))
        for r in rows:
            # The span's own verdict; _mark_usage (or _final_rows) corrects it against the rest of its trace.
            r["usage_counted"] = _counts_alone(r)
        convert = _span_upsert(self._engine.dialect.name)[1]
        return rows, list(map(convert, cast(list[dict[str, Any]], rows)))

    def _upsert_spans(self, conn: Connection, params: list[tuple[Any, ...]], now: datetime) -> None:
        # The hottest statement in Podium: a hand-built upsert run through the driver's
        # executemany, with values converted once per column. SQLAlchemy's per-row bind
        # processing cost ~3x the database's own time here (see docs/benchmarks.md).
        sql = _span_upsert(conn.dialect.name)[0]
        stamp = (_converter(t.span.c.updated_at.type, conn.dialect.name)(now),)
        sql.run(conn, [p + stamp for p in params])

    # --- traces ------------------------------------------------------------------------------
    def _upsert_trace_hints(self, conn: Connection, merged: list[dict[str, Any]], now: datetime) -> None:
        if not merged:
            return
        for m in merged:
            m["updated_at"] = now
        sql, convert = _trace_upsert(conn.dialect.name)
        sql.run(conn, list(map(convert, merged)))

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
                 cols: Sequence[str] = (), stage: str | None = None) -> None:
        self.head, self.row, self.tail = head, row, tail
        self.width = row.count("?") + row.count("%s")
        # PostgreSQL, larger batches: COPY into a per-connection temporary staging table, then one
        # INSERT ... SELECT ... ON CONFLICT. psycopg's executemany runs Python per row (adapt,
        # prepare, pipeline bookkeeping); COPY adapts rows in C. See docs/benchmarks.md.
        self.stage_sql = self.copy_sql = self.insert_select = self.clear_sql = ""
        if table is not None and "%s" in row:
            stage = stage or f"podium_stage_{table}"
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
            # chain.from_iterable flattens in C (a generator cost ~1 µs per 28-column row).
            conn.exec_driver_sql(self._many(n), tuple(_flat(params[i : i + n])))
            i += n


    def fetch(self, conn: Connection, params: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``run`` for a statement with ``RETURNING``: the rows it returned, over all chunks."""
        if not params:
            return []
        if conn.dialect.name != "sqlite" and self.copy_sql and len(params) >= _COPY_MIN_ROWS:
            return self._copy(conn, params)
        if conn.dialect.name != "sqlite":  # one multi-row statement (fewer than _COPY_MIN_ROWS rows)
            res = conn.exec_driver_sql(self._many(len(params)), tuple(_flat(params)))
            return [tuple(r) for r in res.fetchall()]
        per = 1 << (max(1, 30_000 // self.width).bit_length() - 1)
        out: list[tuple[Any, ...]] = []
        i = 0
        while i < len(params):
            n = min(per, 1 << ((len(params) - i).bit_length() - 1))
            res = conn.exec_driver_sql(self._many(n), tuple(_flat(params[i : i + n])))
            out += cast(list[tuple[Any, ...]], res.fetchall())  # Rows: tuples to their readers
            i += n
        return out

    def _copy(self, conn: Connection, params: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        raw: Any = conn.connection.dbapi_connection  # psycopg 3, inside SQLAlchemy's transaction
        with raw.cursor() as cur:
            # Once per connection (a no-op afterwards); ON COMMIT DELETE ROWS empties it per transaction.
            cur.execute(self.stage_sql)
            with cur.copy(self.copy_sql) as copy:
                write = copy.write_row
                for row in params:
                    write(row)
            cur.execute(self.insert_select)
            out = cur.fetchall() if cur.description is not None else []
            cur.execute(self.clear_sql)  # empty again, for a second upsert in the same transaction
        return out


#: Below this many rows psycopg's executemany is as cheap as COPY's extra statements.
_COPY_MIN_ROWS = 32

_SPAN_KEY = ("project_id", "trace_id", "id")
_SPAN_ALWAYS = ("name", "start_time", "updated_at")


@functools.cache
def _span_upsert(dialect: str) -> tuple[_Upsert, Callable[[dict[str, Any]], tuple[Any, ...]], list[str]]:
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
    return sql, _row_tuple(t.span, cols[:-1], dialect), cols


@functools.cache
def _tag_insert(dialect: str) -> _Upsert:
    ph = "?" if dialect == "sqlite" else "%s"
    return _Upsert("INSERT INTO trace_tag (project_id, trace_id, tag) VALUES ", f"({ph}, {ph}, {ph})",
                   " ON CONFLICT (project_id, trace_id, tag) DO NOTHING", table="trace_tag",
                   cols=["project_id", "trace_id", "tag"])


def _copy_into(conn: Connection, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY ``rows`` straight into ``table`` (rows that cannot conflict)."""
    raw: Any = conn.connection.dbapi_connection  # psycopg 3, inside SQLAlchemy's transaction
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        write = copy.write_row
        for row in rows:
            write(row)


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


# --- traces new to the database: final rows computed from the batch ---------------------------------
#
# A trace with no row yet has no spans stored either (spans are only written here, with their trace
# row, in one transaction; retention deletes a trace's spans before or with its row), so its spans
# are exactly the batch's rows: everything ``_mark_usage`` and ``_refresh_statement`` would compute for
# it can be computed from them, and the row inserted final (``INSERT ... ON CONFLICT DO NOTHING
# RETURNING``). A trace the database already has is not returned and takes the general path. The
# values must be what the general path stores, bit for bit (tests/store/test_ingest_final.py):
# - sums in Python: tokens as ints; cost on PostgreSQL as exact Decimals (the column's scale, 10, and
#   a span's cost with at most 10 decimals is stored unrounded); on SQLite as ``math.fsum`` of the
#   stored REALs, then ``ROUND(?, 10)`` in SQL: the exact sum of non-negative 10-decimal values
#   rounds to the same 10 decimals as SQLite's own SUM when it is < 1,000 over <= 256 spans (the
#   float error stays far below 5e-11), and SQLite's ROUND and text-to-REAL make the stored double;
# - latency on PostgreSQL as exact microseconds / 1000 (``EXTRACT(EPOCH ...) * 1000.0`` is exact
#   numeric, rounded once to float8; Python's int division rounds once too); on SQLite by the same
#   SQL expression as the refresh, over the same text;
# - the root (name, input, output): the first root span by start time, then by id, as the refresh
#   orders them (binary collation);
# - anything else (a cost with more decimals, negative or not a Decimal, a token count that is not
#   an int) leaves the trace to the general path.

_SPAN_POS = {c: i for i, c in enumerate(c for c in SPAN_COLUMNS if c != "updated_at")}
_P_PARENT, _P_NAME, _P_START, _P_END = (_SPAN_POS[c] for c in ("parent_id", "name", "start_time", "end_time"))
_P_STATUS, _P_INPUT, _P_OUTPUT, _P_COST = (_SPAN_POS[c] for c in ("status", "input", "output", "cost_total"))
_P_COUNTED, _P_PNAME, _P_PVER = (_SPAN_POS[c] for c in ("usage_counted", "prompt_name", "prompt_version"))

#: The hint part of a final trace row (converted from the merged hint dict as the upsert would).
_FINAL_HEAD = ["project_id", "id", "name_explicit", "user_id", "session_id", "release", "environment",
               "metadata", "input_explicit", "output_explicit"]
_FINAL_COLUMNS = [*_FINAL_HEAD, "name", "input", "output", "start_time", "end_time", "latency_ms", "status",
                  "span_count", "error_count", "input_tokens", "output_tokens", "total_tokens", "total_cost",
                  "updated_at"]
_COST_MAX = Decimal(1000)
_COST_SPANS_MAX = 256
_TEN_DECIMALS = -10


@dataclass
class _Plan:
    """What ``IngestRepo.write`` computes before its transaction."""

    span_params: list[tuple[Any, ...]] | None
    #: Trace rows to upsert (hints merged per trace), by key, in key order.
    merged: dict[tuple[str, str], dict[str, Any]]
    #: Final rows of the traces, as if new (``_FINAL_COLUMNS`` less ``updated_at``), in key order.
    fresh: list[tuple[Any, ...]]
    #: Span tuples ``_final_rows`` changed (usage flag, prompt link), with their originals, to put
    #: back for a trace that turns out to exist.
    restore: dict[tuple[str, str], list[tuple[int, tuple[Any, ...]]]]
    #: The indexes of each trace's span tuples.
    by_trace: dict[tuple[str, str], list[int]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _merge_hints(batch: IngestBatch, now: datetime) -> dict[tuple[str, str], dict[str, Any]]:
    """One trace row per trace of the batch: created from its spans' earliest start, with the
    trace-level hints and explicit fields merged in (later ones win). In key order, so that
    concurrent writers (PostgreSQL, several processes) lock trace rows in one order."""
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
        m = merged.get(key)
        if m is None:
            m = merged[key] = _blank_trace(key, h.get("start_time") or now, now)
        for c in _HINT_AND_IO:
            v = h.get(c)
            if v is not None:
                m[c] = v
        if h.get("name") is not None:
            m["name"], m["name_explicit"] = h["name"], True
        if h.get("input") is not None:
            m["input_explicit"] = True
        if h.get("output") is not None:
            m["output_explicit"] = True
    return {k: merged[k] for k in sorted(merged)}


@functools.cache
def _final_insert(dialect: str) -> tuple[_Upsert, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` of final trace rows, and the converter of
    their hint part."""
    cols = _FINAL_COLUMNS
    if dialect == "sqlite":
        values = ["?"] * len(cols)
        # The refresh's latency expression over the same text (end, start, end, start); NULL without spans.
        values[cols.index("latency_ms")] = (
            "COALESCE(((CAST(strftime('%s', ?) AS INTEGER) - CAST(strftime('%s', ?) AS INTEGER)) "
            "+ (CAST(substr(?, 20) AS REAL) - CAST(substr(?, 20) AS REAL))) * 1000.0, 0)"
        )
        values[cols.index("total_cost")] = "ROUND(?, 10)"
        row = f"({', '.join(values)})"
    else:
        row = f"({', '.join(['%s'] * len(cols))})"
    sql = _Upsert(
        f"INSERT INTO trace ({', '.join(cols)}) VALUES ",
        row,
        " ON CONFLICT (project_id, id) DO NOTHING RETURNING project_id, id",
        table="trace", cols=cols, stage="podium_stage_trace_final",
    )
    return sql, _row_tuple(t.trace, _FINAL_HEAD, dialect)


def _is_gateway(metadata: Any, dialect: str) -> bool:
    """``_usage_statements``' is_gateway over the row's metadata: SQLite's ``json_extract(m,
    '$.gateway') IS NOT NULL`` (a JSON null is NULL), PostgreSQL's ``(m -> 'gateway') IS NOT NULL``
    (a JSON null is not)."""
    if not isinstance(metadata, dict):
        return False
    if dialect == "sqlite":
        return metadata.get("gateway") is not None
    return "gateway" in metadata


def _final_rows(
    dialect: str, merged: dict[tuple[str, str], dict[str, Any]], rows: list[SpanRow], params: list[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], list[tuple[int, tuple[Any, ...]]]],
           dict[tuple[str, str], list[int]]]:
    """The final row of every merged trace, as if the database had none of it (see above), and
    the span tuples given their final usage flag and prompt link (``params`` is changed in place;
    the originals are returned to put back), and the span tuples' indexes by trace. Traces it
    cannot reproduce exactly are left out."""
    by_trace: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        key = (r["project_id"], r["trace_id"])
        idx = by_trace.get(key)
        if idx is None:
            by_trace[key] = [i]
        else:
            idx.append(i)
    head = _final_insert(dialect)[1]
    time_ = _converter(t.trace.c.start_time.type, dialect)
    flag_ = _converter(t.span.c.usage_counted.type, dialect)
    sqlite = dialect == "sqlite"
    fresh: list[tuple[Any, ...]] = []
    restore: dict[tuple[str, str], list[tuple[int, tuple[Any, ...]]]] = {}
    for key, m in merged.items():
        h = head(m)
        name = m["name"] if m["name_explicit"] else None
        inp = _json_text(m["input"]) if m["input_explicit"] else None
        out = _json_text(m["output"]) if m["output_explicit"] else None
        idxs = by_trace.get(key)
        if idxs is None:  # a trace item alone: the upsert's zeroed aggregates
            start = time_(m["start_time"])
            lat: tuple[Any, ...] = (None, None, None, None) if sqlite else (0.0,)
            fresh.append((*h, name, inp, out, start, None, *lat, "ok", 0, 0, 0, 0, 0, 0.0 if sqlite else Decimal(0)))
            continue
        if len(idxs) == 1:  # the gateway's shape: the same values as below, without the loops
            one = _final_one(sqlite, h, m, name, inp, out, rows[idxs[0]], params[idxs[0]])
            if one is not None:
                fresh.append(one)
            continue
        st: Any = None
        en: Any = None
        errs = 0
        usage: list[int] = []
        roots: list[int] = []
        for i in idxs:
            p = params[i]
            s0, e0 = p[_P_START], p[_P_END]
            if e0 is None:
                e0 = s0
            if st is None or s0 < st:
                st = s0
            if en is None or e0 > en:
                en = e0
            if p[_P_STATUS] == "error":
                errs += 1
            if rows[i]["usage_counted"] is not None:  # carries usage
                usage.append(i)
            if p[_P_PARENT] is None:
                roots.append(i)
        # The refresh's root: the first by start time, then by id (code points: SQL's binary order).
        if not roots:
            root = None
        elif len(roots) == 1:
            root = roots[0]
        else:
            root = min(roots, key=lambda i: (params[i][_P_START], rows[i]["id"]))
        # Usage flags: one carrier counts on its own verdict; two or more go through the rule.
        final: dict[int, bool | None] = {}
        links: dict[int, tuple[str, int | None]] = {}
        if len(usage) > 1:
            pos = {rows[i]["id"]: i for i in idxs}
            urows = []
            for i in idxs:
                r, p = rows[i], params[i]
                has = r["usage_counted"] is not None
                urows.append((r["trace_id"], r["id"], r["parent_id"], r["status"], r["usage_estimated"], has, None,
                              r["prompt_name"], r["prompt_version"], has and _is_gateway(r["metadata"], dialect),
                              p[_P_START], p[_P_END], r["input_tokens"], r["output_tokens"]))
            changed, linked = usage_flags(urows)
            final = dict.fromkeys(usage, None)
            for sid, flag in changed:
                final[pos[sid]] = flag
            links = {pos[sid]: (n, v) for sid, n, v in linked}
        itok = otok = ttok = 0
        total = Decimal(0)  # exact: the sum of Decimals keeps the smallest exponent of its terms
        stored: list[float] = []  # the costs as stored on SQLite
        ok = True
        for i in usage:
            r = rows[i]
            if not final.get(i, r["usage_counted"]):
                continue
            a, b, c, cost = r["input_tokens"], r["output_tokens"], r["total_tokens"], r["cost_total"]
            if (a is not None and type(a) is not int) or (b is not None and type(b) is not int) or (
                    c is not None and type(c) is not int):
                ok = False
                break
            itok += a or 0
            otok += b or 0
            ttok += c or 0
            if cost is not None:
                if type(cost) is not Decimal or cost.is_signed():
                    ok = False
                    break
                total += cost
                stored.append(params[i][_P_COST])
        if not ok or len(stored) > _COST_SPANS_MAX or (stored and not (
                total.is_finite() and total < _COST_MAX and cast(int, total.as_tuple().exponent) >= _TEN_DECIMALS)):
            continue
        for i, flag in final.items():
            link = links.get(i)
            if flag == rows[i]["usage_counted"] and link is None:
                continue
            original = params[i]
            q = list(original)
            q[_P_COUNTED] = flag_(flag)
            if link is not None:
                q[_P_PNAME], q[_P_PVER] = link
            params[i] = tuple(q)
            restore.setdefault(key, []).append((i, original))
        if root is not None:
            rp = params[root]
            if not m["name_explicit"]:
                name = rp[_P_NAME]
            if not m["input_explicit"]:
                inp = rp[_P_INPUT]
            if not m["output_explicit"]:
                out = rp[_P_OUTPUT]
        if sqlite:
            lat = (en, st, en, st)
            fresh.append((*h, name, inp, out, st, en, *lat, "error" if errs else "ok", len(idxs), errs,
                          itok, otok, ttok, math.fsum(stored)))
        else:
            d = en - st
            lat = ((((d.days * 86_400 + d.seconds) * 1_000_000) + d.microseconds) / 1000,)
            fresh.append((*h, name, inp, out, st, en, *lat, "error" if errs else "ok", len(idxs), errs,
                          itok, otok, ttok, total))  # exact: < 1,000 with 10 decimals fits in 28 digits
    return fresh, restore, by_trace


def _final_one(sqlite: bool, h: tuple[Any, ...], m: dict[str, Any], name: Any, inp: Any, out: Any, r: SpanRow,
               p: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``_final_rows`` for a trace of one span (its only usage carrier counts on its own verdict,
    it is the root if it has no parent): the same row, or None where that leaves the trace out."""
    st = p[_P_START]
    en = p[_P_END]
    if en is None:
        en = st
    errs = 1 if p[_P_STATUS] == "error" else 0
    itok = otok = ttok = 0
    total = Decimal(0)
    stored: list[float] = []
    if r["usage_counted"]:
        a, b, c, cost = r["input_tokens"], r["output_tokens"], r["total_tokens"], r["cost_total"]
        if (a is not None and type(a) is not int) or (b is not None and type(b) is not int) or (
                c is not None and type(c) is not int):
            return None
        itok, otok, ttok = a or 0, b or 0, c or 0
        if cost is not None:
            if type(cost) is not Decimal or cost.is_signed():
                return None
            total += cost
            if not (total.is_finite() and total < _COST_MAX
                    and cast(int, total.as_tuple().exponent) >= _TEN_DECIMALS):
                return None
            stored.append(p[_P_COST])
    if p[_P_PARENT] is None:
        if not m["name_explicit"]:
            name = p[_P_NAME]
        if not m["input_explicit"]:
            inp = p[_P_INPUT]
        if not m["output_explicit"]:
            out = p[_P_OUTPUT]
    status = "error" if errs else "ok"
    if sqlite:
        return (*h, name, inp, out, st, en, en, st, en, st, status, 1, errs, itok, otok, ttok, math.fsum(stored))
    d = en - st
    lat = (((d.days * 86_400 + d.seconds) * 1_000_000) + d.microseconds) / 1000
    return (*h, name, inp, out, st, en, lat, status, 1, errs, itok, otok, ttok, total)


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

    # The first root span by start time, then by id in code point order (binary on both: roots
    # starting together are picked the same on every database and by _final_rows).
    by_id = "r.id" if dialect == "sqlite" else 'r.id COLLATE "C"'

    def root(col: str) -> str:
        return (
            f"(SELECT r.{col} FROM span r WHERE r.project_id = trace.project_id AND r.trace_id = trace.id "
            f"AND r.parent_id IS NULL ORDER BY r.start_time, {by_id} LIMIT 1)"
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
    # By (start, id): the result must not depend on the order the rows were read in.
    gateways = sorted((sid for sid, v in info.items() if v[0] and alone.get(sid)), key=lambda g: (info[g][1], g))
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
    env: dict[str, Any] = {"UTC": UTC}
    parts = []
    for i, c in enumerate(cols):
        f = _converter(table.c[c].type, dialect)
        if f is _identity:
            parts.append(f"r[{c!r}]")
        else:
            # The converter inlined (no call for a NULL, none at all for times and numbers).
            env[f"f{i}"] = f
            parts.append(_INLINE.get(f, "None if (v := r[{c}]) is None else f{i}(v)").format(c=repr(c), i=i))
    src = f"def row(r):\n    return ({', '.join(parts)},)\n"
    exec(compile(src, f"<{table.name} row>", "exec"), env)  # built from the table's column names only
    return cast(Callable[[dict[str, Any]], tuple[Any, ...]], env["row"])


def _pg_time(v: datetime | None) -> datetime | None:
    return None if v is None else (v if v.tzinfo else v.replace(tzinfo=UTC))


def _real(v: Any) -> float | None:
    return None if v is None else float(v)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


#: The converters as expressions for ``_row_tuple`` (the same values: tests/store/test_ingest_final.py).
_INLINE: dict[Callable[[Any], Any], str] = {
    _sqlite_time: "None if (v := r[{c}]) is None else "
                  "(v if v.tzinfo is UTC else v.astimezone(UTC)).isoformat(' ', 'microseconds')[:26]",
    _pg_time: "None if (v := r[{c}]) is None else (v if v.tzinfo else v.replace(tzinfo=UTC))",
    _real: "None if (v := r[{c}]) is None else float(v)",
    _int: "None if (v := r[{c}]) is None else int(v)",
}


def _converter(type_: Any, dialect: str) -> Callable[[Any], Any]:
    if isinstance(type_, UtcDateTime):
        if dialect == "sqlite":
            return _sqlite_time
        return _pg_time
    if isinstance(type_, JSON):
        return _json_text
    if dialect == "sqlite" and isinstance(type_, Numeric):
        return _real
    if dialect == "sqlite" and isinstance(type_, Boolean):
        return _int
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
    if len(set(map(operator.itemgetter(*key), rows))) == len(rows):
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
