"""``podium eval sweeps list|show|decide|promote`` against a real server (80 columns, no TTY):
decide prints the chosen trial with its paired-bootstrap evidence; promote makes a trial a new
prompt version whose config holds its model and parameters and moves the label only when the
sweep's suite passes its gates on that version (the suite runs on gateway models backed by the
fake OpenAI upstream)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, run_cli_80
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.server.test_eval_sweeps import record, trial

pytestmark = pytest.mark.one_db

SUITE = """\
description: capitals
prompts: ["Capital of {{country}}? One word."]
providers: [good]
tests:
  - {vars: {country: France}, assert: [{type: icontains, value: Paris}]}
  - {vars: {country: Spain}, assert: [{type: icontains, value: Madrid}]}
gates:
  - {metric: pass_rate, min: 1.0}
"""


def _answer(body: dict[str, Any]) -> Reply:
    text = json.dumps(body.get("messages"))
    return Reply("Paris" if "France" in text else "Madrid")


def test_list_show_decide_and_promote_through_the_gate(cli_env: LiveServer, upstream: FakeUpstream,
                                                       tmp_path: Path) -> None:
    upstream.respond("good-up", _answer)
    upstream.respond("bad-up", lambda body: Reply("no idea"))
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    with cli_env.client() as c:
        for alias in ("good", "bad"):
            r = c.put(f"/api/v1/gateway/models/{alias}", json={"deployments": [
                {"provider": "openai", "model": f"{alias}-up", "api_base": upstream.base_url, "api_key": "k"}]})
            assert r.status_code in (200, 201), r.text
        r = c.post("/api/v1/prompts", json={"name": "capitals", "prompt": "Capital of {{country}}? One word.",
                                            "config": {"model": "good", "max_tokens": 16}})
        assert r.status_code == 201, r.text
        e_best, e_bad = record(c, "best", [1.0] * 30), record(c, "bad", [1.0, 0.0] * 15)
        sid = c.post("/api/v1/eval-sweeps", json={"name": "capitals sweep", "suite": {
            "name": "capitals", "path": str(suite)}}).json()["id"]
        trials = [trial(0, 1.0, 4.0, 800, model="good", exp=e_best, prompt={"name": "capitals", "version": 1}),
                  trial(1, 0.5, 0.2, 100, model="bad", exp=e_bad)]
        trials[0]["config"]["params"] = {"temperature": 0.0}
        assert c.post(f"/api/v1/eval-sweeps/{sid}/trials", json={"trials": trials}).json()["accepted"] == 2

    out = run_cli_80("eval", "sweeps", "list")
    assert sid in out and "capitals sweep" in out
    out = run_cli_80("eval", "sweeps", "show", sid)
    assert "front (*): trials 0, 1" in out and "good capitals/1 temperature=0" in out
    out = run_cli_80("eval", "sweeps", "decide", sid, "--rule", "cheapest_not_worse")
    assert "trial 0: good" in out and "best: trial 0" in out and "yes" in out  # trial 1 is significantly worse
    assert "is the cheapest trial whose score is not significantly below the best" in " ".join(out.split())

    out = run_cli_80("eval", "sweeps", "promote", sid, "--trial", "0", "--prompt", "capitals",
                     "--label", "production")
    assert "created capitals v2" in out and "gates passed: production -> capitals v2" in out
    with cli_env.client() as c:
        v2 = c.get("/api/v1/prompts/capitals/versions/2").json()
        assert v2["config"] == {"model": "good", "max_tokens": 16, "temperature": 0.0}
        assert "production" in v2["labels"]
    # a prompt that does not exist yet starts from the suite's inline prompt (no label: no suite run)
    out = run_cli_80("eval", "sweeps", "promote", sid, "--trial", "1", "--prompt", "fresh")
    assert "created fresh v1: bad" in out and "gates" not in out
    with cli_env.client() as c:
        v1 = c.get("/api/v1/prompts/fresh/versions/1").json()
        assert v1["prompt"] == "Capital of {{country}}? One word." and v1["config"]["model"] == "bad"
    # a trial that fails the gates: a new version, the label stays, exit 1 with the gate result
    env = {**os.environ, "COLUMNS": "80"}
    p = subprocess.run([sys.executable, "-m", "podium.cli", "eval", "sweeps", "promote", sid, "--trial", "1",
                        "--prompt", "capitals", "--label", "production", "--suite", str(suite)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "created capitals v3" in p.stdout and "FAILED pass_rate" in p.stdout and "gates failed" in p.stdout
    with cli_env.client() as c:
        assert c.get("/api/v1/prompts/capitals/labels/production").json()["version"] == 2
        assert c.get("/api/v1/prompts/capitals/versions/3").json()["config"]["model"] == "bad"
    assert max(len(line) for line in p.stdout.splitlines()) <= 80


FEW_SHOT_SUITE = """\
description: capitals few-shot
prompts: ["Capital of {{country}}? One word."]
providers: [good]
tests:
  - {vars: {country: France}, expected: Paris, assert: [{type: icontains, value: Paris}]}
  - {vars: {country: Spain}, expected: Madrid, assert: [{type: icontains, value: Madrid}]}
  - {vars: {country: Italy}, expected: Rome, assert: [{type: icontains, value: Rome}]}
  - {vars: {country: Peru}, expected: Lima, assert: [{type: icontains, value: Lima}]}
