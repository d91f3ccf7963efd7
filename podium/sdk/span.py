"""Span records: cheap to create and update on the caller's thread, turned into wire
bodies (``podium.core.records``) only later, in the exporter's worker.

A span holds raw Python objects. Top-level ``list``/``dict`` arguments and results are
shallow-copied when captured, so appending to a list after the call does not change
what was recorded; objects nested deeper are read when the worker serializes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from time import time_ns
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from podium.core.records import SpanKind, SpanStatus, utc
from podium.sdk.context import CURRENT_SPAN, TraceAttributes, reset_var
from podium.sdk.serialize import Encoder, iso_from_ns

if TYPE_CHECKING:
    from contextvars import Token

    from podium.sdk.client import Podium

__all__ = ["KindLike", "NoopSpan", "ScoreRecord", "Span", "StatusLike", "TraceUpdate"]

logger = logging.getLogger(__name__)

KindLike = (
    Literal[
        "span",
        "generation",
        "tool",
        "retrieval",
        "embedding",
        "agent",
        "chain",
        "event",
        "guardrail",
        "evaluator",
        "reranker",
    ]
    | SpanKind
)
StatusLike = Literal["ok", "error", "unset"] | SpanStatus

KINDS = frozenset(k.value for k in SpanKind)
STATUSES = frozenset(s.value for s in SpanStatus)

# Limits of the wire schema (podium.core.records); longer values are cut, not rejected.
NAME_MAX = 1000
SHORT_MAX = 256
TAG_MAX = 200
TAGS_MAX = 100
STATUS_MESSAGE_MAX = 10_000


def check_kind(kind: Any) -> str | None:
    """The kind as its wire string, or None when it is not a SpanKind value."""
    return str(kind) if kind in KINDS else None


def snapshot(value: Any) -> Any:
    """Shallow-copy a top-level list or dict so later appends do not leak into the record."""
    cls = type(value)
    if cls is list or cls is dict:
        return value.copy()
    return value


def error_message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Span:
    """One unit of work. Use it as a context manager (``with podium.span(...) as s``) or,
    without ``with``, call :meth:`end` yourself (it is then not the current span)."""

    __slots__ = (
        "_client",
        "_ended",
        "_extra",
        "_token",
        "attrs",
        "end_ns",
        "id",
        "input",
        "kind",
        "metadata",
        "name",
        "output",
        "parent_id",
        "sampled",
        "start_ns",
        "status",
        "status_message",
        "trace_id",
    )

    def __init__(
        self,
        client: Podium | None,
        span_id: str,
        trace_id: str,
        parent_id: str | None,
        sampled: bool,
        name: str,
        kind: str,
        attrs: TraceAttributes | None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._client = client
        self.id = span_id
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.sampled = sampled
        self.name = name
        self.kind = kind
        self.attrs = attrs
        self.input = input
        self.output: Any = None
        self.metadata: dict[str, Any] | None = dict(metadata) if metadata else None
        self.status: str | None = None
        self.status_message: str | None = None
        self._extra: dict[str, Any] | None = None
        self._token: Token[Span | None] | None = None
        self._ended = False
        self.start_ns = time_ns()
        self.end_ns = 0

    def __repr__(self) -> str:
        return f"<Span {self.name!r} kind={self.kind} id={self.id} trace_id={self.trace_id}>"

    @property
    def ended(self) -> bool:
        return self._ended

    # --- context manager ---------------------------------------------------------------

    def __enter__(self) -> Span:
        self._token = CURRENT_SPAN.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._token is not None:
                reset_var(CURRENT_SPAN, self._token)
                self._token = None
            if exc is not None and not isinstance(exc, GeneratorExit):
                self.set_error(exc)
            self.end()
        except Exception:  # never let the SDK replace the user's exception
            logger.debug("Podium: failed to end span %r", self.name, exc_info=True)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # --- recording ---------------------------------------------------------------------

    def update(
        self,
        *,
        name: str | None = None,
        input: Any = None,
        output: Any = None,
        metadata: Mapping[str, Any] | None = None,
        kind: KindLike | None = None,
        status: StatusLike | None = None,
        status_message: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        model_parameters: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | Any = None,
        cost: Mapping[str, float] | None = None,
        completion_start_time: datetime | int | None = None,
        prompt_name: str | None = None,
        prompt_version: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Span:
        """Set fields of the span; ``None`` leaves a field as it is, ``metadata`` merges.

        ``usage`` takes ``input_tokens``/``output_tokens``/``total_tokens`` (or OpenAI's
        ``prompt_tokens``/``completion_tokens``); other integer counts go to ``details``.
        ``completion_start_time`` (first token) is a datetime or epoch nanoseconds
        (``time.time_ns()``). Updates after the span ended are ignored (logged at DEBUG).
        """
        if self._ended:
            logger.debug("Podium: update() on ended span %r ignored", self.name)
            return self
        if name is not None:
            self.name = str(name)
        if input is not None:
            self.input = snapshot(input)
        if output is not None:
            self.output = snapshot(output)
        if metadata:
            self.metadata = {**self.metadata, **metadata} if self.metadata else dict(metadata)
        if kind is not None:
            checked = check_kind(kind)
            if checked is None:
                logger.warning("Podium: unknown span kind %r ignored; use one of %s", kind, sorted(KINDS))
            else:
                self.kind = checked
        if status is not None:
            if status in STATUSES:
                self.status = str(status)
            else:
                logger.warning("Podium: unknown span status %r ignored; use ok, error or unset", status)
        if status_message is not None:
            self.status_message = str(status_message)
        extra = {
            k: v
            for k, v in (
                ("model", model),
                ("provider", provider),
                ("model_parameters", model_parameters),
                ("usage", usage),
                ("cost", cost),
                ("completion_start_time", completion_start_time),
                ("prompt_name", prompt_name),
                ("prompt_version", prompt_version),
                ("attributes", attributes),
            )
            if v is not None
        }
        if extra:
            if self._extra is None:
                self._extra = extra
            else:
                self._extra.update(extra)
        return self

    def set_error(self, exc: BaseException | str) -> None:
        """Mark the span failed with the exception's type and message."""
        self.status = SpanStatus.ERROR.value
        self.status_message = exc if isinstance(exc, str) else error_message(exc)

    def end(self) -> None:
        """End the span and queue it for sending. Idempotent; never raises."""
        if self._ended:
            return
        self._ended = True
        self.end_ns = time_ns()
        if self.sampled and self._client is not None:
            self._client._export(self)

    def score(
        self,
        name: str,
        value: float | bool | str,
        *,
        data_type: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> str | None:
        """Attach a score to this span (see :func:`podium.create_score`). Returns its id."""
        if self._client is None or not self.sampled:
            return None
        return self._client.create_score(
            name,
            value,
            trace_id=self.trace_id,
            span_id=self.id,
            data_type=data_type,
            comment=comment,
            metadata=metadata,
            id=id,
        )

    # --- wire form (worker thread) -----------------------------------------------------

    def to_item(self, enc: Encoder) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "trace_id": self.trace_id,
            "name": enc.text(self.name, NAME_MAX),
            "kind": self.kind,
            "start_time": iso_from_ns(self.start_ns),
            "end_time": iso_from_ns(max(self.end_ns, self.start_ns)),
        }
        if self.parent_id is not None:
            body["parent_id"] = self.parent_id
        if self.input is not None:
            body["input"] = enc.masked(self.input)
        if self.output is not None:
            body["output"] = enc.masked(self.output)
        if self.metadata:
            body["metadata"] = as_dict(enc.masked(self.metadata))
        if self.status is not None:
            body["status"] = self.status
        if self.status_message is not None:
            body["status_message"] = enc.text(self.status_message, STATUS_MESSAGE_MAX)
        if self._extra:
            _extra_fields(body, self._extra, enc)
        if self.attrs is not None:
            _attribute_fields(body, self.attrs, enc)
        return {"type": "span", "body": body}


