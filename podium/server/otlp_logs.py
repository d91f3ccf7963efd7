"""OTLP logs: GenAI events sent as log records -> their span's input and output.

``POST /v1/logs`` (and ``/api/public/otel/v1/logs``, and ``LogsService/Export`` over
OTLP/gRPC) receives an ``ExportLogsServiceRequest`` as binary protobuf or OTLP/JSON.
Podium is not a log store: it keeps the GenAI events that instrumentations emit as log
records instead of span events (``opentelemetry-instrumentation-openai-v2`` and the
other GenAI instrumentations: ``gen_ai.system/user/assistant/tool.message``,
``gen_ai.choice``, ``gen_ai.client.inference.operation.details``) and attaches them to
the span whose ``trace_id`` / ``span_id`` they carry: the messages become the span's
input, the choices its output (:func:`podium.core.conventions.genai_log_io`).

Logs and spans travel in separate exports, in either order. The events are stored as a
*partial* span row (empty name, only input/output set): the writer's merge rules keep
every other column of a span that is already stored, and the real span, when it comes
later, fills them in (a NULL never erases the input/output the logs set). A record
without a span id, or that is not a GenAI event, is counted in the response's
``partial_success.rejected_log_records`` with the reason, never dropped silently.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from pydantic import ValidationError

from podium.core.conventions import GENAI_DETAILS_EVENT, GENAI_LOG_EVENTS, genai_log_io, nanos_to_iso
from podium.core.records import SpanIn
from podium.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from podium.server.convert import BatchBuilder
from podium.server.otlp import (
    JSON_CONTENT_TYPES,
    PROTOBUF_CONTENT_TYPES,
    _check_depth,
    _get,
    _json_attributes,
    _json_id,
    _json_int,
    _json_list,
    _json_object,
    _json_value,
    _pb_attributes,
    _pb_value,
    _sniff,
    serialize,
)
from podium.server.state import AppState

__all__ = ["LogsResult", "decode_logs", "encode_response", "finish", "ingest_logs", "prepare"]

_HOW_TO_SEND = (
    "send an OTLP ExportLogsServiceRequest as binary protobuf with Content-Type application/x-protobuf, "
    "or as OTLP/JSON with Content-Type application/json (gzip it with Content-Encoding: gzip)"
)
_ZERO_IDS = frozenset({"", "0" * 16, "0" * 32})
#: Reasons shown in ``partial_success.error_message`` (at most this many).
_MAX_REASONS = 5

SpanKey = tuple[str, str]  # (trace_id, span_id), lowercase hex


class LogsResult:
    """What one export carried: GenAI records per span, and the records that were rejected."""

    def __init__(self) -> None:
        self.by_span: dict[SpanKey, list[dict[str, Any]]] = {}
        self.rejected = 0
        self.no_span = 0
        self.not_genai: dict[str, int] = {}
        self.errors: list[str] = []

    def add(self, rec: dict[str, Any], trace_id: str | None, span_id: str | None) -> None:
        if rec["name"] not in GENAI_LOG_EVENTS:
            self.rejected += 1
            label = rec["name"] or "(no event name)"
            self.not_genai[label] = self.not_genai.get(label, 0) + 1
            return
        if not trace_id or not span_id or trace_id in _ZERO_IDS or span_id in _ZERO_IDS:
            self.rejected += 1
            self.no_span += 1
            return
        self.by_span.setdefault((trace_id, span_id), []).append(rec)

    def reject(self, message: str) -> None:
        self.rejected += 1
        self.errors.append(message)

    def reasons(self) -> list[str]:
        out: list[str] = []
        if self.no_span:
            out.append(
                f"{self.no_span} GenAI log record(s) carry no trace_id/span_id: Podium attaches GenAI events "
                "to their span, so emit them while the span is current (inside start_as_current_span)"
            )
        if self.not_genai:
            names = ", ".join(f"{n!r} x{c}" for n, c in sorted(self.not_genai.items())[:5])
            out.append(
                f"{sum(self.not_genai.values())} log record(s) are not GenAI events ({names}): Podium keeps "
                "only gen_ai.* message, choice and inference-details events from logs; send other logs to a log store"
            )
        return out + self.errors


# --- decoding ------------------------------------------------------------------------------------


def decode_logs(body: bytes, *, content_type: str) -> LogsResult:
    """Decode an OTLP logs export body (already decompressed) into GenAI records per span.

    Raises :class:`UnsupportedMediaType` for a content type that is not OTLP and
    :class:`BadRequest` for a body that is not an OTLP logs request.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in PROTOBUF_CONTENT_TYPES:
        return _protobuf_logs(body)
    if media in JSON_CONTENT_TYPES:
        return _json_logs(body)
    raise UnsupportedMediaType(
        f"Content-Type {media or '(none)'!r} is not an OTLP logs encoding; "
        "send application/x-protobuf or application/json"
    )


