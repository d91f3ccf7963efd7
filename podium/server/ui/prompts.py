"""The prompt registry's pages: the list, a prompt (labels, versions with analytics, recent
label moves), a version (template as chat bubbles, config as JSON), a side-by-side diff,
moving and rolling back labels (each with a confirmation page), label history and the
playground, and the forms that create a prompt or a new version.

Every read goes through the same repository as ``/api/v1/prompts``; every write through the
same :class:`PromptRegistry` methods, with the viewer's role and key as the actor, so the
rules (protected labels, A/B targets, rollback) and their messages are the API's. The
playground calls the REST handler itself (``routes.prompts.run_version``), so it runs
through the gateway with the viewer's key, limits and model allow-list, and is traced; with a
knowledge collection picked (a version bound to one through ``config.retrieval`` preselects it)
it runs the collection answer handler instead (``routes.collections.answer_with``): ``{{context}}``
filled from the collection, the answer's ``[n]`` citations shown under it, one RAG trace.

Prompt names contain ``/`` (folders); as in the API, the words after a name
(``versions``, ``labels``, ``history``, ``diff``) are reserved in names, so
``/prompts/{name:path}/...`` routes are declared before the plain ``/prompts/{name:path}``
(and ``/prompts/new`` before both: a prompt named ``new`` is reached through the API).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.prompts import Prompt, check_label, check_targets
from podium.core.roles import Action
from podium.errors import BadRequest, NotFound, PodiumError
from podium.prompts import PromptRegistry
from podium.rag.service import check_name, service_for
from podium.server.audit_log import label_note, noted
from podium.server.routes.collections import AnswerIn, answer_with
from podium.server.routes.prompts import RunIn, run_version
from podium.server.ui.access import UiError, Viewer, check_origin, ui_action
from podium.server.ui.pages import _form, _get, _is_htmx, _mark_ui, _st, _viewer, fragment, page
from podium.server.ui.render import pretty_json, side_by_side, targets_text

__all__ = ["prompt_path", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])

PROMPTS_PAGE = 50
VERSIONS_PAGE = 50
HISTORY_PAGE = 50
CHART_VERSIONS = 30
ANALYTICS_RANGES: dict[str, tuple[str, int | None]] = {
    "all": ("All time", None),
    "24h": ("Last 24 hours", 86400),
    "7d": ("Last 7 days", 7 * 86400),
    "30d": ("Last 30 days", 30 * 86400),
}


def prompt_path(name: str) -> str:
    """``/prompts/support/qa``: folders stay readable, anything odd is quoted."""
    return "/prompts/" + quote(str(name), safe="/")


def _reg(request: Request) -> PromptRegistry:
    return PromptRegistry(_st(request).store.prompts)


def _repo(request: Request) -> Any:
    return _st(request).store.prompts


def _version_options(request: Request, v: Viewer, name: str, limit: int = 200) -> list[dict[str, Any]]:
    return _repo(request).list_versions(v.project_id, name, limit=limit).items


def _labels_sorted(labels: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Labels with production first, latest last, the rest by name."""
    def order(item: tuple[str, Any]) -> tuple[int, str]:
        name = item[0]
        return (0 if name == "production" else 2 if name == "latest" else 1, name)

    return sorted(labels.items(), key=order)


# --- the list ----------------------------------------------------------------------------------------


@router.get("/prompts", response_class=HTMLResponse)
@ui_action(Action.READ)
def prompts_list(request: Request) -> HTMLResponse:
    v = _viewer(request)
    repo = _repo(request)
    errors: list[str] = []
    type_ = _get(request, "type")
    if type_ not in (None, "text", "chat"):
        errors.append("type must be text or chat")
        type_ = None
    cursor = _get(request, "cursor")
    rows: list[dict[str, Any]] = []
    next_cursor = None
    try:
        pg = repo.list_prompts(v.project_id, q=_get(request, "q"), tag=_get(request, "tag"),
                               label=_get(request, "label"), type=type_, limit=PROMPTS_PAGE, cursor=cursor)
        rows, next_cursor = pg.items, pg.next_cursor
    except BadRequest as e:
        errors.append(e.message)
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val != ""]
    ctx: dict[str, Any] = dict(rows=rows, next_cursor=next_cursor, params=params, errors=errors, cursor=cursor,
                               q=request.query_params, labels_sorted=_labels_sorted)
    if _is_htmx(request) and request.headers.get("hx-target") == "results":
        return fragment("_prompts_table.html", **ctx)
    protected = repo.get_settings(v.project_id)["protected_labels"]
    return page(request, "prompts.html", nav="prompts", protected=protected, **ctx)


