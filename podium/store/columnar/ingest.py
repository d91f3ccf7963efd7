"""The columnar write path: ``ColumnarIngestRepo.write(batch)``, the same merge rules as
``podium.store.repos.ingest`` (read its module docstring), done in Python over a whole batch.

ClickHouse has no upsert: a changed row is a new *version* of its sorting key in a
ReplacingMergeTree (``version`` = a nanosecond clock, ``is_deleted`` for tombstones), and reads
use ``FINAL``. One ``write`` therefore:

1. asks which touched traces have anything stored (one light probe per project: key columns only,
   no ``FINAL``), then reads the stored spans and trace rows of those alone (primary-key lookups on
   ``span``, a bloom-filter lookup on ``trace``); a batch of new traces reads nothing more;
2. merges the batch over them with the SQL upsert's rules (NULL keeps the stored value, an empty
   name is a partial update, ``span`` never hides a specific kind, ``unset`` never hides a status);
3. recomputes the usage flags of every span of those traces (``usage_flags``, the same function
   the SQL writer uses; skipped for a new trace with at most one span carrying usage, where every
   flag is the span's own verdict) and the trace aggregates (start, end, latency, counts, status,
   tokens, cost, root name/input/output);
4. inserts one block per table: the batch's new spans as columns taken straight from its rows (JSON
   columns encoded once with msgspec, no row dict per span), then the merged spans and the stored
   spans whose flags changed; the touched traces (plus a tombstone when a trace's start moved to
   another day: the day is in ``trace``'s sorting key), the tags and the scores.

Unlike the SQL writer this is not one transaction: a crash between the inserts leaves spans without
their trace row until the client re-sends (re-sending is idempotent). Two processes writing the same
trace at the same moment may each miss the other's spans in the aggregates; on a ClickHouse server each
writer's settle pass (``ColumnarIngestRepo.settle``) finds and rewrites such trace rows ~2 s later.
"""

from __future__ import annotations

import json
import logging
import operator
import threading
import time
from collections.abc import Iterable, Sequence
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
    json_bytes,
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

__all__ = ["SETTLE_ROUNDS", "SETTLE_S", "ColumnarIngestRepo"]

logger = logging.getLogger(__name__)

_SPAN_OUT = [*SPAN_COLUMNS, "version"]
_TRACE_OUT = [*TRACE_COLUMNS, "version", "is_deleted"]
_SCORE_OUT = [*SCORE_COLUMNS, "version"]
_CENT = Decimal("1e-10")
_ZERO = Decimal(0)
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEY = ("project_id", "trace_id", "id")
#: The ids of a JSON array string parameter ``{ids:String}``, as an ``IN`` set.
#: The span columns taken from the batch's rows as they are (the writer sets the others).
_PLAIN = [c for c in SPAN_COLUMNS if c not in ("project_id", "updated_at", "usage_counted")]
_PLAIN_GET = [(c, operator.itemgetter(c)) for c in _PLAIN]
_IDS = "(SELECT arrayJoin(JSONExtract({ids:String}, 'Array(String)')))"


