"""Online evaluation rules: validation in the pinned error shape, traces ingested through a real
server getting scores with source ``online`` (the jobs driven by hand for determinism, then once
by a running worker), deterministic sampling, filters, mapping paths, span targets, redelivery
without duplicates, a guardrail scanner as a scorer, an LLM judge through the gateway against
the fake upstream (with a 429 the AIMD limiter backs off from, and its cost), backfill over a
time range, stats and /metrics. Each store-backed test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.monitor.online.evaluator import OnlineEvaluator, score_id
from podium.monitor.online.judge import GatewayJudges
from podium.monitor.online.producer import KIND, OnlineEvalProducer, sampled
from podium.monitor.worker import QueueConsumer
from tests.conftest import LiveServer, ProjectKeys, ServerThread

RULES = "/api/v1/evaluation-rules"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def _serve(store: Any, keys: ProjectKeys, **settings: Any) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    app = create_app(Settings(**settings), store=store)
    th = ServerThread(app).start()
    try:
        yield LiveServer(th.url, store, keys, app, th)
    finally:
        th.stop()


@pytest.fixture(autouse=True)
def no_embedded_worker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run the jobs by hand; a server's own worker would race them
    (``test_embedded_worker_*`` keeps it)."""
    if "embedded_worker" not in request.node.name:
        monkeypatch.setenv("PODIUM_WORKER_EMBEDDED", "false")


@pytest.fixture
def srv(store: Any, project: ProjectKeys) -> Iterator[LiveServer]:
    """A real server without its embedded worker: the tests run the jobs themselves."""
    yield from _serve(store, project)


def ingest(srv: LiveServer, traces: list[dict[str, Any]]) -> None:
    """Each trace: {id, env, question, answer, expected?, docs?, start?}; a root span and a retrieve span."""
    batch = []
    for t in traces:
        st = t.get("start", T0)
        batch.append({"type": "span", "body": {
            "id": f"{t['id']}-root", "trace_id": t["id"], "name": "answer", "start_time": iso(st),
            "end_time": iso(st + timedelta(seconds=1)), "environment": t.get("env", "prod"),
            "input": {"question": t["question"]}, "output": t["answer"],
            "trace_metadata": {"expected": t["expected"]} if "expected" in t else None}})
        batch.append({"type": "span", "body": {
            "id": f"{t['id']}-ret", "trace_id": t["id"], "parent_id": f"{t['id']}-root", "name": "retrieve",
            "kind": "retrieval", "start_time": iso(st), "end_time": iso(st + timedelta(milliseconds=50)),
            "output": t.get("docs", ["nothing relevant"])}})
    with srv.client() as c:
        r = c.post("/api/v1/ingest", json={"batch": batch})
        assert r.status_code == 200 and not r.json()["errors"], r.text
    deadline = time.monotonic() + 15
    want = {t["id"] for t in traces}
    while time.monotonic() < deadline:
        got = srv.store.online_evals.load_traces(srv.keys.project_id, sorted(want))
        if set(got) == want and all(x["span_count"] == 2 for x in got.values()):
            return
        time.sleep(0.05)
    raise AssertionError("traces were not stored in time")


class Jobs:
    """The producer and the evaluator over the store's queue, run by hand."""

    def __init__(self, store: Any, gateway: Any = None, *, lease_s: float = 60.0) -> None:
        self.store = store
        self.judges = GatewayJudges(gateway, max_concurrency=4) if gateway is not None else None
        self.evaluator = OnlineEvaluator(store, self.judges, queue=store.jobs, lease_s=lease_s)
        self.producer = OnlineEvalProducer(store, store.jobs, settle_s=0.0)
        self.consumer = QueueConsumer(store.jobs, KIND, self.evaluator.handle, batch=200, worker_id="test",
                                      lease_s=lease_s)

    def produce(self) -> int:
        return self.producer.run_once(now=datetime.now(UTC))  # traces are stored: every one has settled

    def drain(self) -> int:
        n = 0
        while (k := self.consumer.run_once()) > 0:
            n += k
        return n


