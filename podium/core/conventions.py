"""OpenTelemetry span -> Podium span record: the attribute conventions Podium understands.

:func:`span_from_otel` takes one OTel span as plain Python values (already decoded from
OTLP protobuf or JSON by ``podium.server.otlp``) and returns a dict that validates as
:class:`podium.core.records.SpanIn`. It is pure: stdlib plus msgspec (a faster JSON parser), no protobuf, no I/O.

Three conventions are understood: the OpenTelemetry GenAI semantic conventions
(``gen_ai.*``, current and deprecated), OpenInference (``openinference.*``, ``llm.*``,
``input.value``...; Arize Phoenix, OpenLLMetry-style instrumentors) and the Langfuse
OTel attributes (``langfuse.*``). Where several give the same field, the first in the
list below wins. Attributes that are mapped are *consumed*; every other span attribute
is kept verbatim (made JSON-safe) in ``attributes``. An attribute whose value cannot be
used (a non-numeric token count, a version that is not a positive integer, a JSON blob
that does not parse to the expected shape) is left in ``attributes`` rather than lost.

Mapping table (``a > b`` means ``a`` wins)::

    Podium field           OTel source
    ---------------------  -----------------------------------------------------------------
    id / trace_id          span_id / trace_id as lowercase hex; missing or all-zero -> rejected
    parent_id              parent_span_id; empty or all-zero -> None (a root span)
    name                   span name, trimmed to 1000 characters
    start_time / end_time  start/end_time_unix_nano -> ISO-8601 UTC (microseconds); end 0 -> None
    kind                   langfuse.observation.type (generation, span, event, tool, retriever->retrieval,
                             embedding, agent, chain, evaluator, guardrail)
                           > openinference.span.kind (LLM->generation, CHAIN->chain, TOOL->tool,
                             RETRIEVER->retrieval, EMBEDDING->embedding, AGENT->agent,
                             RERANKER->reranker, GUARDRAIL->guardrail, EVALUATOR->evaluator,
                             PROMPT->span with the attribute kept)
                           > gen_ai.operation.name (chat, text_completion, generate_content,
                             completion->generation; embeddings->embedding; execute_tool->tool;
                             invoke_agent, create_agent->agent; the attribute is also kept)
                           > a model name plus token usage -> generation
                           > span.   An unrecognised value falls through to the next rule.
    model                  langfuse.observation.model.name > gen_ai.response.model
                           > gen_ai.request.model > llm.model_name > embedding.model_name (a differing
                           request model stays in attributes)
    provider               gen_ai.provider.name > gen_ai.system (deprecated) > llm.provider > llm.system
    model_parameters       gen_ai.request.* except model (temperature, max_tokens, top_p, top_k,
                           frequency_penalty, presence_penalty, stop_sequences, seed, ...; key without
                           the prefix, dots -> '_'), then merged with llm.invocation_parameters (JSON),
                           then langfuse.observation.model.parameters (JSON)
    usage.input_tokens     langfuse.observation.usage_details.input > gen_ai.usage.input_tokens
                           > gen_ai.usage.prompt_tokens (deprecated) > llm.token_count.prompt
    usage.output_tokens    ...usage_details.output > gen_ai.usage.output_tokens
                           > gen_ai.usage.completion_tokens (deprecated) > llm.token_count.completion
    usage.total_tokens     ...usage_details.total > gen_ai.usage.total_tokens > llm.token_count.total
                           > input + output
    usage.details          other usage_details keys; gen_ai.usage.cache_read.input_tokens->cached_tokens,
                           gen_ai.usage.cache_creation.input_tokens->cache_creation_tokens, other
                           gen_ai.usage.X->X; llm.token_count.prompt_details.cache_read->cached_tokens,
                           .cache_write->cache_creation_tokens, .audio->input_audio_tokens,
                           llm.token_count.completion_details.reasoning->reasoning_tokens,
                           .audio->output_audio_tokens
    cost                   langfuse.observation.cost_details (JSON input/output/total)
                           > llm.cost.prompt / llm.cost.completion / llm.cost.total
    input                  langfuse.observation.input > llm.input_messages.N.message.* (flattened ->
                           [{role, content, ...}]) > input.value (JSON parsed when input.mime_type is
                           application/json, or when it looks like a JSON object/array and no mime
                           type says text) > gen_ai.system_instructions + gen_ai.input.messages (JSON;
                           instructions become a leading {"role": "system", "parts": [...]})
                           > gen_ai.tool.call.arguments > gen_ai.prompt (deprecated; string or JSON)
                           > gen_ai.prompt.N.* (deprecated, flattened) > events gen_ai.system.message,
                           gen_ai.user.message, gen_ai.assistant.message, gen_ai.tool.message
                           (deprecated; event attributes -> {role, content, ...})
    output                 langfuse.observation.output > llm.output_messages.N.message.*
                           > retrieval.documents.N.document.* > output.value
                           > gen_ai.output.messages > gen_ai.tool.call.result > gen_ai.completion
                           > gen_ai.completion.N.* > gen_ai.choice events
    user_id                langfuse.user.id > user.id > enduser.id (span, then resource)
    session_id             langfuse.session.id > session.id > gen_ai.conversation.id (span, then resource)
    tags                   langfuse.trace.tags + tag.tags (arrays or JSON strings; deduplicated)
    trace_name             langfuse.trace.name
    trace_input / _output  langfuse.trace.input / langfuse.trace.output (Langfuse v3
                           `update_current_trace(input=, output=)`): explicit, so they win over the
                           root span's input/output
    metadata               OpenInference `metadata` (JSON object) + langfuse.observation.metadata (JSON
                           object) + langfuse.observation.metadata.<key>; plus "resource" (all resource
                           attributes), "scope" (instrumentation scope name), "scope_version"
    trace_metadata         langfuse.trace.metadata (JSON object) + langfuse.trace.metadata.<key>
                           (Langfuse SDK v5+, scope "langfuse-sdk", JSON-encodes every <key> value,
                           strings included: those values are decoded once, "\"qa\"" -> "qa")
    release                langfuse.release > service.version (span, then resource)
    environment            langfuse.environment > deployment.environment.name > deployment.environment
                           (span, then resource)
    prompt_name / _version langfuse.observation.prompt.name / langfuse.observation.prompt.version
    completion_start_time  langfuse.observation.completion_start_time (ISO string, JSON-quoted ISO
                           string, or a Unix timestamp in ns/us/ms/s) > earliest first-token/chunk
                           event (_FIRST_TOKEN_EVENTS, consumed) > ai.response.msToFirstChunk
    embeddings             embedding.embeddings.N.embedding.text -> input (when none); vectors (and any
                           attribute list of >= 32 numbers, and such lists in an embedding span's
                           output) -> "<vector of N numbers omitted>"
    status                 status code 2 / STATUS_CODE_ERROR / ERROR -> error, 1 / OK -> ok, else unset;
                           langfuse.observation.level == ERROR -> error (level is also kept)
    status_message         status message > langfuse.observation.status_message
                           > first `exception` event ("<exception.type>: <exception.message>")
    attributes             every unconsumed span attribute, JSON-safe (bytes -> base64, NaN/inf ->
                           string); "otel.span_kind" (SERVER, CLIENT, PRODUCER, CONSUMER; not for
                           INTERNAL/UNSPECIFIED); "otel.events" (events not turned into input/output:
                           [{name, time, attributes}]); "otel.links" ([{trace_id, span_id, attributes}])

Each span's attribute keys are read once against ``_EXACT_FEATURES`` / ``_PREFIX_FEATURES`` (the
keys and prefixes of the table above, by section); a section none of whose keys the span has is
skipped, which gives what running it would (it would find nothing and change nothing).

Flattened attributes (``prefix.N.a.b``) are rebuilt into lists of nested dicts; the
OpenInference wrapper keys ``message``, ``tool_call``, ``message_content`` and
``document`` are unwrapped, so ``llm.input_messages.0.message.role`` becomes
``input[0]["role"]``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec

from podium.core.records import (
    JSON_CHECKED_CONTEXT,
    MAX_JSON_DEPTH,
    MAX_TOKENS,
    CostIn,
    SpanIn,
    SpanKind,
    SpanStatus,
    UsageIn,
)

__all__ = [
    "GENAI_DETAILS_EVENT",
    "GENAI_LOG_EVENTS",
    "OtelScope",
    "OtelSpanError",
    "genai_log_io",
    "nanos_to_iso",
    "span_from_otel",
    "span_record",
]

_M = TypeVar("_M")


class OtelSpanError(ValueError):
    """The span cannot become a Podium span (missing ids or start time); the message says why."""


_MAX_NAME = 1000
_MAX_SHORT = 256
_MAX_STATUS = 10_000
_MAX_TAG = 200
_MAX_TAGS = 100

_HEX = re.compile(r"^[0-9a-f]{1,128}$")
_HEX_FULL = re.compile(r"[0-9a-f]{1,128}").fullmatch
_EPOCH_NAIVE = datetime(1970, 1, 1)  # UTC; naive, so isoformat() has no offset to replace

_OTEL_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}

_LANGFUSE_TYPES = {
    "generation": "generation",
    "span": "span",
    "event": "event",
    "tool": "tool",
    "retriever": "retrieval",
    "retrieval": "retrieval",
    "embedding": "embedding",
    "agent": "agent",
    "chain": "chain",
    "evaluator": "evaluator",
    "guardrail": "guardrail",
    "reranker": "reranker",
}
_OPENINFERENCE_KINDS = {
    "LLM": "generation",
    "CHAIN": "chain",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "AGENT": "agent",
    "RERANKER": "reranker",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    # Prompt-template rendering has no Podium counterpart: a plain span, and the attribute is kept.
    "PROMPT": "span",
}
# OpenInference kinds mapped to a generic span keep `openinference.span.kind` in `attributes`.
_OPENINFERENCE_KEPT = frozenset({"PROMPT"})
_GENAI_OPERATIONS = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "completion": "generation",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}

_MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
    "embedding.model_name",
)
_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_USER_KEYS = ("langfuse.user.id", "user.id", "enduser.id")
_SESSION_KEYS = ("langfuse.session.id", "session.id", "gen_ai.conversation.id")
_RELEASE_KEYS = ("langfuse.release", "service.version")
_ENVIRONMENT_KEYS = ("langfuse.environment", "deployment.environment.name", "deployment.environment")
_TAG_KEYS = ("langfuse.trace.tags", "tag.tags")
# Trace-level hints: (field, attribute keys by precedence), looked up on the span, then on the resource.
_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("user_id", _USER_KEYS),
    ("session_id", _SESSION_KEYS),
    ("release", _RELEASE_KEYS),
    ("environment", _ENVIRONMENT_KEYS),
)

_LF_USAGE = "langfuse.observation.usage_details"
_LF_COST = "langfuse.observation.cost_details"
_LF_USAGE_FIELDS = {
    "input": "input_tokens",
    "input_tokens": "input_tokens",
    "prompt_tokens": "input_tokens",
    "output": "output_tokens",
    "output_tokens": "output_tokens",
    "completion_tokens": "output_tokens",
    "total": "total_tokens",
    "total_tokens": "total_tokens",
}
_USAGE_FIELDS = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.token_count.total"),
}
_USAGE_MAIN_KEYS = frozenset(k for keys in _USAGE_FIELDS.values() for k in keys)
_USAGE_DETAIL_ALIASES = {
    "gen_ai.usage.cache_read.input_tokens": "cached_tokens",
    "gen_ai.usage.cache_creation.input_tokens": "cache_creation_tokens",
    "llm.token_count.prompt_details.cache_read": "cached_tokens",
    "llm.token_count.prompt_details.cache_write": "cache_creation_tokens",
    "llm.token_count.prompt_details.audio": "input_audio_tokens",
    "llm.token_count.completion_details.reasoning": "reasoning_tokens",
    "llm.token_count.completion_details.audio": "output_audio_tokens",
}
_LF_COST_FIELDS = {
    "input": "input",
    "input_cost": "input",
    "output": "output",
    "output_cost": "output",
    "total": "total",
    "total_cost": "total",
}
_OI_COST = (("input", "llm.cost.prompt"), ("output", "llm.cost.completion"), ("total", "llm.cost.total"))

_GENAI_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_EVENT_DROP_KEYS = ("gen_ai.system", "gen_ai.provider.name")
_OI_WRAPPERS = frozenset({"message", "tool_call", "message_content", "document"})
# Leaves of flattened lists that hold JSON by convention (the rest, e.g. message content, stay verbatim).
_JSON_LEAVES = frozenset({"metadata"})

# Span events that mark streamed output arriving; the earliest one is the first token.
# OpenInference: "First Token Stream Event"; OpenLLMetry: "llm.content.completion.chunk" (one per chunk);
# Vercel AI SDK: "ai.stream.firstChunk"; others: "gen_ai.content.chunk", "first_token", "llm.first_token".
_FIRST_TOKEN_EVENTS = frozenset(
    {
        "First Token Stream Event",
        "llm.content.completion.chunk",
        "gen_ai.content.completion.chunk",
        "gen_ai.content.chunk",
        "ai.stream.firstChunk",
        "first_token",
        "llm.first_token",
    }
)
_MS_TO_FIRST_CHUNK = "ai.response.msToFirstChunk"  # Vercel AI SDK: milliseconds after the span's start
_EMBEDDINGS = "embedding.embeddings"  # OpenInference: embedding.embeddings.N.embedding.{text,vector}
# A list of at least this many numbers (one of them a float) is an embedding vector: never stored whole.
_VECTOR_MIN = 32
_VECTOR_DEPTH = 8

# GenAI events sent as OpenTelemetry log records (see genai_log_io).
GENAI_DETAILS_EVENT = "gen_ai.client.inference.operation.details"


# --- value helpers ---------------------------------------------------------------------------


def nanos_to_iso(nanos: int) -> str:
    """Unix nanoseconds -> ISO-8601 UTC string with microseconds (``...T...Z``)."""
    secs, rem = divmod(int(nanos), 1_000_000_000)
    minute, sec = divmod(secs, 60)
    head = _MINUTES.get(minute)
    if head is None:  # "YYYY-MM-DDTHH:MM:" of this minute, made once (the spans of a batch share a few)
        if len(_MINUTES) >= 4096:
            _MINUTES.clear()
        head = _MINUTES[minute] = (_EPOCH_NAIVE + timedelta(minutes=minute)).isoformat(
            timespec="minutes"
        ) + ":"
    return f"{head}{sec:02d}.{rem // 1000:06d}Z"


_MINUTES: dict[int, str] = {}


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                return None
            return int(f) if f.is_integer() else None
    return None


def _count(v: Any) -> int | None:
    n = _as_int(v)
    return n if n is not None and n >= 0 else None


def _money(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) and f >= 0 else None


def _text(limit: int) -> Callable[[Any], str | None]:
    def conv(v: Any) -> str | None:
        if isinstance(v, str):
            s = v.strip()
            return s[:limit] if s else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)[:limit]
        return None

    return conv


_short = _text(_MAX_SHORT)
_name_text = _text(_MAX_NAME)
_status_text = _text(_MAX_STATUS)
_tag_text = _text(_MAX_TAG)


_msgspec_decode = msgspec.json.Decoder().decode


def _loads(s: str) -> Any:
    """``json.loads`` with msgspec's parser (C, ~2x faster) where the two agree: msgspec refuses
    NaN/Infinity, 1e999, lone surrogates and very deep nesting, and those strings go to
    ``json.loads`` (so every string parses, or fails, exactly as ``json.loads`` has it)."""
    try:
        v = _msgspec_decode(s)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        return json.loads(s)
    t = type(v)
    if t is dict or t is list:
        fresh = _fresh.__dict__.get("values")
        # msgspec's output is JSON-safe (finite floats, str keys): only its depth is unknown, and
        # a text of n characters or with n brackets nests at most n/2 or n levels.
        if fresh is not None and (len(s) <= 2 * MAX_JSON_DEPTH or s.count("[") + s.count("{") <= MAX_JSON_DEPTH):
            fresh[id(v)] = v
    return v


#: ``values``: while :func:`_map` runs on this thread, ``{id: value}`` of the containers
#: :func:`_loads` parsed with msgspec that nest at most MAX_JSON_DEPTH levels: a field holding one
#: of them as it is needs no JSON-safe copy (``_bounded`` would return an equal copy).
_fresh = threading.local()


def _structured(v: Any) -> Any:
    """A value that should be structured: JSON strings are parsed when they parse."""
    if isinstance(v, str):
        try:
            return _loads(v)
        except ValueError:
            return v
    return v


def _container(v: Any) -> Any:
    """Parse a string only when it looks like a JSON object or array (plain text stays text)."""
    if isinstance(v, str):
        s = v.lstrip()
        if s[:1] in ("{", "["):
            try:
                return _loads(v)
            except ValueError:
                return v
    return v


# Values _json_safe returns as they are (exact types: a str subclass takes the general path).
_PLAIN = frozenset({str, int, bool, type(None)})


class _TooDeep(Exception):
    """A value nests deeper than MAX_JSON_DEPTH (_bounded gives up; SpanIn reports it)."""


def _bounded(v: Any, depth: int) -> Any:
    """:func:`_json_safe` for a value at nesting level ``depth`` (a field's own object or array
    is level 1, as in ``records.json_problem``): the same result, or :class:`_TooDeep` when a
    container sits deeper than MAX_JSON_DEPTH. Its results are finite and shallow enough, so
    ``SpanIn`` need not walk them again."""
    t = type(v)
    if t in _PLAIN or (t is float and v - v == 0.0):  # x - x is 0.0 for every finite float, NaN otherwise
        return v
    if t is dict or t is list or isinstance(v, Mapping | list | tuple | set | frozenset):
        if depth > MAX_JSON_DEPTH:
            raise _TooDeep
        d = depth + 1
        if t is dict or (t is not list and isinstance(v, Mapping)):
            return {
                (k if type(k) is str else str(k)): (
                    x if (tx := type(x)) in _PLAIN or (tx is float and x - x == 0.0) else _bounded(x, d)
                )
                for k, x in v.items()
            }
        return [
            x if (tx := type(x)) in _PLAIN or (tx is float and x - x == 0.0) else _bounded(x, d) for x in v
        ]
    return _json_safe(v)


def _json_safe(v: Any) -> Any:
    if v is None or isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_json_safe(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _pick(
    attrs: dict[str, Any],
    keys: tuple[str, ...],
    conv: Callable[[Any], Any],
    *,
    resource: Mapping[str, Any] | None = None,
    prefer: Any = None,
) -> Any:
    """The first usable value of ``keys`` in the span attributes, else in ``resource``.

    Span attributes that hold the chosen value (also under a lower-precedence key) are
    consumed; a different value under another key stays in ``attributes``. With
    ``prefer`` (a value already taken from a higher-precedence source) only duplicates
    of it are consumed.
    """
    chosen = prefer
    if chosen is None:
        for k in keys:
            if k in attrs:
                chosen = conv(attrs[k])
                if chosen is not None:
                    break
    if chosen is None and resource:
        for k in keys:
            if k in resource:
                value = conv(resource[k])
                if value is not None:
                    return value
        return None
    if chosen is not None:
        for k in keys:
            if k in attrs and conv(attrs[k]) == chosen:
                del attrs[k]
    return chosen


def _set_path(node: dict[str, Any], parts: list[str], value: Any) -> None:
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):  # "a.b" and "a.b.c" both set: keep the rest flat
            node[".".join(parts[i:])] = value
            return
        node = child
    last = parts[-1]
    if isinstance(node.get(last), dict):
        node[last][""] = value
    else:
        node[last] = value


def _listify(v: Any) -> Any:
    """Dicts whose keys are all digits become lists; OpenInference wrappers are unwrapped."""
    if isinstance(v, dict):
        items = {k: _listify(x) for k, x in v.items()}
        if items and all(k.isdigit() for k in items):
            return [items[k] for k in sorted(items, key=int)]
        if len(items) == 1:
            (only,) = items
            if only in _OI_WRAPPERS and isinstance(items[only], dict):
                return items[only]
        return items
    return v


def _take_indexed(attrs: dict[str, Any], prefix: str) -> list[Any] | None:
    """Consume ``prefix.N.rest`` attributes and rebuild them as a list (ordered by N).

    Leaf values are kept verbatim (tool-call arguments stay JSON strings, as in the OpenAI
    API), except ``metadata`` leaves, which are JSON objects by convention.
    """
    dot = prefix + "."
    keys = [k for k in attrs if k.startswith(dot)]
    tree: dict[str, Any] = {}
    for k in keys:
        rest = k[len(dot) :]
        idx, _, sub = rest.partition(".")
        if not idx.isdigit():
            continue
        value = attrs.pop(k)
        if sub.rpartition(".")[2] in _JSON_LEAVES:
            value = _container(value)
        if sub:
            node = tree.setdefault(idx, {})
            if isinstance(node, dict):
                _set_path(node, sub.split("."), value)
        else:
            tree[idx] = value
    if not tree:
        return None
    out = _listify(tree)
    return out if isinstance(out, list) else [out]


def _prefixed(attrs: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Consume ``prefix.<key>`` attributes into ``{key: value}`` (JSON objects/arrays parsed)."""
    dot = prefix + "."
    out: dict[str, Any] = {}
    for k in [k for k in attrs if k.startswith(dot)]:
        out[k[len(dot) :]] = _container(attrs.pop(k))
    return out


