"""Knowledge collections' REST API under ``/api/v1/collections`` (docs/rag.md, docs/api.md).

Create a collection, upload documents (JSON, or multipart files: txt, md, html, pdf), list its
documents, chunks and versions, search it (vector | keyword | hybrid, metadata filters) and
answer a question from it through the gateway with citations. Every search is traced as a
``retrieval`` span (query, chunks, scores); an answer is one trace: a ``chain`` root, the
``retrieval`` span and the gateway's ``generation`` span under it.
Reads need READ (admin, member, viewer), writes WRITE, answers CALL_MODELS.
"""

from __future__ import annotations

import email.parser
import email.policy
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.core.prompts import Prompt
from podium.core.records import SpanIn, SpanKind, TraceIn
from podium.core.roles import Action
from podium.errors import BadRequest, ServiceUnavailable, UnsupportedMediaType, ValidationFailed
from podium.prompts import PromptRegistry
from podium.rag.answer import citations, default_messages, retrieval_config
from podium.rag.documents import Document, parse
from podium.rag.embedder import DEFAULT_EMBEDDER, Embedder, FunctionEmbedder, local_embedder
from podium.rag.service import CollectionService, SearchResult, check_name, format_context, service_for
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute, parse_json_async, read_body
from podium.server.convert import BatchBuilder
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["AnswerIn", "answer_with", "record", "retrieval_span", "router", "service"]

router = APIRouter(prefix="/api/v1/collections", tags=["collections"], route_class=StrictJSONRoute)

Reader = Annotated[ApiKey, needs(Action.READ, "read knowledge collections")]
Writer = Annotated[ApiKey, needs(Action.WRITE, "change knowledge collections")]
Caller = Annotated[ApiKey, needs(Action.CALL_MODELS, "answer questions from a collection through the gateway")]
_MAX_FILES = 1000


def _st(request: Request) -> AppState:
    return request.app.state.podium


def service(request: Request, key: ApiKey | None = None) -> CollectionService:
    """The store's collection service with this request's embedders (MiniLM; ``gateway:ALIAS``
    through this app's gateway, with the caller's key)."""
    st = _st(request)
    base = service_for(st.store, backend=st.settings.rag_index)
    s = st.settings

    def embedders(name: str) -> Embedder:
        if name == DEFAULT_EMBEDDER:
            return local_embedder(s.local_embed_model_path, s.local_threads)
        gw = st.gateway
        if gw is None or key is None or not name.startswith("gateway:"):
            raise ServiceUnavailable(f"the embedder {name!r} needs this server's gateway; use {DEFAULT_EMBEDDER}")
        alias = name.split(":", 1)[1]

        def call(texts: list[str]) -> list[list[float]]:
            import anyio.from_thread

            async def run() -> list[list[float]]:
                await gw.warm(key.project_id)
                c = gw.prepare(key, "embeddings", {"model": alias, "input": texts}, {})
                out = await gw.call(c)
                return [d["embedding"] for d in sorted(out["data"], key=lambda d: d["index"])]
            return anyio.from_thread.run(run)
        return FunctionEmbedder(name, call)
    return base.with_embedders(embedders)


# --- shapes ------------------------------------------------------------------------------------------


class ChunkingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str = Field(default="tokens", description="tokens | heading | sentence")
    size: int = Field(default=256, ge=16, le=8192, description="tokens per chunk")
    overlap: int = Field(default=32, ge=0, le=4096, description="tokens repeated between chunks")


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    embedder: str = Field(default=DEFAULT_EMBEDDER, max_length=200, description="local:minilm-l6-v2 | gateway:ALIAS")
    chunking: ChunkingIn = Field(default_factory=ChunkingIn)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=1000, description="file name (its suffix picks the parser)")
    id: str | None = Field(default=None, max_length=200, description="default: the name")
    text: str = Field(max_length=50_000_000, description="the content (txt, md or html)")
    kind: str | None = Field(default=None, description="txt | md | html (default: from the name)")
    title: str | None = Field(default=None, max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentJson] = Field(default_factory=list, max_length=_MAX_FILES)
    delete: list[str] = Field(default_factory=list, max_length=100_000, description="document ids to remove")
    replace: bool = Field(default=False, description="remove every current document not in this upload")
    message: str | None = Field(default=None, max_length=10_000)


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=10_000)
    mode: str = Field(default="hybrid", description="vector | keyword | hybrid")
    top_k: int = Field(default=5, ge=1, le=100)
    filters: dict[str, Any] = Field(default_factory=dict, description='document metadata: {"lang": "en"}, '
                                    '{"tag": ["a", "b"]}, {"year": {"gte": 2020}}')
    trace_id: str | None = Field(default=None, max_length=128, description="record the retrieval span in this trace")
    parent_id: str | None = Field(default=None, max_length=128, description="... under this span")
    trace: bool = Field(default=True, description="false: do not record a retrieval span")


class PromptRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=1000)
    label: str | None = Field(default=None, max_length=200)
    version: int | None = Field(default=None, ge=1)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=20_000)
    model: str | None = Field(default=None, max_length=256, description="gateway model (default: the prompt's, "
                                                                        "else PODIUM_RAG_ANSWER_MODEL)")
    mode: str | None = Field(default=None, description="vector | keyword | hybrid (default: the prompt's, else hybrid)")
    top_k: int | None = Field(default=None, ge=1, le=50)
    filters: dict[str, Any] | None = None
    prompt: PromptRef | None = Field(default=None, description="a prompt whose {{context}} (and {{question}}) "
                                                               "are filled; its config.retrieval sets the defaults")
    variables: dict[str, Any] = Field(default_factory=dict, description="the prompt's other variables")
    params: dict[str, Any] = Field(default_factory=dict, description="temperature, max_tokens, ...")


# --- tracing ----------------------------------------------------------------------------------------------


def retrieval_span(result: SearchResult, *, trace_id: str, span_id: str, parent_id: str | None,
                   start: datetime, end: datetime, filters: dict[str, Any] | None, top_k: int) -> SpanIn:
    """A search as a ``retrieval`` span: the query, the chunks with their scores, the collection."""
    return SpanIn(
        id=span_id, trace_id=trace_id, parent_id=parent_id, name=f"retrieve {result.collection}",
        kind=SpanKind.RETRIEVAL, start_time=start, end_time=end,
        input={"query": result.query, "mode": result.mode, "top_k": top_k, "filters": filters or {}},
        output=[{"id": h.id, "document_id": h.document_id, "title": h.title, "score": h.score, "scores": h.scores,
                 "text": h.text[:2000]} for h in result.hits],
        metadata={"collection": result.collection, "version": result.version, "mode": result.mode,
                  "timings_ms": result.timings_ms},
        trace_name=None if parent_id else f"retrieval {result.collection}",
    )


def record(request: Request, project_id: str, *items: SpanIn | TraceIn) -> None:
    """Hand spans (and a trace record) to the ingest queue without waiting."""
    st = _st(request)
    b = BatchBuilder(project_id, lambda: st.prices_for(project_id))
    for it in items:
        if isinstance(it, TraceIn):
            b.add_trace(it)
        else:
            b.add_span(it)
    st.ingester.submit_nowait(b.batch)  # tracing never slows retrieval; a full queue drops (counted there)


# --- collections ------------------------------------------------------------------------------------------


@router.get("", summary="List knowledge collections")
def list_collections(request: Request, key: Reader) -> dict[str, Any]:
    return {"data": service(request).repo.list_collections(key.project_id)}


@router.post("", status_code=201, summary="Create a knowledge collection")
def create_collection(request: Request, key: Writer, body: CollectionIn) -> dict[str, Any]:
    return service(request).create(key.project_id, body.name, embedder=body.embedder,
                                   chunking=body.chunking.model_dump(), description=body.description,
                                   metadata=body.metadata, created_by=key.public_key)


@router.get("/{name}", summary="A collection with its latest version's counts")
def get_collection(request: Request, key: Reader, name: str) -> dict[str, Any]:
    return service(request).repo.get(key.project_id, check_name(name))


@router.delete("/{name}", status_code=204, summary="Delete a collection, its documents and versions")
def delete_collection(request: Request, key: Writer, name: str) -> Response:
    service(request).delete(key.project_id, check_name(name))
    return Response(status_code=204)


@router.get("/{name}/versions", summary="A collection's versions, newest first")
def list_versions(request: Request, key: Reader, name: str) -> dict[str, Any]:
    return {"data": service(request).repo.list_versions(key.project_id, check_name(name))}


