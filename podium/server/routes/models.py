"""The model registry: ``/api/v1/registry/models`` (registered models), ``.../{name}/versions``
(immutable numbered versions), ``.../{name}/aliases/{alias}`` (move, history, one-call rollback)
and ``.../versions/{n}/lineage``. Reads need a read key, changes a write key. The path keeps clear
of the gateway's OpenAI ``/v1/models`` and its ``/api/v1/gateway/...`` admin routes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from podium.core.roles import Action
from podium.registry.lineage import gateway_deployments, lineage
from podium.registry.registry import ModelRegistry, check_alias, check_name
from podium.server.audit_log import noted
from podium.server.auth import needs, require_read
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/registry", tags=["model registry"], route_class=StrictJSONRoute)

Writer = Annotated[ApiKey, needs(Action.WRITE, "change the model registry")]
Name = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
AliasP = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]
VersionP = Annotated[int, Path(ge=1, le=2_000_000_000)]
_Str = Annotated[str, Field(max_length=10_000)]
_Tag = Annotated[str, Field(min_length=1, max_length=64)]


class EvalResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suite: Annotated[str, Field(min_length=1, max_length=256)]
    experiment_ids: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=100)] = []
    metrics: Annotated[dict[Annotated[str, Field(max_length=256)],
                            Annotated[float, Field(allow_inf_nan=False)]], Field(max_length=200)] = {}


class ArtifactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["adapter", "merged", "gguf", "external"] = "merged"
    uri: Annotated[str, Field(min_length=1, max_length=2048)]
    format: Annotated[str, Field(max_length=64)] | None = None
    size: Annotated[int, Field(ge=0, le=10**15)] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: _Str | None = None
    tags: Annotated[list[_Tag], Field(max_length=50)] = []


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: _Str | None = None
    tags: Annotated[list[_Tag], Field(max_length=50)] | None = None


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact: ArtifactIn
    base_model: Annotated[str, Field(max_length=512)] | None = None
    training_run_id: Annotated[str, Field(max_length=64)] | None = None
    dataset: Annotated[str, Field(max_length=220, description="DATASET@VERSION")] | None = None
    eval_results: Annotated[list[EvalResult], Field(max_length=50)] = []
    metadata: Annotated[dict[Annotated[str, Field(max_length=256)], Any], Field(max_length=200)] = {}
    description: _Str | None = None
    expected_version: Annotated[int, Field(ge=1, le=2_000_000_000, description=(
        "Refuse with 409 unless the new version gets this number"))] | None = None


class VersionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: _Str | None = None
    metadata: Annotated[dict[Annotated[str, Field(max_length=256)], Any], Field(max_length=200)] | None = None
    status: Literal["ready", "archived"] | None = None


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Annotated[int, Field(ge=1, le=2_000_000_000)]
    comment: Annotated[str, Field(max_length=2000)] | None = None


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Annotated[str, Field(max_length=2000)] | None = None


class ModelOut(BaseModel):
    name: str
    description: str | None
    tags: list[str]
    latest_version: int
    aliases: dict[str, int]
    created_by: str | None
    created_at: Any
    updated_at: Any


class ModelPage(BaseModel):
    data: list[ModelOut]


class VersionOut(BaseModel):
    name: str
    version: int
    artifact: dict[str, Any]
    base_model: str | None
    training_run_id: str | None
    dataset: dict[str, Any] | None
    eval_results: list[dict[str, Any]]
    metadata: dict[str, Any]
    description: str | None
    status: str
    aliases: list[str]
    created_by: str | None
    created_at: Any
    updated_at: Any


class VersionPage(BaseModel):
    data: list[VersionOut]


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    updated_at: Any
    updated_by: str | None


class AliasEvent(BaseModel):
    alias: str
    seq: int
    action: str
    from_version: int | None
    to_version: int | None
    actor: str | None
    comment: str | None
    created_at: Any


class AliasHistory(BaseModel):
    data: list[AliasEvent]


class Lineage(BaseModel):
    name: str
    version: int
    nodes: list[dict[str, Any]]
    edges: list[dict[str, str]]


def _reg(request: Request) -> ModelRegistry:
    st: AppState = request.app.state.podium
    return ModelRegistry(st.store, st.settings.home_dir)


@router.get("/models", response_model=ModelPage, summary="List registered models")
def list_models(request: Request, key: require_read) -> dict[str, Any]:
    return {"data": _reg(request).repo.list_models(key.project_id)}


@router.post("/models", status_code=201, response_model=ModelOut, summary="Create a registered model")
def create_model(request: Request, body: ModelIn, key: Writer) -> dict[str, Any]:
    check_name(body.name)
    return dict(_reg(request).repo.create_model(key.project_id, body.name, description=body.description,
                                                tags=body.tags, actor=key.public_key))


@router.get("/models/{name}", response_model=ModelOut, summary="Get a registered model")
def get_model(request: Request, name: Name, key: require_read) -> dict[str, Any]:
    return dict(_reg(request).repo.get_model(key.project_id, name))


@router.patch("/models/{name}", response_model=ModelOut, summary="Change a model's description or tags")
def patch_model(request: Request, name: Name, body: ModelPatch, key: Writer) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(include=body.model_fields_set).items()
               if not (k == "tags" and v is None)}
    return dict(_reg(request).repo.update_model(key.project_id, name, changes))


@router.get("/models/{name}/versions", response_model=VersionPage, summary="List a model's versions, newest first")
def list_versions(request: Request, name: Name, key: require_read,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> dict[str, Any]:
    return {"data": _reg(request).repo.list_versions(key.project_id, name, limit=limit)}


@router.post("/models/{name}/versions", status_code=201, response_model=VersionOut,
             summary="Register a new version (numbered 1, 2, ...; immutable)")
def create_version(request: Request, name: Name, body: VersionIn, key: Writer) -> dict[str, Any]:
    a = body.artifact
    return _reg(request).register(
        key.project_id, name, artifact=a.uri, kind=a.kind, format=a.format, sha256=a.sha256, size=a.size,
        local=False, base_model=body.base_model, training_run_id=body.training_run_id, dataset=body.dataset,
        eval_results=[e.model_dump() for e in body.eval_results], metadata=body.metadata,
        description=body.description, expected_version=body.expected_version,
        actor=key.public_key)


@router.get("/resolve", response_model=VersionOut,
            summary="Resolve a reference (NAME@3, NAME@champion, registry:/NAME@champion) to a version")
def resolve(request: Request, key: require_read,
            ref: Annotated[str, Query(min_length=1, max_length=300)]) -> dict[str, Any]:
    return _reg(request).resolve(key.project_id, ref)


@router.get("/models/{name}/versions/{version}", response_model=VersionOut, summary="Get a version")
def get_version(request: Request, name: Name, version: VersionP, key: require_read) -> dict[str, Any]:
    return dict(_reg(request).repo.get_version(key.project_id, name, version))


@router.patch("/models/{name}/versions/{version}", response_model=VersionOut,
              summary="Change a version's description, metadata or status (the artifact and lineage are immutable)")
def patch_version(request: Request, name: Name, version: VersionP, body: VersionPatch, key: Writer) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(include=body.model_fields_set).items() if v is not None}
    return dict(_reg(request).repo.update_version(key.project_id, name, version, changes))


@router.get("/models/{name}/versions/{version}/lineage", response_model=Lineage,
            summary="The version's lineage: dataset -> run -> version -> deployments -> traces")
def get_lineage(request: Request, name: Name, version: VersionP, key: require_read) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    reg = _reg(request)
    return lineage(reg, key.project_id, name, version, gateway_deployments(st.store, st.settings, key.project_id))


@router.get("/models/{name}/aliases/{alias}", response_model=AliasOut, summary="Where an alias points")
def get_alias(request: Request, name: Name, alias: AliasP, key: require_read) -> dict[str, Any]:
    return dict(_reg(request).repo.get_alias(key.project_id, name, alias))


@router.put("/models/{name}/aliases/{alias}", response_model=AliasOut,
            summary="Point an alias (champion, challenger, ...) at a version; the move is recorded")
def put_alias(request: Request, name: Name, alias: AliasP, body: AliasIn, key: Writer) -> dict[str, Any]:
    check_alias(alias)
    return noted(request.state, "model.alias.move", _reg(request).set_alias(
        key.project_id, name, alias, body.version, actor=key.public_key, comment=body.comment),
        target_type="registered_model", target_id=name, detail={"alias": alias})


@router.delete("/models/{name}/aliases/{alias}", status_code=204, summary="Remove an alias (recorded)")
def delete_alias(request: Request, name: Name, alias: AliasP, key: Writer) -> None:
    _reg(request).repo.delete_alias(key.project_id, name, alias, actor=key.public_key)
    noted(request.state, "model.alias.delete", None, target_type="registered_model", target_id=name,
          detail={"alias": alias})


@router.get("/models/{name}/aliases/{alias}/history", response_model=AliasHistory,
            summary="An alias's moves, newest first")
def alias_history(request: Request, name: Name, alias: AliasP, key: require_read,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"data": _reg(request).repo.alias_history(key.project_id, name, alias, limit=limit)}


@router.post("/models/{name}/aliases/{alias}/rollback", response_model=AliasOut,
             summary="Move the alias back to where it pointed before its last move")
def rollback_alias(request: Request, name: Name, alias: AliasP, key: Writer,
                   body: RollbackIn | None = None) -> dict[str, Any]:
    return noted(request.state, "model.alias.rollback", dict(_reg(request).repo.rollback_alias(
        key.project_id, name, alias, actor=key.public_key, comment=body.comment if body else None)),
        target_type="registered_model", target_id=name, detail={"alias": alias})
