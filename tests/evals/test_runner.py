"""The experiment engine: tasks, scorers, errors per item, retries, AIMD back-off on 429,
timeouts, repetitions, recording to a real server (SQLite and PostgreSQL), traces and scores,
resuming after an interruption."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import podium
from podium.core.datasets import DatasetItem
from podium.evals import UnknownScorer, get_scorer
from podium.evals.limiter import AimdLimiter
from podium.experiments.runner import Interrupted, MemoryRecorder, RunConfig, Runner, evaluate
from podium.experiments.tasks import HttpTask, PromptTask, RateLimited, TaskOutput, TransientError
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import Fail, FakeUpstream, Hang, Reply


def connect(server: LiveServer) -> podium.Podium:
    return podium.configure(base_url=server.url, public_key=server.keys.public_key,
                            secret_key=server.keys.secret_key, flush_interval=0.05)


def wait_for(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out:
            return out
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


ITEMS = [{"id": f"q{i}", "input": f"word {i}", "expected": f"WORD {i}"} for i in range(20)]


# --- local runs (no server) -----------------------------------------------------------------------


def test_a_python_task_scored_with_cis_and_repetitions() -> None:
    calls = []

    def shout(text: str) -> str:
        calls.append(text)
        return text.upper() if text != "word 7" else text  # one item is wrong

    r = evaluate(dataset=ITEMS, task=shout, scorers=["equals", {"type": "token-f1", "threshold": 0.5}],
                 repetitions=3, name="shout", record=False, progress=False)
    s = r.summary
    assert r.status == "completed" and len(calls) == 60 and s["items"] == 20 and s["runs"] == 60
    assert s["repetitions"] == 3
    eq = s["scorers"]["equals"]
    assert eq["mean"] == pytest.approx(19 / 20) and eq["n"] == 20
    assert 0.8 <= eq["low"] < eq["mean"] <= eq["high"] <= 1.0
    assert eq["rep_std"] == 0.0 and eq["flip_rate"] == 0.0          # deterministic task: no spread
    assert s["pass_rate"]["mean"] == pytest.approx(19 / 20) and s["pass_rate"]["passed"] == 19
    assert s["scorers"]["token-f1"]["mean"] == 1.0                  # SQuAD normalisation ignores case
    assert r.scores("equals")["mean"] == eq["mean"]
    assert "equals" in repr(r)
    one = next(i for i in r.items if i["item_id"] == "q7")
    assert one["passed"] is False and one["scores"]["equals"]["explanation"].startswith("expected 'WORD 7'")


def test_repetitions_measure_the_spread_of_a_noisy_task() -> None:
    n = iter(range(10_000))

    def flaky(text: str) -> str:
        return text.upper() if next(n) % 2 else text

    r = evaluate(dataset=ITEMS, task=flaky, scorers=["equals"], repetitions=4, record=False, progress=False,
                 max_concurrency=1)
    eq = r.summary["scorers"]["equals"]
    assert eq["mean"] == pytest.approx(0.5) and eq["flip_rate"] == 1.0 and eq["rep_std"] > 0.5


def test_unknown_scorer_types_list_the_known_ones() -> None:
    with pytest.raises(UnknownScorer) as e:
        evaluate(dataset=ITEMS, task=str.upper, scorers=["icontain"], record=False)
    assert "Did you mean 'icontains'?" in str(e.value) and "rouge-l" in str(e.value)


def test_bad_rows_tasks_that_raise_and_timeouts_are_recorded_per_item() -> None:
    items = [
        {"id": "ok", "input": "a", "expected": "A"},
        {"id": "no-expected", "input": "b"},                  # a scorer needs `expected`
        {"id": "raises", "input": "boom", "expected": "X"},
        {"id": "slow", "input": "sleep", "expected": "Z"},
    ]
    release = threading.Event()

    def task(text: str) -> str:
        if text == "boom":
            raise ValueError("cannot handle boom")
        if text == "sleep":
            release.wait(10)
        return text.upper()

    t0 = time.monotonic()
    r = evaluate(dataset=items, task=task, scorers=["equals"], timeout=0.5, record=False, progress=False)
    release.set()
    assert time.monotonic() - t0 < 5
    by = {i["item_id"]: i for i in r.items}
    assert by["ok"]["passed"] is True and by["ok"]["error"] is None
    assert by["no-expected"]["error_type"] == "missing_field"
    assert "needs `expected`" in by["no-expected"]["error"] and by["no-expected"]["passed"] is False
    assert by["no-expected"]["output"] == "B"                      # the task ran; the scorer could not
    assert by["raises"]["error_type"] == "task_error" and by["raises"]["error"] == "ValueError: cannot handle boom"
    assert by["raises"]["attempts"] == 1                           # not retried: not transient
    assert by["slow"]["error_type"] == "timeout" and "within 0.5 s" in by["slow"]["error"]
    s = r.summary
    assert s["errors"] == 2 and s["scorer_errors"] == 1 and s["scorers"]["equals"]["n"] == 1
    assert s["pass_rate"]["mean"] == pytest.approx(0.25)


def test_unparseable_judge_output_is_retried_then_an_error_never_a_zero() -> None:
    replies: list[list[dict[str, str]]] = []

    def judge(messages: list[dict[str, str]], **kw: Any) -> str:
        replies.append(messages)
        return "I think it is quite good!"

    r = evaluate(dataset=ITEMS[:2], task=str.upper, scorers=[get_scorer("factuality", judge=judge, max_retries=2)],
                 record=False, progress=False)
    assert len(replies) == 6                                       # 3 attempts per item
    for it in r.items:
        f = it["scores"]["factuality"]
        assert f["value"] is None and f["error_type"] == "judge_error" and "3 attempt(s)" in f["error"]
        assert it["error_type"] == "judge_error" and it["passed"] is False
    assert r.summary["scorers"]["factuality"]["mean"] is None and r.summary["scorers"]["factuality"]["errors"] == 2


def test_judge_agreement_with_human_labels() -> None:
    items = [{"id": f"i{k}", "input": "q", "expected": "a", "labels": {"factuality": h}}
             for k, h in enumerate([5, 4, 1, 2, 5])]
    verdict = iter([5, 4, 2, 1, 5])

    def judge(messages: list[dict[str, str]], **kw: Any) -> str:
        return f'{{"reasoning": "ok", "score": {next(verdict)}}}'

    r = evaluate(dataset=items, task=lambda x: "a", scorers=[get_scorer("factuality", judge=judge)],
                 record=False, progress=False, max_concurrency=1)
    ag = r.summary["scorers"]["factuality"]["agreement"]
    assert ag["n"] == 5 and ag["kind"] == "numeric"
    assert ag["spearman"] == pytest.approx(0.8947, abs=1e-3)      # ranks agree but for one swap
    assert ag["accuracy"] == pytest.approx(0.6)                    # raw 1-5 scores compared with the labels


def test_transient_errors_are_retried_with_backoff() -> None:
    seen: dict[str, int] = {}

    def task(text: str) -> str:
        seen[text] = seen.get(text, 0) + 1
        if seen[text] < 3:
            raise TransientError("502 from upstream")
        return text.upper()

    r = evaluate(dataset=ITEMS[:3], task=task, scorers=["equals"], max_retries=3, record=False, progress=False)
    r.summary  # noqa: B018
    assert all(i["passed"] and i["attempts"] == 3 for i in r.items)
    r = evaluate(dataset=ITEMS[:1], task=lambda t: (_ for _ in ()).throw(TransientError("down")), scorers=["equals"],
                 max_retries=1, record=False, progress=False)
    assert r.items[0]["error_type"] == "upstream_error" and r.items[0]["attempts"] == 2


def test_429s_halve_concurrency_and_are_retried() -> None:
    lock = threading.Lock()
    state = {"inflight": 0, "peak_after_429": 0, "throttled": 0, "calls": 0}

    def task(text: str) -> TaskOutput:
        with lock:
            state["calls"] += 1
            state["inflight"] += 1
            if 8 < state["calls"] <= 12:                            # the first window after the 429s
                state["peak_after_429"] = max(state["peak_after_429"], state["inflight"])
            throttle = state["calls"] <= 8
            if throttle:
                state["throttled"] += 1
        try:
            time.sleep(0.02)
            if throttle:
                raise RateLimited("slow down", retry_after=0.05)
            return TaskOutput(text.upper(), usage={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5})
        finally:
            with lock:
                state["inflight"] -= 1

    r = evaluate(dataset=ITEMS, task=task, scorers=["equals"], max_concurrency=8, record=False, progress=False)
    assert all(i["passed"] for i in r.items) and state["throttled"] == 8
    assert 1 <= state["peak_after_429"] <= 4                      # the window halved once (8 -> 4)
    assert r.summary["tokens"]["total_tokens"] == 100


def test_the_limiter_is_aimd() -> None:
    lim = AimdLimiter(8, base_backoff=0.1)
    e = lim.started(0.0)
    assert lim.throttled(0.0, epoch=e, retry_after=2) == 2 and lim.allowed == 4
    lim.throttled(0.0, epoch=e)                                    # same window: no second halving
    assert lim.allowed == 4 and lim.ready_in(1.0) == pytest.approx(1.0)
    for _ in range(5):
        lim.success()
    assert lim.allowed == 5                                        # about +1 per window of successes
    paced = AimdLimiter(2, rpm=120)
    paced.started(10.0)
    assert paced.ready_in(10.0) == pytest.approx(0.5)


def test_config_errors_are_raised_before_any_item_runs() -> None:
    with pytest.raises(podium.errors.ConfigurationError, match="repetitions"):
        Runner(str.upper, config=RunConfig(repetitions=0))
    with pytest.raises(podium.errors.ConfigurationError, match="cannot use int as a dataset"):
        evaluate(dataset=3, task=str.upper, record=False)


def test_batching_scorers_score_many_items_at_once() -> None:
    sizes: list[int] = []

    def embed(texts: list[str]) -> list[list[float]]:
        sizes.append(len(texts))
        return [[1.0, float(len(t))] for t in texts]

    items = [DatasetItem(id=f"i{k}", input=f"x{k}", expected=f"X{k}") for k in range(100)]
    runner = Runner(str.upper, [get_scorer("similar", embedder=embed)], recorder=MemoryRecorder(), progress=False)
    r = runner.run(items)
    assert all(i["scores"]["similar"]["value"] == pytest.approx(1.0) for i in r.items)
    assert max(sizes) > 20                                         # not one call per item


# --- against a real server -------------------------------------------------------------------------


def test_recorded_run_with_traces_and_scores(server: LiveServer) -> None:
    client = connect(server)
    podium.create_dataset("words", ITEMS[:5])

    @podium.observe(name="lookup")
    def lookup(text: str) -> str:
        return text.upper()

    r = podium.evaluate(dataset="words", task=lambda text: lookup(text), scorers=["equals", "rouge-l"],
                        name="shouty", labels=["main"], progress=False)
    assert r.dataset == "words@1" and r.status == "completed" and r.summary["scorers"]["equals"]["mean"] == 1.0
    with server.client() as c:
        exp = c.get(f"/api/v1/experiments/{r.id}").json()
        assert exp["labels"] == ["main"] and exp["item_count"] == 5 and exp["summary"]["items"] == 5
        assert exp["task"]["type"] == "python" and [s["name"] for s in exp["scorers"]] == ["equals", "rouge-l"]
        items = c.get(f"/api/v1/experiments/{r.id}/items").json()["data"]
        assert [i["item_id"] for i in items] == ["q0", "q1", "q2", "q3", "q4"]
        tid = items[0]["trace_id"]
        assert tid and items[0]["output"] == "WORD 0"
        client.flush()
        trace = wait_for(lambda: (c.get(f"/api/v1/traces/{tid}").json() if c.get(f"/api/v1/traces/{tid}").status_code
                                  == 200 else None))
        assert trace["tags"] == ["eval"] and trace["metadata"]["experiment_id"] == r.id
        assert {s["name"] for s in trace["spans"]} == {"lambda", "lookup"}   # the task's own spans nest inside
        scores = {s["name"]: s for s in trace["scores"]}
        assert scores["equals"]["source"] == "eval" and scores["equals"]["value"] is True
        assert scores["rouge-l"]["value"] == 1.0 and scores["rouge-l"]["metadata"]["experiment_id"] == r.id
        # a score filter on trace lists finds the eval's traces
        found = c.get("/api/v1/traces", params={"score_name": "rouge-l", "min_score": 0.9}).json()["data"]
        assert len(found) == 5
        assert c.get("/api/v1/experiments", params={"label": "main"}).json()["data"][0]["id"] == r.id
        assert c.get("/api/v1/experiments", params={"dataset": "words"}).json()["data"][0]["dataset_version"] == 1


def test_interrupted_runs_resume_and_skip_stored_items(server: LiveServer) -> None:
    connect(server)
    calls: list[str] = []
    lock = threading.Lock()

    def task(text: str) -> str:
        with lock:
            calls.append(text)
            if len(calls) == 6:
                _thread.interrupt_main()
        time.sleep(0.01)
        return text.upper()

    with pytest.raises(Interrupted) as e:
        podium.evaluate(dataset=ITEMS, task=task, scorers=["equals"], name="resumable", max_concurrency=1,
                        progress=False)
    eid = e.value.experiment["id"]
    assert e.value.experiment["status"] == "interrupted" and "resume" in e.value.hint
    stored = podium.get_client().evals.experiment_done_keys(eid)
    assert 1 <= len(stored) < 20
    calls.clear()
    r = podium.evaluate(dataset=ITEMS, task=lambda t: t.upper(), scorers=["equals"], name="resumable",
                        experiment_id=eid, progress=False)
    assert r.id == eid and r.status == "completed" and len(r.items) == 20 - len(stored)
    assert r.summary["items"] == 20 and r.summary["scorers"]["equals"]["mean"] == 1.0


def test_failed_items_run_again_on_resume(server: LiveServer) -> None:
    connect(server)

    def half(text: str) -> str:
        if int(text.split()[1]) % 2:
            raise RuntimeError("odd")
        return text.upper()

    r1 = podium.evaluate(dataset=ITEMS, task=half, scorers=["equals"], progress=False)
    assert r1.summary["errors"] == 10
    ran: list[str] = []
    r2 = podium.evaluate(dataset=ITEMS, task=lambda t: ran.append(t) or t.upper(), scorers=["equals"],
                         experiment_id=r1.id, progress=False)
    assert len(ran) == 10 and r2.summary["errors"] == 0 and r2.summary["pass_rate"]["mean"] == 1.0


def test_resuming_on_another_dataset_version_is_refused(server: LiveServer) -> None:
    connect(server)
    podium.create_dataset("d", ITEMS[:2])
    r = podium.evaluate(dataset="d", task=str.upper, progress=False)
    podium.create_dataset("d", ITEMS[2:3])
    with pytest.raises(podium.errors.ConfigurationError, match="cannot resume"):
        podium.evaluate(dataset="d", task=str.upper, experiment_id=r.id, progress=False)


def test_prompt_task_through_the_gateway_lands_in_the_item_trace(server: LiveServer, upstream: FakeUpstream) -> None:
    client = connect(server)
    with server.client() as c:
        r = c.put("/api/v1/gateway/models/fake", json={
            "deployments": [{"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "k"}]})
        assert r.status_code in (200, 201), r.text
    upstream.script("fake-a", Reply("Paris"), Reply("Rome"))
    task = PromptTask("Capital of {{country}}? One word.", model="fake", base_url=server.url,
                      api_key=server.keys.secret_key, params={"temperature": 0})
    items = [{"input": {"country": "France"}, "expected": "Paris"}, {"input": {"country": "Italy"}, "expected": "Rome"}]
    r = podium.evaluate(dataset=items, task=task, scorers=["icontains"], max_concurrency=1, progress=False)
    assert [i["output"] for i in r.items] == ["Paris", "Rome"] and r.summary["pass_rate"]["mean"] == 1.0
    sent = upstream.bodies("fake-a")
    assert sent[0]["messages"] == [{"role": "user", "content": "Capital of France? One word."}]
    assert sent[0]["temperature"] == 0 and "podium" not in sent[0]
    assert r.items[0]["usage"]["input_tokens"] == 10
    client.flush()
    with server.client() as c:
        tid = r.items[0]["trace_id"]
        trace = wait_for(lambda: (t := c.get(f"/api/v1/traces/{tid}").json()).get("spans") and len(t["spans"]) == 2
                         and t)
        kinds = {s["kind"]: s for s in trace["spans"]}
        assert kinds["generation"]["parent_id"] == kinds["chain"]["id"] and kinds["generation"]["model"] == "fake-a"


def test_http_task_backs_off_on_429_from_an_endpoint(upstream: FakeUpstream) -> None:
    upstream.script("m", Fail(429, retry_after=0.1), Fail(503), Reply("ok"), Reply("ok"))
    task = HttpTask(upstream.url + "/v1/chat/completions",
                    body={"model": "m", "messages": [{"role": "user", "content": "{{input}}"}]},
                    output="choices.0.message.content")
    r = evaluate(dataset=[{"input": "a", "expected": "ok"}, {"input": "b", "expected": "ok"}], task=task,
                 scorers=["equals"], max_concurrency=1, record=False, progress=False)
    assert [i["output"] for i in r.items] == ["ok", "ok"]
    assert r.items[0]["attempts"] == 3 and r.items[1]["attempts"] == 1   # a: 429, 503, ok; b ran meanwhile
    assert upstream.bodies("m")[0]["messages"][0]["content"] == "a"


def test_http_task_timeouts_are_item_errors(upstream: FakeUpstream) -> None:
    upstream.script("hang", Hang())
    task = HttpTask(upstream.url + "/v1/chat/completions", body={"model": "hang", "messages": []})
    r = evaluate(dataset=[{"input": "a"}], task=task, timeout=0.3, max_retries=0, record=False, progress=False)
    assert r.items[0]["error_type"] in ("timeout", "upstream_error")


def test_judges_use_their_registry_prompt_when_one_exists(server: LiveServer) -> None:
    connect(server)
    podium.create_prompt("podium/judge/fluency", [
        {"role": "system", "content": "You are a strict grader. Reply in JSON."},
        {"role": "user", "content": "TUNED: rate the fluency of: {{output}}"}],
        config={"score_range": [1, 5]}, labels=["production"])
    seen: list[str] = []

    def judge(messages: list[dict[str, str]], **kw: Any) -> str:
        seen.append(messages[-1]["content"])
        return '{"reasoning": "fine", "score": 4}'

    r = podium.evaluate(dataset=ITEMS[:2], task=str.upper, scorers=[get_scorer("fluency", judge=judge)],
                        progress=False, max_concurrency=1)
    assert seen == ["TUNED: rate the fluency of: WORD 0", "TUNED: rate the fluency of: WORD 1"]
    meta = r.items[0]["scores"]["fluency"]["metadata"]
    assert (meta["template"], meta["template_version"]) == ("podium/judge/fluency", 1)
    assert r.items[0]["scores"]["fluency"]["value"] == 0.75
    # without a registry prompt (or without a server) the built-in template is used
    seen.clear()
    r = podium.evaluate(dataset=ITEMS[:1], task=str.upper, scorers=[get_scorer("coherence", judge=judge)],
                        progress=False)
    assert "TUNED" not in seen[0] and r.items[0]["scores"]["coherence"]["metadata"]["template"] == "judge.coherence"
