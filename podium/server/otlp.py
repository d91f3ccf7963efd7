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

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import ValidationError

from podium.core.conventions import OtelScope, span_from_otel, span_record
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
    mapped straight to its :class:`SpanIn` record (:func:`podium.core.conventions.span_record`: the
    record ``SpanIn`` validation of :func:`decode_traces`' dict gives, without that validation
    where the mapper guarantees the result) and added (priced). Returns one message per span that
    could not be converted, the same as :func:`decode_traces`'; raises as it does. What the routes run."""
    add = builder.add_span
    media = content_type.split(";", 1)[0].strip().lower()
    if media in PROTOBUF_CONTENT_TYPES:
        return _convert_protobuf(_parse_protobuf(body, max_spans), add)
    if media in JSON_CONTENT_TYPES:
        typed = _typed_json(body)
        if typed is not None:
            errors = _convert_typed(typed, add, max_spans)
            if errors is not None:
                return errors
        return _convert_json(_json_scopes(body, max_spans), add)
    return _convert_records(_pending(body, content_type, max_spans), add)  # raises UnsupportedMediaType


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


#: What converting one span may raise; :func:`_failure` words each for the export's answer.
_SPAN_ERRORS = (ValidationError, ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError)


def _failure(where: object, e: Exception) -> str:
    """One span's conversion error as the export's partial-success message states it."""
    if isinstance(e, ValidationError):  # (a ValueError: test it first)
        return f"{where}: {_describe(e)}"
    if isinstance(e, RecursionError):  # an attribute holding deeply nested JSON text
        return f"{where}: a value nests deeper than {MAX_JSON_DEPTH} levels; flatten it"
    return f"{where}: {e}"


def _convert(pending: list[_Pending], accept: Callable[[dict[str, Any], SpanIn], None]) -> list[str]:
    errors: list[str] = []
    validate = SpanIn.model_validate
    for where, build in pending:
        try:
            checked: list[bool] = []
            span = span_from_otel(**build(), json_checked=checked)
            # span_from_otel made every JSON value finite and checked its depth: no second walk
            rec = validate(span, context=JSON_CHECKED_CONTEXT if checked else None)
        except _SPAN_ERRORS as e:
            errors.append(_failure(where, e))
        else:
            accept(span, rec)
    return errors


def _convert_records(pending: list[_Pending], add: Callable[[SpanIn], None]) -> list[str]:
    """:func:`_convert` through :func:`span_record` (no dict, no second validation)."""
    errors: list[str] = []
    for where, build in pending:
        try:
            rec = span_record(**build())
        except _SPAN_ERRORS as e:
            errors.append(_failure(where, e))
        else:
            add(rec)
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


def _convert_protobuf(request: ExportTraceServiceRequest, add: Callable[[SpanIn], None]) -> list[str]:
    """:func:`_convert_records` of :func:`_protobuf_spans`, without building the pending list: each
    span's ``span_record`` arguments are read from the message inside the span's own ``try``; the
    resource and scope are mapped once per ``ScopeSpans``."""
    errors: list[str] = []
    for r, rs in enumerate(request.resource_spans):
        resource = _pb_attributes(rs.resource.attributes)
        for s, ss in enumerate(rs.scope_spans):
            scope = OtelScope(resource, ss.scope.name or None, ss.scope.version or None)
            for k, span in enumerate(ss.spans):
                try:
                    status = span.status
                    rec = span_record(
                        trace_id=span.trace_id,  # bytes: span_record makes them hex
                        span_id=span.span_id,
                        parent_span_id=span.parent_span_id or None,
                        name=span.name,
                        kind=int(span.kind),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano or None,
                        status_code=int(status.code),
                        status_message=status.message or None,
                        attributes=_pb_attributes(span.attributes),
                        events=_pb_events(span.events) if span.events else [],
                        links=_pb_links(span.links) if span.links else [],
                        scope=scope,
                    )
                except _SPAN_ERRORS as e:
                    errors.append(_failure(_PbWhere(r, s, k, span), e))
                else:
                    add(rec)
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
            scope = OtelScope(resource, ss.scope.name or None, ss.scope.version or None)
            for k, span in enumerate(ss.spans):
                pending.append((_PbWhere(r, s, k, span), _pb_kwargs(span, scope)))
    return pending


