"""The columnar span store (ClickHouse through chDB, in-process): migrations, the URL seam, and the
same behaviour as the SQL store: the SQL store's own tests re-run with the columnar store selected,
plus a differential test that writes the same batches to both and compares every read."""

# ruff: noqa: F811  (the fixtures imported from tests.store.columnar_fixtures are test parameters here)

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.errors import ConfigurationError, NotFound
from podium.store import Store
from podium.store.columnar import ColumnarClient, current_version, parse_url, upgrade
from podium.store.columnar.migrate import migrations
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.scores import ScoreFilter
from podium.store.repos.traces import TraceFilter
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401

# The SQL store's behaviour tests, collected here again against the columnar store (the `store`
# fixture below replaces the conftest one for this module).
from tests.store.test_store import (  # noqa: F401
    T0,
    span,
    test_projects_are_isolated,
    test_retried_batch_never_duplicates,
    test_sessions_users_and_scores,
    test_span_upsert_merges_start_then_end,
    test_trace_aggregates_and_hints,
    test_trace_filters_sort_and_cursor,
)
from tests.store.test_usage_rule import (  # noqa: F401
    gen,
    test_failed_call_with_estimated_usage_counts_nothing,
    test_spans_in_any_order_and_batch,
)

# --- the seam and the migrations ------------------------------------------------------------------


def test_urls() -> None:
    assert parse_url("chdb://:memory:").path is None
    u = parse_url("chdb:///var/lib/podium/ch?database=spans")
    assert (u.kind, u.path, u.database) == ("chdb", "/var/lib/podium/ch", "spans")
    u = parse_url("clickhouse://podium:s%40cret@ch.internal:9000/traces")
    assert (u.kind, u.host, u.port, u.username, u.password, u.database, u.secure) == (
        "http", "ch.internal", 9000, "podium", "s@cret", "traces", False)
    assert parse_url("clickhouses://ch.example").port == 8443
    assert parse_url("clickhouse://ch").database == "podium"
    for bad in ("mysql://x", "chdb://host/path", "clickhouse://ch/bad-name", "chdb:///x?database=1;drop"):
        with pytest.raises(ConfigurationError, match="PODIUM_CLICKHOUSE_URL"):
            parse_url(bad)


def test_one_chdb_directory_per_process(chdb_dir: Path, columnar: ColumnarClient, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="one data path per process"):
        ColumnarClient(f"chdb://{tmp_path / 'other'}")


def test_migrations_are_versioned_and_idempotent(columnar: ColumnarClient) -> None:
    numbers = [n for n, _, _ in migrations()]
    assert numbers == sorted(numbers) and numbers[0] == 1
    assert current_version(columnar) == numbers[-1]
    assert upgrade(columnar) == []  # nothing pending
    rows = columnar.query("SELECT version, name FROM $db.schema_version ORDER BY version")
    assert [r[0] for r in rows] == numbers
    tables = {r[0] for r in columnar.query("SELECT name FROM system.tables WHERE database = {d:String}",
                                           {"d": columnar.database})}
    assert {"span", "trace", "trace_tag", "score", "schema_version"} <= tables
    engine = columnar.query("SELECT engine, sorting_key FROM system.tables WHERE database = {d:String} "
                            "AND name = 'trace'", {"d": columnar.database})[0]
    assert engine[0] == "ReplacingMergeTree" and engine[1].startswith("project_id, toDate(start_time)")


def test_store_from_url_wires_the_columnar_repos(db_url: str, columnar_url: str) -> None:
    s = Store.from_url(db_url, migrate=False, columnar_url=columnar_url)
    try:
        assert type(s.ingest).__name__ == "ColumnarIngestRepo"
        assert type(s.traces).__name__ == "ColumnarTraceRepo" and type(s.scores).__name__ == "ColumnarScoreRepo"
        assert s.columnar is not None and current_version(s.columnar) == 0  # migrate=False
    finally:
        assert s.columnar is not None
        s.columnar.drop_database()
        s.close()


