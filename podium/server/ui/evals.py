"""Datasets and experiments: datasets with their versions and the items of any version;
experiments (runs) with their aggregates and 95% confidence intervals and their item
results; two runs compared (per-scorer charts of both runs' intervals and of the paired
difference, the verdict, and the items that improved or regressed).

Reads go through the same repository as ``/api/v1/datasets`` and ``/api/v1/experiments``
and the comparison through the same ``EvalService.compare`` (paired bootstrap) as
``GET /api/v1/experiments/compare``; nothing is recomputed here. The only query of its own
fetches the listed items' outputs for the comparison (``DashboardRepo.experiment_items``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from podium.core.roles import Action
from podium.errors import BadRequest, NotFound, PodiumError
from podium.evals.analysis import metric_of
from podium.evals.service import EvalService
from podium.server.ui.access import UiError, ui_action
from podium.server.ui.pages import _dash, _get, _mark_ui, _st, _viewer, page
from podium.store.repos.evals import ExperimentFilter

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

DATASETS_PAGE = 50
ITEMS_PAGE = 50
EXPERIMENTS_PAGE = 50
STATUSES = ("running", "completed", "failed", "interrupted")
PSEUDO = {"pass_rate": "pass rate", "score": "weighted score"}


def _repo(request: Request) -> Any:
    return _st(request).store.evals


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _domain(values: list[Any], *, symmetric: bool = False) -> tuple[float, float]:
    """The axis of a small interval chart: [0, 1] when everything fits (scores usually do)."""
    xs = [v for v in (_num(x) for x in values) if v is not None]
    if symmetric:
        m = max((abs(x) for x in xs), default=0.0) or 1.0
        return -m * 1.1, m * 1.1
    if not xs:
        return 0.0, 1.0
    lo, hi = min([*xs, 0.0]), max(xs)
    if lo >= 0 and hi <= 1:
        return 0.0, 1.0
    if hi <= lo:
        hi = lo + 1.0
    pad = (hi - lo) * 0.05
    return lo - (pad if lo < 0 else 0.0), hi + pad


def _pos(x: Any, dom: tuple[float, float]) -> float | None:
    v = _num(x)
    if v is None:
        return None
    return round(min(max((v - dom[0]) / (dom[1] - dom[0]) * 100.0, 0.0), 100.0), 2)


def interval(mean: Any, low: Any, high: Any, dom: tuple[float, float]) -> dict[str, Any]:
    """Positions (percent of the axis) of a mean and its interval."""
    return {"mean": _pos(mean, dom), "low": _pos(low, dom), "high": _pos(high, dom), "zero": _pos(0.0, dom),
            "dom": dom}


def _scorer_rows(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per metric of a run's summary (pass rate, weighted score, each scorer) with its
    interval chart; metrics without any value are left out."""
    if not summary:
        return []
    rows = []
    for name in (*PSEUDO, *sorted(summary.get("scorers") or {})):
        s = summary.get(name) if name in PSEUDO else summary["scorers"][name]
        if not isinstance(s, dict) or s.get("mean") is None:
            continue
        dom = _domain([s.get("low"), s.get("high"), s.get("mean")])
        rows.append({"name": name, "label": PSEUDO.get(name, name), "pseudo": name in PSEUDO, **s,
                     "bar": interval(s.get("mean"), s.get("low"), s.get("high"), dom)})
    return rows


# --- datasets -------------------------------------------------------------------------------------------


@router.get("/datasets", response_class=HTMLResponse)
@ui_action(Action.READ)
def datasets(request: Request) -> HTMLResponse:
    v = _viewer(request)
    q = _get(request, "q")
    cursor = _get(request, "cursor")
    try:
        pg = _repo(request).list_datasets(v.project_id, limit=DATASETS_PAGE, cursor=cursor, q=q)
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    return page(request, "datasets.html", nav="datasets", rows=pg.items, next_cursor=pg.next_cursor, cursor=cursor,
                q=q or "")


