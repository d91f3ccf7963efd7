"""One fine-tuning run: TRL's ``SFTTrainer`` or ``DPOTrainer`` with a PEFT LoRA adapter on the
base model (``base_model.ensure_base_model``), on CPU or a GPU. The caller sees the run through
``TrainHooks``: every logging step (loss, learning rate, eval loss) and a stop poll after every
step (True: save a checkpoint and stop, e.g. Ctrl-C, a cancel from the UI, a pruned sweep
trial). ``resume=True`` continues from the newest ``checkpoint-N`` in the output folder.

torch, transformers, peft, trl and datasets are imported inside ``train`` only (the ``tune``
extra); importing this module is cheap."""

from __future__ import annotations

import logging
import math
import os
import platform
import re
import resource
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from podium.config import Settings
from podium.errors import ConfigurationError, ValidationFailed
from podium.tune.base_model import ensure_base_model, offline, torch_threads
from podium.tune.extra import require_tune_extra

if TYPE_CHECKING:
    from podium.tune.recipe import TuneRecipe

__all__ = ["StepLog", "TrainHooks", "TrainResult", "latest_checkpoint", "planned_steps", "train"]

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_LOGGED = {"loss", "learning_rate", "grad_norm", "epoch", "step"}


@dataclass
class StepLog:
    """One logging step of the trainer (eval results come as their own log with ``eval_loss``)."""

    step: int
    loss: float | None = None
    learning_rate: float | None = None
    epoch: float | None = None
    grad_norm: float | None = None
    eval_loss: float | None = None
    max_steps: int | None = None  # the run's planned total (for a progress bar)
    extra: dict[str, float] = field(default_factory=dict)  # other numbers: DPO rewards, token accuracy, ...

    def as_dict(self) -> dict[str, Any]:
        """The step as a run records it (``POST /training-runs/{id}/steps``): the set fields and
        the extra numbers, Nones left out."""
        out = {k: v for k, v in self.__dict__.items() if v is not None and k not in ("max_steps", "extra")}
        return {**self.extra, **out}


class TrainHooks(Protocol):
    def on_log(self, log: StepLog) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass
class TrainResult:
    status: Literal["completed", "cancelled"]
    steps: int
    metrics: dict[str, float]
    adapter_dir: Path
    checkpoint_dir: Path | None
    duration_s: float
    steps_per_s: float
    peak_rss_mb: float
    hardware: dict[str, Any] = field(default_factory=dict)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder (highest N) in ``output_dir``, or None."""
    if not output_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in output_dir.iterdir()
             if p.is_dir() and (m := _CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def planned_steps(recipe: TuneRecipe, n_train: int) -> int:
    """Optimizer steps the run will take (``max_steps``, or epochs over the records)."""
    t = recipe.training
    if t.max_steps is not None:
        return t.max_steps
    per_epoch = max(math.ceil(max(n_train, 1) / t.batch_size) // t.grad_accum, 1)
    return max(math.ceil(t.epochs * per_epoch), 1)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def _device(recipe: TuneRecipe) -> str:
    import torch

    if recipe.device == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("device: cuda, but torch sees no GPU here; use device: auto or cpu "
                                 "(or install a CUDA build of torch)")
    if recipe.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return recipe.device


def hardware(device: str) -> dict[str, Any]:
    """What the run ran on: device, CPU count and torch threads, library versions, the GPU."""
    import peft
    import torch
    import transformers
    import trl

    hw: dict[str, Any] = {
        "device": device, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(terse=True), "python": platform.python_version(),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "trl": trl.__version__,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        hw.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gb=round(props.total_memory / 2**30, 1),
                  cuda=torch.version.cuda)
    return hw


def _keep(records: list[dict[str, Any]], keys: tuple[str, ...], method: str) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(records):
        missing = [k for k in keys if k not in r]
        if missing:
            raise ValidationFailed(f"{method.upper()} record {i + 1} has no {', '.join(missing)}: a {method.upper()} "
                                   f"record has {', '.join(keys)} (export one with `podium tune export --format "
                                   f"{method}`)", details=[{"field": "records", "message": f"record {i + 1}"}])
        out.append({k: r[k] for k in keys})
    return out


def _kept_metric(key: str) -> bool:
    """Evaluation metrics worth recording (loss, DPO rewards, accuracy), not timings or counts."""
    return key.startswith("eval_") and not any(s in key for s in ("runtime", "per_second", "num_tokens"))


def _make_callback(hooks: TrainHooks | None, stopped: list[bool], evals: list[dict[str, Any]]) -> Any:
    from transformers import TrainerCallback

    class _Bridge(TrainerCallback):
        """TRL's logs -> ``hooks.on_log``; ``hooks.should_stop()`` -> save a checkpoint and stop."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kw: Any) -> None:
            if logs and "eval_loss" in logs:
                evals.append({**logs, "step": int(state.global_step)})
            if hooks is None or not logs:
                return
            log = StepLog(step=int(state.global_step), max_steps=int(state.max_steps) or None,
                          epoch=_num(logs.get("epoch", state.epoch)))
            if "eval_loss" in logs:
                log.eval_loss = _num(logs["eval_loss"])
                keep = [k for k in logs if _kept_metric(k) and k != "eval_loss"]
            elif "loss" in logs:
                log.loss = _num(logs["loss"])
                log.learning_rate = _num(logs.get("learning_rate"))
                log.grad_norm = _num(logs.get("grad_norm"))
                keep = [k for k in logs if k not in _LOGGED and _kept_metric(f"eval_{k}")]
            else:
                return  # the end-of-training summary (train_loss, runtime): in TrainResult.metrics
            log.extra = {k[:64]: f for k in keep[:40] if (f := _num(logs[k])) is not None}
            hooks.on_log(log)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if hooks is not None and not stopped[0] and hooks.should_stop():
                stopped[0] = True
                control.should_save = True
                control.should_training_stop = True

    return _Bridge()


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def train(recipe: TuneRecipe, train_records: list[dict[str, Any]], eval_records: list[dict[str, Any]], *,
          output_dir: Path, hooks: TrainHooks | None = None, resume: bool = False,
          settings: Settings | None = None) -> TrainResult:
    """Fine-tune a LoRA adapter on ``train_records`` (SFT: ``{"messages": [...]}``; DPO: ``{"prompt",
    "chosen", "rejected"}``), evaluating on ``eval_records`` every ``training.eval_steps`` and at
    the end. The adapter lands in ``output_dir/adapter``; checkpoints in ``output_dir/checkpoint-N``."""
    with warnings.catch_warnings():
        # transformers 5 deprecates names that peft and TRL still read (gradient_checkpointing):
        # library noise, not something a recipe can fix.
        warnings.simplefilter("ignore", FutureWarning)
        return _train(recipe, train_records, eval_records, output_dir=output_dir, hooks=hooks, resume=resume,
                      settings=settings or Settings())


