"""Hyperparameter sweeps: a search space over a tune recipe, searched with Optuna.

::

    name: lr-and-rank                   # optional
    recipe: sft.yaml                    # a tune recipe file (relative to this file) or an inline recipe
    space:                              # dotted recipe paths
      training.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
      lora.r: {type: categorical, choices: [4, 8, 16]}
      training.max_steps: {type: int, low: 10, high: 40, step: 10}
    trials: 12
    parallel: 2                         # trials at once (threads in one process: they share the CPU)
    sampler: tpe                        # tpe | random | grid
    pruner: median                      # median | hyperband | none
    warmup_steps: 5                     # no pruning before this step
    seed: 0
    objective: {metric: eval_loss, direction: minimize}           # the validation loss (default)
    # objective: {suite: evals/qa.yaml, metric: pass_rate, direction: maximize}
    executor: local                     # local (threads here) | ray (trials as Ray tasks; docs/ray.md)

The engine (:func:`run_sweep`) owns the Optuna study: one SQLite file per sweep under
``$PODIUM_HOME/sweeps/<sweep-id>.db`` (so ``--resume`` continues it), the sampler and pruner,
parallel trials, and the results table. What a trial *does* is injected: an objective function
``fn(ctx: TrialContext) -> float`` that trains (and evaluates) with ``ctx.params``, reports
intermediate values with ``ctx.report`` and stops when ``ctx.should_prune()`` says so (raising
:class:`TrialPruned`). ``podium tune sweep`` (cli/commands/tune_sweep.py) supplies the real one;
tests supply a cheap function. Optuna is imported inside functions only.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from podium.config import Settings
from podium.errors import ConfigurationError, Conflict, NotFound, PodiumError

if TYPE_CHECKING:
    import optuna

    from podium.tune.recipe import TuneRecipe

__all__ = [
    "Objective",
    "ObjectiveFn",
    "ParamSpec",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "TrialContext",
    "TrialPruned",
    "TrialRow",
    "load_sweep",
    "parse_sweep",
    "run_sweep",
    "study_path",
    "threads_per_trial",
]

LOSS_METRICS = ("eval_loss", "train_loss", "loss")
_GRID_MAX = 10_000
_INTERRUPTED = "interrupted (the sweep stopped); its parameters are tried again on --resume"


class SweepError(ConfigurationError):
    """A sweep file that cannot run; the message names the file and the field."""

    code = "sweep_error"


class TrialPruned(Exception):
    """Raised by an objective function when ``ctx.should_prune()`` stopped its trial."""


class ParamSpec(BaseModel):
    """One dimension of the search space."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty `choices: [...]`")
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("a categorical parameter takes `choices` only (no low/high/step/log)")
            bad = [c for c in self.choices if not (c is None or isinstance(c, bool | int | float | str))]
            if bad:
                raise ValueError(f"choices must be numbers, strings, booleans or null, not {bad[0]!r}")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low/high (use type: categorical for `choices`)")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs `low` and `high`")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int parameter needs whole-number low and high")
        if self.log and self.low <= 0:
            raise ValueError("log: true needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("use either log: true or a step, not both")
        if self.step is not None and self.step <= 0:
            raise ValueError("step must be positive")
        if self.type == "int" and self.step is not None and self.step != int(self.step):
            raise ValueError("an int parameter needs a whole-number step")
        return self

    def grid(self) -> list[Any]:
        """Every value a grid search tries (categorical, int, or float with a step)."""
        if self.type == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        if self.type == "int":
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            raise ValueError("sampler: grid needs a `step` on float parameters (or use type: categorical)")
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(n)]


