"""The subset of Langfuse's public REST API that the Langfuse SDKs (Python v3 and v5) call,
mapped onto Podium's own objects, so Langfuse SDK users can point ``LANGFUSE_HOST`` at Podium.

Traces arrive over OTLP at ``/api/public/otel/v1/traces`` (``routes/ingest.py``). This module
serves the rest (see the compatibility table in docs/integrations.md):

- ``GET /api/public/health``, ``GET /api/public/projects`` (``auth_check()``);
- prompts v2: get by label/version, create, list, move labels -> the prompt registry;
- scores: ``POST /api/public/scores`` (one object, or v5's list), ``POST /api/public/ingestion``
  (v3 sends ``score-create`` events there), get and delete by id -> the ``score`` table;
- datasets v2 and dataset items -> Podium datasets (a Langfuse dataset id is its name);
- dataset runs and run items -> Podium experiments (one per dataset and run name, its id
  derived from both), each run item an experiment item linked to its trace.

Bodies and answers use Langfuse's camelCase JSON shapes; errors answer ``{"message", "error"}``
as Langfuse's server does (its SDKs read ``message``).
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from podium._version import __version__
from podium.core.records import ScoreIn, TraceIn
from podium.core.roles import Action
from podium.errors import BadRequest, Conflict, NotFound, PodiumError, ValidationFailed
from podium.evals.service import EvalService
from podium.prompts import PromptRegistry
from podium.server.auth import CurrentKey, needs
from podium.server.body import read_json
from podium.server.convert import BatchBuilder
from podium.server.errors import pydantic_details
from podium.server.routes import score_configs as _score_configs
from podium.server.routes.score_configs import score_configs_for
from podium.server.state import AppState
from podium.store.repos.evals import ExperimentFilter
from podium.store.repos.projects import ApiKey
from podium.store.repos.score_configs import ScoreConfigRepo

__all__ = ["ENDPOINTS", "router"]

# (method, path) of every endpoint served here; docs/integrations.md's table lists the same.
ENDPOINTS: list[tuple[str, str]] = []


class _LangfuseRoute(APIRoute):
    """Errors in Langfuse's shape, ``{"message": ..., "error": ...}``, for every route here."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except PodiumError as e:
                return _error(e.status_code, e.code, e.message)
            except RequestValidationError as e:
                d = pydantic_details(list(e.errors()))
                first: dict[str, Any] = d[0] if d else {"field": None, "message": "invalid request"}
                msg = f"invalid request: {first['field']}: {first['message']}" if first["field"] else first["message"]
                return _error(400, "validation_error", msg)
            except StarletteHTTPException as e:
                return _error(e.status_code, "error", str(e.detail))

        return route


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "error": code}, status_code=status)


router = APIRouter(prefix="/api/public", tags=["langfuse"], route_class=_LangfuseRoute)


def _route(method: str, path: str, **kw: Any) -> Callable[[Any], Any]:
    ENDPOINTS.append((method, "/api/public" + path))
    return router.api_route(path, methods=[method], summary=f"Langfuse: {method} {path}", **kw)


_role = needs


