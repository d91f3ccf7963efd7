"""Evaluation sweeps under ``/api/v1/eval-sweeps`` (docs/sweeps-eval.md): a sweep of models,
prompt versions and inference parameters against one eval suite, its trials (each a normal
experiment plus its objective metrics, upserted by number), the Pareto front over the complete
trials (:mod:`podium.evals.pareto`), ``.../decide`` (a constraint -> one trial with the evidence:
the paired bootstrap the experiments compare endpoint uses) and ``.../forecast`` (a trial's
projected monthly cost at the project's traced traffic, priced with the project's price table).

The sweep engine (``podium eval sweep``) writes with a write key; the UI (``/eval-sweeps``) and
``podium eval sweeps`` read. :func:`sweep_view`, :func:`decide` and :func:`forecast` are shared
with the UI so both say the same thing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from podium.core.pricing import compute_cost
from podium.core.roles import Action
from podium.errors import BadRequest, NotFound, ValidationFailed
from podium.evals.pareto import SWEEP_OBJECTIVES, SWEEP_SENSES, Sense, pareto_front
from podium.evals.service import EvalService
from podium.server.auth import needs, require_read
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["FORECAST_DAYS", "RULES", "compare_with_best", "decide", "forecast", "router", "sweep_view"]

router = APIRouter(prefix="/api/v1", tags=["eval sweeps"], route_class=StrictJSONRoute)

Writer = Annotated[ApiKey, needs(Action.WRITE, "record or decide eval sweeps")]
IdP = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
_Key = Annotated[str, Field(min_length=1, max_length=256)]
_Obj = Annotated[dict[_Key, Any], Field(max_length=500)]
_Num = Annotated[float, Field(allow_inf_nan=False)]
_Money = Annotated[float, Field(ge=0, le=10**9, allow_inf_nan=False)]
Objective = Literal["score", "cost_per_1k", "p95_ms"]
SweepStatus = Literal["running", "completed", "stopped", "failed"]
TrialStatus = Literal["complete", "stopped", "failed"]
Rule = Literal["cheapest_not_worse", "best_under_cost", "fastest_not_worse", "best_under_p95"]
RULES: tuple[str, ...] = ("cheapest_not_worse", "best_under_cost", "fastest_not_worse", "best_under_p95")
MAX_TRIALS = 1000  # per request
FORECAST_DAYS = 7
#: A trial's metric for each objective.
METRIC_OF = {"score": "score_mean", "cost_per_1k": "cost_per_1k", "p95_ms": "p95_ms"}


class SuiteRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=5000)] | None = None
    path: Annotated[str, Field(max_length=4096)] | None = None


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["grid", "optuna"] = "grid"
    trials: Annotated[int, Field(ge=1, le=100_000)] | None = None
    seed: int | None = None


class SweepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    suite: SuiteRef
    space: _Obj = {}
    objectives: Annotated[list[Objective], Field(min_length=1, max_length=3)] = ["score", "cost_per_1k", "p95_ms"]
    search: SearchIn = SearchIn()
    budget_usd: _Money | None = None


class SweepPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: SweepStatus | None = None
    spent_usd: _Money | None = None
    summary: _Obj | None = None


class PromptRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    version: Annotated[int, Field(ge=1, le=2_000_000_000)] | None = None


class TrialConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: Annotated[str, Field(min_length=1, max_length=256)]
    prompt: PromptRef | None = None
    params: _Obj = {}
    system_variant: Annotated[str, Field(max_length=200)] | None = None
    few_shot: Annotated[int, Field(ge=0, le=1000)] | None = None


class TrialMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")
    score_mean: _Num | None = None
    score_ci: Annotated[list[_Num], Field(min_length=2, max_length=2)] | None = None
    pass_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    cost_total: _Money | None = None
    cost_per_1k: _Money | None = None
    p95_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    latency_mean_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class TrialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Annotated[int, Field(ge=0, le=1_000_000)]
    config: TrialConfig
    experiment_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    status: TrialStatus
    items: Annotated[int, Field(ge=0, le=10**9)] = 0
    metrics: TrialMetrics = TrialMetrics()
    error: Annotated[str, Field(max_length=20_000)] | None = None


class TrialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trials: Annotated[list[Any], Field(max_length=MAX_TRIALS, description=(
        "[{number, config: {model, prompt?, params, ...}, experiment_id?, status, items, metrics, error?}]; a bad "
        "trial is reported in `rejected`, the others are stored (upserted by number)"))]


class TrialsOut(BaseModel):
    accepted: int
    rejected: list[dict[str, Any]]


class DecideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: Rule
    max_cost_per_1k: _Money | None = None
    max_p95_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    metric: Literal["score", "pass_rate"] = "score"
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95


class SweepOut(BaseModel):
    id: str
    name: str
    status: str
    suite: dict[str, Any]
    space: dict[str, Any]
    objectives: list[str]
    search: dict[str, Any]
    budget_usd: float | None
    spent_usd: float
    summary: dict[str, Any]
    created_by: str | None
    created_at: Any
    updated_at: Any
    trial_count: int | None = None
    trials: list[dict[str, Any]] | None = None
    front: list[int] | None = None


class SweepPage(BaseModel):
    data: list[SweepOut]


class ForecastOut(BaseModel):
    trial: int
    calls: int
    calls_per_day: float
    days_observed: float
    tokens: dict[str, float]
    cost_per_call_usd: float | None
    monthly_cost_usd: float | None
    traffic: str | None
    pricing: str | None
    basis: str


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _why(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'trial'}: {err['msg']}" for err in e.errors()[:5])
    return str(e)


def _value(trial: dict[str, Any], objective: str) -> float | None:
    v = (trial.get("metrics") or {}).get(METRIC_OF.get(objective, objective))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def sweep_view(st: AppState, project_id: str, sweep_id: str) -> dict[str, Any]:
    """The sweep with its trials, each marked ``front`` (non-dominated among the complete trials
    that have every objective) and ``dominated`` (complete, measured and not on the front), and
    ``front``: the front's trial numbers."""
    sweep = st.store.eval_sweeps.get(project_id, sweep_id)
    trials = st.store.eval_sweeps.trials(project_id, sweep_id)
    objectives = [o for o in (sweep["objectives"] or SWEEP_OBJECTIVES) if o in SWEEP_OBJECTIVES]
    senses: list[Sense] = [SWEEP_SENSES[SWEEP_OBJECTIVES.index(o)] for o in objectives]
    measured, points = [], []
    for tr in trials:
        vals = [_value(tr, o) for o in objectives]
        tr["front"] = tr["dominated"] = False
        if tr["status"] == "complete" and all(v is not None for v in vals):
            measured.append(tr)
            points.append([float(v) for v in vals if v is not None])
    front = set(pareto_front(points, senses)) if points else set()
    for i, tr in enumerate(measured):
        tr["front"] = i in front
        tr["dominated"] = i not in front
    return {**sweep, "trials": trials, "front": [tr["number"] for tr in trials if tr["front"]]}


