"""Retention and data-subject requests on the columnar span store: ``LifecycleRepo``'s methods
with the same arguments, results and receipts, where the traces, spans, tags and scores live in
ClickHouse and everything else (policies, runs, receipts, annotations, dataset items, experiment
results) in SQL (``podium.store.repos.lifecycle`` describes the rules).

Deleting in ClickHouse:

- ``trace``, ``span`` and ``score`` rows get a tombstone: a row with the same sorting key, a new
  ``version`` and ``is_deleted = 1`` (as ``ColumnarScoreRepo.delete_score``), so ``FINAL`` reads drop
  them at once; ClickHouse removes the old versions when it merges the parts. A tombstone is an insert
  of the key columns only: a batch costs what it deletes, not a rewrite of the parts it touches.
- ``trace_tag`` has no version column: its rows go with a lightweight ``DELETE``, one for the tags of
  many batches' traces (up to 20,000 traces, and at the end of a purge or deletion, even a failed one):
  a ``DELETE`` rewrites the masks of every part it touches, so it costs about the same whatever it deletes.
- The counts are the rows actually removed: the keys read from ``FINAL`` (the live rows) and
  tombstoned, the tag rows counted on ``FINAL`` when their trace goes.

A trace is deleted as in SQL, its hangers-on first: its annotations and annotation items (SQL, one
short transaction), its scores, tags and spans, then the trace row, so an interrupted purge leaves the
trace to be found again by the next one. A batch takes whole traces until their spans reach the batch
size; a bigger trace loses its spans over several batches and its row in the last one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, tuple_

from podium.store import tables as t
from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.ingest import _Clock
from podium.store.columnar.rows import SCORE_COLUMNS, SPAN_COLUMNS, TRACE_COLUMNS, from_db, select_list
from podium.store.repos._tx import locked_write
from podium.store.repos.lifecycle import GATEWAY_TRACE_PREFIX, TABLES, LifecycleRepo, PurgeResult

__all__ = ["ColumnarLifecycleRepo"]

_CHUNK = 500  # ids per SQL IN (...) list
_CH_CHUNK = 2000  # ids per ClickHouse array parameter
_TAG_CHUNK = 20_000  # trace ids per DELETE of their tags
_DT = "DateTime64(6, 'UTC')"
#: The feedback a user gave: scores whose ``metadata.user_id`` is theirs (as the SQL store's
#: ``metadata ->> 'user_id'``: a string as is, another JSON value as its text).
_FEEDBACK = ("position(ifNull(metadata, ''), 'user_id') > 0 AND multiIf(JSONType(ifNull(metadata, ''), 'user_id') "
             "= 'String', JSONExtractString(ifNull(metadata, ''), 'user_id'), "
             "JSONExtractRaw(ifNull(metadata, ''), 'user_id')) = {u:String}")


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _trace_cond(kind: str, cutoff: datetime, params: dict[str, Any]) -> str:
    """The traces a retention kind deletes (``lifecycle._trace_where``), less the project condition."""
    params[f"cut_{kind}"] = cutoff
    sql = f"start_time < {{cut_{kind}:{_DT}}}"
    if kind == "gateway":
        params["gw_prefix"] = GATEWAY_TRACE_PREFIX
        sql += " AND name_explicit AND startsWith(ifNull(name, ''), {gw_prefix:String})"
    return sql


class ColumnarLifecycleRepo(LifecycleRepo):
    """Policies, runs and receipts in SQL (inherited); the span store's part in ClickHouse."""

    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client
        self._clock = _Clock()

    # --- small pieces ------------------------------------------------------------------------------
    def _scalar(self, sql: str, params: dict[str, Any]) -> int:
        rows = self._c.query(sql, params)
        return int(rows[0][0]) if rows else 0

    def _tombstone(self, table: str, key: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Hide these rows (their sorting key's values, in ``key`` order) from FINAL reads."""
        if not rows:
            return 0
        version = self._clock.next()
        data = [[r[i] for r in rows] for i in range(len(key))]
        self._c.insert(table, [*key, "version", "is_deleted"], [*data, [version] * len(rows), [1] * len(rows)])
        return len(rows)

    def _annotation_items(self, conn: Connection, project_id: str,
                          trace_ids: Sequence[str]) -> list[tuple[str, str]]:
        ai = t.annotation_item.c
        items: list[tuple[str, str]] = []
        for ch in _chunks(list(trace_ids), _CHUNK):
            items += [(r.queue_id, r.id) for r in conn.execute(
                select(ai.queue_id, ai.id).where(ai.project_id == project_id, ai.trace_id.in_(ch)))]
        return items

    def _annotated(self, project_id: str, where: str, params: dict[str, Any]) -> tuple[int, int]:
        """(annotation items, annotations) on the project's traces matching ``where`` (ClickHouse):
        the annotated traces are few, so they are read from SQL and checked against ClickHouse."""
        ai, an = t.annotation_item.c, t.annotation.c
        with self._engine.connect() as conn:
            annotated = sorted({r.trace_id for r in conn.execute(
                select(ai.trace_id).where(ai.project_id == project_id).distinct())})
        hit: list[str] = []
        for ch in _chunks(annotated, _CH_CHUNK):
            hit += [r[0] for r in self._c.query(
                f"SELECT id FROM $db.trace FINAL WHERE {where} AND id IN {{ann_ids:Array(String)}}",
                {**params, "ann_ids": list(ch)})]
        if not hit:
            return 0, 0
        n_items = n_ann = 0
        with self._engine.connect() as conn:
            items = self._annotation_items(conn, project_id, hit)
            n_items = len(items)
            for ich in _chunks(items, _CHUNK):
                n_ann += conn.execute(select(func.count()).select_from(t.annotation).where(
                    an.project_id == project_id, tuple_(an.queue_id, an.item_id).in_(ich))).scalar_one()
        return n_items, n_ann

    def _delete_tags(self, project_id: str, trace_ids: Sequence[str]) -> None:
        for ch in _chunks(list(trace_ids), _TAG_CHUNK):
            self._c.command("DELETE FROM $db.trace_tag WHERE project_id = {p:String} AND trace_id IN {ids:Array(String)}",
                            {"p": project_id, "ids": list(ch)})

    def _flush_tags(self, project_id: str, trace_ids: list[str], at_least: int) -> None:
        """Delete the tags of ``trace_ids`` (and empty it) once it holds ``at_least`` ids."""
        if trace_ids and len(trace_ids) >= at_least:
            self._delete_tags(project_id, trace_ids)
            trace_ids.clear()

    def _delete_traces(self, project_id: str, ids: Sequence[str], what: str,
                       tags_later: list[str] | None = None) -> dict[str, int]:
        """Delete these traces and everything on them (children first); rows per table. With
        ``tags_later`` their tags are counted now and deleted by the caller (``_delete_tags``) with
        those of later batches: a ``DELETE`` costs about the same whatever it deletes."""
        counts = dict.fromkeys(TABLES, 0)
        an, ai = t.annotation.c, t.annotation_item.c

        def sql_side(conn: Connection) -> dict[str, int]:
            out = {"annotation": 0, "annotation_item": 0}
            for ich in _chunks(self._annotation_items(conn, project_id, ids), _CHUNK):
                out["annotation"] += conn.execute(delete(t.annotation).where(
                    an.project_id == project_id, tuple_(an.queue_id, an.item_id).in_(ich))).rowcount
                out["annotation_item"] += conn.execute(delete(t.annotation_item).where(
                    ai.project_id == project_id, tuple_(ai.queue_id, ai.id).in_(ich))).rowcount
            return out

        counts.update(locked_write(self._engine, sql_side, what=what))
        for ch in _chunks(list(ids), _CH_CHUNK):
            p = {"p": project_id, "ids": list(ch)}
            counts["score"] += self._tombstone("score", ("project_id", "id"), self._c.query(
                "SELECT project_id, id FROM $db.score FINAL WHERE project_id = {p:String} "
                "AND trace_id IN {ids:Array(String)}", p))
            tags = self._scalar("SELECT count() FROM $db.trace_tag FINAL WHERE project_id = {p:String} "
                                "AND trace_id IN {ids:Array(String)}", p)
            if tags:
                if tags_later is None:
                    self._delete_tags(project_id, ch)
                else:
                    tags_later.extend(ch)
                counts["trace_tag"] += tags
            counts["span"] += self._tombstone("span", ("project_id", "trace_id", "id"), self._c.query(
                "SELECT project_id, trace_id, id FROM $db.span FINAL WHERE project_id = {p:String} "
                "AND trace_id IN {ids:Array(String)}", p))
            counts["trace"] += self._tombstone("trace", ("project_id", "start_time", "id"), self._c.query(
                "SELECT project_id, start_time, id FROM $db.trace FINAL WHERE project_id = {p:String} "
                "AND id IN {ids:Array(String)}", p))
        return counts

    def _delete_scores(self, project_id: str, where: str, params: dict[str, Any], batch: int,
                       res: PurgeResult, should_stop: Callable[[], bool] | None = None,
                       pause_s: float = 0.0) -> None:
        """Scores matching ``where``, ``batch`` at a time, oldest first. One read finds the keys of up
        to 20 batches (``score`` is sorted by id, so each read scans the project's scores)."""
        while True:
            t0 = time.perf_counter()
            keys = self._c.query(f"SELECT project_id, id FROM $db.score FINAL WHERE project_id = {{p:String}} "
                                 f"AND {where} ORDER BY timestamp, id LIMIT {int(batch) * 20}",
                                 {**params, "p": project_id})
            if not keys:
                return
            for ch in _chunks(keys, batch):
                if should_stop and should_stop():
                    return
                n = self._tombstone("score", ("project_id", "id"), ch)
                res.add({"score": n}, (time.perf_counter() - t0) * 1000)
                if pause_s:
                    time.sleep(pause_s)
                t0 = time.perf_counter()

    # --- retention -----------------------------------------------------------------------------
    def count_expired(self, project_id: str, cutoffs: dict[str, datetime | None]) -> dict[str, int]:
        counts = dict.fromkeys(TABLES, 0)
        params: dict[str, Any] = {"p": project_id}
        seen: list[str] = []
        for kind in ("traces", "gateway"):
            cutoff = cutoffs.get(kind)
            if cutoff is None:
                continue
            cond = _trace_cond(kind, cutoff, params)
            where = f"project_id = {{p:String}} AND {cond}"
            if seen:  # traces both periods take count once
                where += f" AND NOT ({' OR '.join(seen)})"
            ids = f"SELECT id FROM $db.trace FINAL WHERE {where}"
            counts["trace"] += self._scalar(f"SELECT count() FROM $db.trace FINAL WHERE {where}", params)
            for table, col in (("span", "span"), ("trace_tag", "trace_tag"), ("score", "score")):
                counts[col] += self._scalar(f"SELECT count() FROM $db.{table} FINAL WHERE project_id = {{p:String}} "
                                            f"AND trace_id IN ({ids})", params)
            items, anns = self._annotated(project_id, where, params)
            counts["annotation_item"] += items
            counts["annotation"] += anns
            seen.append(f"({cond})")
        cutoff = cutoffs.get("scores")
        if cutoff is not None:
            params["cut_scores"] = cutoff
            where = f"project_id = {{p:String}} AND timestamp < {{cut_scores:{_DT}}}"
            if seen:  # not those that go with their trace
                where += (f" AND (trace_id IS NULL OR trace_id NOT IN (SELECT id FROM $db.trace FINAL "
                          f"WHERE project_id = {{p:String}} AND ({' OR '.join(seen)})))")
            counts["score"] += self._scalar(f"SELECT count() FROM $db.score FINAL WHERE {where}", params)
        return counts

    def purge(self, project_id: str, cutoffs: dict[str, datetime | None], *, batch: int = 5000,
              pause_s: float = 0.05, should_stop: Callable[[], bool] | None = None) -> PurgeResult:
        res = PurgeResult()
        tags_later: list[str] = []
        try:
            for kind in ("traces", "gateway"):
                cutoff = cutoffs.get(kind)
                if cutoff is not None:
                    params: dict[str, Any] = {"p": project_id}
                    cond = _trace_cond(kind, cutoff, params)
                    self._purge_trace_batches(project_id, cond, params, res, batch, pause_s, should_stop, tags_later)
        finally:
            self._flush_tags(project_id, tags_later, 0)
        cutoff = cutoffs.get("scores")
        if cutoff is not None:
            self._delete_scores(project_id, f"timestamp < {{cut:{_DT}}}", {"cut": cutoff}, batch, res,
                                should_stop, pause_s)
        return res

    def _purge_trace_batches(self, project_id: str, cond: str, params: dict[str, Any], res: PurgeResult,
                             batch: int, pause_s: float, should_stop: Callable[[], bool] | None,
                             tags_later: list[str]) -> None:
        while not (should_stop and should_stop()):
            t0 = time.perf_counter()
            rows = self._c.query(f"SELECT id, span_count FROM $db.trace FINAL WHERE project_id = {{p:String}} "
                                 f"AND {cond} ORDER BY start_time, id LIMIT {int(batch)}", params)
            ids: list[str] = []
            n = 0
            big: str | None = None
            for tid, span_count in rows:
                size = int(span_count or 0) + 1
                if ids and n + size > batch:
                    break
                if not ids and size > batch:  # bigger than a batch: its spans go first, in chunks
                    big = tid
                    break
                ids.append(tid)
                n += size
            if big is not None:
                self._purge_big_trace_spans(project_id, big, res, batch, pause_s)
            elif not ids:
                return
            else:
                counts = self._delete_traces(project_id, ids, "retention", tags_later)
                self._flush_tags(project_id, tags_later, _TAG_CHUNK)
                res.add(counts, (time.perf_counter() - t0) * 1000)
                if not counts["trace"]:  # nothing could be hidden: do not spin
                    return
            time.sleep(pause_s)

    def _purge_big_trace_spans(self, project_id: str, trace_id: str, res: PurgeResult, batch: int,
                               pause_s: float) -> None:
        p = {"p": project_id, "t": trace_id}
        while True:
            t0 = time.perf_counter()
            keys = self._c.query("SELECT project_id, trace_id, id FROM $db.span FINAL WHERE project_id = {p:String} "
                                 f"AND trace_id = {{t:String}} ORDER BY id LIMIT {int(batch)}", p)
            n = self._tombstone("span", ("project_id", "trace_id", "id"), keys)
            if n < batch:  # the last spans: the trace and the rest go with them
                counts = self._delete_traces(project_id, [trace_id], "retention")
                counts["span"] += n
                res.add(counts, (time.perf_counter() - t0) * 1000)
                return
            res.add({"span": n}, (time.perf_counter() - t0) * 1000)
            time.sleep(pause_s)

    # --- data subjects ---------------------------------------------------------------------------
    _SUBJECT = "SELECT id FROM $db.trace FINAL WHERE project_id = {p:String} AND user_id = {u:String}"

    def subject_trace_ids(self, project_id: str, user_id: str) -> list[str]:
        return [r[0] for r in self._c.query(f"{self._SUBJECT} ORDER BY start_time, id",
                                            {"p": project_id, "u": user_id})]

    def _feedback_sql(self, theirs_excluded: bool) -> str:
        where = f"project_id = {{p:String}} AND {_FEEDBACK}"
        if theirs_excluded:  # not on their own traces (those count with the traces)
            where += f" AND (trace_id IS NULL OR trace_id NOT IN ({self._SUBJECT}))"
        return where

    def subject_counts(self, project_id: str, user_id: str) -> dict[str, int]:
        ids = self.subject_trace_ids(project_id, user_id)
        counts = dict.fromkeys(TABLES, 0)
        params = {"p": project_id, "u": user_id}
        counts["trace"] = len(ids)
        if ids:
            for table in ("span", "trace_tag", "score"):
                counts[table] = self._scalar(f"SELECT count() FROM $db.{table} FINAL WHERE project_id = {{p:String}} "
                                             f"AND trace_id IN ({self._SUBJECT})", params)
        counts["score"] += self._scalar(f"SELECT count() FROM $db.score FINAL WHERE {self._feedback_sql(True)}",
                                        params)
        an = t.annotation.c
        with self._engine.connect() as conn:
            items = self._annotation_items(conn, project_id, ids)
            counts["annotation_item"] = len(items)
            for ich in _chunks(items, _CHUNK):
                counts["annotation"] += conn.execute(select(func.count()).select_from(t.annotation).where(
                    an.project_id == project_id, tuple_(an.queue_id, an.item_id).in_(ich))).scalar_one()
            items_ds = self._dataset_items(conn, project_id, user_id, ids)
            counts["dataset_item"] = len(items_ds)
            counts["experiment_item"] = len(self._experiment_items(conn, project_id, items_ds))
        return counts

    def delete_subject(self, project_id: str, user_id: str, *, batch: int = 5000,
                       pause_s: float = 0.0) -> PurgeResult:
        res = PurgeResult()
        di, ei = t.dataset_item.c, t.experiment_item.c
        what = "a data-subject deletion"
        ids = self.subject_trace_ids(project_id, user_id)
        with self._engine.connect() as conn:
            items = self._dataset_items(conn, project_id, user_id, ids)
            results = self._experiment_items(conn, project_id, items)
        for ch in _chunks(results, batch):
            def del_results(conn: Connection, ch: Sequence[tuple[str, str, int]] = ch) -> dict[str, int]:
                n = 0
                for c in _chunks(ch, _CHUNK):
                    n += conn.execute(delete(t.experiment_item).where(
                        ei.project_id == project_id,
                        tuple_(ei.experiment_id, ei.item_id, ei.repetition).in_(c))).rowcount
                return {"experiment_item": n}
            self._tx(del_results, res, what)
        for ch in _chunks(items, batch):
            def del_items(conn: Connection, ch: Sequence[tuple[str, str, int]] = ch) -> dict[str, int]:
                n = 0
                for c in _chunks(ch, _CHUNK):
                    n += conn.execute(delete(t.dataset_item).where(
                        di.project_id == project_id, tuple_(di.dataset, di.id, di.valid_from).in_(c))).rowcount
                return {"dataset_item": n}
            self._tx(del_items, res, what)
        i = 0
        tags_later: list[str] = []
        try:
            while i < len(ids):  # whole traces per batch, about ``batch`` rows each
                window = ids[i:i + _CH_CHUNK]
                sizes = {tid: int(n or 0) + 1 for tid, n in self._c.query(
                    "SELECT id, span_count FROM $db.trace FINAL WHERE project_id = {p:String} "
                    "AND id IN {ids:Array(String)}", {"p": project_id, "ids": window})}
                take: list[str] = []
                n = 0
                for tid in window:
                    size = sizes.get(tid, 1)
                    if take and n + size > batch:
                        break
                    take.append(tid)
                    n += size
                i += len(take)
                t0 = time.perf_counter()
                res.add(self._delete_traces(project_id, take, what, tags_later), (time.perf_counter() - t0) * 1000)
                self._flush_tags(project_id, tags_later, _TAG_CHUNK)
                if pause_s:
                    time.sleep(pause_s)
        finally:
            self._flush_tags(project_id, tags_later, 0)
        # feedback they gave on other traces
        self._delete_scores(project_id, _FEEDBACK, {"u": user_id}, batch, res)
        return res

    def export_subject(self, project_id: str, user_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        ids = self.subject_trace_ids(project_id, user_id)
        for ch in _chunks(ids, 100):
            p = {"p": project_id, "ids": list(ch)}
            traces = [from_db("trace", r) for r in self._c.query_dicts(
                f"SELECT {select_list(TRACE_COLUMNS)} FROM $db.trace FINAL WHERE project_id = {{p:String}} "
                "AND id IN {ids:Array(String)} ORDER BY start_time, id", p)]
            spans: dict[str, list[dict[str, Any]]] = {}
            for r in self._c.query_dicts(
                    f"SELECT {select_list(SPAN_COLUMNS)} FROM $db.span FINAL WHERE project_id = {{p:String}} "
                    "AND trace_id IN {ids:Array(String)} ORDER BY start_time, id", p):
                spans.setdefault(r["trace_id"], []).append(from_db("span", r))
            scores: dict[str, list[dict[str, Any]]] = {}
            for r in self._c.query_dicts(
                    f"SELECT {select_list(SCORE_COLUMNS)} FROM $db.score FINAL WHERE project_id = {{p:String}} "
                    "AND trace_id IN {ids:Array(String)} ORDER BY timestamp, id", p):
                scores.setdefault(r["trace_id"], []).append(from_db("score", r))
            tags: dict[str, list[str]] = {}
            for tid, tag in self._c.query("SELECT DISTINCT trace_id, tag FROM $db.trace_tag WHERE project_id = "
                                          "{p:String} AND trace_id IN {ids:Array(String)}", p):
                tags.setdefault(tid, []).append(tag)
            for tr_row in traces:
                tid = tr_row["id"]
                yield "trace", {**tr_row, "tags": sorted(tags.get(tid, [])), "spans": spans.get(tid, []),
                                "scores": scores.get(tid, [])}
        for r in self._c.query_dicts(
                f"SELECT {select_list(SCORE_COLUMNS)} FROM $db.score FINAL WHERE {self._feedback_sql(True)} "
                "ORDER BY timestamp, id", {"p": project_id, "u": user_id}):
            yield "feedback", from_db("score", r)
        di = t.dataset_item.c
        with self._engine.connect() as conn:
            keys = self._dataset_items(conn, project_id, user_id, ids)
            for ch2 in _chunks(keys, _CHUNK):
                for row in conn.execute(select(t.dataset_item).where(
                        di.project_id == project_id, tuple_(di.dataset, di.id, di.valid_from).in_(ch2))):
                    yield "dataset_item", dict(row._mapping)
