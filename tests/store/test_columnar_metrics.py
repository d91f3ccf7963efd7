"""Metric queries and the dashboards on the columnar span store (ClickHouse through chDB, in-process):
the SQL repos' own tests re-run with the columnar store selected, exact answers of the dashboard over a
known seed, a differential test (the same writes on SQL and on ClickHouse, every metric query and
dashboard call compared), the metrics API and the UI's pages served from ClickHouse, and an alert rule
firing on it. ``--db all`` runs the SQL side on SQLite and PostgreSQL."""

# ruff: noqa: F811  (the fixtures imported from tests.store.columnar_fixtures are test parameters here)

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.core.metrics import MetricQuery
from podium.store import Store
from podium.store import tables as t
from podium.store.columnar import ColumnarDashboardRepo, ColumnarMetricsRepo
from podium.store.repos.dashboard import Bucketing
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.metrics import DIMENSIONS, aggs_for
from tests.conftest import LiveServer
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_columnar import _norm, _random_batches

# The SQL repo's behaviour tests, collected here again against the columnar store (the `store` fixture
# below replaces the conftest one for this module).
from tests.store.test_metrics import (  # noqa: F401
    END,
    T0,
    pid,
    seed,
    test_bad_queries_name_the_valid_values,
    test_dimensions,
    test_empty_window_and_other_project,
    test_filters,
    test_one_pass_series_equals_the_ranked_sql,
    test_scores_and_guardrails,
    test_series_buckets_edges_and_top_n,
    test_trace_metrics_over_a_window,
)
from tests.store.test_store import span


def test_the_store_hands_out_the_columnar_repos(store: Store, sql_store: Store) -> None:
    assert isinstance(store.metrics, ColumnarMetricsRepo) and isinstance(store.dashboard, ColumnarDashboardRepo)
    assert not isinstance(sql_store.metrics, ColumnarMetricsRepo)
    assert not isinstance(sql_store.dashboard, ColumnarDashboardRepo)


# --- the dashboard over a known seed (tests/store/test_metrics.py's), on both stores ---------------------


def test_dashboard_exact_answers(store: Store, sql_store: Store) -> None:
    p = store.projects.create_project("dash").id  # both stores share the SQL database
    seed(store, p)
    seed(sql_store, p)
    b = Bucketing.covering(T0, END, 3600)
    for s in (store, sql_store):
        ov = s.dashboard.overview(p, b)
        assert ov["series"]["t"] == [int(T0.timestamp()), int(T0.timestamp()) + 3600]
        assert ov["series"]["traces"] == [3, 2] and ov["series"]["errors"] == [1, 0]
        # nearest rank: [100, 200, 300] -> p50 200, p95 300; [400, 1000] -> 400, 1000
        assert ov["series"]["p50"] == [200.0, 400.0] and ov["series"]["p95"] == [300.0, 1000.0]
        assert ov["series"]["cost"] == [pytest.approx(0.06), pytest.approx(0.15)]
        tot = ov["totals"]
        assert (tot["traces"], tot["errors"], tot["p50"], tot["p95"]) == (5, 1, 300.0, 1000.0)
        assert (tot["input_tokens"], tot["output_tokens"], tot["total_tokens"]) == (210, 105, 315)
        assert tot["error_rate"] == pytest.approx(0.2) and tot["cost"] == pytest.approx(0.21)
        bm = s.dashboard.by_model(p, b)
        assert bm["models"] == ["gpt-b", "gpt-a"]  # by cost
        a = bm["rows"][1]
        assert (a["model"], a["calls"], a["errors"], a["total_tokens"]) == ("gpt-a", 3, 1, 120)
        assert a["cost"] == pytest.approx(0.08) and a["avg_latency_ms"] == pytest.approx(150.0)
        assert bm["calls"] == {"gpt-a": [2, 1], "gpt-b": [1, 2]}
        assert bm["cost"]["gpt-b"] == [pytest.approx(0.03), pytest.approx(0.10)]
        bp = s.dashboard.by_prompt(p, T0, END)
        assert [(r["prompt_name"], r["prompt_version"], r["calls"], r["p50_latency_ms"], r["p95_latency_ms"])
                for r in bp] == [("qa", 2, 2, 100.0, 200.0), ("qa", 1, 1, 50.0, 50.0)]
        assert s.dashboard.prompt_series(p, b, [("qa", 1), ("qa", 2)]) == {"qa v1": [1, 0], "qa v2": [1, 1]}
        users = s.dashboard.top_groups(p, "user_id", T0, END)
        assert [(u["id"], u["traces"], u["errors"]) for u in users] == [("u1", 3, 0), ("u3", 1, 0), ("u2", 1, 1)]
        assert users[0]["cost"] == pytest.approx(0.15) and users[0]["last_seen"] == T0 + timedelta(seconds=5400)
        g = s.dashboard.group_summary(p, "user_id", "u1")
        assert g is not None and (g["traces"], g["sessions"], g["users"], g["user_id"]) == (3, 1, 1, "u1")
        assert (g["first_seen"], g["latency_ms"]) == (T0, 1400.0)
        assert s.dashboard.group_summary(p, "session_id", "nobody") is None
        sc = s.dashboard.scores_by_name(p, user_id="u1")
        assert [(r["name"], r["count"], r["avg"]) for r in sc] == [("quality", 2, 0.25), ("thumbs", 2, 1.0)]
        assert s.dashboard.count_roots(p, "t1") == 1
        assert s.dashboard.span_path(p, "t1", "gen0") == ["root", "gen0"]
        assert s.dashboard.span_path(p, "t1", "nope") == []


