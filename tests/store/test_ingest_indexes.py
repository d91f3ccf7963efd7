"""The trace indexes the ingest writer maintains, and the queries that need them (migration 0024).

``(project_id, user_id, start_time)`` and ``(project_id, session_id, start_time)`` are partial
(``IS NOT NULL``): a trace without a user or session writes no entry there. Every reader of those
indexes must still be able to use them: the users and sessions lists (``IS NOT NULL``), the trace
list filtered by user or session, a session's traces (``session_id = ?``). Each statement those
reads run is EXPLAINed on the store's database (PostgreSQL with sequential scans off, so that an
index it cannot prove usable shows as not used).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, text

from podium.store.repos.ingest import IngestBatch
from podium.store.repos.traces import TraceFilter
from tests.store.test_store import span

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _hint(pid: str, tid: str, user: str | None, session: str | None) -> dict[str, Any]:
    return {"project_id": pid, "id": tid, "name": None, "user_id": user, "session_id": session, "release": None,
            "environment": None, "metadata": None, "input": None, "output": None}


def _statements(store: Any, fn: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def on(conn: Any, cur: Any, stmt: str, params: Any, *a: Any) -> None:
        if stmt.lstrip().upper().startswith("SELECT") and " trace" in stmt:
            seen.append((stmt, params))

    event.listen(store.engine, "before_cursor_execute", on)
    try:
        fn()
    finally:
        event.remove(store.engine, "before_cursor_execute", on)
    return seen


def test_user_and_session_indexes_are_partial_and_still_used(store: Any) -> None:
    pid = store.projects.create_project("idx").id
    spans, hints = [], []
    for k in range(30):
        tid = f"t{k}"
        spans.append(span(pid, tid, "s", start_time=T0 + timedelta(minutes=k), end_time=T0 + timedelta(minutes=k, seconds=1)))
        user, session = (f"u{k % 3}", f"u{k % 3}-s{k % 5}") if k % 2 else (None, None)  # half without
        hints.append(_hint(pid, tid, user, session))
    store.ingest.write(IngestBatch(spans=spans, traces=hints))  # type: ignore[arg-type]

    # The rows the reads return are unchanged by the partial indexes.
    users = store.traces.list_groups(pid, "user_id").items
    assert sorted(r["id"] for r in users) == ["u0", "u1", "u2"] and sum(r["trace_count"] for r in users) == 15
    sessions = store.traces.list_groups(pid, "session_id", user_id="u1").items
    assert {r["id"] for r in sessions} == {f"u1-s{k % 5}" for k in range(30) if k % 2 and k % 3 == 1}
    assert len(store.traces.list_traces(pid, TraceFilter(user_id="u2")).items) == 5
    assert len(store.traces.list_traces(pid, TraceFilter(session_id="u1-s1")).items) == 1

    sqlite = store.dialect == "sqlite"
    with store.engine.connect() as c:
        if sqlite:
            defs = dict(c.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'trace'")).all())
        else:
            defs = dict(c.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'trace' "
                                       "AND schemaname = current_schema()")).all())
    for col in ("user_id", "session_id"):
        d = defs[f"ix_trace_project_id_{col}_start_time"]
        assert f"WHERE {col} IS NOT NULL" in d or f"WHERE ({col} IS NOT NULL)" in d, d

    reads = {
        "user_id": lambda: store.traces.list_groups(pid, "user_id"),
        "session_id": lambda: store.traces.list_groups(pid, "session_id"),
        "user_id ": lambda: store.traces.list_traces(pid, TraceFilter(user_id="u2")),
        "session_id ": lambda: store.traces.list_traces(pid, TraceFilter(session_id="u1-s1")),
    }
    for col, read in reads.items():
        stmts = _statements(store, read)
        assert stmts, col
        stmt, params = stmts[0]  # the statement over trace (tags are attached by a second one)
        index = f"ix_trace_project_id_{col.strip()}_start_time"
        with store.engine.connect() as c:
            raw: Any = c.connection.dbapi_connection
            cur = raw.cursor()
            if sqlite:
                cur.execute("EXPLAIN QUERY PLAN " + stmt, params)
            else:
                cur.execute("SET LOCAL enable_seqscan = off")
                cur.execute("SET LOCAL enable_bitmapscan = on")
                cur.execute("EXPLAIN " + stmt, params)
            plan = " ".join(str(r[-1]) for r in cur.fetchall())
            cur.close()
            c.rollback()
        assert index in plan, (col, plan)
