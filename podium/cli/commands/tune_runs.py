"""`podium tune runs list|show|cancel|compare` and `podium tune sweeps list|show`: tracked
fine-tuning runs and hyperparameter sweeps on a running server, through the REST API
(docs/training-runs.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, console, err_console, print_json

__all__ = ["runs_app", "sweeps_app"]

runs_app = typer.Typer(help="Tracked fine-tuning runs: list, show, cancel, compare.", no_args_is_help=True)
sweeps_app = typer.Typer(help="Hyperparameter sweeps and their trials.", no_args_is_help=True)

_RUNS = "/api/v1/training-runs"
_SWEEPS = "/api/v1/training-sweeps"


def _when(v: Any) -> str:
    return str(v)[:16].replace("T", " ") if v else "-"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _dur(v: Any) -> str:
    if v is None:
        return "-"
    s = float(v)
    return f"{s:.1f}s" if s < 120 else f"{int(s // 60)}m{int(s % 60):02d}s"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _status(r: dict[str, Any]) -> str:
    return r["status"] + (" (cancelling)" if r.get("cancel_requested") and r["status"] == "running" else "")


def _kv(title: str, d: dict[str, Any]) -> None:
    if not d:
        return
    console.print(f"[bold]{title}[/]")
    for k, v in sorted(_flat(d).items()):
        console.print(f"  {k}: {_num(v)}")


@runs_app.command("list")
def runs_list(
    method: str = typer.Option(None, "--method", help="sft | dpo | kto"),
    status: str = typer.Option(None, "--status", help="running | completed | failed | cancelled | pruned"),
    sweep: str = typer.Option(None, "--sweep", help="Only this sweep's trials."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Training runs, newest first (a sweep's: by trial)."""
    params = {k: v for k, v in {"method": method, "status": status, "sweep_id": sweep, "limit": limit}.items() if v}
    data = api_call("GET", _RUNS, params=params)["data"]
    if as_json:
        print_json(data)
        return
    if not data:
        console.print("no training runs yet: start one with `podium tune sft RECIPE.yaml`")
        return
    table = Table(Column("run", no_wrap=True), "name", "method", Column("status", no_wrap=True),
                  Column("steps", justify="right"), Column("loss", justify="right"),
                  Column("started", no_wrap=True))
    for r in data:
        loss = r["metrics"].get("eval_loss", r["metrics"].get("train_loss"))
        table.add_row(r["id"], r["name"] or "-", r["method"], _status(r), _num(r["last_step"]), _num(loss),
                      _when(r["started_at"])[5:])
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, steps: bool = typer.Option(False, "--steps", help="Print every logged step."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A run: parameters, metrics, hardware, artifacts (and its steps with --steps)."""
    r = api_call("GET", f"{_RUNS}/{quote(run_id, safe='')}", params={"steps": "true"})
    if as_json:
        print_json(r if steps else {k: v for k, v in r.items() if k != "steps"})
        return
    console.print(f"[bold]{r['name'] or r['id']}[/]  {r['method']}  {_status(r)}")
    console.print(f"  id: {r['id']}")
    console.print(f"  base model: {r['base_model']}")
    if r["dataset"]:
        console.print(f"  dataset: {r['dataset']['name']}@{r['dataset'].get('version') or 'latest'}")
    elif r["data_path"]:
        console.print(f"  data: {r['data_path']}")
    if r["sweep_id"]:
        console.print(f"  sweep: {r['sweep_id']} trial {_num(r['trial'])}")
    console.print(f"  steps: {_num(r['last_step'])}  duration: {_dur(r['duration_s'])}  "
                  f"started: {_when(r['started_at'])}  ended: {_when(r['ended_at'])}")
    if r["output_dir"]:
        console.print(f"  output: {r['output_dir']}")
    if r["error"]:
        console.print(f"  [red]error:[/] {r['error']}")
    _kv("metrics", r["metrics"])
    _kv("parameters", r["params"])
    _kv("hardware", r["hardware"])
    _kv("artifacts", r["artifacts"])
    rows = r.get("steps") or []
    if steps and rows:
        table = Table(Column("step", justify="right"), Column("loss", justify="right"),
                      Column("lr", justify="right"), Column("eval loss", justify="right"),
                      Column("grad norm", justify="right"), Column("epoch", justify="right"))
        for s in rows:
            table.add_row(str(s["step"]), _num(s.get("loss")), _num(s.get("learning_rate")),
                          _num(s.get("eval_loss")), _num(s.get("grad_norm")), _num(s.get("epoch")))
        console.print(table)
    elif rows:
        last = rows[-1]
        console.print(f"last step {last['step']}: loss {_num(last.get('loss'))}, "
                      f"lr {_num(last.get('learning_rate'))} (--steps prints them all)")


@runs_app.command("cancel")
def runs_cancel(run_id: str) -> None:
    """Ask a running run to stop: it saves a checkpoint and ends cancelled (resume it later)."""
    r = api_call("POST", f"{_RUNS}/{quote(run_id, safe='')}/cancel")
    console.print(f"cancel requested for {r['id']}: the trainer stops at its next step report")


@runs_app.command("compare")
def runs_compare(run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
                 show_all: bool = typer.Option(False, "--all", help="Every parameter, not only those that differ."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Runs side by side: metrics, and the parameters that differ."""
    if len(run_ids) < 2:
        err_console.print("[red]name two or more runs:[/] podium tune runs compare RUN_A RUN_B")
        raise typer.Exit(2)
    runs = [api_call("GET", f"{_RUNS}/{quote(i, safe='')}") for i in run_ids]
    params = [_flat(r["params"]) for r in runs]
    keys = sorted({k for p in params for k in p})
    differs = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in params}) > 1]
    metric_keys = sorted({k for r in runs for k in r["metrics"]})
    if as_json:
        print_json({"runs": [r["id"] for r in runs],
                    "metrics": {k: [r["metrics"].get(k) for r in runs] for k in metric_keys},
                    "params": {k: [p.get(k) for p in params] for k in keys}, "differ": differs})
        return
    table = Table("", *(Column(r["name"] or r["id"], justify="right") for r in runs))
    table.add_row("run", *(r["id"] for r in runs))
    table.add_row("status", *(r["status"] for r in runs))
    table.add_row("steps", *(_num(r["last_step"]) for r in runs))
    table.add_row("duration", *(_dur(r["duration_s"]) for r in runs))
    for k in metric_keys:
        table.add_row(k, *(_num(r["metrics"].get(k)) for r in runs))
    for k in keys if show_all else differs:
        table.add_row(f"{k} *" if k in differs else k, *(_num(p.get(k)) for p in params))
    console.print(table)
    same = len(keys) - len(differs)
    console.print(f"* differs; {same} parameter{'s' if same != 1 else ''} equal" + ("" if show_all else " (--all)"))


