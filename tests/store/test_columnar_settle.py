"""Two writers on one ClickHouse database (server processes sharing a ClickHouse server): a write that
reads a trace's stored spans while another writer adds spans to it writes aggregates that miss them.
The settle pass recounts the spans of recently written traces and rewrites those aggregates."""

# ruff: noqa: F811  (the fixtures imported from tests.store.columnar_fixtures are test parameters here)

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.errors import NotFound
from podium.store import Store
from podium.store.columnar import ColumnarClient, ColumnarIngestRepo
from podium.store.repos.ingest import IngestBatch
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import T0, span


def _race(columnar: ColumnarClient, pid: str, settle_s: float) -> tuple[ColumnarIngestRepo, ColumnarIngestRepo]:
    """Writer A reads what is stored, then writer B stores two more spans of the same trace, then A
    writes: each trace row misses the other writer's spans (B's version is the newer one: A took its
    version before reading)."""
    a = ColumnarIngestRepo(columnar, settle_s=settle_s)
    b = ColumnarIngestRepo(columnar, settle_s=settle_s)
    a.write(IngestBatch(spans=[span(pid, "t", "root")]))
    read = a._read_stored

    def read_then_b_writes(*args: Any) -> Any:
        out = read(*args)
        b.write(IngestBatch(spans=[span(pid, "t", "b1", parent_id="root"), span(pid, "t", "b2", parent_id="root")]))
        return out

    a._read_stored = read_then_b_writes  # type: ignore[method-assign]  # interleave the two writers
    a.write(IngestBatch(spans=[span(pid, "t", "a1", parent_id="root")]))
    a._read_stored = read  # type: ignore[method-assign]  # as above
    return a, b


def test_settle_rewrites_aggregates_a_concurrent_writer_missed(store: Store, columnar: ColumnarClient) -> None:
    pid = store.projects.create_project("race").id
    a, b = _race(columnar, pid, settle_s=60.0)  # no timer firing during the test: settle is called below
    assert len(store.traces.list_spans(pid, "t").items) == 4  # every span is stored
    assert store.traces.get_trace(pid, "t")["span_count"] == 3  # B's row: root + b1 + b2, not a1
    fixed = a.settle(older_than_s=0) + b.settle(older_than_s=0)
    assert fixed >= 1 and a.settled + b.settled == fixed
    assert store.traces.get_trace(pid, "t")["span_count"] == 4
    assert a.settle(older_than_s=0) == 0 and b.settle(older_than_s=0) == 0  # nothing left to check


def test_the_settle_timer_repairs_without_a_call(store: Store, columnar: ColumnarClient) -> None:
    from tests.conftest import wait_for

    pid = store.projects.create_project("race-timer").id
    a, b = _race(columnar, pid, settle_s=0.2)
    try:
        wait_for("the settle pass", lambda: store.traces.get_trace(pid, "t")["span_count"] == 4, timeout=20)
    finally:
        a.close()
        b.close()


def test_settle_leaves_a_deleted_trace_deleted(store: Store, columnar: ColumnarClient) -> None:
    from podium.store.columnar.ingest import _Clock

    pid = store.projects.create_project("race-delete").id
    a, _ = _race(columnar, pid, settle_s=60.0)
    ids = ["root", "a1", "b1", "b2"]
    v = _Clock().next()
    # tombstones, as retention writes them: the trace is gone before the settle pass looks at it
    columnar.insert("span", ["project_id", "trace_id", "id", "version", "is_deleted"],
                    [[pid] * 4, ["t"] * 4, ids, [v] * 4, [1] * 4])
    columnar.insert("trace", ["project_id", "id", "start_time", "version", "is_deleted"],
                    [[pid], ["t"], [store.traces.get_trace(pid, "t")["start_time"]], [v], [1]])
    assert a.settle(older_than_s=0) == 0
    with pytest.raises(NotFound):
        store.traces.get_trace(pid, "t")


def test_chdb_writers_do_not_settle(columnar: ColumnarClient) -> None:
    assert ColumnarIngestRepo(columnar).settle_s == 0  # chDB: one process owns the database


