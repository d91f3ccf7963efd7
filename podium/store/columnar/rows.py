"""Column lists and value conversions shared by the columnar write and read paths.

The columnar tables have the SQL tables' columns (``podium.store.tables``), in the same order,
plus ``version`` and ``is_deleted`` (ReplacingMergeTree). JSON columns are JSON text; times are
``DateTime64(6, 'UTC')`` and come back as aware UTC datetimes, as from the SQL store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import JSON

from podium.store import tables as t
from podium.store.types import UtcDateTime

__all__ = [
    "SCORE_COLUMNS", "SPAN_COLUMNS", "TRACE_COLUMNS", "from_db", "insert_scores", "json_bytes", "json_text",
    "select_list",
]

SPAN_COLUMNS = [c.name for c in t.span.columns]
TRACE_COLUMNS = [c.name for c in t.trace.columns]
SCORE_COLUMNS = [c.name for c in t.score.columns]


def _kinds(table: Any) -> tuple[frozenset[str], frozenset[str]]:
    json_cols = frozenset(c.name for c in table.columns if isinstance(c.type, JSON) or c.name in (
        "metadata", "input", "output", "attributes", "model_parameters", "usage_details"))
    times = frozenset(c.name for c in table.columns if isinstance(c.type, UtcDateTime))
    return json_cols, times


SPAN_JSON, SPAN_TIMES = _kinds(t.span)
TRACE_JSON, TRACE_TIMES = _kinds(t.trace)
SCORE_JSON, SCORE_TIMES = _kinds(t.score)
KINDS = {"span": (SPAN_JSON, SPAN_TIMES), "trace": (TRACE_JSON, TRACE_TIMES), "score": (SCORE_JSON, SCORE_TIMES)}


json_bytes = msgspec.json.Encoder().encode  # one C call: a value -> compact JSON bytes


def json_text(v: Any) -> str | None:
    """A JSON column's text (None is NULL): msgspec's compact JSON (``{"a":1}``), which decodes to the
    same value as the SQL store's ``json.dumps`` text (``{"a": 1}``); reads parse it either way. Non-ASCII
    stays UTF-8 (``json.dumps`` escapes it); a float NaN or infinity becomes ``null``. What msgspec
    cannot encode (a lone surrogate) falls back to ``json.dumps``."""
    if v is None:
        return None
    try:
        return json_bytes(v).decode()
    except (TypeError, ValueError, OverflowError, UnicodeError):
        return json.dumps(v)


def utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def select_list(columns: list[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def from_db(table: str, row: dict[str, Any], *, parse_json: bool = True) -> dict[str, Any]:
    """A row as the SQL store returns it: aware UTC times and (``parse_json``) decoded JSON."""
    json_cols, times = KINDS[table]
    for c in times:
        if c in row and row[c] is not None:
            row[c] = utc(row[c])
    if parse_json:
        for c in json_cols:
            v = row.get(c)
            if v is not None:
                row[c] = json.loads(v)
    return row


def insert_scores(client: Any, rows: list[dict[str, Any]], version: int) -> None:
    """Write score rows (the SQL ``score`` table's dicts, JSON values as values) as one block at
    ``version``: a row with an id already stored replaces it (``FINAL``). For the scores written
    outside the ingest path (annotations, experiments)."""
    if not rows:
        return
    cols = [*SCORE_COLUMNS, "version"]
    data: list[list[Any]] = [[json_text(r.get(c)) if c == "metadata" else r.get(c) for r in rows]
                             for c in SCORE_COLUMNS]
    data.append([version] * len(rows))
    client.insert("score", cols, data)