class Objective(BaseModel):
    """What a trial is scored on: the validation loss (default) or an eval suite's metric."""

    model_config = ConfigDict(extra="forbid")

    metric: str = "eval_loss"
    direction: Literal["minimize", "maximize"] | None = None
    suite: str | None = None
    #: the suite objective: tokens each answer may have (greedy generation with the trial's adapter)
    max_tokens: int = Field(default=64, ge=1, le=4096)

    @model_validator(mode="after")
    def _check(self) -> Objective:
        if self.suite is None and self.metric not in LOSS_METRICS:
            raise ValueError(f"metric {self.metric!r} needs a `suite:` (an eval suite file); without one the "
                             f"objective is a training metric: {', '.join(LOSS_METRICS)}")
        if self.suite is not None and self.metric in LOSS_METRICS:
            raise ValueError(f"with a suite the metric is a scorer's name or pass_rate, not {self.metric!r}")
        if self.direction is None:
            self.direction = "minimize" if self.suite is None else "maximize"
        return self

    @property
    def label(self) -> str:
        return self.metric if self.suite is None else f"{self.metric} ({Path(self.suite).name})"


class SweepSpec(BaseModel):
    """A sweep file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    recipe: str | dict[str, Any]
    space: dict[str, ParamSpec]
    trials: int = Field(default=10, ge=1, le=10_000)
    parallel: int = Field(default=1, ge=1, le=64)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    warmup_steps: int = Field(default=0, ge=0)
    seed: int | None = 0
    executor: Literal["local", "ray"] = "local"
    objective: Objective = Field(default_factory=lambda: Objective())
    #: where relative paths (recipe, suite) resolve: the sweep file's folder
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        if not self.space:
            raise ValueError("the space is empty: add a dotted recipe path such as "
                             "`training.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}`")
        for key in self.space:
            parts = key.split(".")
            if len(parts) < 2 or not all(p.isidentifier() for p in parts):
                raise ValueError(f"space key {key!r} is not a dotted recipe path such as training.learning_rate "
                                 "or lora.r")
        if self.sampler == "grid":
            size = 1
            for key, p in self.space.items():
                try:
                    size *= len(p.grid())
                except ValueError as e:
                    raise ValueError(f"space.{key}: {e}") from None
            if size > _GRID_MAX:
                raise ValueError(f"the grid has {size} points (at most {_GRID_MAX}); add steps or fewer choices")
        return self

    @property
    def grid_size(self) -> int | None:
        if self.sampler != "grid":
            return None
        return math.prod(len(p.grid()) for p in self.space.values())

    @property
    def planned_trials(self) -> int:
        """``trials``, capped at the grid's size for a grid search."""
        g = self.grid_size
        return min(self.trials, g) if g is not None else self.trials

    def recipe_path(self) -> Path | None:
        if isinstance(self.recipe, dict):
            return None
        p = Path(self.recipe).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def suite_path(self) -> Path | None:
        if self.objective.suite is None:
            return None
        p = Path(self.objective.suite).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def load_recipe(self) -> TuneRecipe:
        """The base recipe, checked against the space: every dotted path must be a recipe field
        (each is tried with a value from its range)."""
        from podium.tune.recipe import load_recipe, parse_recipe

        path = self.recipe_path()
        try:
            if path is not None:
                recipe = load_recipe(path)
            else:
                recipe = parse_recipe(self.recipe, source="the inline recipe")
                dp = Path(recipe.data.path).expanduser() if recipe.data.path else None
                if dp is not None and not dp.is_absolute():  # relative to the sweep file, like a recipe file's
                    recipe = recipe.with_params({"data.path": str((self.base_dir / dp).resolve())})
        except PodiumError as e:
            raise SweepError(f"recipe: {e.message}") from e
        for key, p in self.space.items():
            ends = [p.low, p.high] if p.type == "float" else [int(p.low or 0), int(p.high or 0)]
            for sample in (p.choices or []) if p.type == "categorical" else ends:
                self._try_param(recipe, key, sample)
        return recipe

    @staticmethod
    def _try_param(recipe: TuneRecipe, key: str, sample: Any) -> None:
        try:
            recipe.with_params({key: sample})
        except PodiumError as e:
            raise SweepError(f"space.{key} = {sample!r}: {e.message}") from e
        except (ValidationError, KeyError, ValueError, TypeError) as e:
            msg = _first_error(e) if isinstance(e, ValidationError) else str(e)
            raise SweepError(f"space.{key} = {sample!r}: the recipe does not accept it ({msg})") from e

    def summary(self) -> dict[str, Any]:
        """The spec as the sweep's REST ``settings``."""
        return self.model_dump(mode="json", exclude={"space", "objective", "base_dir"})


