"""Drift monitors (run with --db all): the store (monitors, results, latest_value, the lease), runs on
seeded traffic (unshifted windows stay quiet, topic/length/language/score shifts fire, new topic
clusters come with examples), the worker job, and the REST API's errors in the pinned shape.

Traffic is synthetic (tests/monitor/drift_text.py): one seeding per test, one environment per
scenario, each monitor scoped to its environment. Embeddings are cached for the session."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from podium.core.pricing import PriceTable
from podium.core.records import ScoreIn, SpanIn, SpanKind
from podium.monitor.drift.features import to_text
from podium.monitor.drift.job import DriftJob
from podium.monitor.drift.runner import run_monitor
from podium.monitor.drift.spec import check_monitor, to_filter
from podium.server.convert import BatchBuilder
from tests.conftest import LiveServer, ProjectKeys, make_project
from tests.monitor.drift_text import answer, mixed

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = {"billing": 0.5, "cooking": 0.5}
N = 120  # traces per window and scenario
MEDICAL = ("ibuprofen", "paracetamol", "amoxicillin", "antihistamine", "aspirin", "headache", "nausea", "fever",
           "rash", "sore throat", "back pain", "doctor", "dose")


def _write_window(store: Any, pid: str, env: str, tag: str, start: datetime, span_s: float, questions: list[str],
                  *, long: bool = False, score_mu: float = 0.7) -> None:
    rng = random.Random(f"{env}-{tag}")
    b = BatchBuilder(pid, PriceTable.default)
    for i, q in enumerate(questions):
        tid = f"{env}-{tag}-{i}"
        t0 = start + timedelta(seconds=span_s * (i + 0.5) / len(questions))
        b.add_span(SpanIn(id=f"{tid}-root", trace_id=tid, name="support-bot", start_time=t0,
                          end_time=t0 + timedelta(milliseconds=300), input={"question": q},
                          output=answer(q, rng, long=long), environment=env))
        b.add_score(ScoreIn(id=f"{tid}-q", name="quality", value=min(1.0, max(0.0, rng.gauss(score_mu, 0.1))),
                            trace_id=tid))
    store.ingest.write(b.batch)


def seed(store: Any, pid: str, scenarios: dict[str, dict[str, Any]]) -> None:
    """Per scenario (environment): a reference week of BASE traffic, then a current day."""
    for i, (env, cur) in enumerate(scenarios.items()):
        _write_window(store, pid, env, "ref", NOW - timedelta(days=8), 7 * 86400, mixed(N, BASE, seed=100 + i))
        _write_window(store, pid, env, "cur", NOW - timedelta(days=1), 86400 - 60,
                      mixed(N, cur.get("topics", BASE), seed=200 + i), long=cur.get("long", False),
                      score_mu=cur.get("score_mu", 0.7))


def monitor(store: Any, pid: str, env: str, features: list[str], **kw: Any) -> dict[str, Any]:
    fields = check_monitor({"name": f"drift-{env}", "scope": {"filter": {"environment": env}}, "window_s": 86400,
                            "reference": {"kind": "rolling", "length_s": 7 * 86400}, "features": features,
                            "sample_size": 500, **kw})
    return store.drift.create(pid, fields)


def test_store_results_and_latest_value(store: Any) -> None:
    pid = make_project(store, "drift-store").project_id
    m = store.drift.create(pid, check_monitor({"name": "inputs"}))
    assert store.drift.latest_value(pid, "inputs", "drifted") is None
    base = {"window_start": NOW - timedelta(days=1), "window_end": NOW}
    store.drift.add_result(pid, m["id"], {**base, "computed_at": NOW - timedelta(hours=2),
                                          "statistics": {"drifted": 0.0, "input_embedding_auc": 0.51}})
    store.drift.add_result(pid, m["id"], {**base, "computed_at": NOW - timedelta(hours=1), "drifted": True,
                                          "statistics": {"drifted": 1.0, "input_embedding_auc": 0.93}})
    # a later failed run does not hide the last good value
    store.drift.add_result(pid, m["id"], {**base, "computed_at": NOW, "status": "error", "error": "boom"})
    assert store.drift.latest_value(pid, "inputs", "input_embedding_auc") == 0.93
    assert store.drift.latest_value(pid, m["id"], "drifted") == 1.0
    assert store.drift.latest_value(pid, "inputs", "nope") is None
    assert store.drift.latest_value(pid, "missing", "drifted") is None
    other = make_project(store, "drift-other").project_id
    assert store.drift.latest_value(other, m["id"], "drifted") is None  # scoped by project
    hist = store.drift.results(pid, m["id"])
    assert [r["status"] for r in hist] == ["error", "ok", "ok"]
    assert store.drift.latest_results(pid)[m["id"]]["status"] == "error"
    assert store.drift.delete(pid, m["id"]) and store.drift.results(pid, m["id"]) == []


def test_lease_is_taken_once(store: Any) -> None:
    pid = make_project(store, "drift-lease").project_id
    m = store.drift.create(pid, check_monitor({"name": "leased"}), now=NOW - timedelta(minutes=1))
    assert store.drift.due(NOW) == [(pid, m["id"])]
    assert store.drift.try_lease(pid, m["id"], "w1", NOW, 60)
    assert not store.drift.try_lease(pid, m["id"], "w2", NOW, 60)  # held
    assert store.drift.due(NOW) == []
    # an expired lease (a killed worker) is taken over
    assert store.drift.try_lease(pid, m["id"], "w2", NOW + timedelta(seconds=61), 60)
    store.drift.release(pid, m["id"], "w1", NOW + timedelta(hours=1))  # not the holder: no effect
    assert store.drift.get(pid, m["id"])["lease_owner"] == "w2"
    store.drift.release(pid, m["id"], "w2", NOW + timedelta(hours=1))
    assert store.drift.due(NOW + timedelta(minutes=59)) == []
    assert store.drift.due(NOW + timedelta(hours=1)) == [(pid, m["id"])]


@pytest.mark.slow
def test_runs_fire_on_shifts_and_not_on_unshifted(store: Any) -> None:
    pid = make_project(store, "drift-runs").project_id
    seed(store, pid, {
        "same": {},
        "topic": {"topics": {"billing": 0.25, "cooking": 0.25, "travel": 0.5}},
        "long": {"long": True, "score_mu": 0.4},
        "lang": {"topics": {"billing": 0.25, "cooking": 0.25, "fr": 0.25, "es": 0.25}},
        "new": {"topics": {"billing": 0.42, "cooking": 0.43, "medical": 0.15}},
    })
    everything = ["input_embedding", "output_embedding", "input_length", "output_length", "input_language",
                  "input_topics", "score:quality"]

    same = run_monitor(store, pid, monitor(store, pid, "same", everything), now=NOW)
    assert same["status"] == "ok" and (same["reference_n"], same["current_n"]) == (N, N)
    assert not same["drifted"], same["details"]["features"]
    assert same["statistics"]["drifted"] == 0.0 and same["statistics"]["input_new_topics"] == 0
    for k, v in same["statistics"].items():
        if k.endswith("_p_value"):
            assert v >= 0.01, (k, v)

    topic = run_monitor(store, pid, monitor(store, pid, "topic", ["input_embedding", "input_topics"]), now=NOW)
    s = topic["statistics"]
    assert topic["drifted"] and s["input_embedding_drifted"] == 1.0
    assert s["input_embedding_p_value"] < 0.01 and s["input_embedding_auc"] > 0.6
    assert s["input_topics_p_value"] < 0.01

    long = run_monitor(store, pid, monitor(store, pid, "long", ["output_length", "input_length", "score:quality"]),
                       now=NOW)
    s = long["statistics"]
    assert s["output_length_p_value"] < 0.01 and s["output_length_drifted"] == 1.0
    assert s["input_length_p_value"] >= 0.01  # the questions did not change
    assert s["score:quality_p_value"] < 0.01 and s["score:quality_mean_delta"] < -0.2

    lang = run_monitor(store, pid, monitor(store, pid, "lang", ["input_language"]), now=NOW)
    assert lang["statistics"]["input_language_p_value"] < 0.01
    shares = lang["details"]["features"][0]["current_shares"]
    assert shares.get("fr", 0) > 0.15 and shares.get("es", 0) > 0.15

    new = run_monitor(store, pid, monitor(store, pid, "new", ["input_topics"]), now=NOW)
    topics = new["details"]["new_topics"]["input"]
    assert new["statistics"]["input_new_topics"] >= 1 and new["drifted"]
    for t in topics:
        assert len(t["examples"]) == 3
        assert all(any(w in x.lower() for w in MEDICAL) for x in t["examples"]), t["examples"]
        assert t["keywords"]


def test_span_scope_and_dataset_reference(store: Any) -> None:
    """Texts from the spans of a kind (not the trace), a trace filter narrowing them, and a dataset
    as the reference (its items' input; expected as the output)."""
    from podium.evals.service import EvalService

    pid = make_project(store, "drift-spans").project_id
    b = BatchBuilder(pid, PriceTable.default)
    qs = mixed(40, BASE, seed=9)
    for i, q in enumerate(qs):
        tid, t0 = f"s{i}", NOW - timedelta(hours=2) + timedelta(seconds=i)
        env = "prod" if i % 4 else "dev"
        b.add_span(SpanIn(id=f"{tid}-root", trace_id=tid, name="agent", start_time=t0, input={"task": "x"},
                          output="done", environment=env))
        b.add_span(SpanIn(id=f"{tid}-llm", trace_id=tid, parent_id=f"{tid}-root", name="chat", kind=SpanKind.GENERATION,
                          start_time=t0 + timedelta(milliseconds=5),
                          input=[{"role": "system", "content": "be brief"}, {"role": "user", "content": q}],
                          output={"role": "assistant", "content": f"answer {i}"}))
    store.ingest.write(b.batch)
    recs, total = store.drift.sample_records(pid, to_filter({"filter": {"environment": "prod"}}),
                                             NOW - timedelta(days=1), NOW, 100, span_kind="generation")
    assert total == 30 and len(recs) == 30
    assert {to_text(r["input"]) for r in recs} == {q for i, q in enumerate(qs) if i % 4}  # the last user message
    recs, total = store.drift.sample_records(pid, to_filter(None), NOW - timedelta(days=1), NOW, 10, seed=1)
    assert total == 40 and len(recs) == 10 and all(r["input"] == {"task": "x"} for r in recs)

    EvalService(store.evals).change_items(pid, "golden", {"create": True, "items": [
        {"id": f"g{i}", "input": {"question": q}, "expected": "an answer"} for i, q in enumerate(mixed(40, BASE, 10))
    ]}, actor="test")
    m = store.drift.create(pid, check_monitor({
        "name": "vs-golden", "scope": {"filter": {"environment": "prod"}, "span_kind": "generation"},
        "reference": {"kind": "dataset", "dataset": "golden"}, "features": ["input_length", "score:quality"],
        "thresholds": {"min_samples": 20}}))
    r = run_monitor(store, pid, m, now=NOW)
    assert r["status"] == "ok" and (r["reference_n"], r["current_n"]) == (40, 30)
    assert r["reference_start"] is None and "input_length_p_value" in r["statistics"]
    assert r["details"]["skipped"] == [{"feature": "score:quality", "reason": "a dataset reference has no scores"}]


def test_too_few_samples_is_insufficient(store: Any) -> None:
    pid = make_project(store, "drift-few").project_id
    _write_window(store, pid, "tiny", "cur", NOW - timedelta(hours=2), 3600, mixed(5, BASE, seed=1))
    r = run_monitor(store, pid, monitor(store, pid, "tiny", ["input_length"]), now=NOW)
    assert r["status"] == "insufficient" and not r["drifted"] and "min_samples" in r["error"]


def test_job_runs_due_monitors_once(store: Any) -> None:
    pid = make_project(store, "drift-job").project_id
    now = datetime.now(UTC)
    rng = random.Random(3)
    b = BatchBuilder(pid, PriceTable.default)
    for i, q in enumerate(mixed(80, BASE, seed=5)):  # 40 last week, 40 today
        t0 = now - (timedelta(days=3) if i % 2 else timedelta(hours=3)) + timedelta(seconds=i)
        b.add_span(SpanIn(id=f"r{i}", trace_id=f"t{i}", name="bot", start_time=t0, input=q,
                          output=answer(q, rng), environment="job"))
    store.ingest.write(b.batch)
    m = monitor(store, pid, "job", ["input_length", "output_length"], thresholds={"min_samples": 20})
    a, b2 = DriftJob(store, owner="a"), DriftJob(store, owner="b")
    assert a.run_once() == 1
    assert b2.run_once() == 0  # not due again until interval_s
    res = store.drift.results(pid, m["id"])
    assert len(res) == 1 and res[0]["status"] == "ok" and res[0]["current_n"] == 40
    assert store.drift.latest_value(pid, "drift-job", "output_length_p_value") is not None
    nxt = store.drift.get(pid, m["id"])
    assert nxt["lease_owner"] is None and nxt["next_run_at"] > now + timedelta(minutes=59)


# --- the REST API ------------------------------------------------------------------------------------


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) >= {"code", "message", "details"}
    assert body["error"]["code"] == code
    return dict(body["error"])


