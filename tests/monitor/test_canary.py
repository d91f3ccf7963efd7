"""Canary deployments on SQLite and PostgreSQL (--db all): the controller and the worker's job over
a real store, with gateway spans written straight to the store to simulate traffic for both
versions (the same rows the gateway's sink writes): passing gates step 5 -> 25 -> 50 -> promoted
(registry alias moved, gateway alias back to one deployment, events); a failing candidate rolls
back with an alert (alert rule history, baseline-only alias); too few requests hold the step; the
router's failed attempts count against the version that failed; one active canary per alias."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podium.errors import Conflict, NotFound, ValidationFailed
from podium.monitor.canary import CanaryController, CanaryJob, Gates, check_steps, judge, measure
from podium.monitor.canary.gates import served_names
from podium.registry.registry import served_names as registry_served_names
from podium.store.repos.ingest import IngestBatch
from tests.conftest import ProjectKeys
from tests.store.test_store import span

ALIAS = "support"
MODEL = "bot"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, s: float) -> None:
        self.now += timedelta(seconds=s)


def setup(store: Any, pid: str) -> None:
    for _ in range(2):
        store.models.create_version(pid, MODEL, {"artifact": {"kind": "external", "uri": "hf://o/m", "format": None,
                                                              "size": None, "sha256": None, "copied": False}})
    store.models.set_alias(pid, MODEL, "champion", 1)
    store.gateway.put_model(pid, ALIAS, {"deployments": [
        {"provider": "openai", "model": "registry:/bot@champion", "api_base": "http://127.0.0.1:9/v1",
         "api_key": "enc:secret", "timeout": 7}], "description": "support bot"})


def traffic(store: Any, pid: str, at: datetime, version: int, n: int, *, errors: int = 0, latency: float = 100.0,
            score: float | None = None, failover_from: int | None = None, flagged: int = 0) -> None:
    """``n`` gateway calls answered by ``version`` (``errors`` of them failed); with
    ``failover_from`` each call first failed on that version and was answered by ``version``."""
    spans: list[Any] = []
    scores: list[Any] = []
    for i in range(n):
        tid = uuid.uuid4().hex
        gw: dict[str, Any] = {"alias": ALIAS, "deployment": f"{ALIAS}#0:openai/registry:/{MODEL}@{version}"}
        if failover_from is not None:
            gw["attempts"] = [
                {"deployment": f"{ALIAS}#1:openai/registry:/{MODEL}@{failover_from}", "ok": False, "status": 500},
                {"deployment": f"{ALIAS}#0:openai/registry:/{MODEL}@{version}", "ok": True, "status": 200}]
        spans.append(span(pid, tid, "g", kind="generation", name=f"chat {ALIAS}", start_time=at, latency_ms=latency,
                          status="error" if i < errors else "ok", model=f"registry:/{MODEL}@{version}",
                          provider="openai", metadata={"gateway": gw}))
        if i < flagged:
            spans.append(span(pid, tid, "gr", parent_id="g", kind="guardrail", name="guardrail.output",
                              start_time=at, status="ok", output={"action": "flag", "reason": "pii"}))
        if score is not None:
            scores.append({"project_id": pid, "id": uuid.uuid4().hex, "trace_id": tid, "span_id": None,
                           "session_id": None, "name": "helpful", "data_type": "numeric", "value": score,
                           "string_value": None, "source": "online", "comment": None, "metadata": None,
                           "timestamp": at})
    store.ingest.write(IngestBatch(spans=spans, scores=scores))


def deployments(store: Any, pid: str) -> list[tuple[str, float | None]]:
    spec = next(r["spec"] for r in store.gateway.list_models(pid) if r["name"] == ALIAS)
    return [(d["model"], d.get("weight")) for d in spec["deployments"]]


def test_served_names_match_the_registry() -> None:
    assert served_names("m.x", 3) == registry_served_names("m.x", 3)


def test_steps_and_gates_are_checked() -> None:
    assert check_steps([5, 25, 50, 100]) == [5, 25, 50, 100]
    for bad in ([], [100], [5, 5, 100], [50, 25, 100], [5, 50], [0, 100], [5, 101]):
        with pytest.raises(ValidationFailed):
            check_steps(bad)
    with pytest.raises(ValidationFailed, match="unknown gate"):
        Gates.from_dict({"max_errors": 1})
    with pytest.raises(ValidationFailed, match=">= 0"):
        Gates.from_dict({"max_score_drop": -1})


def test_passing_gates_step_up_and_promote(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    setup(store, pid)
    clock = Clock()
    ctl = CanaryController(store, clock=clock)
    c = ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2,
                  step_duration_s=60, min_requests=10, actor="alice")
    assert c["status"] == "running" and c["steps"] == [5, 25, 50, 100]
    assert deployments(store, pid) == [("registry:/bot@1", 95), ("registry:/bot@2", 5)]
    spec = next(r["spec"] for r in store.gateway.list_models(pid))
    assert all(d["api_base"] == "http://127.0.0.1:9/v1" and d["api_key"] == "enc:secret" and d["timeout"] == 7
               for d in spec["deployments"]) and spec["description"] == "support bot"
    with pytest.raises(Conflict, match="already has an active canary"):
        ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2)

    job = CanaryJob(store, check_every_s=0.0, clock=clock)
    for step in (5, 25, 50):
        at = clock.now + timedelta(seconds=1)
        traffic(store, pid, at, 1, 40, errors=1, score=0.8)
        traffic(store, pid, at, 2, 12, score=0.78, latency=110.0)
        clock.advance(10)
        assert job.run_once() == 1  # time not up: hold
        row = store.canaries.get(pid, c["id"])
        assert row["step_index"] == [5, 25, 50].index(step) and row["last_check"]["verdict"] == "pass"
        clock.advance(60)
        job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "promoted", row["last_check"]
    assert deployments(store, pid) == [("registry:/bot@2", None)]
    assert store.models.get_model(pid, MODEL)["aliases"]["champion"] == 2
    hist = store.models.alias_history(pid, MODEL, "champion")
    assert hist[0]["actor"] == f"canary:{c['id']}" and hist[0]["to_version"] == 2
    actions = [e["action"] for e in store.canaries.events(pid, c["id"])]
    assert actions[0] == "start" and actions.count("step") == 2 and actions[-1] == "promote"
    last = row["last_check"]
    assert {r["gate"] for r in last["rows"]} >= {"requests", "error_rate", "p95_ms", "score:helpful"}
    assert last["candidate"]["scores"]["helpful"] == pytest.approx(0.78)
    assert store.canaries.list_canaries(pid, status="active") == []
    # a new canary on the same alias is allowed once this one ended
    ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=2, candidate_version=1)


def test_candidate_errors_roll_back_with_an_alert(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    setup(store, pid)
    clock = Clock()
    ctl = CanaryController(store, clock=clock, base_url="http://podium.test")
    c = ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2,
                  step_duration_s=600, min_requests=5)
    at = clock.now + timedelta(seconds=1)
    traffic(store, pid, at, 1, 50)
    # the candidate fails: the router fails over to the baseline; the spans name the baseline
    traffic(store, pid, at, 1, 4, failover_from=2)
    traffic(store, pid, at, 2, 2)
    clock.advance(5)
    job = CanaryJob(store, check_every_s=0.0, clock=clock)
    job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "rolled_back", row["last_check"]
    assert "error rate 66.7%" in row["reason"]
    assert deployments(store, pid) == [("registry:/bot@1", None)]
    assert store.models.get_model(pid, MODEL)["aliases"]["champion"] == 1
    events = store.canaries.events(pid, c["id"])
    assert [e["action"] for e in events][-2:] == ["rollback", "alert"]
    assert events[-2]["detail"]["automatic"] is True and events[-2]["actor"] == f"canary:{c['id']}"
    rule = store.alerts.get_rule(pid, "canary-rollbacks")
    assert rule is not None and rule["enabled"] is False
    alerts, _ = store.alerts.events(pid, rule_id=rule["id"])
    assert alerts[0]["status"] == "fired" and c["id"] in alerts[0]["message"]
    # an ended canary cannot be rolled back or promoted again
    with pytest.raises(Conflict):
        ctl.promote(pid, c["id"], actor="bob")


def test_too_few_requests_hold_and_other_gates_breach(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    setup(store, pid)
    clock = Clock()
    ctl = CanaryController(store, clock=clock)
    c = ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2,
                  step_duration_s=30, min_requests=20, gates={"max_guardrail_rate_increase": 0.1})
    at = clock.now + timedelta(seconds=1)
    traffic(store, pid, at, 1, 30)
    traffic(store, pid, at, 2, 3)
    clock.advance(120)
    job = CanaryJob(store, check_every_s=0.0, clock=clock)
    job.run_once()
    job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "running" and row["step_index"] == 0
    assert row["last_check"]["verdict"] == "wait" and "3 of the 20 requests" in row["last_check"]["hold"]
    assert [e["action"] for e in store.canaries.events(pid, c["id"])] == ["start", "check"]  # one event per change
    # pause stops checking; resume restarts the step's clock
    ctl.pause(pid, c["id"], actor="bob")
    assert job.run_once() == 0
    ctl.resume(pid, c["id"], actor="bob")
    # guardrail flags on most candidate answers breach their gate
    at = clock.now + timedelta(seconds=1)
    traffic(store, pid, at, 1, 30)
    traffic(store, pid, at, 2, 25, flagged=20)
    clock.advance(5)
    job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "rolled_back" and "guardrail" in row["reason"]


def test_measure_and_judge_directly(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    t0 = datetime.now(UTC)
    traffic(store, pid, t0, 1, 20, latency=100.0, score=0.9)
    traffic(store, pid, t0, 2, 20, latency=400.0, score=0.5)
    traffic(store, pid, t0 - timedelta(hours=1), 2, 50, errors=50)  # before the step: ignored
    # the local provider records the bound model (NAME@N) in the attempt's deployment id
    store.ingest.write(IngestBatch(spans=[span(pid, uuid.uuid4().hex, "g", kind="generation", start_time=t0,
                                               latency_ms=50.0, status="ok", model=f"{MODEL}@1", metadata={
        "gateway": {"alias": ALIAS, "attempts": [
            {"deployment": f"{ALIAS}#1:local/{MODEL}@2", "ok": False, "status": 500},
            {"deployment": f"{ALIAS}#0:local/{MODEL}@1", "ok": True, "status": 200}]}})]))
    # another alias serving the same version (or an eval run) is not this canary's traffic
    store.ingest.write(IngestBatch(spans=[span(pid, uuid.uuid4().hex, "g", kind="generation", start_time=t0,
                                               status="error", model=f"{MODEL}@2",
                                               metadata={"gateway": {"alias": "other"}}) for _ in range(5)]))
    stats = measure(store.canaries, pid, MODEL, (1, 2), t0, alias=ALIAS)
    assert (stats[1].requests, stats[2].requests, stats[2].errors) == (21, 21, 1)
    assert measure(store.canaries, pid, MODEL, (1, 2), t0)[2].errors == 6
    out = judge(Gates(), stats[1], stats[2], 10)
    assert out["verdict"] == "breach"
    assert any("p95 latency 400 ms" in r for r in out["reasons"])
    assert any("helpful 0.500 vs baseline 0.900" in r for r in out["reasons"])


def test_start_errors(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    setup(store, pid)
    ctl = CanaryController(store)
    with pytest.raises(NotFound, match="not declared through the API"):
        ctl.start(pid, gateway_alias="nope", model=MODEL, baseline_version=1, candidate_version=2)
    with pytest.raises(NotFound, match="no version 7"):
        ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=7)
    with pytest.raises(NotFound, match="no alert rule"):
        ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2, alert_rule="x")
    c = ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2, start=False)
    assert c["status"] == "pending" and deployments(store, pid) == [("registry:/bot@champion", None)]
    ctl.resume(pid, c["id"], actor="a")
    assert deployments(store, pid)[1] == ("registry:/bot@2", 5)
    ctl.abort(pid, c["id"], actor="a")
    assert deployments(store, pid) == [("registry:/bot@champion", None)]  # exactly as before


def test_a_deleted_gateway_alias_aborts_the_canary(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    setup(store, pid)
    clock = Clock()
    c = CanaryController(store, clock=clock).start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1,
                                                   candidate_version=2, step_duration_s=0, min_requests=1)
    traffic(store, pid, clock.now + timedelta(seconds=1), 2, 3)
    store.gateway.delete_model(pid, ALIAS)
    clock.advance(5)
    job = CanaryJob(store, check_every_s=0.0, clock=clock)
    job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "aborted" and "was deleted while the canary ran" in row["reason"]
    assert job.outcomes == {"aborted": 1}


def test_a_step_waits_for_the_online_scores_before_judging_them(store: Any, project: ProjectKeys) -> None:
    """The online evaluator scores answers seconds after they are served: a step must not pass
    on a candidate none of whose answers is scored yet (the end-to-end loop test caught that)."""
    pid = project.project_id
    setup(store, pid)
    clock = Clock()
    traffic(store, pid, clock.now - timedelta(minutes=10), 1, 5, score=1.0)  # the champion's answers, scored
    ctl = CanaryController(store, clock=clock)
    c = ctl.start(pid, gateway_alias=ALIAS, model=MODEL, baseline_version=1, candidate_version=2,
                  steps=[50, 100], step_duration_s=0, min_requests=5, gates={"max_score_drop": 0.3})
    at = clock.now + timedelta(seconds=1)
    traffic(store, pid, at, 1, 5, score=1.0)
    traffic(store, pid, at, 2, 5)  # answered, not scored yet
    clock.advance(2)
    job = CanaryJob(store, check_every_s=0.0, clock=clock)
    job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "running" and row["last_check"]["verdict"] == "wait", row["last_check"]
    assert "helpful: 0 of 5 candidate answers scored" in row["last_check"]["hold"]
    # the scores arrive, and they are bad
    store.ingest.write(IngestBatch(scores=[
        {"project_id": pid, "id": uuid.uuid4().hex, "trace_id": s["trace_id"], "span_id": None, "session_id": None,
         "name": "helpful", "data_type": "numeric", "value": 0.0, "string_value": None, "source": "online",
         "comment": None, "metadata": None, "timestamp": at}
        for s in store.canaries.spans_since(pid, [f"registry:/{MODEL}@2"], at)]))
    clock.advance(1)
    job.run_once()
    row = store.canaries.get(pid, c["id"])
    assert row["status"] == "rolled_back" and "helpful 0.000 vs baseline 1.000" in row["reason"], row