def _event_name(event_name: Any, attributes: dict[str, Any], body: Any) -> str:
    """The log record's ``event_name`` field, else its ``event.name`` attribute (older SDKs),
    else an ``event.name`` key in a map body."""
    for candidate in (event_name, attributes.get("event.name"), body.get("event.name") if isinstance(body, dict) else None):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return ""


def _protobuf_logs(body: bytes) -> LogsResult:
    hint = _sniff(body)
    if hint:
        raise BadRequest(f"body is not a valid OTLP ExportLogsServiceRequest protobuf{hint}")
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise BadRequest(f"body is not a valid OTLP ExportLogsServiceRequest protobuf: {e}; {_HOW_TO_SEND}")
    result = LogsResult()
    for r, rl in enumerate(request.resource_logs):
        for s, sl in enumerate(rl.scope_logs):
            for k, lr in enumerate(sl.log_records):
                where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{k}]"
                try:
                    attributes = _pb_attributes(lr.attributes)
                    value = _pb_value(lr.body) if lr.HasField("body") else None
                    rec = {
                        "name": _event_name(getattr(lr, "event_name", ""), attributes, value),
                        "body": value,
                        "attributes": attributes,
                        "time": lr.time_unix_nano or lr.observed_time_unix_nano or None,
                    }
                except (ValueError, TypeError, RecursionError) as e:
                    result.reject(f"log record {where}: {e}")
                    continue
                result.add(rec, lr.trace_id.hex() or None, lr.span_id.hex() or None)
    return result


def _json_logs(body: bytes) -> LogsResult:
    if body[:2] == b"\x1f\x8b":
        raise BadRequest(f"body is not valid OTLP/JSON{_sniff(body)}")
    try:
        doc = jsonlib.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BadRequest(
            f'body is not valid JSON ({e}); an OTLP/JSON logs export is {{"resourceLogs": [...]}}; {_HOW_TO_SEND}'
        )
    _check_depth(doc)
    if not isinstance(doc, dict):
        raise BadRequest(f'an OTLP/JSON logs export is a JSON object {{"resourceLogs": [...]}}; {_HOW_TO_SEND}')
    if doc and _get(doc, "resourceLogs") is None:
        raise BadRequest(
            f"the JSON object has no resourceLogs (keys: {sorted(doc)[:5]}); an OTLP/JSON logs export is "
            '{"resourceLogs": [{"resource": {...}, "scopeLogs": [{"scope": {...}, "logRecords": [...]}]}]}'
        )
    result = LogsResult()
    for r, rl in enumerate(_json_list(doc, "resourceLogs", "body")):
        rwhere = f"resourceLogs[{r}]"
        rl = _json_object(rl, rwhere)
        scopes = _json_list(rl, "scopeLogs", rwhere) or _json_list(rl, "instrumentationLibraryLogs", rwhere)
        for s, sl in enumerate(scopes):
            swhere = f"{rwhere}.scopeLogs[{s}]"
            sl = _json_object(sl, swhere)
            for k, lr in enumerate(_json_list(sl, "logRecords", swhere)):
                where = f"{swhere}.logRecords[{k}]"
                if not isinstance(lr, dict):
                    result.reject(f"log record {where}: a log record must be a JSON object")
                    continue
                try:
                    attributes = _json_attributes(_get(lr, "attributes"))
                    raw_body = _get(lr, "body")
                    value = _json_value(raw_body) if raw_body is not None else None
                    when = _json_int(_get(lr, "timeUnixNano"), "timeUnixNano", required=False) or _json_int(
                        _get(lr, "observedTimeUnixNano"), "observedTimeUnixNano", required=False
                    )
                    rec = {
                        "name": _event_name(_get(lr, "eventName"), attributes, value),
                        "body": value,
                        "attributes": attributes,
                        "time": when,
                    }
                    trace_id = _json_id(_get(lr, "traceId"), 16, "traceId")
                    span_id = _json_id(_get(lr, "spanId"), 8, "spanId")
                except (ValueError, TypeError, RecursionError) as e:
                    result.reject(f"log record {where}: {e}")
                    continue
                result.add(rec, trace_id, span_id)
    return result


# --- storing -----------------------------------------------------------------------------------


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(m, dict) and "role" in m for m in v)


def _contains(seq: list[Any], part: list[Any]) -> bool:
    n = len(part)
    return any(seq[i : i + n] == part for i in range(len(seq) - n + 1))