class _Clock:
    """Strictly increasing nanosecond versions (a later write always wins)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


#: Seconds after a write when its traces' rows are checked against their spans in ClickHouse (``settle``).
SETTLE_S = 2.0
#: How many times a settle pass rewrites one trace before it gives up on it (and logs a warning).
SETTLE_ROUNDS = 3

# The touched traces of one project ({p}, {ids}) whose stored row disagrees with their stored spans:
# the aggregates ``_aggregate`` computes (and the SQL store's ``_refresh_statement``), over ``FINAL``.
# The trace's start may be earlier than its first span (a trace item alone moves it back), so the
# start is checked one way and the latency (end - first span's start) exactly. The root span is the
# parentless span that starts first; any of several starting together will do (the writer took one).
_SPAN_AGG = (
    "SELECT trace_id, count() AS n, countIf(status = 'error') AS errs, min(start_time) AS st, "
    "max(ifNull(end_time, start_time)) AS en, "
    "sumIf(ifNull(input_tokens, 0), ifNull(usage_counted, false)) AS itok, "
    "sumIf(ifNull(output_tokens, 0), ifNull(usage_counted, false)) AS otok, "
    "sumIf(ifNull(total_tokens, 0), ifNull(usage_counted, false)) AS ttok, "
    "sumIf(ifNull(cost_total, 0), ifNull(usage_counted, false)) AS cost, "
    "groupArrayIf((start_time, name, input, output), parent_id IS NULL) AS roots "
    f"FROM $db.span FINAL WHERE project_id = {{p:String}} AND trace_id IN {_IDS} GROUP BY trace_id"
)
_TRACE_AGG = (
    "SELECT id, span_count, error_count, status, start_time, end_time, latency_ms, input_tokens, output_tokens, "
    "total_tokens, total_cost, name, name_explicit, input, input_explicit, output, output_explicit "
    f"FROM $db.trace FINAL WHERE project_id = {{p:String}} AND id IN {_IDS}"
)
_ROOT_OK = (
    "arrayExists(r -> r.1 = arrayMin(x -> x.1, s.roots) "
    "AND (t.name_explicit OR ifNull(t.name = r.2, false)) "
    "AND (t.input_explicit OR r.3 IS NULL OR ifNull(t.input = r.3, false)) "
    "AND (t.output_explicit OR r.4 IS NULL OR ifNull(t.output = r.4, false)), s.roots)"
)
_STALE = (
    f"SELECT s.trace_id FROM ({_SPAN_AGG}) AS s INNER JOIN ({_TRACE_AGG}) AS t ON s.trace_id = t.id "
    "WHERE NOT (t.span_count = s.n AND t.error_count = s.errs AND t.status = if(s.errs > 0, 'error', 'ok') "
    "AND t.start_time <= s.st AND ifNull(t.end_time = s.en, false) "
    "AND abs(t.latency_ms - (toUnixTimestamp64Micro(s.en) - toUnixTimestamp64Micro(s.st)) / 1000) < 0.001 "
    "AND t.input_tokens = s.itok AND t.output_tokens = s.otok AND t.total_tokens = s.ttok "
    f"AND t.total_cost = s.cost AND (empty(s.roots) OR {_ROOT_OK}))"
)


class ColumnarIngestRepo(IngestRepo):
    """``IngestRepo`` over ClickHouse (the server's writer calls only ``write``).

    Several writers on one database (server processes sharing a ClickHouse server): a write reads a
    trace's stored spans before it writes the trace's aggregates, so two processes writing spans of
    one trace at the same moment can each miss the other's spans there (the spans themselves are all
    stored), and a concurrent re-send of a span (new tokens, cost, status or end) can be missed the same
    way. ``settle`` repairs both: ``settle_s`` after a write it compares every aggregate of the touched
    traces' rows with their spans on ``FINAL`` (one grouped query per project) and rewrites the rows that
    disagree. On by default for a ClickHouse server; off for chDB, which one process owns.
    """

    def __init__(self, client: ColumnarClient, *, settle_s: float | None = None) -> None:
        self._client = client
        self._clock = _Clock()
        if settle_s is None:
            settle_s = 0.0 if client.url.startswith("chdb") else SETTLE_S
        self.settle_s = settle_s
        self.settled = 0  # traces whose aggregates a settle pass rewrote
        self._lock = threading.Lock()  # write and settle: one at a time in this process
        self._touched: dict[tuple[str, str], tuple[float, int]] = {}  # (project, trace) -> (when, settle rounds)
        self._timer: threading.Thread | None = None
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def write(self, batch: IngestBatch) -> None:
        """Store a batch (never modifies its rows: the server's writer may write the same batch again
        alone when a merged write fails)."""
        with self._lock:
            self._store(batch, {})
        if self.settle_s > 0 and self._timer is None:
            self._timer = threading.Thread(target=self._settle_loop, name="podium-columnar-settle", daemon=True)
            self._timer.start()

    def _settle_loop(self) -> None:
        while not self._closed.wait(self.settle_s / 2):
            try:
                self.settle()
            except Exception:  # the next round tries again; a write never waits on this
                logger.warning("the columnar settle pass failed", exc_info=True)

    def settle(self, *, older_than_s: float | None = None) -> int:
        """Check the traces written at least ``older_than_s`` (default ``settle_s``) ago against their
        stored spans and rewrite the aggregates of those whose trace row disagrees; the number rewritten.

        One grouped query per project (``_STALE``) compares every aggregate the trace row carries with
        what the spans on ``FINAL`` give: span and error counts, status, end time and latency, tokens and
        cost, the root span's name, input and output where the trace did not set its own. A rewrite is
        checked again in the next round (another writer may have raced it too), at most ``SETTLE_ROUNDS``
        times."""
        wait = self.settle_s if older_than_s is None else older_than_s
        cut = time.monotonic() - wait
        with self._lock:
            due = [k for k, (at, _) in self._touched.items() if at <= cut]
            if not due:
                return 0
            rounds = {k: self._touched.pop(k)[1] for k in due}
            by_project: dict[str, list[str]] = {}
            for pid, tid in due:
                by_project.setdefault(pid, []).append(tid)
            stale: dict[str, list[str]] = {}
            for pid, tids in by_project.items():
                # a trace with no live spans or no live trace row was deleted meanwhile (retention, a
                # subject request) or is still being written by another process: the join leaves it out
                bad = [r[0] for r in self._client.query(_STALE, {"p": pid, "ids": json_text(sorted(tids))})]
                if bad:
                    stale[pid] = sorted(bad)
            for pid, tids in stale.items():
                self._store(IngestBatch(), {pid: tids})
                self.settled += len(tids)
                again = time.monotonic()
                for tid in tids:
                    n = rounds[(pid, tid)] + 1
                    if n < SETTLE_ROUNDS:
                        self._touched[(pid, tid)] = (again, n)
                    else:
                        self._touched.pop((pid, tid), None)
                        logger.warning("trace %s of project %s still disagreed with its spans after %d settle "
                                       "rounds; left as it is", tid, pid, n)
            return sum(len(v) for v in stale.values())

    def _store(self, batch: IngestBatch, refresh: dict[str, list[str]]) -> None:
        now = datetime.now(UTC)
        version = self._clock.next()
        spans = cast(list[dict[str, Any]], batch.spans)
        if len({(r["project_id"], r["trace_id"], r["id"]) for r in spans}) != len(spans):
            spans = cast(list[dict[str, Any]], _dedupe(batch.spans, _KEY))  # merged within the batch first
        projects: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for s in spans:
            p = s["project_id"]
            b = projects.get(p)
            if b is None:
                b = projects[p] = ([], [])
            b[0].append(s)
        for h in cast(list[dict[str, Any]], batch.traces):
            projects.setdefault(h["project_id"], ([], []))[1].append(h)
        for project_id in refresh:
            projects.setdefault(project_id, ([], []))

        block = _SpanBlock(now, version)
        trace_out: list[dict[str, Any]] = []
        for project_id, (p_spans, p_hints) in projects.items():
            trace_out += self._project(project_id, p_spans, p_hints, block, now, version,
                                       refresh.get(project_id, ()))
        if block.size:
            self._client.insert("span", _SPAN_OUT, block.columns())
        if trace_out:
            self._client.insert("trace", _TRACE_OUT, [[r[c] for r in trace_out] for c in _TRACE_OUT])
        if batch.tags:
            tags = sorted(set(batch.tags))
            self._client.insert("trace_tag", ["project_id", "trace_id", "tag"],
                                [[x[0] for x in tags], [x[1] for x in tags], [x[2] for x in tags]])
        if batch.scores:
            self._write_scores(list({(r["project_id"], r["id"]): r for r in batch.scores}.values()), version)

    # --- one project's spans and traces -----------------------------------------------------------
    def _read_stored(self, project_id: str, span_traces: list[str], trace_ids: list[str],
                     ) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]:
        """The stored spans (``{trace_id: {span_id: row}}``) and trace rows of the touched traces, JSON
        columns as stored (text).

        First a probe: which of the ids have any row at all, in ``span`` (a primary-key range) or
        ``trace`` (its id bloom filter), reading only the key columns and without ``FINAL``, so it sees
        every version a ``FINAL`` read could return and more (older versions, tombstones): an id it
        does not return has nothing stored. Only the ids it returns are read in full with ``FINAL``; a
        batch of new traces (the common case) costs this one light query. The id lists travel as one
        JSON string parameter (``JSONExtract`` in ClickHouse): binding an ``Array(String)`` costs ~3x
        more CPU per id, in clickhouse-connect and in ClickHouse's parameter parser."""
        found = {r[0] for r in self._client.query(
            f"SELECT DISTINCT trace_id FROM $db.span WHERE project_id = {{p:String}} AND trace_id IN {_IDS} "
            f"UNION ALL SELECT id FROM $db.trace WHERE project_id = {{p:String}} AND id IN {_IDS}",
            {"p": project_id, "ids": json_text(trace_ids)},
        )}
        if not found:
            return {}, {}
        stored_spans: dict[str, dict[str, dict[str, Any]]] = {}
        with_spans = [tr for tr in span_traces if tr in found]
        if with_spans:
            for r in self._client.query_dicts(
                f"SELECT {select_list(SPAN_COLUMNS)} FROM $db.span FINAL "
                f"WHERE project_id = {{p:String}} AND trace_id IN {_IDS}",
                {"p": project_id, "ids": json_text(with_spans)},
            ):
                row = from_db("span", r, parse_json=False)
                stored_spans.setdefault(row["trace_id"], {})[row["id"]] = row
        stored_traces = {
            r["id"]: from_db("trace", r, parse_json=False)
            for r in self._client.query_dicts(
                f"SELECT {select_list(TRACE_COLUMNS)} FROM $db.trace FINAL "
                f"WHERE project_id = {{p:String}} AND id IN {_IDS}",
                {"p": project_id, "ids": json_text(sorted(found))},
            )
        }
        return stored_spans, stored_traces

    def _project(self, project_id: str, spans: list[dict[str, Any]], hints: list[dict[str, Any]],
                 block: _SpanBlock, now: datetime, version: int, refresh: Sequence[str] = ()
                 ) -> list[dict[str, Any]]:
        """One project's part of a write; ``refresh``: traces whose aggregates are recomputed from their
        stored spans though the batch has none of them (a settle pass)."""
        # The batch's spans per trace, in batch order (indices into ``spans``), and each span's usage
        # verdict on its own (``_counts_alone``).
        by_trace: dict[str, list[int]] = {}
        alone: list[bool | None] = []
        for i, s in enumerate(spans):
            tr = s["trace_id"]
            ix = by_trace.get(tr)
            if ix is None:
                by_trace[tr] = [i]
            else:
                ix.append(i)
            alone.append(_counts_alone(cast(SpanRow, s)))
        span_traces = sorted(by_trace.keys() | set(refresh))
        trace_ids = sorted(by_trace.keys() | {h["id"] for h in hints} | set(refresh))

        # 1. what is stored
        stored_spans, stored_traces = self._read_stored(project_id, span_traces, trace_ids)

        # 2. the batch's new spans become columns as they are (``fresh``); a span stored already is merged
        # over its stored row (a dict, as the SQL upsert's SET clause does it).
        fresh = block.start_fresh(spans, project_id)
        counted = block.counted
        names, versions = block.prompt_name, block.prompt_version
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        if stored_spans:
            keep: list[int] = []
            for i, s in enumerate(spans):
                old = stored_spans.get(s["trace_id"], {}).get(s["id"])
                if old is None:
                    keep.append(i)
                    continue
                row = {c: s.get(c) for c in SPAN_COLUMNS}
                for c in SPAN_JSON:
                    row[c] = json_text(row[c])
                row["updated_at"] = now
                row["usage_counted"] = alone[i]
                merged[(s["trace_id"], s["id"])] = _merge_span(old, row)
            if len(keep) != len(spans):
                fresh = block.start_fresh([spans[i] for i in keep], project_id)
                counted, names, versions = block.counted, block.prompt_name, block.prompt_version
                alone = [alone[i] for i in keep]
                by_trace = {}
                for j, i in enumerate(keep):
                    by_trace.setdefault(spans[i]["trace_id"], []).append(j)
        counted[:] = alone
        json_cols = block.encode_json()  # JSON text of the fresh spans' JSON columns
        f_input, f_output = json_cols["input"], json_cols["output"]

        # 3. usage flags over every span of each touched trace, then its aggregates
        aggregates: dict[str, _Agg] = {}
        for tr in span_traces:
            ix = by_trace.get(tr, [])
            stored = stored_spans.get(tr)
            if not stored and sum(1 for i in ix if alone[i] is not None) <= 1:
                # A trace new to the store with at most one span carrying usage: no span wraps another's
                # usage and none is a gateway span's twin, so every flag is the span's own verdict and no
                # prompt is linked (``usage_flags`` would return exactly that).
                aggregates[tr] = _aggregate((fresh[i], counted[i], f_input[i], f_output[i]) for i in ix)
                continue
            # The general rule over the stored spans, the merged ones and the new ones, in the order the
            # SQL writer reads them (stored first).
            members: dict[str, tuple[str, Any]] = {}  # span id -> ("d", dict row) | ("f", fresh index)
            for sid, row in (stored or {}).items():
                m = merged.get((tr, sid))
                members[sid] = ("d", m if m is not None else row)
            for i in ix:
                members[fresh[i]["id"]] = ("f", i)
            rows = [_usage_row(v) if k == "d" else _fresh_usage_row(fresh[v], counted[v]) for k, v in members.values()]
            changed, linked = usage_flags(rows)
            for sid, flag in changed:
                k, v = members[sid]
                if k == "f":
                    counted[v] = flag
                elif v.get("usage_counted") != flag:
                    v["usage_counted"] = flag
                    merged[(tr, sid)] = v
            for sid, name, ver in linked:
                k, v = members[sid]
                if k == "f":
                    if names[v] is None:
                        names[v], versions[v] = name, ver
                elif v.get("prompt_name") is None:
                    v["prompt_name"], v["prompt_version"] = name, ver
                    merged[(tr, sid)] = v
            aggregates[tr] = _aggregate(
                (v, v.get("usage_counted"), v.get("input"), v.get("output")) if k == "d"
                else (fresh[v], counted[v], f_input[v], f_output[v]) for k, v in members.values())
        for row in merged.values():
            row["project_id"] = project_id
        block.add_rows(list(merged.values()))

        # 4. traces: hints merged over stored rows, then aggregates from the spans
        blank: dict[str, dict[str, Any]] = {}
        for tr, a in aggregates.items():
            blank[tr] = _blank_trace(project_id, tr, a.start, now)
        for h in hints:
            m = blank.setdefault(h["id"], _blank_trace(project_id, h["id"], h.get("start_time") or now, now))
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
        for tid, m in blank.items():
            old = stored_traces.get(tid)
            row = _merge_trace(old, m) if old is not None else m
            agg = aggregates.get(tid)
            if agg is not None:
                agg.apply(row)
                if self.settle_s > 0:
                    self._touched[(project_id, tid)] = (time.monotonic(), 0)
            row["updated_at"] = now
            row["version"] = version
            row["is_deleted"] = 0
            traces.append(row)
            if old is not None and old["start_time"].date() != row["start_time"].date():
                # The day is part of trace's sorting key: the row moved, so retire the old key.
                traces.append(dict(old, version=version, is_deleted=1))
        return traces

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


