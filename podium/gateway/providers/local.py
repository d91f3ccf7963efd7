"""The ``local`` provider: SmolLM2 (llama.cpp) and MiniLM embeddings inside the gateway process.

Data flow: the request is checked on the event loop (a bad parameter answers 400 at once,
without waiting behind other generations), then the blocking model call runs on a
dedicated single-thread executor (llama.cpp serialises anyway, and a private executor keeps
queued generations from starving ``asyncio.to_thread`` users). Streams cross from the worker
to the loop one chunk at a time through ``loop.call_soon_threadsafe`` into an
``asyncio.Queue``: no polling, one wake-up per token.

Cancellation: closing a stream (``aclose``, client disconnect, task cancellation) sets a
flag the worker checks after every token, so generation stops within one token and the
model lock is released; a request still waiting in the queue is dropped. Cancelling a
non-streaming call does the same.

Responses carry ``model`` = the alias the caller used (``dep.alias``).

Registered models: a deployment whose model is ``registry:/NAME@ALIAS`` (or ``@3``) is bound
before each request (:meth:`LocalProvider.bind`, called by the router) to the version's GGUF
through ``resolve_model`` (the server wires one built on ``podium.registry``, which sits above
this layer). Resolutions are cached for ``gateway_registry_ttl`` seconds, so an alias move
(canary weights, rollback) is served within that; the bound deployment's ``model`` is the
served version ``NAME@N`` (what the span records). Loaded GGUFs are kept in an LRU of
``local_max_models`` :class:`LocalChatModel` instances, looked up and evicted on the chat
worker thread, so an evicted model is never in use when it is closed.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from podium.config import Settings
from podium.core.ttlcache import TTLCache
from podium.errors import BadRequest, PodiumError, UpstreamError, ValidationFailed
from podium.gateway.providers.base import Deployment
from podium.gateway.wire import ChatChunk, ChatCompletion, EmbeddingList, TextCompletion
from podium.inference.embeddings import EMBED_MODEL_NAME, LocalEmbedder
from podium.inference.llama import LocalChatModel, check_chat_params, check_completion_params

__all__ = ["REGISTRY_PREFIX", "LocalProvider", "ModelResolver", "ResolvedModel", "ServedDeployment"]

#: Deployments whose model starts with this are registered model versions (``podium.registry.PREFIX``).
REGISTRY_PREFIX = "registry:/"


@dataclass(frozen=True)
class ResolvedModel:
    """What a ``registry:/`` reference serves now: the version's GGUF and its name ``NAME@N``."""

    path: Path
    served_name: str


#: ``(project_id, reference) -> ResolvedModel``; raises NotFound / BadRequest (with how to fix it).
ModelResolver = Callable[[str, str], ResolvedModel]


@dataclass(frozen=True)
class ServedDeployment(Deployment):
    """A ``registry:/`` deployment bound to one version: ``model`` is ``NAME@N``, ``gguf`` its file."""

    gguf: str = ""
    ref: str = ""  # the reference as configured (registry:/NAME@ALIAS)

_END = object()
_MAX_INPUTS = 2048
_REQUEST_ONLY = ("model", "messages", "prompt", "stream")