def _langfuse_json_values(
    values: dict[str, Any], scope_name: str | None, scope_version: str | None
) -> dict[str, Any]:
    """Langfuse SDK v5+ JSON-encodes each ``*.metadata.<key>`` value, strings included
    (``"qa"`` arrives as ``"\"qa\""``, ``123`` as ``"123"``): decode those once."""
    if scope_name != "langfuse-sdk" or not scope_version:
        return values
    major = scope_version.split(".", 1)[0]
    if not major.isdigit() or int(major) < 5:
        return values
    out = {}
    for k, v in values.items():
        if isinstance(v, str):
            try:
                v = _loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


def _take_json_object(attrs: dict[str, Any], key: str) -> dict[str, Any]:
    v = _structured(attrs.get(key))
    if isinstance(v, dict):
        del attrs[key]
        return v
    return {}


# --- the pieces --------------------------------------------------------------------------------


def _hex_id(value: Any, field: str, *, required: bool) -> str | None:
    if type(value) is str and _HEX_FULL(value) and value.strip("0"):
        return value  # lowercase hex already: what strip().lower() and the checks below would keep
    if type(value) is bytes and 0 < len(value) <= 64 and value.strip(b"\0"):
        return value.hex()  # protobuf ids: 1-128 hex digits, not all zeros, as the checks below find
    if isinstance(value, bytes | bytearray):
        s = bytes(value).hex()
    else:
        s = "" if value is None else str(value).strip().lower()
    if not s or not s.strip("0"):
        if required:
            raise OtelSpanError(f"{field} is missing or all zeros; every OTLP span needs a non-zero {field}")
        return None
    if not _HEX.match(s):
        raise OtelSpanError(
            f"{field} {s[:64]!r} is not a hex id; OTLP trace ids are 16 bytes and span ids 8 bytes "
            "(lowercase hex in OTLP/JSON)"
        )
    return s