class _SpanBlock:
    """The span rows of one write as columns: the batch's new spans straight from their rows (one list
    per column, JSON columns encoded once), then dict rows (merged spans, stored spans whose usage flag
    or prompt changed), whose JSON columns are text already."""

    def __init__(self, now: datetime, version: int) -> None:
        self.now, self.version = now, version
        self._done: list[dict[str, Sequence[Any]]] = []  # earlier projects' fresh columns
        self.fresh: list[dict[str, Any]] = []
        self.counted: list[bool | None] = []
        self.prompt_name: list[Any] = []
        self.prompt_version: list[Any] = []
        self._cols: dict[str, Sequence[Any]] = {}
        self._project_id = ""
        self._rows: list[dict[str, Any]] = []

    @property
    def size(self) -> int:
        return sum(len(d["id"]) for d in self._done) + len(self.fresh) + len(self._rows)

    def start_fresh(self, rows: list[dict[str, Any]], project_id: str) -> list[dict[str, Any]]:
        """The new spans of one project (replacing what the same project started before), transposed
        into columns in one pass."""
        self.fresh, self._project_id = rows, project_id
        self.counted = [None] * len(rows)
        cols: dict[str, Sequence[Any]] = {}
        for c, get in _PLAIN_GET:
            try:
                cols[c] = list(map(get, rows))
            except KeyError:  # a row without this column: None, as ``dict.get`` gives
                cols[c] = [r.get(c) for r in rows]
        self._cols = cols
        self.prompt_name = list(self._cols["prompt_name"])
        self.prompt_version = list(self._cols["prompt_version"])
        return rows

    def encode_json(self) -> dict[str, list[str | None]]:
        """The JSON text of the fresh spans' JSON columns (``json_text``, inlined)."""
        enc = json_bytes
        for c in SPAN_JSON:
            col = self._cols[c]
            try:
                self._cols[c] = [None if v is None else enc(v).decode() for v in col]
            except (TypeError, ValueError, OverflowError, UnicodeError):  # see json_text
                self._cols[c] = [json_text(v) for v in col]
        return cast(dict[str, list[str | None]], self._cols)

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Close the current project: its fresh columns are final; ``rows`` (dicts) go at the end."""
        n = len(self.fresh)
        if n:
            cols: dict[str, Sequence[Any]] = {}
            for c in SPAN_COLUMNS:
                if c == "project_id":
                    cols[c] = [self._project_id] * n
                elif c == "updated_at":
                    cols[c] = [self.now] * n
                elif c == "usage_counted":
                    cols[c] = self.counted
                elif c == "prompt_name":
                    cols[c] = self.prompt_name
                elif c == "prompt_version":
                    cols[c] = self.prompt_version
                else:
                    cols[c] = self._cols[c]
            self._done.append(cols)
        self.fresh = []
        self._rows += rows

    def columns(self) -> list[Sequence[Any]]:
        if len(self._done) == 1 and not self._rows:  # one project, all new spans: no copies
            d = self._done[0]
            return [*(d[c] for c in SPAN_COLUMNS), [self.version] * len(d["id"])]
        out: list[Sequence[Any]] = []
        for c in SPAN_COLUMNS:
            col: list[Any] = []
            for d in self._done:
                col += d[c]
            col += [r[c] for r in self._rows]
            out.append(col)
        out.append([self.version] * len(out[0]))
        return out


class _Agg:
    """A trace's aggregates over all its spans (the SQL refresh statement, ``_refresh_statement``)."""

    __slots__ = ("cost", "end", "errors", "input_tokens", "n", "output_tokens", "root", "start", "total_tokens")

    def __init__(self) -> None:
        self.start: datetime = _EPOCH
        self.end: datetime = _EPOCH
        self.n = self.errors = self.input_tokens = self.output_tokens = self.total_tokens = 0
        self.cost = _ZERO
        self.root: tuple[Any, Any, Any] | None = None  # (name, input text, output text) of the root span

    def apply(self, row: dict[str, Any]) -> None:
        if not self.n:
            return
        st, en = self.start, self.end
        row.update(
            start_time=st, end_time=en, latency_ms=(en - st) / _MS, span_count=self.n, error_count=self.errors,
            status="error" if self.errors else "ok", input_tokens=self.input_tokens,
            output_tokens=self.output_tokens, total_tokens=self.total_tokens, total_cost=self.cost.quantize(_CENT),
        )
        if self.root is not None:
            name, inp, out = self.root
            if not row["name_explicit"] and name is not None:
                row["name"] = name
            if not row["input_explicit"] and inp is not None:
                row["input"] = inp
            if not row["output_explicit"] and out is not None:
                row["output"] = out