# --- decisions ------------------------------------------------------------------------------------

def _metric_key(metric: str) -> str:
    return "score_mean" if metric == "score" else "pass_rate"


def _brief(tr: dict[str, Any], metric: str) -> dict[str, Any]:
    m = tr.get("metrics") or {}
    return {"number": tr["number"], "config": tr["config"], "experiment_id": tr.get("experiment_id"),
            metric: m.get(_metric_key(metric)), "cost_per_1k": m.get("cost_per_1k"), "p95_ms": m.get("p95_ms"),
            "score_ci": m.get("score_ci")}


def compare_with_best(st: AppState, project_id: str, best: dict[str, Any], others: list[dict[str, Any]], metric: str,
             confidence: float) -> dict[int, dict[str, Any]]:
    """Each other trial against the best: the paired bootstrap of ``other - best`` over the two
    experiments' items (EvalService.compare, as ``/api/v1/experiments/compare``)."""
    out: dict[int, dict[str, Any]] = {}
    base = best.get("experiment_id")
    cands = [tr for tr in others if tr.get("experiment_id") and tr["number"] != best["number"]]
    for tr in others:
        if tr["number"] == best["number"]:
            out[tr["number"]] = {"trial": tr["number"], "diff": 0.0, "ci": [0.0, 0.0], "significant": False,
                                 "n": tr.get("items"), "reason": "the best trial itself"}
        elif not tr.get("experiment_id") or not base:
            out[tr["number"]] = {"trial": tr["number"], "diff": None, "ci": None, "significant": None, "n": 0,
                                 "reason": "no experiment recorded for the trial or the best: cannot pair items"}
    if base and cands:
        res = EvalService(st.store.evals).compare(project_id, str(base), [str(c["experiment_id"]) for c in cands],
                                                  confidence=confidence, metrics=[metric])
        for tr, c in zip(cands, res["candidates"], strict=True):
            e = c["metrics"][metric]
            out[tr["number"]] = {"trial": tr["number"], "diff": e.get("diff"),
                                 "ci": [e.get("low"), e.get("high")] if e.get("diff") is not None else None,
                                 "significant": bool(e.get("regressed")) if e.get("diff") is not None else None,
                                 "n": e.get("n"), "reason": e.get("reason")}
    return out