def _time(value: Any, field: str, *, required: bool, as_time: Callable[[int], Any] = nanos_to_iso) -> Any:
    """Unix nanoseconds -> ``as_time(n)``: an ISO string (:func:`nanos_to_iso`) or, for
    :func:`span_record`, the aware datetime ``SpanIn`` would parse that string to."""
    n = value if type(value) is int else _as_int(value)
    if n is None or n <= 0:
        if required:
            raise OtelSpanError(f"{field} is missing or 0; send the span's start time in Unix nanoseconds")
        return None
    try:
        return as_time(n)
    except (OverflowError, ValueError):
        raise OtelSpanError(f"{field} {n} is out of range; send Unix nanoseconds")


def _nanos_to_datetime(nanos: int) -> datetime:
    """What ``SpanIn`` makes of :func:`nanos_to_iso`'s string: an aware UTC datetime, microseconds
    truncated (out of range raises OverflowError, as nanos_to_iso does)."""
    micros = nanos // 1000
    if 0 <= micros < _FLOAT_EXACT_MICROS:
        # ~2x faster than the timedelta sum, and exact here: below 2**32 s a double holds
        # micros / 1e6 within 0.48 us, which fromtimestamp rounds to the nearest microsecond
        return datetime.fromtimestamp(micros / 1e6, UTC)
    return _EPOCH_UTC + timedelta(microseconds=micros)


_FLOAT_EXACT_MICROS = 4_000_000_000_000_000  # 2096-10-02, under 2**32 s
_FLOAT_EXACT_NANOS = _FLOAT_EXACT_MICROS * 1000
_fromtimestamp = datetime.fromtimestamp


