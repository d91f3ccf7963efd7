"""Annotation queues: ``/api/v1/annotation-queues`` (docs/annotation.md).

Create a queue over one or more score configs from explicit traces/spans or from the traces
list's filter; annotators claim items one at a time (``POST .../next``: the item is locked for
them for the queue's ``lock_seconds``), submit values (each becomes a score with source
``human`` on the trace or span, validated against its score config) or skip; progress and
inter-annotator agreement per queue; reviewed items become dataset items in one call.
Changing anything needs a write role (admin, member); reading needs read. The annotator is the
``annotator`` field when given, else the key's public key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from podium.core.datasets import check_dataset_name
from podium.core.records import Id
from podium.core.roles import Action
from podium.errors import ValidationFailed
from podium.monitor import agreement
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.annotations import ITEM_STATUSES, MAX_FILTER_ITEMS, AnnotationRepo, Target
from podium.store.repos.projects import ApiKey

__all__ = ["ItemRef", "QueueFilter", "router"]

router = APIRouter(prefix="/api/v1", tags=["annotation queues"], route_class=StrictJSONRoute)

Reader = Annotated[ApiKey, needs(Action.READ, "read annotation queues")]
Writer = Annotated[ApiKey, needs(Action.WRITE, "change annotation queues or annotate")]

_Name = Annotated[str, Field(min_length=1, max_length=256)]
_Short = Annotated[str, Field(min_length=1, max_length=256)]
_Num = Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)]
Annotator = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]


class ItemRef(BaseModel):
    """A trace (``span_id`` left out) or one of its spans."""

    model_config = ConfigDict(extra="forbid")
    trace_id: Id
    span_id: Id | None = None


class QueueFilter(BaseModel):
    """The traces list's filter (the fields of ``GET /api/v1/traces``)."""

    model_config = ConfigDict(extra="forbid")
    start_after: AwareDatetime | None = None
    start_before: AwareDatetime | None = None
    name: _Short | None = None
    q: _Short | None = None
    user_id: _Short | None = None
    session_id: _Short | None = None
    tags: Annotated[list[_Short], Field(max_length=20)] = []
    status: Literal["ok", "error"] | None = None
    model: _Short | None = None
    environment: _Short | None = None
    release: _Short | None = None
    min_latency_ms: _Num | None = None
    max_latency_ms: _Num | None = None
    min_cost: _Num | None = None
    max_cost: _Num | None = None
    score_name: _Short | None = None
    min_score: _Num | None = None
    max_score: _Num | None = None


_Items = Annotated[list[ItemRef], Field(max_length=MAX_FILTER_ITEMS)]
_Limit = Annotated[int, Field(ge=1, le=MAX_FILTER_ITEMS)]


class AddItemsIn(BaseModel):
    """Either ``items`` or ``filter`` (with ``limit``: how many matching traces, newest first)."""

    model_config = ConfigDict(extra="forbid")
    items: _Items | None = None
    filter: QueueFilter | None = None
    limit: _Limit = 100

    @model_validator(mode="after")
    def _one(self) -> AddItemsIn:
        if self.items is not None and self.filter is not None:
            raise ValueError("send either items or filter, not both")
        return self


class QueueIn(AddItemsIn):
    name: _Name
    description: Annotated[str, Field(max_length=10_000)] | None = None
    score_config_ids: Annotated[list[Id], Field(min_length=1, max_length=20)]
    reviews_per_item: Annotated[int, Field(ge=1, le=20)] = 1
    lock_seconds: Annotated[int, Field(ge=10, le=86_400)] = 600


class QueuePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    score_config_ids: Annotated[list[Id], Field(min_length=1, max_length=20)] | None = None
    reviews_per_item: Annotated[int, Field(ge=1, le=20)] | None = None
    lock_seconds: Annotated[int, Field(ge=10, le=86_400)] | None = None


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: Annotator | None = None


_Value = _Num | bool | Annotated[str, Field(max_length=256)]