def _first_error(e: ValidationError) -> str:
    first = e.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    return f"{loc}: {first['msg'].removeprefix('Value error, ')}"


def parse_sweep(data: Any, *, where: str = "sweep", base_dir: Path | None = None) -> SweepSpec:
    if not isinstance(data, Mapping):
        raise SweepError(f"{where}: expected a mapping with recipe, space, trials, ... (see docs/sweeps.md)")
    try:
        return SweepSpec.model_validate({**data, "base_dir": base_dir or Path.cwd()})
    except ValidationError as e:
        raise SweepError(f"{where}: {_first_error(e)}",
                         details=[{"loc": ".".join(map(str, x["loc"])), "msg": x["msg"]} for x in e.errors()]
                         ) from e


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; errors name the file and the field."""
    p = Path(path)
    try:
        import yaml

        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise SweepError(f"{p}: cannot read it ({e.strerror})") from e
    except Exception as e:
        raise SweepError(f"{p}: not valid YAML: {e}") from e
    return parse_sweep(data, where=str(p), base_dir=p.resolve().parent)


# --- trials ------------------------------------------------------------------------------------------------


@dataclass
class TrialContext:
    """What the objective function gets: the trial's number and parameters, a way to report
    intermediate values (``report(value, step)``) and to ask whether to stop (``should_prune``),
    and ``run_id`` to set (the training run that carries the trial; shown in the table)."""

    number: int
    params: dict[str, Any]
    sweep_id: str
    threads: int
    trial: optuna.Trial = field(repr=False)
    run_id: str | None = None
    reported: set[int] = field(default_factory=set, repr=False)

    def report(self, value: float, step: int) -> None:
        """The objective's value at a step (the first report of a step counts, as in Optuna)."""
        if math.isfinite(value) and step not in self.reported:
            self.reported.add(step)
            self.trial.report(value, step)

    def should_prune(self) -> bool:
        return self.trial.should_prune()

    def set_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.trial.set_user_attr("run_id", run_id)


ObjectiveFn = Callable[[TrialContext], float]


@dataclass
class TrialRow:
    number: int
    params: dict[str, Any]
    value: float | None
    state: Literal["complete", "pruned", "failed", "running"]
    run_id: str | None
    duration_s: float | None
    error: str | None = None
    last_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "params": self.params, "value": self.value, "state": self.state,
                "run_id": self.run_id, "duration_s": self.duration_s, "error": self.error,
                "last_step": self.last_step}


@dataclass
class SweepResult:
    sweep_id: str
    direction: str
    metric: str
    trials: list[TrialRow]
    best: TrialRow | None
    storage: Path

    @property
    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "pruned": 0, "failed": 0}
        for t in self.trials:
            if t.state in out:
                out[t.state] += 1
        return out

    def summary(self) -> dict[str, Any]:
        """What the sweep's REST ``summary`` holds."""
        return {"metric": self.metric, "direction": self.direction, **self.counts,
                "best": self.best.to_dict() if self.best else None,
                "trials": [t.to_dict() for t in self.trials], "storage": str(self.storage)}

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, **self.summary()}


def study_path(sweep_id: str, settings: Settings | None = None) -> Path:
    return (settings or Settings()).home_dir / "sweeps" / f"{sweep_id}.db"


