"""OpenAI's wire format: request checks, error bodies, and stream <-> response conversion.

Checks are hand-written (not pydantic models of the whole request) because the gateway
passes unknown fields through to the upstream untouched and must stay cheap per request.
Each check raises :class:`podium.errors.ValidationFailed` whose first detail names the
field, which the route turns into OpenAI's ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any, TypedDict

from podium.errors import BadRequest, PodiumError, UpstreamError, ValidationFailed

__all__ = [
    "MAX_JSON_DEPTH",
    "ChatChoice",
    "ChatChunk",
    "ChatCompletion",
    "ChatMessage",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionChoice",
    "CompletionChunk",
    "EmbeddingItem",
    "EmbeddingList",
    "PodiumOptions",
    "TextCompletion",
    "ToolCall",
    "Usage",
    "check_chat",
    "check_completion",
    "check_embeddings",
    "chunks_from_response",
    "client_chunk",
    "embedding_dimensions",
    "error_body",
    "http_status",
    "parse_body",
    "podium_options",
    "response_from_chunks",
    "wants_usage",
]


# --- the shapes the gateway reads and writes ---------------------------------------------
# TypedDicts (plain dicts at run time: free on the hot path) for OpenAI's answer bodies as
# providers return them and the gateway logs, caches and streams them. ``total=False``:
# upstreams omit fields, and every reader uses ``.get``. Request bodies stay
# ``dict[str, Any]``: unknown fields pass through to the upstream untouched.


class PromptTokensDetails(TypedDict, total=False):
    cached_tokens: int  # cache reads
    cache_creation_tokens: int  # cache writes (Anthropic's cache_creation_input_tokens)
    audio_tokens: int


class CompletionTokensDetails(TypedDict, total=False):
    reasoning_tokens: int
    audio_tokens: int
    accepted_prediction_tokens: int
    rejected_prediction_tokens: int


class Usage(TypedDict, total=False):
    """``usage`` of a chat/completion answer or the last stream chunk (embeddings: no completion)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


class ToolCallFunction(TypedDict, total=False):
    name: str | None  # as the upstream sent it
    arguments: str  # JSON text


class ToolCall(TypedDict, total=False):
    id: str | None
    type: str  # "function"
    function: ToolCallFunction
    index: int  # stream deltas only


class ChatMessage(TypedDict, total=False):
    """An answer's ``message`` (request messages may also carry a list of content parts)."""

    role: str
    content: str | None
    name: str
    tool_calls: list[ToolCall]
    tool_call_id: str
    refusal: str | None
    reasoning_content: str  # Anthropic's thinking, as DeepSeek and vLLM name it


class ChatChoice(TypedDict, total=False):
    index: int
    message: ChatMessage
    finish_reason: str | None
    logprobs: Any


class CompletionChoice(TypedDict, total=False):
    index: int
    text: str
    finish_reason: str | None
    logprobs: Any


class ChatCompletion(TypedDict, total=False):
    """``/v1/chat/completions`` answer (``object: "chat.completion"``)."""

    id: str | None
    object: str
    created: int | None  # OpenAI always sends it; translators pass the upstream's through
    model: str | None
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None


class TextCompletion(TypedDict, total=False):
    """``/v1/completions`` answer and stream chunk (``object: "text_completion"``)."""

    id: str | None
    object: str
    created: int | None  # OpenAI always sends it; translators pass the upstream's through
    model: str | None
    choices: list[CompletionChoice]
    usage: Usage | None
    system_fingerprint: str | None


class ChunkDelta(TypedDict, total=False):
    role: str
    content: str | None
    tool_calls: list[ToolCall]
    refusal: str | None
    reasoning_content: str


class ChunkChoice(TypedDict, total=False):
    index: int
    delta: ChunkDelta
    finish_reason: str | None
    logprobs: Any


class ChatChunk(TypedDict, total=False):
    """One ``chat.completion.chunk`` of a stream; the usage chunk has ``choices: []``."""

    id: str | None
    object: str
    created: int | None  # OpenAI always sends it; translators pass the upstream's through
    model: str | None
    choices: list[ChunkChoice]
    usage: Usage | None
    system_fingerprint: str | None


#: A completion stream chunk has the answer's shape.
CompletionChunk = TextCompletion


class EmbeddingItem(TypedDict, total=False):
    object: str  # "embedding"
    index: int
    embedding: list[float] | str  # str: base64 of float32s (encoding_format="base64")


class EmbeddingList(TypedDict, total=False):
    """``/v1/embeddings`` answer (``object: "list"``)."""

    object: str  # "list"
    data: list[EmbeddingItem]
    model: str | None
    usage: Usage


#: The deepest JSON a gateway body may nest (objects and arrays). Real requests, tool
#: schemas included, stay far below; deeper ones are refused before anything recurses.
MAX_JSON_DEPTH = 128

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