def test_settle_repairs_a_concurrent_resend_with_the_same_span_count(store: Store, columnar: ColumnarClient) -> None:
    """Writer A re-sends a call with more tokens, a higher cost, a later end and a new root output; while A
    reads what is stored, writer B re-sends another call (now an error). B's trace row is the newer version
    and misses all of A's changes, with the span count unchanged (3): a count check sees nothing wrong."""
    pid = store.projects.create_project("race-resend").id
    a = ColumnarIngestRepo(columnar, settle_s=60.0)
    b = ColumnarIngestRepo(columnar, settle_s=60.0)
    t1 = T0 + timedelta(seconds=1)

    def call(sid: str, **kw: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"parent_id": "root", "kind": "generation", "model": "m", "start_time": T0,
                                "end_time": t1, "input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                                "cost_total": Decimal("0.0010000000")}
        return span(pid, "t", sid, **{**base, **kw})

    root = span(pid, "t", "root", end_time=t1, output={"answer": "old"})
    a.write(IngestBatch(spans=[root, call("g1"), call("g2")]))
    read = a._read_stored

    def read_then_b_writes(*args: Any) -> Any:
        out = read(*args)
        b.write(IngestBatch(spans=[call("g2", status="error")]))
        return out

    a._read_stored = read_then_b_writes  # type: ignore[method-assign]  # interleave the two writers
    later = T0 + timedelta(seconds=9)
    a.write(IngestBatch(spans=[
        call("g1", input_tokens=100, output_tokens=50, total_tokens=150, cost_total=Decimal("0.0200000000"),
             end_time=later),
        span(pid, "t", "root", end_time=later, output={"answer": "new"}),
    ]))
    a._read_stored = read  # type: ignore[method-assign]  # as above
    right = {"span_count": 3, "error_count": 1, "status": "error", "input_tokens": 110, "output_tokens": 55,
             "total_tokens": 165, "end_time": later, "latency_ms": 9000.0, "output": {"answer": "new"}}

    def got() -> dict[str, Any]:
        row = store.traces.get_trace(pid, "t")
        return {k: row[k] for k in right}

    stale = got()
    assert stale["span_count"] == 3 and stale["error_count"] == 1  # B's row: B's error ...
    assert stale["total_tokens"] == 30 and stale["output"] == {"answer": "old"}  # ... but none of A's re-send
    assert float(store.traces.get_trace(pid, "t")["total_cost"]) == pytest.approx(0.002)
    assert a.settle(older_than_s=0) + b.settle(older_than_s=0) == 1  # the first pass repairs; the second finds it right
    assert got() == right
    assert float(store.traces.get_trace(pid, "t")["total_cost"]) == pytest.approx(0.021)
    assert a.settle(older_than_s=0) == 0 and b.settle(older_than_s=0) == 0


def test_settle_checks_with_one_query_per_project(store: Store, columnar: ColumnarClient) -> None:
    """Nothing stale: one grouped query per project for every touched trace, and nothing rewritten."""
    pids = [store.projects.create_project(f"quiet-{i}").id for i in range(2)]
    w = ColumnarIngestRepo(columnar, settle_s=60.0)
    w.write(IngestBatch(spans=[span(p, f"t{j}", f"s{k}", parent_id=None if k == 0 else "s0",
                                    input_tokens=k, total_tokens=k, cost_total=Decimal(k) / 1000)
                               for p in pids for j in range(20) for k in range(3)]))
    sent: list[str] = []
    query = columnar.query

    def counting(sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        sent.append(sql)
        return query(sql, params)

    columnar.query = counting  # type: ignore[method-assign]  # count the statements
    try:
        assert w.settle(older_than_s=0) == 0
    finally:
        columnar.query = query  # type: ignore[method-assign]  # as above
    assert len(sent) == 2 and w.settled == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_settle_finds_nothing_to_repair_after_one_writer(store: Store, columnar: ColumnarClient, seed: int) -> None:
    """No false alarms: after one writer's random batches (partial updates, spans after their trace item,
    gateway twins whose usage is not counted, traces without an end, roots starting together) every
    trace row agrees with its spans, so a settle pass rewrites nothing."""
    import random

    from tests.store.test_columnar import _random_batches

    pid = store.projects.create_project(f"quiet-random-{seed}").id
    w = ColumnarIngestRepo(columnar, settle_s=60.0)
    for batch in _random_batches(pid, random.Random(seed)):
        w.write(batch)
    # two roots starting together (the writer took one of them as the trace's root)
    w.write(IngestBatch(spans=[span(pid, "twins", "r1", output="one"), span(pid, "twins", "r2", output="two")]))
    assert len(w._touched) == 26
    assert w.settle(older_than_s=0) == 0 and not w._touched


def test_settle_gives_up_on_a_trace_after_a_few_rounds(store: Store, columnar: ColumnarClient,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A row that stays wrong whatever the rewrite does is rewritten ``SETTLE_ROUNDS`` times, not forever."""
    from podium.store.columnar.ingest import SETTLE_ROUNDS

    pid = store.projects.create_project("stubborn").id
    w = ColumnarIngestRepo(columnar, settle_s=60.0)
    w.write(IngestBatch(spans=[span(pid, "t", "root")]))
    columnar.command("ALTER TABLE $db.trace UPDATE span_count = 7 WHERE id = 't' SETTINGS mutations_sync = 1")
    w._store = lambda batch, refresh: None  # type: ignore[assignment,method-assign]  # a rewrite that changes nothing
    passes = [w.settle(older_than_s=0) for _ in range(SETTLE_ROUNDS + 2)]
    assert passes == [1] * SETTLE_ROUNDS + [0, 0] and w.settled == SETTLE_ROUNDS
    assert "still disagreed with its spans" in caplog.text
