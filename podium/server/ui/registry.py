"""The model registry in the web UI: models with their aliases (``/registry``); a model's
versions, its aliases with *Move* / *Roll back* and their history (``/registry/{name}``); a
version's artifact, base model, dataset, eval results and lineage chain
(``/registry/{name}/versions/{n}``). The forms go through the same
:class:`~podium.registry.registry.ModelRegistry` as the API, so they refuse what it refuses."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.registry.lineage import gateway_deployments, lineage
from podium.registry.registry import ModelRegistry
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])


def _reg(request: Request) -> ModelRegistry:
    st = _st(request)
    return ModelRegistry(st.store, st.settings.home_dir)


def _ui(e: PodiumError) -> UiError:
    return UiError(e.status_code, "Not found" if e.status_code == 404 else "Not done", e.message)


@router.get("/registry", response_class=HTMLResponse)
@ui_action(Action.READ)
def registry_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    models = _reg(request).repo.list_models(v.project_id)
    return page(request, "registry.html", nav="registry", models=models)


@router.get("/registry/{name}", response_class=HTMLResponse)
@ui_action(Action.READ)
def model_page(request: Request, name: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    repo = _reg(request).repo
    try:
        model = repo.get_model(v.project_id, name)
        versions = repo.list_versions(v.project_id, name)
        history = repo.alias_history(v.project_id, name, limit=50)
    except PodiumError as e:
        raise _ui(e) from None
    return page(request, "registry_model.html", nav="registry", model=model, versions=versions, history=history,
                can_write=v.can_write, done=request.query_params.get("done"))


@router.get("/registry/{name}/versions/{version}", response_class=HTMLResponse)
@ui_action(Action.READ)
def version_page(request: Request, name: str, version: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    if not version.isdigit() or not 1 <= int(version) <= 2_000_000_000:
        raise UiError(404, "Not found", f"versions are numbers (1, 2, ...), not {version[:40]!r}")
    n = int(version)
    st = _st(request)
    reg = _reg(request)
    try:
        ver = reg.repo.get_version(v.project_id, name, n)
        graph = lineage(reg, v.project_id, name, n, gateway_deployments(st.store, st.settings, v.project_id))
    except PodiumError as e:
        raise _ui(e) from None
    order = ["dataset", "run", "base", "version", "deployment", "traces"]
    columns: list[list[dict[str, Any]]] = []
    for kind in order:
        col = [n for n in graph["nodes"] if n["kind"] == kind]
        if col:
            columns.append(col)
    return page(request, "registry_version.html", nav="registry", v=ver, columns=columns)


@router.post("/registry/{name}/aliases", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def set_alias(request: Request, name: str) -> Response:
    """Point any alias (``alias``, ``version``, ``comment``) at a version: new or existing."""
    form = await _form(request)
    return await _alias_do(request, name, (form.get("alias") or "").strip()[:64], "move", form)


@router.post("/registry/{name}/aliases/{alias}/{action}", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def alias_action(request: Request, name: str, alias: str, action: str) -> Response:
    """move (``version``, ``comment``) or rollback (``comment``); back to the model's page."""
    return await _alias_do(request, name, alias, action, None)


async def _alias_do(request: Request, name: str, alias: str, action: str, form: dict[str, str] | None) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "move model aliases")
    if form is None:
        form = await _form(request)
    reg = _reg(request)
    comment = (form.get("comment") or "").strip()[:2000] or None
    try:
        if action == "move":
            raw = (form.get("version") or "").strip()
            if not raw.isdigit() or int(raw) < 1:
                raise UiError(400, "Not moved", "pick a version number (1, 2, ...)")
            await run_in_threadpool(reg.set_alias, v.project_id, name, alias, int(raw), actor=v.actor,
                                    comment=comment)
        elif action == "rollback":
            await run_in_threadpool(reg.repo.rollback_alias, v.project_id, name, alias, actor=v.actor,
                                    comment=comment)
        else:
            raise UiError(404, "Unknown action", f"aliases take move or rollback, not {action!r}")
    except PodiumError as e:
        raise _ui(e) from None
    return RedirectResponse(f"/registry/{quote(name, safe='')}?done={action}", status_code=303)
