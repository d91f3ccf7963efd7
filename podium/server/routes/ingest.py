"""Writes: the native batch API and OTLP/HTTP traces."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from podium.core.records import JSON_CHECKED_CONTEXT, ScoreIn, SpanIn, TraceIn
from podium.errors import UnsupportedMediaType, ValidationFailed
from podium.server import otlp
from podium.server.auth import require_write
from podium.server.body import StrictJSONRoute, read_body, read_json
from podium.server.convert import BatchBuilder
from podium.server.errors import pydantic_details
from podium.server.ingest import IngestRoom
from podium.server.routes.score_configs import score_configs_for
from podium.server.state import AppState

__all__ = ["router"]

router = APIRouter(route_class=StrictJSONRoute)

_MODELS: dict[str, type[BaseModel]] = {"span": SpanIn, "trace": TraceIn, "score": ScoreIn}
_ITEM_FIELDS = frozenset({"type", "body", "id", "timestamp"})


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined (the request-body doc stands alone)."""
    defs = schema.pop("$defs", {})

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            ref = v.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(schema)


def _item_doc(kind: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["type", "body"],
            "properties": {"type": {"const": kind}, "body": _inline(model.model_json_schema())}}


_INGEST_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["batch"], "additionalProperties": False,
    "properties": {
        "batch": {"type": "array", "items": {"oneOf": [_item_doc(k, m) for k, m in _MODELS.items()]}},
        "metadata": {"type": "object"},
    },
}}}}}


class IngestResult(BaseModel):
    successes: list[dict[str, Any]]
    errors: list[dict[str, Any]]


def _describe(e: ValidationError) -> str:
    parts = []
    for d in pydantic_details(list(e.errors())):
        parts.append(f"{d['field']}: {d['message']}" if d["field"] else d["message"])
    return "; ".join(parts[:5])


@router.post(
    "/api/v1/ingest",
    response_model=IngestResult,
    responses={207: {"model": IngestResult, "description": "some items were rejected"}},
    openapi_extra=_INGEST_DOC,
    summary="Ingest a batch of spans, traces and scores",
)
async def ingest(request: Request, key: require_write, _room: IngestRoom) -> Response:
    """Body: ``{"batch": [{"type": "span"|"trace"|"score", "body": {...}}]}``.

    Each item is validated on its own; valid items are stored (idempotent upsert by id)
    even when others are rejected. 200 when all were stored, 207 with per-item errors
    otherwise. The response is sent only after the valid items are committed.
    """
    st: AppState = request.app.state.podium
    payload = await read_json(request, st.settings.max_request_bytes)
    items = check_native(payload, st.settings.max_batch_items)
    has_scores = any(isinstance(it, dict) and it.get("type") == "score" for it in items)
    configs = await score_configs_for(request, key.project_id) if has_scores else None
    builder = BatchBuilder(key.project_id, lambda: st.prices_for(key.project_id), configs)
    successes, errors, keys = build_native(items, builder)
    refused = await st.ingester.submit(builder.batch)
    if refused:
        bad = {keys[k]: msg for k, msg in refused if k in keys}
        successes = [s for s in successes if s["index"] not in bad]
        errors.extend({"index": i, "id": items[i]["body"].get("id"), "status": 400, "message": m} for i, m in bad.items())
        errors.sort(key=lambda e: e["index"])
    st.count_ingest(len(successes), len(errors))
    return _result({"successes": successes, "errors": errors}, 207 if errors else 200)


def _result(content: dict[str, Any], status: int) -> Response:
    """The ingest answer, encoded by msgspec (C; ``json.dumps`` of a 1,000-item answer cost ~1 µs
    per span); anything msgspec refuses goes through ``JSONResponse`` as before."""
    try:
        return Response(_encode(content), status_code=status, media_type="application/json")
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError):
        return JSONResponse(content, status_code=status)


_encode = msgspec.json.Encoder().encode


def check_native(payload: Any, max_items: int) -> list[Any]:
    """The ``batch`` list of a native ingest body; 400s for a body of the wrong shape."""
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise ValidationFailed(
            'body must be an object with a "batch" list: {"batch": [{"type": "span", "body": {...}}]}',
            details=[{"field": "batch", "message": "required list"}],
        )
    items: list[Any] = payload["batch"]
    extra = set(payload) - {"batch", "metadata"}
    if extra:
        raise ValidationFailed(
            f"unknown top-level field(s) {sorted(extra)}; the body has only 'batch' (and optional 'metadata')",
            details=[{"field": f, "message": "unknown field"} for f in sorted(extra)],
        )
    if len(items) > max_items:
        raise ValidationFailed(
            f"batch of {len(items)} items is over the limit of {max_items} "
            "(PODIUM_MAX_BATCH_ITEMS); split it",
        )
    return items


