"""Dataset items and files: the record, its checks, stable ids, and JSONL/CSV/JSON parsing.

Pure logic, no I/O beyond reading the file you name: the SDK and the CLI parse files with
it before uploading, the server checks items with it, the experiment runner reads items
through it.

An item is::

    {"id": "q-001",                  # optional: derived from the content when left out
     "input": {...} | "text",        # what the task receives
     "expected": ...,                # the reference answer (alias: "expected_output")
     "context": "..." | [...],       # retrieved passages (faithfulness scorers)
     "metadata": {...},
     "split": "test",                # optional: train / test / dev / ...
     "labels": {"factuality": 4},    # optional human labels, per scorer name (judge agreement)
     "source_trace_id": "..."}       # set when the item was made from a production trace

In a file, keys that are none of these become the ``input`` mapping when there is no
``input`` key (promptfoo-style variables: a CSV with columns ``question,expected`` gives
``input={"question": ...}``), and ``metadata`` otherwise.

Ids are derived from the content (``input``, ``expected``, ``context``) when not given, so
the same item keeps its id across uploads and two runs over the same items pair up item by
item when compared; a repeated item gets ``-2``, ``-3``... in file order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from podium.errors import ValidationFailed

__all__ = [
    "ITEM_FIELDS",
    "MAX_ITEM_BYTES",
    "Dataset",
    "DatasetItem",
    "assign_ids",
    "canonical_json",
    "check_dataset_name",
    "content_hash",
    "items_from_records",
    "parse_dataset_file",
    "parse_dataset_text",
]

#: The fields of an item besides ``id`` (``expected_output`` is accepted for ``expected``).
ITEM_FIELDS = ("input", "expected", "context", "metadata", "split", "labels", "source_trace_id")
_ALIASES = {"expected_output": "expected"}
#: The largest accepted item (compact UTF-8 JSON).
MAX_ITEM_BYTES = 1_000_000
MAX_NAME_LENGTH = 200

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal values give equal strings (hashes, change detection)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def check_dataset_name(name: Any) -> str:
    """A dataset name: letters, digits, ``_ . -``, starting with a letter or digit, at most 200."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"invalid dataset name {name!r}: use letters, digits, '_', '.', '-' (starting with a letter or "
            f"digit), at most {MAX_NAME_LENGTH} characters, e.g. 'qa-golden'",
            details=[{"field": "name", "message": "invalid dataset name"}],
        )
    return name


@dataclass(frozen=True)
class DatasetItem:
    """One item of a dataset version (immutable; a change makes a new version)."""

    id: str
    input: Any = None
    expected: Any = None
    context: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)
    source_trace_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "input": self.input,
            "expected": self.expected,
            "context": self.context,
            "metadata": dict(self.metadata),
            "split": self.split,
            "labels": dict(self.labels),
            "source_trace_id": self.source_trace_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetItem:
        """From the API's item shape (trusted: no checks)."""
        return cls(
            id=str(d["id"]),
            input=d.get("input"),
            expected=d.get("expected", d.get("expected_output")),
            context=d.get("context"),
            metadata=dict(d.get("metadata") or {}),
            split=d.get("split"),
            labels=dict(d.get("labels") or {}),
            source_trace_id=d.get("source_trace_id"),
        )


def content_hash(item: DatasetItem | Mapping[str, Any]) -> str:
    """sha256 of everything but the id: two items with the same hash are the same content."""
    d = item.to_dict() if isinstance(item, DatasetItem) else dict(item)
    d.pop("id", None)
    body = {k: d.get(k) for k in ITEM_FIELDS}
    body["metadata"] = body["metadata"] or {}
    body["labels"] = body["labels"] or {}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _derived_id(fields: Mapping[str, Any]) -> str:
    key = canonical_json([fields.get("input"), fields.get("expected"), fields.get("context")])
    return "i-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _bad(where: str, message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", details=[{"field": where, "message": message, **extra}])


