"""The prompt registry's REST API under ``/api/v1/prompts`` (see docs/prompts.md).

Names may contain ``/`` (folders), so routes with a suffix after the name are declared
before the plain ``/{name}`` routes; the words the suffixes use are reserved in names.
Reads are open to admin, member, viewer and ingest keys (apps fetch prompts with the
key they trace with); writes need admin or member; protected labels, settings and
deletion need admin.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.core.prompts import Prompt
from podium.core.records import TraceIn
from podium.core.roles import Action
from podium.errors import BadRequest, ServiceUnavailable, ValidationFailed
from podium.prompts import PromptRegistry
from podium.server.audit_log import label_note, noted
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute, read_json
from podium.server.convert import BatchBuilder
from podium.server.routes.traces import utc_param
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/prompts", tags=["prompts"], route_class=StrictJSONRoute)



_role = needs


Reader = Annotated[ApiKey, _role(Action.USE_PROMPTS, "read prompts")]
Writer = Annotated[ApiKey, _role(Action.WRITE, "change prompts")]
Admin = Annotated[ApiKey, _role(Action.ADMIN, "change prompt settings or delete prompts")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _reg(request: Request) -> PromptRegistry:
    return PromptRegistry(_st(request).store.prompts)


# --- response shapes (OpenAPI) ----------------------------------------------------------------------


class TargetOut(BaseModel):
    version: int
    weight: float


class PromptVersionOut(BaseModel):
    name: str
    version: int
    type: str = Field(description="text | chat")
    template_format: str = Field(description="mustache | jinja2")
    prompt: Any = Field(description="a template string, or a list of chat messages and placeholders")
    config: dict[str, Any]
    variables: list[str]
    placeholders: list[str]
    commit_message: str | None
    size_bytes: int
    created_by: str | None = Field(description="public key that created it")
    created_at: datetime
    labels: list[str] = Field(description="labels pointing at this version, 'latest' included")
    tags: list[str]


class ResolvedOut(PromptVersionOut):
    resolved_by: dict[str, Any]


class LabelInfo(BaseModel):
    version: int
    targets: list[TargetOut]
    protected: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


class PromptOut(BaseModel):
    name: str
    type: str
    tags: list[str]
    latest_version: int
    labels: dict[str, LabelInfo]
    created_at: datetime
    updated_at: datetime


class PromptPage(BaseModel):
    data: list[PromptOut]
    next_cursor: str | None


class VersionPage(BaseModel):
    data: list[PromptVersionOut]
    next_cursor: str | None


class LabelOut(BaseModel):
    name: str
    label: str
    version: int = Field(description="the main (heaviest) target")
    targets: list[TargetOut]
    protected: bool
    updated_at: datetime | None
    updated_by: str | None
    versions: list[PromptVersionOut] = Field(description="full content of every target version")


class LabelEventOut(BaseModel):
    label: str
    seq: int
    action: str = Field(description="set | rollback | delete")
    from_version: int | None
    to_version: int | None
    from_targets: list[TargetOut] | None
    to_targets: list[TargetOut] | None
    actor: str | None = Field(description="public key that made the change")
    comment: str | None
    created_at: datetime


class LabelEventPage(BaseModel):
    data: list[LabelEventOut]
    next_cursor: str | None


class SettingsOut(BaseModel):
    protected_labels: list[str]


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protected_labels: list[str] = Field(description="labels only admin keys may move, e.g. [\"production\"]")


class CreateIn(BaseModel):
    """Body of ``POST /api/v1/prompts`` (``name`` comes from the path on ``.../{name}/versions``)."""

    name: str | None = Field(default=None, description="e.g. qa or support/triage; '/' makes folders")
    prompt: Any = Field(description="text: a template string; chat: a list of {role, content} messages and "
                                    "{type: placeholder, name} entries")
    type: str | None = Field(default=None, description="text | chat (inferred from prompt)")
    template_format: str = Field(default="mustache", description="mustache ({{var}}) | jinja2 (sandboxed)")
    config: dict[str, Any] | None = Field(default=None, description="model, temperature, max_tokens, "
                                                                     "response_format, tools, ...")
    tags: list[str] | None = Field(default=None, description="replace the prompt's tags (omit to keep them)")
    labels: list[str] = Field(default_factory=list, description="labels to move to the new version")
    commit_message: str | None = None
    base_version: int | None = Field(default=None, description="refuse (409) unless the latest version is this "
                                                                "one (0: the prompt must be new)")


class LabelIn(BaseModel):
    version: int | None = Field(default=None, description="point the label at this version")
    versions: list[TargetOut] | None = Field(default=None, description="or split traffic (A/B), e.g. "
                                                                       "[{version: 3, weight: 90}, {version: 4, weight: 10}]")
    comment: str | None = None


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variables: dict[str, Any] = Field(default_factory=dict, description="template variables and placeholders")
    model: str | None = Field(default=None, description="gateway model alias; default: the config's model, "
                                                         "else local")
    params: dict[str, Any] = Field(default_factory=dict, description="override config parameters "
                                                                     "(temperature, max_tokens, ...)")
    user_id: str | None = None
    session_id: str | None = None
    cache: bool = Field(default=True, description="false: skip the gateway's response cache")


class RunOut(BaseModel):
    output: str | None
    message: dict[str, Any] | None
    model: str
    deployment: str | None
    usage: dict[str, Any] | None
    cost: float | None
    latency_ms: float
    cache_hit: bool
    trace_id: str
    span_id: str
    prompt: dict[str, Any]
    messages: list[dict[str, Any]]


class CompileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variables: dict[str, Any] = Field(default_factory=dict)


_CREATE_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": CreateIn.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


async def _json_object(request: Request) -> dict[str, Any]:
    body = await read_json(request, _st(request).settings.max_request_bytes)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", details=[{"field": None, "message": "not an object"}])
    return body


# --- collection ---------------------------------------------------------------------------------------


@router.get("", response_model=PromptPage, summary="List prompts")
def list_prompts(
    request: Request,
    key: Reader,
    q: Annotated[str | None, Query(description="case-insensitive substring of the name")] = None,
    prefix: Annotated[str | None, Query(description="folder, e.g. support/")] = None,
    tag: str | None = None,
    label: Annotated[str | None, Query(description="prompts that have this label")] = None,
    type: Annotated[str | None, Query(description="text | chat")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = _st(request).store.prompts.list_prompts(key.project_id, q=q, prefix=prefix, tag=tag, label=label,
                                                   type=type, limit=limit, cursor=cursor)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.post("", status_code=201, response_model=PromptVersionOut, openapi_extra=_CREATE_DOC,
             summary="Create a prompt, or a new version of one (name in the body)")
async def create_prompt(request: Request, key: Writer) -> dict[str, Any]:
    """Versions are immutable and numbered from 1; ``latest`` moves to the new one. Invalid
    templates answer 400 with the line and column; versions over 1 MB answer 413."""
    body = await _json_object(request)
    out = await run_in_threadpool(
        _reg(request).create_version, key.project_id, body, role=key.role, actor=key.public_key)
    return noted(request.state, "prompt.version.create", out, target_type="prompt", target_id=out.get("name"))


@router.get("/settings", response_model=SettingsOut, summary="Prompt settings of the project")
def get_settings(request: Request, key: Reader) -> dict[str, Any]:
    return _st(request).store.prompts.get_settings(key.project_id)


@router.put("/settings", response_model=SettingsOut, summary="Set the protected labels (admin)")
def put_settings(request: Request, key: Admin, body: SettingsIn) -> dict[str, Any]:
    before = _st(request).store.prompts.get_settings(key.project_id)
    return noted(request.state, "prompt.settings.set", _reg(request).put_settings(key.project_id, body.model_dump()),
                 target_type="prompt_settings", target_id=key.project_id, before=before)


@router.get("/export", response_model=dict[str, list[dict[str, Any]]],
            summary="Every prompt's latest version with its labels (podium prompts pull)")
def export(request: Request, key: Reader, prefix: str | None = None) -> dict[str, Any]:
    return {"data": _st(request).store.prompts.export(key.project_id, prefix=prefix)}


# --- versions ---------------------------------------------------------------------------------------------


@router.post("/{name:path}/versions/{version}/run", response_model=RunOut,
             summary="Playground: compile a version and call a gateway model (traced)")
async def run_version(request: Request, name: str, version: str, key: Writer, body: RunIn) -> dict[str, Any]:
    """Compiles the version with ``variables`` and sends it through the gateway (the
    version's config, then ``params``, then ``model``). The call is logged like any gateway
    call, as the root of a trace named ``playground NAME vN`` whose span is linked to the
    prompt version."""
    st = _st(request)
    gw = st.gateway
    if gw is None:
        raise ServiceUnavailable("the gateway is not enabled in this process; run the playground on `podium up`")
    v = await run_in_threadpool(_reg(request).get_version, key.project_id, name, version)
    prompt = Prompt.from_dict(v)
    kwargs = prompt.openai_kwargs(**body.variables)
    messages = [dict(m) for m in kwargs.pop("messages")]
    req: dict[str, Any] = {**kwargs, **body.params, "messages": messages}
    req["model"] = body.model or req.get("model") or "local"
    req.pop("stream", None)
    trace_id = uuid.uuid4().hex
    meta = {"prompt": {"name": prompt.name, "version": prompt.version}, "playground": True}
    req["podium"] = {"trace_id": trace_id, "metadata": meta, "tags": ["playground"],
                     "prompt": {"name": prompt.name, "version": prompt.version},
                     **({"user_id": body.user_id} if body.user_id else {}),
                     **({"session_id": body.session_id} if body.session_id else {}),
                     **({} if body.cache else {"cache": False})}
    await gw.warm(key.project_id)  # aliases, limits, prices: loaded off the event loop
    call = gw.prepare(key, "chat", req, {})
    t0 = time.perf_counter()
    out = await gw.call(call)
    latency_ms = (time.perf_counter() - t0) * 1000.0
    dep = call.routed.deployment
    usage = out.get("usage") if isinstance(out.get("usage"), dict) else None
    cost = 0.0 if call.cache_hit else call.cost  # priced once, by the gateway
    message = ((out.get("choices") or [{}])[0]).get("message")
    # The gateway's span carries the prompt link (podium.prompt above); name the trace.
    builder = BatchBuilder(key.project_id, lambda: st.prices_for(key.project_id))
    builder.add_trace(TraceIn(id=call.trace_id, name=f"playground {prompt.name} v{prompt.version}",
                              input=body.variables or None, output=(message or {}).get("content"),
                              metadata=meta))
    refused = await st.ingester.submit(builder.batch)
    if refused:
        raise BadRequest(refused[0][1])
    return {
        "output": (message or {}).get("content"),
        "message": message,
        "model": call.alias,
        "deployment": dep.id if dep is not None else None,
        "usage": usage,
        "cost": cost,
        "latency_ms": round(latency_ms, 3),
        "cache_hit": call.cache_hit,
        "trace_id": call.trace_id,
        "span_id": call.span_id,
        "prompt": {"name": prompt.name, "version": prompt.version},
        "messages": messages,
    }


@router.post("/{name:path}/versions/{version}/compile", summary="Compile a version with variables (no model call)")
def compile_version(request: Request, name: str, version: str, key: Reader, body: CompileIn) -> dict[str, Any]:
    v = _reg(request).get_version(key.project_id, name, version)
    prompt = Prompt.from_dict(v)
    compiled = prompt.compile(**body.variables)
    return {"name": prompt.name, "version": prompt.version, "type": prompt.type,
            "compiled": compiled if prompt.type == "text" else list(compiled),
            "openai_kwargs": {k: (list(x) if k == "messages" else x)
                              for k, x in prompt.openai_kwargs(**body.variables).items()}}


@router.get("/{name:path}/versions/{version}", response_model=PromptVersionOut,
            summary="One version (a number or latest)")
def get_version(request: Request, name: str, version: str, key: Reader) -> dict[str, Any]:
    return _reg(request).get_version(key.project_id, name, version)


@router.get("/{name:path}/versions", response_model=VersionPage, summary="Versions, newest first")
def list_versions(request: Request, name: str, key: Reader, limit: Limit = 50,
                  cursor: str | None = None) -> dict[str, Any]:
    page = _st(request).store.prompts.list_versions(key.project_id, name, limit=limit, cursor=cursor)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.post("/{name:path}/versions", status_code=201, response_model=PromptVersionOut, openapi_extra=_CREATE_DOC,
             summary="Create a new version of the prompt")
async def create_version(request: Request, name: str, key: Writer) -> dict[str, Any]:
    body = await _json_object(request)
    if "name" in body and body["name"] != name:
        raise ValidationFailed(f"the body names prompt {body['name']!r} but the path names {name!r}",
                               details=[{"field": "name", "message": "differs from the path"}])
    out = await run_in_threadpool(
        _reg(request).create_version, key.project_id, body, role=key.role, actor=key.public_key, name=name)
    return noted(request.state, "prompt.version.create", out, target_type="prompt", target_id=name)


# --- labels ---------------------------------------------------------------------------------------------------


@router.get("/{name:path}/labels/{label}/history", response_model=LabelEventPage,
            summary="Moves of one label, newest first")
def label_history(request: Request, name: str, label: str, key: Reader, limit: Limit = 50,
                  cursor: str | None = None) -> dict[str, Any]:
    page = _st(request).store.prompts.label_history(key.project_id, name, label, limit=limit, cursor=cursor)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.post("/{name:path}/labels/{label}/rollback", response_model=LabelOut,
             summary="Move the label back to where it pointed before its last move")
def rollback_label(request: Request, name: str, label: str, key: Writer,
                   body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    comment = (body or {}).get("comment")
    out = _reg(request).rollback_label(key.project_id, name, label, role=key.role, actor=key.public_key,
                                       comment=comment)
    label_note(request.state, _st(request).store, key.project_id, name, label, "prompt.label.rollback")
    return out


@router.get("/{name:path}/labels/{label}", response_model=LabelOut,
            summary="A label with its targets and their content (what the SDK caches)")
def get_label(request: Request, name: str, label: str, key: Reader) -> dict[str, Any]:
    return _st(request).store.prompts.get_label(key.project_id, name, label)


@router.put("/{name:path}/labels/{label}", response_model=LabelOut,
            summary="Point a label at a version, or split it between versions (A/B)")
def put_label(request: Request, name: str, label: str, key: Writer, body: LabelIn) -> dict[str, Any]:
    """Protected labels (``PUT /api/v1/prompts/settings``) need an admin key (403 otherwise).
    Every move is recorded: ``GET .../labels/{label}/history``."""
    raw = body.model_dump(exclude_none=True)
    out = _reg(request).set_label(key.project_id, name, label, raw, role=key.role, actor=key.public_key)
    label_note(request.state, _st(request).store, key.project_id, name, label, "prompt.label.move")
    return out


@router.delete("/{name:path}/labels/{label}", status_code=204, summary="Remove a label (recorded)")
def delete_label(request: Request, name: str, label: str, key: Writer) -> Response:
    _reg(request).delete_label(key.project_id, name, label, role=key.role, actor=key.public_key)
    label_note(request.state, _st(request).store, key.project_id, name, label, "prompt.label.delete")
    return Response(status_code=204)


@router.get("/{name:path}/labels", response_model=dict[str, LabelInfo], summary="Labels of a prompt")
def list_labels(request: Request, name: str, key: Reader) -> dict[str, Any]:
    return _st(request).store.prompts.get_prompt(key.project_id, name)["labels"]


@router.get("/{name:path}/history", response_model=LabelEventPage, summary="Moves of every label, newest first")
def history(request: Request, name: str, key: Reader, limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    page = _st(request).store.prompts.label_history(key.project_id, name, None, limit=limit, cursor=cursor)
    return {"data": page.items, "next_cursor": page.next_cursor}


# --- reading, comparing, analytics -------------------------------------------------------------------------------


@router.get("/{name:path}/resolve", response_model=ResolvedOut,
            summary="The version a request gets (label, A/B split by user or session id)")
def resolve(
    request: Request,
    name: str,
    key: Reader,
    label: str | None = None,
    version: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    """By ``version``, or by ``label`` (default ``production``). A label split between
    versions picks one by hashing ``user_id`` (else ``session_id``): the same id always gets
    the same version; without either the pick is random."""
    return _reg(request).resolve(key.project_id, name, label=label, version=version, seed=user_id or session_id)


@router.get("/{name:path}/diff", summary="Unified diff of two versions' templates and configs")
def diff(
    request: Request,
    name: str,
    key: Reader,
    a: Annotated[str, Query(alias="from", description="version number or label")],
    b: Annotated[str, Query(alias="to", description="version number or label")] = "latest",
) -> dict[str, Any]:
    return _reg(request).diff(key.project_id, name, a, b)


@router.get("/{name:path}/analytics", summary="Per-version calls, latency, tokens, cost and scores")
def analytics(
    request: Request,
    name: str,
    key: Reader,
    start: Annotated[datetime | None, Query(alias="from", description="span start_time >= (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="span start_time < (ISO 8601)")] = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Over spans linked to the prompt (``prompt_name``/``prompt_version``: set by the SDK's
    OpenAI wrapper, ``span.update(prompt_name=..., prompt_version=...)``, OTel
    ``langfuse.observation.prompt.*`` attributes, or the playground). Scores are numeric and
    boolean scores on those spans or on their traces."""
    data = _st(request).store.prompts.analytics(key.project_id, name, start=utc_param("from", start),
                                                end=utc_param("to", end), version=version)
    return {"name": name, "data": data}


# --- one prompt ----------------------------------------------------------------------------------------------


@router.get("/{name:path}", response_model=PromptOut, summary="A prompt: type, tags, latest version, labels")
def get_prompt(request: Request, name: str, key: Reader) -> dict[str, Any]:
    return _st(request).store.prompts.get_prompt(key.project_id, name)


@router.patch("/{name:path}", response_model=PromptOut, summary="Set a prompt's tags")
def patch_prompt(request: Request, name: str, key: Writer,
                 body: Annotated[dict[str, Any], Body(examples=[{"tags": ["support", "beta"]}])]) -> dict[str, Any]:
    unknown = sorted(set(body) - {"tags"})
    if unknown:
        raise ValidationFailed(f"unknown field(s) {unknown}; only tags can change (versions are immutable)",
                               details=[{"field": u, "message": "unknown field"} for u in unknown])
    return _reg(request).set_tags(key.project_id, name, body.get("tags"))


@router.delete("/{name:path}", status_code=204, summary="Delete a prompt with all its versions (admin)")
def delete_prompt(request: Request, name: str, key: Admin) -> Response:
    _st(request).store.prompts.delete_prompt(key.project_id, name)
    noted(request.state, "prompt.delete", None, target_type="prompt", target_id=name)
    return Response(status_code=204)