_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def _flexible_time(value: Any, typed: bool = False) -> Any:
    """ISO string (maybe JSON-quoted) or a Unix timestamp in ns, us, ms or s -> ISO UTC (with
    ``typed``, the aware UTC datetime that string stands for)."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith('"'):
            s = _structured(s)
            if not isinstance(s, str):
                return None
        try:
            value = int(s) if s.isdigit() else float(s)
        except ValueError:
            try:
                dt = datetime.fromisoformat(s)
            except ValueError:
                return None
            dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
            return dt if typed else dt.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    scale = 1 if value > 1e17 else 1000 if value > 1e14 else 10**6 if value > 1e11 else 10**9
    try:
        whole = int(value)
        nanos = whole * scale + round((value - whole) * scale)
        return _nanos_to_datetime(nanos) if typed else nanos_to_iso(nanos)
    except (OverflowError, ValueError):
        return None


def _otel_kind(kind: Any) -> str:
    if isinstance(kind, int) and not isinstance(kind, bool):
        return _OTEL_KINDS.get(kind, "UNSPECIFIED")
    if isinstance(kind, str):
        s = kind.strip().upper().removeprefix("SPAN_KIND_")
        if s.isdigit():
            return _OTEL_KINDS.get(int(s), "UNSPECIFIED")
        return s if s in _OTEL_KINDS.values() else "UNSPECIFIED"
    return "UNSPECIFIED"


def _status(code: Any) -> str:
    if isinstance(code, int) and not isinstance(code, bool):
        return _STATUS_CODES.get(code, "unset")
    if isinstance(code, str):
        s = code.strip().upper().removeprefix("STATUS_CODE_")
        if s.isdigit():
            return _STATUS_CODES.get(int(s), "unset")
        return {"OK": "ok", "ERROR": "error"}.get(s, "unset")
    return "unset"


def _kind(attrs: dict[str, Any], *, looks_like_generation: bool) -> str:
    """The first kind given by, in order: ``langfuse.observation.type`` (consumed),
    ``openinference.span.kind`` (consumed, except PROMPT) and ``gen_ai.operation.name`` (kept)."""
    value = attrs.get("langfuse.observation.type")
    if isinstance(value, str) and (kind := _LANGFUSE_TYPES.get(value.strip().lower())):
        del attrs["langfuse.observation.type"]
        return kind
    value = attrs.get("openinference.span.kind")
    if isinstance(value, str):
        norm = value.strip().upper()
        kind = _OPENINFERENCE_KINDS.get(norm)
        if kind:
            if norm not in _OPENINFERENCE_KEPT:
                del attrs["openinference.span.kind"]
            return kind
    value = attrs.get("gen_ai.operation.name")
    if isinstance(value, str) and (kind := _GENAI_OPERATIONS.get(value.strip().lower())):
        return kind
    return "generation" if looks_like_generation else "span"


def _model_parameters(attrs: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    keys = [k for k in attrs if k.startswith("gen_ai.request.")]
    keys.sort()
    for k in keys:
        if k != "gen_ai.request.model":
            params[_PARAM_NAMES.get(k) or _param_name(k)] = attrs.pop(k)
    if "llm.invocation_parameters" in attrs:
        params.update(_take_json_object(attrs, "llm.invocation_parameters"))
    if "langfuse.observation.model.parameters" in attrs:
        params.update(_take_json_object(attrs, "langfuse.observation.model.parameters"))
    return params


def _param_name(key: str) -> str:
    """``gen_ai.request.top_k`` -> ``top_k`` (dots -> '_'), remembered for the next span."""
    name = key.removeprefix("gen_ai.request.").replace(".", "_")
    if len(_PARAM_NAMES) < 1024 and len(key) <= 256:
        _PARAM_NAMES[key] = name
    return name


_PARAM_NAMES: dict[str, str] = {}


def _usage_detail_name(key: str) -> str | None:
    if key in _USAGE_DETAIL_ALIASES:
        return _USAGE_DETAIL_ALIASES[key]
    if key in _USAGE_MAIN_KEYS:
        return None
    if key.startswith("gen_ai.usage."):
        return key.removeprefix("gen_ai.usage.").replace(".", "_")
    if key.startswith("llm.token_count.prompt_details."):
        return "input_" + key.removeprefix("llm.token_count.prompt_details.").replace(".", "_")
    if key.startswith("llm.token_count.completion_details."):
        return "output_" + key.removeprefix("llm.token_count.completion_details.").replace(".", "_")
    return None


def _usage(attrs: dict[str, Any], details_keys: bool = True) -> dict[str, Any] | None:
    """Token usage (see the table); ``details_keys``: whether ``attrs`` may hold usage keys other
    than the main ones (``_F_USAGE_DETAILS``), else their scan is skipped."""
    usage: dict[str, int] = {}
    details: dict[str, int] = {}
    lf = _structured(attrs.get(_LF_USAGE))
    if isinstance(lf, dict):
        complete = True
        for k, v in lf.items():
            n = _count(v)
            if n is None:
                complete = False
                continue
            field = _LF_USAGE_FIELDS.get(str(k).lower())
            if field:
                usage.setdefault(field, n)
            else:
                details[str(k)] = n
        if complete:
            del attrs[_LF_USAGE]
    for field, keys in _USAGE_FIELDS.items():
        n = _pick(attrs, keys, _count, prefer=usage.get(field))
        if n is not None:
            usage[field] = n
    for k in [k for k in attrs if k.startswith(_USAGE_PREFIXES)] if details_keys else ():
        name = _usage_detail_name(k)
        n = _count(attrs[k])
        if name is not None and n is not None:
            details.setdefault(name, n)
            del attrs[k]
    if not usage and not details:
        return None
    if "total_tokens" not in usage and ("input_tokens" in usage or "output_tokens" in usage):
        usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    out: dict[str, Any] = dict(usage)
    if details:
        out["details"] = details
    return out


def _cost(attrs: dict[str, Any]) -> dict[str, float] | None:
    cost: dict[str, float] = {}
    lf = _structured(attrs.get(_LF_COST))
    if isinstance(lf, dict):
        complete = True
        for k, v in lf.items():
            field = _LF_COST_FIELDS.get(str(k).lower())
            f = _money(v)
            if field is None or f is None:
                complete = False
                continue
            cost.setdefault(field, f)
        if complete:
            del attrs[_LF_COST]
    for field, key in _OI_COST:
        f = _pick(attrs, (key,), _money, prefer=cost.get(field))
        if f is not None:
            cost[field] = f
    return cost or None


def _tags(attrs: dict[str, Any]) -> list[str] | None:
    tags: list[str] = []
    for key in _TAG_KEYS:
        if key not in attrs:
            continue
        v = _container(attrs[key])
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            continue
        del attrs[key]
        for t in v:
            s = _tag_text(t)
            if s and s not in tags:
                tags.append(s)
    return tags[:_MAX_TAGS] or None


def _mime_value(attrs: dict[str, Any], key: str) -> tuple[bool, Any]:
    """OpenInference ``input.value`` / ``output.value`` with its ``.mime_type`` sibling."""
    if key not in attrs:
        return False, None
    value = attrs.pop(key)
    mime = attrs.pop(_MIME_KEYS.get(key) or key.removesuffix(".value") + ".mime_type", None)
    mime = mime.strip().lower() if isinstance(mime, str) else ""
    if "json" in mime:
        return True, _structured(value)
    if mime.startswith("text/"):
        return True, value
    return True, _container(value)


_MIME_KEYS = {"input.value": "input.mime_type", "output.value": "output.mime_type"}


def _genai_messages(attrs: dict[str, Any], key: str, system_key: str | None = None) -> tuple[bool, Any]:
    has_messages = key in attrs
    has_system = system_key is not None and system_key in attrs
    if not (has_messages or has_system):
        return False, None
    messages = _structured(attrs.pop(key)) if has_messages else None
    if system_key is None or not has_system:
        return True, messages
    system = _structured(attrs.pop(system_key))
    if isinstance(system, str):
        system = [{"type": "text", "content": system}]
    head: list[Any] = [{"role": "system", "parts": system if isinstance(system, list) else [system]}]
    if messages is None:
        return True, head
    return True, head + (messages if isinstance(messages, list) else [messages])


def _take(attrs: dict[str, Any], key: str, parse: Callable[[Any], Any]) -> tuple[bool, Any]:
    if key in attrs:
        return True, parse(attrs.pop(key))
    return False, None


def _take_list(attrs: dict[str, Any], prefix: str) -> tuple[bool, Any]:
    items = _take_indexed(attrs, prefix)
    return items is not None, items


def _first(sources: list[Callable[[], tuple[bool, Any]]]) -> tuple[bool, Any]:
    for source in sources:
        found, value = source()
        if found:
            return True, value
    return False, None


def _event_message(name: str, ev_attrs: Mapping[str, Any]) -> dict[str, Any]:
    if name == "gen_ai.choice":
        msg = _structured(ev_attrs.get("message"))
        out: dict[str, Any] = dict(msg) if isinstance(msg, dict) else {}
        if msg is not None and not isinstance(msg, dict):
            out["content"] = msg
        out.setdefault("role", "assistant")
        for k, v in ev_attrs.items():
            if k != "message" and k not in _EVENT_DROP_KEYS:
                out.setdefault(k, _container(v))
        return out
    out = {"role": _text(64)(ev_attrs.get("role")) or _GENAI_MESSAGE_EVENTS[name]}
    for k, v in ev_attrs.items():
        if k != "role" and k not in _EVENT_DROP_KEYS:
            out[k] = _container(v)
    return out


def _input_output(
    attrs: dict[str, Any], events: list[dict[str, Any]], feats: int = ~0
) -> tuple[Any, Any, set[int]]:
    """Returns (input, output, indexes of the events consumed as messages). The sources are tried
    in the order of the module docstring's table; ``feats`` (:func:`_features` of ``attrs``) skips
    the flattened-list sources whose prefix no attribute has."""
    used: set[int] = set()
    found, inp = False, None
    if "langfuse.observation.input" in attrs:
        found, inp = True, _structured(attrs.pop("langfuse.observation.input"))
    if not found and feats & _F_LLM_IN:
        found, inp = _take_list(attrs, "llm.input_messages")
    if not found and "input.value" in attrs:
        found, inp = _mime_value(attrs, "input.value")
    if not found:
        found, inp = _genai_messages(attrs, "gen_ai.input.messages", "gen_ai.system_instructions")
    if not found and "gen_ai.tool.call.arguments" in attrs:
        found, inp = True, _structured(attrs.pop("gen_ai.tool.call.arguments"))
    if not found and "gen_ai.prompt" in attrs:
        found, inp = True, _container(attrs.pop("gen_ai.prompt"))
    if not found and feats & _F_PROMPT_LIST:
        found, inp = _take_list(attrs, "gen_ai.prompt")
    if not found and events:
        msgs = []
        for i, ev in enumerate(events):
            name = ev.get("name")
            if name in _GENAI_MESSAGE_EVENTS:
                msgs.append(_event_message(name, ev.get("attributes") or {}))
                used.add(i)
        found, inp = bool(msgs), msgs

    found_out, outp = False, None
    if "langfuse.observation.output" in attrs:
        found_out, outp = True, _structured(attrs.pop("langfuse.observation.output"))
    if not found_out and feats & _F_LLM_OUT:
        found_out, outp = _take_list(attrs, "llm.output_messages")
    # before output.value: LlamaIndex's retrievers send both, output.value as a list of reprs
    if not found_out and feats & _F_DOCUMENTS:
        found_out, outp = _take_list(attrs, "retrieval.documents")
    if not found_out and "output.value" in attrs:
        found_out, outp = _mime_value(attrs, "output.value")
    if not found_out and "gen_ai.output.messages" in attrs:
        found_out, outp = _genai_messages(attrs, "gen_ai.output.messages")
    if not found_out and "gen_ai.tool.call.result" in attrs:
        found_out, outp = True, _structured(attrs.pop("gen_ai.tool.call.result"))
    if not found_out and "gen_ai.completion" in attrs:
        found_out, outp = True, _container(attrs.pop("gen_ai.completion"))
    if not found_out and feats & _F_COMPLETION_LIST:
        found_out, outp = _take_list(attrs, "gen_ai.completion")
    if not found_out and events:
        choices = []
        for i, ev in enumerate(events):
            if ev.get("name") == "gen_ai.choice":
                choices.append(_event_message("gen_ai.choice", ev.get("attributes") or {}))
                used.add(i)
        found_out, outp = bool(choices), choices
    return (inp if found else None), (outp if found_out else None), used


# --- one pass over the attribute keys: which mapping sections can apply ------------------------
# Each section of span_from_otel looks for its keys (exact, or by prefix); a span that has none
# of a section's keys skips it (the section would find nothing and change nothing).

_F_MODEL = 1 << 0
_F_PROVIDER = 1 << 1
_F_USAGE = 1 << 2
_F_PARAMS = 1 << 3
_F_COST = 1 << 4
_F_LANGFUSE = 1 << 5  # langfuse.*: trace name/io/metadata, prompt, level, completion start, ...
_F_LLM_IN = 1 << 6
_F_LLM_OUT = 1 << 7
_F_DOCUMENTS = 1 << 8
_F_PROMPT_LIST = 1 << 9
_F_COMPLETION_LIST = 1 << 10
_F_EMBEDDINGS = 1 << 11
_F_HINTS = 1 << 12  # user/session/release/environment keys: else the scope's resource hints apply
_F_USAGE_DETAILS = 1 << 13  # a gen_ai.usage.* / llm.token_count.* key other than the main three of each
_F_IO = 1 << 14  # an exact input/output key of _input_output (input.value, gen_ai.prompt, ...)
_USAGE_PREFIXES = ("gen_ai.usage.", "llm.token_count.")
#: the bits of every key _input_output reads (with span events, it always runs)
_IO_FEATURES = (
    _F_IO | _F_LANGFUSE | _F_LLM_IN | _F_LLM_OUT | _F_DOCUMENTS | _F_PROMPT_LIST | _F_COMPLETION_LIST
)

_EXACT_FEATURES: dict[str, int] = {
    **dict.fromkeys(_MODEL_KEYS, _F_MODEL),
    **dict.fromkeys(_PROVIDER_KEYS, _F_PROVIDER),
    _LF_USAGE: _F_USAGE,
    "llm.invocation_parameters": _F_PARAMS,
    "langfuse.observation.model.parameters": _F_PARAMS,
    _LF_COST: _F_COST,
    **{key: _F_COST for _field, key in _OI_COST},
    **{key: _F_HINTS for _field, keys in _HINTS for key in keys},
    **dict.fromkeys(
        (
            "input.value",
            "gen_ai.input.messages",
            "gen_ai.system_instructions",
            "gen_ai.tool.call.arguments",
            "gen_ai.prompt",
            "output.value",
            "gen_ai.output.messages",
            "gen_ai.tool.call.result",
            "gen_ai.completion",
        ),
        _F_IO,
    ),
}
_PREFIX_FEATURES: tuple[tuple[str, int], ...] = (
    ("gen_ai.usage.", _F_USAGE),
    ("llm.token_count.", _F_USAGE),
    ("gen_ai.request.", _F_PARAMS),
    ("langfuse.", _F_LANGFUSE),
    ("llm.input_messages.", _F_LLM_IN),
    ("llm.output_messages.", _F_LLM_OUT),
    ("retrieval.documents.", _F_DOCUMENTS),
    ("gen_ai.prompt.", _F_PROMPT_LIST),
    ("gen_ai.completion.", _F_COMPLETION_LIST),
    (_EMBEDDINGS + ".", _F_EMBEDDINGS),
)
_PREFIXES = tuple(p for p, _bit in _PREFIX_FEATURES)


def _features(attrs: Mapping[str, Any]) -> int:
    """The ``_F_*`` bits of the sections whose keys ``attrs`` holds. Spans of one instrumentation
    repeat the same keys in the same order: the bits are cached by that key tuple."""
    keys = tuple(attrs)
    feats = _FEATURES_CACHE.get(keys)
    if feats is None:
        feats = _features_of(keys)
        if sum(map(len, keys)) <= _CACHED_KEYS_TEXT:  # a bounded cache of bounded entries
            if len(_FEATURES_CACHE) >= 4096:
                _FEATURES_CACHE.clear()
            _FEATURES_CACHE[keys] = feats
    return feats


_CACHED_KEYS_TEXT = 4096  # characters of attribute keys per cache entry, at most


_FEATURES_CACHE: dict[tuple[str, ...], int] = {}


def _features_of(keys: tuple[str, ...]) -> int:
    """:func:`_features` uncached: one dict lookup per key, a prefix test only for the keys that
    have one of the prefixes."""
    feats = 0
    exact = _EXACT_FEATURES.get
    for k in keys:
        feats |= exact(k, 0)
        if k.startswith(_PREFIXES):
            for prefix, bit in _PREFIX_FEATURES:
                if k.startswith(prefix):  # the prefixes do not overlap: one matches
                    feats |= bit
                    break
            if k.startswith(_USAGE_PREFIXES) and k not in _USAGE_MAIN_KEYS:
                feats |= _F_USAGE_DETAILS
    return feats


def _exception_message(events: list[dict[str, Any]]) -> str | None:
    for ev in events:
        if ev.get("name") != "exception":
            continue
        a = ev.get("attributes") or {}
        typ, msg = a.get("exception.type"), a.get("exception.message")
        parts = [str(x) for x in (typ, msg) if x not in (None, "")]
        if parts:
            return ": ".join(parts)
    return None


def _is_vector(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) >= _VECTOR_MIN
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        and any(isinstance(x, float) for x in v)
    )


def _shrink_vectors(v: Any, depth: int = 0) -> Any:
    """Replace embedding vectors (long lists of numbers) with a short summary, so the stored
    span and the UI never carry megabytes of floats."""
    if depth > _VECTOR_DEPTH:
        return v
    if isinstance(v, list):
        if _is_vector(v):
            return f"<vector of {len(v)} numbers omitted>"
        return [_shrink_vectors(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {k: _shrink_vectors(x, depth + 1) for k, x in v.items()}
    return v


def _embeddings(attrs: dict[str, Any], inp: Any) -> Any:
    """OpenInference ``embedding.embeddings.N.embedding.{text,vector}``: the texts become the
    span's input (when nothing else gave one); vectors are summarised, never stored whole.
    Returns the (possibly new) input."""
    items = _take_indexed(attrs, _EMBEDDINGS)
    if items is None:
        return inp
    rest: list[Any] = []
    texts: list[str] = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"embedding"} and isinstance(item["embedding"], dict):
            item = item["embedding"]
        if isinstance(item, dict):
            if inp is None and isinstance(item.get("text"), str):
                texts.append(item["text"])
                item = {k: x for k, x in item.items() if k != "text"}
            item = _shrink_vectors(item)
        if item not in ({}, None):
            rest.append(item)
    if rest:
        attrs[_EMBEDDINGS] = rest
    return texts if inp is None and texts else inp


def _first_token(
    events: list[dict[str, Any]], attrs: dict[str, Any], start_nanos: Any,
    as_time: Callable[[int], Any] = nanos_to_iso,
) -> tuple[Any, set[int]]:
    """Time of the first streamed token: the earliest first-token/chunk event, else the Vercel AI
    SDK's ``ai.response.msToFirstChunk``. Returns (ISO time or None, indexes of consumed events)."""
    used: set[int] = set()
    earliest: int | None = None
    for i, ev in enumerate(events):
        if ev.get("name") in _FIRST_TOKEN_EVENTS:
            used.add(i)
            n = _as_int(ev.get("time_unix_nano"))
            if n is not None and n > 0 and (earliest is None or n < earliest):
                earliest = n
    if earliest is None and _MS_TO_FIRST_CHUNK in attrs:
        ms, start = _money(attrs[_MS_TO_FIRST_CHUNK]), _as_int(start_nanos)
        if ms is not None and start is not None:
            del attrs[_MS_TO_FIRST_CHUNK]
            earliest = start + round(ms * 1_000_000)
    if earliest is None:
        return None, used
    try:
        return as_time(earliest), used
    except (OverflowError, ValueError):
        return None, used


