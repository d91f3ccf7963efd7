"""Fine-tuning run tracking: ``/api/v1/training-runs`` (a run's parameters, hardware, status,
metrics and artifacts; ``.../{id}/steps`` its per-step loss and learning rate; ``.../{id}/cancel``)
and ``/api/v1/training-sweeps`` (hyperparameter sweeps whose trials are runs). The trainer writes
through :class:`podium.cli.run_tracker.RunTracker`; the UI (``/training``) and ``podium tune runs``
read. Reads need a read key, changes a write key (docs/training-runs.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.core.roles import Action
from podium.server.auth import needs, require_read
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey
from podium.store.repos.training import TrainingRepo

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["training runs"], route_class=StrictJSONRoute)

Writer = Annotated[ApiKey, needs(Action.WRITE, "track training runs")]
IdP = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
_Key = Annotated[str, Field(min_length=1, max_length=256)]
_Obj = Annotated[dict[_Key, Any], Field(max_length=500)]
_Num = Annotated[float, Field(allow_inf_nan=False)]
_Tag = Annotated[str, Field(min_length=1, max_length=64)]
Method = Literal["sft", "dpo", "kto"]
RunStatus = Literal["running", "completed", "failed", "cancelled", "pruned"]
SweepStatus = Literal["running", "completed", "failed", "cancelled"]
MAX_STEPS = 10_000  # steps per request
MAX_EXTRA = 50  # extra numbers per step


class DatasetRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    version: Annotated[int, Field(ge=1, le=2_000_000_000)] | None = None


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] | None = None
    method: Method
    base_model: Annotated[str, Field(min_length=1, max_length=512)]
    dataset: DatasetRef | None = None
    data_path: Annotated[str, Field(max_length=4096)] | None = None
    params: _Obj = {}
    hardware: _Obj = {}
    output_dir: Annotated[str, Field(max_length=4096)] | None = None
    sweep_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    trial: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    tags: Annotated[list[_Tag], Field(max_length=50)] = []


class RunPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: RunStatus | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    metrics: Annotated[dict[_Key, _Num | None], Field(max_length=500)] | None = None
    artifacts: _Obj | None = None
    hardware: _Obj | None = None
    error: Annotated[str, Field(max_length=20_000)] | None = None
    duration_s: Annotated[float, Field(ge=0, le=10**9, allow_inf_nan=False)] | None = None
    output_dir: Annotated[str, Field(max_length=4096)] | None = None
    tags: Annotated[list[_Tag], Field(max_length=50)] | None = None


class StepIn(BaseModel):
    """One logged step; other finite numbers (DPO's rewards, accuracies, ...) are kept too."""

    model_config = ConfigDict(extra="allow")
    step: Annotated[int, Field(ge=0, le=2_000_000_000)]
    loss: _Num | None = None
    learning_rate: _Num | None = None
    epoch: _Num | None = None
    grad_norm: _Num | None = None
    eval_loss: _Num | None = None


class StepsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: Annotated[list[Any], Field(max_length=MAX_STEPS, description=(
        "[{step, loss?, learning_rate?, epoch?, grad_norm?, eval_loss?, ...}]; a bad step is reported in "
        "`rejected`, the others are stored"))]


class StepsOut(BaseModel):
    accepted: int
    cancel_requested: bool
    rejected: list[dict[str, Any]]


class RunOut(BaseModel):
    id: str
    name: str | None
    method: str
    status: str
    base_model: str
    dataset: dict[str, Any] | None
    data_path: str | None
    params: dict[str, Any]
    hardware: dict[str, Any]
    output_dir: str | None
    metrics: dict[str, Any]
    artifacts: dict[str, Any]
    sweep_id: str | None
    trial: int | None
    tags: list[str]
    error: str | None
    cancel_requested: bool
    last_step: int | None
    created_by: str | None
    created_at: Any
    started_at: Any
    ended_at: Any
    updated_at: Any
    duration_s: float | None
    steps: list[dict[str, Any]] | None = None


class RunPage(BaseModel):
    data: list[RunOut]


class SweepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] | None = None
    space: _Obj = {}
    objective: _Obj = {}
    settings: _Obj = {}


class SweepPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] | None = None
    status: SweepStatus | None = None
    best_run_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    summary: _Obj | None = None


class SweepOut(BaseModel):
    id: str
    name: str | None
    status: str
    space: dict[str, Any]
    objective: dict[str, Any]
    settings: dict[str, Any]
    best_run_id: str | None
    summary: dict[str, Any]
    created_by: str | None
    created_at: Any
    updated_at: Any
    trials: int | None = None
    runs: list[RunOut] | None = None


class SweepPage(BaseModel):
    data: list[SweepOut]


def _repo(request: Request) -> TrainingRepo:
    st: AppState = request.app.state.podium
    return st.store.training


def _check_step(raw: Any) -> dict[str, Any]:
    """One step, validated: a dict of ``step`` and finite numbers (names up to 64 characters)."""
    if not isinstance(raw, dict):
        raise ValueError("a step is an object: {step, loss?, learning_rate?, ...}")
    s = StepIn.model_validate(raw)
    extra = {k: v for k, v in (s.model_extra or {}).items() if v is not None}
    if len(extra) > MAX_EXTRA:
        raise ValueError(f"at most {MAX_EXTRA} extra numbers per step")
    for k, v in extra.items():
        if len(k) > 64 or isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (
                float("inf"), float("-inf")):
            raise ValueError(f"{k[:64]!r}: extra step fields must be finite numbers with names up to 64 characters")
    return {**s.model_dump(exclude_none=True, exclude=set(s.model_extra or {})), **extra}