def test_window_joins_read_only_the_latest_version_of_a_span(store: Store) -> None:
    """The span-to-trace joins filter spans before ``FINAL`` (``window_spans``): an older version that
    passes the early conditions must never stand in for a latest one that does not. A call whose model
    and prompt a re-send changed, a purged trace whose span comes back without a model, and a span
    re-sent with a start before the window (its trace moves out of it)."""
    from podium.store.columnar.ingest import _Clock

    p = store.projects.create_project("versions").id
    at = T0 + timedelta(minutes=10)

    def call(tid: str, sid: str, **kw: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"kind": "generation", "start_time": at, "end_time": at + timedelta(seconds=1),
                                "latency_ms": 1000.0, "total_tokens": 10, "cost_total": Decimal("0.01")}
        return span(p, tid, sid, **{**base, **kw})

    w = store.ingest
    w.write(IngestBatch(spans=[call("changed", "g", model="m-old", prompt_name="old", prompt_version=1),
                               call("purged", "g", model="m-gone", prompt_name="gone", prompt_version=1),
                               call("early", "g", model="m-early", prompt_name="early", prompt_version=1),
                               call("kept", "g", model="m-kept")]))
    w.write(IngestBatch(spans=[call("changed", "g", model="m-new", prompt_name="new", prompt_version=2),
                               call("early", "g", start_time=T0 - timedelta(minutes=5))]))
    v = _Clock().next()  # tombstones as retention writes them (key columns only: their start is the epoch)
    store.columnar.insert("span", ["project_id", "trace_id", "id", "version", "is_deleted"],
                          [[p], ["purged"], ["g"], [v], [1]])
    store.columnar.insert("trace", ["project_id", "id", "start_time", "version", "is_deleted"],
                          [[p], ["purged"], [at], [v], [1]])
    w.write(IngestBatch(spans=[span(p, "purged", "g", start_time=at)]))  # it comes back, without a model

    b = Bucketing.covering(T0, END, 3600)
    bm = store.dashboard.by_model(p, b)
    assert {r["model"]: r["calls"] for r in bm["rows"]} == {"m-new": 1, "m-kept": 1}
    assert [(r["prompt_name"], r["prompt_version"], r["calls"]) for r in store.dashboard.by_prompt(p, T0, END)] == [
        ("new", 2, 1)]
    assert store.dashboard.prompt_series(p, b, [("old", 1), ("new", 2), ("gone", 1)]) == {
        "old v1": [0, 0], "new v2": [1, 0], "gone v1": [0, 0]}
    by_model = store.metrics.value_by(p, MetricQuery("cost", "sum", "model"), T0, END)
    assert {r["key"]: r["value"] for r in by_model} == {"m-new": pytest.approx(0.01), "m-kept": pytest.approx(0.01)}
    spans_by_prompt = store.metrics.value_by(p, MetricQuery("spans", "count", "prompt"), T0, END)
    assert {r["key"]: r["value"] for r in spans_by_prompt} == {"new v2": 1.0}