def _merge(stored: Any, new: Any) -> Any:
    """Per-message events of one span may come in several exports (a SimpleLogRecordProcessor
    sends each record alone): append them to the messages already stored, unless this export
    is a retry of messages already there."""
    if new is None or not _is_messages(stored) or not _is_messages(new):
        return new
    if _contains(stored, new):
        return stored
    return stored + new


def span_patches(
    result: LogsResult, builder: BatchBuilder, stored: Callable[[str, str], dict[str, Any] | None] | None = None
) -> set[SpanKey]:
    """Add one partial span row per span the records belong to; returns the spans added. A
    span whose records carry nothing usable is rejected (its records counted). ``stored``
    gives a span's stored row (or None), to which per-message events are appended."""
    added: set[SpanKey] = set()
    now = time.time_ns()
    for (trace_id, span_id), records in result.by_span.items():
        records.sort(key=lambda rec: rec["time"] or 0)  # stable: same-time records keep their order
        inp, outp = genai_log_io(records)
        if inp is None and outp is None:
            result.rejected += len(records)
            result.errors.append(f"span {span_id}: its {len(records)} GenAI log record(s) carry no messages")
            continue
        complete = any(rec["name"] == GENAI_DETAILS_EVENT for rec in records)  # the whole call in one event
        row = stored(trace_id, span_id) if stored is not None and not complete else None
        if row is not None:
            inp, outp = _merge(row.get("input"), inp), _merge(row.get("output"), outp)
        first = min((rec["time"] for rec in records if rec["time"]), default=now)
        try:
            span = SpanIn.model_validate(
                {
                    "id": span_id,
                    "trace_id": trace_id,
                    "name": "",  # partial: the writer keeps the stored span's name and start time
                    "start_time": nanos_to_iso(first),
                    "input": inp,
                    "output": outp,
                }
            )
        except (ValidationError, ValueError, OverflowError) as e:
            result.rejected += len(records)
            result.errors.append(f"span {span_id}: {str(e).splitlines()[0][:300]}")
            continue
        builder.add_span(span)
        added.add((trace_id, span_id))
    return added


def prepare(
    st: AppState, project_id: str, body: bytes, *, content_type: str
) -> tuple[LogsResult, BatchBuilder, set[SpanKey]]:
    """Decode a logs export and build its partial span rows (CPU and store reads: run it off
    the event loop)."""
    result = decode_logs(body, content_type=content_type)
    records = result.rejected + sum(len(v) for v in result.by_span.values())
    limit = st.settings.max_batch_items
    if records > limit:
        raise PayloadTooLarge(
            f"OTLP request has {records} log records, over the limit of {limit} per request "
            "(PODIUM_MAX_BATCH_ITEMS); export smaller batches (BatchLogRecordProcessor max_export_batch_size)",
            details=[{"field": "resourceLogs", "message": f"{records} log records > {limit}"}],
        )
    builder = BatchBuilder(project_id, lambda: st.prices_for(project_id))

    def stored(trace_id: str, span_id: str) -> dict[str, Any] | None:
        try:
            return st.store.traces.get_span(project_id, trace_id, span_id)
        except NotFound:
            return None

    return result, builder, span_patches(result, builder, stored)


def finish(st: AppState, result: LogsResult, added: set[SpanKey], refused: list[Any]) -> tuple[int, str]:
    """Account for what the writer refused; returns ``(rejected_log_records, error_message)``."""
    for k, msg in refused:  # (("span", trace_id, span_id), message)
        key = (k[1], k[2]) if len(k) == 3 else None
        if key in added:
            added.discard(key)
            result.rejected += len(result.by_span[key])
            result.errors.append(f"span {key[1]}: {msg}")
    st.count_ingest(sum(len(result.by_span[key]) for key in added), result.rejected)
    return result.rejected, "; ".join(result.reasons()[:_MAX_REASONS])


async def ingest_logs(st: AppState, project_id: str, body: bytes, *, content_type: str) -> tuple[int, str]:
    """Decode, attach and store one logs export for ``project_id``; returns
    ``(rejected_log_records, error_message)`` for the export response."""
    result, builder, added = await asyncio.to_thread(prepare, st, project_id, body, content_type=content_type)
    refused = await st.ingester.submit(builder.batch)
    return finish(st, result, added, refused)


def encode_response(*, rejected: int = 0, error_message: str = "", json: bool = False) -> bytes:
    """An ``ExportLogsServiceResponse``: binary protobuf, or OTLP/JSON when ``json``."""
    msg = ExportLogsServiceResponse()
    if rejected > 0 or error_message:
        msg.partial_success.rejected_log_records = max(0, int(rejected))
        msg.partial_success.error_message = error_message
    return serialize(msg, json=json)
