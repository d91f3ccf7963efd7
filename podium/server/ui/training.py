"""Fine-tuning runs in the web UI: the runs list with filters by method, status and sweep
(``/training``, tick runs to compare them); a run's parameters, metrics, hardware, artifacts and
its loss and learning-rate charts with *Cancel* while it runs (``/training/{id}``); runs side by
side, parameters that differ highlighted, loss curves overlaid (``/training/compare?ids=a,b``);
sweeps (``/training/sweeps``) and a sweep's trials with the best one marked
(``/training/sweeps/{id}``). Reads and the cancel go through the same
:class:`~podium.store.repos.training.TrainingRepo` as the API (docs/training-runs.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _get, _mark_ui, _st, _viewer, page
from podium.store.repos.training import METHODS, RUN_STATUSES, TrainingRepo

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

#: Runs side by side at most (and points per chart series, thinned evenly past it).
MAX_COMPARE = 8
MAX_POINTS = 2000
STALE_S = 600


def _repo(request: Request) -> TrainingRepo:
    return _st(request).store.training


def _ui(e: PodiumError) -> UiError:
    return UiError(e.status_code, "Not found" if e.status_code == 404 else "Not done", e.message)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"learning_rate": 2e-4}}`` -> ``{"training.learning_rate": 2e-4}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def shown(v: Any) -> str:
    """A parameter or metric value as text (numbers short, lists and dicts as JSON)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return str(v)


def searched(space: dict[str, Any], params: list[dict[str, Any]]) -> list[str]:
    """The parameters a sweep searched: its space's keys (dotted recipe paths) that its trials
    carry, else the parameters that differ between trials."""
    keys = [k for k in space if any(k in p for p in params)]
    if keys:
        return keys
    return sorted(k for k in {k for p in params for k in p}
                  if len({json.dumps(p.get(k), sort_keys=True, default=str) for p in params}) > 1)


def trial_values(summary: dict[str, Any]) -> dict[str, Any]:
    """Each trial's objective value by run id, from the sweep's summary (``trials: [{run_id, value}]``)."""
    out: dict[str, Any] = {}
    for t in summary.get("trials") or []:
        if isinstance(t, dict) and t.get("run_id"):
            out[str(t["run_id"])] = t.get("value")
    return out


def best_value(summary: dict[str, Any]) -> Any:
    best = summary.get("best")
    return best.get("value") if isinstance(best, dict) else summary.get("best_value")


