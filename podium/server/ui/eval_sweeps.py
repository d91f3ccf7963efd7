"""Evaluation sweeps in the web UI: the list (``/eval-sweeps``) and one sweep
(``/eval-sweeps/{id}``): a scatter of mean score against cost per 1,000 items (vendored uPlot;
hovering a point shows its configuration; dominated points grey), the front's table with each
configuration's paired-bootstrap comparison with the best and its projected monthly cost at the
project's traffic, every trial, and a *Decide* form (a GET: the rules of
``POST /api/v1/eval-sweeps/{id}/decide``) showing the chosen trial and its evidence. The numbers
come from the same functions as the REST API (:mod:`podium.server.routes.eval_sweeps`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.server.routes.eval_sweeps import RULES, compare_with_best, decide, forecast, sweep_view
from podium.server.sweep_launcher import MAX_RUNNING, launch_sweep
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _form, _get, _mark_ui, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

RULE_TITLES = {
    "cheapest_not_worse": "Cheapest not significantly worse than the best",
    "fastest_not_worse": "Fastest (p95) not significantly worse than the best",
    "best_under_cost": "Best under $X per 1,000 calls",
    "best_under_p95": "Best under a p95 of Y ms",
}


def config_text(config: dict[str, Any]) -> str:
    """A trial's configuration in one line: model, prompt version, parameters."""
    parts = [str(config.get("model") or "?")]
    p = config.get("prompt")
    if isinstance(p, dict) and p.get("name"):
        parts.append(str(p["name"]) + (f"/{p['version']}" if p.get("version") else ""))
    parts += [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted((config.get("params") or
                                                                                            {}).items())]
    parts += [f"{k}={config[k]}" for k in ("system_variant", "few_shot", "context_size") if config.get(k) is not None]
    return " ".join(parts)