# --- GenAI events sent as log records ------------------------------------------------------------

#: Event names (a log record's ``event_name``, or its ``event.name`` attribute) that
#: :func:`genai_log_io` turns into a span's input and output.
GENAI_LOG_EVENTS = frozenset({*_GENAI_MESSAGE_EVENTS, "gen_ai.choice", GENAI_DETAILS_EVENT})


def genai_log_io(records: Sequence[Mapping[str, Any]]) -> tuple[Any, Any]:
    """The input and output of one span from its GenAI log events, in emission order.

    ``records`` are ``{"name", "body", "attributes"}`` dicts (decoded AnyValues). The
    ``gen_ai.system/user/assistant/tool.message`` events become the input messages
    (``{role, content, ...}``, the body's fields plus the event attributes), ``gen_ai.choice``
    events the output (``{role, content, index, finish_reason, ...}``), and a
    ``gen_ai.client.inference.operation.details`` event's ``gen_ai.input.messages`` (with
    ``gen_ai.system_instructions``) / ``gen_ai.output.messages`` win over both. Other records are
    ignored. Returns ``(input, output)``, each None when the records carry none; JSON-safe.
    """
    messages: list[Any] = []
    choices: list[Any] = []
    inp: Any = None
    outp: Any = None
    for rec in records:
        name = rec.get("name")
        if name not in GENAI_LOG_EVENTS:
            continue
        body = rec.get("body")
        fields = {k: v for k, v in (rec.get("attributes") or {}).items() if k != "event.name"}
        if isinstance(body, Mapping):
            fields.update(body)
        elif body not in (None, ""):
            fields.setdefault("content", body)
        if name == GENAI_DETAILS_EVENT:
            found, value = _genai_messages(fields, "gen_ai.input.messages", "gen_ai.system_instructions")
            if found:
                inp = value
            found, value = _genai_messages(fields, "gen_ai.output.messages")
            if found:
                outp = value
        elif name == "gen_ai.choice":
            choices.append(_event_message(name, fields))
        else:
            messages.append(_event_message(name, fields))
    if inp is None and messages:
        inp = messages
    if outp is None and choices:
        outp = choices
    return (None if inp is None else _json_safe(inp)), (None if outp is None else _json_safe(outp))


