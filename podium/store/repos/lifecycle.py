"""Retention and data-subject requests in SQL (the rules live in :mod:`podium.governance.retention`
and :mod:`podium.governance.subject_requests`).

Deleting is done in batches, each its own short transaction (SQLite: ``BEGIN IMMEDIATE``, so a
batch never waits halfway for the write lock), oldest first through an index:

- a trace goes with everything that hangs off it in the same transaction, children first:
  annotations and annotation items on it, its scores, tags, spans, then the trace row. A batch
  takes whole traces until their spans reach the batch size, so a trace is never seen half
  deleted (its aggregates stay true); a trace with more spans than one batch loses its spans
  over several transactions and its row in the last one.
- scores go by ``timestamp`` (``ix_score_retention``), traces by ``start_time``
  (``ix_trace_project_id_start_time``).

Every purge reports the rows deleted per table, the number of transactions and the longest one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.sql.elements import ColumnElement

from podium.store import tables as t
from podium.store.repos._tx import locked_write

__all__ = [
    "GATEWAY_TRACE_PREFIX",
    "KINDS",
    "TABLES",
    "LifecycleRepo",
    "PurgeResult",
    "RetentionPolicy",
    "RetentionRun",
    "SubjectReceipt",
]

#: What retention can delete, each with its own period.
KINDS = ("traces", "scores", "gateway")
#: The tables a purge or a data-subject deletion reports, in deletion order.
TABLES = ("annotation", "annotation_item", "dataset_item", "experiment_item", "score", "trace_tag", "span",
          "trace")
#: The gateway names the traces it starts itself (no trace id from the caller) ``gateway <alias>``:
#: those are its request logs.
GATEWAY_TRACE_PREFIX = "gateway "
_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class RetentionPolicy:
    project_id: str
    traces_days: int | None = None
    scores_days: int | None = None
    gateway_days: int | None = None
    legal_hold: bool = False
    legal_hold_reason: str | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None

    def days(self, kind: str) -> int | None:
        return {"traces": self.traces_days, "scores": self.scores_days, "gateway": self.gateway_days}[kind]


@dataclass(frozen=True)
class RetentionRun:
    id: str
    project_id: str
    dry_run: bool
    status: str
    cutoffs: dict[str, str | None]
    counts: dict[str, int]
    batches: int
    max_tx_ms: float | None
    error: str | None
    actor: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class SubjectReceipt:
    id: str
    project_id: str
    kind: str
    user_id: str
    counts: dict[str, int]
    notes: dict[str, Any]
    actor: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project_id": self.project_id, "kind": self.kind, "user_id": self.user_id,
                "counts": self.counts, "total": sum(self.counts.values()), "notes": self.notes,
                "actor": self.actor, "created_at": self.created_at.isoformat()}


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    batches: int = 0
    max_tx_ms: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, counts: dict[str, int], tx_ms: float) -> None:
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        self.batches += 1
        self.max_tx_ms = max(self.max_tx_ms, tx_ms)


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _policy(row: Any) -> RetentionPolicy:
    m = row._mapping
    return RetentionPolicy(project_id=m["project_id"], traces_days=m["traces_days"], scores_days=m["scores_days"],
                           gateway_days=m["gateway_days"], legal_hold=bool(m["legal_hold"]),
                           legal_hold_reason=m["legal_hold_reason"], updated_by=m["updated_by"],
                           updated_at=m["updated_at"])


def _run(row: Any) -> RetentionRun:
    m = row._mapping
    return RetentionRun(id=m["id"], project_id=m["project_id"], dry_run=bool(m["dry_run"]), status=m["status"],
                        cutoffs=m["cutoffs"] or {}, counts=m["counts"] or {}, batches=m["batches"],
                        max_tx_ms=m["max_tx_ms"], error=m["error"], actor=m["actor"], started_at=m["started_at"],
                        finished_at=m["finished_at"])


def _receipt(row: Any) -> SubjectReceipt:
    m = row._mapping
    return SubjectReceipt(id=m["id"], project_id=m["project_id"], kind=m["kind"], user_id=m["user_id"],
                          counts=m["counts"] or {}, notes=m["notes"] or {}, actor=m["actor"],
                          created_at=m["created_at"])


def _trace_where(project_id: str, kind: str, cutoff: datetime) -> list[ColumnElement[bool]]:
    tr = t.trace.c
    where = [tr.project_id == project_id, tr.start_time < cutoff]
    if kind == "gateway":
        where += [tr.name_explicit.is_(True), tr.name.startswith(GATEWAY_TRACE_PREFIX, autoescape=True)]
    return where


def _delete_traces(conn: Connection, project_id: str, ids: Sequence[str]) -> dict[str, int]:
    """Delete these traces and everything on them (children first); rows per table."""
    counts = dict.fromkeys(TABLES, 0)
    ai, an, sc, tg, sp, tr = (t.annotation_item.c, t.annotation.c, t.score.c, t.trace_tag.c, t.span.c, t.trace.c)
    for chunk in _chunks(list(ids)):
        items = [(r.queue_id, r.id) for r in conn.execute(
            select(ai.queue_id, ai.id).where(ai.project_id == project_id, ai.trace_id.in_(chunk)))]
        for ich in _chunks(items):
            counts["annotation"] += conn.execute(delete(t.annotation).where(
                an.project_id == project_id, tuple_(an.queue_id, an.item_id).in_(ich))).rowcount
            counts["annotation_item"] += conn.execute(delete(t.annotation_item).where(
                ai.project_id == project_id, tuple_(ai.queue_id, ai.id).in_(ich))).rowcount
        counts["score"] += conn.execute(delete(t.score).where(sc.project_id == project_id,
                                                              sc.trace_id.in_(chunk))).rowcount
        counts["trace_tag"] += conn.execute(delete(t.trace_tag).where(tg.project_id == project_id,
                                                                      tg.trace_id.in_(chunk))).rowcount
        counts["span"] += conn.execute(delete(t.span).where(sp.project_id == project_id,
                                                            sp.trace_id.in_(chunk))).rowcount
        counts["trace"] += conn.execute(delete(t.trace).where(tr.project_id == project_id,
                                                              tr.id.in_(chunk))).rowcount
    return counts


class LifecycleRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- policies ------------------------------------------------------------------------------
    def policy(self, project_id: str) -> RetentionPolicy:
        """The project's policy (all periods inherited, no hold, when never set)."""
        with self._engine.connect() as conn:
            row = conn.execute(select(t.retention_policy).where(
                t.retention_policy.c.project_id == project_id)).first()
        return _policy(row) if row is not None else RetentionPolicy(project_id=project_id)

    def _upsert(self, project_id: str, values: dict[str, Any]) -> RetentionPolicy:
        now = datetime.now(UTC)
        rp = t.retention_policy.c

        def fn(conn: Connection) -> None:
            n = conn.execute(update(t.retention_policy).where(rp.project_id == project_id)
                             .values(**values, updated_at=now)).rowcount
            if n == 0:
                conn.execute(insert(t.retention_policy).values(
                    **{"project_id": project_id, "legal_hold": False, **values, "updated_at": now}))

        locked_write(self._engine, fn, what="the retention policy")
        return self.policy(project_id)

    def set_periods(self, project_id: str, periods: dict[str, int | None], *, actor: str | None) -> RetentionPolicy:
        """Set the periods named in ``periods`` (``traces``/``scores``/``gateway``: days, 0 keeps
        forever, None inherits the installation default); the others stay."""
        values: dict[str, Any] = {f"{k}_days": v for k, v in periods.items() if k in KINDS}
        return self._upsert(project_id, {**values, "updated_by": actor})

    def set_legal_hold(self, project_id: str, on: bool, *, reason: str | None, actor: str | None) -> RetentionPolicy:
        return self._upsert(project_id, {"legal_hold": on, "legal_hold_reason": reason if on else None,
                                         "updated_by": actor})

    def ensure_policies(self) -> None:
        """A policy row (all inherited) for every project without one, so the job can lease them."""
        p, rp = t.project.c, t.retention_policy.c
        now = datetime.now(UTC)

        def fn(conn: Connection) -> None:
            missing = [r.id for r in conn.execute(select(p.id).where(
                ~select(rp.project_id).where(rp.project_id == p.id).exists()))]
            if missing:
                conn.execute(insert(t.retention_policy), [
                    {"project_id": pid, "legal_hold": False, "updated_at": now} for pid in missing])

        locked_write(self._engine, fn, what="the retention policies")

    def claim_due(self, *, now: datetime, next_at: datetime) -> list[RetentionPolicy]:
        """The policies whose next run is due, each moved to ``next_at`` by this call (a lease: two
        workers never purge the same project in the same period)."""
        rp = t.retention_policy.c
        with self._engine.connect() as conn:
            due = [r.project_id for r in conn.execute(select(rp.project_id).where(
                or_(rp.next_run_at.is_(None), rp.next_run_at <= now)))]
        out: list[RetentionPolicy] = []
        for pid in due:
            def fn(conn: Connection, pid: str = pid) -> int:
                return conn.execute(update(t.retention_policy).where(
                    rp.project_id == pid, or_(rp.next_run_at.is_(None), rp.next_run_at <= now))
                    .values(next_run_at=next_at)).rowcount

            if locked_write(self._engine, fn, what="the retention lease") == 1:
                out.append(self.policy(pid))
        return out

    # --- retention -----------------------------------------------------------------------------
    def count_expired(self, project_id: str, cutoffs: dict[str, datetime | None]) -> dict[str, int]:
        """What a purge with these cut-offs would delete now, per table."""
        counts = dict.fromkeys(TABLES, 0)
        tr, sp, sc, tg, ai = t.trace.c, t.span.c, t.score.c, t.trace_tag.c, t.annotation_item.c
        with self._engine.connect() as conn:
            seen_trace_cond: list[ColumnElement[bool]] = []
            for kind in ("traces", "gateway"):
                cutoff = cutoffs.get(kind)
                if cutoff is None:
                    continue
                where = _trace_where(project_id, kind, cutoff)
                if seen_trace_cond:  # traces both periods take count once
                    where.append(~or_(*seen_trace_cond))
                ids = select(tr.id).where(*where).scalar_subquery()
                counts["trace"] += conn.execute(select(func.count()).select_from(t.trace).where(*where)).scalar_one()
                counts["span"] += conn.execute(select(func.count()).select_from(t.span).where(
                    sp.project_id == project_id, sp.trace_id.in_(ids))).scalar_one()
                counts["trace_tag"] += conn.execute(select(func.count()).select_from(t.trace_tag).where(
                    tg.project_id == project_id, tg.trace_id.in_(ids))).scalar_one()
                counts["score"] += conn.execute(select(func.count()).select_from(t.score).where(
                    sc.project_id == project_id, sc.trace_id.in_(ids))).scalar_one()
                item_ids = select(ai.id).where(ai.project_id == project_id, ai.trace_id.in_(ids))
                counts["annotation_item"] += conn.execute(select(func.count()).select_from(
                    t.annotation_item).where(ai.project_id == project_id, ai.trace_id.in_(ids))).scalar_one()
                counts["annotation"] += conn.execute(select(func.count()).select_from(t.annotation).where(
                    t.annotation.c.project_id == project_id,
                    t.annotation.c.item_id.in_(item_ids.scalar_subquery()))).scalar_one()
                seen_trace_cond.append(and_(*_trace_where(project_id, kind, cutoff)[1:]))
            cutoff = cutoffs.get("scores")
            if cutoff is not None:
                where = [sc.project_id == project_id, sc.timestamp < cutoff]
                if seen_trace_cond:  # not those that go with their trace
                    gone = select(tr.id).where(tr.project_id == project_id, or_(*seen_trace_cond)).scalar_subquery()
                    where.append(or_(sc.trace_id.is_(None), sc.trace_id.not_in(gone)))
                counts["score"] += conn.execute(select(func.count()).select_from(t.score).where(*where)).scalar_one()
        return counts

    def purge(self, project_id: str, cutoffs: dict[str, datetime | None], *, batch: int = 5000,
              pause_s: float = 0.05, should_stop: Callable[[], bool] | None = None) -> PurgeResult:
        """Delete what is older than each cut-off (None: keep that kind), in batches of about
        ``batch`` rows, oldest first, sleeping ``pause_s`` between two transactions."""
        res = PurgeResult()
        for kind in ("traces", "gateway"):
            cutoff = cutoffs.get(kind)
            if cutoff is not None:
                self._purge_traces(project_id, _trace_where(project_id, kind, cutoff), res, batch, pause_s,
                                   should_stop)
        cutoff = cutoffs.get("scores")
        if cutoff is not None:
            self._purge_scores(project_id, cutoff, res, batch, pause_s, should_stop)
        return res

    def _tx(self, fn: Callable[[Connection], dict[str, int]], res: PurgeResult, what: str) -> dict[str, int]:
        t0 = time.perf_counter()
        counts = locked_write(self._engine, fn, what=what)
        res.add(counts, (time.perf_counter() - t0) * 1000)
        return counts

    def _purge_traces(self, project_id: str, where: list[ColumnElement[bool]], res: PurgeResult, batch: int,
                      pause_s: float, should_stop: Callable[[], bool] | None) -> None:
        tr = t.trace.c
        while not (should_stop and should_stop()):
            big: list[str] = []

            def fn(conn: Connection, big: list[str] = big) -> dict[str, int]:
                rows = conn.execute(select(tr.id, tr.span_count).where(*where).order_by(tr.start_time)
                                    .limit(batch)).all()
                ids: list[str] = []
                n = 0
                for r in rows:
                    size = int(r.span_count or 0) + 1
                    if ids and n + size > batch:
                        break
                    if not ids and size > batch:  # bigger than a batch: its spans go first, in chunks
                        big.append(r.id)
                        return {}
                    ids.append(r.id)
                    n += size
                return _delete_traces(conn, project_id, ids) if ids else {}

            t0 = time.perf_counter()
            counts = locked_write(self._engine, fn, what="retention")
            if big:
                self._purge_big_trace(project_id, big[0], res, batch, pause_s)
            elif not any(counts.values()):
                return
            else:
                res.add(counts, (time.perf_counter() - t0) * 1000)
            time.sleep(pause_s)

    def _purge_big_trace(self, project_id: str, trace_id: str, res: PurgeResult, batch: int, pause_s: float) -> None:
        sp = t.span.c
        done: list[bool] = []
        while not done:
            def chunk(conn: Connection) -> dict[str, int]:
                ids = [r.id for r in conn.execute(select(sp.id).where(
                    sp.project_id == project_id, sp.trace_id == trace_id).limit(batch))]
                n = 0
                for ch in _chunks(ids):
                    n += conn.execute(delete(t.span).where(sp.project_id == project_id, sp.trace_id == trace_id,
                                                           sp.id.in_(ch))).rowcount
                if len(ids) < batch:  # the last spans: the trace and the rest go with them
                    counts = _delete_traces(conn, project_id, [trace_id])
                    counts["span"] += n
                    done.append(True)
                    return counts
                return {"span": n}

            self._tx(chunk, res, "retention")
            if not done:
                time.sleep(pause_s)

    def _purge_scores(self, project_id: str, cutoff: datetime, res: PurgeResult, batch: int, pause_s: float,
                      should_stop: Callable[[], bool] | None) -> None:
        sc = t.score.c
        while not (should_stop and should_stop()):
            def fn(conn: Connection) -> dict[str, int]:
                ids = [r.id for r in conn.execute(select(sc.id).where(
                    sc.project_id == project_id, sc.timestamp < cutoff).order_by(sc.timestamp).limit(batch))]
                n = 0
                for ch in _chunks(ids):
                    n += conn.execute(delete(t.score).where(sc.project_id == project_id, sc.id.in_(ch))).rowcount
                return {"score": n}

            if self._tx(fn, res, "retention")["score"] == 0:
                res.batches -= 1  # the empty probe is not a batch
                return
            time.sleep(pause_s)

    def record_run(self, project_id: str, *, dry_run: bool, status: str, cutoffs: dict[str, datetime | None],
                   counts: dict[str, int], batches: int, max_tx_ms: float | None, error: str | None,
                   actor: str | None, started_at: datetime) -> RetentionRun:
        row = {"project_id": project_id, "id": uuid.uuid4().hex, "dry_run": dry_run, "status": status,
               "cutoffs": {k: (v.isoformat() if v else None) for k, v in cutoffs.items()}, "counts": counts,
               "batches": batches, "max_tx_ms": max_tx_ms, "error": error, "actor": actor,
               "started_at": started_at, "finished_at": datetime.now(UTC)}
        with self._engine.begin() as conn:
            conn.execute(insert(t.retention_run).values(**row))
        return _run(type("R", (), {"_mapping": row})())

    def runs(self, project_id: str, *, limit: int = 20) -> list[RetentionRun]:
        rr = t.retention_run.c
        with self._engine.connect() as conn:
            return [_run(r) for r in conn.execute(select(t.retention_run).where(rr.project_id == project_id)
                                                  .order_by(rr.started_at.desc()).limit(limit))]

    # --- data subjects ---------------------------------------------------------------------------
    def subject_trace_ids(self, project_id: str, user_id: str) -> list[str]:
        tr = t.trace.c
        with self._engine.connect() as conn:
            return [r.id for r in conn.execute(select(tr.id).where(tr.project_id == project_id,
                                                                   tr.user_id == user_id).order_by(tr.start_time))]

    def _feedback_where(self, project_id: str, user_id: str) -> list[ColumnElement[bool]]:
        sc = t.score.c
        return [sc.project_id == project_id, sc.metadata["user_id"].as_string() == user_id]

    def _dataset_items(self, conn: Connection, project_id: str, user_id: str,
                       trace_ids: Sequence[str]) -> list[tuple[str, str, int]]:
        """(dataset, item id, valid_from) of the items made from the user's traces or naming them."""
        di = t.dataset_item.c
        keys: set[tuple[str, str, int]] = set()
        for ch in _chunks(list(trace_ids)):
            keys.update((r.dataset, r.id, r.valid_from) for r in conn.execute(
                select(di.dataset, di.id, di.valid_from).where(di.project_id == project_id,
                                                               di.source_trace_id.in_(ch))))
        keys.update((r.dataset, r.id, r.valid_from) for r in conn.execute(
            select(di.dataset, di.id, di.valid_from).where(di.project_id == project_id,
                                                           di.metadata["user_id"].as_string() == user_id)))
        return sorted(keys)

    def _experiment_items(self, conn: Connection, project_id: str,
                          items: Sequence[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
        """(experiment, item id, repetition) of the results computed on those dataset items."""
        ex, ei = t.experiment.c, t.experiment_item.c
        by_ds: dict[str, set[str]] = {}
        for ds, iid, _ in items:
            by_ds.setdefault(ds, set()).add(iid)
        out: list[tuple[str, str, int]] = []
        for ds, iids in by_ds.items():
            exps = select(ex.id).where(ex.project_id == project_id, ex.dataset_name == ds).scalar_subquery()
            for ch in _chunks(sorted(iids)):
                out += [(r.experiment_id, r.item_id, r.repetition) for r in conn.execute(
                    select(ei.experiment_id, ei.item_id, ei.repetition).where(
                        ei.project_id == project_id, ei.experiment_id.in_(exps), ei.item_id.in_(ch)))]
        return out

    def subject_counts(self, project_id: str, user_id: str) -> dict[str, int]:
        """What a deletion of ``user_id`` would delete now, per table."""
        ids = self.subject_trace_ids(project_id, user_id)
        counts = dict.fromkeys(TABLES, 0)
        tr, sp, sc, tg, ai, an = (t.trace.c, t.span.c, t.score.c, t.trace_tag.c, t.annotation_item.c,
                                  t.annotation.c)
        with self._engine.connect() as conn:
            for ch in _chunks(ids):
                counts["trace"] += len(ch)
                counts["span"] += conn.execute(select(func.count()).select_from(t.span).where(
                    sp.project_id == project_id, sp.trace_id.in_(ch))).scalar_one()
                counts["trace_tag"] += conn.execute(select(func.count()).select_from(t.trace_tag).where(
                    tg.project_id == project_id, tg.trace_id.in_(ch))).scalar_one()
                counts["score"] += conn.execute(select(func.count()).select_from(t.score).where(
                    sc.project_id == project_id, sc.trace_id.in_(ch))).scalar_one()
                items = [(r.queue_id, r.id) for r in conn.execute(select(ai.queue_id, ai.id).where(
                    ai.project_id == project_id, ai.trace_id.in_(ch)))]
                counts["annotation_item"] += len(items)
                for ich in _chunks(items):
                    counts["annotation"] += conn.execute(select(func.count()).select_from(t.annotation).where(
                        an.project_id == project_id, tuple_(an.queue_id, an.item_id).in_(ich))).scalar_one()
            fb = self._feedback_where(project_id, user_id)
            theirs = or_(sc.trace_id.is_(None), ~sc.trace_id.in_(
                select(tr.id).where(tr.project_id == project_id, tr.user_id == user_id).scalar_subquery()))
            counts["score"] += conn.execute(select(func.count()).select_from(t.score).where(*fb, theirs)).scalar_one()
            items_ds = self._dataset_items(conn, project_id, user_id, ids)
            counts["dataset_item"] = len(items_ds)
            counts["experiment_item"] = len(self._experiment_items(conn, project_id, items_ds))
        return counts

    def delete_subject(self, project_id: str, user_id: str, *, batch: int = 5000,
                       pause_s: float = 0.0) -> PurgeResult:
        """Delete everything about ``user_id``: their traces (with spans, scores, tags and
        annotations), feedback they gave (scores whose metadata names them), dataset items made
        from their traces or naming them, and experiment results computed on those items."""
        res = PurgeResult()
        sc, di, ei = t.score.c, t.dataset_item.c, t.experiment_item.c
        ids = self.subject_trace_ids(project_id, user_id)
        with self._engine.connect() as conn:
            items = self._dataset_items(conn, project_id, user_id, ids)
            results = self._experiment_items(conn, project_id, items)
        for ch in _chunks(results, batch):
            def del_results(conn: Connection, ch: Sequence[tuple[str, str, int]] = ch) -> dict[str, int]:
                n = 0
                for c in _chunks(ch):
                    n += conn.execute(delete(t.experiment_item).where(
                        ei.project_id == project_id,
                        tuple_(ei.experiment_id, ei.item_id, ei.repetition).in_(c))).rowcount
                return {"experiment_item": n}
            self._tx(del_results, res, "a data-subject deletion")
        for ch in _chunks(items, batch):
            def del_items(conn: Connection, ch: Sequence[tuple[str, str, int]] = ch) -> dict[str, int]:
                n = 0
                for c in _chunks(ch):
                    n += conn.execute(delete(t.dataset_item).where(
                        di.project_id == project_id, tuple_(di.dataset, di.id, di.valid_from).in_(c))).rowcount
                return {"dataset_item": n}
            self._tx(del_items, res, "a data-subject deletion")
        i = 0
        while i < len(ids):  # whole traces per transaction, about ``batch`` rows each
            with self._engine.connect() as conn:
                sizes = {r.id: int(r.span_count or 0) + 1 for r in conn.execute(
                    select(t.trace.c.id, t.trace.c.span_count).where(t.trace.c.project_id == project_id,
                                                                     t.trace.c.id.in_(ids[i:i + _CHUNK])))}
            take: list[str] = []
            n = 0
            for tid in ids[i:i + _CHUNK]:
                size = sizes.get(tid, 1)
                if take and n + size > batch:
                    break
                take.append(tid)
                n += size
            i += len(take)
            def del_traces(conn: Connection, take: list[str] = take) -> dict[str, int]:
                return _delete_traces(conn, project_id, take)
            self._tx(del_traces, res, "a data-subject deletion")
            if pause_s:
                time.sleep(pause_s)
        while True:  # feedback they gave on other traces
            def del_feedback(conn: Connection) -> dict[str, int]:
                sids = [r.id for r in conn.execute(select(sc.id).where(
                    *self._feedback_where(project_id, user_id)).limit(batch))]
                n = 0
                for c in _chunks(sids):
                    n += conn.execute(delete(t.score).where(sc.project_id == project_id, sc.id.in_(c))).rowcount
                return {"score": n}
            if self._tx(del_feedback, res, "a data-subject deletion")["score"] == 0:
                break
        return res

    def export_subject(self, project_id: str, user_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Everything about ``user_id``, as (section, row) pairs in order: ``trace`` (each with its
        ``spans``, ``scores`` and ``tags``), ``feedback`` (scores naming them on other traces),
        ``dataset_item``. Reads a chunk of traces at a time."""
        tr, sp, sc, tg = t.trace.c, t.span.c, t.score.c, t.trace_tag.c
        ids = self.subject_trace_ids(project_id, user_id)
        for ch in _chunks(ids, 100):
            with self._engine.connect() as conn:
                traces = [dict(r._mapping) for r in conn.execute(select(t.trace).where(
                    tr.project_id == project_id, tr.id.in_(ch)).order_by(tr.start_time))]
                spans: dict[str, list[dict[str, Any]]] = {}
                for r in conn.execute(select(t.span).where(sp.project_id == project_id, sp.trace_id.in_(ch))
                                      .order_by(sp.start_time)):
                    spans.setdefault(r.trace_id, []).append(dict(r._mapping))
                scores: dict[str, list[dict[str, Any]]] = {}
                for r in conn.execute(select(t.score).where(sc.project_id == project_id, sc.trace_id.in_(ch))):
                    scores.setdefault(r.trace_id, []).append(dict(r._mapping))
                tags: dict[str, list[str]] = {}
                for r in conn.execute(select(tg.trace_id, tg.tag).where(tg.project_id == project_id,
                                                                        tg.trace_id.in_(ch))):
                    tags.setdefault(r.trace_id, []).append(r.tag)
            for tr_row in traces:
                tid = tr_row["id"]
                yield "trace", {**tr_row, "tags": sorted(tags.get(tid, [])), "spans": spans.get(tid, []),
                                "scores": scores.get(tid, [])}
        with self._engine.connect() as conn:
            theirs = set(ids)
            for r in conn.execute(select(t.score).where(*self._feedback_where(project_id, user_id))):
                if r.trace_id not in theirs:
                    yield "feedback", dict(r._mapping)
            keys = self._dataset_items(conn, project_id, user_id, ids)
            di = t.dataset_item.c
            for ch2 in _chunks(keys):
                for r in conn.execute(select(t.dataset_item).where(
                        di.project_id == project_id, tuple_(di.dataset, di.id, di.valid_from).in_(ch2))):
                    yield "dataset_item", dict(r._mapping)

    def record_request(self, project_id: str, *, kind: str, user_id: str, counts: dict[str, int],
                       notes: dict[str, Any], actor: str | None) -> SubjectReceipt:
        row = {"project_id": project_id, "id": uuid.uuid4().hex, "kind": kind, "user_id": user_id,
               "counts": counts, "notes": notes, "actor": actor, "created_at": datetime.now(UTC)}
        with self._engine.begin() as conn:
            conn.execute(insert(t.subject_request).values(**row))
        return _receipt(type("R", (), {"_mapping": row})())

    def requests(self, project_id: str, *, user_id: str | None = None, limit: int = 50) -> list[SubjectReceipt]:
        sr = t.subject_request.c
        q = select(t.subject_request).where(sr.project_id == project_id)
        if user_id is not None:
            q = q.where(sr.user_id == user_id)
        with self._engine.connect() as conn:
            return [_receipt(r) for r in conn.execute(q.order_by(sr.created_at.desc()).limit(limit))]