gates:
  - {metric: pass_rate, min: 1.0}
"""
CAPITALS = {"France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Peru": "Lima"}


def _last_turn(body: dict[str, Any]) -> Reply:
    """Answers the last user turn only (the few-shot examples before it must not leak into the answer)."""
    last = body["messages"][-1]["content"]
    return Reply(next((c for k, c in CAPITALS.items() if k in last), "no idea"))


def test_a_few_shot_trial_is_promoted_with_its_examples(cli_env: LiveServer, upstream: FakeUpstream,
                                                        tmp_path: Path) -> None:
    """A sweep run from Python with record=True is on the server; its few-shot trial becomes a chat
    prompt version holding the examples before the user turn (and the context size in its config),
    which passes the suite's gates as the trial did."""
    import podium
    from podium.experiments.sweep import run_sweep

    upstream.respond("good-up", _last_turn)
    suite = tmp_path / "suite.yaml"
    suite.write_text(FEW_SHOT_SUITE)
    with cli_env.client() as c:
        c.put("/api/v1/gateway/models/good", json={"deployments": [
            {"provider": "openai", "model": "good-up", "api_base": upstream.base_url, "api_key": "k"}]}
              ).raise_for_status()
    sdk = podium.Podium(base_url=cli_env.url, public_key=cli_env.keys.public_key, secret_key=cli_env.keys.secret_key)
    try:
        res = run_sweep(suite, {"models": ["good"], "few_shot": [0, 2], "context_size": [3]}, sdk=sdk,
                        record=True, name="few-shot sweep")
    finally:
        sdk.shutdown(timeout=5)
    assert res.sweep_id and res.status == "completed" and [t.config.few_shot for t in res.trials] == [0, 2]
    two = res.trials[1]
    assert two.metrics["pass_rate"] == 1.0 and two.items == 2  # the first two items are the examples
    with cli_env.client() as c:
        got = c.get(f"/api/v1/eval-sweeps/{res.sweep_id}").json()
    assert got["name"] == "few-shot sweep" and got["status"] == "completed"
    assert got["trials"][1]["config"]["examples"] == two.examples

    out = run_cli_80("eval", "sweeps", "promote", res.sweep_id, "--trial", "2", "--prompt", "capitals",
                     "--label", "production")
    assert "created capitals v1" in out and "gates passed: production -> capitals v1" in out
    with cli_env.client() as c:
        v1 = c.get("/api/v1/prompts/capitals/versions/1").json()
    assert v1["type"] == "chat" and "production" in v1["labels"]
    assert v1["prompt"] == [{"role": "user", "content": "Capital of France? One word."},
                            {"role": "assistant", "content": "Paris"},
                            {"role": "user", "content": "Capital of Spain? One word."},
                            {"role": "assistant", "content": "Madrid"},
                            {"role": "user", "content": "Capital of {{country}}? One word."}]
    assert v1["config"] == {"model": "good", "context_size": 3}
    # the promoted version sends what the trial sent
    sent = [b["messages"] for b in upstream.bodies("good-up") if "Italy" in b["messages"][-1]["content"]]
    assert len(sent) == 3 and len(sent[0]) == 1  # the 0-shot trial, the 2-shot trial, the gate's run
    assert sent[2] == sent[1] and len(sent[1]) == 5