# --- entry point -------------------------------------------------------------------------------


def _langfuse_fields(
    attrs: dict[str, Any], out: dict[str, Any], safe: Callable[[Any], Any], typed: bool = False
) -> None:
    """The Langfuse span attributes that set fields of their own (trace name and input/output,
    prompt name/version, completion start time): consumed from ``attrs`` into ``out``."""
    trace_name = _name_text(attrs.get("langfuse.trace.name"))
    if trace_name is not None:
        del attrs["langfuse.trace.name"]
        out["trace_name"] = trace_name
    for key, trace_field in (
        ("langfuse.trace.input", "trace_input"),
        ("langfuse.trace.output", "trace_output"),
    ):
        found, value = _take(attrs, key, _structured)
        if found and value is not None:
            out[trace_field] = safe(value)

    prompt_name = _short(attrs.get("langfuse.observation.prompt.name"))
    if prompt_name is not None:
        del attrs["langfuse.observation.prompt.name"]
        out["prompt_name"] = prompt_name
    version = _as_int(attrs.get("langfuse.observation.prompt.version"))
    if version is not None and version >= 1:
        del attrs["langfuse.observation.prompt.version"]
        out["prompt_version"] = version
    if "langfuse.observation.completion_start_time" in attrs:
        cst = _flexible_time(attrs["langfuse.observation.completion_start_time"], typed)
        if cst is not None:
            del attrs["langfuse.observation.completion_start_time"]
            out["completion_start_time"] = cst


class OtelScope:
    """What the spans of one OTLP ``ScopeSpans`` share, mapped once for all of them: the resource
    attributes (the trace hints they give, their JSON-safe copy for ``metadata.resource``) and
    the instrumentation scope. Pass it to :func:`span_record` (or :func:`span_from_otel`'s
    ``scope``) for each span of the scope; never modified by them."""

    __slots__ = ("deep", "hints", "metadata", "resource", "scope_name", "scope_version")

    def __init__(
        self,
        resource_attributes: Mapping[str, Any] | None = None,
        scope_name: str | None = None,
        scope_version: str | None = None,
    ) -> None:
        self.resource: dict[str, Any] = dict(resource_attributes) if resource_attributes else {}
        self.scope_name = scope_name
        self.scope_version = scope_version
        #: the hints the resource alone gives (a span without hint keys takes these as they are)
        self.hints: tuple[tuple[str, Any], ...] = tuple(
            (field, value)
            for field, keys in _HINTS
            if (value := _pick({}, keys, _short, resource=self.resource)) is not None
        )
        #: whether the JSON-safe resource nests deeper than MAX_JSON_DEPTH inside ``metadata``
        self.deep = False
        tail: list[tuple[str, Any]] = []
        if self.resource:
            try:
                tail.append(("resource", _bounded(self.resource, 2)))  # metadata.resource: level 2
            except _TooDeep:
                self.deep = True
                tail.append(("resource", _json_safe(self.resource)))
        if scope_name:
            tail.append(("scope", _json_safe(scope_name)))
        if scope_version:
            tail.append(("scope_version", _json_safe(scope_version)))
        #: the JSON-safe ``metadata`` entries every span of the scope ends with
        self.metadata: tuple[tuple[str, Any], ...] = tuple(tail)