# --- the differential test: the same writes on SQL and on ClickHouse answer the same -------------------


def _series_by_key(s: dict[str, Any]) -> dict[str, Any]:
    return {"buckets": s["buckets"], "interval": s["interval"],
            "series": {x["key"]: _norm({k: v for k, v in x.items() if k != "key"}) for x in s["series"]}}


def _queries() -> list[tuple[str, MetricQuery]]:
    """Every metric family with every aggregation it takes (no dimension), and every dimension it can be
    split by with two of its aggregations (turn by turn, a percentile when it takes one)."""
    metrics = ["traces", "spans", "errors", "error_rate", "latency", "cost", "tokens", "input_tokens",
               "output_tokens", "score:quality", "score:*", "guardrail:*", "guardrail:pi"]
    out: list[tuple[str, MetricQuery]] = []
    for m in metrics:
        aggs = aggs_for(m)
        out += [("value", MetricQuery(m, a)) for a in aggs]
        dims = [d for d in DIMENSIONS if (d not in ("rule", "scanner") or m.startswith("guardrail"))
                and (d != "score" or m.startswith("score"))]
        for i, d in enumerate(dims):
            pick = {aggs[i % len(aggs)], "p95" if "p95" in aggs else aggs[-1]}
            out += [("value_by", MetricQuery(m, a, d)) for a in sorted(pick)]
            out.append(("series", MetricQuery(m, aggs[(i + 1) % len(aggs)], d)))
    out += [("series", MetricQuery("latency", "p95")), ("series", MetricQuery("cost", "sum")),
            ("series", MetricQuery("latency", "p50", "user_id", {"environment": "prod"})),
            ("value", MetricQuery("cost", "sum", None, {"model": "claude"})),
            ("value_by", MetricQuery("latency", "avg", "model", {"model": "claude"})),
            ("value_by", MetricQuery("traces", "count", "tag", {"tags": ["tag1"], "min_latency_ms": 100}))]
    return out


def _write_both(store: Store, sql_store: Store, batch: IngestBatch) -> None:
    copy = IngestBatch(spans=[dict(s) for s in batch.spans], traces=[dict(t) for t in batch.traces],  # type: ignore[misc]  # copies of the same TypedDict rows
                       tags=list(batch.tags), scores=[dict(s) for s in batch.scores])  # type: ignore[misc]  # as above
    store.ingest.write(copy)
    sql_store.ingest.write(batch)


