"""Drop-in ``OpenAI`` / ``AsyncOpenAI`` clients that trace every call as a span.

::

    from podium.openai import OpenAI      # instead of: from openai import OpenAI

    client = OpenAI()
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])

Traced: ``chat.completions.create``, ``completions.create`` (kind ``generation``) and
``embeddings.create`` (kind ``embedding``), sync and async, streamed or not. Each call is a
span under the current span with the model (the response's when it returns one), provider
``openai``, model parameters, the input messages/prompt, the output message(s), token
usage and, for streams, the time of the first chunk. API errors mark the span ``error``
and propagate unchanged.

Streams are returned wrapped: iterate them as usual; the span ends when the stream is
exhausted, closed (``with`` or ``close()``), or fails. Usage of a stream is recorded only
if the server sends it (nothing is added to your request, e.g. no ``stream_options``).

Extra keyword arguments, removed before the request is sent: ``podium_name`` (span name),
``podium_metadata`` (span metadata), ``podium_prompt`` (a :class:`podium.Prompt`: link the
generation to its name and version), or ``podium_prompt_name`` and ``podium_prompt_version``.
Messages made by ``prompt.compile(...)`` / ``prompt.openai_kwargs(...)`` carry their prompt,
so ``create(**prompt.openai_kwargs(q="..."))`` is linked without any extra argument.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Iterator, Mapping
from time import time_ns
from types import TracebackType
from typing import Any, cast

try:
    import openai
    from openai.resources.chat.chat import AsyncChat, Chat
    from openai.resources.chat.completions.completions import AsyncCompletions as AsyncChatCompletions
    from openai.resources.chat.completions.completions import Completions as ChatCompletions
    from openai.resources.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "podium.openai needs the OpenAI SDK: pip install 'podium[openai]' (or pip install openai)"
    ) from exc

from podium.sdk.client import get_client
from podium.sdk.span import Span

__all__ = ["AsyncOpenAI", "OpenAI", "TracedAsyncStream", "TracedStream"]

logger = logging.getLogger(__name__)

PROVIDER = "openai"
PODIUM_KWARGS = ("podium_name", "podium_metadata", "podium_prompt", "podium_prompt_name", "podium_prompt_version")
MODEL_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "reasoning_effort",
    "tool_choice",
    "parallel_tool_calls",
    "service_tier",
    "stream",
    "best_of",
    "echo",
    "suffix",
    "dimensions",
    "encoding_format",
)
_NOT_GIVEN_TYPES = (openai.NotGiven, openai.Omit)


def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, _NOT_GIVEN_TYPES)


# --- span lifecycle (never raises) --------------------------------------------------------


def _start(endpoint: str, kind: str, kwargs: dict[str, Any]) -> Span | None:
    """Pop the podium_* kwargs (always) and start a span (None when tracing is off)."""
    opts = {k: kwargs.pop(k) for k in PODIUM_KWARGS if k in kwargs}
    try:
        client = get_client()
        if not client.enabled:
            return None
        span = client.start_span(opts.get("podium_name") or f"OpenAI.{endpoint}", kind=kind)
        if not span.sampled:
            return span
        if endpoint == "chat.completions":
            messages = kwargs.get("messages")
            inputs: Any = list(cast(Iterable[Any], messages)) if _given(messages) else None
            tools = kwargs.get("tools", kwargs.get("functions"))
            if _given(tools):
                inputs = {"messages": inputs, "tools": list(cast(Iterable[Any], tools))}
        elif endpoint == "completions":
            inputs = kwargs.get("prompt")
        else:
            inputs = kwargs.get("input")
        _propagate(span, kwargs)
        model = kwargs.get("model")
        prompt_name, prompt_version, metadata = _prompt_link(opts, kwargs)
        span.update(
            input=inputs if _given(inputs) else None,
            model=str(model) if _given(model) else None,
            provider=PROVIDER,
            model_parameters={k: kwargs[k] for k in MODEL_PARAMETERS if k in kwargs and _given(kwargs[k])}
            or None,
            metadata=metadata,
            prompt_name=prompt_name,
            prompt_version=prompt_version,
        )
        return span
    except Exception:
        logger.debug("Podium: could not start the OpenAI span", exc_info=True)
        return None


def _propagate(span: Span, kwargs: dict[str, Any]) -> None:
    """Send W3C ``traceparent`` with the request, so a server that traces (Podium's gateway, an
    OpenTelemetry-instrumented proxy) puts its span of this call under this one: one trace, and
    the call's usage counted once (docs/data-model.md). A ``traceparent`` the caller set wins."""
    tid, sid = span.trace_id, span.id
    if len(tid) != 32 or len(sid) != 16 or not all(c in "0123456789abcdef" for c in tid + sid):
        return  # a custom id is not W3C: nothing to propagate
    given = kwargs.get("extra_headers")
    headers = dict(cast(Mapping[str, Any], given)) if isinstance(given, Mapping) else {}
    if not any(k.lower() == "traceparent" for k in headers):
        headers["traceparent"] = f"00-{tid}-{sid}-01"
        kwargs["extra_headers"] = headers


