"""Score configs: ``POST/GET /api/v1/score-configs``, ``GET/PATCH /api/v1/score-configs/{id}``.

A config types a score name (numeric with an optional range, boolean, categorical with allowed
labels and values); scores that name it (``config_id``) or carry its name are validated at
ingestion. Configs are archived (``PATCH {"archived": true}``), never deleted, so old scores keep
their meaning. Writes need an admin key; reads a read key. The ingest paths read a project's
configs through :func:`score_configs_for`: cached per project, dropped here on every change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from podium.core.ttlcache import TTLCache
from podium.errors import NotFound
from podium.server.auth import require_admin, require_read
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.score_configs import ScoreConfigRepo, ScoreConfigs

__all__ = ["CACHE_TTL", "invalidate", "router", "score_configs_for"]

router = APIRouter(prefix="/api/v1", tags=["score configs"], route_class=StrictJSONRoute)

#: Seconds another server process may keep validating against a config changed elsewhere.
CACHE_TTL = 10.0

_Finite = Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)]


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Annotated[str, Field(min_length=1, max_length=256)]
    value: _Finite


class ScoreConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=256)]
    data_type: Literal["numeric", "boolean", "categorical"]
    min_value: _Finite | None = None
    max_value: _Finite | None = None
    categories: Annotated[list[Category], Field(max_length=1000)] | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    archived: bool = False


class ScoreConfigPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    data_type: Literal["numeric", "boolean", "categorical"] | None = None
    min_value: _Finite | None = None
    max_value: _Finite | None = None
    categories: Annotated[list[Category], Field(max_length=1000)] | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    archived: bool | None = None


class ScoreConfigOut(BaseModel):
    id: str
    name: str
    data_type: str
    min_value: float | None
    max_value: float | None
    categories: list[dict[str, Any]] | None
    description: str | None
    archived: bool
    created_at: Any
    updated_at: Any


class ScoreConfigPage(BaseModel):
    data: list[ScoreConfigOut]


def _repo(request: Request) -> ScoreConfigRepo:
    st: AppState = request.app.state.podium
    return ScoreConfigRepo(st.store.engine)


def _cache(request: Request) -> TTLCache[ScoreConfigs]:
    cache: TTLCache[ScoreConfigs] | None = getattr(request.app.state, "score_configs", None)
    if cache is None:
        cache = request.app.state.score_configs = TTLCache(CACHE_TTL, max_entries=10_000)
    return cache


async def score_configs_for(request: Request, project_id: str) -> ScoreConfigs:
    """The project's configs (one query per project per ``CACHE_TTL`` at most, off the event loop)."""
    repo = _repo(request)
    found = await _cache(request).get_or_load(project_id, lambda: repo.snapshot(project_id))
    return found if found is not None else ScoreConfigs()


def invalidate(request: Request, project_id: str) -> None:
    """Drop the project's cached configs (after any change to them)."""
    _cache(request).invalidate(project_id)


@router.get("/score-configs", response_model=ScoreConfigPage, summary="List score configs")
def list_configs(request: Request, key: require_read, include_archived: bool = True) -> dict[str, Any]:
    return {"data": _repo(request).list(key.project_id, include_archived=include_archived)}


@router.post("/score-configs", status_code=201, response_model=ScoreConfigOut,
             summary="Create a score config (admin)")
def create_config(request: Request, body: ScoreConfigIn, key: require_admin) -> dict[str, Any]:
    row = _repo(request).create(key.project_id, body.model_dump())
    _cache(request).invalidate(key.project_id)
    return row


@router.get("/score-configs/{config_id}", response_model=ScoreConfigOut, summary="Get a score config")
def get_config(request: Request, config_id: str, key: require_read) -> dict[str, Any]:
    row = _repo(request).get(key.project_id, config_id)
    if row is None:
        raise NotFound(f"no score config {config_id!r} in this project; GET /api/v1/score-configs lists them")
    return row


@router.patch("/score-configs/{config_id}", response_model=ScoreConfigOut,
              summary="Change or archive a score config (admin)")
def patch_config(request: Request, config_id: str, body: ScoreConfigPatch, key: require_admin) -> dict[str, Any]:
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("archived") is None:
        changes.pop("archived", None)
    for f in ("name", "data_type"):
        if f in changes and changes[f] is None:
            del changes[f]
    row = _repo(request).update(key.project_id, config_id, changes)
    _cache(request).invalidate(key.project_id)
    if row is None:
        raise NotFound(f"no score config {config_id!r} in this project; GET /api/v1/score-configs lists them")
    return row