def _money(v: Any) -> str:
    return "—" if v is None else f"${float(v):,.4f}"


def decide(st: AppState, project_id: str, sweep_id: str, *, rule: str, metric: str = "score",
           confidence: float = 0.95, max_cost_per_1k: float | None = None,
           max_p95_ms: float | None = None) -> dict[str, Any]:
    """One trial for ``rule`` with the evidence (the best trial by ``metric`` and each compared
    trial's paired-bootstrap difference from it)."""
    if rule not in RULES:
        raise ValidationFailed(f"rule must be one of {', '.join(RULES)}, not {rule!r}",
                               details=[{"field": "rule", "allowed": list(RULES)}])
    if rule == "best_under_cost" and max_cost_per_1k is None:
        raise ValidationFailed("best_under_cost needs max_cost_per_1k (USD per 1,000 calls)",
                               details=[{"field": "max_cost_per_1k"}])
    if rule == "best_under_p95" and max_p95_ms is None:
        raise ValidationFailed("best_under_p95 needs max_p95_ms (milliseconds)", details=[{"field": "max_p95_ms"}])
    view = sweep_view(st, project_id, sweep_id)
    key = _metric_key(metric)
    pool = [tr for tr in view["trials"] if tr["status"] == "complete" and _value(tr, key) is not None]
    if not pool:
        raise BadRequest(f"the sweep has no complete trial with a {metric}; wait for trials to finish "
                         "(`podium eval sweeps show ID`)", details=[{"field": "metric", "message": "no trials"}])

    def val(tr: dict[str, Any], name: str, missing: float = math.inf) -> float:
        v = _value(tr, name)
        return missing if v is None else v

    def by_quality(tr: dict[str, Any]) -> tuple[float, float, int]:
        return (-val(tr, key, -math.inf), val(tr, "cost_per_1k"), tr["number"])

    best = min(pool, key=by_quality)
    if rule in ("cheapest_not_worse", "fastest_not_worse"):
        cost_key = "cost_per_1k" if rule == "cheapest_not_worse" else "p95_ms"
        ranked = sorted(pool, key=lambda tr: (val(tr, cost_key), *by_quality(tr)))
        cmp = compare_with_best(st, project_id, best, ranked, metric, confidence)
        chosen = next(tr for tr in ranked if cmp[tr["number"]]["significant"] is False)
        what = "cheapest" if cost_key == "cost_per_1k" else "fastest (p95)"
        skipped = [tr["number"] for tr in ranked[:ranked.index(chosen)]]
        reason = (f"trial {chosen['number']} is the {what} trial whose {metric} is not significantly below the best "
                  f"(trial {best['number']}) at {confidence:.0%} confidence (paired bootstrap over the items)")
        if skipped:
            reason += (f"; the {'cheaper' if cost_key == 'cost_per_1k' else 'faster'} trials "
                       f"({', '.join(map(str, skipped))}) are significantly worse or could not be paired")
        compared = [cmp[tr["number"]] for tr in ranked]
    else:
        limit_key, limit = (("cost_per_1k", max_cost_per_1k) if rule == "best_under_cost" else ("p95_ms", max_p95_ms))
        assert limit is not None
        within = [tr for tr in pool if val(tr, limit_key) <= limit]
        if not within:
            least = min(pool, key=lambda tr: val(tr, limit_key))
            shown = _money(_value(least, limit_key)) if limit_key == "cost_per_1k" else f"{val(least, limit_key):.0f} ms"
            raise BadRequest(f"no complete trial has {limit_key} <= {limit:g}; the lowest is trial {least['number']} "
                             f"at {shown}; raise the limit", details=[{"field": f"max_{limit_key}", "lowest": shown}])
        chosen = min(within, key=by_quality)
        cmp = compare_with_best(st, project_id, best, [chosen], metric, confidence)
        c = cmp[chosen["number"]]
        unit = "per 1,000 calls" if limit_key == "cost_per_1k" else "ms p95"
        lim = _money(limit) if limit_key == "cost_per_1k" else f"{limit:g}"
        reason = f"trial {chosen['number']} has the best {metric} of the {len(within)} trials under {lim} {unit}"
        if chosen["number"] == best["number"]:
            reason += "; it is also the best overall"
        elif c["significant"]:
            reason += f"; it is significantly below the best overall (trial {best['number']})"
        elif c["significant"] is False:
            reason += f"; it is not significantly below the best overall (trial {best['number']})"
        compared = [c]
    return {"trial": {k: v for k, v in chosen.items() if k not in ("created_at", "updated_at")}, "rule": rule,
            "metric": metric, "confidence": confidence,
            "evidence": {"best": _brief(best, metric), "compared": compared, "reason": reason}}


