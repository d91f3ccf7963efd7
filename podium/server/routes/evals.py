"""Datasets and experiments under ``/api/v1/datasets`` and ``/api/v1/experiments`` (docs/evals.md).

Reads need an admin, member or viewer key; writes an admin or member key (CI jobs post
experiment results with one); deleting a dataset needs admin.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.core.datasets import DatasetItem, parse_dataset_text
from podium.core.records import format_path, json_problem
from podium.core.roles import Action
from podium.errors import BadRequest, UnsupportedMediaType
from podium.evals.service import EvalService
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute, read_body, read_json
from podium.server.routes.traces import MAX_TAG_FILTERS, utc_param
from podium.server.state import AppState
from podium.store.repos.evals import ExperimentFilter
from podium.store.repos.projects import ApiKey
from podium.store.repos.traces import TraceFilter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", route_class=StrictJSONRoute)


_role = needs


Reader = Annotated[ApiKey, _role(Action.READ, "read datasets and experiments")]
Writer = Annotated[ApiKey, _role(Action.WRITE, "change datasets or record experiments")]
Admin = Annotated[ApiKey, _role(Action.ADMIN, "delete datasets")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]


def _st(request: Request) -> AppState:
    return request.app.state.podium


def _svc(request: Request) -> EvalService:
    return EvalService(_st(request).store.evals)


async def _object(request: Request) -> dict[str, Any]:
    body = await read_json(request, _st(request).settings.max_request_bytes)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", details=[{"field": None, "message": "not an object"}])
    return body


# --- response shapes (OpenAPI) ------------------------------------------------------------------------


class DatasetOut(BaseModel):
    name: str
    description: str | None
    metadata: dict[str, Any]
    latest_version: int
    item_count: int = Field(description="items in the latest version")
    created_at: datetime
    updated_at: datetime


class DatasetPage(BaseModel):
    data: list[DatasetOut]
    next_cursor: str | None


class VersionOut(BaseModel):
    name: str
    version: int
    item_count: int
    added: int
    updated: int
    removed: int
    message: str | None
    source: dict[str, Any] | None
    created_by: str | None
    created_at: datetime


class ItemOut(BaseModel):
    id: str
    input: Any
    expected: Any
    context: Any
    metadata: dict[str, Any]
    split: str | None
    labels: dict[str, Any]
    source_trace_id: str | None
    valid_from: int = Field(description="the version that introduced this content")


class ItemPage(BaseModel):
    version: int
    data: list[ItemOut]
    next_cursor: str | None


class ChangeOut(BaseModel):
    name: str
    version: int = Field(description="the new version, or the latest when nothing changed")
    changed: bool
    item_count: int
    added: int
    updated: int
    removed: int
    unchanged: int


class FromTracesOut(ChangeOut):
    traces: int = Field(description="traces that matched the filter")
    skipped_without_input: int


class CreateDatasetIn(BaseModel):
    name: str = Field(description="letters, digits, _ . -")
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    items: list[dict[str, Any]] = Field(default_factory=list, description="{id?, input, expected, context, "
                                                                          "metadata, split, labels}")
    message: str | None = None


class ItemsIn(BaseModel):
    items: list[dict[str, Any]]
    message: str | None = None
    replace: bool = Field(default=False, description="the new version holds exactly these items")
    create: bool = Field(default=False, description="create the dataset when it does not exist")


class FromTracesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: dict[str, Any] = Field(default_factory=dict, description="the trace list's filters: from, to, name, q, "
                                   "user_id, session_id, tags, status, model, environment, release, min/max_latency_ms, "
                                   "min/max_cost, score_name, min/max_score")
    limit: int = Field(default=1000, ge=1, le=10_000)
    expected: Literal["output"] | None = Field(default="output", description="the trace's output becomes the "
                                                                             "expected output (null: none)")
    split: str | None = None
    create: bool = True
    message: str | None = None


class ExperimentOut(BaseModel):
    id: str
    name: str
    status: str
    dataset_name: str | None
    dataset_version: int | None
    run_group: str | None
    task: dict[str, Any] | None = None
    scorers: list[dict[str, Any]] | None = None
    config: dict[str, Any] | None
    metadata: dict[str, Any] | None
    summary: dict[str, Any] | None = None
    labels: list[str]
    item_count: int
    error_count: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class ExperimentPage(BaseModel):
    data: list[ExperimentOut]
    next_cursor: str | None


class CreateExperimentIn(BaseModel):
    id: str | None = None
    name: str
    dataset_name: str | None = None
    dataset_version: int | None = None
    run_group: str | None = None
    task: dict[str, Any] | None = None
    scorers: list[dict[str, Any]] = Field(default_factory=list)
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    labels: list[str] = Field(default_factory=list)


def _doc(model: type[BaseModel], *extra: str) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {
        "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}
    for ctype in extra:
        content[ctype] = {"schema": {"type": "string"}}
    return {"requestBody": {"required": True, "content": content}}


# --- datasets ----------------------------------------------------------------------------------------------


@router.get("/datasets", response_model=DatasetPage, tags=["datasets"], summary="List datasets")
def list_datasets(request: Request, key: Reader, q: str | None = None, limit: Limit = 50,
                  cursor: str | None = None) -> dict[str, Any]:
    page = _st(request).store.evals.list_datasets(key.project_id, limit=limit, cursor=cursor, q=q)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.post("/datasets", status_code=201, response_model=DatasetOut, tags=["datasets"],
             openapi_extra=_doc(CreateDatasetIn), summary="Create a dataset (version 1 holds the items given)")
async def create_dataset(request: Request, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    return await run_in_threadpool(_svc(request).create_dataset, key.project_id, body,
                                   actor=key.public_key)


@router.get("/datasets/{name}", response_model=DatasetOut, tags=["datasets"], summary="One dataset")
def get_dataset(request: Request, name: str, key: Reader) -> dict[str, Any]:
    return _st(request).store.evals.get_dataset(key.project_id, name)


@router.patch("/datasets/{name}", response_model=DatasetOut, tags=["datasets"],
              summary="Change a dataset's description or metadata (no new version)")
async def update_dataset(request: Request, name: str, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    unknown = set(body) - {"description", "metadata"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}; you can change description and metadata")
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise BadRequest("metadata must be an object")
    if "description" in body and body["description"] is not None and not isinstance(body["description"], str):
        raise BadRequest("description must be a string")
    return await run_in_threadpool(
        _st(request).store.evals.update_dataset, key.project_id, name, description=body.get("description"),
        metadata=body.get("metadata"))


@router.delete("/datasets/{name}", status_code=204, tags=["datasets"],
               summary="Delete a dataset and every version (experiments keep their copies)")
def delete_dataset(request: Request, name: str, key: Admin) -> Response:
    _st(request).store.evals.delete_dataset(key.project_id, name)
    return Response(status_code=204)


@router.get("/datasets/{name}/versions", tags=["datasets"], summary="Versions of a dataset, newest first")
def list_versions(request: Request, name: str, key: Reader) -> dict[str, Any]:
    return {"data": [VersionOut.model_validate(v).model_dump(mode="json")
                     for v in _st(request).store.evals.list_versions(key.project_id, name)]}


@router.get("/datasets/{name}/items", response_model=ItemPage, tags=["datasets"],
            summary="Items of a version (default: the latest), in insertion order")
def list_items(request: Request, name: str, key: Reader,
               version: Annotated[int | None, Query(ge=1)] = None, split: str | None = None,
               limit: Limit = 100, cursor: str | None = None) -> dict[str, Any]:
    v, page = _st(request).store.evals.list_items(key.project_id, name, version=version, split=split, limit=limit,
                                                  cursor=cursor)
    return {"version": v, "data": page.items, "next_cursor": page.next_cursor}


@router.get("/datasets/{name}/items/{item_id}", tags=["datasets"], summary="One item of a version")
def get_item(request: Request, name: str, item_id: str, key: Reader,
             version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    return _st(request).store.evals.get_item(key.project_id, name, item_id, version=version)


_FILE_TYPES = {"application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/x-jsonlines": "jsonl",
               "text/csv": "csv"}


@router.post("/datasets/{name}/items", response_model=ChangeOut, tags=["datasets"],
             openapi_extra=_doc(ItemsIn, "application/x-ndjson", "text/csv"),
             summary="Add or update items (by id): one new version when anything changed")
async def add_items(
    request: Request, name: str, key: Writer,
    message: Annotated[str | None, Query(description="file uploads: the version's message")] = None,
    replace: Annotated[bool, Query(description="file uploads: the version holds exactly the file's items")] = False,
    create: Annotated[bool, Query(description="file uploads: create the dataset when missing")] = False,
) -> dict[str, Any]:
    """JSON ``{"items": [...], "message", "replace", "create"}``, or a JSONL
    (``application/x-ndjson``) or CSV (``text/csv``) file as the body (options as query parameters;
    columns that are not item fields become the input's keys)."""
    ctype = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    svc = _svc(request)
    if ctype in _FILE_TYPES:
        raw = await read_body(request, _st(request).settings.max_request_bytes)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRequest(f"the file is not UTF-8 text ({e})")
        items = await run_in_threadpool(parse_dataset_text, text, format=_FILE_TYPES[ctype], source="body")
        _check_file_items(items)
        body = {"message": message, "replace": replace, "create": create}
        return await run_in_threadpool(svc.change_items, key.project_id, name, body,
                                       actor=key.public_key, items=items,
                                       source={"kind": "file", "format": _FILE_TYPES[ctype]})
    if ctype != "application/json":
        raise UnsupportedMediaType(f"Content-Type {ctype!r}: send application/json ({{\"items\": [...]}}), "
                                   "application/x-ndjson (JSONL) or text/csv")
    body = await _object(request)
    return await run_in_threadpool(svc.change_items, key.project_id, name, body,
                                   actor=key.public_key)


def _check_file_items(items: list[DatasetItem]) -> None:
    """A file upload's items follow the JSON body rules (depth; NaN/Infinity are refused by the parser)."""
    for i, item in enumerate(items):
        problem = json_problem(item.to_dict())
        if problem is not None:
            field = format_path(["items", i, *problem[0]])
            raise BadRequest(f"{field} {problem[1]}", details=[{"field": field, "message": problem[1]}])


@router.post("/datasets/{name}/items/delete", response_model=ChangeOut, tags=["datasets"],
             summary="Remove items (by id): a new version without them")
async def delete_items(request: Request, name: str, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    return await run_in_threadpool(_svc(request).delete_items, key.project_id, name, body,
                                   actor=key.public_key)


def trace_filter(f: dict[str, Any]) -> TraceFilter:
    """The trace list's query filters, from a JSON object (same names as the query parameters)."""
    known = {"from", "to", "name", "q", "user_id", "session_id", "tags", "tag", "status", "model", "environment",
             "release", "min_latency_ms", "max_latency_ms", "min_cost", "max_cost", "score_name", "min_score",
             "max_score"}
    unknown = set(f) - known
    if unknown:
        raise BadRequest(f"unknown trace filter(s) {sorted(unknown)}; filters: {', '.join(sorted(known))}")

    def time(k: str) -> datetime | None:
        v = f.get(k)
        if v is None:
            return None
        try:
            return utc_param(k, datetime.fromisoformat(str(v).replace("Z", "+00:00")))
        except ValueError:
            raise BadRequest(f"filter {k!r}: {v!r} is not an ISO 8601 time")

    def text(k: str) -> str | None:
        v = f.get(k)
        if v is not None and not isinstance(v, str):
            raise BadRequest(f"filter {k!r} must be a string")
        return v

    def number(k: str) -> float | None:
        v = f.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise BadRequest(f"filter {k!r} must be a number")
        return v

    tags = f.get("tags", f.get("tag")) or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags) or len(tags) > MAX_TAG_FILTERS:
        raise BadRequest(f"filter 'tags' must be a list of at most {MAX_TAG_FILTERS} strings")
    status = text("status")
    if status not in (None, "ok", "error"):
        raise BadRequest("filter 'status' must be ok or error")
    return TraceFilter(
        start_after=time("from"), start_before=time("to"), name=text("name"), q=text("q"), user_id=text("user_id"),
        session_id=text("session_id"), tags=tags, status=status, model=text("model"),
        environment=text("environment"), release=text("release"), min_latency_ms=number("min_latency_ms"),
        max_latency_ms=number("max_latency_ms"), min_cost=number("min_cost"), max_cost=number("max_cost"),
        score_name=text("score_name"), min_score=number("min_score"), max_score=number("max_score"),
    )


@router.post("/datasets/{name}/from-traces", response_model=FromTracesOut, tags=["datasets"],
             summary="Add production traces that match a filter as items (a new version)")
async def from_traces(request: Request, name: str, body: FromTracesIn, key: Writer) -> dict[str, Any]:
    """Each matching trace (newest first, up to ``limit``) becomes an item whose id and
    ``source_trace_id`` are the trace id: input from the trace's input, expected output from its
    output (``expected: null`` leaves it empty), metadata from its user, session, tags and
    metadata. Traces without an input are skipped. Adding the same trace again updates its item."""
    st = _st(request)
    f = trace_filter(body.filter)

    def work() -> dict[str, Any]:
        traces: list[dict[str, Any]] = []
        cursor = None
        while len(traces) < body.limit:
            page = st.store.traces.list_traces(key.project_id, f, limit=min(1000, body.limit - len(traces)),
                                               cursor=cursor, include_io=True)
            traces.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                break
        return _svc(request).items_from_traces(key.project_id, name, traces, expected=body.expected,
                                               split=body.split, create=body.create, message=body.message,
                                               actor=key.public_key, filter=body.filter)

    return await run_in_threadpool(work)


# --- experiments --------------------------------------------------------------------------------------------


@router.get("/experiments", response_model=ExperimentPage, tags=["experiments"],
            summary="List experiments, newest first")
def list_experiments(
    request: Request, key: Reader, name: str | None = None, dataset: str | None = None,
    label: str | None = None, status: Literal["running", "completed", "failed", "interrupted"] | None = None,
    run_group: str | None = None, limit: Limit = 50, cursor: str | None = None,
    summary: Annotated[bool, Query(description="include summaries, tasks and scorers")] = True,
) -> dict[str, Any]:
    f = ExperimentFilter(name=name, dataset=dataset, label=label, status=status, run_group=run_group)
    page = _st(request).store.evals.list_experiments(key.project_id, f, limit=limit, cursor=cursor,
                                                     with_summary=summary)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.post("/experiments", status_code=201, response_model=ExperimentOut, tags=["experiments"],
             openapi_extra=_doc(CreateExperimentIn), summary="Start recording an experiment")
async def create_experiment(request: Request, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    return await run_in_threadpool(_svc(request).create_experiment, key.project_id, body,
                                   actor=key.public_key)


@router.get("/experiments/compare", tags=["experiments"],
            summary="Compare experiments with a baseline: paired-bootstrap deltas and per-item diffs")
def compare(
    request: Request, key: Reader,
    baseline: Annotated[str, Query(description="the baseline experiment id")],
    candidate: Annotated[list[str], Query(description="candidate experiment ids (repeat for several)")],
    confidence: float = 0.95,
    tolerance: Annotated[float, Query(description="loss accepted before a regression counts (metric units)")] = 0.0,
    metrics: Annotated[str | None, Query(description="comma-separated; default: pass_rate, score and every "
                                                     "scorer both have")] = None,
) -> dict[str, Any]:
    wanted = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    return _svc(request).compare(key.project_id, baseline, candidate, confidence=confidence, tolerance=tolerance,
                                 metrics=wanted)


@router.get("/experiments/{experiment_id}", response_model=ExperimentOut, tags=["experiments"],
            summary="One experiment with its summary")
def get_experiment(request: Request, experiment_id: str, key: Reader) -> dict[str, Any]:
    return _st(request).store.evals.get_experiment(key.project_id, experiment_id)


@router.patch("/experiments/{experiment_id}", response_model=ExperimentOut, tags=["experiments"],
              summary="Rename, label (add_labels/remove_labels), change metadata or status")
async def update_experiment(request: Request, experiment_id: str, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    return await run_in_threadpool(_svc(request).update_experiment, key.project_id,
                                   experiment_id, body)


@router.delete("/experiments/{experiment_id}", status_code=204, tags=["experiments"],
               summary="Delete an experiment and its items")
def delete_experiment(request: Request, experiment_id: str, key: Writer) -> Response:
    _st(request).store.evals.delete_experiment(key.project_id, experiment_id)
    return Response(status_code=204)


@router.post("/experiments/{experiment_id}/items", tags=["experiments"],
             summary="Record item results (idempotent by item id and repetition)")
async def add_experiment_items(request: Request, experiment_id: str, key: Writer) -> dict[str, Any]:
    """Each result's scores are also stored as ``score`` rows (source ``eval``) on its trace,
    so the trace shows them and trace lists can filter on them."""
    body = await read_json(request, _st(request).settings.max_request_bytes)
    return await run_in_threadpool(_svc(request).add_items, key.project_id,
                                   experiment_id, body)


@router.get("/experiments/{experiment_id}/items", tags=["experiments"], summary="Item results, in dataset order")
def list_experiment_items(request: Request, experiment_id: str, key: Reader, limit: Limit = 100,
                          cursor: str | None = None, errored: bool | None = None,
                          passed: bool | None = None) -> dict[str, Any]:
    page = _st(request).store.evals.list_experiment_items(key.project_id, experiment_id, limit=limit,
                                                          cursor=cursor, errored=errored, passed=passed)
    return {"data": page.items, "next_cursor": page.next_cursor}


@router.get("/experiments/{experiment_id}/done", tags=["experiments"],
            summary="[item_id, repetition] of the results already stored (to resume a run)")
def done_keys(request: Request, experiment_id: str, key: Reader,
              retry: Annotated[str | None, Query(description="comma-separated error types to leave out "
                                                            "(they run again)")] = None) -> dict[str, Any]:
    types = [x.strip() for x in retry.split(",") if x.strip()] if retry else []
    return {"data": _st(request).store.evals.done_keys(key.project_id, experiment_id, retry_types=types)}


@router.post("/experiments/{experiment_id}/finish", response_model=ExperimentOut, tags=["experiments"],
             summary="Mark an experiment finished and compute its summary (bootstrap 95% CIs)")
async def finish_experiment(request: Request, experiment_id: str, key: Writer) -> dict[str, Any]:
    body = await _object(request)
    status = body.get("status", "completed")
    return await run_in_threadpool(_svc(request).finish, key.project_id, experiment_id,
                                   status)
