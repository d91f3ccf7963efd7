"""Two writers on one ClickHouse database (server processes sharing a ClickHouse server): a write that
reads a trace's stored spans while another writer adds spans to it writes aggregates that miss them.
The settle pass recounts the spans of recently written traces and rewrites those aggregates."""

# ruff: noqa: F811  (the fixtures imported from tests.store.columnar_fixtures are test parameters here)

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.errors import NotFound
from podium.store import Store
from podium.store.columnar import ColumnarClient, ColumnarIngestRepo
from podium.store.repos.ingest import IngestBatch
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import span


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
