"""`podium tune sweep SWEEP.yaml [--resume SWEEP_ID] [--json]`: a hyperparameter sweep over a tune
recipe (docs/sweeps.md). The engine (Optuna study, sampler, pruner, parallel trials, resume) is
:mod:`podium.tune.sweep`; this module supplies its objective function and the server side:

- the sweep is a record on the server (``POST /api/v1/training-sweeps``), each trial a tracked
  training run (:class:`~podium.cli.run_tracker.RunTracker` with ``sweep_id`` and ``trial``);
- a trial trains with :func:`podium.tune.trainer.train`; each validation loss is reported to the
  trial, and the trainer stops (checkpoint saved, run finished ``pruned``) when the pruner says so;
- the objective is the final validation loss, or an eval suite run with the trial's adapter in
  this process (greedy generation with transformers; the suite's prompts, tests and scorers, its
  providers replaced by the trained model), recorded as an experiment on the server;
- at the end: a results table, the best trial, and the sweep PATCHed with ``best_run_id`` and
  its summary.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, cli_keys, console, err_console, experiments_client, print_json
from podium.config import Settings
from podium.errors import PodiumError

if TYPE_CHECKING:
    from podium.cli.run_tracker import RunTracker
    from podium.tune.recipe import TuneRecipe
    from podium.tune.sweep import SweepResult, SweepSpec, TrialContext, TrialRow
    from podium.tune.trainer import StepLog

__all__ = ["sweep_cmd"]

_API = "/api/v1/training-sweeps"


def _fail(msg: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]{msg}[/]")
    return typer.Exit(code)


# --- the suite objective ---------------------------------------------------------------------------------


class _Generator:
    """Greedy answers from the base model with a trial's LoRA adapter, in this process."""

    def __init__(self, base_dir: Path, adapter_dir: Path, max_tokens: int) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(adapter_dir if (adapter_dir / "tokenizer_config.json").exists()
                                                 else base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        self.model = PeftModel.from_pretrained(model, adapter_dir)
        self.model.eval()
        self.max_tokens = max_tokens
        self.lock = threading.Lock()

    def __call__(self, prompt: str, variables: Any = None) -> str:
        text = self.tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                            add_generation_prompt=True)
        enc = self.tok(text, return_tensors="pt")
        with self.lock, self.torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_tokens, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id)
        return str(self.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)).strip()


def _suite_score(suite_path: Path, metric: str, gen: _Generator, *, label: str,
                 meta: dict[str, Any]) -> tuple[float, list[str]]:
    """The suite's ``metric`` (mean over its prompts) with ``gen`` as the only provider; each
    prompt's run is recorded as an experiment. Returns (value, experiment ids)."""
    from podium.evals import analysis
    from podium.experiments.runner import HttpRecorder, RunConfig, Runner
    from podium.experiments.suite import ProviderSpec, Variant, build_task, load_suite

    s = Settings()
    suite = load_suite(suite_path)
    public_key, secret_key = cli_keys(s)
    base_url = s.base_url.rstrip("/")
    with experiments_client(base_url, public_key, secret_key) as sdk:
        ec = sdk.evals
        if suite.dataset:
            ref_name, _, ver = suite.dataset.partition("@")
            ds = ec.get_dataset(ref_name, version=int(ver) if ver.isdigit() else None)
            items, ds_name, ds_version = list(ds.items), ds.name, ds.version
        else:
            items = [t.item for t in suite.tests]
            info = ec.add_items(suite.dataset_name, [i.to_dict() for i in items], replace=True, create=True,
                                message=f"tests of suite {suite.name!r} ({suite_path.name})")
            ds_name, ds_version = suite.dataset_name, info["version"]
        cfg = {**suite.run_config(), "max_concurrency": 1}
        provider = ProviderSpec(id=label, type="python", raw={"function": f"{__name__}:_placeholder"})
        values: list[float] = []
        ids: list[str] = []
        for p in suite.prompts:
            name = f"{suite.name} · {label}" + (f" · {p.label}" if len(suite.prompts) > 1 else "")
            task = build_task(Variant(name, p, provider), suite, base_url=base_url, api_key=secret_key,
                              prompt_client=sdk.prompts)
            inner = getattr(task, "task", task)  # under a provider transform
            inner.fn = gen
            runner = Runner(task, [], config=RunConfig(**cfg), recorder=HttpRecorder(ec), client=sdk,
                            progress=False, name=name)
            res = runner.run(items, {"dataset_name": ds_name, "dataset_version": ds_version,
                                     "metadata": {**meta, "suite": suite.name, "suite_file": str(suite_path),
                                                  "prompt": p.label}},
                             item_scorers=suite.scorers_for, pass_thresholds=suite.pass_thresholds())
            v = analysis.metric_of(res.summary, metric, "mean")
            known = {*analysis.PSEUDO_METRICS, *(res.summary.get("scorers") or {})}
            if metric not in known:
                raise PodiumError(f"objective.metric {metric!r} is not in the suite's results; it has: "
                                  f"{', '.join(sorted(known))}")
            if v is None:
                raise PodiumError(f"{metric} has no value (every item errored?); see experiment {res.id}")
            values.append(float(v))
            ids.append(res.id)
        return sum(values) / len(values), ids