@router.get("/datasets/{name}", response_class=HTMLResponse)
@ui_action(Action.READ)
def dataset_page(request: Request, name: str) -> HTMLResponse:
    v = _viewer(request)
    repo = _repo(request)
    try:
        ds = repo.get_dataset(v.project_id, name)
    except NotFound as e:
        raise UiError(404, "Dataset not found", e.message)
    versions = repo.list_versions(v.project_id, name)
    raw = _get(request, "version")
    version = None
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise UiError(400, "Bad request", f"version must be a number, got {raw!r}")
        version = int(raw)
    split = _get(request, "split")
    cursor = _get(request, "cursor")
    try:
        shown, pg = repo.list_items(v.project_id, name, version=version, split=split, limit=ITEMS_PAGE, cursor=cursor)
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    runs = repo.list_experiments(v.project_id, ExperimentFilter(dataset=name), limit=20).items
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val]
    return page(request, "dataset.html", nav="datasets", ds=ds, versions=versions, ds_version=shown, split=split,
                items=pg.items, next_cursor=pg.next_cursor, cursor=cursor, params=params, runs=runs,
                this_version=next((x for x in versions if x["version"] == shown), None))


# --- experiments ---------------------------------------------------------------------------------------


@router.get("/experiments", response_class=HTMLResponse)
@ui_action(Action.READ)
def experiments(request: Request) -> HTMLResponse:
    v = _viewer(request)
    status = _get(request, "status")
    errors = []
    if status not in (None, *STATUSES):
        errors.append(f"status must be one of {', '.join(STATUSES)}")
        status = None
    f = ExperimentFilter(name=_get(request, "name"), dataset=_get(request, "dataset"), label=_get(request, "label"),
                         status=status, run_group=_get(request, "run_group"))
    cursor = _get(request, "cursor")
    rows: list[dict[str, Any]] = []
    next_cursor = None
    try:
        pg = _repo(request).list_experiments(v.project_id, f, limit=EXPERIMENTS_PAGE, cursor=cursor)
        rows, next_cursor = pg.items, pg.next_cursor
    except BadRequest as e:
        errors.append(e.message)
    for r in rows:
        r["metrics"] = _scorer_rows(r.get("summary"))
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val]
    return page(request, "experiments.html", nav="experiments", rows=rows, next_cursor=next_cursor, cursor=cursor,
                params=params, q=request.query_params, statuses=STATUSES, errors=errors)


def _entry_lists(entry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool, bool]:
    """(improved items, regressed items, significant improvement, significant regression) of one
    metric of ``EvalService.compare``; the lists are ``[{"item_id", "delta"}]``."""
    def items(key: str) -> list[dict[str, Any]]:
        for k in (f"{key}_items", key):
            if isinstance(entry.get(k), list):
                return entry[k]
        return []

    def flag(key: str) -> bool:
        for k in (key, f"significant_{key}", f"{key}_significant"):
            if isinstance(entry.get(k), bool):
                return bool(entry[k])
        return False

    return items("improved"), items("regressed"), flag("improved"), flag("regressed")


