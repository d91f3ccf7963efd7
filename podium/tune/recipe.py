"""A fine-tuning recipe: the YAML file `podium tune sft|dpo` reads (method, base model, data,
LoRA, training and DPO parameters, output folder, device), validated with pydantic; and
``with_params`` for sweeps (dotted paths like ``training.learning_rate``). Reference:
docs/fine-tuning.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from podium.errors import ValidationFailed

__all__ = ["DataSpec", "DpoSpec", "LoraSpec", "TrainingSpec", "TuneRecipe", "load_recipe", "parse_recipe"]

Method = Literal["sft", "dpo"]
Device = Literal["auto", "cpu", "cuda"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Spec):
    """Where the training records come from: a Podium dataset made by `podium tune export`
    (``name`` or ``name@3``) or a local JSONL file (one record a line)."""

    dataset: str | None = Field(default=None, description="A Podium dataset: NAME or NAME@VERSION.")
    path: str | None = Field(default=None, description="A local JSONL file instead of a dataset.")
    validation: float = Field(
        default=0.1, ge=0.0, lt=1.0,
        description="Share held out for evaluation when the records carry no split (a dataset's own "
        "train/validation split is used when it has one).")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("name exactly one of data.dataset (a Podium dataset) or data.path (a JSONL file)")
        return self

    def dataset_ref(self) -> tuple[str, int | None]:
        """``(name, version)`` of ``data.dataset`` (version None: the latest)."""
        assert self.dataset is not None
        name, sep, ver = self.dataset.partition("@")
        if not sep:
            return name, None
        if not ver.isdigit() or int(ver) < 1:
            raise ValidationFailed(f"data.dataset {self.dataset!r}: write NAME or NAME@VERSION (a number, e.g. "
                                   f"{name}@2)", details=[{"field": "data.dataset"}])
        return name, int(ver)


class LoraSpec(_Spec):
    r: int = Field(default=8, ge=1, le=1024, description="LoRA rank.")
    alpha: int = Field(default=16, ge=1, description="LoRA alpha (the update is scaled by alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1,
                                      description="Module names that get adapters.")


class TrainingSpec(_Spec):
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps "
                                  "(overrides epochs).")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the training records.")
    learning_rate: float = Field(default=2e-4, gt=0, le=1.0)
    batch_size: int = Field(default=4, ge=1, le=4096, description="Records per device step.")
    grad_accum: int = Field(default=1, ge=1, le=4096, description="Device steps per optimizer step.")
    max_length: int = Field(default=256, ge=8, le=131072, description="Tokens per record (longer ones are cut).")
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0)
    eval_steps: int | None = Field(default=None, ge=1, description="Evaluate on the validation records every "
                                   "N steps (and always at the end when there are any).")
    save_steps: int = Field(default=50, ge=1, description="Write a checkpoint every N steps (and on cancel).")
    logging_steps: int = Field(default=1, ge=1, description="Log loss and learning rate every N steps.")
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in the backward "
                                         "pass: less memory, about 20% slower (for large models on a GPU).")


class DpoSpec(_Spec):
    beta: float = Field(default=0.1, gt=0, description="DPO temperature: higher stays closer to the base model.")


class TuneRecipe(_Spec):
    """One fine-tuning run's recipe (YAML; unknown keys are refused)."""

    method: Method
    name: str | None = Field(default=None, max_length=200, description="Run name shown in the UI.")
    base_model: str = Field(default="smollm2", min_length=1, description="`smollm2` (the bundled "
                            "SmolLM2-135M-Instruct), a local Hugging Face model folder, or "
                            "registry:/NAME@ALIAS of a merged model.")
    data: DataSpec
    lora: LoraSpec = Field(default_factory=LoraSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    dpo: DpoSpec = Field(default_factory=DpoSpec)
    output_dir: str | None = Field(default=None, description="Default: $PODIUM_HOME/runs/<run id>.")
    device: Device = "auto"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    def with_params(self, params: dict[str, Any]) -> TuneRecipe:
        """A copy with dotted paths replaced (``{"training.learning_rate": 1e-4, "lora.r": 16}``),
        validated again; an unknown path raises ``ValidationFailed``."""
        data = self.model_dump()
        for path, value in params.items():
            node: Any = data
            *parents, leaf = path.split(".")
            for p in parents:
                if not isinstance(node, dict) or not isinstance(node.get(p), dict):
                    raise ValidationFailed(f"recipe has no section {p!r} (in {path!r})", details=[{"field": path}])
                node = node[p]
            if not isinstance(node, dict) or leaf not in node:
                raise ValidationFailed(f"recipe has no parameter {path!r}", details=[{"field": path}])
            node[leaf] = value
        return parse_recipe(data)

    def flat_params(self) -> dict[str, Any]:
        """The recipe's parameters as dotted paths, unset ones left out (what a run records as ``params``)."""
        out: dict[str, Any] = {}

        def walk(prefix: str, v: Any) -> None:
            if isinstance(v, dict):
                for k, sub in v.items():
                    walk(f"{prefix}.{k}" if prefix else k, sub)
            elif v is not None:
                out[prefix] = v

        walk("", self.model_dump(exclude={"name", "output_dir"}))
        if self.method != "dpo":
            out = {k: v for k, v in out.items() if not k.startswith("dpo.")}
        return out


def _errors(e: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = [{"field": ".".join(str(p) for p in err["loc"]) or "recipe", "message": err["msg"]}
               for err in e.errors()]
    text = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return text, details


def parse_recipe(data: Any, *, source: str = "recipe") -> TuneRecipe:
    """A recipe from a mapping; ``ValidationFailed`` naming each bad field otherwise."""
    if not isinstance(data, dict):
        raise ValidationFailed(f"{source}: expected a mapping (method: sft, data: {{...}}, ...)")
    try:
        return TuneRecipe.model_validate(data)
    except ValidationError as e:
        text, details = _errors(e)
        raise ValidationFailed(f"{source} is not a valid recipe: {text} (see docs/fine-tuning.md)",
                               details=details)


def load_recipe(path: Path | str) -> TuneRecipe:
    """A recipe from a YAML (or JSON) file; ``data.path`` relative to the file's folder."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ValidationFailed(f"cannot read recipe {p}: {e.strerror}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValidationFailed(f"{p} is not valid YAML: {e}")
    recipe = parse_recipe(data, source=str(p))
    if recipe.data.path is not None:
        dp = Path(recipe.data.path).expanduser()
        if not dp.is_absolute():
            recipe = recipe.model_copy(update={"data": recipe.data.model_copy(
                update={"path": str((p.parent / dp).resolve())})})
    return recipe
