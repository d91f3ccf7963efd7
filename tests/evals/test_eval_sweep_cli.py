"""`podium eval sweep` end to end against a real server whose gateway serves two priced fake models:
the trials are experiments on the server, the sweep is recorded through /api/v1/eval-sweeps when
the server has it, the table fits 80 columns, the report is written, errors exit 2."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import podium
from podium.cli.main import app
from tests.conftest import LiveServer, run_cli_80
from tests.gateway.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.one_db

SUITE = """
description: Capitals
prompts: ["Question {{n}}: what is the capital of France?"]
providers: [gateway:cheap]
defaultTest:
  assert: [{type: icontains, value: paris}]
tests:
""" + "".join(f"  - vars: {{n: {i}}}\n" for i in range(8))

SPACE = """
models: [cheap, premium]
params: {temperature: [0, 0.9]}
search: {method: grid}
"""


def behaviour(body: dict[str, Any]) -> Reply:
    n = int(re.findall(r"Question (\d+)", body["messages"][-1]["content"])[0])
    right = body["model"] == "gpt-4o" or (n % 2 == 0 and float(body.get("temperature") or 0) < 0.5)
    return Reply("Paris" if right else "Lyon", prompt_tokens=30)


@pytest.fixture
def env(cli_env: LiveServer, upstream: FakeUpstream) -> Iterator[LiveServer]:
    for alias, model in (("cheap", "gpt-4o-mini"), ("premium", "gpt-4o")):
        upstream.respond(model, behaviour)
        with cli_env.client() as c:
            r = c.put(f"/api/v1/gateway/models/{alias}", json={"deployments": [
                {"provider": "openai", "model": model, "api_base": upstream.base_url, "api_key": "k"}]})
            assert r.status_code in (200, 201), r.text
    yield cli_env
    podium.shutdown(timeout=2)


def test_sweep_cli_records_trials_as_experiments_and_prints_the_front(env: LiveServer, tmp_path: Path) -> None:
    suite, space, report = tmp_path / "suite.yaml", tmp_path / "space.yaml", tmp_path / "sweep.html"
    suite.write_text(SUITE)
    space.write_text(SPACE)
    out = run_cli_80("eval", "sweep", str(suite), "--space", str(space), "--report", str(report))
    assert "Capitals: grid sweep" in out and "★ front" in out and "front: #" in out
    assert "4 trials (4 complete" in out
    html = report.read_text()
    assert '<svg class="scatter"' in html and 'class="front-table"' in html
    with env.client() as c:
        exps = c.get("/api/v1/experiments", params={"limit": 50}).json()["data"]
        sweeps = c.get("/api/v1/eval-sweeps")
    trial_exps = [e for e in exps if "sweep" in e["name"]]
    assert len(trial_exps) == 4 and all(e["status"] == "completed" for e in trial_exps)
    if sweeps.status_code == 200:  # the server side of sweeps (helper B) is there: the sweep is recorded
        sid = sweeps.json()["data"][0]["id"]
        assert f"sweep {sid}" in out
        with env.client() as c:
            got = c.get(f"/api/v1/eval-sweeps/{sid}").json()
        assert got["status"] == "completed" and len(got["trials"]) == 4
        assert {t["experiment_id"] for t in got["trials"]} == {e["id"] for e in trial_exps}
    else:  # an older server: the sweep still ran to the end and says so
        assert "not recorded on the server" in out

    # --json: the whole result; the budget stops it cleanly after the first trial
    r = CliRunner().invoke(app, ["eval", "sweep", str(suite), "--space", str(space), "--json", "--budget",
                                 "0.0000001", "--search", "grid"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output[r.output.index("{"):])
    assert data["status"] == "stopped" and "budget" in data["summary"]["reason"]
    assert len(data["trials"]) == 1 and data["trials"][0]["metrics"]["cost_per_1k"] > 0


def test_sweep_cli_configuration_errors_exit_2(env: LiveServer, tmp_path: Path) -> None:
    suite, space = tmp_path / "suite.yaml", tmp_path / "space.yaml"
    suite.write_text(SUITE)
    space.write_text("models: [cheap, nope]\n")
    r = CliRunner().invoke(app, ["eval", "sweep", str(suite), "--space", str(space)])
    assert r.exit_code == 2 and "the gateway has no model 'nope'" in " ".join(r.output.split())
    space.write_text("models: [cheap]\nparams: {temp: [0]}\n")
    r = CliRunner().invoke(app, ["eval", "sweep", str(suite), "--space", str(space)])
    assert r.exit_code == 2 and "unknown parameter 'temp'" in " ".join(r.output.split())


def test_a_sweep_the_server_cannot_record_still_runs(env: LiveServer) -> None:
    from podium.experiments.sweep import SweepRecorder, Trial, TrialConfig

    sdk = podium.Podium(base_url=env.url, public_key=env.keys.public_key, secret_key=env.keys.secret_key)
    try:
        problems: list[str] = []
        rec = SweepRecorder(sdk, on_problem=problems.append)
        rec.create("s", {"name": "s"}, {}, {"method": "random"}, None)  # the server rejects it
        assert rec.id is None and rec.problem is not None
        rec.trial(Trial(1, TrialConfig("cheap")))  # nothing sent, nothing raised
        assert problems == [rec.problem]  # said once
    finally:
        sdk.shutdown(timeout=2)


def test_optuna_trials_resume_their_prefix_experiment_on_the_server(env: LiveServer, tmp_path: Path) -> None:
    """A trial that is not stopped after its prefix runs the rest of the items in the same experiment."""
    from podium.experiments.suite import parse_suite
    from podium.experiments.sweep import run_sweep

    sdk = podium.Podium(base_url=env.url, public_key=env.keys.public_key, secret_key=env.keys.secret_key)
    try:
        res = run_sweep(parse_suite(SUITE), {"models": ["cheap", "premium"], "params": {"temperature": [0, 0.9]},
                                             "search": {"method": "optuna", "trials": 4, "seed": 3}}, sdk=sdk)
    finally:
        sdk.shutdown(timeout=2)
    assert len(res.trials) == 4 and res.summary["complete"] >= 1
    with env.client() as c:
        for t in res.trials:
            exp = c.get(f"/api/v1/experiments/{t.experiment_id}").json()
            assert exp["item_count"] == t.items == (8 if t.status == "complete" else 5), (t, exp)
            assert exp["metadata"]["sweep"]["trial"] == t.number