# --- forecast -------------------------------------------------------------------------------------

def forecast(st: AppState, project_id: str, sweep_id: str, number: int, *,
             now: datetime | None = None) -> dict[str, Any]:
    """The trial's projected monthly (30-day) cost at the project's traffic over the last
    :data:`FORECAST_DAYS` days: calls of the trial's prompt (``prompt_name`` on spans), else of
    its model, per day x the cost of one call (the project's price for the trial's model at the
    traffic's mean input/output tokens, else the trial's measured cost per item)."""
    repo = st.store.eval_sweeps
    trial = next((tr for tr in repo.trials(project_id, sweep_id) if tr["number"] == number), None)
    if trial is None:
        raise NotFound(f"the sweep has no trial {number}; `podium eval sweeps show {sweep_id}` lists them",
                       details=[{"field": "trial", "message": "unknown trial"}])
    now = now or datetime.now(UTC)
    since = now - timedelta(days=FORECAST_DAYS)
    config = trial["config"] or {}
    model = str(config.get("model") or "")
    prompt = (config.get("prompt") or {}).get("name") if isinstance(config.get("prompt"), dict) else None
    seen: dict[str, Any] = {"calls": 0, "first": None, "input_mean": 0.0, "output_mean": 0.0}
    traffic = None
    if prompt:
        seen, traffic = repo.traffic(project_id, since=since, prompt_name=str(prompt)), f"prompt {prompt!r}"
    if not seen["calls"] and model:
        seen, traffic = repo.traffic(project_id, since=since, model=model), f"model {model!r}"
    calls = int(seen["calls"])
    days = 0.0
    if calls and seen["first"] is not None:
        days = min(float(FORECAST_DAYS), max(1.0, (now - seen["first"]).total_seconds() / 86400))
    per_day = calls / days if days else 0.0
    tokens = {"input_mean": round(seen["input_mean"], 1), "output_mean": round(seen["output_mean"], 1)}
    per_call: float | None = None
    pricing = None
    if calls and (seen["input_mean"] or seen["output_mean"]):
        cost = compute_cost(model, {"input_tokens": round(seen["input_mean"]),
                                    "output_tokens": round(seen["output_mean"])}, table=st.prices_for(project_id))
        if cost is not None:
            per_call, pricing = cost["total"], f"priced with {model} at the traffic's mean tokens"
    measured = _value(trial, "cost_per_1k")
    if per_call is None and measured is not None:
        per_call, pricing = measured / 1000, "the trial's measured cost per item (no price for the traffic's tokens)"
    monthly = per_day * 30 * per_call if per_call is not None else None
    if not calls:
        basis = (f"no traced calls of {'prompt ' + repr(prompt) + ' or ' if prompt else ''}model {model!r} in the "
                 f"last {FORECAST_DAYS} days: no traffic to project")
    else:
        basis = (f"{calls} traced calls of {traffic} over {days:.1f} days ({per_day:,.1f}/day, mean "
                 f"{tokens['input_mean']:g} input / {tokens['output_mean']:g} output tokens); "
                 f"{pricing or 'no price for the model and no measured cost'}; x 30 days")
    return {"trial": number, "calls": calls, "calls_per_day": round(per_day, 3), "days_observed": round(days, 3),
            "tokens": tokens, "cost_per_call_usd": per_call, "monthly_cost_usd": monthly,
            "traffic": traffic if calls else None, "pricing": pricing, "basis": basis}


