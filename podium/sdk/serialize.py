"""Turn arbitrary Python values into JSON-safe values, off the caller's hot path.

The exporter's worker thread calls :func:`to_jsonable` on span inputs, outputs and
metadata just before sending. It never raises: whatever cannot be represented becomes a
short marker string. Rules:

- ``None``, ``bool``, ``int``, ``str`` pass through; strings longer than ``max_chars`` are
  cut and end with ``…[truncated, N chars]``; ``NaN``/``±inf`` become ``"NaN"``/``"Infinity"``.
- ``dict`` keys become strings; ``list``/``tuple``/``set``/``frozenset``/``deque`` become lists.
- dataclass instances and pydantic models become dicts (``model_dump()``).
- ``datetime``/``date``/``time`` become ISO-8601 strings, ``bytes`` ``"<bytes len=N>"``,
  ``Enum`` its value, ``UUID``/``Decimal``/``Path`` their ``str()``, exceptions
  ``"TypeName: message"``.
- anything else becomes its ``repr()`` (cut like any string); a container met again on
  its own path becomes ``"<cycle>"``; nesting past ``MAX_DEPTH`` becomes ``"<max depth>"``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from pydantic import BaseModel

__all__ = ["DEFAULT_MAX_CHARS", "MAX_DEPTH", "Encoder", "iso_from_ns", "to_jsonable", "truncate"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 1_000_000
MAX_DEPTH = 64
MASK_FAILED = "<masking failed>"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCALARS = (str, int, bool, type(None))


def iso_from_ns(ns: int) -> str:
    """Epoch nanoseconds → ISO-8601 UTC string with microseconds (exact, no float rounding)."""
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, the marker ``…[truncated, N chars]``
    (N: the original length) included."""
    if len(text) <= max_chars:
        return text
    marker = f"…[truncated, {len(text)} chars]"
    if max_chars <= len(marker):
        return text[:max_chars]
    return text[: max_chars - len(marker)] + marker


def to_jsonable(value: Any, *, max_chars: int = DEFAULT_MAX_CHARS) -> Any:
    """A JSON-safe copy of ``value`` (see the module docstring). Never raises."""
    return _convert(value, max_chars, set(), 0)


def _convert(value: Any, max_chars: int, path: set[int], depth: int) -> Any:
    cls = type(value)
    if cls is str:
        return value if len(value) <= max_chars else truncate(value, max_chars)
    if cls is int or cls is bool or value is None:
        return value
    if cls is float:
        return value if math.isfinite(value) else _nonfinite(value)
    if depth >= MAX_DEPTH:
        return "<max depth>"
    try:
        return _convert_other(value, cls, max_chars, path, depth)
    except Exception as exc:  # a hostile __repr__, a dict mutated while we walk it, ...
        return f"<unserializable {cls.__name__}: {type(exc).__name__}>"


def _convert_other(value: Any, cls: type, max_chars: int, path: set[int], depth: int) -> Any:
    if isinstance(value, Mapping | list | tuple | set | frozenset | deque):
        key = id(value)
        if key in path:
            return "<cycle>"
        path.add(key)
        try:
            if isinstance(value, Mapping):
                return {_key(k, max_chars): _convert(v, max_chars, path, depth + 1) for k, v in value.items()}
            return [_convert(v, max_chars, path, depth + 1) for v in value]
        finally:
            path.discard(key)
    if isinstance(value, str):  # str subclasses
        return _convert(str(value), max_chars, path, depth)
    if isinstance(value, Enum):
        return _convert(value.value, max_chars, path, depth + 1)
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _nonfinite(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<bytes len={len(value)}>"
    if isinstance(value, UUID | Decimal | PurePath):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, BaseModel):
        return _nested(value, value.model_dump(), max_chars, path, depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _nested(value, fields, max_chars, path, depth)
    if isinstance(value, BaseException):
        return truncate(f"{type(value).__name__}: {value}", max_chars)
    if cls.__module__ == "numpy" and hasattr(value, "tolist"):
        return _convert(value.tolist(), max_chars, path, depth + 1)
    return truncate(repr(value), max_chars)


def _nested(owner: Any, fields: dict[str, Any], max_chars: int, path: set[int], depth: int) -> Any:
    key = id(owner)
    if key in path:
        return "<cycle>"
    path.add(key)
    try:
        return _convert(fields, max_chars, path, depth + 1)
    finally:
        path.discard(key)


def _key(k: Any, max_chars: int) -> str:
    if isinstance(k, str):
        return k if len(k) <= max_chars else truncate(k, max_chars)
    if isinstance(k, Enum):
        return str(k.value)
    if isinstance(k, int | float | bool) or k is None:
        return str(k)
    return truncate(repr(k), max_chars)


def _nonfinite(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    return "Infinity" if v > 0 else "-Infinity"


class Encoder:
    """``to_jsonable`` plus the user's ``mask``, as the exporter's worker applies them.

    ``mask`` receives the JSON-safe value and returns its replacement. If it raises, the
    value becomes ``"<masking failed>"`` (never the unmasked data) and a WARNING is
    logged once; later failures log at DEBUG.
    """

    __slots__ = ("_mask_warned", "mask", "max_chars")

    def __init__(
        self, *, max_chars: int = DEFAULT_MAX_CHARS, mask: Callable[[Any], Any] | None = None
    ) -> None:
        self.max_chars = max_chars
        self.mask = mask
        self._mask_warned = False

    def plain(self, value: Any) -> Any:
        """JSON-safe, not masked (names, ids, model parameters)."""
        return _convert(value, self.max_chars, set(), 0)

    def masked(self, value: Any) -> Any:
        """JSON-safe and masked (input, output, metadata)."""
        data = _convert(value, self.max_chars, set(), 0)
        if self.mask is None or data is None:
            return data
        try:
            masked = self.mask(data)
        except Exception as exc:
            if not self._mask_warned:
                self._mask_warned = True
                logger.warning(
                    "Podium mask function raised %s: %s; the value was replaced by %r. "
                    "Fix the mask so it accepts any JSON value (dict, list, str, number, bool, None).",
                    type(exc).__name__,
                    exc,
                    MASK_FAILED,
                )
            else:
                logger.debug("Podium mask function raised %s again", type(exc).__name__)
            return MASK_FAILED
        return _convert(masked, self.max_chars, set(), 0)

    def text(self, value: Any, max_chars: int) -> str:
        """A plain string field with the wire schema's own limit (name, status message, ...)."""
        s = value if isinstance(value, str) else str(value)
        return truncate(s, max_chars)