def _train(recipe: TuneRecipe, train_records: list[dict[str, Any]], eval_records: list[dict[str, Any]], *,
           output_dir: Path, hooks: TrainHooks | None, resume: bool, settings: Settings) -> TrainResult:
    require_tune_extra("fine-tuning", ("torch", "transformers", "peft", "trl", "datasets"))
    if not train_records:
        raise ValidationFailed("no training records: the dataset or file is empty (or has only validation "
                               "records)", details=[{"field": "data"}])
    keys = ("messages",) if recipe.method == "sft" else ("prompt", "chosen", "rejected")
    train_rows = _keep(train_records, keys, recipe.method)
    eval_rows = _keep(eval_records, keys, recipe.method)
    output_dir = Path(output_dir)
    checkpoint = latest_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        raise ValidationFailed(f"nothing to resume: {output_dir} has no checkpoint-N folder (a run writes one "
                               f"every training.save_steps steps and when cancelled)")
    base_dir = ensure_base_model(settings, recipe.base_model)

    offline()
    t_start = time.perf_counter()
    import datasets  # type: ignore[import-untyped]  # datasets ships no type stubs
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from transformers.utils import logging as hf_logging

    quiet: Any = hf_logging  # (untyped functions)
    quiet.set_verbosity_error()
    quiet.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.set_num_threads(torch_threads())
    device = _device(recipe)
    t = recipe.training
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()

    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    lora = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                      target_modules=list(recipe.lora.target_modules), task_type="CAUSAL_LM")
    do_eval = bool(eval_rows)
    common: dict[str, Any] = dict(
        output_dir=str(output_dir), max_steps=t.max_steps or -1, num_train_epochs=t.epochs,
        learning_rate=t.learning_rate, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        warmup_steps=t.warmup_ratio, seed=t.seed, data_seed=t.seed, logging_steps=t.logging_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=2,
        eval_strategy="steps" if do_eval and t.eval_steps else "no", eval_steps=t.eval_steps,
        report_to="none", disable_tqdm=True, use_cpu=device == "cpu", bf16=bf16,
        dataloader_pin_memory=device == "cuda", max_length=t.max_length,
        activation_checkpointing=t.gradient_checkpointing,
    )
    train_ds = datasets.Dataset.from_list(train_rows)
    eval_ds = datasets.Dataset.from_list(eval_rows) if do_eval else None
    stopped = [False]
    evals: list[dict[str, Any]] = []  # the evaluations during training (the last one may be the final one)
    callbacks = [_make_callback(hooks, stopped, evals)]
    trainer: Any
    if recipe.method == "sft":
        from trl.trainer.sft_config import SFTConfig
        from trl.trainer.sft_trainer import SFTTrainer

        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tok, peft_config=lora, callbacks=callbacks)
    else:
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer

        trainer = DPOTrainer(model=model, args=DPOConfig(**common, beta=recipe.dpo.beta), train_dataset=train_ds,
                             eval_dataset=eval_ds, processing_class=tok, peft_config=lora, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our hooks report progress; no dicts on stdout
    start_step = int(trainer.state.global_step)
    if checkpoint is not None:
        start_step = int(_checkpoint_step(checkpoint))
    t_train = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    train_s = time.perf_counter() - t_train
    steps = int(trainer.state.global_step)
    metrics: dict[str, float] = {}
    if (v := _num(out.training_loss)) is not None:
        metrics["train_loss"] = round(v, 6)
    cancelled = stopped[0] and steps < trainer.state.max_steps
    if do_eval and not cancelled:
        ev = evals[-1] if evals and evals[-1].get("step") == steps else trainer.evaluate()
        metrics.update({k: round(f, 6) for k, v in ev.items() if _kept_metric(k) and (f := _num(v)) is not None})
    adapter_dir = output_dir / ADAPTER_DIR
    trainer.model.save_pretrained(adapter_dir)
    tok.save_pretrained(adapter_dir)
    done = max(steps - start_step, 0)
    return TrainResult(
        status="cancelled" if cancelled else "completed", steps=steps, metrics=metrics,
        adapter_dir=adapter_dir, checkpoint_dir=latest_checkpoint(output_dir),
        duration_s=round(time.perf_counter() - t_start, 3),
        steps_per_s=round(done / train_s, 4) if train_s > 0 else 0.0,
        peak_rss_mb=_peak_rss_mb(), hardware=hardware(device),
    )


def _checkpoint_step(path: Path) -> int:
    m = _CHECKPOINT.match(path.name)
    return int(m.group(1)) if m else 0