def span_from_otel(
    *,
    trace_id: str | bytes,
    span_id: str | bytes,
    parent_span_id: str | bytes | None,
    name: str,
    kind: int | str,
    start_time_unix_nano: int,
    end_time_unix_nano: int | None,
    status_code: int | str,
    status_message: str | None,
    attributes: Mapping[str, Any],
    events: list[dict[str, Any]] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    scope_name: str | None = None,
    scope_version: str | None = None,
    links: list[dict[str, Any]] | None = None,
    json_checked: list[bool] | None = None,
    scope: OtelScope | None = None,
) -> dict[str, Any]:
    """Map one OTel span to a ``SpanIn``-shaped dict (see the module docstring for the table).

    ``attributes`` and ``resource_attributes`` hold decoded AnyValues (str, bool, int, float,
    lists, dicts; bytes as base64 strings). ``events`` are ``{"name", "time_unix_nano",
    "attributes"}`` dicts, ``links`` ``{"trace_id", "span_id", "attributes"}`` dicts. The
    inputs are not modified. Raises :class:`OtelSpanError` for a span without usable ids
    or start time. ``scope`` (an :class:`OtelScope`) stands for ``resource_attributes``,
    ``scope_name`` and ``scope_version`` when the caller maps several spans of one scope.

    With ``json_checked`` (a list), True is appended when every JSON value of the result is
    finite and nests at most ``MAX_JSON_DEPTH`` levels, i.e. when ``SpanIn``'s JSON check would
    pass: validate with ``context=JSON_CHECKED_CONTEXT`` to skip that walk.
    """
    if scope is None:
        scope = OtelScope(resource_attributes, scope_name, scope_version)
    out, deep = _map(
        trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano, end_time_unix_nano,
        status_code, status_message, attributes, events, links, scope, False,
    )
    if json_checked is not None and not deep:
        json_checked.append(True)
    return out


def span_record(
    *,
    trace_id: str | bytes,
    span_id: str | bytes,
    parent_span_id: str | bytes | None,
    name: str,
    kind: int | str,
    start_time_unix_nano: int,
    end_time_unix_nano: int | None,
    status_code: int | str,
    status_message: str | None,
    attributes: Mapping[str, Any],
    events: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
    scope: OtelScope,
) -> SpanIn:
    """:func:`span_from_otel`, then ``SpanIn`` validation of its result, in one step: the same
    record (or the same :class:`pydantic.ValidationError`), cheaper.

    The mapper builds the record itself (times as datetimes, kinds as enums) and checks only
    what it does not guarantee by construction: end before start, token counts, costs and the
    prompt version within ``SpanIn``'s bounds, dict keys and text fields that are valid
    Unicode (no lone surrogates) and short enough, and the JSON values (finite, at most
    ``MAX_JSON_DEPTH`` deep; made so while mapping). A span that fails one of these checks is
    validated by ``SpanIn.model_validate`` instead, so its error is exactly ``SpanIn``'s.
    """
    out, deep = _map(
        trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano, end_time_unix_nano,
        status_code, status_message, attributes, events, links, scope, True,
    )
    if deep or not _trusted(out):
        return SpanIn.model_validate(out, context=None if deep else JSON_CHECKED_CONTEXT)
    out["kind"] = _SPAN_KINDS[out["kind"]]
    out["status"] = _SPAN_STATUSES[out["status"]]
    usage = out.get("usage")
    if usage is not None:
        out["usage"] = _construct(UsageIn, _USAGE_TEMPLATE, usage)
    cost = out.get("cost")
    if cost is not None:
        out["cost"] = _construct(CostIn, _COST_TEMPLATE, cost)
    return _construct(SpanIn, _SPAN_TEMPLATE, out)


def _map(
    trace_id: Any,
    span_id: Any,
    parent_span_id: Any,
    name: Any,
    kind: Any,
    start_time_unix_nano: Any,
    end_time_unix_nano: Any,
    status_code: Any,
    status_message: Any,
    attributes: Mapping[str, Any],
    events: list[dict[str, Any]] | None,
    links: list[dict[str, Any]] | None,
    scope: OtelScope,
    typed: bool,
) -> tuple[dict[str, Any], bool]:
    """The mapping: ``(SpanIn-shaped dict, whether a JSON value nests past MAX_JSON_DEPTH)``.
    ``typed``: times as aware datetimes (what SpanIn makes of the ISO strings) instead of ISO."""
    fresh: dict[int, Any] = {}
    _fresh.values = fresh
    try:
        return _map_span(
            trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano, end_time_unix_nano,
            status_code, status_message, attributes, events, links, scope, typed, fresh,
        )
    finally:
        _fresh.values = None


