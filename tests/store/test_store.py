"""Store behaviour on SQLite and PostgreSQL (run with --db all)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from podium.errors import Conflict, NotFound, ValidationFailed
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.scores import ScoreFilter
from podium.store.repos.traces import TraceFilter
from tests.conftest import make_project

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def span(pid: str, trace_id: str, sid: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "project_id": pid, "trace_id": trace_id, "id": sid, "parent_id": None, "name": sid, "kind": "span",
        "start_time": T0, "end_time": None, "latency_ms": None, "status": "unset", "status_message": None,
        "model": None, "provider": None, "model_parameters": None, "input": None, "output": None,
        "metadata": None, "attributes": None, "input_tokens": None, "output_tokens": None, "total_tokens": None,
        "usage_details": None, "usage_estimated": None, "cost_input": None, "cost_output": None,
        "cost_total": None, "completion_start_time": None, "prompt_name": None, "prompt_version": None,
        "updated_at": None,
    }
    row.update(kw)
    return row


def test_projects_and_keys(store: Any) -> None:
    p = store.projects.create_project("alpha")
    with pytest.raises(Conflict):
        store.projects.create_project("alpha")
    with pytest.raises(ValidationFailed):
        store.projects.create_project("  ")
    k = store.projects.create_key(p.id, role="ingest", note="ci")
    assert k.secret_key.startswith("sk-pd-") and k.key.public_key.startswith("pk-pd-")
    # The secret is stored only as a hash.
    from sqlalchemy import select

    from podium.store import tables as t

    with store.engine.connect() as c:
        stored = c.execute(select(t.api_key.c.secret_hash)).scalar_one()
    assert k.secret_key not in stored and len(stored) == 64
    assert store.projects.authenticate(k.secret_key).project_id == p.id
    assert store.projects.authenticate(k.secret_key, k.key.public_key) is not None
    assert store.projects.authenticate(k.secret_key, "pk-pd-wrong") is None
    assert store.projects.authenticate("sk-pd-nope") is None
    with pytest.raises(ValidationFailed):
        store.projects.create_key(p.id, role="root")
    store.projects.revoke_key(p.id, k.key.public_key)
    assert store.projects.authenticate(k.secret_key) is None
    with pytest.raises(NotFound):
        store.projects.revoke_key(p.id, "pk-pd-missing")
    assert [x.name for x in store.projects.list_projects()] == ["alpha"]
    assert store.projects.get_project("alpha").id == p.id


def test_span_upsert_merges_start_then_end(store: Any) -> None:
    pid = make_project(store, "p").project_id
    store.ingest.write(IngestBatch(spans=[span(pid, "t1", "s1", input={"q": 1})]))
    end = T0 + timedelta(milliseconds=250)
    store.ingest.write(
        IngestBatch(spans=[span(pid, "t1", "s1", end_time=end, output="done", status="ok", latency_ms=250.0)])
    )
    # A retried start does not erase the end.
    store.ingest.write(IngestBatch(spans=[span(pid, "t1", "s1", input={"q": 1})]))
    s = store.traces.get_span(pid, "t1", "s1")
    assert s["input"] == {"q": 1} and s["output"] == "done" and s["end_time"] == end and s["status"] == "ok"
    tr = store.traces.get_trace(pid, "t1")
    assert tr["span_count"] == 1 and tr["latency_ms"] == pytest.approx(250.0) and tr["name"] == "s1"
    assert tr["input"] == {"q": 1} and tr["output"] == "done"


def test_trace_aggregates_and_hints(store: Any) -> None:
    pid = make_project(store, "p").project_id
    spans = [
        span(pid, "t", "root", end_time=T0 + timedelta(seconds=2), status="ok"),
        span(pid, "t", "gen", parent_id="root", kind="generation", model="gpt-4o",
             start_time=T0 + timedelta(milliseconds=100), end_time=T0 + timedelta(seconds=1),
             input_tokens=10, output_tokens=5, total_tokens=15, cost_total=Decimal("0.000125"), status="ok"),
        span(pid, "t", "tool", parent_id="root", status="error", status_message="boom",
             start_time=T0 + timedelta(seconds=1), end_time=T0 + timedelta(seconds=3)),
    ]
    hints = [{"project_id": pid, "id": "t", "user_id": "u1", "session_id": "s1", "release": None,
              "environment": "prod", "metadata": {"k": "v"}, "name": None}]
    store.ingest.write(IngestBatch(spans=spans, traces=hints, tags=[(pid, "t", "a"), (pid, "t", "b")]))
    tr = store.traces.get_trace(pid, "t")
    assert tr["span_count"] == 3 and tr["error_count"] == 1 and tr["status"] == "error"
    assert tr["total_tokens"] == 15 and tr["input_tokens"] == 10 and float(tr["total_cost"]) == pytest.approx(0.000125)
    assert tr["latency_ms"] == pytest.approx(3000.0)
    assert tr["user_id"] == "u1" and tr["session_id"] == "s1" and tr["environment"] == "prod"
    assert tr["tags"] == ["a", "b"] and tr["name"] == "root"
    # An explicit trace name wins over the root span's, and survives later span writes.
    store.ingest.write(IngestBatch(traces=[{"project_id": pid, "id": "t", "name": "checkout"}]))
    store.ingest.write(IngestBatch(spans=[span(pid, "t", "late", parent_id="root")], tags=[(pid, "t", "a")]))
    tr = store.traces.get_trace(pid, "t")
    assert tr["name"] == "checkout" and tr["span_count"] == 4 and tr["user_id"] == "u1" and tr["tags"] == ["a", "b"]


def test_retried_batch_never_duplicates(store: Any) -> None:
    pid = make_project(store, "p").project_id
    batch = [span(pid, "t", f"s{i}", parent_id=None if i == 0 else "s0") for i in range(50)]
    for _ in range(3):
        store.ingest.write(IngestBatch(spans=[dict(r) for r in batch]))
    assert store.traces.get_trace(pid, "t")["span_count"] == 50
    assert len(store.traces.list_spans(pid, "t", limit=1000).items) == 50
    # Same span twice within one batch: merged, not an error.
    store.ingest.write(IngestBatch(spans=[span(pid, "t2", "x", input="a"), span(pid, "t2", "x", output="b")]))
    s = store.traces.get_span(pid, "t2", "x")
    assert (s["input"], s["output"]) == ("a", "b")


def test_projects_are_isolated(store: Any) -> None:
    a = make_project(store, "a").project_id
    b = make_project(store, "b").project_id
    store.ingest.write(IngestBatch(spans=[span(a, "shared-id", "s", input="A's secret")]))
    store.ingest.write(IngestBatch(spans=[span(b, "shared-id", "s", input="B's data")]))
    assert store.traces.get_span(a, "shared-id", "s")["input"] == "A's secret"
    assert store.traces.get_span(b, "shared-id", "s")["input"] == "B's data"
    store.ingest.write(IngestBatch(spans=[span(a, "only-a", "s")]))
    with pytest.raises(NotFound):
        store.traces.get_trace(b, "only-a")
    assert [t["id"] for t in store.traces.list_traces(b, TraceFilter()).items] == ["shared-id"]


def _seed_many(store: Any, pid: str, n: int = 30) -> None:
    spans, hints, tags = [], [], []
    for i in range(n):
        tid = f"t{i:03d}"
        spans.append(span(pid, tid, "root", name=f"job-{i % 3}", start_time=T0 + timedelta(minutes=i),
                          end_time=T0 + timedelta(minutes=i, milliseconds=10 * i),
                          status="error" if i % 10 == 0 else "ok"))
        spans.append(span(pid, tid, "llm", parent_id="root", kind="generation",
                          model="gpt-4o" if i % 2 else "claude", start_time=T0 + timedelta(minutes=i),
                          cost_total=Decimal(i) / 1000, total_tokens=i))
        hints.append({"project_id": pid, "id": tid, "user_id": f"u{i % 4}", "session_id": f"s{i % 5}",
                      "release": None, "environment": None, "metadata": None, "name": None})
        if i % 3 == 0:
            tags.append((pid, tid, "even3"))
    store.ingest.write(IngestBatch(spans=spans, traces=hints, tags=tags))


def test_trace_filters_sort_and_cursor(store: Any) -> None:
    pid = make_project(store, "p").project_id
    _seed_many(store, pid)
    tr = store.traces

    def ids(**kw: Any) -> list[str]:
        return [t["id"] for t in tr.list_traces(pid, TraceFilter(**kw), limit=100).items]

    assert len(ids()) == 30 and ids()[0] == "t029"  # newest first
    assert ids(user_id="u1") == [f"t{i:03d}" for i in range(29, -1, -1) if i % 4 == 1]
    assert set(ids(session_id="s0")) == {f"t{i:03d}" for i in range(30) if i % 5 == 0}
    assert set(ids(tags=["even3"])) == {f"t{i:03d}" for i in range(0, 30, 3)}
    assert set(ids(status="error")) == {"t000", "t010", "t020"}
    assert set(ids(model="claude")) == {f"t{i:03d}" for i in range(0, 30, 2)}
    assert set(ids(name="job-1")) == {f"t{i:03d}" for i in range(1, 30, 3)}
    assert set(ids(q="OB-2")) == {f"t{i:03d}" for i in range(2, 30, 3)}
    assert set(ids(min_latency_ms=200, max_latency_ms=250)) == {"t020", "t021", "t022", "t023", "t024", "t025"}
    assert set(ids(min_cost=0.025)) == {f"t{i:03d}" for i in range(25, 30)}
    assert set(ids(start_after=T0 + timedelta(minutes=28))) == {"t028", "t029"}
    assert set(ids(start_before=T0 + timedelta(minutes=2))) == {"t000", "t001"}
    # Cursor pagination visits every trace once, in every sort order.
    for sort in ("start_time", "latency_ms", "total_cost"):
        for order in ("asc", "desc"):
            seen: list[str] = []
            cursor = None
            while True:
                page = tr.list_traces(pid, TraceFilter(), sort=sort, order=order, limit=7, cursor=cursor)
                seen += [t["id"] for t in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert sorted(seen) == [f"t{i:03d}" for i in range(30)], (sort, order)
            values = [float(tr.get_trace(pid, i)[sort] if sort != "start_time" else 0) for i in seen]
            if sort != "start_time":
                assert values == sorted(values, reverse=order == "desc")


def test_sessions_users_and_scores(store: Any) -> None:
    pid = make_project(store, "p").project_id
    _seed_many(store, pid)
    sessions = store.traces.list_groups(pid, "session_id", limit=100).items
    assert {s["id"] for s in sessions} == {f"s{i}" for i in range(5)}
    s0 = next(s for s in sessions if s["id"] == "s0")
    assert s0["trace_count"] == 6 and isinstance(s0["last_seen"], datetime)
    users = store.traces.list_groups(pid, "user_id", limit=2)
    assert len(users.items) == 2 and users.next_cursor
    rest = store.traces.list_groups(pid, "user_id", limit=10, cursor=users.next_cursor).items
    assert {u["id"] for u in users.items + rest} == {"u0", "u1", "u2", "u3"}
    store.ingest.write(
        IngestBatch(
            scores=[
                {"project_id": pid, "id": "sc1", "trace_id": "t001", "span_id": None, "session_id": None,
                 "name": "quality", "data_type": "numeric", "value": 0.9, "string_value": None, "source": "api",
                 "comment": "good", "metadata": None, "timestamp": T0},
                {"project_id": pid, "id": "sc2", "trace_id": "t002", "span_id": "llm", "session_id": None,
                 "name": "label", "data_type": "categorical", "value": None, "string_value": "spam",
                 "source": "human", "comment": None, "metadata": None, "timestamp": T0},
            ]
        )
    )
    got = store.scores.list_scores(pid, ScoreFilter(trace_id="t002")).items
    assert got[0]["value"] == "spam" and got[0]["span_id"] == "llm"
    assert [t["id"] for t in store.traces.list_traces(pid, TraceFilter(score_name="quality", min_score=0.5)).items] == ["t001"]


def test_migrations_match_the_tables(store: Any) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from podium.store.tables import metadata

    with store.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), metadata)
    assert diff == [], f"tables.py and the migrations disagree; add a migration: {diff}"