@router.get("/experiments/compare", response_class=HTMLResponse)
@ui_action(Action.READ)
def compare_page(request: Request) -> HTMLResponse:
    v = _viewer(request)
    repo = _repo(request)
    baseline = _get(request, "baseline")
    candidate = _get(request, "candidate")
    picked = [r for r in request.query_params.getlist("run") if r]
    if picked and not (baseline and candidate):
        if len(picked) != 2:
            raise UiError(400, "Pick two runs", f"select exactly two runs to compare ({len(picked)} selected)")
        runs = sorted((repo.get_experiment(v.project_id, r) for r in picked), key=lambda e: e["created_at"])
        baseline, candidate = runs[0]["id"], runs[1]["id"]  # the older run is the baseline
    recent = repo.list_experiments(v.project_id, limit=100, with_summary=False).items
    ctx: dict[str, Any] = dict(recent=recent, baseline_id=baseline, candidate_id=candidate, result=None, error=None)
    if not (baseline and candidate):
        return page(request, "experiment_compare.html", nav="experiments", **ctx)
    try:
        base = repo.get_experiment(v.project_id, baseline)
        cand = repo.get_experiment(v.project_id, candidate)
        result = EvalService(repo).compare(v.project_id, baseline, [candidate])
    except PodiumError as e:
        ctx["error"] = e.message
        return page(request, "experiment_compare.html", status=e.status_code, nav="experiments", **ctx)
    cmp = result["candidates"][0]
    metrics = []
    ids: list[str] = []
    for name, entry in cmp["metrics"].items():
        improved, regressed, sig_up, sig_down = _entry_lists(entry)
        bs, cs = base.get("summary") or {}, cand.get("summary") or {}
        b = {k: metric_of(bs, name, k) for k in ("mean", "low", "high")}
        c = {k: metric_of(cs, name, k) for k in ("mean", "low", "high")}
        if b["mean"] is None:
            b["mean"] = entry.get("baseline_mean")
        if c["mean"] is None:
            c["mean"] = entry.get("candidate_mean")
        if b["mean"] is None and c["mean"] is None and not entry.get("n"):
            continue
        dom = _domain([*b.values(), *c.values()])
        ddom = _domain([entry.get("diff"), entry.get("low"), entry.get("high")], symmetric=True)
        higher = entry.get("direction", "higher") != "lower"
        diff = _num(entry.get("diff"))
        metrics.append({
            "name": name, "label": PSEUDO.get(name, name), "entry": entry, "base": b, "cand": c,
            "base_bar": interval(b["mean"], b["low"], b["high"], dom),
            "cand_bar": interval(c["mean"], c["low"], c["high"], dom),
            "diff_bar": interval(entry.get("diff"), entry.get("low"), entry.get("high"), ddom),
            "better": diff is not None and diff != 0 and ((diff > 0) == higher),
            "worse": diff is not None and diff != 0 and ((diff > 0) != higher),
            "improved": improved, "regressed": regressed, "sig_improved": sig_up, "sig_regressed": sig_down,
            "counts": entry.get("items") or {},
        })
        ids += [x["item_id"] for x in improved + regressed]
    dash = _dash(request)
    return page(request, "experiment_compare.html", nav="experiments", **{
        **ctx, "result": cmp, "base": base, "cand": cand, "metrics": metrics,
        "confidence": result["candidates"][0].get("confidence", 0.95),
        "base_items": dash.experiment_items(v.project_id, baseline, ids),
        "cand_items": dash.experiment_items(v.project_id, candidate, ids),
    })


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
def experiment_page(request: Request, experiment_id: str) -> HTMLResponse:
    v = _viewer(request)
    repo = _repo(request)
    try:
        exp = repo.get_experiment(v.project_id, experiment_id)
    except NotFound as e:
        raise UiError(404, "Experiment not found", e.message)
    show = request.query_params.get("show", "all")
    errored = True if show == "errors" else None
    passed = {"passed": True, "failed": False}.get(show)
    cursor = _get(request, "cursor")
    try:
        pg = repo.list_experiment_items(v.project_id, experiment_id, limit=ITEMS_PAGE, cursor=cursor,
                                        errored=errored, passed=passed)
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    others = [e for e in repo.list_experiments(
        v.project_id, ExperimentFilter(dataset=exp.get("dataset_name")) if exp.get("dataset_name") else None,
        limit=30, with_summary=False).items if e["id"] != experiment_id]
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val]
    return page(request, "experiment.html", nav="experiments", exp=exp, summary=exp.get("summary") or {},
                metrics=_scorer_rows(exp.get("summary")), items=pg.items, next_cursor=pg.next_cursor, cursor=cursor,
                show=show, params=params, others=others,
                # a fairness/BBQ suite's per-group report (podium/experiments/fairness.py `analyze`)
                fairness=(exp.get("metadata") or {}).get("fairness") or None)