def _map_span(
    trace_id: Any,
    span_id: Any,
    parent_span_id: Any,
    name: Any,
    kind: Any,
    start_time_unix_nano: Any,
    end_time_unix_nano: Any,
    status_code: Any,
    status_message: Any,
    attributes: Mapping[str, Any],
    events: list[dict[str, Any]] | None,
    links: list[dict[str, Any]] | None,
    scope: OtelScope,
    typed: bool,
    fresh: dict[int, Any],
) -> tuple[dict[str, Any], bool]:
    deep = scope.deep

    def safe(v: Any) -> Any:
        nonlocal deep
        if id(v) in fresh:  # parsed by msgspec, shallow enough: JSON-safe as it is
            return v
        try:
            return _bounded(v, 1)
        except _TooDeep:
            deep = True
            return _json_safe(v)

    as_time = _nanos_to_datetime if typed else nanos_to_iso
    # ids and times: the usual values inline (what _hex_id / _time return for them), the rest by the helpers
    tid: str | None
    sid: str | None
    if type(trace_id) is bytes and 0 < len(trace_id) <= 64 and trace_id.strip(b"\0"):
        tid = trace_id.hex()
    else:
        tid = _hex_id(trace_id, "trace_id", required=True)
    if type(span_id) is bytes and 0 < len(span_id) <= 64 and span_id.strip(b"\0"):
        sid = span_id.hex()
    else:
        sid = _hex_id(span_id, "span_id", required=True)
    pid = None if parent_span_id is None else _hex_id(parent_span_id, "parent_span_id", required=False)
    if typed and type(start_time_unix_nano) is int and 0 < start_time_unix_nano < _FLOAT_EXACT_NANOS:
        start = _fromtimestamp(start_time_unix_nano // 1000 / 1e6, UTC)
    else:
        start = _time(start_time_unix_nano, "start_time_unix_nano", required=True, as_time=as_time)
    if end_time_unix_nano is None:
        end = None
    elif typed and type(end_time_unix_nano) is int and 0 < end_time_unix_nano < _FLOAT_EXACT_NANOS:
        end = _fromtimestamp(end_time_unix_nano // 1000 / 1e6, UTC)
    else:
        end = _time(end_time_unix_nano, "end_time_unix_nano", required=False, as_time=as_time)

    attrs: dict[str, Any] = dict(attributes)
    resource = scope.resource
    evs: list[dict[str, Any]] = [e for e in events if isinstance(e, Mapping)] if events else []
    feats = _features(attrs)

    out: dict[str, Any] = {
        "id": sid,
        "trace_id": tid,
        "parent_id": pid if pid != sid else None,
        "name": (name or "")[:_MAX_NAME],
        "start_time": start,
    }
    if end is not None:
        out["end_time"] = end

    # Each section runs only when the span has one of its keys (``feats``); without them it would
    # find nothing and change nothing.
    model = _pick(attrs, _MODEL_KEYS, _short) if feats & _F_MODEL else None
    provider = _pick(attrs, _PROVIDER_KEYS, _short) if feats & _F_PROVIDER else None
    usage = _usage(attrs, bool(feats & _F_USAGE_DETAILS)) if feats & _F_USAGE else None
    out["kind"] = _kind(attrs, looks_like_generation=bool(model and usage))
    if model:
        out["model"] = model
    if provider:
        out["provider"] = provider
    if feats & (_F_PARAMS | _F_LANGFUSE) and (params := _model_parameters(attrs)):
        out["model_parameters"] = safe(params)
    if usage:
        out["usage"] = usage
    if feats & _F_COST and (cost := _cost(attrs)):
        out["cost"] = cost

    if evs or feats & _IO_FEATURES:
        inp, outp, used_events = _input_output(attrs, evs, feats)
    else:  # none of its sources: it would find nothing
        inp = outp = None
        used_events = set()
    if feats & _F_EMBEDDINGS:
        inp = _embeddings(attrs, inp)
    if out["kind"] == "embedding" and outp is not None:
        outp = _shrink_vectors(outp)
    if inp is not None:
        out["input"] = safe(inp)
    if outp is not None:
        out["output"] = safe(outp)

    # Status: OTel status, raised to error by a Langfuse ERROR level.
    status = _STATUS_CODES.get(status_code, "unset") if type(status_code) is int else _status(status_code)
    lf_message = None
    if feats & _F_LANGFUSE:
        level = attrs.get("langfuse.observation.level")
        if isinstance(level, str) and level.strip().upper() == "ERROR":
            status = "error"
        lf_message = _status_text(attrs.get("langfuse.observation.status_message"))
        if lf_message is not None:
            del attrs["langfuse.observation.status_message"]
    out["status"] = status
    message = status_message if isinstance(status_message, str) and status_message.strip() else None
    message = message or lf_message or (_exception_message(evs) if evs else None)
    if message:
        out["status_message"] = message[:_MAX_STATUS]

    # Trace-level hints: from the span's attributes when it has any of their keys, else the
    # resource's (mapped once per scope).
    if feats & _F_HINTS:
        for field, keys in _HINTS:
            if (value := _pick(attrs, keys, _short, resource=resource)) is not None:
                out[field] = value
    elif scope.hints:
        out.update(scope.hints)
    if (_TAG_KEYS[0] in attrs or _TAG_KEYS[1] in attrs) and (tags := _tags(attrs)):
        out["tags"] = tags
    if feats & _F_LANGFUSE:
        _langfuse_fields(attrs, out, safe, typed)
    if evs or _MS_TO_FIRST_CHUNK in attrs:
        first_token, token_events = _first_token(evs, attrs, start_time_unix_nano, as_time)
        used_events |= token_events
        if first_token is not None and "completion_start_time" not in out:
            out["completion_start_time"] = first_token

    # Metadata: the span's own, then the scope's (resource, scope name and version; made JSON-safe once).
    metadata: dict[str, Any] = {}
    if "metadata" in attrs:
        # the parsed object itself (ours: a fresh msgspec one then needs no JSON-safe copy)
        metadata = _take_json_object(attrs, "metadata")
    if feats & _F_LANGFUSE:
        metadata = dict(metadata)  # a new dict: what is added below was never checked
        metadata.update(_take_json_object(attrs, "langfuse.observation.metadata"))
        metadata.update(
            _langfuse_json_values(
                _prefixed(attrs, "langfuse.observation.metadata"), scope.scope_name, scope.scope_version
            )
        )
    if metadata:
        metadata = safe(metadata)  # never the caller's dict: the scope's entries go in
        metadata.update(scope.metadata)
    else:
        metadata = dict(scope.metadata)
    if metadata:
        out["metadata"] = metadata
    if feats & _F_LANGFUSE:
        trace_metadata: dict[str, Any] = {}
        trace_metadata.update(_take_json_object(attrs, "langfuse.trace.metadata"))
        trace_metadata.update(
            _langfuse_json_values(
                _prefixed(attrs, "langfuse.trace.metadata"), scope.scope_name, scope.scope_version
            )
        )
        if trace_metadata:
            out["trace_metadata"] = safe(trace_metadata)

    # Whatever is left, plus the OTel-only structure.
    otel_kind = _OTEL_KINDS.get(kind, "UNSPECIFIED") if type(kind) is int else _otel_kind(kind)
    if otel_kind not in ("INTERNAL", "UNSPECIFIED"):
        attrs["otel.span_kind"] = otel_kind
    if evs:
        rest_events = [
            {
                "name": ev.get("name") or "",
                "time": _event_time(ev.get("time_unix_nano")),
                **({"attributes": ev["attributes"]} if ev.get("attributes") else {}),
            }
            for i, ev in enumerate(evs)
            if i not in used_events
        ]
        if rest_events:
            attrs["otel.events"] = rest_events
    rest_links = []
    for link in links or ():
        if not isinstance(link, Mapping):
            continue
        item: dict[str, Any] = {
            "trace_id": _link_id(link.get("trace_id")),
            "span_id": _link_id(link.get("span_id")),
        }
        if link.get("attributes"):
            item["attributes"] = link["attributes"]
        rest_links.append(item)
    if rest_links:
        attrs["otel.links"] = rest_links
    if attrs:
        for k, v in attrs.items():
            if isinstance(v, list):
                attrs[k] = _shrink_vectors(v)
        out["attributes"] = safe(attrs)
    return out, deep


# --- the record without SpanIn.model_validate (span_record) -----------------------------------

_SPAN_KINDS: dict[str, SpanKind] = {k.value: k for k in SpanKind}
_SPAN_STATUSES: dict[str, SpanStatus] = {s.value: s for s in SpanStatus}
_MAX_PROMPT_VERSION = 2**31 - 1  # SpanIn.prompt_version's bound
_MAX_COST = 1e9  # CostIn's bound (exclusive)
_MAX_KEYS_TEXT = 1_000_000  # _Strict's str_max_length, which dict keys get too
# The SpanIn fields the mapper fills with text (each already cut to its field's length).
_TEXT_FIELDS = (
    "status_message", "model", "provider", "user_id", "session_id", "release", "environment",
    "trace_name", "prompt_name",
)
_DICT_FIELDS = ("attributes", "metadata", "model_parameters", "trace_metadata")
_TEXT_SET = frozenset(_TEXT_FIELDS)
#: the fields whose text _trusted checks: the text fields, the tags, and the dict fields' keys
_CHECKED_FIELDS = frozenset((*_TEXT_FIELDS, "tags", *_DICT_FIELDS))


def _trusted(out: dict[str, Any]) -> bool:
    """Whether ``SpanIn.model_validate(out, context=JSON_CHECKED_CONTEXT)`` (``out`` from
    ``_map(typed=True)``, its JSON values checked) would give exactly ``out``: the checks of the
    fields the mapper does not bound by construction. False sends the span to the validator."""
    end = out.get("end_time")
    if end is not None and end < out["start_time"]:
        return False
    usage = out.get("usage")
    if usage is not None:
        for k, v in usage.items():
            if k == "details":
                if any(n > MAX_TOKENS for n in v.values()):
                    return False
            elif v > MAX_TOKENS:
                return False
    cost = out.get("cost")
    if cost is not None and any(v >= _MAX_COST for v in cost.values()):
        return False
    version = out.get("prompt_version")
    if version is not None and version > _MAX_PROMPT_VERSION:
        return False
    # Text pydantic checks as ``str``: the text fields, tags and the keys of the dict fields must be
    # valid Unicode (no lone surrogates: JSON's "\ud800" decodes to one) and keys <= str_max_length.
    texts = [out["name"]]
    for f in out.keys() & _CHECKED_FIELDS:  # the few of them the span has, found at C speed
        v = out[f]
        if f in _TEXT_SET:
            if v is not None:
                texts.append(v)
        elif v:
            texts.extend(v)  # the tags, or a dict's keys
    if usage is not None and usage.get("details"):
        texts.extend(usage["details"])
    joined = "".join(texts)
    if len(joined) > _MAX_KEYS_TEXT:
        return False  # a key may be too long: let the validator say which
    if not joined.isascii():  # O(1) in CPython; only non-ASCII text is encoded to find surrogates
        try:
            joined.encode()
        except UnicodeEncodeError:
            return False
    return True


_new = object.__new__
_set = object.__setattr__


def _template(model: type[Any]) -> dict[str, Any]:
    """Every field of ``model`` in declaration order, with its default (None for required ones:
    the caller always gives those), so a copy updated with the values keeps pydantic's order."""
    return {name: (None if f.is_required() else f.default) for name, f in model.model_fields.items()}


_SPAN_TEMPLATE = _template(SpanIn)
_USAGE_TEMPLATE = _template(UsageIn)
_COST_TEMPLATE = _template(CostIn)


def _construct(model: type[_M], template: dict[str, Any], values: dict[str, Any]) -> _M:
    """``model.model_construct(**values)`` for values that are already what validation would make
    of them: the instance pydantic's validator builds (same ``__dict__``, same fields set), in
    ~1 µs where ``model_construct`` takes ~8."""
    obj = _new(model)
    d = template.copy()
    d.update(values)
    _set(obj, "__dict__", d)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def _event_time(value: Any) -> str | None:
    try:
        iso: str | None = _time(value, "time_unix_nano", required=False)
        return iso
    except OtelSpanError:
        return None


def _link_id(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex() or None
    return str(value).lower() if value else None
