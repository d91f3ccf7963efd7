"""Canary deployments: ``/api/v1/canaries`` (start one, list, one with its audit trail and latest
gate check) and ``/api/v1/canaries/{id}/rollback|promote|pause|resume|abort``;
``/api/v1/canaries/eval-targets`` declares the two gateway aliases a client-side eval-suite gate
runs against (``podium deploy canary --suite``). Reads need a read key, changes an admin key (a
canary rewrites a gateway alias, which is an admin change). The state machine is
:mod:`podium.monitor.canary`; user docs: docs/canary.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from podium.errors import BadRequest
from podium.gateway.config import parse_alias
from podium.monitor.canary.controller import CanaryController
from podium.registry.registry import ModelRegistry, check_alias, check_name
from podium.server.audit_log import noted
from podium.server.auth import require_admin, require_read
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState

__all__ = ["public_canary", "router"]

router = APIRouter(prefix="/api/v1/canaries", tags=["deployments"], route_class=StrictJSONRoute)

IdP = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_Ref = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                            description="a version number (4) or a registry alias (challenger)")]
_Gate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class GatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_error_rate_increase: _Gate | None = None
    max_p95_ratio: Annotated[float, Field(ge=1, allow_inf_nan=False)] | None = None
    min_p95_ms: _Gate | None = None
    max_score_drop: _Gate | None = None
    max_guardrail_rate_increase: _Gate | None = None
    min_scored: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="Scored candidate answers per online score before that score is judged (10; at "
        "most min_requests).")


class CanaryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gateway_alias: Annotated[str, Field(min_length=1, max_length=256)]
    model: Annotated[str, Field(min_length=1, max_length=200, description="the registered model's name")]
    candidate: _Ref | int
    baseline: _Ref | int = "champion"
    steps: Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=2, max_length=20)] = [5, 25, 50, 100]
    step_duration_s: Annotated[int, Field(ge=0, le=30 * 86400)] = 300
    min_requests: Annotated[int, Field(ge=1, le=10_000_000)] = 50
    gates: GatesIn = GatesIn()
    suite: Annotated[dict[str, Any], Field(max_length=50, description=(
        "the eval-suite evidence (podium deploy canary --suite sends it): suite, passed, metrics, experiments"))] \
        | None = None
    promote_alias: Annotated[str, Field(min_length=1, max_length=64)] = "champion"
    alert_rule: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    start: bool = True


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(max_length=2000)] | None = None


class EvalTargetsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gateway_alias: Annotated[str, Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(min_length=1, max_length=200)]
    candidate: _Ref | int
    baseline: _Ref | int = "champion"
    remove: bool = False


class CanaryOut(BaseModel):
    id: str
    gateway_alias: str
    model_name: str
    baseline_version: int
    candidate_version: int
    steps: list[int]
    step_index: int
    percent: int
    weights: dict[str, int]
    step_duration_s: int
    min_requests: int
    gates: dict[str, float]
    suite: dict[str, Any] | None
    status: Literal["pending", "running", "paused", "promoted", "rolled_back", "aborted"]
    promote_alias: str
    alert_rule: str | None
    actor: str | None
    reason: str | None
    step_started_at: Any
    last_check: dict[str, Any] | None
    created_at: Any
    updated_at: Any
    ended_at: Any


class CanaryEvent(BaseModel):
    seq: int
    action: str
    detail: dict[str, Any]
    actor: str | None
    created_at: Any


class CanaryDetail(CanaryOut):
    events: list[CanaryEvent]


class CanaryPage(BaseModel):
    data: list[CanaryOut]


def public_canary(row: dict[str, Any]) -> dict[str, Any]:
    """A stored canary as the API shows it: the alias's stored spec (it holds encrypted secrets)
    left out, the current weights added."""
    out = {k: v for k, v in row.items() if k not in ("original_spec", "next_check_at", "project_id")}
    out["weights"] = CanaryController.weights(row)
    out["percent"] = out["weights"]["candidate"]
    return out


def _ctl(request: Request) -> CanaryController:
    st: AppState = request.app.state.podium
    return CanaryController(st.store, gateway=st.gateway, base_url=st.settings.base_url)


def _version(request: Request, project_id: str, model: str, ref: str | int) -> int:
    st: AppState = request.app.state.podium
    reg = ModelRegistry(st.store, st.settings.home_dir)
    return int(reg.resolve(project_id, f"{model}@{ref}")["version"])


@router.post("", status_code=201, response_model=CanaryOut,
             summary="Start a canary: split a gateway alias between two versions of a registered model (admin)")
def create(request: Request, body: CanaryIn, key: require_admin) -> dict[str, Any]:
    """``baseline`` (default ``champion``) and ``candidate`` are version numbers or registry
    aliases, resolved now to numbers. The alias serves baseline ``100 - p`` / candidate ``p`` for
    ``p`` in ``steps``; the worker checks the gates and steps, promotes or rolls back."""
    check_name(body.model)
    check_alias(body.promote_alias)
    base = _version(request, key.project_id, body.model, body.baseline)
    cand = _version(request, key.project_id, body.model, body.candidate)
    row = _ctl(request).start(
        key.project_id, gateway_alias=body.gateway_alias, model=body.model, baseline_version=base,
        candidate_version=cand, steps=body.steps, step_duration_s=body.step_duration_s,
        min_requests=body.min_requests, gates=body.gates.model_dump(exclude_none=True), suite=body.suite,
        promote_alias=body.promote_alias, alert_rule=body.alert_rule, start=body.start, actor=key.public_key)
    return noted(request.state, "canary.start", public_canary(row), target_type="canary", target_id=row["id"])


@router.get("", response_model=CanaryPage, summary="List canaries, newest first")
def list_canaries(
    request: Request, key: require_read,
    status: Annotated[Literal["active", "pending", "running", "paused", "promoted", "rolled_back", "aborted"] | None,
                      Query(description="active: pending, running or paused")] = None,
    gateway_alias: Annotated[str | None, Query(max_length=256)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    rows = st.store.canaries.list_canaries(key.project_id, status=status, gateway_alias=gateway_alias,
                                           model_name=model, limit=limit)
    return {"data": [public_canary(r) for r in rows]}


@router.post("/eval-targets", summary="Declare (or remove) the gateway aliases an eval-suite gate runs against "
                                      "(admin)")
def eval_targets(request: Request, body: EvalTargetsIn, key: require_admin) -> dict[str, Any]:
    """Two API aliases, ``<alias>--canary-baseline`` and ``<alias>--canary-candidate``, each one
    deployment of the version copied from the alias's deployment (provider, api_base and the
    stored key, which never leaves the server), so a client can run its suite on both versions
    through the gateway before the canary starts; ``remove: true`` deletes them."""
    st: AppState = request.app.state.podium
    ctl = _ctl(request)
    names = {"baseline": f"{body.gateway_alias}--canary-baseline", "candidate": f"{body.gateway_alias}--canary-candidate"}
    if body.remove:
        have = {r["name"] for r in st.store.gateway.list_models(key.project_id)}
        for n in names.values():
            if n in have:
                st.store.gateway.delete_model(key.project_id, n)
        ctl.invalidate(key.project_id)
        return {"removed": sorted(names.values())}
    check_name(body.model)
    versions = {"baseline": _version(request, key.project_id, body.model, body.baseline),
                "candidate": _version(request, key.project_id, body.model, body.candidate)}
    if versions["baseline"] == versions["candidate"]:
        raise BadRequest(f"baseline and candidate are both version {versions['baseline']} of {body.model!r}",
                         details=[{"field": "candidate", "message": "same as the baseline"}])
    original = ctl.stored_alias(key.project_id, body.gateway_alias)
    fake = {"original_spec": {**original, "fallbacks": []}, "model_name": body.model}
    out: dict[str, Any] = {}
    for role, name in names.items():
        spec = ctl.single_spec(fake, versions[role])
        parse_alias({**spec, "name": name})
        st.store.gateway.put_model(key.project_id, name, spec)
        out[role] = {"alias": name, "version": versions[role], "model": f"registry:/{body.model}@{versions[role]}"}
    ctl.invalidate(key.project_id)
    return out


@router.get("/{canary_id}", response_model=CanaryDetail,
            summary="A canary with its audit trail (every change, in order) and its latest gate check")
def get_canary(request: Request, canary_id: IdP, key: require_read) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    row = st.store.canaries.get(key.project_id, canary_id)
    return {**public_canary(row), "events": st.store.canaries.events(key.project_id, canary_id)}


def _act(request: Request, canary_id: str, key: Any, body: ActionIn | None, what: str) -> dict[str, Any]:
    ctl = _ctl(request)
    reason = body.reason if body else None
    pid, actor = key.project_id, key.public_key
    if what == "rollback":
        row = ctl.rollback(pid, canary_id, actor=actor, reason=reason)
    elif what == "promote":
        row = ctl.promote(pid, canary_id, actor=actor, reason=reason)
    elif what == "pause":
        row = ctl.pause(pid, canary_id, actor=actor)
    elif what == "resume":
        row = ctl.resume(pid, canary_id, actor=actor)
    else:
        row = ctl.abort(pid, canary_id, actor=actor, reason=reason)
    assert row is not None  # by hand: a conflict raises instead
    return noted(request.state, f"canary.{what}", public_canary(row), target_type="canary", target_id=canary_id)


@router.post("/{canary_id}/rollback", response_model=CanaryOut,
             summary="Roll back now: the gateway alias serves the baseline alone (admin)")
def rollback(request: Request, canary_id: IdP, key: require_admin, body: ActionIn | None = None) -> dict[str, Any]:
    return _act(request, canary_id, key, body, "rollback")


@router.post("/{canary_id}/promote", response_model=CanaryOut,
             summary="Promote now: the registry alias moves to the candidate, which serves alone (admin)")
def promote(request: Request, canary_id: IdP, key: require_admin, body: ActionIn | None = None) -> dict[str, Any]:
    return _act(request, canary_id, key, body, "promote")


@router.post("/{canary_id}/pause", response_model=CanaryOut,
             summary="Pause: no steps and no automatic rollback; the current split stays (admin)")
def pause(request: Request, canary_id: IdP, key: require_admin, body: ActionIn | None = None) -> dict[str, Any]:
    return _act(request, canary_id, key, body, "pause")


@router.post("/{canary_id}/resume", response_model=CanaryOut,
             summary="Resume a paused canary (its step's clock restarts) or start a pending one (admin)")
def resume(request: Request, canary_id: IdP, key: require_admin, body: ActionIn | None = None) -> dict[str, Any]:
    return _act(request, canary_id, key, body, "resume")


@router.post("/{canary_id}/abort", response_model=CanaryOut,
             summary="Abort: the gateway alias goes back exactly as it was before the canary (admin)")
def abort(request: Request, canary_id: IdP, key: require_admin, body: ActionIn | None = None) -> dict[str, Any]:
    return _act(request, canary_id, key, body, "abort")