class NoopSpan(Span):
    """What :func:`podium.span` yields when tracing is disabled: every method works and
    does nothing; ids are OpenTelemetry's all-zero "invalid" ids."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None, "0" * 16, "0" * 32, None, False, "noop", "span", None)
        self._ended = True

    def __repr__(self) -> str:
        return "<NoopSpan>"

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def update(self, **kwargs: Any) -> Span:
        return self

    def set_error(self, exc: BaseException | str) -> None:
        return None

    def end(self) -> None:
        return None


NOOP_SPAN = NoopSpan()


class TraceUpdate:
    """Explicit trace-level fields (``update_current_trace``) → a ``TraceIn`` item."""

    __slots__ = ("fields", "trace_id")

    def __init__(self, trace_id: str, fields: dict[str, Any]) -> None:
        self.trace_id = trace_id
        self.fields = fields

    def to_item(self, enc: Encoder) -> dict[str, Any]:
        f = self.fields
        body: dict[str, Any] = {"id": self.trace_id}
        if f.get("name") is not None:
            body["name"] = enc.text(f["name"], NAME_MAX)
        for key in ("user_id", "session_id", "release", "environment"):
            if f.get(key) is not None:
                body[key] = enc.text(f[key], SHORT_MAX)
        if f.get("tags") is not None:
            body["tags"] = clean_tags(f["tags"])
        if f.get("metadata"):
            body["metadata"] = as_dict(enc.masked(f["metadata"]))
        for key in ("input", "output"):
            if f.get(key) is not None:
                body[key] = enc.masked(f[key])
        if f.get("timestamp") is not None:
            body["timestamp"] = iso_any(f["timestamp"])
        return {"type": "trace", "body": body}


class ScoreRecord:
    """A validated ``ScoreIn`` body plus raw metadata (serialized and masked later)."""

    __slots__ = ("body", "metadata")

    def __init__(self, body: dict[str, Any], metadata: Mapping[str, Any] | None) -> None:
        self.body = body
        self.metadata = metadata

    def to_item(self, enc: Encoder) -> dict[str, Any]:
        body = self.body
        if self.metadata:
            body = {**body, "metadata": as_dict(enc.masked(self.metadata))}
        return {"type": "score", "body": body}


# --- helpers for the wire form ------------------------------------------------------------


def as_dict(value: Any) -> dict[str, Any] | None:
    """Wire ``metadata`` must be an object: wrap anything else (e.g. a mask's string)."""
    if value is None or isinstance(value, dict):
        return value
    return {"value": value}


def iso_any(value: Any) -> str:
    if isinstance(value, int):
        return iso_from_ns(value)
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return str(value)


def clean_tags(tags: Any) -> list[str]:
    items = [tags] if isinstance(tags, str) else list(tags)
    out = [str(t)[:TAG_MAX] for t in items if str(t)]
    return list(dict.fromkeys(out))[:TAGS_MAX]


_USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "prompt_tokens": "input_tokens",
    "input": "input_tokens",
    "output_tokens": "output_tokens",
    "completion_tokens": "output_tokens",
    "output": "output_tokens",
    "total_tokens": "total_tokens",
    "total": "total_tokens",
}


