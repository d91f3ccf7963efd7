"""Anthropic's Messages API behind the OpenAI wire format.

``POST {api_base or https://api.anthropic.com}/v1/messages`` (an ``api_base`` that already
ends in ``/v1`` is used as is) with ``x-api-key`` and ``anthropic-version: 2023-06-01``,
plus the deployment's extra ``headers`` (e.g. ``anthropic-beta``).

Request (OpenAI chat → Messages):

* ``system`` and ``developer`` messages, wherever they are, → top-level ``system`` blocks;
  consecutive messages of one role are merged into one turn (Anthropic alternates turns);
* user content: text parts, ``image_url`` (``data:`` URLs → base64 image blocks, http(s)
  URLs → URL image blocks), ``file`` parts with a base64 PDF → document blocks;
  ``cache_control`` on a part is kept (prompt caching);
* assistant ``tool_calls`` → ``tool_use`` blocks; ``role: tool`` messages → ``tool_result``
  blocks in a user turn; a final assistant message is a prefill (trailing whitespace trimmed,
  as Anthropic requires);
* ``max_completion_tokens`` / ``max_tokens`` → ``max_tokens`` (required by Anthropic; the
  provider's ``default_max_tokens``, 4096, when absent); ``temperature`` (clamped to
  Anthropic's 0..1), ``top_p``, ``stop`` → ``stop_sequences``, ``user`` →
  ``metadata.user_id``; Anthropic's own ``top_k``, ``thinking`` and ``metadata`` pass through;
* ``tools`` (function tools → ``name``/``description``/``input_schema``; other tool dicts
  such as Anthropic server tools pass through), ``tool_choice`` (auto/none/required →
  auto/none/any, a named function → ``tool``), ``parallel_tool_calls: false`` →
  ``disable_parallel_tool_use``;
* ``response_format`` json_object / json_schema: best effort, an instruction appended to
  ``system`` (with the schema). The answer is not validated.

Refused with a 400 (``UpstreamError``, not retryable): ``n > 1``, audio parts, non-PDF files,
tool-call arguments that are not JSON. Dropped silently: ``logprobs``, ``top_logprobs``,
``logit_bias``, ``presence_penalty``, ``frequency_penalty``, ``seed``, ``service_tier`` and
other OpenAI-only fields.

Answer (Messages → ``chat.completion``): text blocks → ``content``, ``tool_use`` →
``tool_calls`` (arguments as a JSON string), thinking → ``reasoning_content``;
``end_turn``/``stop_sequence``/``pause_turn`` → ``stop``, ``max_tokens`` → ``length``,
``tool_use`` → ``tool_calls``, ``refusal`` → ``content_filter``. Usage: ``prompt_tokens`` is
``input_tokens`` plus the cache reads and writes (Anthropic counts them apart),
``prompt_tokens_details.cached_tokens`` the cache reads, ``.cache_creation_tokens`` the
writes. Streams are translated event by event (text, tool-call and thinking deltas, the
finish reason from ``message_delta``) and end with a usage chunk (``choices: []``) on
``message_stop``; an ``error`` event or an end without ``message_stop`` raises.

``/v1/completions`` is served through Messages (the prompt as one user message; see
:func:`podium.gateway.providers.http.completion_as_chat`). ``/v1/embeddings`` is refused:
Anthropic has no embeddings endpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from podium.errors import UpstreamError
from podium.gateway.wire import (
    ChatChunk,
    ChatCompletion,
    ChatMessage,
    ChunkDelta,
    EmbeddingList,
    TextCompletion,
    ToolCall,
    Usage,
)

from .base import Deployment
from .http import (
    HttpProvider,
    bad_request,
    chat_as_completion,
    chat_chunks_as_completion,
    completion_as_chat,
    iter_sse,
    stream_ended,
)

__all__ = ["AnthropicProvider"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's error types → the HTTP status they come with (for errors inside a stream).
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_JSON_OBJECT_HINT = "Respond with a single valid JSON object and nothing else: no prose, no code fences."


class AnthropicProvider(HttpProvider):
    """``AnthropicProvider(*, client=None, transport=None, default_max_tokens=4096)``."""

    name = "anthropic"
    default_base = "https://api.anthropic.com"

    def __init__(self, *, default_max_tokens: int = DEFAULT_MAX_TOKENS, **kw: Any) -> None:
        super().__init__(**kw)
        self.default_max_tokens = default_max_tokens

    def headers(self, dep: Deployment) -> dict[str, str]:
        h = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if dep.api_key:
            h["x-api-key"] = dep.api_key
        if dep.headers:
            h.update(dep.headers)
        return h

    def url(self, dep: Deployment) -> str:
        base = self.base(dep)
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    # --- chat ---------------------------------------------------------------------------

    async def chat(self, dep: Deployment, body: dict[str, Any]) -> ChatCompletion:
        payload = to_messages_request(body, default_max_tokens=self.default_max_tokens)
        data = await self.post_json(dep, self.url(dep), payload)
        if not isinstance(data, dict) or data.get("type") == "error":
            raise _error_event(data)
        return to_chat_completion(data, model=dep.model)

    def chat_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]:
        return self._stream(dep, body)

    async def _stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]:
        payload = to_messages_request(body, default_max_tokens=self.default_max_tokens)
        payload["stream"] = True
        resp = await self.open_stream(dep, self.url(dep), payload)
        try:
            translator = StreamTranslator(model=dep.model)
            async for event, data in iter_sse(resp, provider_name=self.name, timeout=dep.timeout):
                if event == "ping":
                    continue
                try:
                    obj = json.loads(data)
                except ValueError:
                    raise stream_ended(self.name, f"invalid JSON in {event!r} event: {data[:200]!r}")
                for chunk in translator.feed(obj if isinstance(obj, dict) else {}, event):
                    yield chunk
                if translator.done:
                    return
            raise stream_ended(self.name, "the upstream closed the stream without message_stop")
        finally:
            await resp.aclose()

    # --- legacy completions / embeddings ------------------------------------------------

    async def completion(self, dep: Deployment, body: dict[str, Any]) -> TextCompletion:
        return chat_as_completion(await self.chat(dep, completion_as_chat(body, self.name)))

    def completion_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[TextCompletion]:
        return chat_chunks_as_completion(self._stream(dep, completion_as_chat(body, self.name)))

    async def embeddings(self, dep: Deployment, body: dict[str, Any]) -> EmbeddingList:
        raise bad_request(
            f"Anthropic has no embeddings endpoint (deployment {dep.id}): route embeddings to an "
            "OpenAI-compatible, Gemini or local deployment",
            param="model",
            provider_name=self.name,
        )


# --- request translation --------------------------------------------------------------------


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Text blocks from a string or a list of text parts (system, tool and assistant content)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{where}: content must be a string or a list of parts", param=where)
    out = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            block: dict[str, Any] = {"type": "text", "text": part}
        elif isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            block = {"type": "text", "text": part.get("text") or part.get("refusal") or ""}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise bad_request(
                f"{where}[{j}]: Anthropic accepts only text here, not {kind!r}", param=f"{where}[{j}]"
            )
        if block["text"]:
            out.append(block)
    return out


def _data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` from a ``data:<type>;base64,<data>`` URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return _text_parts(content, where)
    if not isinstance(content, list):
        raise bad_request(f"{where}: content must be a string or a list of parts", param=where)
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        here = f"{where}[{j}]"
        block: dict[str, Any]
        if isinstance(part, str) or kind in ("text", "refusal"):
            out.extend(_text_parts([part], where))
            continue
        if not isinstance(part, dict):
            raise bad_request(f"{here}: a content part must be an object", param=here)
        if kind == "image_url":
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str):
                raise bad_request(f"{here}: image_url.url is missing", param=here)
            parsed = _data_url(url)
            if parsed:
                block = {
                    "type": "image",
                    "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]},
                }
            elif url.startswith(("http://", "https://")):
                block = {"type": "image", "source": {"type": "url", "url": url}}
            else:
                raise bad_request(
                    f"{here}: image_url must be a base64 data: URL or an http(s) URL", param=here
                )
        elif kind == "file":
            spec = part.get("file") or {}
            parsed = _data_url(str(spec.get("file_data") or ""))
            if not parsed or parsed[0] != "application/pdf":
                raise bad_request(
                    f"{here}: Anthropic deployments take files only as base64 PDF data URLs (file_data)",
                    param=here,
                )
            block = {
                "type": "document",
                "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]},
            }
        else:
            raise bad_request(f"{here}: Anthropic does not accept {kind!r} content parts", param=here)
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        out.append(block)
    return out


def _tool_use(call: Any, where: str, fallback_id: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not fn.get("name"):
        raise bad_request(f"{where}: a tool call needs function.name", param=where)
    raw = fn.get("arguments")
    if isinstance(raw, dict):
        args = raw
    else:
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            raise bad_request(f"{where}: function.arguments is not valid JSON", param=where)
        if not isinstance(args, dict):
            raise bad_request(f"{where}: function.arguments must be a JSON object", param=where)
    return {"type": "tool_use", "id": call.get("id") or fallback_id, "name": fn["name"], "input": args}


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool(tool: Any) -> Any:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool  # an Anthropic-native tool (server tools, computer use): passed through
    fn = tool.get("function") or {}
    out: dict[str, Any] = {
        "name": fn.get("name"),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") == "function" and name:
            return {"type": "tool", "name": name}
        if choice.get("type") in ("auto", "any", "tool", "none"):
            return dict(choice)  # already Anthropic's shape
    raise bad_request(f"tool_choice {choice!r} is not supported", param="tool_choice")


def to_messages_request(
    body: dict[str, Any], *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """Translate an OpenAI chat request into an Anthropic Messages request (see the module doc)."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty list", param="messages")
    if (body.get("n") or 1) > 1:
        raise bad_request("Anthropic returns one choice per request: n must be 1", param="n")
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{where} must be an object", param=where)
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.extend(_text_parts(content, f"{where}.content"))
        elif role == "user":
            _append(messages, "user", _user_blocks(content, f"{where}.content"))
        elif role == "assistant":
            blocks = _text_parts(content, f"{where}.content")
            for k, call in enumerate(m.get("tool_calls") or []):
                blocks.append(_tool_use(call, f"{where}.tool_calls[{k}]", f"toolu_podium_{i}_{k}"))
            _append(messages, "assistant", blocks)
        elif role == "tool":
            if not m.get("tool_call_id"):
                raise bad_request(f"{where}: a tool message needs tool_call_id", param=where)
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m["tool_call_id"],
                "content": content if isinstance(content, str) else _text_parts(content, f"{where}.content"),
            }
            _append(messages, "user", [result])
        else:
            raise bad_request(f"{where}: role {role!r} is not supported", param=f"{where}.role")
    if not messages:
        raise bad_request(
            "messages needs at least one user message besides system messages", param="messages"
        )
    last = messages[-1]
    if last["role"] == "assistant" and last["content"][-1].get("type") == "text":
        # A prefill: Anthropic refuses a final assistant turn that ends with whitespace.
        last["content"][-1]["text"] = last["content"][-1]["text"].rstrip()
        if not last["content"][-1]["text"]:
            last["content"].pop()
            if not last["content"]:
                messages.pop()

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages, "max_tokens": max_tokens}

    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        hint = _JSON_OBJECT_HINT
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt["type"] == "json_schema" else None
        if schema is not None:
            hint += " It must match this JSON schema:\n" + json.dumps(schema)
        system.append({"type": "text", "text": hint})
    if system:
        out["system"] = system

    temperature = body.get("temperature")
    if temperature is not None:
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for key in ("top_k", "thinking", "metadata"):
        if body.get(key) is not None:
            out[key] = body[key]
    if isinstance(body.get("user"), str) and body["user"]:
        out.setdefault("metadata", {})
        out["metadata"] = {**out["metadata"], "user_id": body["user"]}

    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t) for t in tools]
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None and (tools or choice["type"] == "none"):
        out["tool_choice"] = choice
    return out


