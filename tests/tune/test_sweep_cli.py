"""`podium tune sweep` for real: LoRA trials on the bundled SmolLM2 (2 trials x 2 steps), each a
tracked training run on a live server, the objective the validation loss; the results table at
80 columns and the sweep's best run on the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer, run_cli_80

pytestmark = [pytest.mark.slow, pytest.mark.one_db, pytest.mark.timeout(300)]


def sft_records(n: int) -> list[dict[str, Any]]:
    capitals = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
                ("Egypt", "Cairo"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Kenya", "Nairobi")]
    return [{"messages": [{"role": "user", "content": f"Capital of {c}? One word."},
                          {"role": "assistant", "content": a}]} for c, a in (capitals * 2)[:n]]


def write_sweep(tmp_path: Path, hf_base: Path, **over: Any) -> Path:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_records(12)))
    recipe = {"method": "sft", "name": "capitals", "base_model": str(hf_base),
              "data": {"path": "train.jsonl", "validation": 0.25},
              "lora": {"r": 4}, "training": {"max_steps": over.pop("max_steps", 2), "batch_size": 2, "max_length": 48, "save_steps": 50}}
    sweep = {"recipe": recipe, "trials": 2, "sampler": "random", "pruner": "none", "seed": 1,
             "space": {"training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                       "lora.r": {"type": "categorical", "choices": [2, 4]}}, **over}
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump(sweep))
    return f


def test_sweep_trains_tracked_trials_and_picks_the_best(cli_env: LiveServer, hf_base: Path, tmp_path: Path) -> None:
    f = write_sweep(tmp_path, hf_base, parallel=2)
    # in-process: the trials share this process's torch (imported by hf_base), as a user's would
    r = CliRunner().invoke(app, ["tune", "sweep", str(f), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    sweep_id = res["sweep_id"]
    assert res["complete"] == 2 and res["direction"] == "minimize" and res["metric"] == "eval_loss"

    with cli_env.client() as c:
        sweep = c.get(f"/api/v1/training-sweeps/{sweep_id}").raise_for_status().json()
        runs = c.get("/api/v1/training-runs", params={"sweep_id": sweep_id}).raise_for_status().json()["data"]
    assert sweep["status"] == "completed" and sweep["best_run_id"] in {r["id"] for r in runs}
    assert sorted(r["trial"] for r in runs) == [0, 1] and {r["status"] for r in runs} == {"completed"}
    best = next(r for r in runs if r["id"] == sweep["best_run_id"])
    assert best["metrics"]["objective"] == best["metrics"]["eval_loss"] == min(
        r["metrics"]["eval_loss"] for r in runs)
    assert res["best"]["run_id"] == best["id"] and {t["run_id"] for t in res["trials"]} == {r["id"] for r in runs}
    assert sweep["summary"]["best"]["run_id"] == best["id"] and len(sweep["summary"]["trials"]) == 2
    assert best["params"]["lora.r"] in (2, 4) and best["params"]["training.max_steps"] == 2
    assert Path(best["artifacts"]["adapter"], "adapter_config.json").exists()
    spans = sorted((r["started_at"], r["ended_at"]) for r in runs)
    assert spans[1][0] < spans[0][1]  # two trials at once

    # resuming a finished sweep trains nothing and prints the table (a subprocess at 80 columns, no TTY)
    out = run_cli_80("tune", "sweep", str(f), "--resume", sweep_id)
    assert f"{sweep_id}: 2 complete, 0 pruned, 0 failed (minimize eval_loss)" in out, out
    assert f"best: trial {res['best']['number']}*" in out and "training.learning_rate: " in out
    assert f"best run: {best['id']}" in out

    # a resume with another space is refused; the sweep stays as it was
    changed = yaml.safe_load(f.read_text())
    changed["space"]["lora.r"]["choices"] = [8]
    f.write_text(yaml.safe_dump(changed))
    r = CliRunner().invoke(app, ["tune", "sweep", str(f), "--resume", sweep_id], env={"COLUMNS": "200"})
    assert r.exit_code == 1 and "changed since it started" in r.output, r.output
    with cli_env.client() as c:
        assert c.get(f"/api/v1/training-sweeps/{sweep_id}").json()["status"] == "completed"


SUITE = """\
description: capitals
prompts: ["Capital of {{country}}? One word."]
tests:
  - vars: {country: France}
    assert: [{type: icontains, value: Paris}]
  - vars: {country: Italy}
    assert: [{type: icontains, value: Rome}]
"""


def test_sweep_on_an_eval_suite(cli_env: LiveServer, hf_base: Path, tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    f = write_sweep(tmp_path, hf_base, trials=1, objective={"suite": "suite.yaml", "metric": "icontains",
                                                            "max_tokens": 6})
    r = CliRunner().invoke(app, ["tune", "sweep", str(f), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["complete"] == 1, [t["error"] for t in res["trials"]]
    assert res["direction"] == "maximize" and res["metric"] == "icontains"
    assert res["best"]["value"] in (0.0, 0.5, 1.0)  # the share of the two answers with the capital
    with cli_env.client() as c:
        run = c.get(f"/api/v1/training-runs/{res['best']['run_id']}").raise_for_status().json()
        exp = c.get(f"/api/v1/experiments/{run['artifacts']['experiments']}").raise_for_status().json()
    assert run["metrics"]["objective"] == run["metrics"]["suite.icontains"] == res["best"]["value"]
    assert exp["metadata"]["run_id"] == run["id"] and exp["metadata"]["sweep_id"] == res["sweep_id"]
    assert exp["name"] == f"capitals · {res['sweep_id']} #0"