def threads_per_trial(parallel: int, cpus: int | None = None) -> int:
    """Torch threads per trial so ``parallel`` trials together use the machine's cores once."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, parallel))


def _sampler(spec: SweepSpec) -> Any:
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({k: p.grid() for k, p in spec.space.items()}, seed=spec.seed)
    # few trials: start modelling after a handful of random ones (Optuna's default is 10)
    startup = max(2, min(10, spec.trials // 3))
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup)


def _pruner(spec: SweepSpec) -> Any:
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, spec.warmup_steps))
    return optuna.pruners.MedianPruner(n_startup_trials=min(2, spec.trials), n_warmup_steps=spec.warmup_steps)


def _suggest(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, p in spec.space.items():
        if p.type == "categorical":
            out[key] = trial.suggest_categorical(key, p.choices or [])
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            out[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            out[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return out


def _space_fingerprint(spec: SweepSpec) -> dict[str, Any]:
    return {"space": {k: p.model_dump(mode="json") for k, p in spec.space.items()},
            "objective": spec.objective.model_dump(mode="json"), "sampler": spec.sampler}


def _row(t: optuna.trial.FrozenTrial) -> TrialRow:
    from optuna.trial import TrialState

    states: dict[TrialState, Literal["complete", "pruned", "failed", "running"]] = {
        TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.RUNNING: "running",
    }
    state = states.get(t.state, "failed")
    dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
    steps = t.intermediate_values
    value = t.value if t.state == TrialState.COMPLETE else (steps[max(steps)] if steps else None)
    return TrialRow(number=t.number, params=dict(t.params), value=value, state=state,
                    run_id=t.user_attrs.get("run_id"), duration_s=dur, error=t.user_attrs.get("error"),
                    last_step=max(steps) if steps else None)


class _RemoteTrial:
    """Stands in for the Optuna trial inside a Ray task: keeps the reports and attributes for
    :func:`_replay` on the driver; never prunes (the study is not there to ask)."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []
        self.attrs: dict[str, Any] = {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((float(value), int(step)))

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value


@dataclass
class _RemoteTrials:
    """The Ray task body: run the objective for each ``(number, params)``; return what happened
    as plain data (value or error, reports, attributes)."""

    objective: Any
    sweep_id: str
    threads: int

    def __call__(self, batch: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        out = []
        for number, params in batch:
            t = _RemoteTrial()
            ctx = TrialContext(number=number, params=params, sweep_id=self.sweep_id, threads=self.threads,
                               trial=t)  # type: ignore[arg-type]  # the stand-in has the calls TrialContext makes
            res: dict[str, Any] = {"value": None, "pruned": False, "error": None}
            try:
                res["value"] = float(self.objective(ctx))
            except TrialPruned:
                res["pruned"] = True
            except Exception as e:
                res["error"] = e.message if isinstance(e, PodiumError) else f"{type(e).__name__}: {e}"
            res.update(reports=t.reports, attrs=t.attrs)
            out.append(res)
        return out


class _RemoteFailure(Exception):
    """A trial's objective failed on a Ray worker; the text is the worker's ``Type: message``."""


def _replay(trial: optuna.Trial, res: dict[str, Any]) -> float:
    """A trial that ran on Ray, into the study: its attributes and reports, then its outcome."""
    for k, v in res["attrs"].items():
        trial.set_user_attr(k, v)
    seen: set[int] = set()
    for value, step in res["reports"]:
        if math.isfinite(value) and step not in seen:
            seen.add(step)
            trial.report(value, step)
    if res["pruned"]:
        raise TrialPruned()
    if res["error"] is not None:
        raise _RemoteFailure(res["error"])
    return float(res["value"])


def run_sweep(
    spec: SweepSpec,
    objective: ObjectiveFn,
    *,
    sweep_id: str,
    resume: bool = False,
    settings: Settings | None = None,
    on_trial: Callable[[TrialRow], None] | None = None,
    executor: str | None = None,
    ray_address: str | None = None,
) -> SweepResult:
    """Run (or, with ``resume``, continue) the sweep's study until it has ``spec.trials``
    finished trials (complete, pruned or failed), ``spec.parallel`` at once.

    With ``executor="ray"`` (or ``executor: ray`` in the file) each trial is a Ray task on
    ``ray_address`` (default ``PODIUM_RAY_ADDRESS``, else a private local Ray): the objective is
    pickled to the worker, its ``ctx.report`` values are replayed into the study when the task
    returns, and ``ctx.should_prune()`` is False there (a trial on Ray runs to its end; the
    pruner still sees its curve for later trials). The study, its SQLite file and ``on_trial``
    stay in this process.

    A trial raising :class:`TrialPruned` is recorded as pruned; any other exception fails
    that trial only (its message kept in the table). On resume, trials left running by an
    interrupted sweep are marked failed and their parameters tried again first. Raises
    :class:`NotFound` when resuming an unknown sweep and :class:`Conflict` when the space,
    objective or sampler changed since it started. ``KeyboardInterrupt`` stops the sweep."""
    import optuna
    from optuna.trial import TrialState

    remote = None
    if (executor or spec.executor) == "ray":  # trials as Ray tasks; the study stays here (docs/ray.md)
        from podium.executor import get_executor

        remote = get_executor("ray", address=ray_address)
    path = study_path(sweep_id, settings)
    if resume and not path.exists():
        raise NotFound(f"no sweep {sweep_id!r} to resume: {path} does not exist (run it without --resume)")
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 30}})
    direction = spec.objective.direction or "minimize"
    study = optuna.create_study(study_name=sweep_id, storage=storage, sampler=_sampler(spec), pruner=_pruner(spec),
                                direction=direction, load_if_exists=resume)
    fingerprint = _space_fingerprint(spec)
    if resume:
        before = study.user_attrs.get("spec")
        if before is not None and before != fingerprint:
            raise Conflict(f"sweep {sweep_id}'s space, objective or sampler changed since it started; resume it "
                           "with the same file, or start a new sweep without --resume")
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_user_attr(t._trial_id, "error", _INTERRUPTED)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    else:
        study.set_user_attr("spec", fingerprint)
    trials = study.get_trials(deepcopy=False)
    interrupted = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get("error") == _INTERRUPTED]
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in interrupted:
        if t.number not in retried:  # an interrupted trial's parameters are tried again first
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number}, skip_if_exists=False)
    done = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    skip = {t.number for t in interrupted}
    finished = sum(1 for t in trials if t.state in done and t.number not in skip)
    threads = threads_per_trial(spec.parallel)
    lock = threading.Lock()
    remaining = max(0, spec.planned_trials - finished)

    def run_one(trial: optuna.Trial) -> float:
        params = _suggest(trial, spec)
        ctx = TrialContext(number=trial.number, params=params, sweep_id=sweep_id, threads=threads, trial=trial)
        try:
            if remote is not None:
                value = _replay(trial, remote.map(_RemoteTrials(objective, sweep_id, threads),
                                                  [(trial.number, params)], batch_size=1)[0])
            else:
                value = float(objective(ctx))
        except TrialPruned:
            raise optuna.TrialPruned() from None
        except KeyboardInterrupt:
            trial.set_user_attr("error", _INTERRUPTED)
            raise
        except Exception as e:
            trial.set_user_attr("error", (str(e) if isinstance(e, _RemoteFailure) else f"{type(e).__name__}: {e}")[:500])
            raise
        if not math.isfinite(value):
            trial.set_user_attr("error", f"the objective was {value}")
            raise ValueError(f"the objective was {value}")
        return value

    def callback(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            with lock:
                on_trial(_row(frozen))

    if remaining:
        started = time.monotonic()
        try:
            study.optimize(run_one, n_trials=remaining, n_jobs=spec.parallel, catch=(Exception,),
                           callbacks=[callback], gc_after_trial=False)
        finally:
            if remote is not None:
                remote.close()
        study.set_user_attr("last_run_s", round(time.monotonic() - started, 3))
    elif remote is not None:
        remote.close()
    return result_of(study, sweep_id=sweep_id, metric=spec.objective.metric, storage_path=path)


def result_of(study: optuna.Study, *, sweep_id: str, metric: str, storage_path: Path) -> SweepResult:
    """The results table of a study (every trial, in order) and its best complete trial."""
    from optuna.study import StudyDirection

    rows = [_row(t) for t in study.get_trials(deepcopy=False)]
    rows.sort(key=lambda r: r.number)
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    maximize = study.direction == StudyDirection.MAXIMIZE
    best = None
    if complete:
        best = (max if maximize else min)(complete, key=lambda r: r.value if r.value is not None else math.nan)
    return SweepResult(sweep_id=sweep_id, direction="maximize" if maximize else "minimize", metric=metric,
                       trials=rows, best=best, storage=storage_path)