def _why(e: Exception) -> str:
    if isinstance(e, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'step'}: {err['msg']}" for err in e.errors()[:5])
    return str(e)


@router.post("/training-runs", status_code=201, response_model=RunOut, response_model_exclude_unset=True,
             summary="Start tracking a fine-tuning run (status running)")
def create_run(request: Request, body: RunIn, key: Writer) -> dict[str, Any]:
    return _repo(request).create_run(
        key.project_id, method=body.method, base_model=body.base_model, params=body.params, name=body.name,
        dataset=body.dataset.model_dump() if body.dataset else None, data_path=body.data_path,
        hardware=body.hardware, output_dir=body.output_dir, sweep_id=body.sweep_id, trial=body.trial,
        tags=body.tags, actor=key.public_key)


@router.get("/training-runs", response_model=RunPage, response_model_exclude_unset=True,
            summary="List training runs, newest first")
def list_runs(request: Request, key: require_read, method: Method | None = None, status: RunStatus | None = None,
              sweep_id: Annotated[str, Query(min_length=1, max_length=64)] | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"data": _repo(request).list_runs(key.project_id, method=method, status=status, sweep_id=sweep_id,
                                             limit=limit)}


@router.get("/training-runs/{run_id}", response_model=RunOut, response_model_exclude_unset=True,
            summary="Get a run (with steps=true: its logged steps too)")
def get_run(request: Request, run_id: IdP, key: require_read, steps: bool = False) -> dict[str, Any]:
    return _repo(request).get_run(key.project_id, run_id, steps=steps)


@router.patch("/training-runs/{run_id}", response_model=RunOut, response_model_exclude_unset=True,
              summary="Change a run: status (end, resume), metrics and artifacts (merged), error, duration")
def patch_run(request: Request, run_id: IdP, body: RunPatch, key: Writer) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(include=body.model_fields_set).items() if v is not None}
    if "metrics" in changes:
        changes["metrics"] = {k: v for k, v in changes["metrics"].items() if v is not None}
    return _repo(request).update_run(key.project_id, run_id, changes)


@router.post("/training-runs/{run_id}/steps", response_model=StepsOut,
             summary="Log steps (upserted on step number); says whether a cancel was requested")
def log_steps(request: Request, run_id: IdP, body: StepsIn, key: Writer) -> dict[str, Any]:
    good: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for i, raw in enumerate(body.steps):
        try:
            good.append(_check_step(raw))
        except (ValidationError, ValueError) as e:
            step = raw.get("step") if isinstance(raw, dict) and isinstance(raw.get("step"), int) else None
            rejected.append({"index": i, "step": step, "message": _why(e)})
    out = _repo(request).log_steps(key.project_id, run_id, good)
    return {**out, "rejected": rejected}


@router.post("/training-runs/{run_id}/cancel", response_model=RunOut, response_model_exclude_unset=True,
             summary="Ask a running run to stop (it saves a checkpoint and ends cancelled); 409 if not running")
def cancel_run(request: Request, run_id: IdP, key: Writer) -> dict[str, Any]:
    return _repo(request).request_cancel(key.project_id, run_id)


@router.delete("/training-runs/{run_id}", status_code=204, summary="Delete a run and its steps (files stay)")
def delete_run(request: Request, run_id: IdP, key: Writer) -> None:
    _repo(request).delete_run(key.project_id, run_id)


@router.post("/training-sweeps", status_code=201, response_model=SweepOut, response_model_exclude_unset=True,
             summary="Start tracking a hyperparameter sweep (status running)")
def create_sweep(request: Request, body: SweepIn, key: Writer) -> dict[str, Any]:
    return _repo(request).create_sweep(key.project_id, name=body.name, space=body.space,
                                       objective=body.objective, settings=body.settings, actor=key.public_key)


@router.get("/training-sweeps", response_model=SweepPage, response_model_exclude_unset=True,
            summary="List sweeps, newest first")
def list_sweeps(request: Request, key: require_read, status: SweepStatus | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"data": _repo(request).list_sweeps(key.project_id, status=status, limit=limit)}


@router.get("/training-sweeps/{sweep_id}", response_model=SweepOut, response_model_exclude_unset=True,
            summary="Get a sweep with its runs (trials)")
def get_sweep(request: Request, sweep_id: IdP, key: require_read) -> dict[str, Any]:
    return _repo(request).get_sweep(key.project_id, sweep_id, runs=True)


@router.patch("/training-sweeps/{sweep_id}", response_model=SweepOut, response_model_exclude_unset=True,
              summary="Change a sweep: status, best run, summary (merged)")
def patch_sweep(request: Request, sweep_id: IdP, body: SweepPatch, key: Writer) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(include=body.model_fields_set).items() if v is not None}
    return _repo(request).update_sweep(key.project_id, sweep_id, changes)


@router.delete("/training-sweeps/{sweep_id}", status_code=204, summary="Delete a sweep record (its runs stay)")
def delete_sweep(request: Request, sweep_id: IdP, key: Writer) -> None:
    _repo(request).delete_sweep(key.project_id, sweep_id)
