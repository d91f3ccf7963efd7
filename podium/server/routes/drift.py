"""Drift monitors: ``/api/v1/drift-monitors`` (create, list), ``/api/v1/drift-monitors/{monitor}``
(get, change, delete; by id or name), ``POST .../run`` (run now) and ``GET .../results``
(history, newest first). See docs/drift.md.

Reads need a read key, changes and runs a member or admin key. Creating, changing and running
need the ``monitor`` extra (evidently): without it they answer 503 naming the install command.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import NotFound, ValidationFailed
from podium.monitor.drift.spec import MAX_SAMPLE, check_monitor
from podium.monitor.drift.stattests import require
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["drift"], route_class=StrictJSONRoute)

Reader = Annotated[ApiKey, needs(Action.READ, "read drift monitors")]
Writer = Annotated[ApiKey, needs(Action.WRITE, "change or run drift monitors")]

_Str = Annotated[str, Field(min_length=1, max_length=1000)]
_Finite = Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)]
_Seconds = Annotated[int, Field(ge=60, le=90 * 86400)]


class FilterIn(BaseModel):
    """The trace list's filters (the windows set the times)."""

    model_config = ConfigDict(extra="forbid")
    name: _Str | None = None
    q: _Str | None = None
    user_id: _Str | None = None
    session_id: _Str | None = None
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=20)] | None = None
    status: Literal["ok", "error"] | None = None
    model: _Str | None = None
    environment: _Str | None = None
    release: _Str | None = None
    min_latency_ms: _Finite | None = None
    max_latency_ms: _Finite | None = None
    min_cost: _Finite | None = None
    max_cost: _Finite | None = None
    score_name: _Str | None = None
    min_score: _Finite | None = None
    max_score: _Finite | None = None


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: FilterIn | None = None
    span_kind: _Str | None = None
    span_name: _Str | None = None