def _bad(param: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": param, "message": message}])


def _params(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _REQUEST_ONLY}


def _wrap(exc: BaseException) -> BaseException:
    """Podium errors pass through; anything else from llama.cpp is an upstream failure."""
    if isinstance(exc, PodiumError | asyncio.CancelledError):
        return exc
    err = UpstreamError(f"the local model failed: {type(exc).__name__}: {exc}", retryable=True)
    err.__cause__ = exc
    return err


class LocalProvider:
    """Serves deployments whose provider is ``local``: chat and completions on the GGUF chat
    model, embeddings on the ONNX embedder. Both load lazily (``warm()`` loads the chat model)."""

    name = "local"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        chat_model: LocalChatModel | None = None,
        embedder: LocalEmbedder | None = None,
        resolve_model: ModelResolver | None = None,
    ) -> None:
        self._owns_chat = chat_model is None
        self._owns_embedder = embedder is None
        s = settings if settings is not None else Settings()
        self._resolve = resolve_model
        self._resolved: TTLCache[ResolvedModel] = TTLCache(s.gateway_registry_ttl, max_entries=1000)
        self._models: OrderedDict[str, LocalChatModel] = OrderedDict()  # GGUF path -> model, LRU order
        self._max_models = max(1, s.local_max_models)
        self._threads, self._n_ctx = s.local_threads, s.local_context
        self._prompt_cache_mb = s.local_prompt_cache_mb
        if chat_model is None or embedder is None:
            chat_model = chat_model or LocalChatModel(
                s.local_model_path, n_threads=s.local_threads, n_ctx=s.local_context,
                prompt_cache_mb=s.local_prompt_cache_mb,
            )
            embedder = embedder or LocalEmbedder(s.local_embed_model_path, n_threads=s.local_threads)
        self.chat_model = chat_model
        self.embedder = embedder
        # One worker: llama.cpp runs one generation at a time; the queue is FIFO.
        self._chat_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podium-local-chat")
        # Embeddings and perplexity (its own llama.cpp instance) do not wait behind generations.
        self._aux_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podium-local-aux")
        self._active: set[threading.Event] = set()
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def warm(self, *, embeddings: bool = False) -> None:
        """Load the chat model now (and the embedder if asked) instead of on the first request."""
        await self._call(self._chat_pool, lambda _c: self.chat_model.load())
        if embeddings:
            await self._call(self._aux_pool, lambda _c: self.embedder.load())

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Stop running generations, drop queued ones, wait for the workers, free owned models."""
        if self._closed:
            return
        self._closed = True
        for ev in list(self._active):
            ev.set()
        self._chat_pool.shutdown(wait=True, cancel_futures=True)
        self._aux_pool.shutdown(wait=True, cancel_futures=True)
        if self._owns_chat:
            self.chat_model.close()
        if self._owns_embedder:
            self.embedder.close()
        for m in self._models.values():
            m.close()
        self._models.clear()

    # --- registered models ---------------------------------------------------------------------

    def set_resolver(self, resolve_model: ModelResolver | None) -> None:
        """Serve ``registry:/`` deployments through ``resolve_model`` (the server wires the registry)."""
        self._resolve = resolve_model
        self._resolved.clear()

    async def bind(self, dep: Deployment, project_id: str) -> Deployment:
        """``dep`` itself, or for a ``registry:/`` model the deployment bound to the version it points at
        now (resolved in a worker thread; cached ``gateway_registry_ttl`` seconds per project and reference)."""
        if isinstance(dep, ServedDeployment) or not dep.model.startswith(REGISTRY_PREFIX):
            return dep
        resolve = self._resolve
        if resolve is None:
            raise BadRequest(f"model {dep.alias!r} is served from the model registry ({dep.model}), which this "
                             "process cannot read: serve it with `podium server` or `podium gateway`",
                             details=[{"field": "model", "message": "no registry"}])
        ref = dep.model
        found = await self._resolved.get_or_load((project_id, ref), lambda: resolve(project_id, ref))
        assert found is not None  # the resolver raises instead of returning nothing
        base = {f.name: getattr(dep, f.name) for f in fields(Deployment) if f.init}
        return ServedDeployment(**{**base, "model": found.served_name}, gguf=str(found.path), ref=ref)

    def _chat_for(self, dep: Deployment) -> LocalChatModel:
        """The model serving ``dep``; runs on the chat worker (the only user of registry models), so
        closing the least recently used one when over ``local_max_models`` never hits a running call."""
        if not isinstance(dep, ServedDeployment):
            if dep.model.startswith(REGISTRY_PREFIX):
                raise BadRequest(f"model {dep.model} was not resolved: call it through the gateway",
                                 details=[{"field": "model", "message": "unresolved registry model"}])
            return self.chat_model
        m = self._models.pop(dep.gguf, None)
        if m is None:
            m = LocalChatModel(Path(dep.gguf), n_threads=self._threads, n_ctx=self._n_ctx, name=dep.model,
                               prompt_cache_mb=self._prompt_cache_mb)
        self._models[dep.gguf] = m
        while len(self._models) > self._max_models:
            _path, old = self._models.popitem(last=False)
            old.close()
        return m

    def loaded_models(self) -> list[str]:
        """The registered GGUFs loaded now, least recently used first."""
        return list(self._models)

    # --- chat and completions ----------------------------------------------------------------

    def _check_model(self, dep: Deployment, *, embedding: bool) -> None:
        is_embed = dep.model == EMBED_MODEL_NAME or dep.model == self.embedder.name
        if embedding and (isinstance(dep, ServedDeployment) or dep.model.startswith(REGISTRY_PREFIX)):
            raise _bad("model", f"'{dep.alias}' is a registered chat model; embeddings need an embedding model "
                                "such as 'local-embed'")
        if embedding and dep.model == self.chat_model.name:
            raise _bad("model", f"'{dep.alias}' is a chat model; embeddings need an embedding model "
                                "such as 'local-embed'")
        if not embedding and is_embed:
            raise _bad("model", f"'{dep.alias}' is an embedding model: use /v1/embeddings, or a chat model "
                                "such as 'local'")

    async def chat(self, dep: Deployment, body: dict[str, Any]) -> ChatCompletion:
        self._check_model(dep, embedding=False)
        params = _params(body)
        check_chat_params(body.get("messages"), params)
        messages = body["messages"]
        return await self._call(
            self._chat_pool, lambda c: self._chat_for(dep).chat(messages, model=dep.alias, cancel=c, **params)
        )

    def chat_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]:
        self._check_model(dep, embedding=False)
        params = _params(body)
        messages: Any = body.get("messages")  # checked on the next line
        check_chat_params(messages, params)  # raise now: before the iterator exists
        return self._stream(lambda c: self._chat_for(dep).chat_stream(messages, model=dep.alias, cancel=c, **params))

    async def completion(self, dep: Deployment, body: dict[str, Any]) -> TextCompletion:
        self._check_model(dep, embedding=False)
        params = _params(body)
        check_completion_params(body.get("prompt"), params)
        prompt = body["prompt"]
        return await self._call(
            self._chat_pool, lambda c: self._chat_for(dep).complete(prompt, model=dep.alias, cancel=c, **params)
        )

    def completion_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[TextCompletion]:
        self._check_model(dep, embedding=False)
        params = _params(body)
        prompt: Any = body.get("prompt")  # checked on the next line
        check_completion_params(prompt, params)
        return self._stream(
            lambda c: self._chat_for(dep).complete_stream(prompt, model=dep.alias, cancel=c, **params))

    # --- embeddings and scoring --------------------------------------------------------------

    async def embeddings(self, dep: Deployment, body: dict[str, Any]) -> EmbeddingList:
        self._check_model(dep, embedding=True)
        texts = _embedding_inputs(body.get("input"))
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise _bad("encoding_format", "`encoding_format` must be float or base64")
        dims = body.get("dimensions")
        if dims is not None:
            native = await self._call(self._aux_pool, lambda _c: self.embedder.dimensions)
            if dims != native:
                raise _bad("dimensions", f"`dimensions` is not supported: '{dep.alias}' always returns "
                                         f"{native}-dimensional vectors; leave it out")
        vectors, n_tokens = await self._call(self._aux_pool, lambda _c: self.embedder.embed_with_usage(texts))
        if fmt == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            data = vectors.tolist()
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
            "model": dep.alias,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }

    async def perplexity(self, text: str, *, model: str | None = None) -> dict[str, Any]:
        """Perplexity of ``text`` under the chat model, with every token's log-probability."""
        if not isinstance(text, str) or not text.strip():
            raise _bad("input", "`input` must be a non-empty string")
        score = await self._call(self._aux_pool, lambda c: self.chat_model.score(text, cancel=c))
        return {
            "object": "perplexity",
            "model": model or self.chat_model.name,
            "perplexity": score.perplexity,
            "tokens": [{"token": t, "logprob": lp} for t, lp in zip(score.tokens, score.logprobs, strict=True)],
            "usage": {"prompt_tokens": len(score.tokens) + 1, "total_tokens": len(score.tokens) + 1},
        }

    # --- worker plumbing ---------------------------------------------------------------------

    async def _call(self, pool: ThreadPoolExecutor, fn: Callable[[threading.Event], Any]) -> Any:
        if self._closed:
            raise UpstreamError("the local provider is closed", retryable=True)
        cancel = threading.Event()
        self._active.add(cancel)
        try:
            result = await asyncio.get_running_loop().run_in_executor(pool, fn, cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise
        except Exception as e:
            raise _wrap(e) from None
        finally:
            self._active.discard(cancel)
        if cancel.is_set():  # close() stopped it half-way: the result is partial
            raise _shut_down()
        return result

    async def _stream(
        self, make: Callable[[threading.Event], Iterator[dict[str, Any]]]
    ) -> AsyncIterator[Any]:  # podium.inference's OpenAI-shaped chunks (it sits below podium.gateway.wire)
        if self._closed:
            raise UpstreamError("the local provider is closed", retryable=True)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def send(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        def work(_: threading.Event) -> None:
            try:
                it = make(cancel)
                try:
                    for chunk in it:
                        if cancel.is_set():
                            break
                        send(chunk)
                finally:
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()  # releases the model lock at once
                send(_shut_down() if self._closed else _END)
            except Exception as e:
                send(e)

        self._active.add(cancel)
        fut = loop.run_in_executor(self._chat_pool, work, cancel)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise _wrap(item)
                yield item
        finally:
            cancel.set()
            fut.cancel()  # if it never started
            self._active.discard(cancel)


def _shut_down() -> UpstreamError:
    return UpstreamError("the local provider shut down during the request", retryable=True)


def _embedding_inputs(x: Any) -> list[str]:
    if isinstance(x, str):
        texts = [x]
    elif isinstance(x, list) and x and all(isinstance(t, str) for t in x):
        texts = x
    elif isinstance(x, list) and x and all(isinstance(t, int | list) for t in x):
        raise _bad("input", "token-id input is not supported by the local embedding model: send text")
    else:
        raise _bad("input", "`input` must be a string or a non-empty list of strings")
    if len(texts) > _MAX_INPUTS:
        raise _bad("input", f"at most {_MAX_INPUTS} inputs per request (got {len(texts)}): split the batch")
    for i, t in enumerate(texts):
        if not t:
            raise _bad("input", f"input[{i}] is an empty string; every input needs some text")
    return texts
