"""Context attribution of a trace's answer: ``/api/v1/traces/{trace_id}/attributions`` (docs/rag.md).

``POST`` attributes the response of a generation span (default: the trace's last one) to the
chunks of a retrieval span (default: the last one that started before it), by leave-one-out or
ContextCite (:mod:`podium.rag.attribution`), scored with the local model's log-probabilities on a
worker thread; the result is stored and returned. ``GET`` lists a trace's attributions, newest
first. Computing needs WRITE (admin, member), reading READ (admin, member, viewer).

The sources come from what tracers record on the retrieval span (Podium's RAG answers,
OpenInference, LangChain, LlamaIndex), the messages and response from the generation span.
The scoring model is this server's local model (the gateway's, when the gateway runs here): for
an answer another model wrote, it is a proxy for that model.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.errors import BadRequest, NotFound
from podium.inference import LocalChatModel
from podium.rag.attribution import (
    Attribution,
    LogProbModel,
    context_cite,
    leave_one_out,
    normalise_messages,
    response_text,
    sources_from_retrieval,
)
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["AttributionIn", "compute", "local_model", "router"]

router = APIRouter(prefix="/api/v1/traces", tags=["traces"], route_class=StrictJSONRoute)

Reader = Annotated[ApiKey, needs(Action.READ, "read context attributions")]
Writer = Annotated[ApiKey, needs(Action.WRITE, "compute context attributions")]

_GENERATION = ("generation", "llm")
_RETRIEVAL = ("retrieval", "retriever")
_fallback: dict[str, LocalChatModel] = {}
_fallback_lock = threading.Lock()


class AttributionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["leave-one-out", "context-cite"] = "context-cite"
    span_id: str | None = Field(default=None, max_length=128,
                                description="the generation span whose response is attributed (default: the last)")
    retrieval_span_id: str | None = Field(default=None, max_length=128,
                                          description="the retrieval span (default: the last one before it)")
    level: Literal["chunk", "sentence"] | None = Field(
        default=None, description="ablate whole chunks or sentences (default: leave-one-out chunk, context-cite "
                                  "sentence)")
    ablations: int = Field(default=32, ge=8, le=256, description="context-cite: random ablations (paper: 32-64)")
    keep_prob: float = Field(default=0.5, gt=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0)
    max_passes: int | None = Field(default=None, ge=2, le=2000)
    max_seconds: float = Field(default=120.0, gt=0, le=600)


def _st(request: Request) -> AppState:
    st: AppState = request.app.state.podium
    return st


def local_model(st: AppState) -> LocalChatModel:
    """The gateway's local model when the gateway runs in this process (one loaded copy), else
    one per process from the settings (loaded on first use)."""
    gw = st.gateway
    provider = gw.providers.get("local") if gw is not None else None
    chat = getattr(provider, "chat_model", None)
    if isinstance(chat, LocalChatModel):
        return chat
    s = st.settings
    with _fallback_lock:
        m = _fallback.get("local")
        if m is None:
            m = _fallback["local"] = LocalChatModel(s.local_model_path, n_threads=s.local_threads,
                                                    n_ctx=s.local_context)
    return m


def _pick(spans: list[dict[str, Any]], kinds: tuple[str, ...], wanted: str | None, what: str,
          before: Any = None) -> dict[str, Any]:
    if wanted is not None:
        for s in spans:
            if s["id"] == wanted:
                if s["kind"] not in kinds:
                    raise BadRequest(f"span {wanted!r} is a {s['kind']} span, not a {what} span",
                                     details=[{"field": "span_id" if what == "generation" else "retrieval_span_id"}])
                return s
        raise NotFound(f"no span {wanted!r} in this trace")
    found = [s for s in spans if s["kind"] in kinds and (before is None or s["start_time"] <= before)]
    if not found:
        hint = ("record the retrieval as a `retrieval` span (Podium's collections do; OpenInference/LangChain "
                "retrievers do)" if what == "retrieval" else
                "attribution needs the LLM call's messages and response on a `generation` span")
        raise BadRequest(f"this trace has no {what} span{' before the generation span' if before else ''}: {hint}",
                         details=[{"field": "span_id" if what == "generation" else "retrieval_span_id"}])
    return found[-1]


def compute(st: AppState, project_id: str, trace_id: str, body: AttributionIn, *, created_by: str | None,
            model: LogProbModel | None = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Attribute, store and return one attribution (blocking: call on a worker thread)."""
    store = st.store
    store.traces.get_trace(project_id, trace_id)  # 404 when the trace is not this project's
    spans = store.traces.list_spans(project_id, trace_id, include_io=False, limit=5000).items
    gen = _pick(spans, _GENERATION, body.span_id, "generation")
    ret = _pick(spans, _RETRIEVAL, body.retrieval_span_id, "retrieval",
                before=gen["start_time"] if body.retrieval_span_id is None else None)
    gen_full = store.traces.get_span(project_id, trace_id, gen["id"])
    ret_full = store.traces.get_span(project_id, trace_id, ret["id"])
    sources = sources_from_retrieval(ret_full.get("output"))
    if not sources:
        raise BadRequest(f"the retrieval span {ret['id']!r} recorded no documents with text in its output",
                         details=[{"field": "retrieval_span_id"}])
    messages = normalise_messages(gen_full.get("input"))
    response = response_text(gen_full.get("output"))
    if not response or not response.strip():
        raise BadRequest(f"the generation span {gen['id']!r} recorded no response text to attribute",
                         details=[{"field": "span_id"}])
    m = model if model is not None else local_model(st)
    level = body.level or ("chunk" if body.method == "leave-one-out" else "sentence")
    result: Attribution
    if body.method == "leave-one-out":
        result = leave_one_out(m, messages, response, sources, level=level, max_passes=body.max_passes,
                               max_seconds=body.max_seconds, cancel=cancel)
    else:
        result = context_cite(m, messages, response, sources, level=level, num_ablations=body.ablations,
                              keep_prob=body.keep_prob, seed=body.seed, max_passes=body.max_passes,
                              max_seconds=body.max_seconds, cancel=cancel)
    doc = result.to_dict()
    doc["generation_model"] = gen_full.get("model")
    name = getattr(m, "name", None)
    return store.attributions.add(project_id, trace_id=trace_id, span_id=gen["id"], retrieval_span_id=ret["id"],
                                  method=result.method, level=result.level, result=doc, passes=result.passes,
                                  seconds=result.seconds, model=str(name) if name else None, created_by=created_by)


@router.post("/{trace_id}/attributions", status_code=201,
             summary="Attribute a trace's answer to its retrieved chunks (leave-one-out or ContextCite)")
async def create_attribution(request: Request, key: Writer, trace_id: str, body: AttributionIn) -> dict[str, Any]:
    """Runs on a worker thread with the local model (seconds to minutes: ``max_seconds`` bounds it)."""
    st = _st(request)
    return await run_in_threadpool(compute, st, key.project_id, trace_id, body, created_by=key.public_key)


@router.get("/{trace_id}/attributions", summary="A trace's context attributions, newest first")
def list_attributions(request: Request, key: Reader, trace_id: str,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    st = _st(request)
    st.store.traces.get_trace(key.project_id, trace_id)
    return {"data": st.store.attributions.for_trace(key.project_id, trace_id, limit=limit)}
