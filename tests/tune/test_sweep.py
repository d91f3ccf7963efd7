"""The sweep engine (podium.tune.sweep) with cheap objective functions: Optuna's samplers,
pruning, parallel trials, resume, and the sweep file's validation. No torch here; the real
trainer through the CLI is in test_sweep_cli.py."""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from podium.errors import ConfigurationError, Conflict, NotFound
from podium.tune.sweep import (
    SweepError,
    SweepSpec,
    TrialContext,
    TrialPruned,
    load_sweep,
    parse_sweep,
    run_sweep,
    study_path,
    threads_per_trial,
)

RECIPE = {"method": "sft", "data": {"path": "train.jsonl"}}


def spec(**kw: Any) -> SweepSpec:
    base: dict[str, Any] = {"recipe": RECIPE, "space": {
        "training.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "lora.r": {"type": "int", "low": 2, "high": 32},
    }, "trials": 8, "pruner": "none"}
    return parse_sweep({**base, **kw})


def bowl(params: dict[str, Any]) -> float:
    """Lowest at learning_rate 1e-3, r 16."""
    return (math.log10(params["training.learning_rate"]) + 3.0) ** 2 + ((params["lora.r"] - 16) / 8) ** 2


def curve(ctx: TrialContext, steps: int = 5) -> float:
    """A loss curve that ends at bowl(params): reports each step, stops when pruned."""
    final = bowl(ctx.params)
    for step in range(1, steps + 1):
        ctx.report(final + 1.0 / step, step)
        if ctx.should_prune():
            raise TrialPruned()
    return final


def test_tpe_finds_the_optimum_region() -> None:
    s = spec(trials=24, sampler="tpe", seed=1)
    res = run_sweep(s, curve, sweep_id="tpe")
    assert len(res.trials) == 24 and res.counts == {"complete": 24, "pruned": 0, "failed": 0}
    assert res.best is not None and res.best.value == min(t.value for t in res.trials if t.value is not None)
    assert abs(math.log10(res.best.params["training.learning_rate"]) + 3) < 0.5
    assert abs(res.best.params["lora.r"] - 16) <= 6
    # the model-guided half does better than the random start
    first, last = res.trials[:8], res.trials[-8:]
    assert sorted(t.value or 0 for t in last)[4] < sorted(t.value or 0 for t in first)[4]
    assert res.storage == study_path("tpe") and res.storage.exists()


def test_median_pruner_stops_bad_trials() -> None:
    s = spec(trials=14, sampler="random", pruner="median", warmup_steps=1, seed=3)
    res = run_sweep(s, curve, sweep_id="prune")
    pruned = [t for t in res.trials if t.state == "pruned"]
    assert pruned, [t.state for t in res.trials]
    assert all(t.last_step is not None and t.last_step < 5 and t.value is not None for t in pruned)
    assert res.best is not None and res.best.state == "complete"
    assert res.counts["complete"] + res.counts["pruned"] == 14


def test_parallel_trials_run_at_once() -> None:
    active, peak, lock = [0], [0], threading.Lock()

    def slow(ctx: TrialContext) -> float:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        assert ctx.threads == threads_per_trial(2)
        time.sleep(0.25)
        with lock:
            active[0] -= 1
        return bowl(ctx.params)

    res = run_sweep(spec(trials=4, parallel=2, sampler="random"), slow, sweep_id="par")
    assert peak[0] == 2 and res.counts["complete"] == 4  # two at a time, not one after another
    assert threads_per_trial(2, cpus=16) == 8 and threads_per_trial(4, cpus=2) == 1


def test_failed_trials_are_kept_with_their_error() -> None:
    def flaky(ctx: TrialContext) -> float:
        if ctx.number == 1:
            raise RuntimeError("out of memory")
        ctx.set_run(f"run-{ctx.number}")
        return bowl(ctx.params)

    seen: list[int] = []
    res = run_sweep(spec(trials=3, sampler="random"), flaky, sweep_id="flaky", on_trial=lambda r: seen.append(r.number))
    assert sorted(seen) == [0, 1, 2]
    failed = res.trials[1]
    assert failed.state == "failed" and failed.error == "RuntimeError: out of memory" and failed.run_id is None
    assert [t.run_id for t in res.trials] == ["run-0", None, "run-2"]
    assert res.best is not None and res.best.run_id in ("run-0", "run-2")


def test_resume_continues_the_study(podium_home: Path) -> None:
    first = run_sweep(spec(trials=3, sampler="random"), curve, sweep_id="res")
    again = run_sweep(spec(trials=5, sampler="random"), curve, sweep_id="res", resume=True)
    assert [t.number for t in again.trials] == [0, 1, 2, 3, 4]
    assert [t.params for t in again.trials[:3]] == [t.params for t in first.trials]
    # nothing left to do: no new trials
    assert len(run_sweep(spec(trials=5, sampler="random"), curve, sweep_id="res", resume=True).trials) == 5

    with pytest.raises(NotFound, match="no sweep 'nope' to resume"):
        run_sweep(spec(), curve, sweep_id="nope", resume=True)
    changed = spec(trials=6, sampler="random", space={"lora.r": {"type": "int", "low": 2, "high": 4}})
    with pytest.raises(Conflict, match="changed since it started"):
        run_sweep(changed, curve, sweep_id="res", resume=True)


def test_an_interrupted_trial_is_tried_again_on_resume() -> None:
    def stop_at_1(ctx: TrialContext) -> float:
        if ctx.number == 1:
            raise KeyboardInterrupt
        return bowl(ctx.params)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec(trials=3, sampler="random"), stop_at_1, sweep_id="int")
    res = run_sweep(spec(trials=3, sampler="random"), curve, sweep_id="int", resume=True)
    states = [t.state for t in res.trials]
    assert states == ["complete", "failed", "complete", "complete"]
    assert res.trials[1].error is not None and res.trials[1].error.startswith("interrupted")
    assert res.trials[2].params == res.trials[1].params  # the interrupted parameters first