# --- columnar-specific behaviour ------------------------------------------------------------------


def test_spans_live_only_in_the_columnar_store(store: Store) -> None:
    from sqlalchemy import func, select

    from podium.store import tables as t

    pid = store.projects.create_project("p").id
    store.ingest.write(IngestBatch(spans=[span(pid, "t", "s", input={"q": "hi"})]))
    assert store.traces.get_span(pid, "t", "s")["input"] == {"q": "hi"}
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.span)).scalar_one() == 0
    assert store.columnar is not None
    assert store.columnar.query("SELECT count() FROM $db.span")[0][0] == 1


def test_a_trace_whose_start_moves_to_another_day_keeps_one_row(store: Store) -> None:
    pid = store.projects.create_project("p").id
    store.ingest.write(IngestBatch(spans=[span(pid, "t", "late", start_time=T0)]))
    early = T0 - timedelta(days=2)
    store.ingest.write(IngestBatch(spans=[span(pid, "t", "early", start_time=early)]))
    items = store.traces.list_traces(pid, TraceFilter(), limit=10).items
    assert [(i["id"], i["start_time"], i["span_count"]) for i in items] == [("t", early, 2)]


def test_deleted_score_disappears(store: Store) -> None:
    pid = store.projects.create_project("p").id
    score = {"project_id": pid, "id": "sc", "trace_id": "t", "span_id": None, "session_id": None, "name": "ok",
             "data_type": "boolean", "value": 1.0, "string_value": None, "source": "api", "comment": None,
             "metadata": {"by": "ci"}, "timestamp": T0}
    store.ingest.write(IngestBatch(scores=[score]))
    got = store.scores.get_score(pid, "sc")
    assert got is not None and got["value"] is True and got["metadata"] == {"by": "ci"}
    assert store.scores.delete_score(pid, "sc") is True
    assert store.scores.get_score(pid, "sc") is None and store.scores.delete_score(pid, "sc") is False
    assert store.scores.list_scores(pid, ScoreFilter()).items == []


def test_cursor_from_another_sort_is_refused(store: Store) -> None:
    from podium.errors import BadRequest

    pid = store.projects.create_project("p").id
    store.ingest.write(IngestBatch(spans=[span(pid, f"t{i}", "s", start_time=T0 + timedelta(seconds=i))
                                          for i in range(3)]))
    page = store.traces.list_traces(pid, TraceFilter(), limit=1)
    assert page.next_cursor
    with pytest.raises(BadRequest):
        store.traces.list_traces(pid, TraceFilter(), sort="total_cost", limit=1, cursor=page.next_cursor)
    with pytest.raises(NotFound):
        store.traces.get_span(pid, "t0", "missing")


# --- the column-oriented write path -------------------------------------------------------------------


def test_a_trace_written_by_another_writer_is_read_before_merging(store: Store, columnar: ColumnarClient) -> None:
    """A second writer instance (a restarted server: nothing of the first in its memory) finds the
    spans and the trace row the first wrote (the existence probe, then the full read) and merges:
    the partial update keeps the name, flags and aggregates cover both writes."""
    from podium.store.columnar import ColumnarIngestRepo

    pid = store.projects.create_project("p").id
    first, second = ColumnarIngestRepo(columnar), ColumnarIngestRepo(columnar)
    first.write(IngestBatch(
        spans=[span(pid, "t", "root", name="agent", input={"q": "hi"}),
               span(pid, "t", "llm", parent_id="root", kind="generation", start_time=T0 + timedelta(seconds=1),
                    input_tokens=10, output_tokens=5, total_tokens=15, cost_total=Decimal("0.001"))],
        traces=[{"project_id": pid, "id": "t", "name": None, "user_id": "u1", "session_id": None, "release": None,
                 "environment": None, "metadata": None, "input": None, "output": None}]))
    second.write(IngestBatch(spans=[
        span(pid, "t", "root", name="", status="ok", output="done", end_time=T0 + timedelta(seconds=3)),
        # a child that carries usage: the stored llm span now counts once, under its own usage
        span(pid, "t", "inner", parent_id="llm", kind="generation", start_time=T0 + timedelta(seconds=2),
             input_tokens=7, output_tokens=3, total_tokens=10, cost_total=Decimal("0.002"))]))
    tr = store.traces.get_trace(pid, "t")
    assert tr is not None
    assert (tr["name"], tr["user_id"], tr["input"], tr["output"]) == ("agent", "u1", {"q": "hi"}, "done")
    assert (tr["span_count"], tr["total_tokens"], tr["total_cost"], tr["latency_ms"]) == (3, 10, Decimal("0.002"), 3000.0)
    spans = {s["id"]: s for s in store.traces.list_spans(pid, "t").items}
    assert spans["root"]["name"] == "agent" and spans["root"]["start_time"] == T0
    assert (spans["llm"]["usage_counted"], spans["inner"]["usage_counted"]) == (False, True)