@router.get("/{name}/documents", summary="The documents of a version (default: the latest)")
def list_documents(request: Request, key: Reader, name: str, version: Annotated[int | None, Query(ge=1)] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    v, docs = service(request).repo.list_documents(key.project_id, check_name(name), version=version, limit=limit,
                                                   offset=offset)
    return {"version": v, "data": docs}


@router.get("/{name}/chunks", summary="The chunks of a version, optionally of one document")
def list_chunks(request: Request, key: Reader, name: str, document_id: Annotated[str | None, Query(max_length=200)] = None,
                version: Annotated[int | None, Query(ge=1)] = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    v, rows = service(request).repo.list_chunks(key.project_id, check_name(name), document_id=document_id,
                                                version=version, limit=limit, offset=offset)
    for r in rows:
        r.pop("key", None)
    return {"version": v, "data": rows}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` references inlined (an OpenAPI request body cannot
    point at ``#/$defs``)."""
    defs = schema.pop("$defs", {})

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            ref = x.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x
    out: dict[str, Any] = walk(schema)
    return out


def _multipart(body: bytes, ctype: str) -> tuple[list[Document], dict[str, Any]]:
    """Files (``file``/``files`` parts) and the form fields ``metadata`` (JSON), ``replace``, ``message``."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not msg.is_multipart():
        raise BadRequest("the multipart body could not be read; send files as multipart/form-data parts named `file`")
    docs: list[Document] = []
    fields: dict[str, Any] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        if filename:
            if len(docs) >= _MAX_FILES:
                raise BadRequest(f"at most {_MAX_FILES} files per upload; send the rest in another request")
            docs.append(parse(filename, payload))
        elif isinstance(name, str):
            fields[name] = payload.decode("utf-8", "replace")
    return docs, fields


@router.post("/{name}/documents", summary="Upload documents (JSON or multipart files): one new version",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": _inline(DocumentsIn.model_json_schema())},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                     "metadata": {"type": "string", "description": "JSON object applied to every file"},
                     "replace": {"type": "string", "enum": ["true", "false"]},
                     "message": {"type": "string"}}}}}}})
async def upload_documents(request: Request, key: Writer, name: str) -> dict[str, Any]:
    """JSON ``{"documents": [{"name", "text", "kind"?, "id"?, "title"?, "metadata"?}], "delete"?,
    "replace"?, "message"?}``, or ``multipart/form-data`` with ``file`` parts (txt, md, html, pdf)
    and optional ``metadata`` (a JSON object for every file), ``replace`` and ``message`` fields.
    Unchanged documents are skipped; a change makes one new version."""
    check_name(name)
    st = _st(request)
    ctype = request.headers.get("content-type") or ""
    raw = await read_body(request, st.settings.max_request_bytes)
    replace, message, delete_ids = False, None, []
    if ctype.lower().startswith("multipart/form-data"):
        docs, fields = await run_in_threadpool(_multipart, raw, ctype)
        meta = await parse_json_async(fields["metadata"].encode()) if fields.get("metadata") else {}
        if not isinstance(meta, dict):
            raise ValidationFailed("the `metadata` field must be a JSON object",
                                   details=[{"field": "metadata", "message": "not an object"}])
        for d in docs:
            d.metadata = {**meta, **d.metadata}
        replace = fields.get("replace", "").lower() in ("1", "true", "yes")
        message = fields.get("message")
    elif ctype.split(";")[0].strip().lower() in ("application/json", ""):
        payload = await parse_json_async(raw)
        try:
            body = DocumentsIn.model_validate(payload)
        except Exception as e:
            raise ValidationFailed(f"invalid documents body: {e}".splitlines()[0] + "; see docs/api.md",
                                   details=[{"field": "body", "message": str(e)[:500]}]) from None
        docs = [parse(d.name, d.text, kind=d.kind, metadata=d.metadata, doc_id=d.id) for d in body.documents]
        for d, j in zip(docs, body.documents, strict=True):
            if j.title:
                d.title = j.title
        replace, message, delete_ids = body.replace, body.message, body.delete
    else:
        raise UnsupportedMediaType(f"Content-Type {ctype.split(';')[0]!r} is not supported here; send "
                                   "application/json or multipart/form-data")
    if not docs and not delete_ids and not replace:
        raise ValidationFailed("no documents: send `documents` (JSON) or `file` parts (multipart)",
                               details=[{"field": "documents", "message": "empty"}])
    svc = service(request, key)
    return await run_in_threadpool(svc.add, key.project_id, name, docs, replace=replace, delete_ids=delete_ids,
                                   message=message, created_by=key.public_key)


@router.post("/{name}/search", summary="Search a collection (vector | keyword | hybrid), traced")
async def search(request: Request, key: Reader, name: str, body: SearchIn) -> dict[str, Any]:
    check_name(name)
    svc = service(request, key)
    start = datetime.now(UTC)
    result = await run_in_threadpool(svc.search, key.project_id, name, body.query, mode=body.mode,
                                     top_k=body.top_k, filters=body.filters or None)
    end = datetime.now(UTC)
    out = result.to_dict()
    if body.trace:
        trace_id = body.trace_id or uuid.uuid4().hex
        span_id = uuid.uuid4().hex[:16]
        record(request, key.project_id, retrieval_span(result, trace_id=trace_id, span_id=span_id,
                                                        parent_id=body.parent_id, start=start, end=end,
                                                        filters=body.filters, top_k=body.top_k))
        out["trace_id"], out["span_id"] = trace_id, span_id
    return out


def _prompt(request: Request, project_id: str, ref: PromptRef) -> Prompt:
    reg = PromptRegistry(_st(request).store.prompts)
    v = reg.resolve(project_id, ref.name, label=ref.label if ref.version is None else None, version=ref.version)
    return Prompt.from_dict(v)


@router.post("/{name}/answer", summary="Answer a question from a collection through the gateway, with citations")
async def answer(request: Request, key: Caller, name: str, body: AnswerIn) -> dict[str, Any]:
    """Retrieves (the request's ``mode``/``top_k``/``filters``, else the prompt's
    ``config.retrieval``, else hybrid/4), fills the prompt's ``{{context}}`` with numbered passages
    (or uses the built-in RAG prompt), calls the gateway and resolves ``[n]`` citations to
    documents. One trace: a ``chain`` span, the ``retrieval`` span and the ``generation`` span."""
    check_name(name)
    if _st(request).gateway is None:
        raise ServiceUnavailable("the gateway is not enabled in this process; answer on `podium up`")
    prompt = await run_in_threadpool(_prompt, request, key.project_id, body.prompt) if body.prompt else None
    rc = retrieval_config(prompt.config if prompt else None) or {}
    if rc and rc["collection"] != name:
        raise BadRequest(f"the prompt binds its context to collection {rc['collection']!r}, not {name!r}; call "
                         f"/api/v1/collections/{rc['collection']}/answer", details=[{"field": "prompt"}])
    return (await answer_with(request, key, name, body, prompt))[0]


async def answer_with(request: Request, key: ApiKey, name: str, body: AnswerIn,
                      prompt: Prompt | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What ``POST /collections/{name}/answer`` does with an already resolved prompt (which may bind
    another collection: the prompt playground lets the user pick one): the reply and the messages
    sent. The prompt's ``config.retrieval`` gives the defaults the request leaves out."""
    st = _st(request)
    gw = st.gateway
    if gw is None:
        raise ServiceUnavailable("the gateway is not enabled in this process; answer on `podium up`")
    rc = retrieval_config(prompt.config if prompt else None) or {}
    mode = body.mode or rc.get("mode") or "hybrid"
    top_k = body.top_k or int(rc.get("top_k") or 4)
    filters = body.filters if body.filters is not None else (rc.get("filters") or None)
    svc = service(request, key)
    trace_id, root_id, ret_id = uuid.uuid4().hex, uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    t_root = datetime.now(UTC)
    result = await run_in_threadpool(svc.search, key.project_id, name, body.question, mode=mode, top_k=top_k,
                                     filters=filters)
    t_ret = datetime.now(UTC)
    context = format_context(result.hits)
    req: dict[str, Any]
    if prompt is not None:
        kwargs = prompt.openai_kwargs(**{**body.variables, "context": context, "question": body.question})
        req = {**kwargs, **body.params, "messages": [dict(m) for m in kwargs.pop("messages")]}
        req["model"] = body.model or req.get("model") or st.settings.rag_answer_model
    else:
        req = {**body.params, "messages": default_messages(context, body.question),
               "model": body.model or st.settings.rag_answer_model}
    req.pop("stream", None)
    pod: dict[str, Any] = {"trace_id": trace_id, "parent_id": root_id, "tags": ["rag"],
                           "metadata": {"collection": name, "version": result.version}}
    if prompt is not None:
        pod["prompt"] = {"name": prompt.name, "version": prompt.version}
    req["podium"] = pod
    await gw.warm(key.project_id)
    call = gw.prepare(key, "chat", req, {})
    t0 = time.perf_counter()
    out = await gw.call(call)
    latency_ms = (time.perf_counter() - t0) * 1000.0
    message = ((out.get("choices") or [{}])[0]).get("message") or {}
    text = message.get("content") or ""
    cites = citations(text, result.hits)
    t_end = datetime.now(UTC)
    record(request, key.project_id,
            TraceIn(id=trace_id, name=f"rag {name}", input={"question": body.question}, output=text,
                    metadata={"collection": name, "version": result.version}),
            SpanIn(id=root_id, trace_id=trace_id, name=f"rag {name}", kind=SpanKind.CHAIN, start_time=t_root,
                   end_time=t_end, input={"question": body.question}, output={"answer": text, "citations": cites}),
            retrieval_span(result, trace_id=trace_id, span_id=ret_id, parent_id=root_id, start=t_root, end=t_ret,
                           filters=filters, top_k=top_k))
    return {"answer": text, "citations": cites, "chunks": [h.to_dict() for h in result.hits],
            "model": call.alias, "usage": out.get("usage"), "latency_ms": round(latency_ms, 3),
            "retrieval": {"mode": mode, "top_k": top_k, "version": result.version, "timings_ms": result.timings_ms},
            "prompt": {"name": prompt.name, "version": prompt.version} if prompt else None,
            "trace_id": trace_id, "span_id": call.span_id}, req["messages"]


