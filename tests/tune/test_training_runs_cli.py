"""`podium tune runs list|show|cancel|compare` and `podium tune sweeps list|show` against a real
server; the tables fit 80 columns as a real subprocess without a TTY."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer, run_cli_80

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    if code == 0:  # tables fit COLUMNS=80 (tests/conftest.py); messages are soft-wrapped by the terminal
        assert all(len(line) <= 80 for line in r.output.splitlines()), r.output
    return r.output


@pytest.mark.one_db
def test_tune_runs_cli(cli_env: LiveServer) -> None:
    assert "no training runs yet" in run("tune", "runs", "list")
    tr, pid = cli_env.store.training, cli_env.keys.project_id
    sweep = tr.create_sweep(pid, name="lr-search", space={"training.learning_rate": {"type": "categorical", "choices": [1e-4, 3e-4]}},
                            objective={"metric": "eval_loss", "direction": "minimize"})
    a = tr.create_run(pid, method="sft", base_model="smollm2", name="baseline", sweep_id=sweep["id"], trial=0,
                      params={"training": {"learning_rate": 1e-4, "max_steps": 10}, "lora": {"r": 8}},
                      hardware={"device": "cpu"}, dataset={"name": "support-sft", "version": 2})
    b = tr.create_run(pid, method="sft", base_model="smollm2", name="hot", sweep_id=sweep["id"], trial=1,
                      params={"training": {"learning_rate": 3e-4, "max_steps": 10}, "lora": {"r": 8}})
    tr.log_steps(pid, a["id"], [{"step": s, "loss": 2.0 - s / 10, "learning_rate": 1e-4} for s in range(1, 4)])
    tr.update_run(pid, a["id"], {"status": "completed", "metrics": {"train_loss": 1.7, "eval_loss": 1.6},
                                 "duration_s": 4.2})
    best = {"number": 0, "value": 1.55, "run_id": a["id"]}
    tr.update_sweep(pid, sweep["id"], {"status": "completed", "best_run_id": a["id"],
                                       "summary": {"best": best, "trials": [best]}})

    out = run("tune", "runs", "list")
    assert a["id"] in out and b["id"] in out and "completed" in out
    out = run("tune", "runs", "show", a["id"], "--steps")
    assert "support-sft@2" in out and "training.learning_rate: 0.0001" in out and "eval_loss: 1.6" in out
    assert "device: cpu" in out and out.count("0.0001") >= 3  # the steps table's lr column
    assert json.loads(run("tune", "runs", "show", a["id"], "--json"))["metrics"]["train_loss"] == 1.7
    assert "cancel requested" in run("tune", "runs", "cancel", b["id"])
    assert "not running" in run("tune", "runs", "cancel", a["id"], code=1)
    out = run_cli_80("tune", "runs", "compare", a["id"], b["id"])
    assert "training.learning_rate *" in out and "lora.r" not in out and "2 parameters equal" in out
    cmp = json.loads(run("tune", "runs", "compare", a["id"], b["id"], "--json"))
    assert cmp["differ"] == ["training.learning_rate"] and cmp["metrics"]["eval_loss"] == [1.6, None]
    assert "1.55" in run("tune", "sweeps", "list")
    out = run("tune", "sweeps", "show", sweep["id"])
    assert f"{a['id']} best" in out and "training.learning_rate" in out and "1.55" in out
    assert "no training run" in run("tune", "runs", "show", "run-missing", code=1)