# --- routes ---------------------------------------------------------------------------------------

@router.post("/eval-sweeps", status_code=201, response_model=SweepOut, response_model_exclude_unset=True,
             summary="Start recording an eval sweep (status running)")
def create_sweep(request: Request, body: SweepIn, key: Writer) -> dict[str, Any]:
    return _st(request).store.eval_sweeps.create(
        key.project_id, name=body.name, suite=body.suite.model_dump(exclude_none=True), space=body.space,
        objectives=list(dict.fromkeys(body.objectives)), search=body.search.model_dump(exclude_none=True),
        budget_usd=body.budget_usd, actor=key.public_key)


@router.get("/eval-sweeps", response_model=SweepPage, response_model_exclude_unset=True,
            summary="List eval sweeps, newest first")
def list_sweeps(request: Request, key: require_read,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"data": _st(request).store.eval_sweeps.list_sweeps(key.project_id, limit=limit)}


@router.get("/eval-sweeps/{sweep_id}", response_model=SweepOut, response_model_exclude_unset=True,
            summary="A sweep with its trials, each marked front/dominated, and the front's trial numbers")
def get_sweep(request: Request, sweep_id: IdP, key: require_read) -> dict[str, Any]:
    return sweep_view(_st(request), key.project_id, sweep_id)


@router.patch("/eval-sweeps/{sweep_id}", response_model=SweepOut, response_model_exclude_unset=True,
              summary="Change a sweep: status, spent_usd, summary")
def patch_sweep(request: Request, sweep_id: IdP, body: SweepPatch, key: Writer) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(include=body.model_fields_set).items() if v is not None}
    return _st(request).store.eval_sweeps.update(key.project_id, sweep_id, changes)


@router.post("/eval-sweeps/{sweep_id}/trials", response_model=TrialsOut,
             summary="Record trials (upserted by number); a bad trial is rejected, the others stored")
def post_trials(request: Request, sweep_id: IdP, body: TrialsIn, key: Writer) -> dict[str, Any]:
    good: dict[int, dict[str, Any]] = {}
    rejected: list[dict[str, Any]] = []
    for i, raw in enumerate(body.trials):
        try:
            if not isinstance(raw, dict):
                raise ValueError("a trial is an object: {number, config, status, items, metrics, ...}")
            tr = TrialIn.model_validate(raw)
        except (ValidationError, ValueError) as e:
            num = raw.get("number") if isinstance(raw, dict) and isinstance(raw.get("number"), int) else None
            rejected.append({"index": i, "number": num, "message": _why(e)})
            continue
        good[tr.number] = {"number": tr.number, "config": tr.config.model_dump(exclude_none=True),
                           "experiment_id": tr.experiment_id, "status": tr.status, "items": tr.items,
                           "metrics": tr.metrics.model_dump(exclude_none=True), "error": tr.error}
    accepted = _st(request).store.eval_sweeps.upsert_trials(key.project_id, sweep_id, list(good.values()))
    if not good:
        _st(request).store.eval_sweeps.get(key.project_id, sweep_id)  # 404 for an unknown sweep
    return {"accepted": accepted, "rejected": rejected}


@router.post("/eval-sweeps/{sweep_id}/decide",
             summary="Pick one trial by a rule (cheapest/fastest not significantly worse, best under a cost "
                     "or p95 limit), with the paired-bootstrap evidence")
async def decide_route(request: Request, sweep_id: IdP, body: DecideIn, key: require_read) -> dict[str, Any]:
    return await run_in_threadpool(decide, _st(request), key.project_id, sweep_id, rule=body.rule,
                                   metric=body.metric, confidence=body.confidence,
                                   max_cost_per_1k=body.max_cost_per_1k, max_p95_ms=body.max_p95_ms)


@router.get("/eval-sweeps/{sweep_id}/forecast", response_model=ForecastOut,
            summary="A trial's projected monthly cost at the project's traced traffic (last 7 days)")
async def forecast_route(request: Request, sweep_id: IdP, key: require_read,
                         trial: Annotated[int, Query(ge=0, le=1_000_000, description="the trial number")]
                         ) -> dict[str, Any]:
    st = _st(request)
    await st.aprices_for(key.project_id)
    return await run_in_threadpool(forecast, st, key.project_id, sweep_id, trial)
