"""Knowledge collections in the web UI: the list with a create form (``/collections``) and a
collection's page (``/collections/{name}``): its documents and versions, a search box that shows
the chunks with their scores (vector, keyword, fused), a form to add a document as text, and an
Ask box that answers through the gateway with citations (the same handlers as the REST API)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import PodiumError
from podium.rag.documents import parse
from podium.rag.search import MODES
from podium.rag.service import check_name
from podium.server.routes.collections import AnswerIn, PromptRef, answer, record, retrieval_span, service
from podium.server.ui.access import UiError, check_origin, ui_action
from podium.server.ui.pages import _form, _mark_ui, _st, _viewer, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(_mark_ui)])
_STRATEGIES = ("tokens", "heading", "sentence")


def _ui(e: PodiumError) -> UiError:
    return UiError(e.status_code, "Not found" if e.status_code == 404 else "Not done", e.message)


def _int(raw: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(raw or default)))
    except ValueError:
        return default


@router.get("/collections", response_class=HTMLResponse)
@ui_action(Action.READ)
def collections_page(request: Request) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    rows = service(request).repo.list_collections(v.project_id)
    return page(request, "collections.html", nav="collections", collections=rows, strategies=_STRATEGIES,
                can_write=v.can_write)


@router.post("/collections", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def create_collection(request: Request) -> Response:
    check_origin(request)
    v = _viewer(request, Action.WRITE, "create knowledge collections")
    form = await _form(request)
    name = (form.get("name") or "").strip()
    chunking = {"strategy": form.get("strategy") or "tokens", "size": _int(form.get("size"), 256, 16, 8192),
                "overlap": _int(form.get("overlap"), 32, 0, 4096)}
    try:
        await run_in_threadpool(service(request).create, v.project_id, name, chunking=chunking,
                                description=(form.get("description") or "").strip() or None, created_by=v.actor)
    except PodiumError as e:
        raise _ui(e) from None
    return RedirectResponse(f"/collections/{quote(name, safe='')}", status_code=303)


def _collection_ctx(request: Request, v: Any, name: str, **extra: Any) -> dict[str, Any]:
    svc = service(request)
    try:
        col = svc.repo.get(v.project_id, check_name(name))
        _, docs = svc.repo.list_documents(v.project_id, name, limit=200)
        versions = svc.repo.list_versions(v.project_id, name)[:20]
    except PodiumError as e:
        raise _ui(e) from None
    return {"c": col, "documents": docs, "versions": versions, "modes": MODES,
            "can_write": v.can_write, "gateway": _st(request).gateway is not None, **extra}


@router.get("/collections/{name}", response_class=HTMLResponse)
@ui_action(Action.READ)
async def collection_page(request: Request, name: str) -> HTMLResponse:
    v = _viewer(request, Action.READ)
    q = (request.query_params.get("q") or "").strip()[:2000]
    mode = request.query_params.get("mode") or "hybrid"
    mode = mode if mode in MODES else "hybrid"
    top_k = _int(request.query_params.get("top_k"), 5, 1, 50)
    result, error = None, None
    if q:
        try:
            start = datetime.now(UTC)
            found = await run_in_threadpool(service(request).search, v.project_id, name, q, mode=mode, top_k=top_k)
            result = found.to_dict()
            trace_id = uuid.uuid4().hex
            record(request, v.project_id, retrieval_span(found, trace_id=trace_id, span_id=uuid.uuid4().hex[:16],
                                                          parent_id=None, start=start, end=datetime.now(UTC),
                                                          filters=None, top_k=top_k))
            result["trace_id"] = trace_id
        except PodiumError as e:
            error = e.message
    ctx = _collection_ctx(request, v, name, q=q, mode=mode, top_k=top_k, result=result, error=error)
    return page(request, "collection.html", nav="collections", **ctx)


@router.post("/collections/{name}/documents", response_class=HTMLResponse)
@ui_action(Action.WRITE)
async def add_document(request: Request, name: str) -> Response:
    """Add (or replace) one document typed or pasted into the form."""
    check_origin(request)
    v = _viewer(request, Action.WRITE, "change knowledge collections")
    form = await _form(request)
    doc_name = (form.get("doc_name") or "").strip()[:1000]
    text = form.get("text") or ""
    if not doc_name or not text.strip():
        raise UiError(400, "Nothing to add", "give the document a name (e.g. notes.md) and some text")
    try:
        doc = parse(doc_name, text)
        await run_in_threadpool(service(request, v.api_key()).add, v.project_id, check_name(name), [doc],
                                created_by=v.actor)
    except PodiumError as e:
        raise _ui(e) from None
    return RedirectResponse(f"/collections/{quote(name, safe='')}", status_code=303)


@router.post("/collections/{name}/ask", response_class=HTMLResponse)
@ui_action(Action.CALL_MODELS)
async def ask(request: Request, name: str) -> HTMLResponse:
    """Answer a question from the collection through the gateway (``POST .../answer``), with
    citations and a link to the trace."""
    check_origin(request)
    v = _viewer(request, Action.CALL_MODELS, "answer questions through the gateway")
    form = await _form(request)
    question = (form.get("question") or "").strip()[:20_000]
    prompt_name = (form.get("prompt") or "").strip()[:1000]
    model = (form.get("model") or "").strip()[:256] or None
    answered, error, status = None, None, 200
    if not question:
        error, status = "type a question", 400
    else:
        try:
            body = AnswerIn(question=question, model=model, prompt=PromptRef(name=prompt_name) if prompt_name else None,
                            params={"max_tokens": _int(form.get("max_tokens"), 200, 1, 4096)})
            answered = await answer(request, v.api_key(), name, body)
        except PodiumError as e:
            error, status = e.message, e.status_code
    ctx = _collection_ctx(request, v, name, q="", mode="hybrid", top_k=5, result=None, error=None,
                          answered=answered, ask_error=error, question=question, prompt_name=prompt_name, model=model)
    return page(request, "collection.html", status=status, nav="collections", **ctx)