@router.post("/settings/prompts", response_class=HTMLResponse)
@ui_action(Action.ADMIN)
async def save_protected_labels(request: Request) -> Response:
    """Protected labels (``PUT /api/v1/prompts/settings``): only admin keys move them."""
    check_origin(request)
    v = _viewer(request, Action.ADMIN, "change prompt settings")
    form = await _form(request)
    labels = [x.strip() for x in form.get("protected_labels", "").replace(",", " ").split() if x.strip()]
    try:
        noted(request.state, "prompt.settings.set", await run_in_threadpool(
            _reg(request).put_settings, v.project_id, {"protected_labels": labels}), target_type="prompt_settings",
            target_id=v.project_id)
    except PodiumError as e:
        raise UiError(e.status_code, "Not saved", e.message)
    return RedirectResponse("/settings?saved=prompts#prompt-settings", status_code=303)


# --- creating prompts and versions --------------------------------------------------------------------


def _json_field(raw: str, label: str, errors: list[str]) -> Any:
    """Parse a JSON form field; a mistake becomes a message with its line and column."""
    try:
        return json.loads(raw)
    except ValueError as e:
        pos = f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        errors.append(f"{label} is not valid JSON{pos}: {getattr(e, 'msg', str(e))}")
        return None


def _split_list(raw: str) -> list[str]:
    return [x.strip() for x in raw.replace("\n", ",").split(",") if x.strip()]


def _create_body(form: dict[str, str], *, new: bool) -> tuple[dict[str, Any], list[str]]:
    """The registry's create body (the same one ``POST /api/v1/prompts`` takes) from the form."""
    errors: list[str] = []
    type_ = form.get("type", "text")
    if type_ not in ("text", "chat"):
        errors.append(f"type must be text or chat, got {type_!r}")
    raw = form.get("template", "")
    template: Any = raw
    if type_ == "chat":
        template = _json_field(raw, "the chat template", errors)
        if template is not None and not isinstance(template, list):
            errors.append('the chat template must be a JSON list of messages such as '
                          '[{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "{{question}}"}]')
    body: dict[str, Any] = {"prompt": template, "type": type_,
                            "template_format": form.get("template_format", "").strip() or "mustache"}
    if new:
        body["name"] = form.get("name", "").strip()
    config_raw = form.get("config", "").strip()
    if config_raw:
        config = _json_field(config_raw, "config", errors)
        if config is not None:
            body["config"] = config  # the registry says what is wrong with a non-object
    tags = _split_list(form.get("tags", ""))
    if tags or not new:  # a new version sends its tags field (emptied: the prompt's tags are removed)
        body["tags"] = tags
    labels = _split_list(form.get("labels", ""))
    if labels:
        body["labels"] = labels
    commit = form.get("commit_message", "").strip()
    if commit:
        body["commit_message"] = commit
    base = form.get("base_version", "").strip()
    if new:
        body["base_version"] = 0  # a new prompt: an existing name answers 409, nothing is versioned by mistake
    elif base.isascii() and base.isdigit() and len(base) < 10:
        body["base_version"] = int(base)  # the version the form was filled from: a stale form answers 409
    return body, errors


