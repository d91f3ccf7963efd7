"""Evaluation sweeps in the web UI: the list (``/eval-sweeps``) and one sweep
(``/eval-sweeps/{id}``): a scatter of mean score against cost per 1,000 items (vendored uPlot;
hovering a point shows its configuration; dominated points grey), the front's table with each
configuration's paired-bootstrap comparison with the best and its projected monthly cost at the
project's traffic, every trial, and a *Decide* form (a GET: the rules of
``POST /api/v1/eval-sweeps/{id}/decide``) showing the chosen trial and its evidence. The numbers
come from the same functions as the REST API (:mod:`podium.server.routes.eval_sweeps`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.server.routes.eval_sweeps import RULES, compare_with_best, decide, forecast, sweep_view
from podium.server.ui.access import UiError, ui_action
from podium.server.ui.pages import _get, _mark_ui, _st, _viewer, page

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
    parts += [f"{k}={config[k]}" for k in ("system_variant", "few_shot") if config.get(k) is not None]
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
