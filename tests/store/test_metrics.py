"""Metric queries (podium/store/repos/metrics.py) on SQLite and PostgreSQL (run with --db all):
exact counts, sums, percentiles, rates, splits, filters and bucket edges over a known seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from podium.core.metrics import MetricQuery
from podium.errors import BadRequest, Conflict, NotFound
from podium.store.repos.ingest import IngestBatch
from tests.conftest import make_project
from tests.store.test_store import span

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # on an hour
END = T0 + timedelta(hours=2)


def _guard(pid: str, tid: str, start: datetime, action: str, outcomes: list[tuple[str, str, str]]) -> dict[str, Any]:
    attrs = {
        "podium.guardrail.policy": "default", "podium.guardrail.kind": "input", "podium.guardrail.action": action,
        "podium.guardrail.outcomes": [{"rule": r, "scanner": sc, "verdict": "fail" if a != "none" else "pass",
                                       "score": 0.9 if a != "none" else 0.1, "action": a} for r, sc, a in outcomes],
    }
    return span(pid, tid, "guard", parent_id="root", name="guardrail.input", kind="guardrail", start_time=start,
                end_time=start + timedelta(milliseconds=5), latency_ms=5.0, status="ok", attributes=attrs,
                output={"action": action, "reason": None})


def seed(store: Any, pid: str, t0: datetime = T0) -> None:
    """Five traces in [t0, t0 + 2 h) (12:00 to 14:00) and one at t0 + 2 h (outside the window)."""
    spans: list[dict[str, Any]] = []
    hints: list[dict[str, Any]] = []
    # id, offset s, latency ms, user, env, release, calls [(model, k, cost, status, call latency, prompt)]
    traces = [
        ("t1", 0, 100, "u1", "prod", "r1", [("gpt-a", 1, "0.01", "ok", 50, ("qa", 1))]),
        ("t2", 600, 200, "u2", "prod", "r1", [("gpt-a", 2, "0.02", "error", 100, ("qa", 2))]),
        ("t3", 3599, 300, "u1", "dev", "r2", [("gpt-b", 3, "0.03", "ok", 150, None)]),
        ("t4", 3600, 400, "u3", "prod", "r2", [("gpt-b", 4, "0.04", "ok", 200, ("qa", 2))]),
        ("t5", 5400, 1000, "u1", "prod", "r1", [("gpt-a", 5, "0.05", "ok", 300, None),
                                                ("gpt-b", 6, "0.06", "ok", 400, None)]),
        ("t6", 7200, 5000, "u9", "prod", "r1", [("gpt-a", 9, "0.09", "ok", 10, None)]),
    ]
    for tid, off, lat, user, env, rel, calls in traces:
        st = t0 + timedelta(seconds=off)
        spans.append(span(pid, tid, "root", name="chat", start_time=st, end_time=st + timedelta(milliseconds=lat),
                          latency_ms=float(lat), status="ok"))
        for i, (model, k, cost, status, clat, prompt) in enumerate(calls):
            spans.append(span(
                pid, tid, f"gen{i}", parent_id="root", kind="generation", model=model,
                start_time=st + timedelta(milliseconds=1), end_time=st + timedelta(milliseconds=1 + clat),
                latency_ms=float(clat), status=status, input_tokens=10 * k, output_tokens=5 * k,
                total_tokens=15 * k, cost_total=Decimal(cost),
                prompt_name=prompt[0] if prompt else None, prompt_version=prompt[1] if prompt else None))
        hints.append({"project_id": pid, "id": tid, "user_id": user, "session_id": f"s-{user}", "release": rel,
                      "environment": env, "metadata": None, "name": None})
    spans.append(_guard(pid, "t1", t0 + timedelta(milliseconds=2), "flag",
                        [("pi", "prompt_injection", "flag"), ("pii", "pii", "none")]))
    spans.append(_guard(pid, "t2", t0 + timedelta(seconds=600, milliseconds=2), "allow",
                        [("pi", "prompt_injection", "none"), ("pii", "pii", "none")]))
    spans.append(_guard(pid, "t4", t0 + timedelta(seconds=3600, milliseconds=2), "block",
                        [("pi", "prompt_injection", "none"), ("pii", "pii", "block")]))

    def score(sid: str, tid: str, name: str, value: float, dt: str = "numeric") -> dict[str, Any]:
        return {"project_id": pid, "id": sid, "trace_id": tid, "span_id": None, "session_id": None, "name": name,
                "data_type": dt, "value": value, "string_value": None, "source": "api", "comment": None,
                "metadata": None, "timestamp": t0}

    scores = [score("q1", "t1", "quality", 0.5), score("q2", "t2", "quality", 1.0), score("q3", "t3", "quality", 0.0),
              score("q4", "t4", "quality", 0.75), score("q6", "t6", "quality", 0.1),
              score("b1", "t1", "thumbs", 1, "boolean"), score("b2", "t2", "thumbs", 0, "boolean"),
              score("b5", "t5", "thumbs", 1, "boolean")]
    store.ingest.write(IngestBatch(spans=spans, traces=hints, tags=[(pid, "t1", "x"), (pid, "t3", "y")],
                                   scores=scores))


@pytest.fixture
def pid(store: Any) -> str:
    p = make_project(store, "metrics").project_id
    seed(store, p)
    # Another project's traffic never shows.
    other = make_project(store, "other").project_id
    seed(store, other)
    return p


def val(store: Any, pid: str, metric: str, agg: str = "avg", **filters: Any) -> float | None:
    v: float | None = store.metrics.value(pid, MetricQuery(metric, agg, None, filters), T0, END)
    return v


def by(store: Any, pid: str, metric: str, agg: str, dim: str, **filters: Any) -> dict[str, float | None]:
    rows = store.metrics.value_by(pid, MetricQuery(metric, agg, dim, filters), T0, END)
    return {r["key"]: r["value"] for r in rows}


def test_trace_metrics_over_a_window(store: Any, pid: str) -> None:
    assert val(store, pid, "traces", "count") == 5
    assert val(store, pid, "spans", "count") == 14
    assert val(store, pid, "errors", "count") == 1
    assert val(store, pid, "error_rate", "rate") == pytest.approx(0.2)
    assert val(store, pid, "errors", "rate") == pytest.approx(0.2)
    assert val(store, pid, "latency", "avg") == pytest.approx(400.0)
    assert val(store, pid, "latency", "sum") == pytest.approx(2000.0)
    assert val(store, pid, "latency", "min") == pytest.approx(100.0)
    assert val(store, pid, "latency", "max") == pytest.approx(1000.0)
    # Nearest rank: p50 of [100, 200, 300, 400, 1000] is the 3rd, p95 the 5th, p90 the 5th.
    assert val(store, pid, "latency", "p50") == pytest.approx(300.0)
    assert val(store, pid, "latency", "p90") == pytest.approx(1000.0)
    assert val(store, pid, "latency", "p95") == pytest.approx(1000.0)
    assert val(store, pid, "cost", "sum") == pytest.approx(0.21)
    assert val(store, pid, "tokens", "sum") == 315
    assert val(store, pid, "input_tokens", "sum") == 210
    assert val(store, pid, "output_tokens", "sum") == 105
    assert val(store, pid, "latency", "count") == 5


def test_empty_window_and_other_project(store: Any, pid: str) -> None:
    later = END + timedelta(days=1)
    assert store.metrics.value(pid, MetricQuery("traces", "count"), later, later + timedelta(hours=1)) == 0
    assert store.metrics.value(pid, MetricQuery("latency", "p95"), later, later + timedelta(hours=1)) is None
    assert store.metrics.value(pid, MetricQuery("error_rate", "rate"), later, later + timedelta(hours=1)) is None
    assert store.metrics.value(pid, MetricQuery("score:nope", "avg"), T0, END) is None
    assert store.metrics.value("no-such-project", MetricQuery("traces", "count"), T0, END) == 0


def test_scores_and_guardrails(store: Any, pid: str) -> None:
    assert val(store, pid, "score:quality", "avg") == pytest.approx(0.5625)
    assert val(store, pid, "score:quality", "p50") == pytest.approx(0.5)
    assert val(store, pid, "score:quality", "count") == 4
    assert val(store, pid, "score:thumbs", "avg") == pytest.approx(2 / 3)
    assert by(store, pid, "score:quality", "avg", "model") == {"gpt-a": pytest.approx(0.75),
                                                               "gpt-b": pytest.approx(0.375)}
    assert val(store, pid, "guardrail:*", "rate") == pytest.approx(2 / 3)
    assert val(store, pid, "guardrail:*", "count") == 2
    assert val(store, pid, "guardrail:pi", "rate") == pytest.approx(1 / 3)
    assert val(store, pid, "guardrail:pii", "rate") == pytest.approx(1 / 3)
    assert val(store, pid, "guardrail:prompt_injection", "rate") == pytest.approx(1 / 3)
    assert val(store, pid, "guardrail:nope", "rate") is None
    assert by(store, pid, "guardrail:*", "rate", "scanner") == {"prompt_injection": pytest.approx(1 / 3),
                                                                "pii": pytest.approx(1 / 3)}
    assert by(store, pid, "guardrail:*", "count", "rule") == {"pi": 1, "pii": 1}
    assert by(store, pid, "guardrail:*", "rate", "environment") == {"prod": pytest.approx(2 / 3)}


def test_dimensions(store: Any, pid: str) -> None:
    assert by(store, pid, "traces", "count", "user_id") == {"u1": 3, "u2": 1, "u3": 1}
    assert by(store, pid, "traces", "count", "environment") == {"prod": 4, "dev": 1}
    assert by(store, pid, "traces", "count", "release") == {"r1": 3, "r2": 2}
    assert by(store, pid, "traces", "count", "name") == {"chat": 5}
    assert by(store, pid, "traces", "count", "tag") == {"(none)": 3, "x": 1, "y": 1}
    # By model: the model calls (t5 called both models).
    assert by(store, pid, "traces", "count", "model") == {"gpt-a": 3, "gpt-b": 3}
    assert by(store, pid, "spans", "count", "model") == {"gpt-a": 3, "gpt-b": 3}
    assert by(store, pid, "cost", "sum", "model") == {"gpt-a": pytest.approx(0.08), "gpt-b": pytest.approx(0.13)}
    assert by(store, pid, "errors", "count", "model") == {"gpt-a": 1, "gpt-b": 0}
    assert by(store, pid, "error_rate", "rate", "model") == {"gpt-a": pytest.approx(1 / 3), "gpt-b": 0}
    assert by(store, pid, "latency", "p50", "model") == {"gpt-a": pytest.approx(100.0), "gpt-b": pytest.approx(200.0)}
    assert by(store, pid, "tokens", "sum", "prompt") == {"qa v2": 90, "qa v1": 15}
    assert by(store, pid, "latency", "avg", None) == {"all": pytest.approx(400.0)}


def test_filters(store: Any, pid: str) -> None:
    assert val(store, pid, "traces", "count", environment="prod") == 4
    assert val(store, pid, "traces", "count", model="gpt-b") == 3
    assert val(store, pid, "traces", "count", tags=["x"]) == 1
    assert val(store, pid, "traces", "count", tags="y") == 1
    assert val(store, pid, "traces", "count", user_id="u1", release="r1") == 2
    assert val(store, pid, "latency", "max", min_latency_ms=150, max_latency_ms=450) == pytest.approx(400.0)
    assert val(store, pid, "traces", "count", score_name="quality", min_score=0.6) == 2
    assert val(store, pid, "traces", "count", status="error") == 1
    assert val(store, pid, "traces", "count", q="CHA") == 5
    # A model filter on a per-model chart keeps just that model's calls.
    assert by(store, pid, "cost", "sum", "model", model="gpt-b") == {"gpt-b": pytest.approx(0.13)}


def test_series_buckets_edges_and_top_n(store: Any, pid: str) -> None:
    s = store.metrics.series(pid, MetricQuery("traces", "count"), T0, END, 3600)
    t0 = int(T0.timestamp())
    assert s["buckets"] == [t0, t0 + 3600]
    # 12:59:59 is in the first bucket, 13:00:00 in the second, 14:00:00 in none.
    assert s["series"] == [{"key": "all", "values": [3, 2], "total": 5, "n": 5}]
    lat = store.metrics.series(pid, MetricQuery("latency", "p50"), T0, END, 3600)
    assert lat["series"][0]["values"] == [pytest.approx(200.0), pytest.approx(400.0)]
    # An unaligned start is aligned down to the interval.
    s2 = store.metrics.series(pid, MetricQuery("traces", "count"), T0 + timedelta(minutes=30), END, 3600)
    assert s2["buckets"] == [t0, t0 + 3600] and s2["series"][0]["values"] == [3, 2]
    # Half-hour buckets: empty ones are 0 for counts, None for the other aggregations.
    s3 = store.metrics.series(pid, MetricQuery("traces", "count"), T0, END, 1800)
    assert s3["series"][0]["values"] == [2, 1, 1, 1]
    s4 = store.metrics.series(pid, MetricQuery("latency", "avg"), T0, T0 + timedelta(hours=3), 1800)
    assert s4["series"][0]["values"] == [pytest.approx(150.0), pytest.approx(300.0), pytest.approx(400.0),
                                         pytest.approx(1000.0), pytest.approx(5000.0), None]
    # Top 1 user, the rest as "other" (aggregated over its rows, not summed from series).
    u = store.metrics.series(pid, MetricQuery("latency", "p50", "user_id"), T0, END, 3600, top=1)
    assert [x["key"] for x in u["series"]] == ["u1", "other"]
    assert u["series"][0]["values"] == [pytest.approx(100.0), pytest.approx(1000.0)]
    assert u["series"][1]["values"] == [pytest.approx(200.0), pytest.approx(400.0)]
    assert u["series"][0]["total"] == pytest.approx(300.0) and u["series"][1]["total"] == pytest.approx(200.0)
    m = store.metrics.series(pid, MetricQuery("cost", "sum", "model"), T0, END, 3600)
    got = {x["key"]: x["values"] for x in m["series"]}
    assert got == {"gpt-a": [pytest.approx(0.03), pytest.approx(0.05)],
                   "gpt-b": [pytest.approx(0.03), pytest.approx(0.10)]}
    g = store.metrics.series(pid, MetricQuery("guardrail:*", "rate", "scanner"), T0, END, 3600)
    got = {x["key"]: x["values"] for x in g["series"]}
    assert got == {"pii": [0.0, 1.0], "prompt_injection": [0.5, 0.0]}


def test_bad_queries_name_the_valid_values(store: Any, pid: str) -> None:
    cases = [
        (MetricQuery("nope"), "valid metrics: traces"),
        (MetricQuery("traces", "avg"), "takes agg count, sum"),
        (MetricQuery("latency", "rate"), "takes agg count, sum, avg"),
        (MetricQuery("latency", "p50", "colour"), "valid dimensions: model"),
        (MetricQuery("latency", "p50", "scanner"), "guardrail metrics only"),
        (MetricQuery("latency", "p50", None, {"colour": "x"}), "valid filters: name"),
        (MetricQuery("latency", "p50", None, {"min_cost": "x"}), "takes a number"),
        (MetricQuery("latency", "p50", None, {"tags": [1]}), "tags"),
        (MetricQuery("score:"), "needs a name"),
    ]
    for q, msg in cases:
        with pytest.raises(BadRequest) as e:
            store.metrics.value(pid, q, T0, END)
        assert msg in e.value.message, (q, e.value.message)
    with pytest.raises(BadRequest, match="too many"):
        store.metrics.series(pid, MetricQuery("traces", "count"), T0, T0 + timedelta(days=365), 60)
    with pytest.raises(BadRequest, match="empty"):
        store.metrics.series(pid, MetricQuery("traces", "count"), END, T0, 60)


def test_saved_dashboards(store: Any) -> None:
    pid = make_project(store, "d").project_id
    d = store.dashboards.create(pid, name="Ops", description="on call", charts=[
        {"title": "p95", "metric": "latency", "agg": "p95", "dimension": "model", "chart_type": "line"},
        {"metric": "traces", "agg": "count", "chart_type": "number", "filters": {"environment": "prod"}},
    ])
    assert [c["title"] for c in d["charts"]] == ["p95", "count traces"]
    assert d["charts"][1]["filters"] == {"environment": "prod"}
    with pytest.raises(Conflict):
        store.dashboards.create(pid, name="Ops")
    with pytest.raises(BadRequest, match="chart 1: unknown metric"):
        store.dashboards.create(pid, name="Bad", charts=[{"metric": "nope"}])
    with pytest.raises(BadRequest, match="chart_type"):
        store.dashboards.create(pid, name="Bad", charts=[{"metric": "traces", "agg": "count", "chart_type": "pie"}])
    u = store.dashboards.update(pid, d["id"], {"name": "Ops 2", "charts": list(reversed(d["charts"]))})
    assert u["name"] == "Ops 2" and [c["title"] for c in u["charts"]] == ["count traces", "p95"]
    assert [x["name"] for x in store.dashboards.list_dashboards(pid)] == ["Ops 2"]
    assert store.dashboards.list_dashboards(pid)[0]["chart_count"] == 2
    other = make_project(store, "e").project_id
    with pytest.raises(NotFound):
        store.dashboards.get(other, d["id"])
    store.dashboards.delete(pid, d["id"])
    with pytest.raises(NotFound):
        store.dashboards.delete(pid, d["id"])


def test_one_pass_series_equals_the_ranked_sql(store: Any, pid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Series for combinable aggregations over narrow dimensions are combined in Python from one
    query; they must equal the ranked SQL path (forced by marking every dimension wide)."""
    from podium.store.repos import metrics as mod

    queries = [MetricQuery(m, a, d) for m, a, d in [
        ("traces", "count", None), ("traces", "count", "model"), ("cost", "sum", "model"),
        ("latency", "avg", "model"), ("latency", "min", "release"), ("latency", "max", "environment"),
        ("error_rate", "rate", "model"), ("errors", "count", "release"), ("score:quality", "avg", "prompt"),
        ("score:*", "count", "score"), ("guardrail:*", "rate", "scanner"), ("guardrail:*", "avg", None),
        ("tokens", "sum", "prompt"), ("spans", "count", "model")]]
    for top in (1, 10):
        fast = [store.metrics.series(pid, q, T0, END, 1800, top=top) for q in queries]
        monkeypatch.setattr(mod, "_WIDE_DIMS", set(mod.DIMENSIONS))
        slow = [store.metrics.series(pid, q, T0, END, 1800, top=top) for q in queries]
        monkeypatch.undo()
        for q, a, b in zip(queries, fast, slow, strict=True):
            assert a["buckets"] == b["buckets"], q
            assert [s["key"] for s in a["series"]] == [s["key"] for s in b["series"]], (q, top)
            for sa, sb in zip(a["series"], b["series"], strict=True):
                assert sa["n"] == sb["n"], (q, top, sa, sb)
                assert sa["values"] == pytest.approx(sb["values"]), (q, top, sa, sb)
                assert sa["total"] == pytest.approx(sb["total"]), (q, top, sa, sb)
    # Top 1 model by calls (a tie: by name), the other model as "other".
    m = store.metrics.series(pid, MetricQuery("latency", "avg", "model"), T0, END, 3600, top=1)
    assert [(s["key"], s["values"], s["total"]) for s in m["series"]] == [
        ("gpt-a", [pytest.approx(75.0), pytest.approx(300.0)], pytest.approx(150.0)),
        ("other", [pytest.approx(150.0), pytest.approx(300.0)], pytest.approx(250.0))]
