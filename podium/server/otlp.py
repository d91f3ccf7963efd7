"""OTLP/HTTP trace export: request bodies -> Podium span dicts, and the export response.

``POST /v1/traces`` (and ``/api/public/otel/v1/traces``) receives an
``ExportTraceServiceRequest`` as binary protobuf (``application/x-protobuf``) or as
OTLP/JSON (``application/json``). Decompression (``Content-Encoding: gzip``) is the
caller's job. :func:`decode_traces` turns every span into a ``SpanIn``-shaped dict with
:func:`podium.core.conventions.span_from_otel`; a span that cannot be converted is
reported in the returned error list (one line each) and never stops the others. A body
that is not an OTLP request at all raises :class:`podium.errors.BadRequest`.

OTLP/JSON differs from protobuf's canonical JSON mapping: ``traceId`` / ``spanId`` /
``parentSpanId`` are hex strings (not base64), enums are integers. Both forms are
accepted here, as are names for enums, strings for 64-bit integers and snake_case keys
(older and hand-written exporters send all of these).

:func:`encode_response` builds the ``ExportTraceServiceResponse``, with
``partial_success`` when spans were rejected.
"""

from __future__ import annotations

import base64
import binascii
import json as jsonlib
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import ValidationError

from podium.core.conventions import span_from_otel
from podium.core.records import JSON_CHECKED_CONTEXT, MAX_JSON_DEPTH, SpanIn, format_path
from podium.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from podium.server.body import loads
from podium.server.convert import BatchBuilder

__all__ = [
    "JSON_CONTENT_TYPES",
    "PROTOBUF_CONTENT_TYPES",
    "decode_into",
    "decode_traces",
    "encode_response",
    "serialize",
]

PROTOBUF_CONTENT_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_CONTENT_TYPES = frozenset({"application/json"})

_HOW_TO_SEND = (
    "send an OTLP ExportTraceServiceRequest as binary protobuf with Content-Type application/x-protobuf, "
    "or as OTLP/JSON with Content-Type application/json (gzip it with Content-Encoding: gzip)"
)
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")
_CAMEL_RE = re.compile(r"(?<!^)(?=[A-Z])")

# A decoded span waiting for conversion: where it was in the request, and its span_from_otel kwargs
# (built lazily, so a malformed span fails on its own).
_Pending = tuple[Any, Callable[[], dict[str, Any]]]  # (str()-able place, kwargs builder)


# --- entry points ------------------------------------------------------------------------------