class ReferenceIn(BaseModel):
    """``rolling`` (``length_s`` before the current window, less ``gap_s``), ``fixed``
    (``start``, ``end``) or ``dataset`` (``dataset``: its current items)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["rolling", "fixed", "dataset"]
    length_s: Annotated[int, Field(ge=60, le=366 * 86400)] | None = None
    gap_s: Annotated[int, Field(ge=0, le=366 * 86400)] | None = None
    start: datetime | None = None
    end: datetime | None = None
    dataset: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class ThresholdsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    p_value: Annotated[float, Field(ge=1e-12, le=0.5)] | None = None
    embedding_auc: Annotated[float, Field(ge=0.5, le=1.0)] | None = None
    min_samples: Annotated[int, Field(ge=5, le=MAX_SAMPLE)] | None = None
    new_topic_min_share: Annotated[float, Field(ge=0.0, le=1.0)] | None = None


_Features = Annotated[list[Annotated[str, Field(min_length=1, max_length=262)]], Field(min_length=1, max_length=30)]


class MonitorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=10_000)] | None = None
    scope: ScopeIn | None = None
    reference: ReferenceIn | None = None
    window_s: _Seconds = 86400
    features: _Features | None = None
    thresholds: ThresholdsIn | None = None
    sample_size: Annotated[int, Field(ge=10, le=MAX_SAMPLE)] = 1000
    interval_s: _Seconds = 3600
    enabled: bool = True


class MonitorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    scope: ScopeIn | None = None
    reference: ReferenceIn | None = None
    window_s: _Seconds | None = None
    features: _Features | None = None
    thresholds: ThresholdsIn | None = None
    sample_size: Annotated[int, Field(ge=10, le=MAX_SAMPLE)] | None = None
    interval_s: _Seconds | None = None
    enabled: bool | None = None


class ResultOut(BaseModel):
    id: str
    monitor_id: str
    computed_at: datetime
    status: str
    window_start: datetime
    window_end: datetime
    reference_start: datetime | None
    reference_end: datetime | None
    reference_n: int
    current_n: int
    drifted: bool
    statistics: dict[str, Any] | None
    details: dict[str, Any] | None
    error: str | None
    duration_ms: float | None


class MonitorOut(BaseModel):
    id: str
    name: str
    description: str | None
    scope: dict[str, Any] | None
    reference: dict[str, Any]
    window_s: int
    features: list[str]
    thresholds: dict[str, Any] | None
    sample_size: int
    interval_s: int
    enabled: bool
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_result: ResultOut | None = None


class MonitorPage(BaseModel):
    data: list[MonitorOut]


class ResultPage(BaseModel):
    data: list[ResultOut]


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _clean(model: BaseModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    out = model.model_dump(exclude_none=True, mode="json")
    return out


def _fields(body: MonitorIn | MonitorPatch, *, only_set: bool) -> dict[str, Any]:
    keys = body.model_fields_set if only_set else set(type(body).model_fields)
    out: dict[str, Any] = {}
    for k in keys:
        v = getattr(body, k)
        if isinstance(v, BaseModel):
            v = _clean(v)
        elif k == "scope" and v is None:
            v = None
        out[k] = v
    if isinstance(out.get("scope"), dict) and "filter" not in out["scope"]:
        out["scope"]["filter"] = {}
    return out


def _check_dataset(request: Request, project_id: str, fields: dict[str, Any]) -> None:
    ref = fields.get("reference") or {}
    if ref.get("kind") == "dataset" and not _st(request).store.drift.dataset_exists(project_id, ref["dataset"]):
        raise ValidationFailed(f"reference.dataset: no dataset {ref['dataset']!r} in this project; "
                               "GET /api/v1/datasets lists them",
                               details=[{"field": "reference.dataset", "message": "unknown dataset"}])


def _monitor(request: Request, project_id: str, monitor: str) -> dict[str, Any]:
    m = _st(request).store.drift.get(project_id, monitor)
    if m is None:
        raise NotFound(f"no drift monitor {monitor!r} (id or name) in this project; "
                       "GET /api/v1/drift-monitors lists them")
    return m


@router.post("/drift-monitors", status_code=201, response_model=MonitorOut, summary="Create a drift monitor")
def create_monitor(request: Request, body: MonitorIn, key: Writer) -> dict[str, Any]:
    require()
    fields = check_monitor(_fields(body, only_set=False))
    _check_dataset(request, key.project_id, fields)
    return _st(request).store.drift.create(key.project_id, fields)


@router.get("/drift-monitors", response_model=MonitorPage, summary="List drift monitors with their last result")
def list_monitors(request: Request, key: Reader) -> dict[str, Any]:
    store = _st(request).store
    latest = store.drift.latest_results(key.project_id)
    rows = store.drift.monitors(key.project_id)
    for r in rows:
        r["last_result"] = latest.get(r["id"])
    return {"data": rows}


@router.get("/drift-monitors/{monitor}", response_model=MonitorOut, summary="Get a drift monitor (id or name)")
def get_monitor(request: Request, monitor: str, key: Reader) -> dict[str, Any]:
    m = _monitor(request, key.project_id, monitor)
    found = _st(request).store.drift.results(key.project_id, m["id"], limit=1)
    m["last_result"] = found[0] if found else None
    return m


@router.patch("/drift-monitors/{monitor}", response_model=MonitorOut, summary="Change a drift monitor")
def patch_monitor(request: Request, monitor: str, body: MonitorPatch, key: Writer) -> dict[str, Any]:
    require()
    cur = _monitor(request, key.project_id, monitor)
    changes = {k: v for k, v in _fields(body, only_set=True).items() if v is not None or k == "description"}
    if isinstance(changes.get("thresholds"), dict):
        changes["thresholds"] = {**(cur.get("thresholds") or {}), **changes["thresholds"]}
    merged = check_monitor({**cur, **changes})
    _check_dataset(request, key.project_id, merged)
    row = _st(request).store.drift.update(key.project_id, cur["id"], {k: merged[k] for k in changes})
    if row is None:
        raise NotFound(f"drift monitor {monitor!r} was deleted meanwhile")
    return row


@router.delete("/drift-monitors/{monitor}", status_code=204, summary="Delete a drift monitor and its results")
def delete_monitor(request: Request, monitor: str, key: Writer) -> Response:
    m = _monitor(request, key.project_id, monitor)
    _st(request).store.drift.delete(key.project_id, m["id"])
    return Response(status_code=204)


@router.post("/drift-monitors/{monitor}/run", response_model=ResultOut,
             summary="Run a drift monitor now (synchronously) and store its result")
async def run_monitor_now(request: Request, monitor: str, key: Writer) -> dict[str, Any]:
    from podium.monitor.drift.job import record_run

    require()
    st = _st(request)
    m = await run_in_threadpool(_monitor, request, key.project_id, monitor)
    return await run_in_threadpool(record_run, st.store, key.project_id, m)


@router.get("/drift-monitors/{monitor}/results", response_model=ResultPage,
            summary="A drift monitor's results, newest first")
def list_results(request: Request, monitor: str, key: Reader,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 before: Annotated[datetime | None, Query(description="Only results computed before this time")]
                 = None) -> dict[str, Any]:
    m = _monitor(request, key.project_id, monitor)
    if before is not None and before.tzinfo is None:
        raise ValidationFailed("before: the time has no timezone; add one, e.g. Z for UTC",
                               details=[{"field": "before", "message": "no timezone"}])
    return {"data": _st(request).store.drift.results(key.project_id, m["id"], limit=limit, before=before)}