def test_a_trace_item_alone_then_its_spans(store: Store, columnar: ColumnarClient) -> None:
    """A trace row without spans (a trace item) is found by the probe too: its explicit name wins over
    the root span's name written later by another writer instance."""
    from podium.store.columnar import ColumnarIngestRepo

    pid = store.projects.create_project("p").id
    ColumnarIngestRepo(columnar).write(IngestBatch(traces=[
        {"project_id": pid, "id": "t", "name": "checkout", "user_id": None, "session_id": "s1", "release": None,
         "environment": None, "metadata": {"k": 1}, "input": None, "output": None, "start_time": T0}]))
    ColumnarIngestRepo(columnar).write(IngestBatch(spans=[span(pid, "t", "root", name="handler")]))
    tr = store.traces.get_trace(pid, "t")
    assert tr is not None and (tr["name"], tr["session_id"], tr["metadata"], tr["span_count"]) == (
        "checkout", "s1", {"k": 1}, 1)


def test_one_batch_of_several_projects_and_json_values(store: Store) -> None:
    """One write, two projects, new and merged spans side by side; JSON values of every kind read back
    as written (msgspec's compact text; a lone surrogate falls back to ``json.dumps``)."""
    a, b = store.projects.create_project("a").id, store.projects.create_project("b").id
    store.ingest.write(IngestBatch(spans=[span(b, "t", "old", input={"x": 1})]))
    odd = "\ud800 lone surrogate"
    values: list[Any] = [{"é": ["ü", 1.5, None, True, 2**70]}, "plain \"quoted\" text", 42, [], odd]
    batch = [span(a, "t", f"s{i}", start_time=T0 + timedelta(seconds=i), input=v, output={"i": i})
             for i, v in enumerate(values)]
    row = span(b, "t", "new", start_time=T0 + timedelta(seconds=1), metadata={"gateway": None})
    del row["usage_details"]  # a row without some column: NULL, as before
    batch += [row, span(b, "t", "old", name="", output=[1, 2])]
    store.ingest.write(IngestBatch(spans=batch))
    got = {s["id"]: s for s in store.traces.list_spans(a, "t").items}
    assert [got[f"s{i}"]["input"] for i in range(len(values))] == values
    got_b = {s["id"]: s for s in store.traces.list_spans(b, "t").items}
    assert got_b["old"]["input"] == {"x": 1} and got_b["old"]["output"] == [1, 2]
    assert got_b["new"]["usage_details"] is None and got_b["new"]["metadata"] == {"gateway": None}
    ta, tb = store.traces.get_trace(a, "t"), store.traces.get_trace(b, "t")
    assert ta is not None and tb is not None and (ta["span_count"], tb["span_count"]) == (5, 2)


# --- the differential test: the same writes on SQL and on ClickHouse read back the same -------------


