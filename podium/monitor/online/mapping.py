"""Variable mapping: where each scorer field comes from in a trace.

A mapping is ``{field: path}`` with ``field`` one of the scorer fields (``input``, ``output``,
``expected``, ``context``, ``metadata``, ``trace``) and ``path`` one of::

    trace.<column>[.<key>...]          trace.input, trace.output, trace.metadata.expected
    span.<column>[.<key>...]           the evaluated span (rules whose target is spans)
    span[name=retrieve].<column>...    the first span (in start order) with that name
    span[kind=generation].<column>...  ... or kind; both: span[name=llm,kind=generation]

Keys walk into JSON objects (``.expected``) and lists (``.0``, ``.-1`` the last item). A path
that leads nowhere gives ``None``: the field is absent and a scorer that needs it records a
missing-field error for that trace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podium.errors import BadRequest
from podium.evals.scorers import FIELDS

__all__ = ["DEFAULT_SPAN_MAPPING", "DEFAULT_TRACE_MAPPING", "Path", "check_mapping", "parse_path", "resolve"]

DEFAULT_TRACE_MAPPING: dict[str, str] = {
    "input": "trace.input", "output": "trace.output", "expected": "trace.metadata.expected",
    "metadata": "trace.metadata",
}
DEFAULT_SPAN_MAPPING: dict[str, str] = {
    "input": "span.input", "output": "span.output", "expected": "span.metadata.expected",
    "metadata": "span.metadata",
}

_TRACE_COLUMNS = ("id", "name", "input", "output", "metadata", "user_id", "session_id", "release", "environment",
                  "tags", "status", "latency_ms", "total_cost", "total_tokens", "input_tokens", "output_tokens",
                  "start_time", "end_time")
_SPAN_COLUMNS = ("id", "name", "kind", "input", "output", "metadata", "attributes", "model", "provider", "status",
                 "status_message", "latency_ms", "input_tokens", "output_tokens", "total_tokens", "cost_total",
                 "prompt_name", "prompt_version", "start_time", "end_time")
_PATH = re.compile(r"^(trace|span)(?:\[([^\]]*)\])?\.([A-Za-z_][A-Za-z0-9_]*)((?:\.[^.]+)*)$")
_EXAMPLE = "trace.output, trace.metadata.expected or span[name=retrieve].output"


@dataclass(frozen=True)
class Path:
    root: str  # "trace" | "span"
    where: tuple[tuple[str, str], ...]  # span selector: (("name", "retrieve"),); () = the evaluated span
    column: str
    keys: tuple[str, ...]

    @property
    def needs_spans(self) -> bool:
        return self.root == "span" and bool(self.where)


def _bad(field: str, message: str) -> BadRequest:
    return BadRequest(message, details=[{"field": f"mapping.{field}", "message": message}])


def parse_path(path: str, *, field: str = "?") -> Path:
    if not isinstance(path, str) or not path or len(path) > 500:
        raise _bad(field, f"mapping.{field} must be a path such as {_EXAMPLE}")
    m = _PATH.match(path.strip())
    if m is None:
        raise _bad(field, f"mapping.{field}: cannot read {path!r}; write a path such as {_EXAMPLE}")
    root, sel, column, rest = m.groups()
    where: list[tuple[str, str]] = []
    if sel is not None:
        if root != "trace" and sel.strip():
            for part in sel.split(","):
                k, eq, v = part.partition("=")
                k, v = k.strip(), v.strip().strip("'\"")
                if not eq or k not in ("name", "kind", "id") or not v:
                    raise _bad(field, f"mapping.{field}: a span selector is [name=...], [kind=...] or "
                                      f"[id=...] (several joined by commas), got [{sel}]")
                where.append((k, v))
        else:
            raise _bad(field, f"mapping.{field}: only span takes a selector, as in span[name=retrieve].output")
    columns = _TRACE_COLUMNS if root == "trace" else _SPAN_COLUMNS
    if column not in columns:
        raise _bad(field, f"mapping.{field}: {root} has no field {column!r}; use one of {', '.join(columns)}")
    keys = tuple(k for k in rest.split(".") if k) if rest else ()
    return Path(root, tuple(where), column, keys)


def check_mapping(mapping: Mapping[str, str | None] | None, *, target: str) -> dict[str, Path]:
    """The rule's mapping over the defaults, parsed; raises BadRequest naming the bad entry."""
    merged = dict(DEFAULT_SPAN_MAPPING if target == "span" else DEFAULT_TRACE_MAPPING)
    for field, path in (mapping or {}).items():
        if field not in FIELDS:
            raise _bad(field, f"mapping: {field!r} is not a scorer field; map one of {', '.join(FIELDS)}")
        if path is None or path == "":
            merged.pop(field, None)  # switch a default off
        else:
            merged[field] = path
    out = {f: parse_path(p, field=f) for f, p in merged.items()}
    for f, p in out.items():
        if p.root == "span" and not p.where and target != "span":
            raise _bad(f, f"mapping.{f}: `span.` means the evaluated span, but this rule evaluates traces; "
                          "select one, as in span[name=retrieve].output, or set target to spans")
    return out


def _walk(value: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if isinstance(value, Mapping):
            value = value.get(k)
        elif isinstance(value, list | tuple) and re.fullmatch(r"-?\d+", k):
            i = int(k)
            value = value[i] if -len(value) <= i < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _select(spans: Sequence[Mapping[str, Any]], where: tuple[tuple[str, str], ...]) -> Mapping[str, Any] | None:
    for s in spans:
        if all(str(s.get(k)) == v for k, v in where):
            return s
    return None


def resolve(path: Path, trace: Mapping[str, Any], spans: Sequence[Mapping[str, Any]] = (),
            span: Mapping[str, Any] | None = None) -> Any:
    """The value at ``path`` (None when it leads nowhere)."""
    if path.root == "trace":
        obj: Mapping[str, Any] | None = trace
    elif path.where:
        obj = _select(spans, path.where)
    else:
        obj = span
    if obj is None:
        return None
    return _walk(obj.get(path.column), path.keys)