def _placeholder(prompt: str, variables: Any) -> str:  # replaced by the trial's generator
    raise RuntimeError("no model")


# --- one trial -------------------------------------------------------------------------------------------


class _Hooks:
    """The trainer's hooks for one trial: steps to the run, eval losses to the trial, pruning
    and cancellation to the trainer."""

    def __init__(self, tracker: RunTracker, ctx: TrialContext, threads: int | None,
                 gate: threading.Lock | None = None, *, report: bool = True) -> None:
        self.tracker = tracker
        self.ctx = ctx
        self.threads = threads
        self.gate = gate
        self.report = report
        self.last_eval: float | None = None
        self.pruned = False
        self.cancelled = False
        self.pending: list[dict[str, Any]] = []

    def release(self) -> None:
        """Training has started: let the next trial load its model."""
        if self.gate is not None:
            gate, self.gate = self.gate, None
            gate.release()

    def on_log(self, log: StepLog) -> None:
        self.release()
        self.pending.append(log.as_dict())
        if log.eval_loss is not None:
            self.last_eval = log.eval_loss
        if log.eval_loss is not None and self.report:
            self.ctx.report(log.eval_loss, log.step)
        if len(self.pending) >= 5 or log.eval_loss is not None:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            steps, self.pending = self.pending, []
            if self.tracker.log_steps(steps):
                self.cancelled = True

    def should_stop(self) -> bool:
        self.release()
        if self.threads is not None:  # parallel trials share the cores (the trainer sets them all)
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
        if self.cancelled:
            return True
        if self.ctx.should_prune():
            self.pruned = True
            return True
        return False


