"""The columnar write path: ``ColumnarIngestRepo.write(batch)``, the same merge rules as
``podium.store.repos.ingest`` (read its module docstring), done in Python over a whole batch.

ClickHouse has no upsert: a changed row is a new *version* of its sorting key in a
ReplacingMergeTree (``version`` = a nanosecond clock, ``is_deleted`` for tombstones), and reads
use ``FINAL``. One ``write`` therefore:

1. reads the stored spans and trace rows of the touched traces (one query each, per project:
   primary-key lookups on ``span``, a bloom-filter lookup on ``trace``);
2. merges the batch over them with the SQL upsert's rules (NULL keeps the stored value, an empty
   name is a partial update, ``span`` never hides a specific kind, ``unset`` never hides a status);
3. recomputes the usage flags of every span of those traces (``usage_flags``, the same function
   the SQL writer uses) and the trace aggregates (start, end, latency, counts, status, tokens, cost,
   root name/input/output);
4. inserts one column-oriented block per table: the batch's spans plus the stored spans whose flags
   changed, the touched traces (plus a tombstone when a trace's start moved to another day: the day
   is in ``trace``'s sorting key), the tags and the scores.

Unlike the SQL writer this is not one transaction: a crash between the inserts leaves spans without
their trace row until the client re-sends (re-sending is idempotent). Two processes writing the same
trace at the same moment may each miss the other's spans in the aggregates; run one writer per
ClickHouse database (the server's writer thread is one per process).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.rows import (
    SCORE_COLUMNS,
    SPAN_COLUMNS,
    SPAN_JSON,
    TRACE_COLUMNS,
    TRACE_JSON,
    from_db,
    json_text,
    select_list,
)
from podium.store.repos.ingest import (
    TRACE_HINT_COLUMNS,
    IngestBatch,
    IngestRepo,
    ScoreRow,
    SpanRow,
    _counts_alone,
    _dedupe,
    usage_flags,
)

__all__ = ["ColumnarIngestRepo"]

_SPAN_OUT = [*SPAN_COLUMNS, "version"]
_TRACE_OUT = [*TRACE_COLUMNS, "version", "is_deleted"]
_SCORE_OUT = [*SCORE_COLUMNS, "version"]
_CENT = Decimal("1e-10")
_ZERO = Decimal(0)
_MS = timedelta(milliseconds=1)


class _Clock:
    """Strictly increasing nanosecond versions (a later write always wins)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