class _PbWhere:
    """A protobuf span's place in the request, formatted only when an error names it."""

    __slots__ = ("k", "r", "s", "span")

    def __init__(self, r: int, s: int, k: int, span: Span) -> None:
        self.r, self.s, self.k, self.span = r, s, k, span

    def __str__(self) -> str:
        return _where(self.r, self.s, self.k, self.span.span_id.hex(), self.span.name)


def _pb_kwargs(span: Span, scope: OtelScope) -> Callable[[], dict[str, Any]]:
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
            "scope": scope,
        }

    return build


def _pb_attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        v = kv.value
        text = v.string_value  # most attributes: one read ("" when unset or another type: look)
        if text:
            out[kv.key] = text
            continue
        which = v.WhichOneof("value")
        # string, bool, int, double inline; _pb_value for the rest
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
    pending: list[_Pending] = []
    for r, s, scope, spans in _json_scopes(body, max_spans):
        for k, span in enumerate(spans):
            if not isinstance(span, dict):
                pending.append((_where(r, s, k, None, None), _fail("a span must be a JSON object")))
                continue
            pending.append((_json_where(r, s, k, span), _json_kwargs(span, scope)))
    return pending


def _convert_json(scopes: list[tuple[int, int, OtelScope, list[Any]]], add: Callable[[SpanIn], None]) -> list[str]:
    """:func:`_convert_records` of :func:`_json_spans`, without the pending list: each span's
    arguments are read inside its own ``try``, its place formatted only for an error."""
    errors: list[str] = []
    for r, s, scope, spans in scopes:
        for k, span in enumerate(spans):
            if not isinstance(span, dict):
                errors.append(f"{_where(r, s, k, None, None)}: a span must be a JSON object")
                continue
            try:
                rec = span_record(**_json_args(span, scope))
            except _SPAN_ERRORS as e:
                errors.append(_failure(_json_where(r, s, k, span), e))
            else:
                add(rec)
    return errors


# --- OTLP/JSON the way exporters write it: decoded by msgspec straight into structs -------------
# Only for bodies that use exactly OTLP's lowerCamelCase fields with the JSON types exporters send
# (scalars where OTLP has scalars): anything else (snake_case, legacy instrumentationLibrarySpans,
# bare attribute values, NaN literals, lone surrogates, ...) fails to decode here and takes the
# general path above, so every body is converted, accepted or refused exactly as that path has it.
# No dict per attribute or AnyValue, and structs that the garbage collector does not track.

_Scalar = str | int | float | bool | None