class _Objective:
    def __init__(self, spec: SweepSpec, recipe: TuneRecipe, train: list[dict[str, Any]],
                 val: list[dict[str, Any]], dataset: dict[str, Any] | None, sweep: dict[str, Any],
                 settings: Settings, base_label: str) -> None:
        self.spec, self.recipe, self.train, self.val = spec, recipe, train, val
        self.base_label = base_label
        self.dataset, self.sweep, self.settings = dataset, sweep, settings
        # Parallel trials share this process. Loading a model (transformers' empty-weights init
        # patches torch.nn globally) and adding LoRA layers must not overlap another trial's, so
        # each trial holds this lock from its start until its first training step; the steps overlap.
        self.setup = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # executor: ray pickles the objective to its workers
        return {k: v for k, v in self.__dict__.items() if k != "setup"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.setup = threading.Lock()

    def __call__(self, ctx: TrialContext) -> float:
        from podium.cli.run_tracker import RunTracker
        from podium.tune.base_model import ensure_base_model
        from podium.tune.sweep import TrialPruned
        from podium.tune.trainer import train

        recipe = self.recipe.with_params(ctx.params)
        name = f"{self.sweep.get('name') or self.sweep['id']} #{ctx.number}"
        tracker = RunTracker.start(recipe.method, self.base_label, recipe.flat_params(), name=name,
                                   dataset=self.dataset, data_path=recipe.data.path, sweep_id=self.sweep["id"],
                                   trial=ctx.number, tags=["sweep"])
        ctx.set_run(tracker.run_id)
        started = time.monotonic()
        try:
            base = Path(recipe.output_dir).expanduser() if recipe.output_dir else None
            out = (base / f"trial-{ctx.number}") if base else self.settings.home_dir / "runs" / tracker.run_id
            tracker.update(output_dir=str(out))
            parallel = self.spec.parallel > 1
            if parallel:
                self.setup.acquire()
            hooks = _Hooks(tracker, ctx, ctx.threads if parallel else None, self.setup if parallel else None,
                           report=self.spec.objective.metric == "eval_loss")
            try:
                res = train(recipe, self.train, self.val, output_dir=out, hooks=hooks, settings=self.settings)
            finally:
                hooks.release()
            hooks.flush()
            tracker.update(hardware=res.hardware)
            metrics: dict[str, Any] = {**res.metrics, "steps_per_s": res.steps_per_s,
                                       "peak_rss_mb": res.peak_rss_mb}
            artifacts = {"adapter": str(res.adapter_dir)}
            if hooks.pruned:
                if hooks.last_eval is not None:
                    metrics.setdefault("eval_loss", hooks.last_eval)
                tracker.finish("pruned", metrics=metrics, artifacts=artifacts, duration_s=res.duration_s)
                raise TrialPruned()
            if hooks.cancelled or res.status == "cancelled":
                tracker.finish("cancelled", metrics=metrics, artifacts=artifacts, duration_s=res.duration_s)
                raise RuntimeError(f"run {tracker.run_id} was cancelled")
            obj = self.spec.objective
            if obj.suite is None:
                value = res.metrics.get(obj.metric)
                if value is None:
                    raise PodiumError(f"the run has no {obj.metric} (metrics: {', '.join(res.metrics) or 'none'});"
                                      " the validation loss needs validation records (data.validation > 0)")
            else:
                suite_path = self.spec.suite_path()
                assert suite_path is not None
                with self.setup:
                    gen = _Generator(ensure_base_model(self.settings, recipe.base_model), res.adapter_dir,
                                     obj.max_tokens)
                meta = {"sweep_id": self.sweep["id"], "trial": ctx.number, "run_id": tracker.run_id}
                value, exps = _suite_score(suite_path, obj.metric, gen, label=f"{self.sweep['id']} #{ctx.number}",
                                           meta=meta)
                metrics[f"suite.{obj.metric}"] = value
                artifacts["experiments"] = ",".join(exps)
            metrics["objective"] = value
            tracker.finish("completed", metrics=metrics, artifacts=artifacts,
                           duration_s=round(time.monotonic() - started, 3))
            return float(value)
        except TrialPruned:
            raise
        except KeyboardInterrupt:
            tracker.finish("cancelled", error="the sweep was interrupted",
                           duration_s=round(time.monotonic() - started, 3))
            raise
        except Exception as e:
            if tracker.run.get("status") == "running":
                msg = e.message if isinstance(e, PodiumError) else f"{type(e).__name__}: {e}"
                tracker.finish("failed", error=msg, duration_s=round(time.monotonic() - started, 3))
            raise
        finally:
            tracker.close()


# --- output ----------------------------------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.4g}"


def _param(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _secs(v: float | None) -> str:
    return "-" if v is None else (f"{v:.0f}s" if v >= 10 else f"{v:.1f}s")


def _table(res: SweepResult) -> Table:
    """One row a trial (the best marked ``*``); parameters one a line, long values wrap, nothing is cut."""
    best = res.best.number if res.best else None
    table = Table(Column("#", justify="right", no_wrap=True), Column("state", no_wrap=True),
                  Column("value", justify="right", no_wrap=True), Column("params", overflow="fold"),
                  Column("run", overflow="fold"), Column("time", justify="right", no_wrap=True))
    for t in res.trials:
        params = "\n".join(f"{_short(k)}={_param(v)}" for k, v in t.params.items())
        table.add_row(f"{t.number}{'*' if t.number == best else ''}", t.state, _num(t.value), params,
                      t.run_id or "-", _secs(t.duration_s), style="bold" if t.number == best else None)
    return table


def _print(res: SweepResult, sweep: dict[str, Any], spec: SweepSpec) -> None:
    c = res.counts
    console.print(f"{sweep['id']}: {c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed "
                  f"({spec.objective.direction} {spec.objective.label})")
    console.print(_table(res))
    for t in res.trials:
        if t.state == "failed" and t.error:
            console.print(f"trial {t.number} failed: {t.error}")
    if res.best is None:
        console.print("no trial completed: nothing to pick")
        return
    b = res.best
    console.print(f"best: trial {b.number}*, {res.metric} {_num(b.value)}")
    for k, v in b.params.items():
        console.print(f"  {k}: {v}")
    console.print(f"best run: {b.run_id}")
    console.print(f"see it: podium tune runs show {b.run_id}")


# --- the command -----------------------------------------------------------------------------------------


def sweep_cmd(
    sweep_file: Path = typer.Argument(..., help="The sweep YAML (recipe, space, trials, objective; "
                                      "docs/sweeps.md)."),
    resume: str = typer.Option(None, "--resume", metavar="SWEEP_ID", help="Continue this sweep's study."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    executor: str = typer.Option(None, "--executor",
                                 help="local (trials on threads here) or ray (each trial a Ray task on "
                                 "PODIUM_RAY_ADDRESS; docs/ray.md). Default: the file's executor."),
) -> None:
    """Search a recipe's hyperparameters with Optuna; every trial is a tracked training run."""
    from podium.tune.extra import require_tune_extra
    from podium.tune.sweep import SweepError, load_sweep, run_sweep
    try:
        spec = load_sweep(sweep_file)
        if executor is not None:
            if executor not in ("local", "ray"):
                raise SweepError(f"--executor {executor}: use local or ray")
            spec = spec.model_copy(update={"executor": executor})
        if spec.executor == "ray":  # trials as Ray tasks (docs/ray.md): check Ray is there before anything runs
            from podium.executor import ray_missing

            if problem := ray_missing():
                raise SweepError(problem)
        recipe = spec.load_recipe()
        suite_path = spec.suite_path()
        if suite_path is not None:
            from podium.experiments.suite import SuiteError, load_suite

            try:
                load_suite(suite_path)
            except SuiteError as e:
                raise SweepError(f"objective.suite: {e.message}") from e
    except SweepError as e:
        raise _fail(e.message)
    try:
        require_tune_extra("podium tune sweep", ("optuna", "torch", "transformers", "peft", "trl", "datasets"))
    except PodiumError as e:
        raise _fail(e.message)
    settings = Settings()
    from podium.cli.commands.tune import _base_model, load_records  # tune.py registers this command

    train_records, val_records, dataset = load_records(recipe)
    base_path, base_label = _base_model(recipe.base_model)
    if base_path != recipe.base_model:  # registry:/NAME@ALIAS of merged weights: its folder
        recipe = recipe.with_params({"base_model": base_path})
    if (spec.pruner != "none" and spec.objective.metric == "eval_loss" and recipe.training.eval_steps is None
            and "training.eval_steps" not in spec.space and val_records):
        # the pruner decides on intermediate validation losses: evaluate about four times per trial
        from podium.tune.trainer import planned_steps

        every = max(1, planned_steps(recipe, len(train_records)) // 4)
        recipe = recipe.with_params({"training.eval_steps": every})
        if not as_json:
            err_console.print(f"training.eval_steps is not set: evaluating every {every} steps so the "
                              f"{spec.pruner} pruner can stop bad trials early")
    if spec.objective.suite is None and not val_records:
        raise _fail("the objective is the validation loss, but the data has no validation records: set "
                    "data.validation (e.g. 0.1) in the recipe or give the records a split")

    before = "failed"
    if resume:
        sweep = api_call("GET", f"{_API}/{quote(resume, safe='')}")
        before = sweep["status"]
        sweep = api_call("PATCH", f"{_API}/{sweep['id']}", json={"status": "running"})
    else:
        name = spec.name or (recipe.name and f"{recipe.name} sweep") or sweep_file.stem
        sweep = api_call("POST", _API, json={
            "name": name, "space": {k: p.model_dump(mode="json", exclude_none=True) for k, p in spec.space.items()},
            "objective": spec.objective.model_dump(mode="json", exclude_none=True), "settings": spec.summary()})
    if not as_json:
        console.print(f"{sweep['id']}: {spec.planned_trials} trials, {spec.parallel} at a time, "
                      f"{spec.sampler} sampler, {spec.pruner} pruner")

    live = {int(t["number"]): t for t in (sweep.get("summary") or {}).get("trials") or []
            if isinstance(t, dict) and isinstance(t.get("number"), int)}

    def on_trial(row: TrialRow) -> None:
        live[row.number] = row.to_dict()
        try:  # the UI shows the trials as they finish; a failed update only delays that
            api_call("PATCH", f"{_API}/{sweep['id']}", json={"summary": {"trials": [live[n] for n in sorted(live)]}})
        except (typer.Exit, PodiumError):
            pass
        if not as_json:
            value = f"{spec.objective.metric} {_num(row.value)}" if row.value is not None else ""
            console.print(f"trial {row.number} {row.state} {value} run {row.run_id or '-'}".replace("  ", " "))

    objective = _Objective(spec, recipe, train_records, val_records, dataset, sweep, settings, base_label)
    try:
        with warnings.catch_warnings():
            # the trainer silences library FutureWarnings with catch_warnings, which is not thread-safe:
            # with parallel trials one trial's exit would restore the filters under another's feet
            warnings.simplefilter("ignore", FutureWarning)
            res = run_sweep(spec, objective, sweep_id=sweep["id"], resume=bool(resume), settings=settings,
                            on_trial=on_trial)
    except KeyboardInterrupt:
        api_call("PATCH", f"{_API}/{sweep['id']}", json={"status": "cancelled"})
        err_console.print(f"[yellow]interrupted[/]: resume with: podium tune sweep {sweep_file} --resume "
                          f"{sweep['id']}")
        raise typer.Exit(130)
    except PodiumError as e:  # before any trial: a resume that does not fit the study
        api_call("PATCH", f"{_API}/{sweep['id']}", json={"status": before if resume else "failed"})
        raise _fail(e.message, 1)
    body: dict[str, Any] = {"status": "completed" if res.best else "failed", "summary": res.summary()}
    if res.best and res.best.run_id:
        body["best_run_id"] = res.best.run_id
    sweep = api_call("PATCH", f"{_API}/{sweep['id']}", json=body)
    if as_json:
        print_json({"sweep": sweep, **res.to_dict()})
    else:
        _print(res, sweep, spec)
    if res.best is None:
        raise typer.Exit(1)