def _random_batches(pid: str, rng: random.Random, n_traces: int = 25) -> list[IngestBatch]:
    batches: list[IngestBatch] = []
    for i in range(n_traces):
        tid = f"tr{i:02d}"
        start = T0 + timedelta(minutes=rng.randint(0, 3000))
        ids = [f"s{j}" for j in range(rng.randint(1, 6))]
        spans: list[dict[str, Any]] = []
        for j, sid in enumerate(ids):
            parent = None if j == 0 else rng.choice(ids[:j])
            st = start + timedelta(milliseconds=rng.randint(0, 900) * j)
            kw: dict[str, Any] = dict(
                parent_id=parent, name=f"op{rng.randint(0, 3)}", start_time=st,
                end_time=st + timedelta(milliseconds=rng.randint(1, 5000)) if rng.random() < 0.8 else None,
                status=rng.choice(["ok", "ok", "error", "unset"]), input={"i": i, "j": j}, output=f"out {j}",
                metadata={"gateway": {"alias": "x"}} if rng.random() < 0.15 else None,
                kind=rng.choice(["span", "generation"]),
            )
            if rng.random() < 0.5:
                kw.update(model=rng.choice(["gpt-4o", "claude", "local"]), input_tokens=rng.randint(1, 99),
                          output_tokens=rng.randint(1, 50), cost_total=Decimal(rng.randint(1, 999)) / 100000,
                          usage_estimated=rng.random() < 0.2, prompt_name="qa" if rng.random() < 0.3 else None,
                          prompt_version=1)
                kw["total_tokens"] = kw["input_tokens"] + kw["output_tokens"]
            spans.append(span(pid, tid, sid, **kw))
        rng.shuffle(spans)
        cut = rng.randint(0, len(spans))
        hint = {"project_id": pid, "id": tid, "user_id": f"u{rng.randint(0, 3)}", "session_id": f"s{i % 4}",
                "release": None, "environment": rng.choice(["prod", None]), "metadata": None,
                "name": "named" if rng.random() < 0.2 else None}
        batches.append(IngestBatch(spans=spans[:cut], traces=[hint], tags=[(pid, tid, f"tag{i % 3}")]))
        if cut < len(spans):
            # the rest later, with a partial update (ends only) of an earlier span
            late = [dict(s) for s in spans[cut:]]
            if cut:
                late.append(span(pid, tid, spans[0]["id"], name="", status="ok", output="final",
                                 end_time=start + timedelta(seconds=9)))
            batches.append(IngestBatch(spans=late))
    batches.append(IngestBatch(scores=[
        {"project_id": pid, "id": f"sc{k}", "trace_id": f"tr{k:02d}", "span_id": None, "session_id": None,
         "name": "quality", "data_type": "numeric", "value": k / 10, "string_value": None, "source": "api",
         "comment": None, "metadata": None, "timestamp": T0 + timedelta(seconds=k)} for k in range(10)]))
    return batches


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, Decimal):
        return Decimal(v).quantize(Decimal("1e-10"))
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _drop_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "updated_at"} for r in rows]