def usage_body(raw: Any) -> dict[str, Any] | None:
    """Map a usage dict (ours, OpenAI's, or a pydantic usage object) to ``UsageIn``."""
    if not isinstance(raw, dict):
        return None
    usage: dict[str, Any] = {}
    details: dict[str, int] = {}

    def count(v: Any) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    for key, value in raw.items():
        target = _USAGE_KEYS.get(key)
        if target is not None:
            if count(value) is not None:
                usage[target] = value
        elif isinstance(value, dict):  # "details", "prompt_tokens_details", ...
            for k2, v2 in value.items():
                if count(v2) is not None:
                    details[str(k2)] = v2
        elif count(value) is not None:
            details[str(key)] = value
    if details:
        usage["details"] = details
    return usage or None


def cost_body(raw: Any) -> dict[str, float] | None:
    if not isinstance(raw, dict):
        return None
    out = {
        k: float(v)
        for k, v in raw.items()
        if k in ("input", "output", "total")
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and v >= 0
    }
    return out or None


def _extra_fields(body: dict[str, Any], extra: dict[str, Any], enc: Encoder) -> None:
    for key in ("model", "provider", "prompt_name"):
        if key in extra:
            body[key] = enc.text(extra[key], SHORT_MAX)
    if "model_parameters" in extra:
        body["model_parameters"] = as_dict(enc.plain(extra["model_parameters"]))
    if "usage" in extra:
        usage = usage_body(enc.plain(extra["usage"]))
        if usage:
            body["usage"] = usage
    if "cost" in extra:
        cost = cost_body(enc.plain(extra["cost"]))
        if cost:
            body["cost"] = cost
    if "completion_start_time" in extra:
        body["completion_start_time"] = iso_any(extra["completion_start_time"])
    version = extra.get("prompt_version")
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        body["prompt_version"] = version
    if "attributes" in extra:
        body["attributes"] = as_dict(enc.plain(extra["attributes"]))


def _attribute_fields(body: dict[str, Any], attrs: TraceAttributes, enc: Encoder) -> None:
    if attrs.user_id is not None:
        body["user_id"] = enc.text(attrs.user_id, SHORT_MAX)
    if attrs.session_id is not None:
        body["session_id"] = enc.text(attrs.session_id, SHORT_MAX)
    if attrs.tags:
        body["tags"] = clean_tags(attrs.tags)
    if attrs.metadata:
        body["trace_metadata"] = as_dict(enc.masked(attrs.metadata))
    if attrs.trace_name is not None:
        body["trace_name"] = enc.text(attrs.trace_name, NAME_MAX)
    if attrs.release is not None:
        body["release"] = enc.text(attrs.release, SHORT_MAX)
    if attrs.environment is not None:
        body["environment"] = enc.text(attrs.environment, SHORT_MAX)