class AnnotationIn(AnnotatorIn):
    values: Annotated[dict[Annotated[str, Field(min_length=1, max_length=256)], _Value],
                      Field(min_length=1, max_length=20)]
    comment: Annotated[str, Field(max_length=10_000)] | None = None


class ToDatasetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: Annotated[str, Field(min_length=1, max_length=200)]
    only: Literal["done", "reviewed"] = "done"
    expected: Literal["output", "annotation"] = "output"


class Counts(BaseModel):
    total: int
    pending: int
    in_progress: int
    done: int
    skipped: int


class QueueOut(BaseModel):
    id: str
    name: str
    description: str | None
    score_config_ids: list[str]
    reviews_per_item: int
    lock_seconds: int
    source: dict[str, Any] | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    counts: Counts
    added: dict[str, int] | None = None


class QueuePage(BaseModel):
    data: list[QueueOut]


class ItemOut(BaseModel):
    queue_id: str
    id: str
    trace_id: str
    span_id: str | None
    position: int
    status: str
    review_count: int
    assigned_to: str | None
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime
    score_ids: list[str] | None = None


class NextOut(BaseModel):
    item: ItemOut | None


class ItemPage(BaseModel):
    data: list[ItemOut]


def _repo(request: Request) -> AnnotationRepo:
    st: AppState = request.app.state.podium
    return st.store.annotations


def _who(body: AnnotatorIn | None, key: ApiKey) -> str:
    return (body.annotator if body is not None else None) or key.public_key


def _add(repo: AnnotationRepo, project_id: str, queue_id: str, body: AddItemsIn) -> dict[str, int] | None:
    if body.items is not None:
        return repo.add_items(project_id, queue_id, [Target(i.trace_id, i.span_id) for i in body.items])
    if body.filter is not None:
        raw = body.filter.model_dump(mode="json", exclude_defaults=True)
        return repo.add_from_filter(project_id, queue_id, raw, body.limit)
    return None


@router.get("/annotation-queues", response_model=QueuePage, summary="List annotation queues")
def list_queues(request: Request, key: Reader) -> dict[str, Any]:
    return {"data": _repo(request).list_queues(key.project_id)}


@router.post("/annotation-queues", status_code=201, response_model=QueueOut,
             summary="Create an annotation queue (from trace/span ids or a trace filter)")
def create_queue(request: Request, body: QueueIn, key: Writer) -> dict[str, Any]:
    repo = _repo(request)
    q = repo.create_queue(key.project_id, name=body.name, score_config_ids=body.score_config_ids,
                          description=body.description, reviews_per_item=body.reviews_per_item,
                          lock_seconds=body.lock_seconds, created_by=key.public_key)
    try:
        added = _add(repo, key.project_id, q["id"], body)
    except Exception:
        repo.delete_queue(key.project_id, q["id"])  # no half-made queue when its items are refused
        raise
    if body.items is None and body.filter is None:
        added = None
    out = repo.get_queue(key.project_id, q["id"])
    out["added"] = added
    return out


@router.get("/annotation-queues/{queue_id}", response_model=QueueOut, summary="One annotation queue")
def get_queue(request: Request, queue_id: str, key: Reader) -> dict[str, Any]:
    return _repo(request).get_queue(key.project_id, queue_id)


@router.patch("/annotation-queues/{queue_id}", response_model=QueueOut, summary="Change an annotation queue")
def patch_queue(request: Request, queue_id: str, body: QueuePatch, key: Writer) -> dict[str, Any]:
    return _repo(request).update_queue(key.project_id, queue_id, body.model_dump(include=body.model_fields_set))


@router.delete("/annotation-queues/{queue_id}", status_code=204,
               summary="Delete an annotation queue (its scores stay on the traces)")
def delete_queue(request: Request, queue_id: str, key: Writer) -> Response:
    _repo(request).delete_queue(key.project_id, queue_id)
    return Response(status_code=204)