def test_api_crud_run_and_errors(server: LiveServer, project: ProjectKeys, store: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    c = server.client(project)
    body = {"name": "support inputs", "scope": {"filter": {"environment": "api"}}, "window_s": 3600,
            "features": ["input_length"], "thresholds": {"min_samples": 10},
            "enabled": False}  # paused: the server's embedded worker leaves it alone; run-now still runs it
    r = c.post("/api/v1/drift-monitors", json=body)
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["reference"] == {"kind": "rolling", "length_s": 604800, "gap_s": 0}
    assert m["thresholds"]["p_value"] == 0.01 and m["thresholds"]["min_samples"] == 10

    _error(c.post("/api/v1/drift-monitors", json=body), 409, "conflict")
    e = _error(c.post("/api/v1/drift-monitors", json={**body, "name": "x", "features": ["vibes"]}), 400,
               "validation_error")
    assert "input_embedding" in e["message"]
    _error(c.post("/api/v1/drift-monitors", json={**body, "name": "y", "sample_size": 10**6}), 400,
           "validation_error")
    e = _error(c.post("/api/v1/drift-monitors", json={**body, "name": "z", "reference": {"kind": "dataset",
                                                                                          "dataset": "nope"}}),
               400, "validation_error")
    assert "nope" in e["message"]
    e = _error(c.post("/api/v1/drift-monitors", json={**body, "name": "w", "reference": {
        "kind": "fixed", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}}), 400, "validation_error")
    assert "swap" in e["message"]
    _error(c.get("/api/v1/drift-monitors/missing"), 404, "not_found")
    _error(c.post("/api/v1/drift-monitors/missing/run"), 404, "not_found")

    reader = make_project(store, "drift-readonly", role="viewer")
    rc = server.client(reader)
    _error(rc.post("/api/v1/drift-monitors", json=body), 403, "forbidden")
    assert rc.get("/api/v1/drift-monitors").json()["data"] == []  # another project's monitors are invisible

    # a run with no traffic: stored as insufficient
    r = c.post("/api/v1/drift-monitors/support inputs/run")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "insufficient"
    r = c.patch(f"/api/v1/drift-monitors/{m['id']}", json={"thresholds": {"p_value": 0.05}, "window_s": 7200})
    assert r.status_code == 200, r.text
    assert r.json()["thresholds"]["p_value"] == 0.05 and r.json()["thresholds"]["min_samples"] == 10
    lst = c.get("/api/v1/drift-monitors").json()["data"]
    assert lst[0]["last_result"]["status"] == "insufficient"
    assert len(c.get(f"/api/v1/drift-monitors/{m['id']}/results").json()["data"]) == 1

    # without the monitor extra: 503 that names the install command
    monkeypatch.setitem(sys.modules, "evidently", None)
    e = _error(c.post(f"/api/v1/drift-monitors/{m['id']}/run"), 503, "unavailable")
    assert "pip install 'podium[monitor]'" in e["message"]
    page = httpx.get(server.url + "/drift", headers={"accept": "text/html"}, timeout=30).text
    assert 'data-testid="drift-missing"' in page and "podium[monitor]" in page

    assert c.delete(f"/api/v1/drift-monitors/{m['id']}").status_code == 204
    _error(c.get(f"/api/v1/drift-monitors/{m['id']}"), 404, "not_found")


# --- the web UI ----------------------------------------------------------------------------------------


def test_ui_create_run_and_monitor_page(server: LiveServer, project: ProjectKeys, store: Any) -> None:
    seed(store, project.project_id, {"ui": {"topics": {"billing": 0.4, "cooking": 0.4, "medical": 0.2}}})
    with httpx.Client(base_url=server.url, timeout=60, headers={"accept": "text/html"}) as c:
        assert "No drift monitors yet" in c.get("/drift").text
        form = [("monitor_name", "ui-monitor"), ("environment", "ui"), ("window_s", "86400"),
                ("reference_s", "604800"), ("feature", "input_embedding"), ("feature", "input_topics"),
                ("feature", "input_length"), ("scores", "quality"), ("sample_size", "500"), ("interval_s", "3600")]
        ctype = {"content-type": "application/x-www-form-urlencoded"}
        bad = c.post("/drift", content=urlencode([*form[1:], ("monitor_name", "")]), headers=ctype)
        assert bad.status_code == 400 and "name" in bad.text
        r = c.post("/drift", content=urlencode(form), headers=ctype, follow_redirects=False)
        assert r.status_code == 303, r.text
        url = r.headers["location"].split("?")[0]
        mid = url.rsplit("/", 1)[1]
        m = store.drift.get(project.project_id, mid)
        assert m["scope"] == {"filter": {"environment": "ui"}}
        assert m["features"] == ["input_embedding", "input_topics", "input_length", "score:quality"]
        assert "No successful runs yet" in c.get(url).text
        for _ in range(2):
            r = c.post(f"{url}/run", follow_redirects=True)
            assert r.status_code == 200 and 'data-testid="drift-ran"' in r.text
        html = c.get(url).text
        assert 'id="chart-drift-p"' in html and 'data-feature="input_topics"' in html
        assert 'data-testid="drift-topic"' in html  # the medical questions are a new topic
        assert "drifted" in html
        listing = c.get("/drift").text
        assert "ui-monitor" in listing and "status-error" in listing  # drifted badge
        assert c.get("/drift/nope").status_code == 404
        assert c.post(f"{url}/delete", follow_redirects=False).status_code == 303
        assert store.drift.get(project.project_id, mid) is None