@pytest.mark.parametrize("seed", [1, 2])
def test_same_reads_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:
    pid = store.projects.create_project("diff").id  # both stores share the SQL database
    rng = random.Random(seed)
    for batch in _random_batches(pid, rng):
        copy = IngestBatch(spans=[dict(s) for s in batch.spans], traces=[dict(t) for t in batch.traces],  # type: ignore[misc]  # copies of the same TypedDict rows
                           tags=list(batch.tags), scores=[dict(s) for s in batch.scores])  # type: ignore[misc]  # as above
        store.ingest.write(copy)
        sql_store.ingest.write(batch)
    filters = [TraceFilter(), TraceFilter(user_id="u1"), TraceFilter(model="claude"), TraceFilter(status="error"),
               TraceFilter(tags=["tag1"]), TraceFilter(q="OP1"), TraceFilter(min_cost=0.005),
               TraceFilter(score_name="quality", min_score=0.3), TraceFilter(environment="prod"),
               TraceFilter(start_after=T0 + timedelta(hours=10), start_before=T0 + timedelta(hours=40))]
    sorts: list[tuple[Any, Any]] = [(s, o) for s in ("latency_ms", "total_cost", "total_tokens", "span_count")
                                    for o in ("asc", "desc")]
    cases: list[tuple[TraceFilter, Any, Any]] = [(f, "start_time", "desc") for f in filters]
    cases += [(TraceFilter(), s, o) for s, o in sorts]
    for f, sort, order in cases:
        a = store.traces.list_traces(pid, f, sort=sort, order=order, limit=200, include_io=True)
        b = sql_store.traces.list_traces(pid, f, sort=sort, order=order, limit=200, include_io=True)
        assert _norm(_drop_times(a.items)) == _norm(_drop_times(b.items)), (f, sort, order)
    for i in range(25):
        tid = f"tr{i:02d}"
        a_t, b_t = store.traces.get_trace(pid, tid), sql_store.traces.get_trace(pid, tid)
        assert _norm(_drop_times([a_t])) == _norm(_drop_times([b_t])), tid
        a_s = store.traces.list_spans(pid, tid, roots_only=True, with_child_counts=True).items
        b_s = sql_store.traces.list_spans(pid, tid, roots_only=True, with_child_counts=True).items
        assert _norm(_drop_times(a_s)) == _norm(_drop_times(b_s)), tid
        a_s = store.traces.list_spans(pid, tid, include_io=False).items
        b_s = sql_store.traces.list_spans(pid, tid, include_io=False).items
        assert _norm(_drop_times(a_s)) == _norm(_drop_times(b_s)), tid
    # keyset pages walk the same order
    for sort in ("latency_ms", "total_cost"):
        a_ids, b_ids, ca, cb = [], [], None, None
        while True:
            pa = store.traces.list_traces(pid, TraceFilter(), sort=sort, limit=4, cursor=ca)
            pb = sql_store.traces.list_traces(pid, TraceFilter(), sort=sort, limit=4, cursor=cb)
            a_ids += [x["id"] for x in pa.items]
            b_ids += [x["id"] for x in pb.items]
            ca, cb = pa.next_cursor, pb.next_cursor
            if ca is None or cb is None:
                break
        assert a_ids == b_ids and ca is None and cb is None
    groups: tuple[Literal["session_id", "user_id"], ...] = ("session_id", "user_id")
    for by in groups:
        a_g = store.traces.list_groups(pid, by, limit=100).items
        b_g = sql_store.traces.list_groups(pid, by, limit=100).items
        assert _norm(a_g) == _norm(b_g), by
    a_sc = store.scores.list_scores(pid, ScoreFilter(name="quality"), limit=100).items
    b_sc = sql_store.scores.list_scores(pid, ScoreFilter(name="quality"), limit=100).items
    assert _norm(a_sc) == _norm(b_sc)


# --- the HTTP API on the columnar store: the server's own tests, re-run with it selected ----------------

from tests.server.test_api import (  # noqa: E402, F401
    test_a_key_of_project_a_never_reads_or_writes_project_b,
    test_ingest_then_query_a_trace_tree,
    test_partial_batch_stores_valid_items_and_reports_each_error,
    test_price_override_changes_cost,
    test_retried_batch_is_idempotent,
    test_scores_create_list_and_filter_traces,
    test_tokens_are_counted_when_usage_is_missing,
)


def test_settings_select_the_span_store(tmp_path: Path, columnar_url: str) -> None:
    from podium.config import Settings

    assert Settings(home=tmp_path).resolved_clickhouse_url is None  # sql: the default
    assert Settings(home=tmp_path, span_store="clickhouse").resolved_clickhouse_url == f"chdb://{tmp_path / 'chdb'}"
    s = Settings(home=tmp_path, span_store="clickhouse", clickhouse_url=columnar_url)
    assert s.resolved_clickhouse_url == columnar_url
    with pytest.raises(ValueError):
        Settings(home=tmp_path, span_store="cassandra")  # type: ignore[arg-type]  # refused, as tested
