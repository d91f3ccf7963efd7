"""Drift and online evaluation on the columnar span store (ClickHouse through chDB): their own tests
re-run with the columnar store selected, and a differential test: the same traces in the SQL store
and in ClickHouse give the same drift samples and score values, and the same online-evaluation
candidates, backfill ranges, traces and spans."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.store import Store
from podium.store import tables as t
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.online_evals import JUDGE_TAG
from podium.store.repos.traces import TraceFilter
from tests.monitor.test_drift import (  # noqa: F401
    test_job_runs_due_monitors_once,
    test_runs_fire_on_shifts_and_not_on_unshifted,
    test_span_scope_and_dataset_reference,
    test_too_few_samples_is_insufficient,
)
from tests.monitor.test_online_eval import (  # noqa: F401
    no_embedded_worker,
    srv,
    test_backfill_over_a_range,
    test_disabled_rule_drops_its_queued_traces,
    test_embedded_worker_scores_arriving_traces,
    test_span_target,
    test_traces_get_online_scores_with_filter_mapping_and_guardrail,
)
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import T0, span


def _seed(s: Store, pid: str, rng: random.Random) -> None:
    spans: list[Any] = []
    hints: list[Any] = []
    tags: list[Any] = []
    scores: list[Any] = []
    for i in range(60):
        tid = f"tr{i:02d}"
        start = T0 + timedelta(hours=rng.uniform(0, 72))
        spans.append(span(pid, tid, f"{tid}-root", start_time=start, end_time=start + timedelta(seconds=2),
                          input={"question": f"q{i}"}, output=f"a{i}"))
        spans.append(span(pid, tid, f"{tid}-llm", parent_id=f"{tid}-root", kind="generation", name="chat",
                          start_time=start + timedelta(milliseconds=10), input=[{"role": "user", "content": f"q{i}"}],
                          output={"role": "assistant", "content": f"a{i}"}))
        hints.append({"project_id": pid, "id": tid, "user_id": None, "session_id": None, "release": None,
                      "environment": rng.choice(["prod", "dev"]), "metadata": None, "name": None})
        if rng.random() < 0.1:
            tags.append((pid, tid, JUDGE_TAG))
        scores.append({"project_id": pid, "id": f"{tid}-q", "trace_id": tid, "span_id": None, "session_id": None,
                       "name": "quality", "data_type": "numeric", "value": rng.random(), "string_value": None,
                       "source": "api", "comment": None, "metadata": None, "timestamp": start})
    s.ingest.write(IngestBatch(spans=spans, traces=hints, tags=tags, scores=scores))


def _strip(rows: Any) -> Any:
    """Rows less their project and write time (they differ between the two stores)."""
    if isinstance(rows, dict):
        return {k: _strip(v) for k, v in rows.items() if k not in ("project_id", "updated_at")}
    return [_strip(v) for v in rows] if isinstance(rows, list) else rows


@pytest.mark.parametrize("seed", [1, 2])
def test_same_samples_and_candidates_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:  # noqa: F811
    a = sql_store.projects.create_project("on-sql").id
    b = store.projects.create_project("on-clickhouse").id
    _seed(sql_store, a, random.Random(seed))
    _seed(store, b, random.Random(seed))
    start, end = T0 + timedelta(hours=12), T0 + timedelta(hours=60)

    # drift: the same records (seeded samples), counts and score values
    for f, kw in ((TraceFilter(), {}), (TraceFilter(environment="prod"), {}), (TraceFilter(), {"span_kind": "generation"}),
                  (TraceFilter(environment="dev"), {"span_name": "chat"})):
        for n in (10, 1000):
            got = store.drift.sample_records(b, f, start, end, n, seed=seed, **kw)
            want = sql_store.drift.sample_records(a, f, start, end, n, seed=seed, **kw)
            assert got[1] == want[1] and got[1] > 0, (f, kw)
            assert sorted(got[0], key=repr) == sorted(want[0], key=repr), (f, kw, n)
    ids = [f"tr{i:02d}" for i in range(0, 60, 3)]
    got_v = store.drift.score_values(b, ["quality", "none"], ids)
    want_v = sql_store.drift.score_values(a, ["quality", "none"], ids)
    assert {k: sorted(v) for k, v in got_v.items()} == {k: sorted(v) for k, v in want_v.items()}
    assert len(got_v["quality"]) == len(ids) and got_v["none"] == []

    # online evaluation: candidates walked with the cursor, backfill ranges, whole traces and spans
    for flt in (None, {"environment": "prod"}, {"name": "tr05-root"}):
        rule_a = {"project_id": a, "filter": flt, "cursor_time": None, "cursor_id": None}
        rule_b = {**rule_a, "project_id": b}
        until = T0 + timedelta(days=3650)
        walked: list[list[str]] = []
        for s, rule in ((sql_store, rule_a), (store, rule_b)):
            seen: list[str] = []
            while page := s.online_evals.candidates(rule, until=until, limit=7):
                seen += [tid for tid, _ in page]
                rule["cursor_time"], rule["cursor_id"] = page[-1][1], page[-1][0]
            walked.append(seen)
        assert walked[1] == walked[0] and len(set(walked[0])) == len(walked[0]), flt
        assert not _judged(sql_store, a) & set(walked[0])  # never the judges' own calls
        assert [x[0] for x in store.online_evals.in_range(b, flt, start, end, limit=1000)] == [
            x[0] for x in sql_store.online_evals.in_range(a, flt, start, end, limit=1000)]
        got_r = store.online_evals.in_range(b, flt, start, end, after=(start + timedelta(hours=5), "tr30"), limit=4)
        want_r = sql_store.online_evals.in_range(a, flt, start, end, after=(start + timedelta(hours=5), "tr30"),
                                                 limit=4)
        assert got_r == want_r
    some = ["tr01", "tr02", "tr33", "missing"]
    assert _strip(store.online_evals.load_traces(b, some)) == _strip(sql_store.online_evals.load_traces(a, some))
    assert _strip(store.online_evals.load_spans(b, some)) == _strip(sql_store.online_evals.load_spans(a, some))


def _judged(s: Store, pid: str) -> set[str]:
    with s.engine.connect() as c:
        return {r.trace_id for r in c.execute(
            select(t.trace_tag.c.trace_id).where(t.trace_tag.c.project_id == pid, t.trace_tag.c.tag == JUDGE_TAG))}
