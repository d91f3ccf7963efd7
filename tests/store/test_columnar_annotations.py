"""Annotation queues on the columnar span store (ClickHouse through chDB): the queues' own store tests
re-run with the columnar store selected (their traces and the scores submissions write live in
ClickHouse), and a differential test: the same traces, filters, targets and submissions on the SQL
store and on ClickHouse give the same items, errors, scores and exported dataset items."""

# ruff: noqa: F811
from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.errors import NotFound
from podium.store import Store
from podium.store.columnar import ColumnarAnnotationRepo
from podium.store.repos.annotations import Target
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.scores import ScoreFilter
from tests.monitor.test_annotations import (  # noqa: F401
    configs,
    pid,
    test_create_from_filter_and_ids,
    test_queue_agreement_and_to_dataset,
    test_reviews_per_item_skip_and_progress,
    test_submit_writes_a_human_score_and_validates,
    test_two_annotators_get_different_items_and_locks_expire,
)
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import T0, span


def test_the_store_hands_out_the_columnar_annotation_repo(store: Store) -> None:
    assert isinstance(store.annotations, ColumnarAnnotationRepo)


def _seed(s: Store, pid: str, rng: random.Random) -> None:
    spans: list[Any] = []
    hints: list[Any] = []
    for k in range(40):
        tid = f"t{k:02d}"
        st = T0 + timedelta(minutes=rng.randrange(0, 600))
        spans.append(span(pid, tid, "root", name="chat", start_time=st, end_time=st + timedelta(seconds=1),
                          latency_ms=1000.0, status="ok", input={"question": f"q{k}"}, output={"answer": f"a{k}"}))
        for j in range(rng.randrange(0, 3)):
            spans.append(span(pid, tid, f"llm{j}", parent_id="root", kind="generation", start_time=st,
                              input=f"prompt {k}.{j}", output=[{"role": "assistant", "content": f"c{k}.{j}"}]))
        hints.append({"project_id": pid, "id": tid, "user_id": rng.choice(["u1", "u2"]), "session_id": None,
                      "release": None, "environment": rng.choice(["prod", "dev"]), "metadata": None, "name": None})
    s.ingest.write(IngestBatch(spans=spans, traces=hints))


def _strip(v: Any) -> Any:
    """Values less the fields that differ between two stores written at different moments."""
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items()
                if k not in ("timestamp", "created_at", "updated_at", "locked_until", "project_id", "queue_id",
                             "id", "config_id", "score_config_id", "score_ids", "annotation_queue", "last_at")}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def _run(s: Store, pid: str, rng: random.Random) -> dict[str, Any]:
    cfg = configs(s, pid)
    repo = s.annotations
    out: dict[str, Any] = {}
    q = repo.create_queue(pid, name="diff", score_config_ids=[c["id"] for c in cfg.values()], reviews_per_item=1)
    out["filter"] = repo.add_from_filter(pid, q["id"], {"environment": "prod", "user_id": "u1"}, limit=8)
    targets = [Target(f"t{k:02d}", rng.choice([None, "root", "llm0", "llm1"])) for k in rng.sample(range(40), 12)]
    errors = []
    for tg in targets:  # one at a time: a span a trace lacks is refused, the others go in
        try:
            out.setdefault("added", []).append(repo.add_items(pid, q["id"], [tg]))
        except NotFound as e:
            errors.append((str(e), e.details))
    out["errors"] = errors
    with pytest.raises(NotFound):
        repo.add_items(pid, q["id"], [Target("nope")])
    out["items"] = repo.list_items(pid, q["id"])
    while (item := repo.claim_next(pid, q["id"], "ann")) is not None:
        values = {"correct": rng.random() < 0.5, "tone": rng.choice(["rude", "neutral", "kind"]),
                  "quality": rng.randrange(1, 6)}
        repo.submit(pid, q["id"], item["id"], "ann", dict(rng.sample(sorted(values.items()), 2)))
    out["scores"] = sorted(s.scores.list_scores(pid, ScoreFilter(source="human"), limit=500).items,
                           key=lambda r: (r["trace_id"], r["span_id"] or "", r["name"]))
    out["dataset"] = repo.to_dataset(pid, q["id"], "reviewed")
    out["dataset_items"] = sorted(s.evals.list_items(pid, "reviewed")[1].items,  # ids name the queue
                                  key=lambda r: (r["source_trace_id"], r["metadata"]["span_id"] or ""))
    out["progress"] = repo.progress(pid, q["id"])
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_same_queues_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:
    a = sql_store.projects.create_project("on-sql").id
    b = store.projects.create_project("on-clickhouse").id
    _seed(sql_store, a, random.Random(seed))
    _seed(store, b, random.Random(seed))
    want = _run(sql_store, a, random.Random(seed))
    got = _run(store, b, random.Random(seed))
    assert _strip(got) == _strip(want)
    assert want["filter"]["added"] > 0 and want["errors"] and len(want["scores"]) >= 10
    assert any(r["span_id"] for r in want["scores"]) and want["dataset"]["items"] > 0
