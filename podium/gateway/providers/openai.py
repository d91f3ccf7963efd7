"""Any OpenAI-compatible server: OpenAI, Azure-style proxies, vLLM, Ollama, llama.cpp, Groq, Together…

``api_base`` is the URL the server's OpenAI routes hang off (``https://api.openai.com/v1``,
``http://localhost:11434/v1``, ``http://vllm:8000/v1``); ``/chat/completions``,
``/completions`` and ``/embeddings`` are appended. ``Authorization: Bearer <api_key>`` is
sent when the deployment has a key, plus the deployment's extra ``headers``.

The body goes upstream as the caller sent it (``model`` already replaced by the router),
unknown fields included, and the answer comes back as the upstream sent it. Streams get
``stream: true`` and, unless the caller chose its own ``stream_options``,
``stream_options: {"include_usage": true}`` so the gateway always learns the usage; a
stream must end with ``data: [DONE]``, otherwise the iterator raises
``UpstreamError("stream ended before completion")``. An ``{"error": ...}`` event inside a
stream (vLLM, OpenRouter) is raised the same way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from podium.errors import UpstreamError
from podium.gateway.wire import ChatChunk, ChatCompletion, EmbeddingList, TextCompletion

from .base import Deployment
from .http import HttpProvider, error_from_payload, iter_sse, stream_ended

__all__ = ["OpenAIProvider"]

_JSON = "application/json"


class OpenAIProvider(HttpProvider):
    """``OpenAIProvider(*, client=None, transport=None, name="openai")``."""

    default_base = "https://api.openai.com/v1"

    def __init__(self, *, name: str = "openai", **kw: Any) -> None:
        super().__init__(**kw)
        self.name = name

    def headers(self, dep: Deployment) -> dict[str, str]:
        h = {"content-type": _JSON, "accept": _JSON}
        if dep.api_key:
            h["authorization"] = "Bearer " + dep.api_key
        if dep.headers:
            h.update(dep.headers)
        return h

    # --- JSON ---------------------------------------------------------------------------

    async def _call(self, dep: Deployment, path: str, body: dict[str, Any]) -> Any:  # the upstream's JSON object
        data = await self.post_json(dep, (dep.api_base or self.default_base).rstrip("/") + path, body)
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{self.name} answered {type(data).__name__} where a JSON object was expected",
                upstream_status=200,
                retryable=True,
            )
        if "error" in data and "choices" not in data and "data" not in data:
            raise error_from_payload(data, self.name, status=None)
        return data

    async def chat(self, dep: Deployment, body: dict[str, Any]) -> ChatCompletion:
        return await self._call(dep, "/chat/completions", body)

    async def completion(self, dep: Deployment, body: dict[str, Any]) -> TextCompletion:
        return await self._call(dep, "/completions", body)

    async def embeddings(self, dep: Deployment, body: dict[str, Any]) -> EmbeddingList:
        return await self._call(dep, "/embeddings", body)

    # --- streams ------------------------------------------------------------------------

    def chat_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]:
        return self._stream(dep, "/chat/completions", body)

    def completion_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[TextCompletion]:
        return self._stream(dep, "/completions", body)

    async def _stream(
        self, dep: Deployment, path: str, body: dict[str, Any]
    ) -> AsyncIterator[Any]:  # the upstream's chunks, JSON objects
        payload = dict(body)
        payload["stream"] = True
        if payload.get("stream_options") is None:
            payload["stream_options"] = {"include_usage": True}
        resp = await self.open_stream(dep, self.base(dep) + path, payload)
        try:
            async for _event, data in iter_sse(resp, provider_name=self.name, timeout=dep.timeout):
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise stream_ended(self.name, f"invalid JSON in event: {data[:200]!r}")
                if not isinstance(chunk, dict):
                    raise stream_ended(self.name, f"event is not a JSON object: {data[:200]!r}")
                if "error" in chunk and "choices" not in chunk:
                    raise error_from_payload(chunk, self.name, status=None)
                yield chunk
            raise stream_ended(self.name, "the upstream closed the stream without [DONE]")
        finally:
            await resp.aclose()
