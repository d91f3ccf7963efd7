"""Canary gates, a model's served traffic and an eval sweep's traffic forecast on the columnar span
store (ClickHouse through chDB): the canary tests re-run with the columnar store selected (their
gateway calls, guardrail decisions and online scores live in ClickHouse), and a differential test: the
same random calls, re-sends and scores on the SQL store and on ClickHouse give the same rows from
``store.canaries`` (``spans_since``, ``online_scores``, ``guardrail_actions``), ``store.models.served``
and ``store.eval_sweeps.traffic``."""

# ruff: noqa: F811
from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.store import Store
from podium.store.columnar import ColumnarCanaryRepo, ColumnarEvalSweepRepo, ColumnarModelRepo
from podium.store.repos.ingest import IngestBatch
from tests.monitor.test_canary import (  # noqa: F401
    test_a_step_waits_for_the_online_scores_before_judging_them,
    test_candidate_errors_roll_back_with_an_alert,
    test_measure_and_judge_directly,
    test_passing_gates_step_up_and_promote,
    test_too_few_requests_hold_and_other_gates_breach,
)
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import T0, span

MODELS = ["m-a", "m-b", "m-c", "registry:/bot@1"]


def test_the_store_hands_out_the_columnar_repos(store: Store) -> None:
    assert isinstance(store.canaries, ColumnarCanaryRepo)
    assert isinstance(store.models, ColumnarModelRepo)
    assert isinstance(store.eval_sweeps, ColumnarEvalSweepRepo)


def _seed(s: Store, pid: str, rng: random.Random) -> None:
    spans: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    for i in range(120):
        tid = f"t{i:03d}"
        at = T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        gw: dict[str, Any] = {"alias": rng.choice(["bot", "other"])}
        if rng.random() < 0.3:
            gw["attempts"] = [{"deployment": "bot#1", "ok": False}, {"deployment": "bot#0", "ok": True}]
        model = rng.choice([*MODELS, None])
        tin = rng.randrange(1, 400)
        spans.append(span(pid, tid, "g", kind=rng.choice(["generation", "generation", "embedding", "span"]),
                          start_time=at, latency_ms=float(rng.randrange(10, 900)), model=model,
                          status=rng.choice(["ok", "ok", "error"]), metadata={"gateway": gw} if rng.random() < 0.8
                          else None, input_tokens=tin, output_tokens=tin // 2, total_tokens=tin + tin // 2,
                          prompt_name=rng.choice(["qa", None]), prompt_version=1))
        if rng.random() < 0.3:  # a second call in the trace
            spans.append(span(pid, tid, "g2", kind="generation", start_time=at + timedelta(seconds=1),
                              model=rng.choice(MODELS), latency_ms=5.0, input_tokens=7, output_tokens=3,
                              total_tokens=10))
        for k in range(rng.randrange(0, 3)):  # guardrail decisions under the call
            action = rng.choice(["allow", "flag", "block", None])
            spans.append(span(pid, tid, f"gr{k}", parent_id="g", kind="guardrail", name="guardrail.output",
                              start_time=at, status=rng.choice(["ok", "error"]),
                              output={"action": action} if action else None))
        for k in range(rng.randrange(0, 4)):
            scores.append({"project_id": pid, "id": f"{tid}-sc{k}", "trace_id": tid,
                           "span_id": rng.choice([None, "g", "g2", "gr0"]), "session_id": None,
                           "name": rng.choice(["helpful", "safe"]), "data_type": rng.choice(["numeric", "boolean",
                                                                                            "categorical"]),
                           "value": rng.choice([None, 0.25, 0.5, 1.0]), "string_value": None,
                           "source": rng.choice(["online", "online", "api"]), "comment": None, "metadata": None,
                           "timestamp": at})
    s.ingest.write(IngestBatch(spans=spans, scores=scores))
    # Re-sends: a later version of some calls names another model or starts later.
    again = []
    for r in spans[::9]:
        if r["model"] is None:
            continue
        moved = dict(r, model=rng.choice(MODELS))
        if rng.random() < 0.4:
            moved["start_time"] = r["start_time"] + timedelta(days=1)
        again.append(moved)
    s.ingest.write(IngestBatch(spans=again))


def _answers(s: Store, pid: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for models in (MODELS[:1], MODELS[1:3], MODELS, ["nothing"]):
        for since in (T0, T0 + timedelta(days=1, hours=5), T0 + timedelta(days=9)):
            key = f"{','.join(models)}@{since.isoformat()}"
            out["spans " + key] = sorted(s.canaries.spans_since(pid, models, since),
                                         key=lambda r: (r["trace_id"], r["id"]))
            out["scores " + key] = sorted(s.canaries.online_scores(pid, models, since))
            out["guards " + key] = sorted(s.canaries.guardrail_actions(pid, models, since))
        out["served " + ",".join(models)] = s.models.served(pid, models)
    for since in (T0, T0 + timedelta(days=2), T0 + timedelta(days=9)):
        out[f"traffic qa {since}"] = s.eval_sweeps.traffic(pid, since=since, prompt_name="qa")
        for m in MODELS[:2]:
            out[f"traffic {m} {since}"] = s.eval_sweeps.traffic(pid, since=since, model=m)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_same_gate_and_traffic_reads_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:
    a = sql_store.projects.create_project("on-sql").id
    b = store.projects.create_project("on-clickhouse").id
    _seed(sql_store, a, random.Random(seed))
    _seed(store, b, random.Random(seed))
    want, got = _answers(sql_store, a), _answers(store, b)
    assert list(got) == list(want)
    for k in want:
        assert got[k] == want[k], k
    every = f"{','.join(MODELS)}@{T0.isoformat()}"
    assert len(want["spans " + every]) > 50 and len(want["scores " + every]) > 10
    assert len(want["guards " + every]) > 10 and want["served " + ",".join(MODELS)]["spans"] > 50
    assert any(r["attempts"] for r in want["spans " + every]) and want[f"traffic qa {T0}"]["calls"] > 10
