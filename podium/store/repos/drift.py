"""Drift monitors and their results (``store.drift``), the worker's lease on a due monitor, and
the bounded samples of texts and scores a run compares (docs/drift.md).

Statistics are stored flat (``{"input_embedding_auc": 0.93, "drifted": 1.0, ...}``) so that an
alert rule reads one with :meth:`DriftRepo.latest_value` without knowing the monitor's shape.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from podium.errors import Conflict
from podium.store import tables as t
from podium.store.repos.traces import TraceFilter, TraceRepo

__all__ = ["ID_SCAN_CAP", "MONITOR_FIELDS", "DriftRepo"]

#: Fields of a monitor that create/update write (the rest are the worker's).
MONITOR_FIELDS = ("name", "description", "scope", "reference", "window_s", "features", "thresholds",
                  "sample_size", "interval_s", "enabled")
#: At most this many matching trace ids are read per window before sampling ``sample_size`` of
#: them: a run's cost is bounded whatever the traffic.
ID_SCAN_CAP = 50_000
_CHUNK = 500


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def sample_keys(keys: list[tuple[str, str]], allowed: set[str] | None, n: int,
                rng: random.Random) -> tuple[int, dict[str, list[str]]]:
    """The (trace id, span id) keys a sample draws: those of ``allowed`` traces (None: all), ``n``
    of them at random if there are more; their count before sampling, and the chosen span ids per
    trace (sorted keys, so reads go in key order)."""
    if allowed is not None:
        keys = [k for k in keys if k[0] in allowed]
    chosen = sorted(rng.sample(keys, n)) if len(keys) > n else keys
    by_trace: dict[str, list[str]] = {}
    for tid, sid in chosen:
        by_trace.setdefault(tid, []).append(sid)
    return len(keys), by_trace


class DriftRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- monitors -------------------------------------------------------------------------------
    def create(self, project_id: str, fields: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        row = {"project_id": project_id, "id": "dm_" + uuid.uuid4().hex[:20], "created_at": now,
               "updated_at": now, "next_run_at": now, "lease_owner": None, "lease_until": None,
               **{k: fields.get(k) for k in MONITOR_FIELDS}}
        row["enabled"] = bool(fields.get("enabled", True))
        try:
            with self._engine.begin() as conn:
                conn.execute(t.drift_monitor.insert().values(**row))
        except IntegrityError:
            raise Conflict(f"a drift monitor named {row['name']!r} already exists in this project; "
                           "PATCH it or pick another name") from None
        return _monitor(row)

    def monitors(self, project_id: str) -> list[dict[str, Any]]:
        c = t.drift_monitor.c
        with self._engine.connect() as conn:
            rows = [_monitor(dict(r._mapping))
                    for r in conn.execute(select(t.drift_monitor).where(c.project_id == project_id).order_by(c.name))]
        return rows

    def get(self, project_id: str, monitor: str) -> dict[str, Any] | None:
        """A monitor by id, else by name."""
        c = t.drift_monitor.c
        with self._engine.connect() as conn:
            r = conn.execute(select(t.drift_monitor).where(c.project_id == project_id, c.id == monitor)).first()
            if r is None:
                r = conn.execute(select(t.drift_monitor).where(c.project_id == project_id, c.name == monitor)).first()
        return _monitor(dict(r._mapping)) if r is not None else None

    def update(self, project_id: str, monitor_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        vals = {k: v for k, v in changes.items() if k in MONITOR_FIELDS}
        c = t.drift_monitor.c
        if "interval_s" in vals:  # a new schedule starts now
            vals["next_run_at"] = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                n = conn.execute(update(t.drift_monitor).where(c.project_id == project_id, c.id == monitor_id)
                                 .values(**vals, updated_at=datetime.now(UTC))).rowcount
        except IntegrityError:
            raise Conflict(f"a drift monitor named {vals.get('name')!r} already exists in this project; "
                           "pick another name") from None
        return self.get(project_id, monitor_id) if n else None

    def delete(self, project_id: str, monitor_id: str) -> bool:
        """Remove a monitor and its results (their FK cascades; SQLite does not enforce it by
        default, so results go first)."""
        with self._engine.begin() as conn:
            conn.execute(delete(t.drift_result).where(t.drift_result.c.project_id == project_id,
                                                      t.drift_result.c.monitor_id == monitor_id))
            n = conn.execute(delete(t.drift_monitor).where(t.drift_monitor.c.project_id == project_id,
                                                           t.drift_monitor.c.id == monitor_id)).rowcount
        return bool(n)

    # --- the worker's lease -----------------------------------------------------------------------
    def due(self, now: datetime, limit: int = 10) -> list[tuple[str, str]]:
        """(project_id, monitor_id) of enabled monitors whose next run is due and that no live
        lease holds, soonest first (any project: the worker serves them all)."""
        c = t.drift_monitor.c
        stmt = (select(c.project_id, c.id)
                .where(c.enabled.is_(True), c.next_run_at <= now, or_(c.lease_until.is_(None), c.lease_until < now))
                .order_by(c.next_run_at).limit(limit))
        with self._engine.connect() as conn:
            return [(r.project_id, r.id) for r in conn.execute(stmt)]

    def try_lease(self, project_id: str, monitor_id: str, owner: str, now: datetime, lease_s: float) -> bool:
        """Compare-and-set: take the monitor for ``lease_s`` seconds unless another worker holds
        it or it is no longer due. Exactly one of several concurrent callers gets True."""
        c = t.drift_monitor.c
        with self._engine.begin() as conn:
            n = conn.execute(
                update(t.drift_monitor)
                .where(c.project_id == project_id, c.id == monitor_id, c.enabled.is_(True), c.next_run_at <= now,
                       or_(c.lease_until.is_(None), c.lease_until < now))
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            ).rowcount
        return n == 1

    def release(self, project_id: str, monitor_id: str, owner: str, next_run_at: datetime) -> None:
        """The leased run is over: schedule the next one and drop the lease (only the holder's)."""
        c = t.drift_monitor.c
        with self._engine.begin() as conn:
            conn.execute(update(t.drift_monitor)
                         .where(c.project_id == project_id, c.id == monitor_id, c.lease_owner == owner)
                         .values(next_run_at=next_run_at, lease_owner=None, lease_until=None))

    # --- results ---------------------------------------------------------------------------------
    def add_result(self, project_id: str, monitor_id: str, result: dict[str, Any]) -> dict[str, Any]:
        row = {"project_id": project_id, "id": "dr_" + uuid.uuid4().hex[:20], "monitor_id": monitor_id,
               "computed_at": result.get("computed_at") or datetime.now(UTC),
               "status": result.get("status", "ok"),
               "window_start": result["window_start"], "window_end": result["window_end"],
               "reference_start": result.get("reference_start"), "reference_end": result.get("reference_end"),
               "reference_n": int(result.get("reference_n", 0)), "current_n": int(result.get("current_n", 0)),
               "drifted": bool(result.get("drifted", False)), "statistics": result.get("statistics") or {},
               "details": result.get("details") or {}, "error": result.get("error"),
               "duration_ms": result.get("duration_ms")}
        with self._engine.begin() as conn:
            conn.execute(t.drift_result.insert().values(**row))
        return _result(row)

    def results(self, project_id: str, monitor_id: str, *, limit: int = 100,
                before: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        c = t.drift_result.c
        conds: list[ColumnElement[bool]] = [c.project_id == project_id, c.monitor_id == monitor_id]
        if before is not None:
            conds.append(c.computed_at < before)
        stmt = select(t.drift_result).where(*conds).order_by(c.computed_at.desc(), c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_result(dict(r._mapping)) for r in conn.execute(stmt)]

    def latest_results(self, project_id: str) -> dict[str, dict[str, Any]]:
        """Each monitor's newest result, by monitor id (the monitors list's status column)."""
        c = t.drift_result.c
        newest = (select(c.monitor_id, func.max(c.computed_at).label("at"))
                  .where(c.project_id == project_id).group_by(c.monitor_id).subquery())
        stmt = select(t.drift_result).join(
            newest, and_(c.monitor_id == newest.c.monitor_id, c.computed_at == newest.c.at)
        ).where(c.project_id == project_id)
        with self._engine.connect() as conn:
            return {r.monitor_id: _result(dict(r._mapping)) for r in conn.execute(stmt)}

    def latest_value(self, project_id: str, monitor: str, statistic: str) -> float | None:
        """The newest successful result's ``statistic`` for ``monitor`` (id or name): what alert
        rules watch. None when the monitor, a successful result or that statistic is missing."""
        m = self.get(project_id, monitor)
        if m is None:
            return None
        c = t.drift_result.c
        stmt = (select(c.statistics).where(c.project_id == project_id, c.monitor_id == m["id"], c.status == "ok")
                .order_by(c.computed_at.desc(), c.id.desc()).limit(1))
        with self._engine.connect() as conn:
            stats = conn.execute(stmt).scalar()
        if not isinstance(stats, dict):
            return None
        v = stats.get(statistic)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    # --- what a run compares ------------------------------------------------------------------------
    def sample_records(self, project_id: str, f: TraceFilter, start: datetime, end: datetime, n: int, *,
                       span_kind: str | None = None, span_name: str | None = None,
                       seed: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Up to ``n`` records (``trace_id``, ``input``, ``output``) started in ``[start, end)``
        that match the trace filter, drawn uniformly (seeded) from at most ``ID_SCAN_CAP``
        matching ones; with ``span_kind``/``span_name`` the records are those spans of the
        matching traces. Also returns how many matched (capped)."""
        f = TraceFilter(**{**f.__dict__, "start_after": start, "start_before": end})
        rng = random.Random(seed)
        if span_kind is None and span_name is None:
            ids: list[str] = []
            cursor: str | None = None
            repo = TraceRepo(self._engine)
            while len(ids) < ID_SCAN_CAP:
                page = repo.list_traces(project_id, f, limit=min(5000, ID_SCAN_CAP - len(ids)), cursor=cursor)
                ids.extend(r["id"] for r in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
            total = len(ids)
            chosen = sorted(rng.sample(ids, n)) if total > n else sorted(ids)
            tr = t.trace.c
            out: list[dict[str, Any]] = []
            with self._engine.connect() as conn:
                for chunk in _chunks(chosen):
                    out.extend({"trace_id": r.id, "input": r.input, "output": r.output}
                               for r in conn.execute(select(tr.id, tr.input, tr.output)
                                                     .where(tr.project_id == project_id, tr.id.in_(chunk))))
            return out, total
        s = t.span.c
        conds: list[ColumnElement[bool]] = [s.project_id == project_id, s.start_time >= start, s.start_time < end]
        if span_kind is not None:
            conds.append(s.kind == span_kind)
        if span_name is not None:
            conds.append(s.name == span_name)
        narrowed = any(v not in (None, [], "") for k, v in f.__dict__.items() if k not in ("start_after", "start_before"))
        allowed: set[str] | None = None
        if narrowed:  # the spans of the traces the filter matches (traces start before their spans)
            allowed_ids, _ = self.sample_records(project_id, TraceFilter(**{**f.__dict__, "start_after": None}),
                                                 start - timedelta(days=1), end, ID_SCAN_CAP)
            allowed = {r["trace_id"] for r in allowed_ids}
        with self._engine.connect() as conn:
            keys = [(r.trace_id, r.id) for r in conn.execute(
                select(s.trace_id, s.id).where(*conds).order_by(s.start_time, s.id).limit(ID_SCAN_CAP))]
            total, by_trace = sample_keys(keys, allowed, n, rng)
            recs: list[dict[str, Any]] = []
            for tid, sids in by_trace.items():
                for chunk in _chunks(sids):
                    recs.extend({"trace_id": r.trace_id, "input": r.input, "output": r.output}
                                for r in conn.execute(select(s.trace_id, s.input, s.output).where(
                                    s.project_id == project_id, s.trace_id == tid, s.id.in_(chunk))))
        return recs, total

    def score_values(self, project_id: str, names: Sequence[str], trace_ids: Sequence[str]) -> dict[str, list[float]]:
        """Numeric values of the named scores on these traces (the sampled ones), by name."""
        out: dict[str, list[float]] = {n: [] for n in names}
        if not names or not trace_ids:
            return out
        c = t.score.c
        with self._engine.connect() as conn:
            for chunk in _chunks(list(trace_ids)):
                for r in conn.execute(select(c.name, c.value).where(
                        c.project_id == project_id, c.name.in_(list(names)), c.trace_id.in_(chunk),
                        c.value.is_not(None))):
                    out[r.name].append(float(r.value))
        return out

    def dataset_records(self, project_id: str, dataset: str, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
        """Up to ``n`` current items of a dataset as records (``input``; ``expected`` as output)."""
        c = t.dataset_item.c
        with self._engine.connect() as conn:
            rows = [{"trace_id": r.source_trace_id, "input": r.input, "output": r.expected}
                    for r in conn.execute(select(c.source_trace_id, c.input, c.expected)
                                          .where(c.project_id == project_id, c.dataset == dataset,
                                                 c.valid_to.is_(None))
                                          .order_by(c.position).limit(ID_SCAN_CAP))]
        if len(rows) > n:
            rows = random.Random(seed).sample(rows, n)
        return rows

    def dataset_exists(self, project_id: str, dataset: str) -> bool:
        c = t.dataset.c
        with self._engine.connect() as conn:
            return conn.execute(select(c.name).where(c.project_id == project_id, c.name == dataset)).first() is not None


def _monitor(r: dict[str, Any]) -> dict[str, Any]:
    r.pop("project_id", None)
    r["enabled"] = bool(r["enabled"])
    return r


def _result(r: dict[str, Any]) -> dict[str, Any]:
    r.pop("project_id", None)
    r["drifted"] = bool(r["drifted"])
    return r