# The upstream's verdict on the request itself is passed through with its status; its
# 401/403/404 are about our deployment's key or model, so the caller gets a 502 instead.
_PASS_THROUGH = frozenset({400, 409, 413, 415, 422})


def http_status(exc: PodiumError) -> int:
    """The status the caller sees for ``exc``."""
    if isinstance(exc, UpstreamError) and exc.upstream_status in _PASS_THROUGH:
        return exc.upstream_status
    return exc.status_code


def _bad(param: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": param, "message": message}])


def error_body(exc: PodiumError) -> dict[str, Any]:
    """OpenAI's error object for any Podium error."""
    param = None
    if exc.details and isinstance(exc.details[0], dict):
        param = exc.details[0].get("field")
    if isinstance(exc, UpstreamError):
        etype = exc.error_type or ("timeout_error" if exc.status_code == 504 else "upstream_error")
        param = exc.param or param
    else:
        etype = _TYPES.get(exc.status_code, "server_error" if exc.status_code >= 500 else "invalid_request_error")
    return {"error": {"message": exc.message, "type": etype, "param": param, "code": exc.code}}


def parse_body(raw: bytes) -> Any:
    """The request body as JSON; raises BadRequest when it is not JSON or nests deeper than
    :data:`MAX_JSON_DEPTH`. The depth walk runs only when the body has enough brackets to
    be that deep (``bytes.count`` is C-fast), so ordinary requests pay nothing for it."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise _too_deep()
    except ValueError as e:
        raise BadRequest(f"the body is not valid JSON ({e}); send a JSON object like "
                         '{"model": "local", "messages": [...]}')
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(raw, body, MAX_JSON_DEPTH):
        raise _too_deep()
    return body


def _too_deep() -> BadRequest:
    return BadRequest(f"the body nests JSON more than {MAX_JSON_DEPTH} levels deep; flatten it",
                      details=[{"field": None, "message": "too deeply nested"}])


_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def _deeper_than(raw: bytes, body: Any, limit: int) -> bool:
    """Whether valid JSON ``raw`` nests deeper than ``limit``, with C-speed steps only: drop
    escaped backslashes and quotes, keep what lies outside strings, keep its brackets, and
    take the highest running count of opens minus closes."""
    if b"\x00" in raw[:4]:  # UTF-16/32 JSON (json.loads accepts it): walk the parsed object
        return _object_deeper_than(body, limit)
    outside = b"".join(raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def _object_deeper_than(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return True
        children = o.values() if isinstance(o, dict) else o if isinstance(o, list) else ()
        stack.extend((c, d + 1) for c in children if isinstance(c, dict | list))
    return False


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a streaming caller asked for the usage chunk (``stream_options.include_usage``)."""
    so = body.get("stream_options")
    return isinstance(so, dict) and so.get("include_usage") is True


def client_chunk(chunk: dict[str, Any], include_usage: bool) -> dict[str, Any] | None:
    """A stream chunk as OpenAI would send it to this caller; None when it must not be sent.

    The gateway always asks upstreams for usage (for limits, spend and the trace). A caller
    that did not ask gets no usage: the usage-only chunk (``choices: []``) is dropped, a
    ``usage`` riding on another chunk is removed. A caller that asked gets ``usage: null``
    on every other chunk and the usage chunk last, as OpenAI sends them."""
    if include_usage:
        return chunk if "usage" in chunk else {**chunk, "usage": None}
    if "usage" not in chunk:
        return chunk
    if not chunk.get("choices"):
        return None
    return {k: v for k, v in chunk.items() if k != "usage"}


def embedding_dimensions(item: Any) -> int:
    """The vector length of one ``data[]`` item: a list of floats, or base64 of float32s."""
    emb = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(emb, list):
        return len(emb)
    if isinstance(emb, str):  # encoding_format="base64": 4 bytes per float32
        n_bytes = len(emb) * 3 // 4 - emb[-2:].count("=")
        return n_bytes // 4
    return 0


def _model(body: dict[str, Any]) -> None:
    m = body.get("model")
    if not isinstance(m, str) or not m:
        raise _bad("model", "`model` is required: a model alias such as \"local\" (GET /v1/models lists them)")


def _common(body: dict[str, Any]) -> None:
    s = body.get("stream")
    if s is not None and not isinstance(s, bool):
        raise _bad("stream", "`stream` must be true or false")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        v = body.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise _bad(name, f"`{name}` must be a positive integer")
    t = body.get("temperature")
    if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t <= 2):
        raise _bad("temperature", "`temperature` must be a number between 0 and 2")
    p = body.get("top_p")
    if p is not None and (not isinstance(p, int | float) or isinstance(p, bool) or not 0 <= p <= 1):
        raise _bad("top_p", "`top_p` must be a number between 0 and 1")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(x, str) for x in stop)
    ):
        raise _bad("stop", "`stop` must be a string or a list of strings")


