"""The key's project, its API keys and its model price overrides."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from podium.server.audit_log import noted
from podium.server.auth import CurrentKey, require_admin, require_read
from podium.server.body import StrictJSONRoute
from podium.server.schemas import KeyOut, NewKeyOut, PriceIn, PriceOut, ProjectOut
from podium.server.state import AppState

__all__ = ["health_router", "router"]

router = APIRouter(prefix="/api/v1", tags=["projects"], route_class=StrictJSONRoute)
health_router = APIRouter(prefix="/api/v1", tags=["meta"])  # the only admin route a gateway-only process serves


def _st(request: Request) -> AppState:
    return request.app.state.podium


@health_router.get("/health", tags=["meta"], summary="Liveness and ingest counters (no auth)")
def health(request: Request) -> dict[str, Any]:
    st = _st(request)
    return {
        "status": "ok",
        "version": request.app.version,
        "database": st.store.dialect,
        "ingest": st.ingester.stats(),
    }


@router.get("/project", response_model=ProjectOut, summary="The project of the calling key")
def current_project(request: Request, key: CurrentKey) -> dict[str, Any]:
    return asdict(_st(request).store.projects.get_project(key.project_id))


class KeyCreate(BaseModel):
    role: str = Field(default="member", description="admin | member | ingest | viewer")
    note: str | None = None


@router.get("/keys", response_model=list[KeyOut], summary="API keys of this project")
def list_keys(request: Request, key: require_admin) -> list[dict[str, Any]]:
    return [asdict(k) for k in _st(request).store.projects.list_keys(key.project_id)]


@router.post("/keys", response_model=NewKeyOut, status_code=201, summary="Create a key (secret shown once)")
def create_key(request: Request, key: require_admin, body: KeyCreate | None = None) -> dict[str, Any]:
    body = body or KeyCreate()
    new = _st(request).store.projects.create_key(key.project_id, role=body.role, note=body.note)
    return {**noted(request.state, "key.create", asdict(new.key), target_type="key", target_id=new.key.public_key),
            "secret_key": new.secret_key}


@router.delete("/keys/{public_key}", response_model=KeyOut, summary="Revoke a key")
def revoke_key(request: Request, public_key: str, key: require_admin) -> dict[str, Any]:
    st = _st(request)
    revoked = st.store.projects.revoke_key(key.project_id, public_key)
    st.auth.invalidate()
    return noted(request.state, "key.revoke", asdict(revoked), target_type="key", target_id=public_key)


@router.get("/prices", response_model=list[PriceOut], tags=["prices"], summary="Model price overrides")
def list_prices(request: Request, key: require_read) -> list[dict[str, Any]]:
    return _st(request).store.prices.list(key.project_id)


@router.put("/prices/{model:path}", response_model=PriceOut, tags=["prices"], summary="Override a model's price")
def put_price(
    request: Request,
    model: str,
    key: require_admin,
    body: Annotated[PriceIn, Body()],
) -> dict[str, Any]:
    """USD per 1M tokens. Applies to spans ingested from now on (exact model name)."""
    st = _st(request)
    row = st.store.prices.put(
        key.project_id,
        model,
        input_per_million=body.input_per_million,
        output_per_million=body.output_per_million,
        cached_input_per_million=body.cached_input_per_million,
    )
    st.invalidate_prices(key.project_id)
    return noted(request.state, "price.set", row, target_type="price", target_id=model)


@router.delete("/prices/{model:path}", status_code=204, tags=["prices"], summary="Remove a price override")
def delete_price(request: Request, model: str, key: require_admin) -> None:
    st = _st(request)
    st.store.prices.delete(key.project_id, model)
    st.invalidate_prices(key.project_id)
    noted(request.state, "price.delete", None, target_type="price", target_id=model)
