"""`podium eval sweep SUITE.yaml --space SPACE.yaml`: run a suite once per configuration of a space
(models, prompts, parameters, system prompts, few-shot counts, context sizes), record the sweep on the
server (``run_sweep(record=True)``: ``/api/v1/eval-sweeps``, created first, each trial posted as it ends,
the status, spend and summary patched at the end) and print the trials with the Pareto front marked.

The engine is :mod:`podium.experiments.sweep`; the HTML report :mod:`podium.experiments.sweep_report`.
When the server cannot record the sweep (an older server, no write role), the sweep still runs to
the end and says it was not recorded; its trials are experiments either way. Exit 0 when the sweep
completed or stopped at its budget, 1 when every trial failed, 2 on a configuration error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column, Table

from podium.cli._common import console, err_console, experiments_client, on_server, print_json
from podium.config import Settings
from podium.errors import ConfigurationError, PodiumError

if TYPE_CHECKING:
    from podium.experiments.sweep import SweepResult

__all__ = ["print_trials", "sweep_cmd"]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _warn_unrecorded(problem: str) -> None:
    err_console.print(f"[yellow]warning:[/] the server could not record the sweep ({problem}); "
                      "it runs to the end here and its trials are still experiments")


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{float(v):.{digits}f}"


def print_trials(result: SweepResult) -> None:
    """The trials as a table (front marked ★, dominated and stopped ones dim) and where the front is."""
    table = Table(Column("#", justify="right"), Column("configuration", overflow="fold", ratio=1),
                  Column("status"), Column("score", justify="right"), Column("$/1k", justify="right"),
                  Column("p95 ms", justify="right"), title=f"{result.suite}: {result.space.method} sweep",
                  title_justify="left", expand=False)
    for t in result.trials:
        m = t.metrics
        status = "★ front" if t.front else t.status if t.status != "complete" else "dominated"
        table.add_row(str(t.number), t.config.label(), status, _num(m.get("score_mean")),
                      _num(m.get("cost_per_1k"), 4), _num(m.get("p95_ms"), 0),
                      style=None if t.front else "dim")
    console.print(table)
    s = result.summary
    front = sorted(result.front, key=lambda t: t.objectives[1])
    if front:
        best = max(front, key=lambda t: t.objectives[0])
        console.print(f"front: {', '.join('#' + str(t.number) for t in front)} · cheapest #{front[0].number} "
                      f"(score {_num(front[0].objectives[0])}, ${_num(front[0].objectives[1], 4)} per 1k) · "
                      f"best score #{best.number} ({_num(best.objectives[0])}, ${_num(best.objectives[1], 4)} "
                      "per 1k)", soft_wrap=False)
    console.print(f"[dim]{s.get('trials', 0)} trials ({s.get('complete', 0)} complete, {s.get('stopped', 0)} "
                  f"stopped early, {s.get('failed', 0)} failed) of {s.get('grid_size')} configurations · spent "
                  f"${result.spent_usd:.4f} · {result.duration_s:.1f} s · run {result.run_group}[/]", soft_wrap=False)
    if s.get("reason"):
        console.print(f"[yellow]{result.status}[/]: {s['reason']}", soft_wrap=False)


def sweep_cmd(
    suite_path: Path = typer.Argument(..., help="The suite YAML (prompts, providers, tests or dataset, scorers)."),
    space_path: Path = typer.Option(..., "--space", help="The space YAML: models, prompts, params, system, "
                                                         "few_shot, search, budget_usd (docs/sweeps-eval.md)."),
    search: str = typer.Option(None, "--search", help="grid (every configuration) or optuna (multi-objective "
                                                      "search with early stopping); overrides the space's."),
    trials: int = typer.Option(None, "--trials", min=1, help="At most this many configurations."),
    budget: float = typer.Option(None, "--budget", min=0.0, help="Stop before a trial would take the spend over "
                                                                 "this many USD."),
    seed: int = typer.Option(None, "--seed", help="The search's seed (overrides the space's)."),
    report: Path = typer.Option(None, "--report", help="Write the HTML report (scatter and front table) here."),
    name: str = typer.Option(None, "--name", help="The sweep's name (default: the suite's)."),
    local: bool = typer.Option(False, "--local", help="Run against an embedded server on this machine's store."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    executor: str = typer.Option(None, "--executor", help="local (threads here) or ray (every trial's items as "
                                 "Ray tasks on PODIUM_RAY_ADDRESS; docs/ray.md). Default: PODIUM_EXECUTOR."),
    record_into: str = typer.Option(None, "--record-into", hidden=True,
                                    help="Record into this existing sweep (the server's sweeps started from the UI)."),
) -> None:
    """Sweep models, prompts and parameters over an eval suite and print the cost/quality Pareto front."""
    try:
        from podium.experiments.suite import SuiteError, load_suite
        from podium.experiments.sweep import load_space, run_sweep
        from podium.experiments.sweep_report import write_sweep_report
    except ImportError as e:
        raise _fail(f"sweeps need the eval extra ({e.name} is missing): pip install 'podium[eval,server]'")
    if search is not None and search not in ("grid", "optuna"):
        raise _fail(f"--search {search}: use grid or optuna")
    try:
        suite = load_suite(suite_path)
        space = load_space(space_path)
    except SuiteError as e:
        raise _fail(e.message)
    except ConfigurationError as e:
        raise _fail(e.message)
    settings = Settings()

    def go(base_url: str, public: str | None, secret: str | None) -> SweepResult:
        if not secret:
            raise _fail("no API key: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY (`make up` prints them), or use "
                        "--local")
        with experiments_client(base_url, public, secret) as sdk:
            try:
                sdk.evals.request("GET", "/datasets", params={"limit": 1}, retries=1)
            except PodiumError as e:
                raise _fail(e.message)
            return run_sweep(suite, space, sdk=sdk, base_url=base_url, api_key=secret, method=search,
                             trials=trials, budget_usd=budget, seed=seed, record=True, name=name,
                             sweep_id=record_into, on_problem=_warn_unrecorded, executor=executor)

    result = on_server(settings, go, local=local, fail=_fail)
    if report is not None:
        write_sweep_report(result, report)
        err_console.print(f"wrote the sweep report {report}")
    if as_json:
        print_json({**result.to_dict(), "recorded": result.sweep_id is not None})
    else:
        print_trials(result)
        if result.sweep_id:
            console.print(f"sweep {result.sweep_id}: podium eval sweeps show {result.sweep_id}")
        else:
            console.print("[yellow]not recorded on the server[/]: the trials are experiments (run "
                          f"{result.run_group})", soft_wrap=False)
    raise typer.Exit(1 if result.status == "failed" else 0)