def _finite(value: Any, where: str) -> None:
    """JSON cannot carry NaN/Infinity (PostgreSQL JSONB refuses them): refuse them here."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise _bad(where, "NaN and Infinity are not valid JSON values")
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)


def normalize_item(raw: Any, where: str = "item", *, extra_to: str | None = None) -> dict[str, Any]:
    """Check one item mapping and return its fields (``id`` may be missing: see :func:`assign_ids`).

    ``extra_to`` decides where unknown keys go: ``None`` refuses them (the API), ``"auto"``
    puts them into ``input`` when there is no ``input`` key and into ``metadata`` otherwise
    (files).
    """
    if isinstance(raw, DatasetItem):
        raw = raw.to_dict()
    if not isinstance(raw, Mapping):
        raise _bad(where, f"an item must be an object with `input` (and `expected`, ...), got {type(raw).__name__}")
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for k, v in raw.items():
        key = _ALIASES.get(str(k), str(k))
        if key == "id" or key in ITEM_FIELDS:
            if key in out and v is not None:
                raise _bad(where, f"both `{k}` and its alias were given; keep one")
            if v is not None or key not in out:
                out[key] = v
        else:
            extra[str(k)] = v
    if extra:
        if extra_to is None:
            raise _bad(where, f"unknown field(s) {sorted(extra)}; an item has id, {', '.join(ITEM_FIELDS)}")
        if out.get("input") is None and "input" not in raw:
            out["input"] = extra
        else:
            out["metadata"] = {**extra, **(out.get("metadata") or {})}
    if out.get("id") is not None:
        iid = out["id"]
        if isinstance(iid, int) and not isinstance(iid, bool):
            iid = str(iid)
        if not isinstance(iid, str) or not _ID.match(iid):
            raise _bad(f"{where}.id", f"invalid item id {out['id']!r}: 1-128 letters, digits, '_', '.', ':', '-'")
        out["id"] = iid
    for key in ("metadata", "labels"):
        v = out.get(key)
        if v is None:
            out[key] = {}
        elif not isinstance(v, Mapping):
            raise _bad(f"{where}.{key}", f"`{key}` must be an object")
        else:
            out[key] = dict(v)
    split = out.get("split")
    if split is not None and (not isinstance(split, str) or not _SPLIT.match(split)):
        raise _bad(f"{where}.split", f"invalid split {split!r}: 1-64 letters, digits, '_', '.', '-'")
    stid = out.get("source_trace_id")
    if stid is not None and (not isinstance(stid, str) or not _ID.match(stid)):
        raise _bad(f"{where}.source_trace_id", "invalid trace id")
    _finite(out, where)
    size = len(canonical_json(out).encode())
    if size > MAX_ITEM_BYTES:
        raise _bad(where, f"the item is {size} bytes; the limit is {MAX_ITEM_BYTES}")
    for k in ITEM_FIELDS:
        out.setdefault(k, {} if k in ("metadata", "labels") else None)
    return out


def assign_ids(rows: Iterable[Mapping[str, Any]]) -> list[DatasetItem]:
    """Items from normalised rows; rows without an id get one derived from their content
    (``-2``, ``-3`` for repeats, in order). Duplicate explicit ids are refused."""
    out: list[DatasetItem] = []
    seen: set[str] = set()
    pending: list[tuple[int, dict[str, Any]]] = []
    rows = list(rows)
    for i, r in enumerate(rows):
        if r.get("id") is not None:
            if r["id"] in seen:
                raise _bad(f"items[{i}].id", f"item id {r['id']!r} appears twice; ids must be unique")
            seen.add(r["id"])
    counts: dict[str, int] = {}
    for i, r in enumerate(rows):
        iid = r.get("id")
        if iid is None:
            base = _derived_id(r)
            n = counts.get(base, 0) + 1
            counts[base] = n
            iid = base if n == 1 else f"{base}-{n}"
            while iid in seen:
                n += 1
                counts[base] = n
                iid = f"{base}-{n}"
            seen.add(iid)
        pending.append((i, {**r, "id": iid}))
    for _, r in pending:
        out.append(DatasetItem(
            id=r["id"], input=r.get("input"), expected=r.get("expected"), context=r.get("context"),
            metadata=r.get("metadata") or {}, split=r.get("split"), labels=r.get("labels") or {},
            source_trace_id=r.get("source_trace_id"),
        ))
    return out


def items_from_records(records: Iterable[Any], *, where: str = "items", extra_to: str | None = "auto") -> list[DatasetItem]:
    """Items from mappings (or :class:`DatasetItem`), checked, with ids assigned."""
    return assign_ids(normalize_item(r, f"{where}[{i}]", extra_to=extra_to) for i, r in enumerate(records))


# --- files ------------------------------------------------------------------------------------

_JSON_CELL = ("metadata", "labels", "context", "expected", "expected_output", "input")


def _cell(key: str, value: str) -> Any:
    """CSV cells are text; structured columns may hold JSON (objects, lists)."""
    if value == "":
        return None
    s = value.strip()
    if key in _JSON_CELL and s[:1] in "[{":
        try:
            return json.loads(s)
        except ValueError:
            if key in ("metadata", "labels"):
                raise
    return value


def _csv_records(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        yield from _csv_rows(text, source)
    except csv.Error as e:
        raise _bad(source, f"this is not valid CSV ({e}); quote cells that hold commas, quotes or line breaks")


def _csv_rows(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # newline="": the csv module does its own line splitting (a bare \r inside a cell included).
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise _bad(source, "the CSV file has no header row")
    blank = [i for i, n in enumerate(reader.fieldnames) if not (n or "").strip()]
    if blank:
        raise _bad(source, f"the CSV header has an empty column name (column {blank[0] + 1})")
    for row in reader:
        line = reader.line_num
        if None in row:
            raise _bad(f"{source} line {line}", "this row has more cells than the header has columns")
        rec: dict[str, Any] = {}
        labels: dict[str, Any] = {}
        for k, v in row.items():
            k = k.strip()
            if v is None:
                continue
            if k.startswith("labels."):
                if v != "":
                    labels[k[7:]] = _number_or_text(v)
                continue
            try:
                rec[k] = _cell(k, v)
            except ValueError as e:
                raise _bad(f"{source} line {line}", f"column {k!r} is not valid JSON ({e})")
        if labels:
            rec["labels"] = {**labels, **(rec.get("labels") or {})}
        yield line, rec


def _number_or_text(v: str) -> Any:
    try:
        f = float(v)
    except ValueError:
        return {"true": True, "false": False}.get(v.strip().lower(), v)
    return int(f) if f.is_integer() and "." not in v else f


def _jsonl_records(text: str, source: str) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError as e:
            raise _bad(f"{source} line {n}", f"not valid JSON ({e})")


def _json_records(text: str, source: str) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(f"{source} line {e.lineno}", f"not valid JSON ({e.msg}, column {e.colno})")
    if isinstance(data, Mapping) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise _bad(source, "a JSON dataset file holds a list of items (or {\"items\": [...]})")
    yield from enumerate(data)


def _format_of(source: str, fmt: str | None) -> str:
    f = fmt.lower().lstrip(".") if fmt else Path(source).suffix.lower().lstrip(".")
    f = {"ndjson": "jsonl", "jsonlines": "jsonl", "tsv": "csv"}.get(f, f)
    if f not in ("jsonl", "csv", "json"):
        raise ValidationFailed(
            f"{source}: cannot tell the file format; name it .jsonl, .csv or .json (or pass the format)",
            details=[{"field": "format", "message": "unknown format"}],
        )
    return f


def parse_dataset_text(text: str, *, format: str, source: str = "data") -> list[DatasetItem]:
    """Items from the text of a JSONL, CSV or JSON file. Errors name the line."""
    fmt = _format_of(source, format)
    if text.startswith("\ufeff"):
        text = text[1:]
    records = {"jsonl": _jsonl_records, "csv": _csv_records, "json": _json_records}[fmt](text, source)
    rows = []
    for n, rec in records:
        where = f"{source} line {n}" if fmt != "json" else f"{source} item {n}"
        rows.append(normalize_item(rec, where, extra_to="auto"))
    return assign_ids(rows)


def parse_dataset_file(path: str | Path, *, format: str | None = None) -> list[DatasetItem]:
    """Items from a ``.jsonl``, ``.csv`` or ``.json`` file (``format`` overrides the suffix)."""
    p = Path(path)
    fmt = _format_of(str(p), format)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValidationFailed(f"cannot read {p}: {e.strerror or e}", details=[{"field": "path"}]) from e
    except UnicodeDecodeError as e:
        raise ValidationFailed(f"{p} is not UTF-8 text ({e})", details=[{"field": "path"}]) from e
    return parse_dataset_text(text, format=fmt, source=p.name)


# --- a dataset (version) in memory -------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """The items of one dataset version (or of a local list, with ``name``/``version`` None).

    ``podium.get_dataset("qa")`` returns one; ``Dataset.from_records([...])`` and
    ``Dataset.from_file("qa.jsonl")`` build one locally.
    """

    items: tuple[DatasetItem, ...]
    name: str | None = None
    version: int | None = None
    description: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[DatasetItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> DatasetItem:
        return self.items[i]

    def __repr__(self) -> str:
        what = f"{self.name!r} v{self.version}" if self.name else "local"
        return f"<Dataset {what} items={len(self.items)}>"

    @property
    def ref(self) -> str | None:
        """``name@version`` (what an experiment records), or None for a local dataset."""
        if self.name is None:
            return None
        return f"{self.name}@{self.version}" if self.version is not None else self.name

    def split(self, name: str) -> Dataset:
        """Only the items of one split."""
        return replace(self, items=tuple(i for i in self.items if i.split == name))

    @classmethod
    def from_records(cls, records: Sequence[Any], *, name: str | None = None) -> Dataset:
        return cls(items=tuple(items_from_records(records)), name=name)

    @classmethod
    def from_file(cls, path: str | Path, *, format: str | None = None, name: str | None = None) -> Dataset:
        return cls(items=tuple(parse_dataset_file(path, format=format)), name=name)