def check_chat(body: dict[str, Any]) -> None:
    _model(body)
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("messages", "`messages` must be a non-empty list of {\"role\", \"content\"} objects")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _bad(f"messages.{i}", f"messages[{i}] must be an object with \"role\" and \"content\"")
        role = m.get("role")
        if role not in _ROLES:
            raise _bad(f"messages.{i}.role", f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}")
        c = m.get("content")
        if c is not None and not isinstance(c, str | list):
            raise _bad(f"messages.{i}.content", f"messages[{i}].content must be a string or a list of parts")
    _common(body)


def check_completion(body: dict[str, Any]) -> None:
    _model(body)
    p = body.get("prompt")
    if not isinstance(p, str) and not (isinstance(p, list) and p and all(isinstance(x, str) for x in p)):
        raise _bad("prompt", "`prompt` must be a string (or a list of strings)")
    lp = body.get("logprobs")
    if lp is not None and (not isinstance(lp, int) or isinstance(lp, bool) or not 0 <= lp <= 20):
        raise _bad("logprobs", "`logprobs` must be an integer from 0 to 20")
    _common(body)


def check_embeddings(body: dict[str, Any]) -> None:
    _model(body)
    x = body.get("input")
    ok = isinstance(x, str) or (isinstance(x, list) and x and all(isinstance(i, str | list) for i in x))
    if not ok:
        raise _bad("input", "`input` must be a string or a non-empty list of strings")


class PodiumOptions:
    """What the caller tells Podium about a call (headers ``x-podium-*`` or body ``podium``)."""

    __slots__ = ("metadata", "parent_id", "prompt_name", "prompt_version", "session_id", "tags", "trace_id",
                 "user_id")

    def __init__(self) -> None:
        self.user_id: str | None = None
        self.session_id: str | None = None
        self.tags: list[str] | None = None
        self.metadata: dict[str, Any] | None = None
        self.trace_id: str | None = None
        self.parent_id: str | None = None
        self.prompt_name: str | None = None
        self.prompt_version: int | None = None


def _short(name: str, v: Any, n: int = 256) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > n:
        raise _bad(name, f"`{name}` must be a string of at most {n} characters")
    return v


def podium_options(headers: dict[str, str], body: dict[str, Any]) -> PodiumOptions:
    """Read caller context and remove the ``podium`` field from ``body`` (it never goes upstream).

    Headers: ``x-podium-user-id``, ``x-podium-session-id``, ``x-podium-tags`` (comma-separated),
    ``x-podium-metadata`` (JSON object), ``traceparent`` (W3C). Body: ``user`` (OpenAI's field)
    and ``podium: {"user_id", "session_id", "tags", "metadata", "trace_id", "parent_id", "cache"}``.
    """
    o = PodiumOptions()
    extra = body.pop("podium", None)
    if extra is not None and not isinstance(extra, dict):
        raise _bad("podium", "`podium` must be an object like {\"session_id\": \"...\", \"tags\": [...]}")
    extra = extra or {}
    o.user_id = _short("podium.user_id", extra.get("user_id")) or _short("x-podium-user-id",
                                                                        headers.get("x-podium-user-id"))
    if o.user_id is None and isinstance(body.get("user"), str):
        o.user_id = body["user"][:256]
    o.session_id = _short("podium.session_id", extra.get("session_id")) or _short(
        "x-podium-session-id", headers.get("x-podium-session-id"))
    tags = extra.get("tags")
    if tags is None and headers.get("x-podium-tags"):
        tags = [t.strip() for t in headers["x-podium-tags"].split(",") if t.strip()]
    if tags is not None:
        if not isinstance(tags, list) or len(tags) > 100 or not all(
            isinstance(t, str) and 0 < len(t) <= 200 for t in tags
        ):
            raise _bad("podium.tags", "tags must be a list of at most 100 strings of 1-200 characters")
        o.tags = tags
    meta = extra.get("metadata")
    if meta is None and headers.get("x-podium-metadata"):
        try:
            meta = json.loads(headers["x-podium-metadata"])
        except ValueError:
            raise _bad("x-podium-metadata", "the x-podium-metadata header must be a JSON object")
    if meta is not None:
        if not isinstance(meta, dict):
            raise _bad("podium.metadata", "metadata must be a JSON object")
        o.metadata = meta
    prompt = extra.get("prompt")
    if prompt is None and headers.get("x-podium-prompt"):
        name, _, ver = headers["x-podium-prompt"].rpartition("@")
        prompt = {"name": name, "version": int(ver) if ver.isdigit() else ver}
    if prompt is not None:
        ok = isinstance(prompt, dict) and isinstance(prompt.get("name"), str) and 0 < len(prompt["name"]) <= 256
        version = prompt.get("version") if isinstance(prompt, dict) else None
        if not ok or not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**31:
            raise _bad("podium.prompt", 'prompt must be {"name": "qa", "version": 3} (header: x-podium-prompt: qa@3)')
        o.prompt_name, o.prompt_version = prompt["name"], version
    tp = headers.get("traceparent")
    if extra.get("trace_id"):
        o.trace_id = _short("podium.trace_id", extra.get("trace_id"), 128)
        o.parent_id = _short("podium.parent_id", extra.get("parent_id"), 128)
    elif tp:
        parts = tp.strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and parts[1] != "0" * 32:
            o.trace_id, o.parent_id = parts[1].lower(), parts[2].lower()
    return o