def test_grid_sampler_covers_the_grid() -> None:
    s = spec(trials=100, sampler="grid", space={
        "lora.r": {"type": "categorical", "choices": [4, 8, 16]},
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-4, "step": 1e-4},
    })
    assert s.grid_size == 9 and s.planned_trials == 9
    res = run_sweep(s, curve, sweep_id="grid")
    got = {(t.params["lora.r"], round(t.params["training.learning_rate"], 6)) for t in res.trials}
    assert got == set(itertools.product([4, 8, 16], [1e-4, 2e-4, 3e-4])) and len(res.trials) == 9


def test_maximize_objective_and_summary() -> None:
    s = spec(trials=4, sampler="random", objective={"suite": "qa.yaml", "metric": "pass_rate"})
    assert s.objective.direction == "maximize"
    res = run_sweep(s, lambda ctx: -bowl(ctx.params), sweep_id="max")
    assert res.best is not None and res.best.value == max(t.value or -1e9 for t in res.trials)
    summary = res.summary()
    assert summary["direction"] == "maximize" and summary["metric"] == "pass_rate"
    assert summary["best"]["number"] == res.best.number and len(summary["trials"]) == 4


@pytest.mark.parametrize(("body", "message"), [
    ({"space": {}}, "(top level): the space is empty: add a dotted recipe path"),
    ({"spaces": {}}, "spaces: Extra inputs are not permitted"),
    ({"space": {"lr": {"type": "float", "low": 0, "high": 1}}}, "'lr' is not a dotted recipe path"),
    ({"space": {"training.learning_rate": {"type": "float", "low": 1}}}, "needs `low` and `high`"),
    ({"space": {"training.learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}}}, "log: true needs"),
    ({"space": {"training.learning_rate": {"type": "float", "low": 2, "high": 1}}}, "low (2) is above high (1)"),
    ({"space": {"lora.r": {"type": "categorical"}}}, "non-empty `choices"),
    ({"space": {"lora.r": {"type": "int", "low": 1, "high": 8, "choices": [1]}}}, "use type: categorical"),
    ({"space": {"lora.r": {"type": "bool"}}}, "space.lora.r.type: Input should be 'float', 'int' or 'categorical'"),
    ({"sampler": "grid", "space": {"training.learning_rate": {"type": "float", "low": 0.1, "high": 1}}},
     "space.training.learning_rate: sampler: grid needs a `step`"),
    ({"objective": {"metric": "pass_rate"}}, "metric 'pass_rate' needs a `suite:`"),
    ({"trials": 0}, "trials: Input should be greater than or equal to 1"),
])
def test_bad_sweep_files_say_what_to_fix(body: dict[str, Any], message: str) -> None:
    data = {"recipe": RECIPE, "space": {"lora.r": {"type": "int", "low": 2, "high": 8}}, **body}
    with pytest.raises(SweepError) as e:
        parse_sweep(data, where="sweep.yaml")
    assert e.value.message.startswith("sweep.yaml: ") and message in e.value.message, e.value.message


def test_load_sweep_reads_yaml_and_resolves_paths(tmp_path: Path) -> None:
    f = tmp_path / "sweep.yaml"
    f.write_text("recipe: sft.yaml\nspace:\n  lora.r: {type: categorical, choices: [4, 8]}\n"
                 "objective: {suite: evals/qa.yaml, metric: exact-match}\n")
    s = load_sweep(f)
    assert s.recipe_path() == tmp_path / "sft.yaml" and s.suite_path() == tmp_path / "evals" / "qa.yaml"
    assert s.objective.direction == "maximize" and s.trials == 10 and s.parallel == 1
    f.write_text("recipe: [unclosed\n")
    with pytest.raises(SweepError, match="not valid YAML"):
        load_sweep(f)
    with pytest.raises(SweepError, match="cannot read it"):
        load_sweep(tmp_path / "missing.yaml")
    with pytest.raises(SweepError, match="expected a mapping"):
        parse_sweep(["a"])


def test_ray_executor_without_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # executor: ray runs the trials as Ray tasks (tests/scale/test_ray_executor.py); without Ray installed:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigurationError) as e:
        run_sweep(spec(executor="ray"), curve, sweep_id="ray")
    assert "pip install 'podium[ray]'" in e.value.message


@pytest.mark.parametrize(("sweep", "message"), [
    ({"space": {"lora.rank": {"type": "int", "low": 2, "high": 8}}},
     "space.lora.rank = 2: recipe has no parameter 'lora.rank'"),
    ({"space": {"lora.r": {"type": "int", "low": 2, "high": 5000}}}, "space.lora.r = 5000: "),
    ({"recipe": "missing.yaml"}, "recipe: cannot read recipe"),
    ({"recipe": {"method": "sft"}}, "recipe: the inline recipe is not a valid recipe: data: Field required"),
    ({"objective": {"suite": "nope.yaml", "metric": "pass_rate"}}, "objective.suite: "),
])
def test_the_cli_checks_the_sweep_before_anything_runs(tmp_path: Path, sweep: dict[str, Any], message: str) -> None:
    import yaml
    from typer.testing import CliRunner

    from podium.cli.main import app

    (tmp_path / "train.jsonl").write_text("")
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump({"recipe": RECIPE, "space": {"lora.r": {"type": "int", "low": 2, "high": 8}},
                                 **sweep}))
    r = CliRunner().invoke(app, ["tune", "sweep", str(f)], env={"COLUMNS": "200"})
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.output.split()), r.output
