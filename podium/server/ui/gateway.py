"""Settings › Gateway: keys with their limits and live usage, a key's limits and model
allow-list, the project's limits, and the model aliases (never their secrets).

The handlers call the REST handlers of ``/api/v1/gateway`` themselves
(``routes.gateway_admin``): the same validation (``Limits.from_dict``), the same caches
invalidated, the same secret masking of aliases (``"api_key": "set"`` / ``env:NAME``), and
usage from the same limiter ``GET /api/v1/gateway/spend`` reads.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action, roles_for
from podium.errors import PodiumError
from podium.server.routes import gateway_admin
from podium.server.ui.access import UiError, Viewer, check_origin, ui_action
from podium.server.ui.pages import _form, _is_htmx, _mark_ui, _st, _viewer, fragment, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

#: Roles the gateway accepts (podium.gateway.service); other keys are listed, marked as unable.
GATEWAY_ROLES = roles_for(Action.CALL_MODELS)
LIMIT_FIELDS = ("rpm", "tpm", "max_parallel", "budget_daily", "budget_monthly", "budget_total")
_INT_FIELDS = ("rpm", "tpm", "max_parallel")


async def _usage_ctx(request: Request, v: Viewer) -> dict[str, Any]:
    """Limits and live usage of the project and of every active key (``GET /api/v1/gateway/spend``)."""
    st = _st(request)
    key = v.api_key()
    sp = await gateway_admin.spend(request, key)
    models = {k.public_key: k.models for k in await run_in_threadpool(st.store.projects.list_keys, v.project_id)}
    keys = []
    for k in sp["keys"]:
        keys.append({**k, "models": models.get(k["public_key"]), "can_call": k["role"] in GATEWAY_ROLES})
    keys.sort(key=lambda k: (k["role"] != "gateway", not k["can_call"], k["public_key"]))
    return dict(project=sp["project"], keys=keys)


def _gateway_off(request: Request) -> HTMLResponse | None:
    if _st(request).gateway is None:
        return page(request, "settings_gateway.html", nav="settings", tab="gateway", off=True)
    return None


@router.get("/settings/gateway", response_class=HTMLResponse)
@ui_action(Action.READ)
async def gateway_settings(request: Request) -> HTMLResponse:
    v = _viewer(request)
    off = _gateway_off(request)
    if off is not None:
        return off
    key = v.api_key()
    aliases = gateway_admin.list_models(request, key)["data"]
    health = gateway_admin.router_health(request, key)["deployments"]
    usage = await _usage_ctx(request, v)
    return page(request, "settings_gateway.html", nav="settings", tab="gateway", aliases=aliases, health=health,
                limit_fields=LIMIT_FIELDS, saved=request.query_params.get("saved"), form=None, error=None, **usage)


@router.get("/settings/gateway/usage", response_class=HTMLResponse)
@ui_action(Action.READ)
async def gateway_usage(request: Request) -> HTMLResponse:
    """The usage tables alone (the page refreshes them every few seconds)."""
    v = _viewer(request)
    if _st(request).gateway is None:
        return HTMLResponse("", status_code=204)
    return fragment("_gateway_usage.html", viewer=v, **await _usage_ctx(request, v))


def _limits_from(form: dict[str, str]) -> dict[str, Any]:
    """The limits object from the form: empty fields are no limit; numbers are passed on as
    numbers and anything else as typed, so ``Limits.from_dict`` names what is wrong."""
    out: dict[str, Any] = {}
    for f in LIMIT_FIELDS:
        raw = form.get(f, "").strip()
        if not raw:
            continue
        try:
            x = float(raw)
            out[f] = int(x) if f in _INT_FIELDS and x.is_integer() else x
        except ValueError:
            out[f] = raw
    return out


@router.post("/settings/gateway/limits", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_project_limits(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "change gateway limits")
    form = await _form(request)
    try:
        await run_in_threadpool(gateway_admin.put_limits, request, v.api_key(), _limits_from(form))
    except PodiumError as e:
        off = _gateway_off(request)
        if off is not None:
            return off
        key = v.api_key()
        return page(request, "settings_gateway.html", status=e.status_code, nav="settings", tab="gateway",
                    aliases=gateway_admin.list_models(request, key)["data"],
                    health=gateway_admin.router_health(request, key)["deployments"], limit_fields=LIMIT_FIELDS,
                    saved=None, form=form, error=e.message, **await _usage_ctx(request, v))
    return RedirectResponse("/settings/gateway?saved=project", status_code=303)


def _key_or_404(request: Request, v: Viewer, public_key: str) -> Any:
    for k in _st(request).store.projects.list_keys(v.project_id):
        if k.public_key == public_key:
            return k
    raise UiError(404, "Key not found", f"no key {public_key!r} in this project")


def _key_ctx(request: Request, v: Viewer, public_key: str, **extra: Any) -> dict[str, Any]:
    k = _key_or_404(request, v, public_key)
    aliases = [a["name"] for a in gateway_admin.list_models(request, v.api_key())["data"]]
    allowed = k.models
    # Names on the key's list that are no longer aliases stay visible (and checked).
    names = aliases + [m for m in (allowed or []) if m not in aliases]
    return dict(k=k, aliases=names, allowed=allowed, limit_fields=LIMIT_FIELDS, can_call=k.role in GATEWAY_ROLES,
                limits=k.limits or {}, **extra)


@router.get("/settings/gateway/keys/{public_key}", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
def edit_key(request: Request, public_key: str) -> HTMLResponse:
    v = _viewer(request, Action.ADMIN, "change a key's gateway limits")
    off = _gateway_off(request)
    if off is not None:
        return off
    return page(request, "gateway_key.html", nav="settings", tab="gateway", form=None, error=None,
                **_key_ctx(request, v, public_key))


async def _form_multi(request: Request) -> tuple[dict[str, str], list[str]]:
    """The form as a dict (last value wins) and every ``model`` value (checkboxes)."""
    form = await _form(request)
    body = await request.body()
    models = [val for k, val in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=False) if k == "model"]
    return form, models


@router.post("/settings/gateway/keys/{public_key}", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_key(request: Request, public_key: str) -> Response:
    """A key's limits and model allow-list (``PUT /api/v1/gateway/keys/{public_key}``)."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "change a key's gateway limits")
    off = _gateway_off(request)
    if off is not None:
        return off
    form, models = await _form_multi(request)
    body: dict[str, Any] = {"limits": _limits_from(form)}
    body["models"] = None if form.get("models_mode", "all") == "all" else models
    try:
        await run_in_threadpool(gateway_admin.put_key, request, public_key, v.api_key(), body)
    except PodiumError as e:
        ctx = _key_ctx(request, v, public_key, form=form, error=e.message)
        ctx["limits"] = {f: form.get(f, "") for f in LIMIT_FIELDS}
        ctx["allowed"] = body["models"]
        return page(request, "gateway_key.html", status=e.status_code, nav="settings", tab="gateway", **ctx)
    if _is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": "/settings/gateway?saved=" + public_key})
    return RedirectResponse("/settings/gateway?saved=" + public_key, status_code=303)