def chunks_from_response(resp: dict[str, Any], *, chat: bool) -> list[dict[str, Any]]:
    """A stored (cached) response replayed as stream chunks: content, finish, usage."""
    out: list[dict[str, Any]] = []
    base = {"id": resp.get("id", "podium-cache"), "created": resp.get("created", 0), "model": resp.get("model")}
    for ch in resp.get("choices", []):
        idx = ch.get("index", 0)
        if chat:
            msg = ch.get("message") or {}
            delta = {"role": "assistant", "content": msg.get("content") or ""}
            if msg.get("tool_calls"):
                delta["tool_calls"] = [{**tc, "index": i} for i, tc in enumerate(msg["tool_calls"])]
            out.append({**base, "object": "chat.completion.chunk",
                        "choices": [{"index": idx, "delta": delta, "finish_reason": None}]})
            out.append({**base, "object": "chat.completion.chunk",
                        "choices": [{"index": idx, "delta": {}, "finish_reason": ch.get("finish_reason", "stop")}]})
        else:
            out.append({**base, "object": "text_completion",
                        "choices": [{"index": idx, "text": ch.get("text", ""), "finish_reason": None,
                                     "logprobs": ch.get("logprobs")}]})
            out.append({**base, "object": "text_completion",
                        "choices": [{"index": idx, "text": "", "finish_reason": ch.get("finish_reason", "stop"),
                                     "logprobs": None}]})
    if resp.get("usage"):
        out.append({**base, "object": "chat.completion.chunk" if chat else "text_completion", "choices": [],
                    "usage": resp["usage"]})
    return out


class StreamAccumulator:
    """Builds the final response (for the log and the cache) from stream chunks."""

    __slots__ = ("chat", "created", "finish", "id", "model", "parts", "tool_calls", "usage")

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.parts: dict[int, list[str]] = {}
        self.finish: dict[int, str | None] = {}
        self.tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.usage: dict[str, Any] | None = None
        self.id: str | None = None
        self.model: str | None = None
        self.created: int = 0

    def add(self, chunk: dict[str, Any]) -> None:
        if self.id is None:
            self.id, self.model, self.created = chunk.get("id"), chunk.get("model"), chunk.get("created", 0)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for ch in chunk.get("choices") or ():
            i = ch.get("index", 0)
            if self.chat:
                delta = ch.get("delta") or {}
                if delta.get("content"):
                    self.parts.setdefault(i, []).append(delta["content"])
                for tc in delta.get("tool_calls") or ():
                    slot = self.tool_calls.setdefault(i, {}).setdefault(
                        tc.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                    )
                    if tc.get("id"):
                        slot["id"] = tc["id"]
                    fn = tc.get("function") or {}
                    slot["function"]["name"] += fn.get("name") or ""
                    slot["function"]["arguments"] += fn.get("arguments") or ""
            elif ch.get("text"):
                self.parts.setdefault(i, []).append(ch["text"])
            if ch.get("finish_reason"):
                self.finish[i] = ch["finish_reason"]

    @property
    def text(self) -> str:
        return "".join(self.parts.get(0, ()))

    def response(self) -> dict[str, Any]:
        choices = []
        for i in sorted(set(self.parts) | set(self.finish) | set(self.tool_calls)):
            text = "".join(self.parts.get(i, ()))
            if self.chat:
                msg: dict[str, Any] = {"role": "assistant", "content": text or None}
                if self.tool_calls.get(i):
                    msg["tool_calls"] = [self.tool_calls[i][k] for k in sorted(self.tool_calls[i])]
                choices.append({"index": i, "message": msg, "finish_reason": self.finish.get(i)})
            else:
                choices.append({"index": i, "text": text, "finish_reason": self.finish.get(i), "logprobs": None})
        out: dict[str, Any] = {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
               "created": self.created, "model": self.model, "choices": choices}
        if self.usage:
            out["usage"] = self.usage
        return out


def response_from_chunks(chunks: list[dict[str, Any]], *, chat: bool) -> dict[str, Any]:
    acc = StreamAccumulator(chat)
    for c in chunks:
        acc.add(c)
    return acc.response()
