"""`podium tune sft|dpo RECIPE.yaml` against a real server: the data from a dataset exported from
traces, the run tracked (parameters, dataset version, per-step loss, hardware, metrics,
artifacts), a cancel from the API stopping it with a checkpoint, `--resume` finishing the same
run; and the recipe and data errors a user meets first."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from podium.cli.commands.tune import load_records
from podium.cli.main import app
from podium.tune.recipe import load_recipe
from tests.conftest import LiveServer
from tests.tune.test_export import add, msgs

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


def _cancel_once_running(server: LiveServer, found: dict[str, str]) -> None:
    """From the "UI": cancel the run as soon as it exists (as the Cancel button does). The trainer
    learns it from the answer to its first step report, so it stops after step 1 or 2."""
    deadline = time.monotonic() + 100
    with server.client() as c:
        while time.monotonic() < deadline:
            runs = c.get("/api/v1/training-runs").json()["data"]
            if runs:
                found["id"] = runs[0]["id"]
                found["cancel"] = str(c.post(f"/api/v1/training-runs/{runs[0]['id']}/cancel").status_code)
                return
            time.sleep(0.05)


@pytest.mark.one_db
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft reads a name transformers 5 deprecates
def test_sft_run_tracked_cancelled_from_the_api_and_resumed(cli_env: LiveServer, hf_base: Path, tmp_path: Path,
                                                            podium_home: Path) -> None:
    pid = cli_env.keys.project_id
    for k in range(10):
        add(cli_env.store, pid, f"t{k}", msgs(f"What is {k} plus {k}?"), f"{2 * k}.", {"user-feedback": True})
    run("tune", "export", "--format", "sft", "--where", "user-feedback=1", "--dataset", "sums",
        "--validation", "0.2")
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(f"method: sft\nname: sums-lora\nbase_model: {hf_base}\ndata: {{dataset: sums}}\n"
                      "lora: {r: 4}\ntraining: {max_steps: 4, max_length: 64, batch_size: 1, save_steps: 50}\n")

    found: dict[str, str] = {}
    canceller = threading.Thread(target=_cancel_once_running, args=(cli_env, found))
    canceller.start()
    out = run("tune", "sft", str(recipe), code=3)  # 3: cancelled, with a checkpoint
    canceller.join()
    assert found["cancel"] == "200"
    run_id = found["id"]
    assert f"run {run_id}" in out and "cancelled" in out and f"--resume {run_id}" in out
    with cli_env.client() as c:
        first = c.get(f"/api/v1/training-runs/{run_id}", params={"steps": "true"}).json()
    assert first["status"] == "cancelled" and first["name"] == "sums-lora" and first["method"] == "sft"
    stopped_at = first["last_step"]
    assert stopped_at in (1, 2)
    out_dir = podium_home / "runs" / run_id
    assert first["output_dir"] == str(out_dir)
    assert first["artifacts"]["checkpoint"] == str(out_dir / f"checkpoint-{stopped_at}")
    assert first["dataset"] == {"name": "sums", "version": 1}
    assert first["params"]["lora.r"] == 4 and first["params"]["training.max_steps"] == 4

    final = json.loads(runner.invoke(app, ["tune", "sft", str(recipe), "--resume", run_id, "--json"]).stdout)
    assert final["id"] == run_id and final["status"] == "completed"
    with cli_env.client() as c:
        done = c.get(f"/api/v1/training-runs/{run_id}", params={"steps": "true"}).json()
    steps = {s["step"]: s for s in done["steps"]}
    assert sorted(steps) == [1, 2, 3, 4]  # the resumed run goes on from its checkpoint
    assert all(s["loss"] is not None and s["learning_rate"] is not None for s in steps.values())
    assert steps[4]["eval_loss"] is not None  # the final evaluation, on the same row as the step's loss
    m = done["metrics"]
    assert m["steps"] == 4 and m["train_loss"] > 0 and m["eval_loss"] > 0 and m["steps_per_s"] > 0
    assert m["peak_rss_mb"] > 100
    assert done["hardware"]["device"] == "cpu" and "torch" in done["hardware"]
    assert done["artifacts"]["adapter"] == str(out_dir / "adapter")
    assert (out_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert done["duration_s"] > 0


@pytest.mark.one_db
def test_recipe_and_data_errors(cli_env: LiveServer, tmp_path: Path) -> None:
    recs = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(10)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    recipe = tmp_path / "sft.yaml"
    recipe.write_text("method: sft\ndata: {path: train.jsonl, validation: 0.2}\n")
    train, val, ds = load_records(load_recipe(recipe))
    assert (len(train), len(val), ds) == (8, 2, None)
    assert load_records(load_recipe(recipe)) == (train, val, None)  # the same split every time
    data.write_text("".join(json.dumps({**r, "split": "validation" if i < 3 else "train"}) + "\n"
                            for i, r in enumerate(recs)))
    assert [len(x) for x in load_records(load_recipe(recipe))[:2]] == [7, 3]  # the file's own split

    assert "is a sft recipe" in run("tune", "dpo", str(recipe), code=2)
    recipe.write_text("method: sft\ndata: {path: train.jsonl}\ntraining: {max_stepz: 3}\n")
    assert "training.max_stepz" in run("tune", "sft", str(recipe), code=2)
    recipe.write_text("method: sft\ndata: {dataset: nope}\n")
    assert "nope" in run("tune", "sft", str(recipe), code=1)
    with cli_env.client() as c:
        assert c.get("/api/v1/training-runs").json()["data"] == []  # nothing was started

    recipe.write_text(f"method: sft\nbase_model: {tmp_path / 'no-model'}\ndata: {{path: train.jsonl}}\n")
    assert "is neither `smollm2`" in run("tune", "sft", str(recipe), code=1)
    with cli_env.client() as c:
        (failed,) = c.get("/api/v1/training-runs").json()["data"]
    assert failed["status"] == "failed" and "no-model" in failed["error"]  # the run says why