@pytest.mark.parametrize("seed_", [3, 4])
def test_same_metrics_and_dashboards_as_the_sql_store(store: Store, sql_store: Store, seed_: int) -> None:
    p = store.projects.create_project("diff").id
    seed(store, p)
    seed(sql_store, p)
    for batch in _random_batches(p, random.Random(seed_)):
        _write_both(store, sql_store, batch)
    # More versions of the same rows: a trace whose start moves two days back (a tombstone at its old
    # key), a re-sent span with a new model, cost and status, a deleted score. Counted once each.
    from tests.store.test_store import T0 as T1

    later: list[Any] = [
        span(p, "tr00", "early", start_time=T1 - timedelta(days=2), end_time=T1 - timedelta(days=2, seconds=-3)),
        span(p, "tr01", "s0", model="claude", input_tokens=7, output_tokens=3, total_tokens=10,
             cost_total=Decimal("0.5"), status="error", kind="generation"),
    ]
    _write_both(store, sql_store, IngestBatch(spans=later))
    for s in (store, sql_store):
        assert s.scores.delete_score(p, "sc3")
    start, end = T1 - timedelta(days=3), T0 + timedelta(days=3)
    a: Any
    b: Any
    for kind, q in _queries():
        if kind == "value":
            a, b = store.metrics.value(p, q, start, end), sql_store.metrics.value(p, q, start, end)
        elif kind == "value_by":
            a = {r["key"]: _norm(r) for r in store.metrics.value_by(p, q, start, end)}
            b = {r["key"]: _norm(r) for r in sql_store.metrics.value_by(p, q, start, end)}
        else:
            a = _series_by_key(store.metrics.series(p, q, start, end, 3 * 3600, top=50))
            b = _series_by_key(sql_store.metrics.series(p, q, start, end, 3 * 3600, top=50))
        assert _norm(a) == _norm(b), (kind, q)
    for s in (store, sql_store):  # the trace that moved is counted once, at its new start
        assert s.metrics.value(p, MetricQuery("traces", "count"), start, end) == 31
    assert store.metrics.names(p, "score", start, end) == sql_store.metrics.names(p, "score", start, end)
    assert store.metrics.names(p, "guardrail", start, end) == sql_store.metrics.names(p, "guardrail", start, end)

    for rng in ((start, end, 6 * 3600), (T1, T1 + timedelta(hours=30), 3600), (T0, END, 1800)):
        bk = Bucketing.covering(*rng)
        for s_a, s_b in ((store.dashboard, sql_store.dashboard),):
            assert _norm(s_a.overview(p, bk)) == _norm(s_b.overview(p, bk)), rng
            assert _norm(s_a.by_model(p, bk)) == _norm(s_b.by_model(p, bk)), rng
            assert _norm(s_a.by_model(p, bk, limit=1)) == _norm(s_b.by_model(p, bk, limit=1)), rng
            prompts = s_b.by_prompt(p, bk.start, bk.end)
            assert _norm(s_a.by_prompt(p, bk.start, bk.end)) == _norm(prompts), rng
            keys = [(r["prompt_name"], r["prompt_version"]) for r in prompts] + [("nope", None)]
            assert s_a.prompt_series(p, bk, keys) == s_b.prompt_series(p, bk, keys), rng
            for by in ("user_id", "session_id"):
                assert _norm(s_a.top_groups(p, by, bk.start, bk.end)) == _norm(s_b.top_groups(p, by, bk.start, bk.end))
    d, sd = store.dashboard, sql_store.dashboard
    assert _norm(d.by_prompt(p, None, None)) == _norm(sd.by_prompt(p, None, None))
    for by in ("user_id", "session_id"):
        assert _norm(d.top_groups(p, by, None, None, limit=3)) == _norm(sd.top_groups(p, by, None, None, limit=3))
    for user in ("u0", "u1", "u2", "u3", "u9", "nobody"):
        assert _norm(d.group_summary(p, "user_id", user)) == _norm(sd.group_summary(p, "user_id", user)), user
        assert _norm(d.scores_by_name(p, user_id=user)) == _norm(sd.scores_by_name(p, user_id=user)), user
    for sess in ("s0", "s1", "s2", "s3", "s-u1", "nobody"):
        assert _norm(d.group_summary(p, "session_id", sess)) == _norm(sd.group_summary(p, "session_id", sess))
        assert _norm(d.scores_by_name(p, session_id=sess)) == _norm(sd.scores_by_name(p, session_id=sess))
    for i in range(25):
        tid = f"tr{i:02d}"
        assert d.count_roots(p, tid) == sd.count_roots(p, tid), tid
        for sp in sql_store.traces.list_spans(p, tid, include_io=False).items:
            assert d.span_path(p, tid, sp["id"]) == sd.span_path(p, tid, sp["id"]), (tid, sp["id"])


# --- the API and the UI on the columnar store -----------------------------------------------------------

from tests.server.test_dashboards import test_dashboards_crud_and_defaults, test_metric_query  # noqa: E402, F401


def test_ui_pages_read_the_columnar_store(server: LiveServer) -> None:
    """The home dashboard, a user's and a session's page over traffic that only ClickHouse holds."""
    p = server.keys.project_id
    seed(server.store, p, datetime.now(UTC) - timedelta(hours=3))
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as c:
        home = c.get("/")
        assert home.status_code == 200, home.text[:2000]
        assert re.search(r'data-testid="total-traces">6<', home.text), home.text[:3000]
        assert "gpt-a" in home.text and "gpt-b" in home.text and "u1" in home.text
        user = c.get("/users/u2").text
        assert re.search(r"<dt>Errors</dt><dd>1</dd>", user) and "thumbs" in user
        assert re.search(r"<dt>Traces</dt><dd><a [^>]*>3</a></dd>", c.get("/users/u1").text)
    with server.store.engine.connect() as conn:  # none of it in the SQL span store
        assert conn.execute(select(func.count()).select_from(t.span)).scalar_one() == 0


# --- alert rules evaluate through store.metrics: one fires on the columnar store -------------------------

from tests.monitor.test_alert_rules import (  # noqa: E402, F401
    no_embedded_worker,
    sink,
    test_error_rate_fires_to_webhook_then_resolves,
)