class _TAnyValue(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    string_value: _Scalar = None
    bool_value: _Scalar = None
    int_value: _Scalar = None
    double_value: _Scalar = None
    array_value: Any = None  # {"values": [AnyValue...]}: converted by the general path's _json_array
    kvlist_value: Any = None
    bytes_value: _Scalar = None


class _TKeyValue(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    key: _Scalar = None
    value: _TAnyValue | None = None


class _TStatus(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    message: _Scalar = None
    code: _Scalar = None


class _TEvent(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    time_unix_nano: _Scalar = None
    name: _Scalar = None
    attributes: list[_TKeyValue] | None = None
    dropped_attributes_count: _Scalar = None


class _TLink(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    trace_id: _Scalar = None
    span_id: _Scalar = None
    trace_state: _Scalar = None
    attributes: list[_TKeyValue] | None = None
    dropped_attributes_count: _Scalar = None
    flags: _Scalar = None


class _TSpan(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    trace_id: _Scalar = None
    span_id: _Scalar = None
    trace_state: _Scalar = None
    parent_span_id: _Scalar = None
    flags: _Scalar = None
    name: _Scalar = None
    kind: _Scalar = None
    start_time_unix_nano: _Scalar = None
    end_time_unix_nano: _Scalar = None
    attributes: list[_TKeyValue] | None = None
    dropped_attributes_count: _Scalar = None
    events: list[_TEvent] | None = None
    dropped_events_count: _Scalar = None
    links: list[_TLink] | None = None
    dropped_links_count: _Scalar = None
    status: _TStatus | None = None


class _TScope(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    name: _Scalar = None
    version: _Scalar = None
    attributes: list[_TKeyValue] | None = None
    dropped_attributes_count: _Scalar = None


class _TScopeSpans(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    scope: _TScope | None = None
    spans: list[_TSpan] | None = None
    schema_url: _Scalar = None


class _TResource(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    attributes: list[_TKeyValue] | None = None
    dropped_attributes_count: _Scalar = None


class _TResourceSpans(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    resource: _TResource | None = None
    scope_spans: list[_TScopeSpans] | None = None
    schema_url: _Scalar = None


class _TRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    resource_spans: list[_TResourceSpans]


_typed_decode = msgspec.json.Decoder(_TRequest).decode
#: The deepest an AnyValue's array/kvlist value can sit in an OTLP/JSON body that decodes as
#: _TRequest (a span event's attribute: resourceSpans[].scopeSpans[].spans[].events[].attributes[]
#: .value.arrayValue is level 13): its content is checked against MAX_JSON_DEPTH from there.
_ANYVALUE_LEVEL = 13


class _TooDeepHere(Exception):
    """A container may nest past MAX_JSON_DEPTH: leave the body to the general path (which says where)."""


def _typed_json(body: bytes) -> _TRequest | None:
    """The body as :class:`_TRequest`, or None when it is not OTLP/JSON exactly as exporters write
    it (the general path then decides, with its messages). Its depth is checked while converting."""
    if body[:2] == b"\x1f\x8b":
        return None
    try:
        return _typed_decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None


def _typed_attributes(kvs: list[_TKeyValue] | None) -> dict[str, Any]:
    """:func:`_json_attributes` of the same JSON (a list of KeyValue objects)."""
    out: dict[str, Any] = {}
    if kvs is None:
        return out
    for kv in kvs:
        key = kv.key
        if type(key) is not str:
            continue
        v = kv.value
        if v is None:
            out[key] = None
            continue
        # _json_value: the first field set, in _JSON_VALUE_FIELDS' order
        if v.string_value is not None:
            out[key] = v.string_value
        elif v.bool_value is not None:
            out[key] = v.bool_value
        elif v.int_value is not None:
            out[key] = _json_intval(v.int_value)
        elif v.double_value is not None:
            out[key] = _json_double(v.double_value)
        elif v.array_value is not None:
            if type(v.array_value) in (dict, list) and _too_deep(v.array_value, _ANYVALUE_LEVEL):
                raise _TooDeepHere
            out[key] = _json_array(v.array_value)
        elif v.kvlist_value is not None:
            if type(v.kvlist_value) in (dict, list) and _too_deep(v.kvlist_value, _ANYVALUE_LEVEL):
                raise _TooDeepHere
            out[key] = _json_kvlist(v.kvlist_value)
        elif v.bytes_value is not None:
            out[key] = v.bytes_value
        else:
            out[key] = None
    return out


def _typed_args(span: _TSpan, scope: OtelScope) -> dict[str, Any]:
    """:func:`_json_args` of the same JSON: the same values, and the same first error."""
    # Attributes first: converting them raises nothing but _TooDeepHere, which must be found for
    # every span (the general path refuses the whole body), even one whose ids are bad.
    attributes = _typed_attributes(span.attributes)
    events_in = span.events or ()
    links_in = span.links or ()
    event_attrs = [_typed_attributes(ev.attributes) for ev in events_in]
    link_attrs = [_typed_attributes(link.attributes) for link in links_in]
    status = span.status
    events = []
    for ev, ev_attributes in zip(events_in, event_attrs, strict=True):
        events.append(
            {
                "name": ev.name or "",
                "time_unix_nano": _json_int(ev.time_unix_nano, "timeUnixNano", required=False),
                "attributes": ev_attributes,
            }
        )
    links = []
    for link, link_attributes in zip(links_in, link_attrs, strict=True):
        links.append(
            {
                "trace_id": _json_id(link.trace_id, 16, "links.traceId"),
                "span_id": _json_id(link.span_id, 8, "links.spanId"),
                "attributes": link_attributes,
            }
        )
    name = span.name
    message = status.message if status is not None else None
    return {
        "trace_id": _json_id(span.trace_id, 16, "traceId"),
        "span_id": _json_id(span.span_id, 8, "spanId"),
        "parent_span_id": _json_id(span.parent_span_id, 8, "parentSpanId"),
        "name": name if isinstance(name, str) else "",
        "kind": span.kind or 0,
        "start_time_unix_nano": _json_int(span.start_time_unix_nano, "startTimeUnixNano", required=True),
        "end_time_unix_nano": _json_int(span.end_time_unix_nano, "endTimeUnixNano", required=False),
        "status_code": (status.code if status is not None else None) or 0,
        "status_message": message if isinstance(message, str) and message else None,
        "attributes": attributes,
        "events": events,
        "links": links,
        "scope": scope,
    }


def _convert_typed(req: _TRequest, add: Callable[[SpanIn], None], max_spans: int | None) -> list[str] | None:
    """:func:`_convert_json` of a body that decoded as :class:`_TRequest`, or None (nothing added)
    where the general path must decide: an AnyValue array/kvlist that may nest too deep (the
    general path refuses the whole body, naming the field), or more spans than ``max_spans``
    (the general path checks depth first)."""
    try:
        return _convert_typed_spans(req, add, max_spans)
    except _TooDeepHere:
        return None


def _convert_typed_spans(req: _TRequest, add: Callable[[SpanIn], None], max_spans: int | None) -> list[str] | None:
    scopes: list[tuple[int, int, OtelScope, list[_TSpan]]] = []
    for r, rs in enumerate(req.resource_spans):
        resource_attrs = _typed_attributes(rs.resource.attributes) if rs.resource is not None else {}
        for s, ss in enumerate(rs.scope_spans or ()):
            tscope = ss.scope
            if tscope is not None and tscope.attributes:
                _typed_attributes(tscope.attributes)  # not mapped, but the depth rule covers them
            scope_name = (tscope.name if tscope is not None else None) or None
            scope_version = (tscope.version if tscope is not None else None) or None
            otel_scope = OtelScope(
                resource_attrs,
                scope_name if isinstance(scope_name, str) else None,
                scope_version if isinstance(scope_version, str) else None,
            )
            scopes.append((r, s, otel_scope, ss.spans or []))
    if max_spans is not None and sum(len(spans) for _r, _s, _scope, spans in scopes) > max_spans:
        return None
    errors: list[str] = []
    records: list[SpanIn] = []  # added only once every span's values are known to be shallow enough
    for r, s, scope, spans in scopes:
        for k, span in enumerate(spans):
            try:
                rec = span_record(**_typed_args(span, scope))
            except _SPAN_ERRORS as e:
                errors.append(_failure(_typed_where(r, s, k, span), e))
            else:
                records.append(rec)
    for rec in records:
        add(rec)
    return errors


def _typed_where(r: int, s: int, k: int, span: _TSpan) -> _JsonWhere:
    sid, name = span.span_id, span.name
    return _JsonWhere(r, s, k, sid if isinstance(sid, str) else None, name if isinstance(name, str) else None)


def _json_where(r: int, s: int, k: int, span: dict[str, Any]) -> _JsonWhere:
    sid, name = _get(span, "spanId"), _get(span, "name")
    return _JsonWhere(r, s, k, sid if isinstance(sid, str) else None, name if isinstance(name, str) else None)


def _json_scopes(body: bytes, max_spans: int | None) -> list[tuple[int, int, OtelScope, list[Any]]]:
    """Parse an OTLP/JSON body and check its structure down to the span lists: ``(resource index,
    scope index, OtelScope, spans)`` per ScopeSpans. Raises BadRequest / PayloadTooLarge before any
    span is converted."""
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
    found: list[tuple[int, int, OtelScope, list[Any]]] = []
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
            otel_scope = OtelScope(
                resource_attrs,
                scope_name if isinstance(scope_name, str) else None,
                scope_version if isinstance(scope_version, str) else None,
            )
            found.append((r, s, otel_scope, _json_list(ss, "spans", swhere)))
    _check_count(sum(len(spans) for _r, _s, _scope, spans in found), max_spans)
    return found


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


def _json_kwargs(span: dict[str, Any], scope: OtelScope) -> Callable[[], dict[str, Any]]:
    return lambda: _json_args(span, scope)


def _json_args(span: dict[str, Any], scope: OtelScope) -> dict[str, Any]:
    """The :func:`span_record` / :func:`span_from_otel` arguments of one OTLP/JSON span."""
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
        "scope": scope,
    }


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
