"""Google's Gemini (Generative Language REST API) behind the OpenAI wire format.

``POST {api_base or https://generativelanguage.googleapis.com}/v1beta/models/{model}:generateContent``
(``:streamGenerateContent?alt=sse`` for streams, ``:batchEmbedContents`` for embeddings),
the key in the ``x-goog-api-key`` header; an ``api_base`` that already ends in ``/v1``,
``/v1beta`` or ``/v1alpha`` is used as is.

Request (OpenAI chat → ``GenerateContentRequest``):

* ``system``/``developer`` messages → ``systemInstruction``; ``user`` → role ``user``,
  ``assistant`` → role ``model``; consecutive turns of one role are merged;
* content: text, ``image_url`` (``data:`` URLs → ``inlineData``; other URLs → ``fileData``
  with a MIME type guessed from the extension), ``input_audio`` → ``inlineData``,
  ``file`` parts with ``file_data`` → ``inlineData``;
* assistant ``tool_calls`` → ``functionCall`` parts; ``role: tool`` → ``functionResponse``
  parts (the function name is looked up from the earlier tool call; a JSON-object result
  is sent as is, anything else as ``{"result": ...}``);
* ``temperature``, ``top_p`` → ``topP``, ``max_completion_tokens``/``max_tokens`` →
  ``maxOutputTokens``, ``stop`` → ``stopSequences``, ``n`` → ``candidateCount``, ``seed``,
  ``presence_penalty``, ``frequency_penalty``, ``top_k`` → ``topK``;
  ``response_format`` json_object → ``responseMimeType: application/json``, json_schema →
  that plus ``responseJsonSchema``;
* tools: function tools → ``functionDeclarations`` (the JSON Schema goes in
  ``parametersJsonSchema``, so ``additionalProperties`` and friends are accepted); a tool
  dict that is not an OpenAI function tool (``{"googleSearch": {}}``, ``codeExecution``) is
  passed through; ``tool_choice`` auto/none/required/named → ``functionCallingConfig``
  mode AUTO/NONE/ANY/ANY + ``allowedFunctionNames``;
* Gemini's own ``safetySettings``, ``cachedContent`` and ``thinkingConfig`` (or their
  snake_case spellings) pass through.

Tool-call ids: Gemini has none, so the provider makes ``call_<hex>`` ids; when Gemini
attaches a ``thoughtSignature`` to a function call (Gemini 2.5+/3, needed on the next
turn) it is carried inside the id (``call_<hex>__ts__<signature>``) and put back on the
``functionCall`` part when the conversation comes back.

Dropped: ``logprobs``, ``logit_bias``, ``parallel_tool_calls``, ``reasoning_effort``,
``service_tier``, ``user`` and other OpenAI-only fields. Refused with a 400: audio URLs,
tool messages whose call cannot be found, arguments that are not JSON.

Answer: candidates → choices (``thought`` parts → ``reasoning_content``), ``functionCall``
parts → ``tool_calls``; ``STOP`` → ``stop`` (``tool_calls`` when the model called a
function), ``MAX_TOKENS`` → ``length``, safety/recitation/blocklist reasons →
``content_filter``; a prompt blocked before any candidate → one empty choice with
``content_filter``. Usage: ``promptTokenCount`` (+ tool-use prompt) → ``prompt_tokens``,
``candidatesTokenCount + thoughtsTokenCount`` → ``completion_tokens``,
``cachedContentTokenCount`` → ``prompt_tokens_details.cached_tokens``,
``thoughtsTokenCount`` → ``completion_tokens_details.reasoning_tokens``.
Streams: each event becomes one chunk; a stream is complete once a candidate carried a
``finishReason`` (or the prompt was blocked), otherwise the iterator raises
``UpstreamError("stream ended before completion")``; a final usage chunk (``choices: []``)
follows. Embeddings: strings only (not token ids), ``dimensions`` → ``outputDimensionality``,
``encoding_format: base64`` honoured; Gemini reports no token counts for embeddings, so
their usage is 0. ``/v1/completions`` is served through ``generateContent`` with the prompt
as one user message.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import sys
import time
import uuid
from array import array
from collections.abc import AsyncIterator
from typing import Any

from podium.errors import UpstreamError
from podium.gateway.wire import (
    ChatChoice,
    ChatChunk,
    ChatCompletion,
    ChatMessage,
    ChunkChoice,
    ChunkDelta,
    EmbeddingItem,
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
    error_from_payload,
    iter_sse,
    stream_ended,
)

__all__ = ["GeminiProvider"]

TS_SEP = "__ts__"

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}

_PASSTHROUGH = {
    "safetySettings": "safetySettings",
    "safety_settings": "safetySettings",
    "cachedContent": "cachedContent",
    "cached_content": "cachedContent",
}


class GeminiProvider(HttpProvider):
    """``GeminiProvider(*, client=None, transport=None)``."""

    name = "gemini"
    default_base = "https://generativelanguage.googleapis.com"

    def headers(self, dep: Deployment) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if dep.api_key:
            h["x-goog-api-key"] = dep.api_key
        if dep.headers:
            h.update(dep.headers)
        return h

    def url(self, dep: Deployment, method: str) -> str:
        base = self.base(dep)
        if not base.endswith(("/v1", "/v1beta", "/v1alpha")):
            base += "/v1beta"
        model = dep.model if dep.model.startswith(("models/", "tunedModels/")) else "models/" + dep.model
        return f"{base}/{model}:{method}"

    # --- chat ---------------------------------------------------------------------------

    async def chat(self, dep: Deployment, body: dict[str, Any]) -> ChatCompletion:
        payload = to_generate_request(body)
        data = await self.post_json(dep, self.url(dep, "generateContent"), payload)
        if not isinstance(data, dict):
            raise UpstreamError("Gemini answered something other than a JSON object", upstream_status=200)
        return to_chat_completion(data, model=dep.model)

    def chat_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]:
        return self._stream(dep, body)

    async def _stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[ChatChunk]:
        payload = to_generate_request(body)
        resp = await self.open_stream(dep, self.url(dep, "streamGenerateContent?alt=sse"), payload)
        try:
            tr = StreamTranslator(model=dep.model)
            async for _event, data in iter_sse(resp, provider_name=self.name, timeout=dep.timeout):
                try:
                    obj = json.loads(data)
                except ValueError:
                    raise stream_ended(self.name, f"invalid JSON in event: {data[:200]!r}")
                if not isinstance(obj, dict):
                    continue
                if "error" in obj:
                    err = obj["error"]
                    status = err.get("code") if isinstance(err, dict) else None
                    raise error_from_payload(
                        obj, self.name, status=status if isinstance(status, int) else None
                    )
                chunk = tr.feed(obj)
                if chunk is not None:
                    yield chunk
            if not tr.finished:
                raise stream_ended(self.name, "the upstream closed the stream before a finishReason")
            yield tr.usage_chunk()
        finally:
            await resp.aclose()

    # --- legacy completions -------------------------------------------------------------

    async def completion(self, dep: Deployment, body: dict[str, Any]) -> TextCompletion:
        return chat_as_completion(await self.chat(dep, completion_as_chat(body, self.name)))

    def completion_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[TextCompletion]:
        return chat_chunks_as_completion(self._stream(dep, completion_as_chat(body, self.name)))

    # --- embeddings ---------------------------------------------------------------------

    async def embeddings(self, dep: Deployment, body: dict[str, Any]) -> EmbeddingList:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            raise bad_request(
                "Gemini embeddings take a string or a list of strings as input (not token ids)",
                param="input",
                provider_name=self.name,
            )
        model = dep.model if dep.model.startswith("models/") else "models/" + dep.model
        template: dict[str, Any] = {"model": model}
        if body.get("dimensions"):
            template["outputDimensionality"] = body["dimensions"]
        task = body.get("task_type") or body.get("taskType")
        if task:
            template["taskType"] = task
        requests = [{**template, "content": {"parts": [{"text": t}]}} for t in inputs]
        data = await self.post_json(dep, self.url(dep, "batchEmbedContents"), {"requests": requests})
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(inputs):
            raise UpstreamError(
                f"Gemini answered {len(vectors) if isinstance(vectors, list) else 'no'} embeddings "
                f"for {len(inputs)} inputs",
                upstream_status=200,
            )
        as_b64 = body.get("encoding_format") == "base64"
        out: list[EmbeddingItem] = []
        for i, v in enumerate(vectors):
            values = v.get("values") or []
            out.append({"object": "embedding", "index": i, "embedding": _b64(values) if as_b64 else values})
        return {
            "object": "list",
            "data": out,
            "model": dep.model,
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }


def _b64(values: list[float]) -> str:
    a = array("f", values)
    if sys.byteorder != "little":
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode()


# --- request translation --------------------------------------------------------------------


def _mime(url: str, default: str) -> str:
    guess = mimetypes.guess_type(url.split("?", 1)[0])[0]
    return guess or default


def _data_url(url: str) -> tuple[str, str] | None:
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{where}: content must be a string or a list of parts", param=where)
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        if isinstance(part, str):
            if part:
                out.append({"text": part})
            continue
        if not isinstance(part, dict):
            raise bad_request(f"{here}: a content part must be an object", param=here)
        kind = part.get("type")
        if kind in ("text", "refusal"):
            text = part.get("text") or part.get("refusal") or ""
            if text:
                out.append({"text": text})
        elif kind == "image_url":
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str) or not url:
                raise bad_request(f"{here}: image_url.url is missing", param=here)
            parsed = _data_url(url)
            if parsed:
                out.append({"inlineData": {"mimeType": parsed[0], "data": parsed[1]}})
            else:
                out.append({"fileData": {"mimeType": _mime(url, "image/jpeg"), "fileUri": url}})
        elif kind == "input_audio":
            spec = part.get("input_audio") or {}
            fmt = spec.get("format") or "wav"
            out.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": spec.get("data") or ""}})
        elif kind == "file":
            spec = part.get("file") or {}
            parsed = _data_url(str(spec.get("file_data") or ""))
            if not parsed:
                raise bad_request(
                    f"{here}: Gemini deployments take files as base64 data URLs (file_data)", param=here
                )
            out.append({"inlineData": {"mimeType": parsed[0], "data": parsed[1]}})
        else:
            raise bad_request(f"{here}: Gemini does not accept {kind!r} content parts", param=here)
    return out


def _function_call(call: Any, where: str) -> tuple[dict[str, Any], str, str]:
    """A ``functionCall`` part from an OpenAI tool call, with the call's id and name."""
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
    part: dict[str, Any] = {"functionCall": {"name": fn["name"], "args": args}}
    call_id = str(call.get("id") or "")
    if TS_SEP in call_id:
        part["thoughtSignature"] = call_id.split(TS_SEP, 1)[1]
    return part, call_id, fn["name"]


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _tool(tool: Any) -> dict[str, Any] | None:
    """A function declaration, or None for a Gemini-native tool dict (passed through apart)."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return None
    fn = tool.get("function") or {}
    decl: dict[str, Any] = {"name": fn.get("name"), "description": fn.get("description") or ""}
    params = fn.get("parameters")
    if params and (params.get("properties") or params.get("type") != "object"):
        decl["parametersJsonSchema"] = params
    return decl


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise bad_request(f"tool_choice {choice!r} is not supported", param="tool_choice")


def to_generate_request(body: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAI chat request into a Gemini ``GenerateContentRequest`` (see the module doc)."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty list", param="messages")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{where} must be an object", param=where)
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            system.extend(_parts(content, f"{where}.content"))
        elif role == "user":
            _append(contents, "user", _parts(content, f"{where}.content"))
        elif role == "assistant":
            parts = _parts(content, f"{where}.content")
            for k, call in enumerate(m.get("tool_calls") or []):
                part, call_id, name = _function_call(call, f"{where}.tool_calls[{k}]")
                names[call_id] = name
                parts.append(part)
            _append(contents, "model", parts)
        elif role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            name = names.get(call_id) or m.get("name") or ""
            if not name:
                raise bad_request(
                    f"{where}: no earlier assistant tool call has id {call_id!r}; Gemini needs the "
                    "function's name for a tool result",
                    param=f"{where}.tool_call_id",
                )
            text = (
                content
                if isinstance(content, str)
                else "".join(p.get("text", "") for p in _parts(content, f"{where}.content"))
            )
            try:
                value = json.loads(text)
            except ValueError:
                value = text
            response = value if isinstance(value, dict) else {"result": value}
            _append(contents, "user", [{"functionResponse": {"name": name, "response": response}}])
        else:
            raise bad_request(f"{where}: role {role!r} is not supported", param=f"{where}.role")
    if not contents:
        raise bad_request(
            "messages needs at least one user message besides system messages", param="messages"
        )

    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}

    gen: dict[str, Any] = {}
    if body.get("temperature") is not None:
        gen["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        gen["topP"] = body["top_p"]
    if body.get("top_k") is not None:
        gen["topK"] = body["top_k"]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        gen["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        gen["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (body.get("n") or 1) > 1:
        gen["candidateCount"] = body["n"]
    for src, dst in (
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(src) is not None:
            gen[dst] = body[src]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        gen["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt["type"] == "json_schema" else None
        if schema is not None:
            gen["responseJsonSchema"] = schema
    thinking = body.get("thinkingConfig") or body.get("thinking_config")
    if thinking is not None:
        gen["thinkingConfig"] = thinking
    if gen:
        out["generationConfig"] = gen

    tools = body.get("tools")
    if tools:
        decls = []
        native = []
        for t in tools:
            d = _tool(t)
            if d is None:
                native.append(t)
            else:
                decls.append(d)
        out["tools"] = ([{"functionDeclarations": decls}] if decls else []) + native
    cfg = _tool_config(body.get("tool_choice"))
    if cfg is not None and tools:
        out["toolConfig"] = cfg
    for src, dst in _PASSTHROUGH.items():
        if body.get(src) is not None:
            out[dst] = body[src]
    return out


# --- answer translation ---------------------------------------------------------------------


def to_usage(m: dict[str, Any] | None) -> Usage:
    m = m or {}
    prompt = (m.get("promptTokenCount") or 0) + (m.get("toolUsePromptTokenCount") or 0)
    thoughts = m.get("thoughtsTokenCount") or 0
    completion = (m.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": m.get("cachedContentTokenCount") or 0},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _new_call_id(signature: Any = None) -> str:
    cid = "call_" + uuid.uuid4().hex[:24]
    if isinstance(signature, str) and signature:
        cid += TS_SEP + signature
    return cid


def _tool_call(part: dict[str, Any], index: int | None = None) -> ToolCall:
    fc = part.get("functionCall") or {}
    call: ToolCall = {
        "id": _new_call_id(part.get("thoughtSignature")),
        "type": "function",
        "function": {"name": fc.get("name"), "arguments": json.dumps(fc.get("args") or {})},
    }
    if index is not None:
        call = {"index": index, **call}
    return call


def _finish(reason: str | None, called: bool) -> str:
    fr = FINISH_REASONS.get(reason or "", "stop")
    return "tool_calls" if called and fr == "stop" else fr


def to_chat_completion(data: dict[str, Any], *, model: str) -> ChatCompletion:
    """A Gemini ``GenerateContentResponse`` → an OpenAI ``chat.completion``."""
    choices: list[ChatChoice] = []
    for i, cand in enumerate(data.get("candidates") or []):
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for part in (cand.get("content") or {}).get("parts") or []:
            if "text" in part:
                (reasoning if part.get("thought") else text).append(part["text"] or "")
            elif "functionCall" in part:
                calls.append(_tool_call(part))
        message: ChatMessage = {
            "role": "assistant",
            "content": "".join(text) if text or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        choices.append(
            {
                "index": cand.get("index", i),
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(cand.get("finishReason"), bool(calls)),
            }
        )
    if not choices:  # the prompt itself was blocked
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter" if blocked else "stop",
            }
        )
    return {
        "id": data.get("responseId") or "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("modelVersion") or model,
        "choices": choices,
        "usage": to_usage(data.get("usageMetadata")),
    }


class StreamTranslator:
    """Gemini stream events (whole ``GenerateContentResponse`` objects) → chunk dicts."""

    def __init__(self, *, model: str) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.model = model
        self.created = int(time.time())
        self.usage: dict[str, Any] | None = None
        self.started: set[int] = set()
        self.calls: dict[int, int] = {}  # candidate index → tool calls so far
        self.finished = False

    def feed(self, obj: dict[str, Any]) -> ChatChunk | None:
        if obj.get("responseId") and not self.started:
            self.id = obj["responseId"]
        if obj.get("modelVersion"):
            self.model = obj["modelVersion"]
        if obj.get("usageMetadata"):
            self.usage = obj["usageMetadata"]
        choices: list[ChunkChoice] = []
        for i, cand in enumerate(obj.get("candidates") or []):
            idx = cand.get("index", i)
            delta: ChunkDelta = {}
            if idx not in self.started:
                self.started.add(idx)
                delta["role"] = "assistant"
            text: list[str] = []
            reasoning: list[str] = []
            calls = []
            for part in (cand.get("content") or {}).get("parts") or []:
                if "text" in part:
                    (reasoning if part.get("thought") else text).append(part["text"] or "")
                elif "functionCall" in part:
                    n = self.calls.get(idx, 0)
                    calls.append(_tool_call(part, n))
                    self.calls[idx] = n + 1
            if text:
                delta["content"] = "".join(text)
            if reasoning:
                delta["reasoning_content"] = "".join(reasoning)
            if calls:
                delta["tool_calls"] = calls
            reason = cand.get("finishReason")
            finish = None
            if reason:
                self.finished = True
                finish = _finish(reason, idx in self.calls)
            choices.append({"index": idx, "delta": delta, "logprobs": None, "finish_reason": finish})
        if not choices:
            if (obj.get("promptFeedback") or {}).get("blockReason"):
                self.finished = True
                return self._chunk(
                    [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": "content_filter",
                        }
                    ]
                )
            return None
        return self._chunk(choices)

    def _chunk(self, choices: list[ChunkChoice]) -> ChatChunk:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def usage_chunk(self) -> ChatChunk:
        chunk = self._chunk([])
        chunk["usage"] = to_usage(self.usage)
        return chunk
