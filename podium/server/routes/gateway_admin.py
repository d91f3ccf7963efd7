"""Managing the gateway: model aliases, key and project limits, spend, router health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from podium.errors import BadRequest, PodiumError
from podium.gateway.config import ModelAlias, check_api_alias, parse_alias, seal_api_alias
from podium.gateway.limits import Limits
from podium.gateway.service import Gateway
from podium.server.audit_log import noted
from podium.server.auth import require_admin, require_read
from podium.server.body import StrictJSONRoute
from podium.server.metrics import check_scraper
from podium.server.state import AppState

__all__ = ["metrics_router", "router"]

router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"], route_class=StrictJSONRoute)
metrics_router = APIRouter(tags=["gateway"])


def _gw(request: Request) -> tuple[AppState, Gateway]:
    st: AppState = request.app.state.podium
    if st.gateway is None:
        raise BadRequest("the gateway is not enabled in this process")
    return st, st.gateway


def _alias_out(a: ModelAlias, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    deps = []
    stored_deps = (stored or {}).get("deployments") or []
    for i, d in enumerate(a.deployments):
        raw_key = stored_deps[i].get("api_key") if i < len(stored_deps) else None
        deps.append({
            "provider": d.provider, "model": d.model, "api_base": d.api_base, "weight": d.weight,
            "timeout": d.timeout, "max_retries": d.max_retries,
            # Never the secret: "env:NAME" is shown (it is not a secret), a stored secret is "set".
            "api_key": raw_key if isinstance(raw_key, str) and raw_key.startswith("env:")
            else ("set" if d.api_key or raw_key else None),
            # Header values may carry credentials (stored encrypted): their names only.
            "headers": sorted(d.headers),
        })
    return {"name": a.name, "mode": a.mode, "source": a.source, "description": a.description,
            "fallbacks": a.fallbacks, "deployments": deps}


@router.get("/models", summary="Model aliases this project can call (built-in, config file, API)")
def list_models(request: Request, key: require_read) -> dict[str, Any]:
    st, gw = _gw(request)
    stored = {r["name"]: r["spec"] for r in st.store.gateway.list_models(key.project_id)}
    aliases = gw.aliases(key.project_id)
    return {"data": [_alias_out(a, stored.get(n)) for n, a in sorted(aliases.items())]}


@router.put("/models/{name:path}", summary="Declare or replace a model alias (admin)")
def put_model(
    request: Request,
    name: str,
    key: require_admin,
    body: dict[str, Any] = Body(..., examples=[{
        "deployments": [{"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-..."}],
        "fallbacks": ["local"],
    }]),
) -> Response:
    """Body like one entry of the config file's ``models`` list (``name`` comes from the path).
    A literal ``api_key`` and every ``headers`` value are encrypted before they are stored and
    never returned (header names are). ``env:NAME`` is refused (400) unless the operator lists
    NAME in ``PODIUM_GATEWAY_ENV_ALLOWLIST``: only the operator's config file may read the
    server's environment."""
    st, gw = _gw(request)
    spec = parse_alias({**body, "name": name})
    check_api_alias(spec, st.settings.gateway_env_names)
    gw.check_policy_name(key.project_id, spec.guardrails, field="guardrails")
    aliases = gw.aliases(key.project_id)
    for f in spec.fallbacks:
        if f not in aliases and f != name:
            raise BadRequest(f"fallback {f!r} is not a declared model; declared: {', '.join(sorted(aliases))}",
                             details=[{"field": "fallbacks", "message": "unknown model"}])
    _check_registry_refs(st, key.project_id, spec)
    stored = seal_api_alias(spec, gw.box.encrypt)
    created = st.store.gateway.put_model(key.project_id, name, stored)
    gw.invalidate(key.project_id)
    alias = gw.aliases(key.project_id)[name]
    import json

    out = noted(request.state, "gateway.model.set", _alias_out(alias, stored), target_type="gateway_model",
                target_id=name, detail={"created": bool(created)})
    return Response(json.dumps(out), status_code=201 if created else 200,
                    media_type="application/json")


