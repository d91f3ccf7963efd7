"""What every provider implements: OpenAI-shaped dicts in, OpenAI-shaped dicts out.

The gateway speaks OpenAI's wire format on both sides of a provider: ``body`` is the
caller's request (a JSON object as sent to ``/v1/chat/completions`` etc.) with ``model``
already replaced by the deployment's upstream model name; the result is what OpenAI
would have answered (``chat.completion`` / ``chat.completion.chunk`` / ``text_completion``
/ embedding ``list`` dicts, typed as :mod:`podium.gateway.wire`'s TypedDicts: plain dicts at
run time). Providers that speak another protocol (Anthropic, Gemini) translate both ways;
the local provider runs llama.cpp in a worker thread.

Errors: a provider raises :class:`podium.errors.UpstreamError` (``retryable`` for 429,
5xx and network errors; not for other 4xx) or :class:`podium.errors.UpstreamTimeout`.
A streaming method raises before its first chunk when the upstream fails before
sending anything (so the router can fail over), and raises ``UpstreamError`` from the
iterator when the stream breaks after that (the route turns it into an SSE error event).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from podium.gateway.wire import ChatChunk, ChatCompletion, EmbeddingList, TextCompletion

__all__ = ["Deployment", "Provider"]


@dataclass(frozen=True)
class Deployment:
    """One concrete upstream behind a model alias (resolved from the gateway config)."""

    alias: str  # the name callers use, e.g. "gpt-4o" or "local"
    provider: str  # "openai" (any OpenAI-compatible server), "anthropic", "gemini", "local"
    model: str  # the upstream's model name
    api_base: str | None = None
    api_key: str | None = None  # resolved secret (from an env var or the encrypted store); never logged
    weight: float = 1.0
    timeout: float = 60.0
    max_retries: int = 2
    headers: dict[str, str] = field(default_factory=dict)
    index: int = 0  # position within the alias, for ids and metrics
    #: Stable name for logs, metrics and cooldowns: ``alias#index:provider/model`` (built once: the router
    #: and the span read it several times per call).
    id: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.alias}#{self.index}:{self.provider}/{self.model}")


class Provider(Protocol):
    """A model provider. One instance per provider kind, shared by all deployments of it."""

    name: str

    async def chat(self, dep: Deployment, body: dict[str, Any]) -> ChatCompletion: ...

    def chat_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]: ...

    async def completion(self, dep: Deployment, body: dict[str, Any]) -> TextCompletion: ...

    def completion_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[TextCompletion]: ...

    async def embeddings(self, dep: Deployment, body: dict[str, Any]) -> EmbeddingList: ...

    async def aclose(self) -> None: ...