def _chart(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """uPlot data: x = cost per 1,000 items (ascending), series front / dominated (score, null
    elsewhere), and each point's label for the hover."""
    pts = sorted((tr for tr in trials if tr["front"] or tr["dominated"]),
                 key=lambda tr: (tr["metrics"]["cost_per_1k"], tr["number"]))
    return {"x": [tr["metrics"]["cost_per_1k"] for tr in pts],
            "front": [tr["metrics"]["score_mean"] if tr["front"] else None for tr in pts],
            "dominated": [tr["metrics"]["score_mean"] if tr["dominated"] else None for tr in pts],
            "labels": [f"#{tr['number']} {config_text(tr['config'])} · p95 {tr['metrics'].get('p95_ms', 0):.0f} ms"
                       for tr in pts]}


def _float(request: Request, name: str) -> float | None:
    raw = _get(request, name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise UiError(400, "Not a number", f"{name} must be a number, e.g. 1.5") from None


@router.get("/eval-sweeps", response_class=HTMLResponse)
@ui_action(Action.READ)
def sweeps_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    sweeps = _st(request).store.eval_sweeps.list_sweeps(v.project_id, limit=500)
    return page(request, "eval_sweeps.html", nav="eval-sweeps", sweeps=sweeps)


#: Checks a sweep started from a stored dataset may use: each compares the output with the item's `expected`.
FORM_SCORERS = ("icontains", "contains", "equals", "starts-with", "rouge-l")
METHODS = ("grid", "optuna")


def _values(form: dict[str, str], name: str, kind: type, *, minimum: float | None = None) -> list[Any]:
    """A comma-separated list of numbers (``0, 0.7``) from a form field; [] when blank."""
    raw = form.get(name, "").strip()
    if not raw:
        return []
    out: list[Any] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if kind is int and part in ("all", "null", "none"):  # context_size: keep the whole context
            out.append(None)
            continue
        try:
            v = kind(part)
        except ValueError:
            raise _FormError(f"{name}: {part!r} is not {'an integer' if kind is int else 'a number'}; write values "
                             "separated by commas, e.g. 0, 0.7") from None
        if minimum is not None and v < minimum:
            raise _FormError(f"{name}: {part} is below {minimum:g}")
        out.append(v)
    return out


class _FormError(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def space_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The space YAML's mapping (docs/sweeps-eval.md) from the new-sweep form's fields."""
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    if not models:
        raise _FormError("models: name at least one gateway model alias, e.g. local, fake-mini")
    params: dict[str, list[Any]] = {}
    for name, kind, lo in (("temperature", float, 0.0), ("top_p", float, 0.0), ("max_tokens", int, 1)):
        vals = _values(form, name, kind, minimum=lo)
        if vals:
            params[name] = vals
    space: dict[str, Any] = {"models": models}
    if params:
        space["params"] = params
    system: dict[str, str] = {}
    for line in form.get("system", "").splitlines():
        if not line.strip():
            continue
        variant, sep, text = line.partition(":")
        if not sep or not variant.strip() or not text.strip():
            raise _FormError(f"system: {line.strip()[:60]!r} is not `name: text` (one variant a line)")
        system[variant.strip()] = text.strip()
    if system:
        space["system"] = system
    few = _values(form, "few_shot", int, minimum=0)
    if few:
        space["few_shot"] = few
    ctx = _values(form, "context_size", int, minimum=1)
    if ctx:
        space["context_size"] = ctx
    method = form.get("method", "grid")
    if method not in METHODS:
        raise _FormError("search method: grid or optuna")
    search: dict[str, Any] = {"method": method}
    for name in ("trials", "seed"):
        vals = _values(form, name, int, minimum=1 if name == "trials" else 0)
        if len(vals) > 1:
            raise _FormError(f"{name}: one number")
        if vals:
            search[name] = vals[0]
    space["search"] = search
    budget = _values(form, "budget_usd", float, minimum=0.0)
    if budget:
        if budget[0] <= 0:
            raise _FormError("budget_usd: a positive number of US dollars, or leave it blank")
        space["budget_usd"] = budget[0]
    return space


def suite_from_form(form: dict[str, str], scorers: list[str], models: list[str]) -> tuple[dict[str, Any], str]:
    """The suite's mapping and its name: the pasted suite YAML, else a stored dataset, a registry prompt
    and checks against each item's ``expected``."""
    raw = form.get("suite_yaml", "").strip()
    if raw:
        try:
            suite = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise _FormError(f"suite YAML: {e}") from None
        if not isinstance(suite, dict):
            raise _FormError("suite YAML: a mapping with prompts, providers and tests (or dataset), "
                             "as in `podium eval run`")
        return suite, str(suite.get("description") or form.get("name") or "sweep")
    dataset, prompt = form.get("dataset", "").strip(), form.get("prompt", "").strip()
    if not dataset or not prompt:
        raise _FormError("pick a dataset and a prompt, or paste a suite YAML")
    label = form.get("prompt_label", "").strip() or "latest"
    bad = [s for s in scorers if s not in FORM_SCORERS]
    if bad or not scorers:
        raise _FormError(f"checks: pick at least one of {', '.join(FORM_SCORERS)}")
    name = form.get("name", "").strip() or f"{prompt} on {dataset}"
    ref = f"prompts:/{prompt}/{label}" if label.isdigit() else f"prompts:/{prompt}@{label}"
    return {"description": name, "prompts": [ref], "providers": [models[0]], "dataset": dataset,
            "defaultTest": {"assert": [{"type": s} for s in scorers]}}, name


def _new_ctx(request: Request, project_id: str) -> dict[str, Any]:
    store = _st(request).store
    datasets = store.evals.list_datasets(project_id, limit=200).items
    prompts = store.prompts.list_prompts(project_id, limit=200).items
    return {"datasets": datasets, "prompts": prompts, "scorers": FORM_SCORERS, "max_running": MAX_RUNNING}


@router.get("/eval-sweeps/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def new_sweep_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.WRITE, "start eval sweeps")
    return page(request, "eval_sweep_new.html", nav="eval-sweeps", form={"models": "local", "method": "grid"},
                checked=["icontains"], **_new_ctx(request, v.project_id))


@router.post("/eval-sweeps/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def start_sweep(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "start eval sweeps")
    form = await _form(request)
    body = (await request.body()).decode("utf-8", "replace")
    scorers = [val for k, val in parse_qsl(body) if k == "scorer"]
    st = _st(request)
    try:
        space = space_from_form(form)
        suite, name = suite_from_form(form, scorers, space["models"])
        name = (form.get("name", "").strip() or name)[:200]
        launch = await run_in_threadpool(
            launch_sweep, st, v.project_id, name=name, suite=suite, space=space, base_url=str(request.base_url),
            actor=v.actor, caller=v.key, description=str(suite.get("description") or "") or None)
    except (_FormError, PodiumError) as e:
        ctx = await run_in_threadpool(_new_ctx, request, v.project_id)
        status = e.status_code if isinstance(e, PodiumError) else 400
        return page(request, "eval_sweep_new.html", status=status, nav="eval-sweeps", form=form, checked=scorers,
                    error=e.message, **ctx)
    return RedirectResponse(f"/eval-sweeps/{launch.sweep_id}", status_code=303)


@router.get("/eval-sweeps/{sweep_id}", response_class=HTMLResponse)
@ui_action(Action.READ)
async def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    st = _st(request)
    await st.aprices_for(v.project_id)
    rule = _get(request, "rule")
    metric = _get(request, "metric") or "score"
    if rule and rule not in RULES:
        raise UiError(400, "Unknown rule", f"rule must be one of {', '.join(RULES)}")
    if metric not in ("score", "pass_rate"):
        raise UiError(400, "Unknown metric", "metric must be score or pass_rate")
    max_cost, max_p95 = _float(request, "max_cost_per_1k"), _float(request, "max_p95_ms")

    def build() -> dict[str, Any]:
        sweep = sweep_view(st, v.project_id, sweep_id[:64])
        front = [tr for tr in sweep["trials"] if tr["front"]]
        best = max(front, key=lambda tr: (tr["metrics"]["score_mean"], -tr["metrics"]["cost_per_1k"]), default=None)
        vs_best = compare_with_best(st, v.project_id, best, front, "score", 0.95) if best else {}
        forecasts = {tr["number"]: forecast(st, v.project_id, sweep["id"], tr["number"]) for tr in front}
        decision, decision_error = None, None
        if rule:
            try:
                decision = decide(st, v.project_id, sweep["id"], rule=rule, metric=metric, max_cost_per_1k=max_cost,
                                  max_p95_ms=max_p95)
            except PodiumError as e:
                decision_error = e.message
        return {"sweep": sweep, "front": front, "best": best, "vs_best": vs_best, "forecasts": forecasts,
                "decision": decision, "decision_error": decision_error}

    try:
        ctx = await run_in_threadpool(build)
    except PodiumError as e:
        raise UiError(e.status_code, "Not found" if e.status_code == 404 else "Not done", e.message) from None
    return page(request, "eval_sweep.html", nav="eval-sweeps", chart=_chart(ctx["sweep"]["trials"]),
                config_text=config_text, rules=RULE_TITLES, rule=rule or "cheapest_not_worse", metric=metric,
                max_cost=max_cost, max_p95=max_p95, **ctx)