AnyKey = CurrentKey
PromptReader = Annotated[ApiKey, _role(Action.USE_PROMPTS, "read prompts")]
Writer = Annotated[ApiKey, _role(Action.WRITE, "change prompts, datasets or dataset runs")]
Reader = Annotated[ApiKey, _role(Action.READ, "read data")]
ScoreWriter = Annotated[ApiKey, _role(Action.INGEST, "write scores")]
Page = Annotated[int, Query(ge=1, le=100_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _st(request: Request) -> AppState:
    return request.app.state.podium


async def _body(request: Request) -> Any:
    return await read_json(request, _st(request).settings.max_request_bytes)


async def _object(request: Request) -> dict[str, Any]:
    body = await _body(request)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(v)


def _meta(page: int, limit: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "totalItems": total, "totalPages": max(1, math.ceil(total / limit))}


def _as_object(v: Any) -> dict[str, Any] | None:
    """Langfuse metadata is any JSON value; Podium keeps objects (others under ``value``)."""
    if v is None or isinstance(v, dict):
        return v
    return {"value": v}


def _all_pages(fetch: Callable[[str | None], Any], cap: int = 100_000) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while len(out) < cap:
        page = fetch(cursor)
        out.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    return out


# --- health and projects ---------------------------------------------------------------------


@_route("GET", "/health")
def health() -> dict[str, str]:
    return {"status": "OK", "version": __version__}


@_route("GET", "/projects")
def projects(request: Request, key: AnyKey) -> dict[str, Any]:
    p = _st(request).store.projects.get_project(key.project_id)
    return {"data": [{"id": p.id, "name": p.name, "organization": {"id": "podium", "name": "Podium"},
                      "metadata": {}}]}


# --- prompts ---------------------------------------------------------------------------------------


def _reg(request: Request) -> PromptRegistry:
    return PromptRegistry(_st(request).store.prompts)


def _prompt_out(v: dict[str, Any]) -> dict[str, Any]:
    prompt = v["prompt"]
    if v["type"] == "chat":
        prompt = [m if m.get("type") == "placeholder" else {"type": "chatmessage", **m} for m in prompt]
    return {"type": v["type"], "name": v["name"], "version": v["version"], "prompt": prompt,
            "config": v.get("config") or {}, "labels": list(v.get("labels") or []), "tags": list(v.get("tags") or []),
            "commitMessage": v.get("commit_message"), "resolutionGraph": None}


@_route("PATCH", "/v2/prompts/{name:path}/versions/{version}")
async def prompt_version_labels(request: Request, name: str, version: int, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    labels = body.get("newLabels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValidationFailed('send {"newLabels": ["production", ...]}')
    reg = _reg(request)

    def work() -> dict[str, Any]:
        for label in labels:
            if label != "latest":
                reg.set_label(key.project_id, name, label, {"version": version}, role=key.role, actor=key.public_key)
        return reg.get_version(key.project_id, name, version)

    return _prompt_out(await run_in_threadpool(work))


@_route("GET", "/v2/prompts/{name:path}")
def get_prompt(request: Request, name: str, key: PromptReader, label: str | None = None,
               version: int | None = None) -> dict[str, Any]:
    v = _reg(request).resolve(key.project_id, name, label=label, version=version)
    return _prompt_out(v)


@_route("POST", "/v2/prompts")
async def create_prompt(request: Request, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = [{k: x for k, x in m.items() if k != "type"} if isinstance(m, dict) and m.get("type") == "chatmessage"
                  else m for m in prompt]
    mapped = {"name": body.get("name"), "prompt": prompt, "type": body.get("type"), "config": body.get("config"),
              "labels": body.get("labels") or [], "commit_message": body.get("commitMessage")}
    if body.get("tags") is not None:
        mapped["tags"] = body["tags"]
    v = await run_in_threadpool(_reg(request).create_version, key.project_id, mapped, role=key.role,
                                actor=key.public_key)
    return _prompt_out(v)


@_route("GET", "/v2/prompts")
def list_prompts(request: Request, key: PromptReader, name: str | None = None, label: str | None = None,
                 tag: str | None = None, page: Page = 1, limit: Limit = 50) -> dict[str, Any]:
    repo = _st(request).store.prompts
    rows = _all_pages(lambda c: repo.list_prompts(key.project_id, q=None, prefix=None, tag=tag, label=label,
                                                  type=None, limit=1000, cursor=c))
    if name is not None:
        rows = [r for r in rows if r["name"] == name]
    chunk = rows[(page - 1) * limit: page * limit]
    data = []
    for r in chunk:
        latest = repo.get_version(key.project_id, r["name"], r["latest_version"])
        data.append({"name": r["name"], "type": r["type"], "versions": list(range(1, r["latest_version"] + 1)),
                     "labels": sorted(r["labels"]), "tags": r["tags"], "lastUpdatedAt": _iso(r["updated_at"]),
                     "lastConfig": latest.get("config") or {}})
    return {"data": data, "meta": _meta(page, limit, len(rows))}


# --- scores ------------------------------------------------------------------------------------------

_DATA_TYPES = {"NUMERIC": "numeric", "BOOLEAN": "boolean", "CATEGORICAL": "categorical", "TEXT": "text"}


def _score_in(b: Any) -> ScoreIn:
    """A Langfuse score body -> ``ScoreIn`` (raises ValidationFailed with a fix)."""
    if not isinstance(b, dict):
        raise ValidationFailed("a score is an object like {\"name\": \"accuracy\", \"value\": 0.9, \"traceId\": \"...\"}")
    dtype = b.get("dataType")
    if dtype is not None and dtype not in _DATA_TYPES:
        raise ValidationFailed(f"dataType must be one of {', '.join(_DATA_TYPES)}; got {dtype!r}")
    if b.get("traceId") is None and b.get("sessionId") is None:
        raise ValidationFailed("Podium attaches a score to a trace (traceId, optionally observationId) or a session "
                               "(sessionId); scores on a dataset run alone (datasetRunId) are not stored")
    value = b.get("value")
    if dtype == "BOOLEAN" and isinstance(value, int | float) and not isinstance(value, bool):
        value = bool(value)
    meta = _as_object(b.get("metadata"))
    extra = {k: b[k] for k in ("environment", "datasetRunId", "queueId") if b.get(k) is not None}
    if extra:
        meta = {**(meta or {}), "langfuse": extra}
    try:
        return ScoreIn.model_validate({
            "id": b.get("id"), "name": b.get("name"), "value": value,
            "data_type": _DATA_TYPES.get(dtype) if dtype else None, "config_id": b.get("configId"),
            "trace_id": b.get("traceId"),
            "span_id": b.get("observationId"), "session_id": b.get("sessionId"), "source": "sdk",
            "comment": b.get("comment"), "metadata": meta, "timestamp": b.get("timestamp"),
        })
    except ValidationError as e:
        parts = [f"{d['field']}: {d['message']}" if d["field"] else d["message"]
                 for d in pydantic_details(list(e.errors()))]
        raise ValidationFailed("invalid score: " + "; ".join(parts[:3])) from None


async def _submit(request: Request, builder: BatchBuilder) -> list[tuple[tuple[str, ...], str]]:
    return await _st(request).ingester.submit(builder.batch)


async def _builder(request: Request, key: ApiKey) -> BatchBuilder:
    """A batch builder that validates scores against the project's score configs."""
    st = _st(request)
    configs = await score_configs_for(request, key.project_id)
    return BatchBuilder(key.project_id, lambda: st.prices_for(key.project_id), configs)


@_route("POST", "/scores")
async def create_scores(request: Request, key: ScoreWriter) -> JSONResponse:
    """One score object (answers ``{"id"}``), or a list (Langfuse SDK v5: 202, or 207 with counts)."""
    body = await _body(request)
    builder = await _builder(request, key)
    if isinstance(body, list):
        errors: list[dict[str, str]] = []
        ids: list[str] = []
        for i, b in enumerate(body):
            try:
                ids.append(builder.add_score(_score_in(b)))
            except ValidationFailed as e:
                errors.append({"message": f"score {i}: {e.message}"})
        refused = await _submit(request, builder)
        errors.extend({"message": f"score {k[-1]}: {msg}"} for k, msg in refused)
        if errors:
            accepted = len(ids) - len(refused)
            return JSONResponse({"accepted": accepted, "rejected": len(body) - accepted, "errors": errors},
                                status_code=207)
        return JSONResponse({"message": "Accepted"}, status_code=202)
    sid = builder.add_score(_score_in(body))
    refused = await _submit(request, builder)
    if refused:
        raise BadRequest(refused[0][1])
    return JSONResponse({"id": sid}, status_code=200)


ConfigAdmin = Annotated[ApiKey, _role(Action.ADMIN, "manage score configs")]


def _config_out(c: dict[str, Any], project_id: str) -> dict[str, Any]:
    return {"id": c["id"], "projectId": project_id, "name": c["name"], "dataType": str(c["data_type"]).upper(),
            "isArchived": c["archived"], "minValue": c["min_value"], "maxValue": c["max_value"],
            "categories": c["categories"], "description": c["description"],
            "createdAt": _iso(c["created_at"]), "updatedAt": _iso(c["updated_at"])}


@_route("GET", "/score-configs")
def list_score_configs(request: Request, key: Reader, page: Page = 1, limit: Limit = 50) -> dict[str, Any]:
    rows = ScoreConfigRepo(_st(request).store.engine).list(key.project_id)
    chunk = rows[(page - 1) * limit: page * limit]
    return {"data": [_config_out(c, key.project_id) for c in chunk], "meta": _meta(page, limit, len(rows))}


@_route("GET", "/score-configs/{config_id}")
def get_score_config(request: Request, config_id: str, key: Reader) -> dict[str, Any]:
    c = ScoreConfigRepo(_st(request).store.engine).get(key.project_id, config_id)
    if c is None:
        raise NotFound(f"no score config {config_id!r} in this project")
    return _config_out(c, key.project_id)


@_route("POST", "/score-configs")
async def create_score_config(request: Request, key: ConfigAdmin) -> dict[str, Any]:
    """Langfuse's body (``name``, ``dataType``, ``minValue``, ``maxValue``, ``categories``,
    ``description``) -> a Podium score config (docs/data-model.md, "Score configs")."""
    b = await _object(request)
    dtype = b.get("dataType")
    if dtype not in ("NUMERIC", "BOOLEAN", "CATEGORICAL"):
        raise ValidationFailed(f"dataType must be NUMERIC, BOOLEAN or CATEGORICAL; got {dtype!r}")
    try:
        body = _score_configs.ScoreConfigIn.model_validate({
            "name": b.get("name"), "data_type": dtype.lower(), "min_value": b.get("minValue"),
            "max_value": b.get("maxValue"), "categories": b.get("categories"), "description": b.get("description"),
        })
    except ValidationError as e:
        parts = [f"{d['field']}: {d['message']}" if d["field"] else d["message"]
                 for d in pydantic_details(list(e.errors()))]
        raise ValidationFailed("invalid score config: " + "; ".join(parts[:3])) from None
    repo = ScoreConfigRepo(_st(request).store.engine)
    c = await run_in_threadpool(repo.create, key.project_id, body.model_dump())
    _score_configs.invalidate(request, key.project_id)
    return _config_out(c, key.project_id)


def _score_out(s: dict[str, Any]) -> dict[str, Any]:
    dt = str(s["data_type"]).upper()
    value = s["value"]
    out = {"id": s["id"], "traceId": s.get("trace_id"), "observationId": s.get("span_id"),
           "sessionId": s.get("session_id"), "name": s["name"], "dataType": dt, "source": "API",
           "comment": s.get("comment"), "metadata": s.get("metadata") or {}, "timestamp": _iso(s.get("timestamp")),
           "createdAt": _iso(s.get("timestamp")), "updatedAt": _iso(s.get("timestamp")), "environment": "default"}
    if dt in ("CATEGORICAL", "TEXT"):
        out["stringValue"] = value
        out["value"] = None
    else:
        out["value"] = float(value) if value is not None else None
        if dt == "BOOLEAN":
            out["stringValue"] = "True" if value else "False"
    return out


@_route("GET", "/scores/{score_id}")
def get_score(request: Request, score_id: str, key: Reader) -> dict[str, Any]:
    s = _st(request).store.scores.get_score(key.project_id, score_id)
    if s is None:
        raise NotFound(f"no score {score_id!r} in this project (scores are listed at GET /api/v1/scores)")
    return _score_out(s)


@_route("DELETE", "/scores/{score_id}", status_code=204)
def delete_score(request: Request, score_id: str, key: Writer) -> Response:
    if not _st(request).store.scores.delete_score(key.project_id, score_id):
        raise NotFound(f"no score {score_id!r} in this project (scores are listed at GET /api/v1/scores)")
    return Response(status_code=204)


def _trace_in(b: Any) -> TraceIn:
    if not isinstance(b, dict):
        raise ValidationFailed("a trace-create body is an object with id")
    try:
        return TraceIn.model_validate({
            "id": b.get("id"), "name": b.get("name"), "user_id": b.get("userId"), "session_id": b.get("sessionId"),
            "input": b.get("input"), "output": b.get("output"), "metadata": _as_object(b.get("metadata")),
            "tags": b.get("tags") or None, "release": b.get("release"), "environment": b.get("environment"),
            "timestamp": b.get("timestamp"),
        })
    except ValidationError as e:
        parts = [f"{d['field']}: {d['message']}" if d["field"] else d["message"]
                 for d in pydantic_details(list(e.errors()))]
        raise ValidationFailed("invalid trace: " + "; ".join(parts[:3])) from None


@_route("POST", "/ingestion")
async def ingestion(request: Request, key: ScoreWriter) -> JSONResponse:
    """Langfuse's batch endpoint: ``score-create`` and ``trace-create`` events are stored; the
    observation events of the Langfuse v2 SDK are refused per event (v3+ sends them over OTLP)."""
    body = await _object(request)
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise ValidationFailed('send {"batch": [{"id", "type", "timestamp", "body"}, ...]}')
    builder = await _builder(request, key)
    successes: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    pending: dict[tuple[str, ...], str | None] = {}
    for ev in batch:
        eid = ev.get("id") if isinstance(ev, dict) else None
        typ = ev.get("type") if isinstance(ev, dict) else None
        try:
            if typ == "score-create":
                sid = builder.add_score(_score_in(ev.get("body")))
                pending[("score", sid)] = eid
            elif typ == "trace-create":
                tr = _trace_in(ev.get("body"))
                builder.add_trace(tr)
                pending[("trace", tr.id)] = eid
            else:
                raise ValidationFailed(f"event type {typ!r} is not supported by Podium: send traces and "
                                       "observations over OTLP (Langfuse SDK v3 or newer)")
        except ValidationFailed as e:
            errors.append({"id": eid, "status": 400, "message": e.message, "error": e.code})
            continue
        successes.append({"id": eid, "status": 201})
    refused = await _submit(request, builder)
    if refused:
        bad = {pending.get(k): msg for k, msg in refused}
        successes = [s for s in successes if s["id"] not in bad]
        errors.extend({"id": i, "status": 400, "message": m, "error": "rejected"} for i, m in bad.items())
    return JSONResponse({"successes": successes, "errors": errors}, status_code=207)


# --- datasets ------------------------------------------------------------------------------------------


def _svc(request: Request) -> EvalService:
    return EvalService(_st(request).store.evals)


def _dataset_out(d: dict[str, Any], project_id: str) -> dict[str, Any]:
    return {"id": d["name"], "name": d["name"], "description": d.get("description"), "metadata": d.get("metadata") or {},
            "inputSchema": None, "expectedOutputSchema": None, "projectId": project_id,
            "createdAt": _iso(d.get("created_at")), "updatedAt": _iso(d.get("updated_at"))}


@_route("POST", "/v2/datasets")
async def create_dataset(request: Request, key: Writer) -> dict[str, Any]:
    """Creates the dataset, or updates its description and metadata when it exists (as Langfuse does)."""
    body = await _object(request)
    name, desc, meta = body.get("name"), body.get("description"), _as_object(body.get("metadata"))
    svc = _svc(request)
    repo = _st(request).store.evals

    def work() -> dict[str, Any]:
        try:
            return svc.create_dataset(key.project_id, {"name": name, "description": desc, "metadata": meta},
                                      actor=key.public_key)
        except Conflict:
            return repo.update_dataset(key.project_id, str(name), description=desc, metadata=meta)  # a str: create_dataset checked it

    return _dataset_out(await run_in_threadpool(work), key.project_id)


@_route("GET", "/v2/datasets/{name}")
def get_dataset(request: Request, name: str, key: Reader) -> dict[str, Any]:
    return _dataset_out(_st(request).store.evals.get_dataset(key.project_id, name), key.project_id)


@_route("GET", "/v2/datasets")
def list_datasets(request: Request, key: Reader, page: Page = 1, limit: Limit = 50) -> dict[str, Any]:
    repo = _st(request).store.evals
    rows = _all_pages(lambda c: repo.list_datasets(key.project_id, limit=1000, cursor=c))
    chunk = rows[(page - 1) * limit: page * limit]
    return {"data": [_dataset_out(d, key.project_id) for d in chunk], "meta": _meta(page, limit, len(rows))}


_OBS = "_source_observation_id"


def _item_out(it: dict[str, Any], dataset: str, created: Any) -> dict[str, Any]:
    meta = dict(it.get("metadata") or {})
    obs = meta.pop(_OBS, None)
    if set(meta) == {"value"} and not isinstance(meta["value"], dict):
        meta = meta["value"]
    return {"id": it["id"], "status": "ACTIVE", "input": it.get("input"), "expectedOutput": it.get("expected"),
            "metadata": meta or None, "sourceTraceId": it.get("source_trace_id"), "sourceObservationId": obs,
            "datasetId": dataset, "datasetName": dataset, "createdAt": _iso(created), "updatedAt": _iso(created),
            "mediaReferences": []}


def _find_item(request: Request, project_id: str, item_id: str) -> dict[str, Any]:
    found = _st(request).store.evals.find_items(project_id, item_id)
    if not found:
        raise NotFound(f"no dataset item {item_id!r} in this project")
    return found[0]


@_route("POST", "/dataset-items")
async def create_dataset_item(request: Request, key: Writer) -> dict[str, Any]:
    """Upserts one item by id (a new id when none is sent); ``status: ARCHIVED`` removes it."""
    body = await _object(request)
    dataset = body.get("datasetName")
    if not isinstance(dataset, str):
        raise ValidationFailed("datasetName is required: the dataset to add the item to")
    item_id = body.get("id") or str(uuid.uuid4())
    svc = _svc(request)
    if body.get("status") == "ARCHIVED":
        await run_in_threadpool(svc.delete_items, key.project_id, dataset, {"ids": [item_id]}, actor=key.public_key)
        return {**_item_out({"id": item_id, "input": body.get("input"), "expected": body.get("expectedOutput")},
                            dataset, datetime.now(UTC)), "status": "ARCHIVED"}
    meta = _as_object(body.get("metadata")) or {}
    if body.get("sourceObservationId"):
        meta = {**meta, _OBS: body["sourceObservationId"]}
    item = {"id": item_id, "input": body.get("input"), "expected": body.get("expectedOutput"), "metadata": meta,
            "source_trace_id": body.get("sourceTraceId")}

    def work() -> dict[str, Any]:
        svc.change_items(key.project_id, dataset, {"items": [item]}, actor=key.public_key)
        return next(f for f in svc.repo.find_items(key.project_id, item_id)  # type: ignore[attr-defined]
                    if f["dataset"] == dataset)

    found = await run_in_threadpool(work)
    return _item_out(found, dataset, found["created_at"])


def _version_at(request: Request, project_id: str, name: str, at: datetime) -> int | None:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    best = None
    for v in _st(request).store.evals.list_versions(project_id, name):
        created = v["created_at"] if v["created_at"].tzinfo else v["created_at"].replace(tzinfo=UTC)
        if created <= at and (best is None or v["version"] > best):
            best = v["version"]
    return best


@_route("GET", "/dataset-items")
def list_dataset_items(request: Request, key: Reader, datasetName: str | None = None,
                       sourceTraceId: str | None = None, version: datetime | None = None,
                       page: Page = 1, limit: Limit = 50) -> dict[str, Any]:
    if not datasetName:
        raise ValidationFailed("pass datasetName: Podium lists the items of one dataset at a time")
    repo = _st(request).store.evals
    ds = repo.get_dataset(key.project_id, datasetName)
    v = None
    if version is not None:
        v = _version_at(request, key.project_id, datasetName, version)
        if v is None:
            return {"data": [], "meta": _meta(page, limit, 0)}
    items = _all_pages(lambda c: repo.list_items(key.project_id, datasetName, version=v, limit=1000, cursor=c)[1])
    if sourceTraceId:
        items = [i for i in items if i.get("source_trace_id") == sourceTraceId]
    chunk = items[(page - 1) * limit: page * limit]
    return {"data": [_item_out(i, datasetName, ds.get("updated_at")) for i in chunk],
            "meta": _meta(page, limit, len(items))}


@_route("GET", "/dataset-items/{item_id}")
def get_dataset_item(request: Request, item_id: str, key: Reader) -> dict[str, Any]:
    f = _find_item(request, key.project_id, item_id)
    return _item_out(f, f["dataset"], f["created_at"])


@_route("DELETE", "/dataset-items/{item_id}")
def delete_dataset_item(request: Request, item_id: str, key: Writer) -> dict[str, Any]:
    f = _find_item(request, key.project_id, item_id)
    _svc(request).delete_items(key.project_id, f["dataset"], {"ids": [item_id]}, actor=key.public_key)
    return {"message": "Dataset item successfully deleted"}


# --- dataset runs -> experiments -------------------------------------------------------------------------


# The SDK links items to a run concurrently (v3: up to 50 at once). The repo keeps the item count
# exact on its own (the experiment row is locked per batch); one writer at a time per process also
# keeps a slower `finish` from storing a summary that misses a newer item.
_RUN_LOCK = threading.Lock()


def _run_id(dataset: str, run: str) -> str:
    return "lf-" + hashlib.sha256(f"{dataset}\0{run}".encode()).hexdigest()[:40]


def _find_run(request: Request, project_id: str, dataset: str, run: str) -> dict[str, Any]:
    repo = _st(request).store.evals
    try:
        return repo.get_experiment(project_id, _run_id(dataset, run))
    except NotFound:
        page = repo.list_experiments(project_id, ExperimentFilter(name=run, dataset=dataset), limit=1,
                                     with_summary=False)
        if not page.items:
            raise NotFound(f"dataset {dataset!r} has no run {run!r}") from None
        return page.items[0]


def _run_out(e: dict[str, Any]) -> dict[str, Any]:
    meta = dict(e.get("metadata") or {})
    desc = meta.pop("description", None)
    return {"id": e["id"], "name": e["name"], "description": desc, "metadata": meta,
            "datasetId": e.get("dataset_name"), "datasetName": e.get("dataset_name"),
            "createdAt": _iso(e.get("created_at")), "updatedAt": _iso(e.get("updated_at"))}


def _run_item_out(e: dict[str, Any], it: dict[str, Any]) -> dict[str, Any]:
    meta = it.get("metadata") or {}
    return {"id": f"{e['id']}:{it['item_id']}", "datasetRunId": e["id"], "datasetRunName": e["name"],
            "datasetItemId": it["item_id"], "traceId": it.get("trace_id"), "observationId": meta.get("observation_id"),
            "createdAt": _iso(it.get("created_at")), "updatedAt": _iso(it.get("created_at"))}


@_route("POST", "/dataset-run-items")
async def create_dataset_run_item(request: Request, key: Writer) -> dict[str, Any]:
    """Links a dataset item's trace to a run: the run is the Podium experiment for this dataset
    and run name (created on first use), the link one experiment item (scores stay on the trace)."""
    body = await _object(request)
    run, item_id, trace_id = body.get("runName"), body.get("datasetItemId"), body.get("traceId")
    if not isinstance(run, str) or not run or not isinstance(item_id, str):
        raise ValidationFailed("runName and datasetItemId are required")
    if not isinstance(trace_id, str):
        raise ValidationFailed("traceId is required: Podium links a run item to its trace")
    svc = _svc(request)
    repo = _st(request).store.evals

    def work() -> tuple[dict[str, Any], dict[str, Any]]:
        with _RUN_LOCK:
            return locked()

    def locked() -> tuple[dict[str, Any], dict[str, Any]]:
        item = _find_item(request, key.project_id, item_id)
        eid = _run_id(item["dataset"], run)
        try:
            repo.get_experiment(key.project_id, eid)
        except NotFound:
            meta = dict(_as_object(body.get("metadata")) or {})
            if body.get("runDescription"):
                meta["description"] = body["runDescription"]
            try:
                svc.create_experiment(key.project_id, {"id": eid, "name": run, "dataset_name": item["dataset"],
                                                       "metadata": meta, "labels": ["langfuse"]},
                                      actor=key.public_key)
            except Conflict:
                pass  # created by a concurrent run item
        link = {"observation_id": body["observationId"]} if body.get("observationId") else None
        svc.add_items(key.project_id, eid, {"items": [{
            "item_id": item_id, "input": item.get("input"), "expected": item.get("expected"),
            "context": item.get("context"), "trace_id": trace_id, "metadata": link}]})
        exp = svc.finish(key.project_id, eid)
        rows = repo.list_experiment_items(key.project_id, eid, limit=1000).items
        row = next((r for r in rows if r["item_id"] == item_id), {"item_id": item_id, "trace_id": trace_id})
        return exp, row

    exp, row = await run_in_threadpool(work)
    return _run_item_out(exp, row)


def _run_items(request: Request, project_id: str, eid: str) -> list[dict[str, Any]]:
    repo = _st(request).store.evals
    return _all_pages(lambda c: repo.list_experiment_items(project_id, eid, limit=1000, cursor=c))


@_route("GET", "/datasets/{name}/runs/{run}")
def get_dataset_run(request: Request, name: str, run: str, key: Reader) -> dict[str, Any]:
    e = _find_run(request, key.project_id, name, run)
    items = _run_items(request, key.project_id, e["id"])
    return {**_run_out(e), "datasetRunItems": [_run_item_out(e, it) for it in items]}


@_route("DELETE", "/datasets/{name}/runs/{run}")
def delete_dataset_run(request: Request, name: str, run: str, key: Writer) -> dict[str, Any]:
    e = _find_run(request, key.project_id, name, run)
    _st(request).store.evals.delete_experiment(key.project_id, e["id"])
    return {"message": "Dataset run successfully deleted"}


@_route("GET", "/datasets/{name}/runs")
def list_dataset_runs(request: Request, name: str, key: Reader, page: Page = 1, limit: Limit = 50) -> dict[str, Any]:
    repo = _st(request).store.evals
    repo.get_dataset(key.project_id, name)
    rows = _all_pages(lambda c: repo.list_experiments(key.project_id, ExperimentFilter(dataset=name), limit=1000,
                                                      cursor=c, with_summary=False))
    chunk = rows[(page - 1) * limit: page * limit]
    return {"data": [_run_out(e) for e in chunk], "meta": _meta(page, limit, len(rows))}


@_route("GET", "/dataset-run-items")
def list_dataset_run_items(request: Request, key: Reader, datasetId: str, runName: str, page: Page = 1,
                           limit: Limit = 50) -> dict[str, Any]:
    e = _find_run(request, key.project_id, datasetId, runName)
    items = _run_items(request, key.project_id, e["id"])
    chunk = items[(page - 1) * limit: page * limit]
    return {"data": [_run_item_out(e, it) for it in chunk], "meta": _meta(page, limit, len(items))}
