"""Fine-tuning runs (podium.tune.trainer) on the bundled SmolLM2-135M with TRL + PEFT on CPU:
SFT stopped by its hooks (checkpoint, status cancelled) and resumed to the end (the step count
goes on), an adapter that loads with peft and changes the model's answers; DPO a couple of
steps; and the recipe file (validation, dotted overrides for sweeps)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from podium.errors import ValidationFailed
from podium.tune.recipe import load_recipe, parse_recipe
from podium.tune.trainer import StepLog, TrainResult, latest_checkpoint, planned_steps, train


def sft_records(n: int) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(n)]


def dpo_records(n: int) -> list[dict[str, Any]]:
    return [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "chosen": [{"role": "assistant", "content": f"{2 * i}."}],
             "rejected": [{"role": "assistant", "content": "I will not tell you."}]} for i in range(n)]


class Hooks:
    def __init__(self, stop_after: int | None = None) -> None:
        self.logs: list[StepLog] = []
        self.polls = 0
        self.stop_after = stop_after

    def on_log(self, log: StepLog) -> None:
        self.logs.append(log)

    def should_stop(self) -> bool:
        self.polls += 1
        return self.stop_after is not None and self.polls >= self.stop_after

    def losses(self) -> dict[int, float]:
        return {x.step: x.loss for x in self.logs if x.loss is not None}


def _recipe(method: str, base: Path, **training: Any) -> Any:
    return parse_recipe({"method": method, "base_model": str(base), "data": {"path": "unused.jsonl"},
                         "training": {"max_length": 64, "batch_size": 2, "save_steps": 50, **training}})


def _check_result(r: TrainResult) -> None:
    assert r.duration_s > 0 and r.steps_per_s > 0 and r.peak_rss_mb > 100
    hw = r.hardware
    assert hw["device"] == "cpu" and hw["cpu_count"] >= 1 and hw["torch_threads"] >= 1
    assert {"torch", "transformers", "peft", "trl"} <= hw.keys()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft reads a name transformers 5 deprecates
def test_sft_stop_resume_and_adapter(hf_base: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = _recipe("sft", hf_base, max_steps=4, learning_rate=1e-3)
    out = tmp_path / "run"
    hooks = Hooks(stop_after=2)  # "cancelled" after step 2: a checkpoint is saved, then it stops
    first = train(recipe, sft_records(12), sft_records(2), output_dir=out, hooks=hooks)
    assert first.status == "cancelled" and first.steps == 2
    assert first.checkpoint_dir == out / "checkpoint-2" == latest_checkpoint(out)
    assert sorted(hooks.losses()) == [1, 2] and all(math.isfinite(v) for v in hooks.losses().values())
    assert all(x.max_steps == 4 and x.learning_rate is not None for x in hooks.logs)
    assert "eval_loss" not in first.metrics  # no evaluation of a cancelled run
    _check_result(first)

    again = Hooks()
    done = train(recipe, sft_records(12), sft_records(2), output_dir=out, hooks=again, resume=True)
    assert done.status == "completed" and done.steps == 4
    assert sorted(again.losses()) == [3, 4]  # the step count goes on from the checkpoint
    assert [x.step for x in again.logs if x.eval_loss is not None] == [4]  # the final evaluation
    assert math.isfinite(done.metrics["train_loss"]) and math.isfinite(done.metrics["eval_loss"])
    assert latest_checkpoint(out) == out / "checkpoint-4"
    _check_result(done)
    assert done.adapter_dir == out / "adapter"
    assert (done.adapter_dir / "adapter_config.json").is_file()
    assert (done.adapter_dir / "adapter_model.safetensors").is_file()

    tok = AutoTokenizer.from_pretrained(hf_base)
    enc: Any = tok.apply_chat_template([{"role": "user", "content": "What is 3 plus 3?"}],
                                       add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids = enc["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(hf_base, dtype=torch.float32)
    with torch.no_grad():
        before = model(ids).logits
        tuned = PeftModel.from_pretrained(model, done.adapter_dir)
        after = tuned(ids).logits
    assert before.shape == after.shape
    assert not torch.allclose(before, after, atol=1e-4)


@pytest.mark.slow
def test_dpo_two_steps(hf_base: Path, tmp_path: Path) -> None:
    hooks = Hooks()
    r = train(_recipe("dpo", hf_base, max_steps=2, batch_size=1), dpo_records(4), [], output_dir=tmp_path / "dpo",
              hooks=hooks)
    assert r.status == "completed" and r.steps == 2
    assert sorted(hooks.losses()) == [1, 2] and all(math.isfinite(v) for v in hooks.losses().values())
    assert hooks.losses()[1] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at the start
    assert "rewards/margins" in hooks.logs[-1].as_dict()  # DPO's own numbers travel with the step
    assert (r.adapter_dir / "adapter_model.safetensors").is_file()
    _check_result(r)


def test_records_must_match_the_method(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="has no prompt, chosen, rejected"):
        train(_recipe("dpo", tmp_path, max_steps=1), sft_records(2), [], output_dir=tmp_path / "x")
    with pytest.raises(ValidationFailed, match="no training records"):
        train(_recipe("sft", tmp_path, max_steps=1), [], [], output_dir=tmp_path / "x")
    with pytest.raises(ValidationFailed, match="nothing to resume"):
        train(_recipe("sft", tmp_path, max_steps=1), sft_records(2), [], output_dir=tmp_path / "x", resume=True)


def test_recipe_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    f = tmp_path / "sft.yaml"
    f.write_text("method: sft\nname: first\ndata: {path: data/train.jsonl}\nlora: {r: 4}\n"
                 "training: {max_steps: 10, learning_rate: 0.001}\n")
    r = load_recipe(f)
    assert r.data.path == str(tmp_path / "data" / "train.jsonl")  # relative to the recipe's folder
    assert r.base_model == "smollm2" and r.device == "auto" and r.lora.target_modules == ["q_proj", "v_proj"]
    assert r.lora.r == 4 and r.training.max_steps == 10 and r.training.save_steps == 50
    p = r.flat_params()
    assert p["training.learning_rate"] == 0.001 and p["lora.r"] == 4 and "dpo.beta" not in p
    assert planned_steps(r, 100) == 10
    r2 = r.with_params({"training.learning_rate": 1e-4, "lora.r": 16})
    assert (r2.training.learning_rate, r2.lora.r, r.lora.r) == (1e-4, 16, 4)
    assert planned_steps(r2.with_params({"training.max_steps": None, "training.batch_size": 4}), 10) == 3
    with pytest.raises(ValidationFailed, match=r"no parameter 'training\.lr'"):
        r.with_params({"training.lr": 1})
    with pytest.raises(ValidationFailed, match=r"lora\.r"):
        r.with_params({"lora.r": 0})

    for text, msg in [
        ("method: sft\ndata: {path: a.jsonl}\ntraining: {epochz: 2}\n", "training.epochz: Extra inputs"),
        ("method: ppo\ndata: {path: a.jsonl}\n", "method: Input should be 'sft' or 'dpo'"),
        ("method: sft\ndata: {path: a.jsonl, dataset: d}\n", "exactly one of data.dataset"),
        ("method: sft\n", "data: Field required"),
        ("- method: sft\n", "expected a mapping"),
        ("method: [sft\n", "not valid YAML"),
    ]:
        f.write_text(text)
        with pytest.raises(ValidationFailed, match=re.escape(msg)):
            load_recipe(f)
    root = Path(__file__).resolve().parents[2]
    assert load_recipe(root / "examples" / "tune" / "sft.yaml").method == "sft"
    assert load_recipe(root / "examples" / "tune" / "dpo.yaml").dpo.beta == 0.1
    with pytest.raises(ValidationFailed, match="cannot read recipe"):
        load_recipe(tmp_path / "missing.yaml")
    assert parse_recipe({"method": "dpo", "data": {"dataset": "prefs@3"}}).data.dataset_ref() == ("prefs", 3)
    with pytest.raises(ValidationFailed, match="NAME@VERSION"):
        parse_recipe({"method": "dpo", "data": {"dataset": "prefs@latest"}}).data.dataset_ref()