def _prompt_link(opts: dict[str, Any], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(prompt name, version, metadata) from ``podium_prompt``, messages made by a Prompt, or
    the explicit ``podium_prompt_name``/``podium_prompt_version``."""
    metadata = opts.get("podium_metadata")
    prompt = opts.get("podium_prompt") or getattr(kwargs.get("messages"), "podium_prompt", None)
    name, version = opts.get("podium_prompt_name"), opts.get("podium_prompt_version")
    if prompt is not None:
        name = name or getattr(prompt, "name", None)
        version = version if version is not None else getattr(prompt, "version", None)
        extra = {k: v for k, v in (("prompt_label", getattr(prompt, "label", None)),
                                   ("prompt_fallback", getattr(prompt, "is_fallback", False) or None)) if v}
        if extra:
            metadata = {**extra, **(metadata or {})}
    return name, version, metadata


def _fail(span: Span, exc: BaseException) -> None:
    try:
        span.set_error(exc)
        span.end()
    except Exception:
        logger.debug("Podium: could not end the OpenAI span", exc_info=True)


def _record(span: Span, endpoint: str, result: Any) -> None:
    """End the span with what a non-streamed response says."""
    try:
        choices = getattr(result, "choices", None)
        output: Any = None
        if endpoint == "chat.completions" and isinstance(choices, list):
            messages = [
                c.message.model_dump(exclude_none=True) for c in choices if getattr(c, "message", None)
            ]
            output = messages[0] if len(messages) == 1 else messages or None
        elif endpoint == "completions" and isinstance(choices, list):
            texts = [getattr(c, "text", "") for c in choices]
            output = texts[0] if len(texts) == 1 else texts or None
        elif endpoint == "embeddings":
            data = getattr(result, "data", None)
            if isinstance(data, list):
                first = getattr(data[0], "embedding", None) if data else None
                output = {"count": len(data), "dimensions": len(first) if isinstance(first, list) else None}
        model = getattr(result, "model", None)
        span.update(
            output=output,
            model=model if isinstance(model, str) and model else None,
            usage=getattr(result, "usage", None),
        )
        span.end()
    except Exception:
        logger.debug("Podium: could not record the OpenAI response", exc_info=True)
        span.end()


class _Accumulator:
    """Builds the output of a stream from its chunks (chat deltas or completion texts)."""

    __slots__ = ("choices", "first_ns", "model", "usage")

    def __init__(self) -> None:
        self.first_ns = 0
        self.model: str | None = None
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        try:
            if not self.first_ns:
                self.first_ns = time_ns()
            model = getattr(chunk, "model", None)
            if isinstance(model, str) and model:
                self.model = model
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                self.usage = usage
            for choice in getattr(chunk, "choices", None) or ():
                state = self.choices.setdefault(getattr(choice, "index", 0) or 0, {"parts": []})
                delta = getattr(choice, "delta", None)
                if delta is None:  # legacy completions stream
                    text = getattr(choice, "text", None)
                    if text:
                        state["parts"].append(text)
                    state["legacy"] = True
                    continue
                if delta.role:
                    state["role"] = delta.role
                if delta.content:
                    state["parts"].append(delta.content)
                for call in getattr(delta, "tool_calls", None) or ():
                    calls = state.setdefault("tool_calls", {})
                    entry = calls.setdefault(
                        call.index, {"id": None, "type": "function", "name": "", "arguments": ""}
                    )
                    if call.id:
                        entry["id"] = call.id
                    if call.function is not None:
                        entry["name"] += call.function.name or ""
                        entry["arguments"] += call.function.arguments or ""
        except Exception:
            logger.debug("Podium: could not read a stream chunk", exc_info=True)

    def output(self) -> Any:
        outputs: list[Any] = []
        for index in sorted(self.choices):
            state = self.choices[index]
            text = "".join(state["parts"])
            if state.get("legacy"):
                outputs.append(text)
                continue
            message: dict[str, Any] = {"role": state.get("role") or "assistant", "content": text or None}
            if state.get("tool_calls"):
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": c["type"],
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for _, c in sorted(state["tool_calls"].items())
                ]
            outputs.append(message)
        if not outputs:
            return None
        return outputs[0] if len(outputs) == 1 else outputs

    def finish(self, span: Span, exc: BaseException | None) -> None:
        try:
            if span.ended:
                return
            if exc is not None:
                span.set_error(exc)
            span.update(
                output=self.output(),
                model=self.model,
                usage=self.usage,
                completion_start_time=self.first_ns or None,
            )
            span.end()
        except Exception:
            logger.debug("Podium: could not end the OpenAI stream span", exc_info=True)


class TracedStream:
    """Wraps ``openai.Stream``: yields the same chunks; ends the span when the stream is
    exhausted, closed or fails. Other attributes (``response``, ...) pass through."""

    def __init__(self, stream: Any, span: Span) -> None:
        self._stream = stream
        self._span = span
        self._acc = _Accumulator()
        self._iterator = self._iterate()

    def _iterate(self) -> Generator[Any, None, None]:
        try:
            for chunk in self._stream:
                self._acc.add(chunk)
                yield chunk
        except GeneratorExit:
            self._acc.finish(self._span, None)
            raise
        except BaseException as exc:
            self._acc.finish(self._span, exc)
            raise
        self._acc.finish(self._span, None)

    def __iter__(self) -> Iterator[Any]:
        return self._iterator

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> TracedStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._iterator.close()
            self._acc.finish(self._span, None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class TracedAsyncStream:
    """The async twin of :class:`TracedStream` (wraps ``openai.AsyncStream``)."""

    def __init__(self, stream: Any, span: Span) -> None:
        self._stream = stream
        self._span = span
        self._acc = _Accumulator()
        self._iterator = self._iterate()

    async def _iterate(self) -> AsyncGenerator[Any, None]:
        try:
            async for chunk in self._stream:
                self._acc.add(chunk)
                yield chunk
        except GeneratorExit:
            self._acc.finish(self._span, None)
            raise
        except BaseException as exc:
            self._acc.finish(self._span, exc)
            raise
        self._acc.finish(self._span, None)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> TracedAsyncStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            await self._iterator.aclose()
            self._acc.finish(self._span, None)

    async def aclose(self) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _traced_sync(endpoint: str, kind: str, create: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    span = _start(endpoint, kind, kwargs)
    if span is None:
        return create(*args, **kwargs)
    try:
        result = create(*args, **kwargs)
    except BaseException as exc:
        _fail(span, exc)
        raise
    if isinstance(result, openai.Stream):
        return TracedStream(result, span)
    _record(span, endpoint, result)
    return result


async def _traced_async(
    endpoint: str, kind: str, create: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    span = _start(endpoint, kind, kwargs)
    if span is None:
        return await create(*args, **kwargs)
    try:
        result = await create(*args, **kwargs)
    except BaseException as exc:
        _fail(span, exc)
        raise
    if isinstance(result, openai.AsyncStream):
        return TracedAsyncStream(result, span)
    _record(span, endpoint, result)
    return result


# --- resources ------------------------------------------------------------------------------


class _ChatCompletions(ChatCompletions):
    def create(self, *args: Any, **kwargs: Any) -> Any:
        return _traced_sync("chat.completions", "generation", super().create, args, kwargs)


class _AsyncChatCompletions(AsyncChatCompletions):
    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return await _traced_async("chat.completions", "generation", super().create, args, kwargs)


class _Chat(Chat):
    @functools.cached_property
    def completions(self) -> ChatCompletions:
        return _ChatCompletions(self._client)


class _AsyncChat(AsyncChat):
    @functools.cached_property
    def completions(self) -> AsyncChatCompletions:
        return _AsyncChatCompletions(self._client)


class _Completions(Completions):
    def create(self, *args: Any, **kwargs: Any) -> Any:
        return _traced_sync("completions", "generation", super().create, args, kwargs)


class _AsyncCompletions(AsyncCompletions):
    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return await _traced_async("completions", "generation", super().create, args, kwargs)


class _Embeddings(Embeddings):
    def create(self, *args: Any, **kwargs: Any) -> Any:
        return _traced_sync("embeddings", "embedding", super().create, args, kwargs)


class _AsyncEmbeddings(AsyncEmbeddings):
    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return await _traced_async("embeddings", "embedding", super().create, args, kwargs)


class OpenAI(openai.OpenAI):
    """``openai.OpenAI`` whose chat, completions and embeddings calls are traced."""

    @functools.cached_property
    def chat(self) -> Chat:
        return _Chat(self)

    @functools.cached_property
    def completions(self) -> Completions:
        return _Completions(self)

    @functools.cached_property
    def embeddings(self) -> Embeddings:
        return _Embeddings(self)


class AsyncOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` whose chat, completions and embeddings calls are traced."""

    @functools.cached_property
    def chat(self) -> AsyncChat:
        return _AsyncChat(self)

    @functools.cached_property
    def completions(self) -> AsyncCompletions:
        return _AsyncCompletions(self)

    @functools.cached_property
    def embeddings(self) -> AsyncEmbeddings:
        return _AsyncEmbeddings(self)