def _editor(request: Request, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("error", None)
    ctx.setdefault("prompt", None)
    return page(request, "prompt_new.html", status=status, nav="prompts", **ctx)


@router.get("/prompts/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def new_prompt_form(request: Request) -> HTMLResponse:
    _viewer(request, Action.WRITE, "change prompts")
    form = {"type": _get(request, "type") or "text", "base_version": "0", "template_format": "mustache"}
    return _editor(request, form=form)


@router.post("/prompts/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def new_prompt(request: Request) -> Response:
    """Create a prompt through the same registry call as ``POST /api/v1/prompts``."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change prompts")
    form = await _form(request)
    return await _save_version(request, v, form, name=None)


async def _save_version(request: Request, v: Viewer, form: dict[str, str], *, name: str | None) -> Response:
    body, errors = _create_body(form, new=name is None)
    status = 400
    if not errors:
        try:
            ver = await run_in_threadpool(_reg(request).create_version, v.project_id, body, role=v.role,
                                          actor=v.actor, name=name)
        except PodiumError as e:
            errors.append(e.message)
            status = e.status_code
        else:
            return RedirectResponse(f"{prompt_path(ver['name'])}/versions/{ver['version']}?created=1",
                                    status_code=303)
    prompt = None
    if name is not None:
        prompt = await run_in_threadpool(_repo(request).get_prompt, v.project_id, name)
    return _editor(request, status=status, form=form, prompt=prompt, error="; ".join(errors))


@router.get("/prompts/{name:path}/versions/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def new_version_form(request: Request, name: str) -> HTMLResponse:
    """A new version, pre-filled with the latest one's template, config, tags and format."""
    v = _viewer(request, Action.WRITE, "change prompts")
    repo = _repo(request)
    try:
        prompt = repo.get_prompt(v.project_id, name)
    except NotFound as e:
        raise UiError(404, "Prompt not found", e.message)
    ver = repo.get_version(v.project_id, name, prompt["latest_version"])
    template = ver["prompt"]
    form = {
        "type": ver["type"],
        "template": template if isinstance(template, str) else json.dumps(template, indent=2, ensure_ascii=False),
        "config": json.dumps(ver["config"], indent=2, ensure_ascii=False) if ver.get("config") else "",
        "tags": ", ".join(prompt["tags"]),
        "template_format": ver.get("template_format") or "mustache",
        "base_version": str(prompt["latest_version"]),
    }
    return _editor(request, form=form, prompt=prompt)


@router.post("/prompts/{name:path}/versions/new", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def new_version(request: Request, name: str) -> Response:
    """A new version, through the same registry call as ``POST /api/v1/prompts/{name}/versions``."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change prompts")
    form = await _form(request)
    form.pop("name", None)
    return await _save_version(request, v, form, name=name)


# --- versions ----------------------------------------------------------------------------------------


def _analytics_range(request: Request) -> tuple[str, datetime | None]:
    rng = request.query_params.get("range", "all")
    if rng not in ANALYTICS_RANGES:
        rng = "all"
    seconds = ANALYTICS_RANGES[rng][1]
    return rng, (datetime.now(UTC) - timedelta(seconds=seconds)) if seconds else None


@router.get("/prompts/{name:path}/versions/{version}/run", response_class=HTMLResponse)
@ui_action(Action.READ)
def playground(request: Request, name: str, version: str) -> HTMLResponse:
    v = _viewer(request)
    ver = _reg(request).get_version(v.project_id, name, version)
    return page(request, "playground.html", nav="prompts", **_playground_ctx(request, v, ver))


def _playground_ctx(request: Request, v: Viewer, ver: dict[str, Any], **extra: Any) -> dict[str, Any]:
    prompt = Prompt.from_dict(ver)
    gw = _st(request).gateway
    models: list[str] = []
    if gw is not None:
        models = [a.name for a in gw.visible_aliases(v.api_key()) if a.mode == "chat"]
    config_model = (ver.get("config") or {}).get("model")
    default_model = extra.pop("model", None) or (config_model if config_model in models else None) or (
        "local" if "local" in models else (models[0] if models else None))
    rc = (ver.get("config") or {}).get("retrieval")
    rc = rc if isinstance(rc, dict) else {}
    collections = [c["name"] for c in service_for(_st(request).store).repo.list_collections(v.project_id)]
    values = extra.pop("values", {})
    # a bound version preselects its collection (the form's choice wins once submitted, even "none")
    collection = values.get("collection", rc.get("collection") or "") if values else (rc.get("collection") or "")
    return dict(ver=ver, variables=prompt.variables, placeholders=prompt.placeholders, models=models,
                model=default_model, config_model=config_model, gateway=gw is not None,
                values=values, collections=collections, collection=collection, retrieval=rc,
                query_variable=str(rc.get("query_variable") or "question"), **extra)


async def _run_with_collection(request: Request, v: Viewer, ver: dict[str, Any], form: dict[str, str],
                               variables: dict[str, Any], model: str | None,
                               params: dict[str, Any]) -> dict[str, Any]:
    """The playground with a collection picked: ``POST /collections/{name}/answer``'s handler with
    this version as the prompt (its ``{{context}}`` filled from the collection): the run result
    the template shows, plus ``citations`` and the retrieved ``chunks``."""
    prompt = Prompt.from_dict(ver)
    name = form["collection"].strip()
    rc = (ver.get("config") or {}).get("retrieval") or {}
    qvar = str(rc.get("query_variable") or "question") if isinstance(rc, dict) else "question"
    if "context" not in prompt.variables:
        raise BadRequest("this version has no {{context}} variable for the retrieved passages: add one to its "
                         "template (e.g. in the system message), or pick no collection")
    question = str(variables.get(qvar) or "").strip()
    if not question:
        raise BadRequest(f"fill the {qvar!r} variable: it is the question searched for in {name!r}"
                         + ("" if qvar in prompt.variables else
                            f" (the template has no {{{{{qvar}}}}}: set config.retrieval.query_variable)"))
    top_k = form.get("top_k", "").strip()
    mode = form.get("mode", "").strip() or None
    try:
        k = int(top_k) if top_k else None
    except ValueError:
        raise BadRequest(f"Top k must be a whole number, got {top_k!r}") from None
    body = AnswerIn(question=question, model=model, mode=mode, top_k=k, params=params,
                    variables={x: y for x, y in variables.items() if x != "context"})
    out, messages = await answer_with(request, v.api_key(), check_name(name), body, prompt)
    return {"output": out["answer"], "message": {"role": "assistant", "content": out["answer"]},
            "model": out["model"], "usage": out["usage"], "cost": None, "latency_ms": out["latency_ms"],
            "cache_hit": False, "trace_id": out["trace_id"], "span_id": out["span_id"], "messages": messages,
            "citations": out["citations"], "chunks": out["chunks"], "collection": name,
            "retrieval": out["retrieval"]}


def _params(form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    errors: list[str] = []
    for key, cast, label in (("max_tokens", int, "Max tokens"), ("temperature", float, "Temperature")):
        raw = form.get(key, "").strip()
        if not raw:
            continue
        try:
            params[key] = cast(raw)
        except ValueError:
            errors.append(f"{label} must be a number, got {raw!r}")
    return params, errors


@router.post("/prompts/{name:path}/versions/{version}/run", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def playground_run(request: Request, name: str, version: str) -> HTMLResponse:
    """Compile the version with the form's variables and call a gateway model, as
    ``POST /api/v1/prompts/{name}/versions/{version}/run`` does (same handler)."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "run prompts in the playground")
    form = await _form(request)
    ver = await run_in_threadpool(_reg(request).get_version, v.project_id, name, version)
    prompt = Prompt.from_dict(ver)
    variables: dict[str, Any] = {}
    errors: list[str] = []
    for var in prompt.variables:
        if f"var:{var}" in form:
            variables[var] = form[f"var:{var}"]
    for ph in prompt.placeholders:
        raw = form.get(f"ph:{ph}", "").strip() or "[]"
        try:
            variables[ph] = json.loads(raw)
        except json.JSONDecodeError as e:
            errors.append(f"{ph} must be a JSON list of messages such as "
                          f'[{{"role": "user", "content": "Hi"}}] ({e.msg} at character {e.pos})')
    params, perr = _params(form)
    errors += perr
    model = form.get("model", "").strip() or None
    result = None
    status = 200
    if not errors:
        try:
            if form.get("collection", "").strip():
                result = await _run_with_collection(request, v, ver, form, variables, model, params)
            else:
                body = RunIn(variables=variables, model=model, params=params, cache=form.get("cache") == "on")
                result = await run_version(request, name, str(ver["version"]), v.api_key(), body)
        except PodiumError as e:
            errors.append(e.message)
            status = e.status_code
    else:
        status = 400
    values = {k: form.get(k, "") for k in form}
    ctx = _playground_ctx(request, v, ver, model=model, values=values, result=result, errors=errors)
    if _is_htmx(request):
        return fragment("_run_result.html", status=status, **ctx)
    return page(request, "playground.html", status=status, nav="prompts", **ctx)


@router.get("/prompts/{name:path}/versions/{version}", response_class=HTMLResponse)
@ui_action(Action.READ)
def version_page(request: Request, name: str, version: str) -> HTMLResponse:
    v = _viewer(request)
    ver = _reg(request).get_version(v.project_id, name, version)
    repo = _repo(request)
    prompt = repo.get_prompt(v.project_id, name)
    stats = repo.analytics(v.project_id, name, version=ver["version"])
    return page(request, "prompt_version.html", nav="prompts", ver=ver, prompt=prompt,
                stats=stats[0] if stats else None, config_json=pretty_json(ver.get("config") or {}),
                labels_sorted=_labels_sorted(prompt["labels"]),
                label_names=[lb for lb in prompt["labels"] if lb != "latest"],
                created=_get(request, "created") is not None)


# --- diff --------------------------------------------------------------------------------------------


@router.get("/prompts/{name:path}/diff", response_class=HTMLResponse)
@ui_action(Action.READ)
def diff_page(request: Request, name: str) -> Response:
    """Two versions (numbers or labels) side by side: template and config."""
    v = _viewer(request)
    repo = _repo(request)
    prompt = repo.get_prompt(v.project_id, name)
    latest = prompt["latest_version"]
    a = _get(request, "from") or str(max(latest - 1, 1))
    b = _get(request, "to") or "latest"
    error = None
    d: dict[str, Any] | None = None
    try:
        d = _reg(request).diff(v.project_id, name, a, b)
    except PodiumError as e:
        error = e.message
    if request.query_params.get("format") == "text":
        if d is None:
            raise UiError(404, "Cannot compare", error or "unknown version")
        return Response(d["prompt"] + d["config"], media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    ctx: dict[str, Any] = dict(prompt=prompt, a=a, b=b, d=d, error=error,
                               versions=_version_options(request, v, name),
                               label_names=[lb for lb, _ in _labels_sorted(prompt["labels"])])
    if d is not None:
        ctx["prompt_rows"] = side_by_side(d["prompt"])
        ctx["config_rows"] = side_by_side(d["config"])
    return page(request, "prompt_diff.html", status=404 if error and d is None else 200, nav="prompts", **ctx)


# --- labels ------------------------------------------------------------------------------------------


def _label_body(form: dict[str, str]) -> dict[str, Any]:
    """The registry's label body from the move form: one version, or two with a share (A/B)."""
    def version(field: str, what: str) -> int:
        raw = form.get(field, "").strip().lstrip("v")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise BadRequest(f"choose {what} (a version number), got {raw!r}")
        return int(raw)

    main = version("version", "the version the label should point at")
    body: dict[str, Any] = {"version": main}
    if form.get("ab_version", "").strip():
        other = version("ab_version", "the second version of the A/B split")
        try:
            share = float(form.get("ab_weight", "").strip() or "10")
        except ValueError:
            raise BadRequest("the A/B share is a percentage between 1 and 99")
        if not 0 < share < 100:
            raise BadRequest("the A/B share is a percentage between 1 and 99")
        body = {"versions": [{"version": main, "weight": round(100 - share, 6)},
                             {"version": other, "weight": round(share, 6)}]}
    comment = form.get("comment", "").strip()
    if comment:
        body["comment"] = comment
    return body


def _move_ctx(request: Request, v: Viewer, name: str, label: str, form: dict[str, str]) -> dict[str, Any]:
    repo = _repo(request)
    prompt = repo.get_prompt(v.project_id, name)
    current = prompt["labels"].get(label)
    protected = (current or {}).get("protected") or label in repo.get_settings(v.project_id)["protected_labels"]
    ctx: dict[str, Any] = dict(prompt=prompt, label=label, current=current, protected=protected, form=form,
                               new_targets=None, new_versions=[], error=None)
    try:
        check_label(label)
        body = _label_body(form)
        targets = check_targets([body["version"]] if "version" in body else body["versions"])
        ctx["new_targets"] = [{"version": t.version, "weight": t.weight} for t in targets]
        ctx["new_versions"] = [repo.get_version(v.project_id, name, t.version) for t in targets]
    except PodiumError as e:
        ctx["error"] = e.message
    return ctx


@router.get("/prompts/{name:path}/labels", response_class=HTMLResponse)
@ui_action(Action.READ)
def move_label_form(request: Request, name: str) -> Response:
    """The move form names the label in a field: go to that label's confirmation page."""
    _viewer(request)
    label = (_get(request, "label") or "").strip()
    if not label:
        raise UiError(400, "No label", "name the label to move, e.g. production or staging")
    rest = [(k, val) for k, val in request.query_params.multi_items() if k != "label"]
    return RedirectResponse(f"{prompt_path(name)}/labels/{quote(label, safe='')}/move" + (
        "?" + urlencode(rest) if rest else ""), status_code=303)


@router.get("/prompts/{name:path}/labels/{label}/move", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def move_label_confirm(request: Request, name: str, label: str) -> HTMLResponse:
    """The confirmation step: where the label points now, where it will point, the diff link."""
    v = _viewer(request, Action.WRITE, "move prompt labels")
    form = {k: val for k, val in request.query_params.items()}
    ctx = _move_ctx(request, v, name, label, form)
    return page(request, "label_move.html", status=400 if ctx["error"] else 200, nav="prompts", **ctx)


@router.post("/prompts/{name:path}/labels/{label}", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def move_label(request: Request, name: str, label: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "move prompt labels")
    form = await _form(request)
    try:
        body = _label_body(form)
        await run_in_threadpool(_reg(request).set_label, v.project_id, name, label, body, role=v.role,
                                actor=v.actor)
        label_note(request.state, request.app.state.podium.store, v.project_id, name, label, "prompt.label.move")
    except PodiumError as e:
        ctx = await run_in_threadpool(_move_ctx, request, v, name, label, form)
        ctx["error"] = e.message
        return page(request, "label_move.html", status=e.status_code, nav="prompts", **ctx)
    return RedirectResponse(prompt_path(name) + "?moved=" + quote(label, safe=""), status_code=303)


@router.get("/prompts/{name:path}/labels/{label}/rollback", response_class=HTMLResponse)
@ui_action(Action.WRITE)
def rollback_confirm(request: Request, name: str, label: str) -> HTMLResponse:
    v = _viewer(request, Action.WRITE, "roll back prompt labels")
    repo = _repo(request)
    prompt = repo.get_prompt(v.project_id, name)
    current = prompt["labels"].get(label)
    last = repo.label_history(v.project_id, name, label, limit=5).items if label != "latest" else []
    if not last:  # a removed label can be rolled back too: it has history
        raise UiError(404, "No such label", f"prompt {name!r} has no label {label!r} that was ever moved, so there "
                      "is nothing to roll back")
    return page(request, "label_rollback.html", nav="prompts", prompt=prompt, label=label, current=current,
                events=last, error=None)


@router.post("/prompts/{name:path}/labels/{label}/rollback", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def rollback(request: Request, name: str, label: str) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "roll back prompt labels")
    form = await _form(request)
    try:
        await run_in_threadpool(_reg(request).rollback_label, v.project_id, name, label, role=v.role,
                                actor=v.actor, comment=form.get("comment", "").strip() or None)
        label_note(request.state, request.app.state.podium.store, v.project_id, name, label, "prompt.label.rollback")
    except PodiumError as e:
        repo = _repo(request)
        prompt = repo.get_prompt(v.project_id, name)
        events = repo.label_history(v.project_id, name, label, limit=5).items
        return page(request, "label_rollback.html", status=e.status_code, nav="prompts", prompt=prompt,
                    label=label, current=prompt["labels"].get(label), events=events, error=e.message)
    return RedirectResponse(prompt_path(name) + "?rolled_back=" + quote(label, safe=""), status_code=303)


@router.get("/prompts/{name:path}/history", response_class=HTMLResponse)
@ui_action(Action.READ)
def history_page(request: Request, name: str) -> HTMLResponse:
    v = _viewer(request)
    repo = _repo(request)
    prompt = repo.get_prompt(v.project_id, name)
    label = _get(request, "label")
    cursor = _get(request, "cursor")
    try:
        pg = repo.label_history(v.project_id, name, label, limit=HISTORY_PAGE, cursor=cursor)
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    params = [(k, val) for k, val in request.query_params.multi_items() if k != "cursor" and val]
    latest_seq: dict[str, int] = {}
    if not cursor:  # the newest move of each label can be rolled back from here
        for ev in pg.items:
            latest_seq.setdefault(ev["label"], ev["seq"])
    return page(request, "prompt_history.html", nav="prompts", prompt=prompt, events=pg.items, latest_seq=latest_seq,
                next_cursor=pg.next_cursor, cursor=cursor, label=label, params=params,
                label_names=[lb for lb, _ in _labels_sorted(prompt["labels"]) if lb != "latest"])


# --- one prompt ----------------------------------------------------------------------------------------


@router.get("/prompts/{name:path}", response_class=HTMLResponse)
@ui_action(Action.READ)
def prompt_page(request: Request, name: str) -> HTMLResponse:
    v = _viewer(request)
    repo = _repo(request)
    try:
        prompt = repo.get_prompt(v.project_id, name)
    except NotFound as e:
        raise UiError(404, "Prompt not found", e.message)
    cursor = _get(request, "cursor")
    try:
        versions = repo.list_versions(v.project_id, name, limit=VERSIONS_PAGE, cursor=cursor)
    except BadRequest as e:
        raise UiError(400, "Bad request", e.message)
    rng, start = _analytics_range(request)
    analytics = repo.analytics(v.project_id, name, start=start)
    by_version = {row["version"]: row for row in analytics}
    unversioned = by_version.get(None)
    chart_rows = sorted((r for r in analytics if r["version"] is not None), key=lambda r: r["version"])
    chart_rows = chart_rows[-CHART_VERSIONS:]
    chart = {
        "labels": [f"v{r['version']}" for r in chart_rows],
        "count": [r["count"] for r in chart_rows],
        "errors": [r["errors"] for r in chart_rows],
        "p50": [r["latency_ms"]["p50"] for r in chart_rows],
        "p95": [r["latency_ms"]["p95"] for r in chart_rows],
        "cost_avg": [r["cost"]["avg"] for r in chart_rows],
    }
    score_names = sorted({s for r in analytics for s in r["scores"]})
    history = repo.label_history(v.project_id, name, None, limit=8).items
    latest_version = prompt["latest_version"]
    return page(
        request, "prompt.html", nav="prompts", prompt=prompt, labels_sorted=_labels_sorted(prompt["labels"]),
        versions=versions.items, next_cursor=versions.next_cursor, cursor=cursor, by_version=by_version,
        unversioned=unversioned, chart=chart, has_calls=any(r["count"] for r in analytics),
        score_names=score_names, history=history, range=rng, ranges=ANALYTICS_RANGES,
        version_numbers=list(range(latest_version, max(latest_version - 200, 0), -1)),
        moved=_get(request, "moved"), rolled_back=_get(request, "rolled_back"), targets_text=targets_text,
    )