def decode_traces(
    body: bytes, *, content_type: str, max_spans: int | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Decode an OTLP/HTTP trace export body.

    Returns ``(spans, errors)``: ``SpanIn``-shaped dicts (each already validated by
    ``SpanIn``) and one message per span that could not be converted. ``content_type``
    may carry parameters (``application/json; charset=utf-8``). Raises
    :class:`UnsupportedMediaType` for other content types, :class:`BadRequest` for a
    body that is not an OTLP request (or OTLP/JSON nested deeper than ``MAX_JSON_DEPTH``)
    and :class:`PayloadTooLarge` for more than ``max_spans`` spans (counted before any
    conversion). CPU-bound: callers on an event loop run it in a worker thread.
    """
    spans: list[dict[str, Any]] = []
    errors = _convert(_pending(body, content_type, max_spans), lambda span, _rec: spans.append(span))
    return spans, errors


def decode_into(
    body: bytes, content_type: str, builder: BatchBuilder, *, max_spans: int | None = None
) -> list[str]:
    """Decode an OTLP/HTTP (or gRPC) trace export body straight into ``builder``: each span is
    mapped, validated once as :class:`SpanIn` and added (priced). Returns one message per span
    that could not be converted; raises as :func:`decode_traces`. What the routes run."""
    add = builder.add_span
    if content_type.split(";", 1)[0].strip().lower() in PROTOBUF_CONTENT_TYPES:
        return _convert_protobuf(_parse_protobuf(body, max_spans), lambda _span, rec: add(rec))
    return _convert(_pending(body, content_type, max_spans), lambda _span, rec: add(rec))


def _pending(body: bytes, content_type: str, max_spans: int | None) -> list[_Pending]:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in PROTOBUF_CONTENT_TYPES:
        return _protobuf_spans(body, max_spans)
    if media in JSON_CONTENT_TYPES:
        return _json_spans(body, max_spans)
    raise UnsupportedMediaType(
        f"Content-Type {media or '(none)'!r} is not an OTLP trace encoding; "
        "send application/x-protobuf or application/json"
    )


def _convert(pending: list[_Pending], accept: Callable[[dict[str, Any], SpanIn], None]) -> list[str]:
    errors: list[str] = []
    validate = SpanIn.model_validate
    for where, build in pending:
        try:
            checked: list[bool] = []
            span = span_from_otel(**build(), json_checked=checked)
            # span_from_otel made every JSON value finite and checked its depth: no second walk
            rec = validate(span, context=JSON_CHECKED_CONTEXT if checked else None)
        except ValidationError as e:
            errors.append(f"{where}: {_describe(e)}")
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            errors.append(f"{where}: {e}")
        except RecursionError:  # an attribute holding deeply nested JSON text
            errors.append(f"{where}: a value nests deeper than {MAX_JSON_DEPTH} levels; flatten it")
        else:
            accept(span, rec)
    return errors


def encode_response(*, rejected_spans: int = 0, error_message: str = "", json: bool = False) -> bytes:
    """An ``ExportTraceServiceResponse``: binary protobuf, or OTLP/JSON when ``json``.

    ``partial_success`` is set when ``rejected_spans > 0`` or there is an ``error_message``
    (OTLP allows a warning with zero rejected spans); otherwise the response is empty.
    """
    msg = ExportTraceServiceResponse()
    if rejected_spans > 0 or error_message:
        msg.partial_success.rejected_spans = max(0, int(rejected_spans))
        msg.partial_success.error_message = error_message
    return serialize(msg, json=json)


def serialize(msg: Any, *, json: bool) -> bytes:
    """An export response as OTLP sends it: binary protobuf, or compact OTLP/JSON."""
    if json:
        return jsonlib.dumps(json_format.MessageToDict(msg), separators=(",", ":")).encode()
    return bytes(msg.SerializeToString())


# --- protobuf ----------------------------------------------------------------------------------


def _sniff(body: bytes) -> str:
    head = body.lstrip()[:1]
    if body[:2] == b"\x1f\x8b":
        return "; the body looks gzip-compressed: send it with Content-Encoding: gzip"
    if head in (b"{", b"["):
        # A protobuf export starts with 0x0a (a newline to lstrip) and a length that may be 91 or 123
        # ('[' or '{'): call it JSON only when it parses as JSON.
        try:
            jsonlib.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return ""
        return "; the body looks like JSON: send it with Content-Type application/json"
    return ""


def _check_count(count: int, max_spans: int | None) -> None:
    if max_spans is not None and count > max_spans:
        raise PayloadTooLarge(
            f"OTLP request has {count} spans, over the limit of {max_spans} spans per request "
            "(PODIUM_MAX_BATCH_ITEMS); export smaller batches (e.g. BatchSpanProcessor max_export_batch_size)",
            details=[{"field": "resourceSpans", "message": f"{count} spans > {max_spans}"}],
        )


def _parse_protobuf(body: bytes, max_spans: int | None) -> ExportTraceServiceRequest:
    hint = _sniff(body)
    if hint:  # JSON can parse as (unknown) protobuf groups; refuse it up front
        raise BadRequest(f"body is not a valid OTLP ExportTraceServiceRequest protobuf{hint}")
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise BadRequest(f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {e}; {_HOW_TO_SEND}")
    _check_count(sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans), max_spans)
    return request


def _convert_protobuf(
    request: ExportTraceServiceRequest, accept: Callable[[dict[str, Any], SpanIn], None]
) -> list[str]:
    """:func:`_convert` of :func:`_protobuf_spans`, without building the pending list: each span's
    ``span_from_otel`` arguments are read from the message inside the span's own ``try``."""
    errors: list[str] = []
    validate = SpanIn.model_validate
    for r, rs in enumerate(request.resource_spans):
        resource = _pb_attributes(rs.resource.attributes)
        for s, ss in enumerate(rs.scope_spans):
            scope_name = ss.scope.name or None
            scope_version = ss.scope.version or None
            for k, span in enumerate(ss.spans):
                try:
                    checked: list[bool] = []
                    status = span.status
                    out = span_from_otel(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=int(span.kind),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano or None,
                        status_code=int(status.code),
                        status_message=status.message or None,
                        attributes=_pb_attributes(span.attributes),
                        events=_pb_events(span.events) if span.events else [],
                        links=_pb_links(span.links) if span.links else [],
                        resource_attributes=resource,
                        scope_name=scope_name,
                        scope_version=scope_version,
                        json_checked=checked,
                    )
                    # span_from_otel made every JSON value finite and checked its depth: no second walk
                    rec = validate(out, context=JSON_CHECKED_CONTEXT if checked else None)
                except ValidationError as e:
                    errors.append(f"{_PbWhere(r, s, k, span)}: {_describe(e)}")
                except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
                    errors.append(f"{_PbWhere(r, s, k, span)}: {e}")
                except RecursionError:  # an attribute holding deeply nested JSON text
                    errors.append(
                        f"{_PbWhere(r, s, k, span)}: a value nests deeper than {MAX_JSON_DEPTH} levels; flatten it"
                    )
                else:
                    accept(out, rec)
    return errors


def _pb_events(events: Any) -> list[dict[str, Any]]:
    return [
        {"name": ev.name, "time_unix_nano": ev.time_unix_nano, "attributes": _pb_attributes(ev.attributes)}
        for ev in events
    ]


def _pb_links(links: Any) -> list[dict[str, Any]]:
    return [
        {
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "attributes": _pb_attributes(link.attributes),
        }
        for link in links
    ]


def _protobuf_spans(body: bytes, max_spans: int | None = None) -> list[_Pending]:
    request = _parse_protobuf(body, max_spans)
    pending: list[_Pending] = []
    for r, rs in enumerate(request.resource_spans):
        resource = _pb_attributes(rs.resource.attributes)
        for s, ss in enumerate(rs.scope_spans):
            scope_name = ss.scope.name or None
            scope_version = ss.scope.version or None
            for k, span in enumerate(ss.spans):
                pending.append(
                    (_PbWhere(r, s, k, span), _pb_kwargs(span, resource, scope_name, scope_version))
                )
    return pending


class _PbWhere:
    """A protobuf span's place in the request, formatted only when an error names it."""

    __slots__ = ("k", "r", "s", "span")

    def __init__(self, r: int, s: int, k: int, span: Span) -> None:
        self.r, self.s, self.k, self.span = r, s, k, span

    def __str__(self) -> str:
        return _where(self.r, self.s, self.k, self.span.span_id.hex(), self.span.name)


def _pb_kwargs(
    span: Span, resource: dict[str, Any], scope_name: str | None, scope_version: str | None
) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        return {
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex() or None,
            "name": span.name,
            "kind": int(span.kind),
            "start_time_unix_nano": span.start_time_unix_nano,
            "end_time_unix_nano": span.end_time_unix_nano or None,
            "status_code": int(span.status.code),
            "status_message": span.status.message or None,
            "attributes": _pb_attributes(span.attributes),
            "events": [
                {
                    "name": ev.name,
                    "time_unix_nano": ev.time_unix_nano,
                    "attributes": _pb_attributes(ev.attributes),
                }
                for ev in span.events
            ],
            "links": [
                {
                    "trace_id": link.trace_id.hex(),
                    "span_id": link.span_id.hex(),
                    "attributes": _pb_attributes(link.attributes),
                }
                for link in span.links
            ],
            "resource_attributes": resource,
            "scope_name": scope_name,
            "scope_version": scope_version,
        }

    return build


def _pb_attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        # string, bool, int, double (most attributes) inline; _pb_value for the rest
        out[kv.key] = getattr(v, which) if which in _PB_SCALARS else _pb_value(v)
    return out


def _pb_value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which in _PB_SCALARS:  # string, bool, int, double: most attributes
        return getattr(v, which)
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None  # empty AnyValue (or a dictionary index, which traces do not use)


_PB_SCALARS = frozenset({"string_value", "bool_value", "int_value", "double_value"})


# --- OTLP/JSON ---------------------------------------------------------------------------------


def _get(obj: dict[str, Any], camel: str) -> Any:
    """A field by its lowerCamelCase JSON name, or its snake_case proto name."""
    if camel in obj:
        return obj[camel]
    snake = _SNAKE.get(camel)
    if snake is None:
        snake = _SNAKE[camel] = _CAMEL_RE.sub("_", camel).lower()
    return obj.get(snake)


_SNAKE: dict[str, str] = {}  # lowerCamelCase field name -> snake_case (the few OTLP field names)


def _json_list(obj: dict[str, Any], camel: str, where: str) -> list[Any]:
    v = _get(obj, camel)
    if v is None:
        return []
    if not isinstance(v, list):
        raise BadRequest(f"{where}.{camel} must be a JSON array, got {type(v).__name__}; {_HOW_TO_SEND}")
    return v


def _json_object(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise BadRequest(f"{where} must be a JSON object, got {type(v).__name__}; {_HOW_TO_SEND}")
    return v


def _json_spans(body: bytes, max_spans: int | None = None) -> list[_Pending]:
    if body[:2] == b"\x1f\x8b":
        raise BadRequest(f"body is not valid OTLP/JSON{_sniff(body)}")
    try:
        doc = loads(body)  # msgspec where it agrees with json.loads (which reads OTLP's NaN/Infinity)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(
            f'body is not valid JSON ({e}); an OTLP/JSON trace export is {{"resourceSpans": [...]}}; {_HOW_TO_SEND}'
        )
    except RecursionError:
        raise BadRequest(
            f"OTLP/JSON body nests deeper than {MAX_JSON_DEPTH} levels; flatten attribute values"
        )
    _check_depth(doc)
    if not isinstance(doc, dict):
        raise BadRequest(
            f'an OTLP/JSON trace export is a JSON object {{"resourceSpans": [...]}}; {_HOW_TO_SEND}'
        )
    if doc and _get(doc, "resourceSpans") is None:
        raise BadRequest(
            f"the JSON object has no resourceSpans (keys: {sorted(doc)[:5]}); an OTLP/JSON trace export is "
            '{"resourceSpans": [{"resource": {...}, "scopeSpans": [{"scope": {...}, "spans": [...]}]}]}'
        )
    pending: list[_Pending] = []
    for r, rs in enumerate(_json_list(doc, "resourceSpans", "body")):
        rwhere = f"resourceSpans[{r}]"
        rs = _json_object(rs, rwhere)
        resource = _json_object(_get(rs, "resource"), f"{rwhere}.resource")
        resource_attrs = _json_attributes(_get(resource, "attributes"))
        scopes = _json_list(rs, "scopeSpans", rwhere) or _json_list(rs, "instrumentationLibrarySpans", rwhere)
        for s, ss in enumerate(scopes):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            ss = _json_object(ss, swhere)
            scope = _json_object(_get(ss, "scope") or _get(ss, "instrumentationLibrary"), f"{swhere}.scope")
            scope_name = _get(scope, "name") or None
            scope_version = _get(scope, "version") or None
            for k, span in enumerate(_json_list(ss, "spans", swhere)):
                if not isinstance(span, dict):
                    pending.append((_where(r, s, k, None, None), _fail("a span must be a JSON object")))
                    continue
                sid, name = _get(span, "spanId"), _get(span, "name")
                where = _JsonWhere(
                    r, s, k, sid if isinstance(sid, str) else None, name if isinstance(name, str) else None
                )
                pending.append(
                    (
                        where,
                        _json_kwargs(
                            span,
                            resource_attrs,
                            scope_name if isinstance(scope_name, str) else None,
                            scope_version if isinstance(scope_version, str) else None,
                        ),
                    )
                )
    _check_count(len(pending), max_spans)
    return pending


class _JsonWhere:
    """An OTLP/JSON span's place in the request, formatted only when an error names it."""

    __slots__ = ("k", "name", "r", "s", "span_id")

    def __init__(self, r: int, s: int, k: int, span_id: str | None, name: str | None) -> None:
        self.r, self.s, self.k, self.span_id, self.name = r, s, k, span_id, name

    def __str__(self) -> str:
        return _where(self.r, self.s, self.k, self.span_id, self.name)


def _check_depth(doc: Any) -> None:
    """Refuse OTLP/JSON nested deeper than MAX_JSON_DEPTH (NaN/Infinity stay allowed here:
    OTLP encodes them, and attribute conversion stores them as strings)."""
    path = _too_deep_path(doc)
    if path is not None:
        field = format_path(path)
        raise BadRequest(
            f"OTLP/JSON field {field} nests deeper than {MAX_JSON_DEPTH} levels of objects/arrays; "
            "flatten attribute values",
            details=[{"field": field, "message": f"deeper than {MAX_JSON_DEPTH} levels"}],
        )


def _too_deep(v: Any, depth: int) -> bool:
    """Whether a container sits more than MAX_JSON_DEPTH levels down (``v`` at level ``depth``)."""
    for child in v.values() if type(v) is dict else v:
        t = type(child)
        if (t is dict or t is list) and (depth >= MAX_JSON_DEPTH or _too_deep(child, depth + 1)):
            return True
    return False


def _too_deep_path(doc: Any) -> list[str | int] | None:
    if not isinstance(doc, dict | list) or (type(doc) in (dict, list) and not _too_deep(doc, 1)):
        return None  # the usual case, without building a path per container
    # json_problem also reports non-finite numbers; skip past those by checking depth only.
    stack: list[tuple[Any, int, list[str | int]]] = [(doc, 1, [])]
    while stack:
        v, depth, path = stack.pop()
        children = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        for k, child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_JSON_DEPTH:
                    return [*path, k]
                stack.append((child, depth + 1, [*path, k]))
    return None


def _fail(message: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        raise ValueError(message)

    return build


def _json_kwargs(
    span: dict[str, Any], resource: dict[str, Any], scope_name: str | None, scope_version: str | None
) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        status = _get(span, "status")
        status = status if isinstance(status, dict) else {}
        events = []
        for ev in _get(span, "events") or []:
            if isinstance(ev, dict):
                events.append(
                    {
                        "name": _get(ev, "name") or "",
                        "time_unix_nano": _json_int(_get(ev, "timeUnixNano"), "timeUnixNano", required=False),
                        "attributes": _json_attributes(_get(ev, "attributes")),
                    }
                )
        links = []
        for link in _get(span, "links") or []:
            if isinstance(link, dict):
                links.append(
                    {
                        "trace_id": _json_id(_get(link, "traceId"), 16, "links.traceId"),
                        "span_id": _json_id(_get(link, "spanId"), 8, "links.spanId"),
                        "attributes": _json_attributes(_get(link, "attributes")),
                    }
                )
        name = _get(span, "name")
        message = _get(status, "message")
        return {
            "trace_id": _json_id(_get(span, "traceId"), 16, "traceId"),
            "span_id": _json_id(_get(span, "spanId"), 8, "spanId"),
            "parent_span_id": _json_id(_get(span, "parentSpanId"), 8, "parentSpanId"),
            "name": name if isinstance(name, str) else "",
            "kind": _get(span, "kind") or 0,
            "start_time_unix_nano": _json_int(
                _get(span, "startTimeUnixNano"), "startTimeUnixNano", required=True
            ),
            "end_time_unix_nano": _json_int(_get(span, "endTimeUnixNano"), "endTimeUnixNano", required=False),
            "status_code": _get(status, "code") or 0,
            "status_message": message if isinstance(message, str) and message else None,
            "attributes": _json_attributes(_get(span, "attributes")),
            "events": events,
            "links": links,
            "resource_attributes": resource,
            "scope_name": scope_name,
            "scope_version": scope_version,
        }

    return build


def _json_id(value: Any, size: int, field: str) -> str | None:
    """OTLP/JSON ids are hex; protobuf's JSON mapping would make them base64. Accept both."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a hex string, got {type(value).__name__}")
    s = value.strip()
    if len(s) == 2 * size and _HEX_RE.match(s):
        return s.lower()
    try:
        raw = base64.b64decode(
            s + "=" * (-len(s) % 4), altchars=b"-_" if ("-" in s or "_" in s) else None, validate=True
        )
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == size:
        return raw.hex()
    if s and _HEX_RE.match(s) and len(s) % 2 == 0:
        return s.lower()  # an odd-sized but hex id: let the conventions judge it
    raise ValueError(f"{field} {s[:64]!r} is neither {2 * size} hex characters nor base64 of {size} bytes")


def _json_int(value: Any, field: str, *, required: bool) -> int | None:
    if value is None or value == "":
        if required:
            raise ValueError(f"{field} is missing; send Unix nanoseconds (a number or a decimal string)")
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} must be Unix nanoseconds, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(
        f"{field} {str(value)[:40]!r} is not an integer; send Unix nanoseconds as a decimal string"
    )


def _json_attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(kvs, dict):  # lenient: a plain {"key": value} map
        return {str(k): _json_value(v) for k, v in kvs.items()}
    if not isinstance(kvs, list):
        return out
    for kv in kvs:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v  # lenient: a bare JSON value
    if len(v) == 1:  # {"stringValue": ...}: the usual AnyValue, one lookup
        ((key, raw),) = v.items()
        conv = _JSON_VALUE_BY_KEY.get(key)
        return None if conv is None or raw is None else conv(raw)
    for camel, conv in _JSON_VALUE_FIELDS:
        raw = _get(v, camel)
        if raw is not None:
            return conv(raw)
    return None


def _json_double(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v.strip())  # "NaN", "Infinity", "-Infinity" and decimal strings
        except ValueError:
            return v
    return v


def _json_intval(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return v
    return v


def _json_array(v: Any) -> Any:
    values = _get(v, "values") if isinstance(v, dict) else v
    return [_json_value(x) for x in values] if isinstance(values, list) else []


def _json_kvlist(v: Any) -> Any:
    values = _get(v, "values") if isinstance(v, dict) else v
    return _json_attributes(values) if isinstance(values, list) else {}


_JSON_VALUE_FIELDS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("stringValue", lambda x: x),
    ("boolValue", lambda x: x),
    ("intValue", _json_intval),
    ("doubleValue", _json_double),
    ("arrayValue", _json_array),
    ("kvlistValue", _json_kvlist),
    ("bytesValue", lambda x: x),  # already base64 in JSON
)
#: The converter of a one-field AnyValue, by its field name (lowerCamelCase or snake_case).
_JSON_VALUE_BY_KEY: dict[str, Callable[[Any], Any]] = {
    **{_CAMEL_RE.sub("_", camel).lower(): conv for camel, conv in _JSON_VALUE_FIELDS},
    **dict(_JSON_VALUE_FIELDS),
}


# --- helpers -----------------------------------------------------------------------------------


def _where(r: int, s: int, k: int, span_id: str | None, name: str | None) -> str:
    label = f"resourceSpans[{r}].scopeSpans[{s}].spans[{k}]"
    extra = []
    if span_id:
        extra.append(f"spanId={span_id[:40]}")
    if name:
        extra.append(f"name={name[:80]!r}")
    return f"span {label}" + (f" ({', '.join(extra)})" if extra else "")


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