def _aggregate(members: Iterable[tuple[dict[str, Any], Any, Any, Any]]) -> _Agg:
    """Aggregates over ``(row, usage_counted, input text, output text)`` of every span of a trace."""
    a = _Agg()
    st: datetime | None = None
    en: datetime | None = None
    root_start: datetime | None = None
    n = errs = itok = otok = ttok = 0
    cost = _ZERO
    for s, flag, inp, out in members:
        start = s["start_time"]
        end = s.get("end_time") or start
        if st is None or start < st:
            st = start
        if en is None or end > en:
            en = end
        n += 1
        if s.get("status") == "error":
            errs += 1
        if flag:
            itok += s.get("input_tokens") or 0
            otok += s.get("output_tokens") or 0
            ttok += s.get("total_tokens") or 0
            c = s.get("cost_total")
            if c is not None:
                cost += c if isinstance(c, Decimal) else Decimal(c)
        if s.get("parent_id") is None and (root_start is None or start < root_start):
            root_start = start
            a.root = (s.get("name"), inp, out)
    if st is None or en is None:
        return a
    a.start, a.end, a.n, a.errors = st, en, n, errs
    a.input_tokens, a.output_tokens, a.total_tokens, a.cost = itok, otok, ttok, cost
    return a


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


def _fresh_usage_row(r: dict[str, Any], counted: bool | None) -> tuple[Any, ...]:
    """``_usage_row`` of a batch row (JSON columns still Python values, ``usage_counted`` apart)."""
    has = r.get("total_tokens") is not None or r.get("cost_total") is not None
    md = r.get("metadata")
    gateway = has and isinstance(md, dict) and md.get("gateway") is not None
    return (
        r["trace_id"], r["id"], r.get("parent_id"), r.get("status"), r.get("usage_estimated"), has, counted,
        r.get("prompt_name"), r.get("prompt_version"), gateway, r["start_time"], r.get("end_time"),
        r.get("input_tokens"), r.get("output_tokens"),
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