@router.post("/annotation-queues/{queue_id}/items", summary="Add traces or spans (ids or a trace filter)")
def add_items(request: Request, queue_id: str, body: AddItemsIn, key: Writer) -> dict[str, int]:
    added = _add(_repo(request), key.project_id, queue_id, body)
    if added is None:
        raise ValidationFailed('send items ([{"trace_id": ..., "span_id": ...}]) or filter ({...}, with limit)',
                               details=[{"field": "items"}])
    return added


@router.get("/annotation-queues/{queue_id}/items", response_model=ItemPage, summary="The queue's items, in order")
def list_items(request: Request, queue_id: str, key: Reader,
               status: Annotated[Literal["pending", "in_progress", "done", "skipped"] | None, Query()] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict[str, Any]:
    assert status is None or status in ITEM_STATUSES
    return {"data": _repo(request).list_items(key.project_id, queue_id, status=status, limit=limit, offset=offset)}


@router.post("/annotation-queues/{queue_id}/next", response_model=NextOut,
             summary="Claim the next item for an annotator (locked for them)")
def next_item(request: Request, queue_id: str, key: Writer, body: AnnotatorIn | None = None) -> dict[str, Any]:
    return {"item": _repo(request).claim_next(key.project_id, queue_id, _who(body, key))}


@router.post("/annotation-queues/{queue_id}/items/{item_id}/annotations", response_model=ItemOut,
             summary="Submit an annotator's values for an item (scores with source human)")
def submit(request: Request, queue_id: str, item_id: str, body: AnnotationIn, key: Writer) -> dict[str, Any]:
    return _repo(request).submit(key.project_id, queue_id, item_id, _who(body, key), body.values,
                                 comment=body.comment)


@router.post("/annotation-queues/{queue_id}/items/{item_id}/skip", response_model=ItemOut,
             summary="Skip an item (takes it out of the queue)")
def skip(request: Request, queue_id: str, item_id: str, key: Writer, body: AnnotatorIn | None = None) -> dict[str, Any]:
    return _repo(request).skip(key.project_id, queue_id, item_id, _who(body, key))


@router.post("/annotation-queues/{queue_id}/items/{item_id}/release", response_model=ItemOut,
             summary="Give a claimed item back to the queue")
def release(request: Request, queue_id: str, item_id: str, key: Writer, body: AnnotatorIn | None = None) -> dict[str, Any]:
    repo = _repo(request)
    repo.release(key.project_id, queue_id, item_id, _who(body, key))
    return repo.get_item(key.project_id, queue_id, item_id)


@router.get("/annotation-queues/{queue_id}/annotations", summary="The queue's annotations, oldest first")
def list_annotations(request: Request, queue_id: str, key: Reader,
                     annotator: Annotated[str | None, Query(max_length=256)] = None) -> dict[str, Any]:
    repo = _repo(request)
    repo.get_queue(key.project_id, queue_id)
    return {"data": repo.annotations(key.project_id, queue_id, annotator=annotator)}


@router.get("/annotation-queues/{queue_id}/progress", summary="Items by status, reviews and per-annotator counts")
def progress(request: Request, queue_id: str, key: Reader) -> dict[str, Any]:
    return _repo(request).progress(key.project_id, queue_id)


@router.get("/annotation-queues/{queue_id}/agreement",
            summary="Inter-annotator agreement per score config (Cohen's / Fleiss' kappa)")
def queue_agreement(request: Request, queue_id: str, key: Reader) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    return {"data": agreement.for_queue(st.store, key.project_id, queue_id)}


@router.post("/annotation-queues/{queue_id}/to-dataset",
             summary="Reviewed items become dataset items (idempotent per item)")
def to_dataset(request: Request, queue_id: str, body: ToDatasetIn, key: Writer) -> dict[str, Any]:
    check_dataset_name(body.dataset)
    return _repo(request).to_dataset(key.project_id, queue_id, body.dataset, only_done=body.only == "done",
                                     expected=body.expected, actor=key.public_key)