@sweeps_app.command("list")
def sweeps_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Sweeps, newest first, with their best run."""
    data = api_call("GET", _SWEEPS)["data"]
    if as_json:
        print_json(data)
        return
    if not data:
        console.print("no sweeps yet: `podium tune sweep SWEEP.yaml` searches hyperparameters")
        return
    table = Table(Column("sweep", no_wrap=True), "name", "status", Column("trials", justify="right"),
                  Column("best", justify="right"), Column("started", no_wrap=True))
    for s in data:
        best = s["summary"].get("best")
        value = best.get("value") if isinstance(best, dict) else s["summary"].get("best_value")
        table.add_row(s["id"], s["name"] or "-", s["status"], str(s["trials"]), _num(value), _when(s["created_at"]))
    console.print(table)


@sweeps_app.command("show")
def sweeps_show(sweep_id: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A sweep's trials with their searched parameters and objective; the best one marked."""
    s = api_call("GET", f"{_SWEEPS}/{quote(sweep_id, safe='')}")
    if as_json:
        print_json(s)
        return
    obj = s["objective"] or {}
    metric = str(obj.get("metric") or "eval_loss")
    console.print(f"[bold]{s['name'] or s['id']}[/]  {s['status']}  {obj.get('direction', 'minimize')} {metric}")
    console.print(f"  id: {s['id']}")
    runs = s.get("runs") or []
    if not runs:
        console.print("no trials yet")
        return
    params = [_flat(r["params"]) for r in runs]
    keys = [k for k in s["space"] if any(k in p for p in params)] or sorted(
        k for k in {k for p in params for k in p} if len({json.dumps(p.get(k), sort_keys=True) for p in params}) > 1)
    values = {str(t["run_id"]): t.get("value") for t in s["summary"].get("trials") or []
              if isinstance(t, dict) and t.get("run_id")}
    table = Table(Column("#", justify="right"), Column("run", no_wrap=True), "status",
                  *(Column(k, justify="right") for k in keys), Column(metric, justify="right"))
    for r, p in zip(runs, params, strict=True):
        best = " best" if r["id"] == s["best_run_id"] else ""
        table.add_row(_num(r["trial"]), r["id"] + best, r["status"], *(_num(p.get(k)) for k in keys),
                      _num(values.get(r["id"], r["metrics"].get(metric))))
    console.print(table)
    if s["best_run_id"]:
        console.print(f"best: {s['best_run_id']}")
