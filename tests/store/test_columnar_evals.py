"""Experiment scores on the columnar span store (ClickHouse through chDB): the scores an experiment's
item results give their traces are written where the trace pages and score lists read them, and a
differential test: the same experiments, results and re-sent results on the SQL store and on
ClickHouse give the same score lists and trace filters by score."""

# ruff: noqa: F811
from __future__ import annotations

import random
from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.evals.service import EvalService
from podium.store import Store
from podium.store.columnar import ColumnarEvalRepo
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.scores import ScoreFilter
from podium.store.repos.traces import TraceFilter
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import span


def test_the_store_hands_out_the_columnar_eval_repo(store: Store) -> None:
    assert isinstance(store.evals, ColumnarEvalRepo)


def _results(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        scores: dict[str, Any] = {}
        for name in rng.sample(["exact", "judge", "label", "broken"], 3):
            if name == "broken":
                scores[name] = {"error": "scorer failed"}
            elif name == "label":
                scores[name] = {"value": rng.choice(["good", "bad"])}
            elif name == "exact":
                scores[name] = {"value": rng.random() < 0.5, "passed": True}
            else:
                scores[name] = {"value": rng.randrange(0, 5) / 4, "explanation": "because", "metadata": {"k": i}}
        out.append({"item_id": f"i{i}", "repetition": rng.randrange(0, 2), "output": f"o{i}",
                    "trace_id": f"t{i:02d}" if rng.random() < 0.9 else None, "scores": scores})
    return out


def _run(s: Store, pid: str, rng: random.Random) -> dict[str, Any]:
    s.ingest.write(IngestBatch(spans=[span(pid, f"t{i:02d}", "root") for i in range(30)]))
    svc = EvalService(s.evals)
    out: dict[str, Any] = {}
    for e in range(2):
        exp = svc.create_experiment(pid, {"id": f"exp{e}", "name": f"run {e}"}, actor=None)
        results = _results(rng, 30)
        out[f"counts {e}"] = svc.add_items(pid, exp["id"], {"items": results})
        again = [dict(r, scores={"judge": {"value": 1.0}}) for r in results[::4]]  # re-sent: replaces the score
        out[f"again {e}"] = svc.add_items(pid, exp["id"], {"items": again})
    out["scores"] = sorted(s.scores.list_scores(pid, ScoreFilter(source="eval"), limit=1000).items,
                           key=lambda r: r["id"])
    out["judged"] = [r["id"] for r in s.traces.list_traces(pid, TraceFilter(score_name="judge", min_score=0.75),
                                                           limit=100).items]
    return out


def _strip(rows: Any) -> Any:
    if isinstance(rows, dict):
        return {k: _strip(v) for k, v in rows.items() if k not in ("timestamp", "project_id")}
    return [_strip(v) for v in rows] if isinstance(rows, list) else rows


@pytest.mark.parametrize("seed", [1, 2])
def test_same_experiment_scores_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:
    a = sql_store.projects.create_project("on-sql").id
    b = store.projects.create_project("on-clickhouse").id
    want = _run(sql_store, a, random.Random(seed))
    got = _run(store, b, random.Random(seed))
    assert _strip(got) == _strip(want)
    assert len(want["scores"]) > 80 and want["judged"]
    assert {r["data_type"] for r in want["scores"]} == {"numeric", "boolean", "categorical"}