class ColumnarIngestRepo(IngestRepo):
    """``IngestRepo`` over ClickHouse (the server's writer calls only ``write``)."""

    def __init__(self, client: ColumnarClient) -> None:
        self._client = client
        self._clock = _Clock()

    def write(self, batch: IngestBatch) -> None:
        now = datetime.now(UTC)
        version = self._clock.next()
        spans = batch.spans
        if len({(r["project_id"], r["trace_id"], r["id"]) for r in spans}) != len(spans):
            spans = _dedupe(spans, ("project_id", "trace_id", "id"))  # merged within the batch first
        projects: dict[str, dict[str, Any]] = {}

        def bucket(p: str) -> dict[str, Any]:
            b = projects.get(p)
            if b is None:
                b = projects[p] = {"spans": [], "hints": [], "span_traces": set(), "all_spans": []}
            return b

        for s in spans:
            b = bucket(s["project_id"])
            b["spans"].append(s)
            b["span_traces"].add(s["trace_id"])
        for s in batch.spans:
            bucket(s["project_id"])["all_spans"].append(s)
        for h in batch.traces:
            bucket(h["project_id"])["hints"].append(h)

        span_out: list[dict[str, Any]] = []
        trace_out: list[dict[str, Any]] = []
        for project_id, b in projects.items():
            s_out, t_out = self._project(project_id, b, now, version)
            span_out += s_out
            trace_out += t_out
        if span_out:
            self._client.insert("span", _SPAN_OUT, [[r[c] for r in span_out] for c in _SPAN_OUT])
        if trace_out:
            self._client.insert("trace", _TRACE_OUT, [[r[c] for r in trace_out] for c in _TRACE_OUT])
        if batch.tags:
            tags = sorted(set(batch.tags))
            self._client.insert("trace_tag", ["project_id", "trace_id", "tag"],
                                [[x[0] for x in tags], [x[1] for x in tags], [x[2] for x in tags]])
        if batch.scores:
            self._write_scores(list({(r["project_id"], r["id"]): r for r in batch.scores}.values()), version)

    # --- one project's spans and traces -----------------------------------------------------------
    def _project(self, project_id: str, b: dict[str, Any], now: datetime,
                 version: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        span_traces: set[str] = b["span_traces"]
        hints: list[dict[str, Any]] = b["hints"]
        trace_ids = sorted(span_traces | {h["id"] for h in hints})
        params = {"p": project_id, "ids": trace_ids}

        # 1. what is stored
        stored_spans: dict[tuple[str, str], dict[str, Any]] = {}
        if span_traces:
            for r in self._client.query_dicts(
                f"SELECT {select_list(SPAN_COLUMNS)} FROM $db.span FINAL "
                "WHERE project_id = {p:String} AND trace_id IN {ids:Array(String)}",
                {"p": project_id, "ids": sorted(span_traces)},
            ):
                stored_spans[(r["trace_id"], r["id"])] = from_db("span", r, parse_json=False)
        stored_traces = {
            r["id"]: from_db("trace", r, parse_json=False)
            for r in self._client.query_dicts(
                f"SELECT {select_list(TRACE_COLUMNS)} FROM $db.trace FINAL "
                "WHERE project_id = {p:String} AND id IN {ids:Array(String)}",
                params,
            )
        }

        # 2. merge the batch's spans over the stored ones
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for s in cast(list[dict[str, Any]], b["spans"]):
            row: dict[str, Any] = {c: s.get(c) for c in SPAN_COLUMNS}
            for c in SPAN_JSON:
                row[c] = json_text(row[c])
            row["updated_at"] = now
            row["usage_counted"] = _counts_alone(cast(SpanRow, s))
            key: tuple[str, str] = (row["trace_id"], row["id"])
            old = stored_spans.get(key)
            if old is not None:
                row = _merge_span(old, row)
            out[key] = row
        per_trace: dict[str, dict[str, dict[str, Any]]] = {tr: {} for tr in span_traces}
        for (tr, sid), row in stored_spans.items():
            per_trace[tr][sid] = row
        for (tr, sid), row in out.items():
            per_trace[tr][sid] = row

        # 3. usage flags over every span of each touched trace
        for tr, members in per_trace.items():
            changed, linked = usage_flags([_usage_row(r) for r in members.values()])
            for sid, flag in changed:
                row = members[sid]
                if row.get("usage_counted") != flag:
                    row = members[sid] = dict(row, usage_counted=flag)
                    out[(tr, sid)] = row
            for sid, name, ver in linked:
                row = members[sid]
                if row.get("prompt_name") is None:
                    row = members[sid] = dict(row, prompt_name=name, prompt_version=ver)
                    out[(tr, sid)] = row
        for row in out.values():
            row["project_id"] = project_id
            row["version"] = version

        # 4. traces: hints merged over stored rows, then aggregates from the spans
        merged: dict[str, dict[str, Any]] = {}
        for s in cast(list[dict[str, Any]], b["all_spans"]):
            m = merged.get(s["trace_id"])
            if m is None:
                merged[s["trace_id"]] = _blank_trace(project_id, s["trace_id"], s["start_time"], now)
            elif s["start_time"] < m["start_time"]:
                m["start_time"] = s["start_time"]
        for h in hints:
            m = merged.setdefault(h["id"], _blank_trace(project_id, h["id"], h.get("start_time") or now, now))
            for c in (*TRACE_HINT_COLUMNS, "input", "output"):
                if h.get(c) is not None:
                    m[c] = json_text(h[c]) if c in TRACE_JSON else h[c]
            if h.get("name") is not None:
                m["name"], m["name_explicit"] = h["name"], True
            if h.get("input") is not None:
                m["input_explicit"] = True
            if h.get("output") is not None:
                m["output_explicit"] = True
        traces: list[dict[str, Any]] = []
        for tid, m in merged.items():
            old = stored_traces.get(tid)
            row = _merge_trace(old, m) if old is not None else m
            if per_trace.get(tid):
                _refresh(row, per_trace[tid].values())
            row["updated_at"] = now
            row["version"] = version
            row["is_deleted"] = 0
            traces.append(row)
            if old is not None and old["start_time"].date() != row["start_time"].date():
                # The day is part of trace's sorting key: the row moved, so retire the old key.
                traces.append(dict(old, version=version, is_deleted=1))
        return list(out.values()), traces

    # --- scores ---------------------------------------------------------------------------------
    def _write_scores(self, rows: list[ScoreRow], version: int) -> None:
        cells = cast(list[dict[str, Any]], rows)
        data: list[list[Any]] = []
        for c in SCORE_COLUMNS:
            if c == "metadata":
                data.append([json_text(r.get(c)) for r in cells])
            else:
                data.append([r.get(c) for r in cells])
        data.append([version] * len(cells))
        self._client.insert("score", _SCORE_OUT, data)


def _merge_span(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The SQL upsert's SET clause (``_span_upsert``), row by row."""
    row = dict(old)
    partial = new["name"] == ""
    for c, v in new.items():
        if c in ("project_id", "trace_id", "id"):
            continue
        if c in ("name", "start_time"):
            if not partial:
                row[c] = v
        elif c == "updated_at":
            row[c] = v
        elif c == "kind":
            if v != "span":
                row[c] = v
        elif c == "status":
            if v != "unset":
                row[c] = v
        elif v is not None:
            row[c] = v
    return row


def _is_gateway(row: dict[str, Any]) -> bool:
    md = row.get("metadata")
    if md is None or '"gateway"' not in md:
        return False
    parsed = json.loads(md)
    return isinstance(parsed, dict) and parsed.get("gateway") is not None


def _usage_row(r: dict[str, Any]) -> tuple[Any, ...]:
    has = r.get("total_tokens") is not None or r.get("cost_total") is not None
    return (
        r["trace_id"], r["id"], r.get("parent_id"), r.get("status"), r.get("usage_estimated"), has,
        r.get("usage_counted"), r.get("prompt_name"), r.get("prompt_version"), has and _is_gateway(r),
        r["start_time"], r.get("end_time"), r.get("input_tokens"), r.get("output_tokens"),
    )


def _blank_trace(project_id: str, trace_id: str, start: datetime, now: datetime) -> dict[str, Any]:
    return {
        "project_id": project_id, "id": trace_id, "name": None, "name_explicit": False, "user_id": None,
        "session_id": None, "release": None, "environment": None, "metadata": None, "input": None,
        "output": None, "input_explicit": False, "output_explicit": False, "start_time": start,
        "end_time": None, "latency_ms": 0.0, "status": "ok", "span_count": 0, "error_count": 0,
        "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "total_cost": _ZERO, "updated_at": now,
    }


def _merge_trace(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The SQL trace upsert's SET clause (``_trace_upsert``)."""
    row = dict(old)
    for c in TRACE_HINT_COLUMNS:
        if new[c] is not None:
            row[c] = new[c]
    if new["name_explicit"]:
        row["name"] = new["name"]
    if new["input_explicit"]:
        row["input"] = new["input"]
    if new["output_explicit"]:
        row["output"] = new["output"]
    row["name_explicit"] = bool(old["name_explicit"] or new["name_explicit"])
    row["input_explicit"] = bool(old["input_explicit"] or new["input_explicit"])
    row["output_explicit"] = bool(old["output_explicit"] or new["output_explicit"])
    if new["start_time"] < old["start_time"]:
        row["start_time"] = new["start_time"]
    return row


def _refresh(row: dict[str, Any], spans: Iterable[dict[str, Any]]) -> None:
    """The SQL refresh statement (``_refresh_statement``): aggregates over all the trace's spans."""
    st: datetime | None = None
    en: datetime | None = None
    n = errs = itok = otok = ttok = 0
    cost = _ZERO
    root: dict[str, Any] | None = None
    for s in spans:
        start = s["start_time"]
        end = s.get("end_time") or start
        st = start if st is None or start < st else st
        en = end if en is None or end > en else en
        n += 1
        if s.get("status") == "error":
            errs += 1
        if s.get("usage_counted"):
            itok += s.get("input_tokens") or 0
            otok += s.get("output_tokens") or 0
            ttok += s.get("total_tokens") or 0
            c = s.get("cost_total")
            if c is not None:
                cost += Decimal(c) if not isinstance(c, Decimal) else c
        if s.get("parent_id") is None and (root is None or start < root["start_time"]):
            root = s
    if not n or st is None or en is None:
        return
    row.update(
        start_time=st, end_time=en, latency_ms=(en - st) / _MS, span_count=n, error_count=errs,
        status="error" if errs else "ok", input_tokens=itok, output_tokens=otok, total_tokens=ttok,
        total_cost=cost.quantize(_CENT),
    )
    if root is not None:
        if not row["name_explicit"] and root.get("name") is not None:
            row["name"] = root["name"]
        if not row["input_explicit"] and root.get("input") is not None:
            row["input"] = root["input"]
        if not row["output_explicit"] and root.get("output") is not None:
            row["output"] = root["output"]
