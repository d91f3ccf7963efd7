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