# --- answer translation ---------------------------------------------------------------------


def to_usage(u: dict[str, Any] | None) -> Usage:
    """Anthropic usage → OpenAI usage (cache reads and writes counted into the prompt)."""
    u = u or {}
    read = u.get("cache_read_input_tokens") or 0
    write = u.get("cache_creation_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + read + write
    completion = u.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_creation_tokens": write},
    }


def to_chat_completion(msg: dict[str, Any], *, model: str) -> ChatCompletion:
    """An Anthropic ``message`` → an OpenAI ``chat.completion``."""
    text: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    for block in msg.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
    message: ChatMessage = {
        "role": "assistant",
        "content": "".join(text) if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return {
        "id": msg.get("id") or f"msg_{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(msg.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": to_usage(msg.get("usage")),
    }


def _error_event(obj: Any) -> UpstreamError:
    err = obj.get("error") if isinstance(obj, dict) else None
    err = err if isinstance(err, dict) else {}
    etype = str(err.get("type") or "api_error")
    status = _ERROR_STATUS.get(etype, 500)
    return UpstreamError(
        str(err.get("message") or f"Anthropic reported {etype}"),
        upstream_status=status,
        retryable=status in (408, 429) or status >= 500,
        error_type=etype,
        details=[{"provider": "anthropic", "upstream_status": status}],
    )


class StreamTranslator:
    """Anthropic stream events → ``chat.completion.chunk`` dicts, one event at a time."""

    def __init__(self, *, model: str) -> None:
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index → tool_calls index
        self.done = False

    def _chunk(self, delta: ChunkDelta, finish: str | None = None) -> ChatChunk:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def feed(self, obj: dict[str, Any], event: str = "") -> list[ChatChunk]:
        kind = obj.get("type") or event
        if kind == "content_block_delta":
            delta = obj.get("delta") or {}
            dk = delta.get("type")
            if dk == "text_delta":
                return [self._chunk({"content": delta.get("text") or ""})]
            if dk == "input_json_delta":
                part = delta.get("partial_json") or ""
                ti = self.tools.get(obj.get("index", -1))
                if not part or ti is None:
                    return []
                return [self._chunk({"tool_calls": [{"index": ti, "function": {"arguments": part}}]})]
            if dk == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking") or ""})]
            return []  # signature_delta, citations_delta
        if kind == "message_start":
            msg = obj.get("message") or {}
            self.id = msg.get("id") or self.id
            self.model = msg.get("model") or self.model
            self.usage.update({k: v for k, v in (msg.get("usage") or {}).items() if v is not None})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") == "tool_use":
                ti = self.tools[obj.get("index", len(self.tools))] = len(self.tools)
                call: ToolCall = {
                    "index": ti,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (obj.get("usage") or {}).items() if v is not None})
            reason = (obj.get("delta") or {}).get("stop_reason")
            if reason:
                return [self._chunk({}, FINISH_REASONS.get(reason, "stop"))]
            return []
        if kind == "message_stop":
            self.done = True
            return [
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": to_usage(self.usage),
                }
            ]
        if kind == "error":
            raise _error_event(obj)
        return []  # ping, content_block_stop, unknown future events