def _check_registry_refs(st: Any, project_id: str, spec: Any) -> None:
    """A local deployment of ``registry:/NAME@ALIAS`` must name a registered version now (400 at
    save time, not a 404 on every call); other providers may serve such names themselves."""
    from podium.registry.registry import PREFIX, ModelRegistry

    for i, d in enumerate(spec.deployments):
        if d.provider != "local" or not d.model.startswith(PREFIX):
            continue
        try:
            ModelRegistry(st.store, st.settings.home_dir).resolve(project_id, d.model)
        except PodiumError as e:
            raise BadRequest(f"deployments[{i}].model {d.model!r}: {e.message}",
                             details=[{"field": f"deployments.{i}.model", "message": "not a registered version"}]
                             ) from e


@router.delete("/models/{name:path}", status_code=204, summary="Remove a model alias declared through the API")
def delete_model(request: Request, name: str, key: require_admin) -> Response:
    st, gw = _gw(request)
    st.store.gateway.delete_model(key.project_id, name)
    gw.invalidate(key.project_id)
    noted(request.state, "gateway.model.delete", None, target_type="gateway_model", target_id=name)
    return Response(status_code=204)


@router.get("/limits", summary="The project's gateway limits")
def get_limits(request: Request, key: require_read) -> dict[str, Any]:
    st, _ = _gw(request)
    return {"limits": st.store.projects.project_limits(key.project_id) or {}}


@router.put("/limits", summary="Set the project's gateway limits (admin)")
def put_limits(request: Request, key: require_admin, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: ``{"rpm", "tpm", "max_parallel", "budget_daily", "budget_monthly", "budget_total"}``
    (each optional; null or absent means no limit)."""
    st, gw = _gw(request)
    limits = Limits.from_dict(body).to_dict()
    before = st.store.projects.project_limits(key.project_id) or {}
    st.store.projects.set_project_limits(key.project_id, limits)
    gw.invalidate(key.project_id)
    return noted(request.state, "gateway.limits.set", {"limits": limits}, target_type="project",
                 target_id=key.project_id, before={"limits": before})


@router.put("/keys/{public_key}", summary="Set a key's gateway limits and model allow-list (admin)")
def put_key(request: Request, public_key: str, key: require_admin, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Body: ``{"limits": {...}, "models": ["gpt-4o", "local"] | null}``; fields left out stay."""
    st, _ = _gw(request)
    unknown = set(body) - {"limits", "models"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}; send limits and/or models")
    kw: dict[str, Any] = {}
    if "limits" in body:
        kw["limits"] = Limits.from_dict(body["limits"]).to_dict()
    if "models" in body:
        models = body["models"]
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
            raise BadRequest("models must be a list of alias names or null (all models)",
                             details=[{"field": "models", "message": "list of strings or null"}])
        kw["models"] = models
    updated = st.store.projects.update_key(key.project_id, public_key, **kw)
    st.auth.invalidate()
    return noted(request.state, "key.gateway.set", {"public_key": updated.public_key, "role": updated.role,
                 "limits": updated.limits or {}, "models": updated.models}, target_type="key", target_id=public_key)


@router.get("/spend", summary="Live usage and spend of the project and of each key with limits")
async def spend(request: Request, key: require_read) -> dict[str, Any]:
    st, gw = _gw(request)
    keys = [k for k in st.store.projects.list_keys(key.project_id) if k.revoked_at is None]
    out_keys = []
    for k in keys:
        out_keys.append({"public_key": k.public_key, "note": k.note, "role": k.role, "limits": k.limits or {},
                         "usage": await gw.spend("key", k.id)})
    return {"project": {"limits": st.store.projects.project_limits(key.project_id) or {},
                        "usage": await gw.spend("project", key.project_id)},
            "keys": out_keys}


@router.get("/health", summary="Router state: consecutive failures and cooldowns per deployment")
def router_health(request: Request, key: require_read) -> dict[str, Any]:
    _st, gw = _gw(request)
    return {"deployments": gw.router.health()}


@metrics_router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition: with ``PODIUM_METRICS_TOKEN``, for ``Authorization: Bearer <token>``;
    without it, only for this machine on a loopback-bound server (``podium.server.metrics``)."""
    st: AppState = request.app.state.podium
    check_scraper(request.scope, request.headers, st.settings)
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