def _thin(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(steps) <= MAX_POINTS:
        return steps
    every = len(steps) / MAX_POINTS
    return [steps[int(i * every)] for i in range(MAX_POINTS)] + [steps[-1]]


def _chart(cid: str, title: str, fmt: str, lines: list[tuple[str, list[dict[str, Any]], str]]) -> dict[str, Any]:
    """One uPlot chart: x = the union of step numbers, one series per (label, steps, key), nulls
    where a series has no value at that step."""
    xs = sorted({s["step"] for _, steps, key in lines for s in steps if s.get(key) is not None})
    series = []
    for label, steps, key in lines:
        by = {s["step"]: s.get(key) for s in steps if s.get(key) is not None}
        if by:
            series.append({"label": label, "values": [by.get(x) for x in xs]})
    return {"id": cid, "title": title, "fmt": fmt, "x": xs, "series": series}


def _run_charts(run: dict[str, Any], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps = _thin(steps)
    charts = [_chart("loss", "Loss", "num", [("train loss", steps, "loss"), ("eval loss", steps, "eval_loss")]),
              _chart("lr", "Learning rate", "sci", [("learning rate", steps, "learning_rate")])]
    if any(s.get("grad_norm") is not None for s in steps):
        charts.append(_chart("grad", "Gradient norm", "num", [("grad norm", steps, "grad_norm")]))
    return [c for c in charts if c["series"]]


def _mark_stale(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``stale_s`` on running runs the trainer has not reported on for :data:`STALE_S` (the
    process may have died: such a run stays ``running`` until someone ends it)."""
    now = datetime.now(UTC)
    for r in runs:
        quiet = (now - r["updated_at"]).total_seconds() if r["status"] == "running" and r["updated_at"] else 0
        r["stale_s"] = quiet if quiet >= STALE_S else None
    return runs


def _label(run: dict[str, Any]) -> str:
    return str(run["name"] or run["id"])


def _ids(request: Request) -> list[str]:
    """``?ids=a,b`` or ``?ids=a&ids=b`` (what the list's checkboxes send), in order, no repeats."""
    out: list[str] = []
    for raw in request.query_params.getlist("ids"):
        for part in raw.split(","):
            p = part.strip()[:64]
            if p and p not in out:
                out.append(p)
    return out


@router.get("/training", response_class=HTMLResponse)
@ui_action(Action.READ)
def runs_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    method, status, sweep = _get(request, "method"), _get(request, "status"), _get(request, "sweep")
    q = {"method": method if method in METHODS else None, "status": status if status in RUN_STATUSES else None,
         "sweep": (sweep or "")[:64] or None}
    repo = _repo(request)
    runs = _mark_stale(repo.list_runs(v.project_id, method=q["method"], status=q["status"], sweep_id=q["sweep"],
                                      limit=200))
    sweeps = repo.list_sweeps(v.project_id, limit=10)
    return page(request, "training.html", nav="training", runs=runs, sweeps=sweeps, q=q, methods=METHODS,
                statuses=RUN_STATUSES, filtered=any(q.values()), shown=shown)


@router.get("/training/compare", response_class=HTMLResponse)
@ui_action(Action.READ)
def compare_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    ids = _ids(request)
    if len(ids) < 2:
        raise UiError(400, "Pick runs", "tick two or more runs on the Training page to compare them "
                      "(or open /training/compare?ids=RUN_A,RUN_B)")
    if len(ids) > MAX_COMPARE:
        raise UiError(400, "Too many runs", f"compare up to {MAX_COMPARE} runs at once")
    repo = _repo(request)
    try:
        runs = [repo.get_run(v.project_id, i, steps=True) for i in ids]
    except PodiumError as e:
        raise _ui(e) from None
    runs.sort(key=lambda r: (r["created_at"], r["id"]))  # the oldest first: the baseline
    params = [flatten(r["params"]) for r in runs]
    keys = sorted({k for p in params for k in p})
    param_rows = [{"key": k, "values": [shown(p.get(k)) for p in params],
                   "differs": len({json.dumps(p.get(k), sort_keys=True, default=str) for p in params}) > 1}
                  for k in keys]
    metric_keys = sorted({k for r in runs for k in r["metrics"]})
    metric_rows = [{"key": k, "values": [r["metrics"].get(k) for r in runs]} for k in metric_keys]
    lines: list[tuple[str, list[dict[str, Any]], str]] = []
    lr_lines: list[tuple[str, list[dict[str, Any]], str]] = []
    for r in runs:
        st = _thin(r.pop("steps"))
        lines.append((f"{_label(r)} loss", st, "loss"))
        if any(s.get("eval_loss") is not None for s in st):
            lines.append((f"{_label(r)} eval", st, "eval_loss"))
        lr_lines.append((_label(r), st, "learning_rate"))
    charts = [c for c in (_chart("loss", "Loss (overlaid)", "num", lines),
                          _chart("lr", "Learning rate", "sci", lr_lines)) if c["series"]]
    return page(request, "training_compare.html", nav="training", runs=runs, param_rows=param_rows,
                metric_rows=metric_rows, charts=charts, shown=shown,
                differing=sum(1 for row in param_rows if row["differs"]))


@router.get("/training/sweeps", response_class=HTMLResponse)
@ui_action(Action.READ)
def sweeps_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    sweeps = _repo(request).list_sweeps(v.project_id, limit=500)
    return page(request, "training_sweeps.html", nav="training", sweeps=sweeps, shown=shown, best_value=best_value)


@router.get("/training/sweeps/{sweep_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    try:
        sweep = _repo(request).get_sweep(v.project_id, sweep_id[:64], runs=True)
    except PodiumError as e:
        raise _ui(e) from None
    objective = sweep["objective"] or {}
    metric = str(objective.get("metric") or "eval_loss")
    params = [flatten(r["params"]) for r in sweep["runs"]]
    keys = searched(sweep["space"], params)
    values = trial_values(sweep["summary"])
    trials = [{"run": r, "params": [shown(p.get(k)) for k in keys],
               "objective": values.get(r["id"], r["metrics"].get(metric))}
              for r, p in zip(sweep["runs"], params, strict=True)]
    summary = {k: v for k, v in sweep["summary"].items() if k != "trials"}  # the table above shows them
    return page(request, "training_sweep.html", nav="training", sweep=sweep, trials=trials, keys=keys,
                metric=metric, direction=str(objective.get("direction") or "minimize"), shown=shown,
                summary=flatten(summary), compare_ids=",".join(r["id"] for r in sweep["runs"][:MAX_COMPARE]))


@router.get("/training/{run_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    try:
        run = _repo(request).get_run(v.project_id, run_id[:64], steps=True)
    except PodiumError as e:
        raise _ui(e) from None
    steps = run.pop("steps")
    _mark_stale([run])
    return page(request, "training_run.html", nav="training", run=run, steps_count=len(steps),
                charts=_run_charts(run, steps), params=flatten(run["params"]), hardware=flatten(run["hardware"]),
                artifacts=flatten(run["artifacts"]), shown=shown, can_write=v.can_write,
                done=request.query_params.get("done"), last=steps[-1] if steps else None)


@router.get("/training/{run_id}/charts")
@ui_action(Action.READ)
def run_charts(request: Request, run_id: str) -> JSONResponse:
    """The run page's live data (polled by training.js while the run is running): status, last
    step and the charts."""
    v = _viewer(request, Action.READ)
    try:
        run = _repo(request).get_run(v.project_id, run_id[:64], steps=True)
    except PodiumError as e:
        raise _ui(e) from None
    steps = run.pop("steps")
    return JSONResponse({"status": run["status"], "last_step": run["last_step"],
                         "cancel_requested": run["cancel_requested"], "charts": _run_charts(run, steps)},
                        headers={"Cache-Control": "no-store"})


@router.post("/training/{run_id}/cancel", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def cancel_run(request: Request, run_id: str) -> Response:
    """Ask the running run to stop; the trainer saves a checkpoint and ends it ``cancelled``."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "cancel training runs")
    try:
        await run_in_threadpool(_repo(request).request_cancel, v.project_id, run_id[:64])
    except PodiumError as e:
        raise _ui(e) from None
    return RedirectResponse(f"/training/{quote(run_id[:64], safe='')}?done=cancel", status_code=303)
