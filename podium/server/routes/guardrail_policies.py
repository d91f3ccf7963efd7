"""Guardrail policies of a project, and which policy a key's gateway calls run under.

``GET /api/v1/guardrails/policies`` lists every policy the project can use (built-in, the
gateway config file's, the project's own) and the defaults; ``PUT``/``DELETE
/api/v1/guardrails/policies/{name}`` manage the project's own; ``PUT /api/v1/guardrails/default``
sets the project's default policy; ``PUT /api/v1/guardrails/keys/{public_key}`` a key's.
The gateway picks a call's policy by key > model alias > project > gateway config
(docs/guardrails.md, "Policies").
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from podium.errors import BadRequest, Conflict, NotFound, ValidationFailed
from podium.gateway.guardrails import OFF, POLICY_NAME, check_policies
from podium.gateway.service import Gateway
from podium.guardrails.policy import BUILTIN_POLICIES, builtin_policy
from podium.server.audit_log import noted
from podium.server.auth import require_admin, require_read
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/guardrails", tags=["guardrails"], route_class=StrictJSONRoute)


def _gw(request: Request) -> tuple[AppState, Gateway]:
    st: AppState = request.app.state.podium
    if st.gateway is None:
        raise BadRequest("the gateway is not enabled in this process")
    return st, st.gateway


def _check_name(st: AppState, gw: Gateway, project_id: str, name: Any, field: str) -> str | None:
    """``name`` if it is null, ``off`` or a policy this project can use (and whose scanners are
    installed); a 400 naming what exists otherwise."""
    if name is None or name == OFF:
        return name
    if not isinstance(name, str) or not re.match(POLICY_NAME, name):
        raise ValidationFailed(f"{field} must be a policy name, \"off\" or null",
                               details=[{"field": field, "message": "not a policy name"}])
    project = st.store.projects.project_guardrails(project_id)
    if name in project["policies"] or name in gw.config.guardrail_policies:
        return name
    if name in BUILTIN_POLICIES:
        builtin_policy(name)  # a 400 when its scanners are not installed
        return name
    known = sorted({*project["policies"], *gw.config.guardrail_policies, *BUILTIN_POLICIES})
    raise ValidationFailed(f"unknown guardrail policy {name!r}; use one of {', '.join(known)}, off, or define it "
                           f"with PUT /api/v1/guardrails/policies/{name}",
                           details=[{"field": field, "message": "unknown policy"}])


@router.get("/policies", summary="The guardrail policies this project can use, and its defaults")
def list_policies(request: Request, key: require_read) -> dict[str, Any]:
    st, gw = _gw(request)
    project = st.store.projects.project_guardrails(key.project_id)
    rows: dict[str, dict[str, Any]] = {}
    for name, data in BUILTIN_POLICIES.items():
        rows[name] = {"name": name, "source": "builtin", "description": data.get("description", ""), "policy": data}
    for name, pol in gw.config.guardrail_policies.items():
        rows[name] = {"name": name, "source": "file", "description": pol.description,
                      "policy": pol.model_dump(exclude_defaults=True)}
    for name, spec in project["policies"].items():
        rows[name] = {"name": name, "source": "project", "description": spec.get("description", ""), "policy": spec}
    effective = project["default"] or gw.config.guardrails_default
    return {
        "default": {"project": project["default"], "file": gw.config.guardrails_default,
                    "effective": None if effective in (None, OFF) else effective},
        "data": [rows[n] for n in sorted(rows)],
    }


@router.put("/policies/{name}", summary="Define or replace one of the project's guardrail policies (admin)")
def put_policy(
    request: Request,
    name: str,
    key: require_admin,
    body: dict[str, Any] = Body(..., examples=[{
        "description": "block injection, redact personal data",
        "on_error": "closed",
        "input": [{"type": "prompt-injection", "action": "block"}, {"type": "pii", "action": "redact"}],
        "output": [{"type": "secrets", "action": "redact"}],
    }]),
) -> Response:
    """Body: a policy (docs/guardrails.md, "Policies"); its name is the path's. Built-in names
    (default, strict, monitor) cannot be redefined."""
    st, gw = _gw(request)
    body = {k: v for k, v in body.items() if k != "name"}
    policy = check_policies({name: body}, where="policies")[name]
    stored = policy.model_dump(exclude_defaults=True, exclude={"name"})
    project = st.store.projects.project_guardrails(key.project_id)
    created = name not in project["policies"]
    noted(request.state, "guardrail.policy.set", stored, target_type="guardrail_policy", target_id=name,
          before=project["policies"].get(name))
    project["policies"][name] = stored
    st.store.projects.set_project_guardrails(key.project_id, project)
    gw.invalidate(key.project_id)
    out = {"name": name, "source": "project", "description": policy.description, "policy": stored}
    return Response(json.dumps(out), status_code=201 if created else 200, media_type="application/json")


@router.delete("/policies/{name}", status_code=204, summary="Remove one of the project's guardrail policies (admin)")
def delete_policy(request: Request, name: str, key: require_admin) -> Response:
    st, gw = _gw(request)
    project = st.store.projects.project_guardrails(key.project_id)
    if name not in project["policies"]:
        raise NotFound(f"the project has no guardrail policy {name!r}; GET /api/v1/guardrails/policies lists them "
                       "(built-in and config file policies cannot be deleted)")
    if project["default"] == name:
        raise Conflict(f"policy {name!r} is the project's default; set another default first "
                       "(PUT /api/v1/guardrails/default)")
    users = [k.public_key for k in st.store.projects.list_keys(key.project_id)
             if k.revoked_at is None and k.guardrails == name]
    if users:
        raise Conflict(f"policy {name!r} is used by key(s) {', '.join(users)}; give them another policy first "
                       "(PUT /api/v1/guardrails/keys/{public_key})")
    noted(request.state, "guardrail.policy.delete", None, target_type="guardrail_policy", target_id=name,
          before=project["policies"].pop(name))
    st.store.projects.set_project_guardrails(key.project_id, project)
    gw.invalidate(key.project_id)
    return Response(status_code=204)


@router.put("/default", summary="Set the project's default guardrail policy (admin)")
def put_default(request: Request, key: require_admin, body: dict[str, Any] = Body(..., examples=[{"policy": "default"}])) -> dict[str, Any]:
    """Body: ``{"policy": "<name>" | "off" | null}``. ``off`` turns guardrails off for the project
    even when the gateway config sets a default; null falls back to the config's default."""
    st, gw = _gw(request)
    if set(body) != {"policy"}:
        raise BadRequest('send {"policy": "<name>" | "off" | null}', details=[{"field": "policy", "message": "required"}])
    name = _check_name(st, gw, key.project_id, body["policy"], "policy")
    project = st.store.projects.project_guardrails(key.project_id)
    noted(request.state, "guardrail.default.set", {"policy": name}, target_type="project", target_id=key.project_id,
          before={"policy": project["default"]})
    project["default"] = name
    st.store.projects.set_project_guardrails(key.project_id, project)
    gw.invalidate(key.project_id)
    return {"policy": name}


@router.put("/keys/{public_key}", summary="Set the guardrail policy of one key's gateway calls (admin)")
def put_key_policy(request: Request, public_key: str, key: require_admin,
                   body: dict[str, Any] = Body(..., examples=[{"policy": "strict"}])) -> dict[str, Any]:
    """Body: ``{"policy": "<name>" | "off" | null}``; null: the key follows the alias's and the
    project's policy."""
    st, gw = _gw(request)
    if set(body) != {"policy"}:
        raise BadRequest('send {"policy": "<name>" | "off" | null}', details=[{"field": "policy", "message": "required"}])
    name = _check_name(st, gw, key.project_id, body["policy"], "policy")
    updated = st.store.projects.update_key(key.project_id, public_key, guardrails=name)
    st.auth.invalidate()
    return noted(request.state, "key.guardrail.set", {"public_key": updated.public_key, "policy": updated.guardrails},
                 target_type="key", target_id=public_key)