def online_scores(c: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {"source": "online", "limit": 100, **params, **({"cursor": cursor} if cursor else {})}
        page = c.get("/api/v1/scores", params=q).json()
        out += page["data"]
        cursor = page.get("next_cursor") or page.get("meta", {}).get("next_cursor")
        if not cursor:
            return out


def make_rule(c: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("delay_s", 0)
    r = c.post(RULES, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- validation and CRUD ---------------------------------------------------------------------------------


def test_rule_validation_crud_and_roles(srv: LiveServer) -> None:
    ok = {"name": "polite", "scorers": [{"type": "icontains", "params": {"value": "please"}}]}
    with srv.client() as c:
        e = _error(c.post(RULES, json={**ok, "scorers": [{"type": "icontain", "params": {"value": "x"}}]}), 400,
                   "unknown_scorer")
        assert "scorers[0]" in e["message"] and "icontains" in e["message"]  # the close match is suggested
        e = _error(c.post(RULES, json={**ok, "scorers": [{"type": "icontains", "params": {"valu": "x"}}]}), 400)
        assert "accepts" in e["message"]
        e = _error(c.post(RULES, json={**ok, "scorers": [{"type": "icontains", "guardrail": "pii"}]}), 400)
        assert "exactly one of" in e["message"]
        e = _error(c.post(RULES, json={**ok, "mapping": {"output": "trace.outputs"}}), 400)
        assert "use one of" in e["message"] and e["details"][0]["field"] == "mapping.output"
        e = _error(c.post(RULES, json={**ok, "mapping": {"context": "span.output"}}), 400)
        assert "span[name=retrieve]" in e["message"]
        e = _error(c.post(RULES, json={**ok, "mapping": {"answer": "trace.output"}}), 400)
        assert "not a scorer field" in e["message"]
        e = _error(c.post(RULES, json={**ok, "scorers": [{"guardrail": "nope"}]}), 400)
        assert "scorers[0]" in e["message"]
        e = _error(c.post(RULES, json={**ok, "scorers": [{"type": "contains", "params": {"value": "x"},
                                                           "model": "m"}]}), 400)
        assert "not an LLM judge" in e["message"]
        _error(c.post(RULES, json={**ok, "sample_rate": 1.5}), 400)
        _error(c.post(RULES, json={**ok, "filter": {"colour": "red"}}), 400)
        _error(c.post(RULES, json={**ok, "scorers": []}), 400)
        e = _error(c.post(RULES, json={**ok, "filter": {"min_latency_ms": 10, "max_latency_ms": 1}}), 400)
        assert "swap" in e["message"]

        rule = make_rule(c, **ok)
        assert rule["enabled"] and rule["sample_rate"] == 1.0 and rule["target"]["type"] == "trace"
        _error(c.post(RULES, json=ok), 409, "conflict")
        assert [r["name"] for r in c.get(RULES).json()["data"]] == ["polite"]
        r = c.patch(f"{RULES}/{rule['id']}", json={"sample_rate": 0.25, "enabled": False})
        assert r.status_code == 200 and r.json()["sample_rate"] == 0.25 and r.json()["enabled"] is False
        _error(c.patch(f"{RULES}/{rule['id']}", json={"mapping": {"output": "nowhere"}}), 400)
        assert c.get(f"{RULES}/{rule['id']}").json()["sample_rate"] == 0.25
        _error(c.get(f"{RULES}/nope"), 404, "not_found")

    viewer = srv.store.projects.create_key(srv.keys.project_id, role="viewer")
    vk = ProjectKeys(srv.keys.project_id, viewer.key.public_key, viewer.secret_key)
    with srv.client(vk) as c:
        assert c.get(RULES).status_code == 200
        _error(c.post(RULES, json={**ok, "name": "other"}), 403, "forbidden")
        _error(c.delete(f"{RULES}/{rule['id']}"), 403, "forbidden")
    with srv.client() as c:
        assert c.delete(f"{RULES}/{rule['id']}").status_code == 204
        assert c.get(RULES).json()["data"] == []


# --- the pipeline ------------------------------------------------------------------------------------------


def test_traces_get_online_scores_with_filter_mapping_and_guardrail(srv: LiveServer) -> None:
    jobs = Jobs(srv.store)
    with srv.client() as c:
        rule = make_rule(c, name="quality", filter={"environment": "prod"}, scorers=[
            {"type": "icontains", "params": {"value": "paris"}},
            {"type": "regex", "params": {"value": r"\d{4}"}, "name": "has-year"},
            {"type": "contains", "params": {"value": "Eiffel"}, "name": "uses-context"},
            {"guardrail": "pii"},
        ], mapping={"expected": "trace.metadata.expected"})
        # scorer "contains" reads the retrieve span's output through the mapping: check a second rule
        rule2 = make_rule(c, name="grounded", scorers=[{"type": "icontains", "name": "context-has-eiffel",
                                                          "params": {"value": "eiffel"}}],
                          mapping={"output": "span[name=retrieve].output.0"})
    ingest(srv, [
        {"id": "t1", "question": "capital of France?", "answer": "Paris, since 1789.", "expected": "Paris",
         "docs": ["The Eiffel tower is in Paris"]},
        {"id": "t2", "question": "capital of Spain?", "answer": "Madrid. Mail me at bob@example.com"},
        {"id": "t3", "question": "capital of Italy?", "answer": "Rome", "env": "dev"},
    ])
    assert jobs.produce() >= 5  # t1..t3 read by both rules (t3 filtered out by the first in SQL)
    assert jobs.drain() == 5
    with srv.client() as c:
        scores = online_scores(c)
        by = {(s["trace_id"], s["name"]): s for s in scores}
        assert {t for t, _ in by} == {"t1", "t2", "t3"}
        assert not any(t == "t3" and n != "context-has-eiffel" for t, n in by)  # the filter: t3 is dev
        assert by[("t1", "icontains")]["value"] is True and by[("t2", "icontains")]["value"] is False
        assert by[("t1", "has-year")]["value"] is True and by[("t2", "has-year")]["value"] is False
        assert by[("t1", "context-has-eiffel")]["value"] is True and by[("t3", "context-has-eiffel")]["value"] is False
        pii1, pii2 = by[("t1", "guardrail:pii")], by[("t2", "guardrail:pii")]
        assert pii1["value"] < 0.5 <= pii2["value"] and pii2["metadata"]["passed"] is False
        assert pii2["metadata"]["scorer"]["findings"][0]["label"] == "EMAIL_ADDRESS"
        s = by[("t1", "icontains")]
        assert s["source"] == "online" and s["data_type"] == "boolean"
        assert s["metadata"]["online_eval_rule"] == rule["id"] and "quality" in s["comment"]
        assert s["id"] == score_id(rule["id"], "t1", None, "icontains")
        # "contains" reads `output`: the trace output has no "Eiffel", so it fails on t1 (not the context)
        assert by[("t1", "uses-context")]["value"] is False
        # the trace page lists them with their source
        detail = c.get("/api/v1/traces/t1").json()
        assert {x["name"] for x in detail["scores"] if x["source"] == "online"} == {
            "icontains", "has-year", "uses-context", "guardrail:pii", "context-has-eiffel"}
        page = c.get("/traces/t1")  # the UI's trace page shows them with their source badge and rule
        assert page.status_code == 200 and "source-online" in page.text and "online rule" in page.text

        # redelivery: the same traces queued again rewrite the same scores
        n_before = len(scores)
        srv.store.jobs.enqueue(KIND, srv.keys.project_id,
                               [{"rule_id": rule["id"], "trace_id": t, "t": time.time()} for t in ("t1", "t2")],
                               dedup_keys=[f"{rule['id']}:t1", f"{rule['id']}:t2"])
        assert jobs.drain() == 2
        assert len(online_scores(c)) == n_before
        # nothing new: the producer's cursor is past every trace
        assert jobs.produce() == 0

        st = c.get(f"{RULES}/{rule['id']}/stats").json()
        assert st["matched"] == 2 and st["evaluated"] == 4 and st["backlog"] == 0 and st["failures"] == 0
        assert st["evaluated_per_min"] > 0 and st["lag_s"] is not None and st["series"]
        st2 = c.get(f"{RULES}/{rule2['id']}/stats").json()
        assert st2["matched"] == 3 and st2["evaluated"] == 3

        # an update to a trace (a late span) queues it again; its scores are rewritten, not added
        ingest(srv, [{"id": "t2", "question": "capital of Spain?", "answer": "Madrid, Paris is France's"}])
        assert jobs.produce() >= 1
        jobs.drain()
        again = {(s["trace_id"], s["name"]): s for s in online_scores(c)}
        assert len(again) == n_before and again[("t2", "icontains")]["value"] is True

        text = httpx.get(srv.url + "/metrics").text
        assert "podium_online_eval_evaluated_total" in text and "podium_online_eval_scorer_latency_seconds" in text


def test_failing_scorer_is_counted_and_does_not_sink_the_batch(srv: LiveServer) -> None:
    jobs = Jobs(srv.store)
    with srv.client() as c:
        rule = make_rule(c, name="needs-expected", scorers=[
            {"type": "equals", "name": "exact"},  # needs `expected`: only t1 has one
            {"type": "icontains", "params": {"value": "a"}},
        ])
    ingest(srv, [{"id": "t1", "question": "q", "answer": "a", "expected": "a"},
                 {"id": "t2", "question": "q", "answer": "b"}])
    jobs.produce()
    assert jobs.drain() == 2
    with srv.client() as c:
        names = sorted((s["trace_id"], s["name"]) for s in online_scores(c))
        assert names == [("t1", "exact"), ("t1", "icontains"), ("t2", "icontains")]
        st = c.get(f"{RULES}/{rule['id']}/stats").json()
        assert st["failures"] == 1 and st["evaluated"] == 2
    assert srv.store.jobs.stats(srv.keys.project_id).backlog == 0  # acked, not retried


def test_span_target(srv: LiveServer) -> None:
    jobs = Jobs(srv.store)
    with srv.client() as c:
        make_rule(c, name="retrieval", target={"type": "span", "kind": "retrieval"},
                  scorers=[{"type": "icontains", "params": {"value": "eiffel"}}])
    ingest(srv, [{"id": "t1", "question": "q", "answer": "a", "docs": ["Eiffel"]},
                 {"id": "t2", "question": "q", "answer": "a"}])
    jobs.produce()
    jobs.drain()
    with srv.client() as c:
        got = sorted((s["trace_id"], s["span_id"], s["value"]) for s in online_scores(c))
    assert got == [("t1", "t1-ret", True), ("t2", "t2-ret", False)]


# --- sampling --------------------------------------------------------------------------------------------


def test_sampling_is_deterministic(srv: LiveServer) -> None:
    ids = [f"trace-{i}" for i in range(4000)]
    picked = [t for t in ids if sampled("rule-a", t, 0.3)]
    assert picked == [t for t in ids if sampled("rule-a", t, 0.3)]
    assert 0.27 < len(picked) / len(ids) < 0.33
    assert set(picked) != {t for t in ids if sampled("rule-b", t, 0.3)}  # per rule, not per trace alone
    assert all(sampled("r", t, 1.0) for t in ids[:50]) and not any(sampled("r", t, 0.0) for t in ids[:50])

    jobs = Jobs(srv.store)
    with srv.client() as c:
        rule = make_rule(c, name="half", sample_rate=0.5, scorers=[{"type": "is-json"}])
    traces = [{"id": f"s{i}", "question": "q", "answer": "a"} for i in range(40)]
    ingest(srv, traces)
    jobs.produce()
    jobs.drain()
    with srv.client() as c:
        judged = {s["trace_id"] for s in online_scores(c)}
    assert judged == {t["id"] for t in traces if sampled(rule["id"], t["id"], 0.5)}
    assert 5 < len(judged) < 35


# --- backfill --------------------------------------------------------------------------------------------


def test_backfill_over_a_range(srv: LiveServer) -> None:
    ingest(srv, [{"id": f"b{i}", "question": "q", "answer": "yes", "start": T0 + timedelta(hours=i)}
                 for i in range(6)])
    jobs = Jobs(srv.store)
    with srv.client() as c:
        rule = make_rule(c, name="late", scorers=[{"type": "icontains", "params": {"value": "yes"}}])
        assert jobs.produce() == 0  # a new rule judges traces from now on
        r = c.post(f"{RULES}/{rule['id']}/backfill",
                   json={"start": iso(T0 + timedelta(hours=1)), "end": iso(T0 + timedelta(hours=4))})
        assert r.status_code == 200 and r.json() == {"matched": 3, "enqueued": 3}
        assert jobs.drain() == 3
        assert sorted(s["trace_id"] for s in online_scores(c)) == ["b1", "b2", "b3"]
        _error(c.post(f"{RULES}/{rule['id']}/backfill", json={"start": iso(T0), "end": iso(T0)}), 400)
        # in chunks: a small chunk size gives the same result
        from podium.monitor.online.backfill import backfill

        got = backfill(srv.store, srv.store.jobs, srv.store.online_evals.get(srv.keys.project_id, rule["id"]),
                       T0, T0 + timedelta(days=1), chunk=2)
        assert got == {"matched": 6, "enqueued": 6}
        jobs.drain()
        assert len(online_scores(c)) == 6


# --- an LLM judge through the gateway -------------------------------------------------------------------


@pytest.mark.slow
def test_llm_judge_through_the_gateway_with_429_backoff(store: Any, project: ProjectKeys, upstream: Any,
                                                         podium_home: Path) -> None:
    from tests.gateway.fake_upstream import Fail, Reply
    from tests.gateway.openai_app import serve

    srv = serve(store, project, upstream, podium_home)
    try:
        with srv.client() as c:
            r = c.put("/api/v1/prices/fake-a", json={"input_per_million": 1000, "output_per_million": 2000})
            assert r.status_code == 200, r.text
            rule = make_rule(c, name="judged", scorers=[
                {"type": "llm-rubric", "params": {"value": "answers the question politely"}, "model": "fake"}])
        verdict = Reply('{"reasoning": "polite and on topic", "score": 4}', prompt_tokens=100)
        upstream.script("fake-a", Fail(429, "slow down", retry_after=0.2, type="rate_limit_error"))
        upstream.respond("fake-a", lambda body: verdict)
        ingest(srv, [{"id": f"j{i}", "question": "q", "answer": "Certainly, here it is."} for i in range(3)])
        jobs = Jobs(store, srv.app.state.podium.gateway)
        jobs.produce()
        assert jobs.drain() == 3
        with srv.client() as c:
            scores = online_scores(c)
            assert sorted(s["trace_id"] for s in scores) == ["j0", "j1", "j2"]
            assert all(s["value"] == pytest.approx(0.75) and s["name"] == "llm-rubric" for s in scores)
            assert scores[0]["metadata"]["scorer"]["raw_score"] == 4
            assert "polite and on topic" in scores[0]["comment"]
            st = c.get(f"{RULES}/{rule['id']}/stats").json()
            assert st["judge_calls"] == 3 and st["judge_cost"] > 0
        assert jobs.judges is not None
        gate = jobs.judges.gate("fake")
        assert gate.limiter.throttled_count == 1 and gate.limiter.epoch == 1  # backed off once, then went on
        assert len(upstream.bodies("fake-a")) == 4  # the 429 and three verdicts

        # a judge slower than the lease: the batch's leases are extended, no other worker takes it
        upstream.reset()
        upstream.respond("fake-a", lambda body: Reply(verdict.text, delay=3.0))
        ingest(srv, [{"id": "slow", "question": "q", "answer": "fine"}])
        slow = Jobs(store, srv.app.state.podium.gateway, lease_s=1.5)
        slow.produce()
        stolen: list[Any] = []
        thief = threading.Timer(2.0, lambda: stolen.extend(store.jobs.claim("thief", 10, kinds=[KIND])))
        thief.start()
        assert slow.drain() == 1
        thief.join()
        assert stolen == [] and len(upstream.bodies("fake-a")) == 1
        # the judge's own calls are traces too (tagged), never judged themselves
        deadline = time.monotonic() + 10
        with srv.client() as c:
            while time.monotonic() < deadline:
                tagged = c.get("/api/v1/traces", params={"tags": "podium:online-eval"}).json()["data"]
                if len(tagged) >= 3:
                    break
                time.sleep(0.1)
            assert len(tagged) >= 3
        jobs.produce()
        assert jobs.drain() == 0
        text = httpx.get(srv.url + "/metrics").text
        assert "podium_online_eval_judge_cost_usd_total" in text
    finally:
        srv.thread.stop()


# --- a running worker ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_worker_scores_arriving_traces(store: Any, project: ProjectKeys) -> None:
    """The server's own worker (the default): the producer and the evaluator run in its threads."""
    for srv in _serve(store, project, worker_embedded=True):
        with srv.client() as c:
            make_rule(c, name="live", scorers=[{"type": "icontains", "params": {"value": "ok"}}])
        ingest(srv, [{"id": f"w{i}", "question": "q", "answer": "ok"} for i in range(5)])
        deadline = time.monotonic() + 20
        with srv.client() as c:
            while time.monotonic() < deadline:
                if len(online_scores(c)) == 5:
                    break
                time.sleep(0.1)
            assert sorted(s["trace_id"] for s in online_scores(c)) == [f"w{i}" for i in range(5)]
            assert all(s["value"] is True for s in online_scores(c))


# --- the UI ----------------------------------------------------------------------------------------------


def test_evaluators_pages(srv: LiveServer) -> None:
    jobs = Jobs(srv.store)
    with srv.client(follow_redirects=False) as c:
        page = c.get("/evaluators")
        assert page.status_code == 200 and "New evaluator" in page.text and "guardrail:pii" in page.text
        assert 'href="/evaluators"' in page.text  # the nav link
        bad = c.post("/evaluators", data={"name": "x", "scorer": "type:icontain", "params": '{"value": "ok"}'})
        assert bad.status_code == 400 and "scorers[0]" in bad.text
        bad = c.post("/evaluators", data={"name": "x", "scorer": "type:icontains", "params": "{nope"})
        assert bad.status_code == 400 and "parameters (JSON)" in bad.text
        r = c.post("/evaluators", data={"name": "ui-rule", "f_environment": "prod", "scorer": "type:icontains",
                                        "params": '{"value": "ok"}', "delay_s": "0", "sample_rate": "1",
                                        "mapping": "expected = trace.metadata.expected\n"})
        assert r.status_code == 303, r.text
        url = r.headers["location"].split("?")[0]
        rule_id = url.rsplit("/", 1)[1]
        rule = srv.store.online_evals.get(srv.keys.project_id, rule_id)
        assert rule["filter"] == {"environment": "prod"} and rule["scorers"][0]["params"] == {"value": "ok"}
    ingest(srv, [{"id": "u1", "question": "q", "answer": "ok"}])
    jobs.produce()
    jobs.drain()
    with srv.client(follow_redirects=False) as c:
        detail = c.get(url)
        assert detail.status_code == 200 and "ui-rule" in detail.text and 'id="evaluator-data"' in detail.text
        assert '<a href="/traces/u1">u1</a>' in detail.text
        listing = c.get("/evaluators").text
        assert 'data-rule="ui-rule"' in listing
        r = c.post(f"{url}/backfill", data={"start": "2026-03-01T00:00", "end": "2026-03-02T00:00"})
        assert r.status_code == 200 and "1 traces in range" in r.text
        assert c.post(f"{url}/enabled", data={"enabled": "false"}).status_code == 303
        assert srv.store.online_evals.get(srv.keys.project_id, rule_id)["enabled"] is False
        r = c.post(f"{url}/backfill", data={"start": "2026-03-01T00:00", "end": "2026-03-02T00:00"})
        assert r.status_code == 400 and "disabled" in r.text
        assert c.post(f"{url}/delete").status_code == 303
        assert srv.store.online_evals.get(srv.keys.project_id, rule_id) is None


# --- the CLI ---------------------------------------------------------------------------------------------


def test_cli_create_list_backfill(srv: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from podium.cli.main import app

    monkeypatch.setenv("PODIUM_BASE_URL", srv.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", srv.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", srv.keys.secret_key)
    ingest(srv, [{"id": "c1", "question": "q", "answer": "ok"}])
    rule = tmp_path / "rule.yaml"
    rule.write_text("name: from-yaml\nsample_rate: 1\nscorers:\n  - type: icontains\n    params: {value: ok}\n"
                    "  - guardrail: pii\n")
    runner = CliRunner()
    r = runner.invoke(app, ["evaluators", "create", str(rule)])
    assert r.exit_code == 0 and "created evaluator from-yaml" in r.output, r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nscorers: [{type: nope}]\n")
    r = runner.invoke(app, ["evaluators", "create", str(bad)])
    assert r.exit_code == 1 and "unknown scorer" in r.output.lower()
    r = runner.invoke(app, ["evaluators", "backfill", "from-yaml", "--start", "2026-03-01", "--end", "2026-03-02"])
    assert r.exit_code == 0 and "1 traces in range, 1 queued" in r.output, r.output
    Jobs(srv.store).drain()
    r = runner.invoke(app, ["evaluators", "list", "--json"])
    assert r.exit_code == 0, r.output
    import json

    (only,) = json.loads(r.output)
    assert only["name"] == "from-yaml" and only["stats"]["evaluated"] == 1


def test_disabled_rule_drops_its_queued_traces(srv: LiveServer) -> None:
    jobs = Jobs(srv.store)
    with srv.client() as c:
        rule = make_rule(c, name="paused", scorers=[{"type": "is-json"}])
    ingest(srv, [{"id": "d1", "question": "q", "answer": "a"}, {"id": "d2", "question": "q", "answer": "a"}])
    jobs.produce()
    with srv.client() as c:
        assert c.get(f"{RULES}/{rule['id']}/stats").json()["backlog"] == 2
        assert c.patch(f"{RULES}/{rule['id']}", json={"enabled": False}).status_code == 200
        assert jobs.drain() == 2
        assert online_scores(c) == []
        st = c.get(f"{RULES}/{rule['id']}/stats").json()
        assert st["backlog"] == 0 and st["evaluated"] == 0
        _error(c.post(f"{RULES}/{rule['id']}/backfill", json={"start": iso(T0), "end": iso(T0 + timedelta(days=1))}),
               400)
    assert srv.store.jobs.stats(srv.keys.project_id).backlog == 0


def test_mapping_paths() -> None:
    from podium.errors import BadRequest
    from podium.monitor.online.mapping import check_mapping, parse_path, resolve

    trace: dict[str, Any] = {"input": {"q": "hi"}, "output": "yo", "metadata": {"expected": ["a", "b"]}, "tags": ["x"]}
    spans: list[dict[str, Any]] = [{"id": "s1", "name": "retrieve", "kind": "retrieval", "output": ["d1", "d2"]},
             {"id": "s2", "name": "llm", "kind": "generation", "output": {"content": "yo"}}]
    assert resolve(parse_path("trace.input.q"), trace) == "hi"
    assert resolve(parse_path("trace.metadata.expected.-1"), trace) == "b"
    assert resolve(parse_path("span[name=retrieve].output.1"), trace, spans) == "d2"
    assert resolve(parse_path("span[kind=generation].output.content"), trace, spans) == "yo"
    assert resolve(parse_path("span[name=llm, kind='generation'].id"), trace, spans) == "s2"
    assert resolve(parse_path("span.output"), trace, spans, spans[0]) == ["d1", "d2"]
    assert resolve(parse_path("span[name=nope].output"), trace, spans) is None
    assert resolve(parse_path("trace.metadata.missing.deeper"), trace) is None
    assert resolve(parse_path("trace.input.q.0"), trace) is None  # a string is not walked into
    switch_off: dict[str, Any] = {"expected": None, "context": "span[name=retrieve].output"}
    m = check_mapping(switch_off, target="trace")
    assert set(m) == {"input", "output", "metadata", "context"}
    for bad in ("trace", "trace.", "traces.output", "span[colour=red].output", "trace[name=x].output", "x" * 501):
        with pytest.raises(BadRequest):
            parse_path(bad)


def test_online_scores_follow_the_projects_score_configs(srv: LiveServer, store: Any) -> None:
    """A config with the score's name types it (boolean here); one that refuses the value
    (a numeric range for a true/false check) keeps it out and counts a failure of the rule."""
    with srv.client() as c:
        for cfg in ({"name": "mentions-paris", "data_type": "boolean"},
                    {"name": "strict", "data_type": "numeric", "min_value": 0, "max_value": 0.5}):
            assert c.post("/api/v1/score-configs", json=cfg).status_code == 201
        rule = make_rule(c, name="typed", scorers=[
            {"type": "icontains", "params": {"value": "paris"}, "name": "mentions-paris"},
            {"type": "icontains", "params": {"value": "paris"}, "name": "strict"}])
    ingest(srv, [{"id": f"c{i}", "question": "capital?", "answer": "Paris."} for i in range(2)])
    jobs = Jobs(store)
    jobs.produce()
    assert jobs.drain() == 2
    with srv.client() as c:
        scores = online_scores(c)
        assert sorted((s["trace_id"], s["name"], s["data_type"], s["value"]) for s in scores) == [
            ("c0", "mentions-paris", "boolean", True), ("c1", "mentions-paris", "boolean", True)]
        st = c.get(f"{RULES}/{rule['id']}/stats").json()
        assert st["evaluated"] == 2 and st["failures"] == 2, st