def build_native(
    items: list[Any], builder: BatchBuilder, *, json_checked: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, ...], int]]:
    """Validate each item on its own and add the valid ones to ``builder``: (successes,
    errors, {row key: item index}).

    ``json_checked``: the items come from :func:`podium.server.body.parse_json`, which has
    already refused the whole body for a non-finite number or nesting past ``MAX_JSON_DEPTH``
    (counted from the body's root, so stricter than per field): the models skip their own
    per-field JSON walk (``JSON_CHECKED_CONTEXT``; it was half of the validation's CPU)."""
    context = JSON_CHECKED_CONTEXT if json_checked else None
    successes: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    keys: dict[tuple[str, ...], int] = {}
    for i, item in enumerate(items):
        if (
            type(item) is dict
            and type(body := item.get("body")) is dict
            and item.get("type") == "span"
            and item.keys() <= _ITEM_FIELDS
        ):  # the usual item, checked with C-level operations only
            item_id = body.get("id")
            try:
                span = SpanIn.model_validate(body, context=context)
            except ValidationError as e:
                errors.append({"index": i, "id": item_id, "status": 400, "message": f"span: {_describe(e)}"})
                continue
            builder.add_span(span)
            keys[("span", span.trace_id, span.id)] = i
            successes.append({"index": i, "id": item_id})
            continue
        item_id = item.get("body", {}).get("id") if isinstance(item, dict) and isinstance(item.get("body"), dict) else None
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind not in _MODELS or not isinstance(item.get("body"), dict):
            errors.append(
                {
                    "index": i,
                    "id": item_id,
                    "status": 400,
                    "message": 'each item is {"type": "span"|"trace"|"score", "body": {...}}',
                }
            )
            continue
        unknown = set(item) - _ITEM_FIELDS
        if unknown:
            errors.append({"index": i, "id": item_id, "status": 400, "message": f"unknown item field(s) {sorted(unknown)}"})
            continue
        try:
            rec = _MODELS[kind].model_validate(item["body"], context=context)
        except ValidationError as e:
            errors.append({"index": i, "id": item_id, "status": 400, "message": f"{kind}: {_describe(e)}"})
            continue
        if kind == "span":
            builder.add_span(rec)  # type: ignore[arg-type]
            keys[("span", rec.trace_id, rec.id)] = i  # type: ignore[attr-defined]
        elif kind == "trace":
            builder.add_trace(rec)  # type: ignore[arg-type]
            keys[("trace", rec.id)] = i  # type: ignore[attr-defined]
        else:
            try:
                item_id = builder.add_score(rec)  # type: ignore[arg-type]
            except ValidationFailed as e:  # breaks its score config
                errors.append({"index": i, "id": item_id, "status": 400, "message": f"score: {e.message}"})
                continue
            keys[("score", item_id)] = i
        successes.append({"index": i, "id": item_id})
    return successes, errors, keys


def _otlp_batch(st: AppState, project_id: str, body: bytes, ctype: str) -> tuple[BatchBuilder, list[str]]:
    builder = BatchBuilder(project_id, lambda: st.prices_for(project_id))
    problems = otlp.decode_into(body, ctype, builder, max_spans=st.settings.max_batch_items)
    return builder, problems


@router.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON, gzip ok)")
@router.post("/api/public/otel/v1/traces", include_in_schema=False)
async def otlp_traces(request: Request, key: require_write, _room: IngestRoom) -> Response:
    st: AppState = request.app.state.podium
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype not in ("application/x-protobuf", "application/protobuf", "application/json"):
        raise UnsupportedMediaType(
            f"Content-Type {ctype or '(none)'!r} is not OTLP; send application/x-protobuf or application/json"
        )
    as_json = ctype == "application/json"
    body = await read_body(request, st.settings.max_request_bytes)
    # Decoding, validating and pricing 5,000 spans is CPU work: a worker thread, not the event loop.
    builder, problems = await run_in_threadpool(_otlp_batch, st, key.project_id, body, ctype)
    refused = await st.ingester.submit(builder.batch)
    problems.extend(f"span {k[-1]}: {msg}" for k, msg in refused)
    st.count_ingest(len(builder.batch.spans) - len(refused), len(problems))
    out = otlp.encode_response(
        rejected_spans=len(problems), error_message="; ".join(problems[:5]), json=as_json
    )
    return Response(out, media_type="application/json" if as_json else "application/x-protobuf")
