"""Online evaluation rules, the traces they match and their per-minute counters.

A rule is stored as validated by :mod:`podium.monitor.online.rules` (this module checks nothing
but names). The producer asks :meth:`OnlineEvalRepo.candidates` for traces updated after the
rule's keyset cursor ``(cursor_time, cursor_id)`` that match its filter, and moves the cursor
with :meth:`OnlineEvalRepo.advance_cursor` (only forward, so several workers may race).
Counters live in one-minute buckets (``online_eval_stat``), incremented with upserts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from podium.errors import Conflict
from podium.store import tables as t
from podium.store.repos.traces import TraceFilter, trace_conditions

__all__ = ["JUDGE_TAG", "OnlineEvalRepo", "trace_filter"]

#: The tag on the gateway traces of online judges' own calls: never evaluated themselves.
JUDGE_TAG = "podium:online-eval"

_RULE_FIELDS = ("name", "enabled", "target", "filter", "sample_rate", "scorers", "mapping", "delay_s")
_COUNTERS = ("matched", "evaluated", "failed", "judge_calls", "judge_cost", "lag_s_sum")
_FILTER_FIELDS = {f.name for f in fields(TraceFilter)}


def trace_filter(raw: dict[str, Any] | None) -> TraceFilter:
    """A stored filter (JSON: times as ISO strings) as a :class:`TraceFilter`."""
    kw: dict[str, Any] = {}
    for k, v in (raw or {}).items():
        if k not in _FILTER_FIELDS or v is None:
            continue
        if k in ("start_after", "start_before") and isinstance(v, str):
            v = datetime.fromisoformat(v)
            v = v if v.tzinfo else v.replace(tzinfo=UTC)
        kw[k] = list(v) if k == "tags" else v
    return TraceFilter(**kw)


def _filter_conditions(project_id: str, f: TraceFilter) -> list[ColumnElement[bool]]:
    """The trace list's filter conditions, never matching the online judges' own gateway calls."""
    tr, tg = t.trace.c, t.trace_tag.c
    conds = trace_conditions(project_id, f)
    conds.append(not_(exists().where(tg.project_id == project_id, tg.trace_id == tr.id, tg.tag == JUDGE_TAG)
                      .correlate(t.trace)))
    return conds


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _bucket(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


class OnlineEvalRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- rules ---------------------------------------------------------------------------------
    def create(self, project_id: str, rule: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        row = {k: rule.get(k) for k in _RULE_FIELDS}
        row.update(project_id=project_id, id=rule.get("id") or uuid.uuid4().hex, created_at=now, updated_at=now,
                   cursor_time=rule.get("cursor_time"), cursor_id=None)
        try:
            with self._engine.begin() as conn:
                conn.execute(t.online_eval_rule.insert().values(**row))
        except IntegrityError:
            raise Conflict(f"an evaluation rule named {row['name']!r} already exists in this project; "
                           "pick another name or PATCH the existing rule") from None
        return row

    def list_rules(self, project_id: str) -> list[dict[str, Any]]:
        r = t.online_eval_rule.c
        with self._engine.connect() as conn:
            return [dict(x._mapping) for x in
                    conn.execute(select(t.online_eval_rule).where(r.project_id == project_id).order_by(r.name))]

    def get(self, project_id: str, rule_id: str) -> dict[str, Any] | None:
        r = t.online_eval_rule.c
        with self._engine.connect() as conn:
            row = conn.execute(select(t.online_eval_rule).where(r.project_id == project_id, r.id == rule_id)).first()
        return dict(row._mapping) if row is not None else None

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Rules by ``(project_id, rule_id)`` (missing ones are left out)."""
        by_project: dict[str, set[str]] = {}
        for p, i in keys:
            by_project.setdefault(p, set()).add(i)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        r = t.online_eval_rule.c
        with self._engine.connect() as conn:
            for p, ids in by_project.items():
                for x in conn.execute(select(t.online_eval_rule).where(r.project_id == p, r.id.in_(sorted(ids)))):
                    out[(p, x.id)] = dict(x._mapping)
        return out

    def enabled(self) -> list[dict[str, Any]]:
        """Every enabled rule of every project (the producer's round)."""
        r = t.online_eval_rule.c
        with self._engine.connect() as conn:
            return [dict(x._mapping) for x in conn.execute(
                select(t.online_eval_rule).where(r.enabled.is_(True)).order_by(r.project_id, r.id))]

    def update(self, project_id: str, rule_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        vals = {k: v for k, v in changes.items() if k in _RULE_FIELDS}
        vals["updated_at"] = datetime.now(UTC)
        r = t.online_eval_rule.c
        try:
            with self._engine.begin() as conn:
                res = conn.execute(update(t.online_eval_rule).where(r.project_id == project_id, r.id == rule_id)
                                   .values(**vals))
        except IntegrityError:
            raise Conflict(f"an evaluation rule named {vals.get('name')!r} already exists in this project; "
                           "pick another name") from None
        return self.get(project_id, rule_id) if res.rowcount else None

    def delete(self, project_id: str, rule_id: str) -> bool:
        r = t.online_eval_rule.c
        with self._engine.begin() as conn:
            res = conn.execute(delete(t.online_eval_rule).where(r.project_id == project_id, r.id == rule_id))
        return bool(res.rowcount)

    # --- the traces a rule matches -----------------------------------------------------------
    def candidates(self, rule: dict[str, Any], *, until: datetime, limit: int = 1000) -> list[tuple[str, datetime]]:
        """``(trace_id, updated_at)`` of traces matching the rule's filter, updated after its cursor
        and no later than ``until``, oldest first."""
        tr = t.trace.c
        pid = rule["project_id"]
        conds = _filter_conditions(pid, trace_filter(rule.get("filter")))
        conds.append(tr.updated_at <= until)
        ct, cid = rule.get("cursor_time"), rule.get("cursor_id")
        if ct is not None:
            conds.append(or_(tr.updated_at > ct, and_(tr.updated_at == ct, tr.id > (cid or ""))))
        stmt = select(tr.id, tr.updated_at).where(*conds).order_by(tr.updated_at, tr.id).limit(limit)
        with self._engine.connect() as conn:
            return [(x.id, x.updated_at) for x in conn.execute(stmt)]

    def in_range(self, project_id: str, filter_: dict[str, Any] | None, start: datetime, end: datetime, *,
                 after: tuple[datetime, str] | None = None, limit: int = 1000) -> list[tuple[str, datetime]]:
        """``(trace_id, start_time)`` of traces matching ``filter_`` that started in ``[start, end)``,
        in start order after the keyset ``after`` (backfill, in chunks)."""
        tr = t.trace.c
        conds = _filter_conditions(project_id, trace_filter(filter_))
        conds += [tr.start_time >= start, tr.start_time < end]
        if after is not None:
            conds.append(or_(tr.start_time > after[0], and_(tr.start_time == after[0], tr.id > after[1])))
        stmt = select(tr.id, tr.start_time).where(*conds).order_by(tr.start_time, tr.id).limit(limit)
        with self._engine.connect() as conn:
            return [(x.id, x.start_time) for x in conn.execute(stmt)]

    def advance_cursor(self, project_id: str, rule_id: str, at: datetime, trace_id: str) -> None:
        """Move the rule's cursor to ``(at, trace_id)`` unless it is already past it."""
        r = t.online_eval_rule.c
        behind = or_(r.cursor_time.is_(None), r.cursor_time < at, and_(r.cursor_time == at, r.cursor_id < trace_id))
        with self._engine.begin() as conn:
            conn.execute(update(t.online_eval_rule).where(r.project_id == project_id, r.id == rule_id, behind)
                         .values(cursor_time=at, cursor_id=trace_id))

    def load_traces(self, project_id: str, trace_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Whole traces (with input, output, metadata and tags) by id."""
        tr = t.trace.c
        out: dict[str, dict[str, Any]] = {}
        ids = sorted(set(trace_ids))
        with self._engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for x in conn.execute(select(t.trace).where(tr.project_id == project_id, tr.id.in_(chunk))):
                    row = dict(x._mapping)
                    row["tags"] = []
                    out[row["id"]] = row
                tg = t.trace_tag.c
                for x in conn.execute(select(tg.trace_id, tg.tag).where(tg.project_id == project_id,
                                                                         tg.trace_id.in_(chunk)).order_by(tg.tag)):
                    if x.trace_id in out:
                        out[x.trace_id]["tags"].append(x.tag)
        return out

    def load_spans(self, project_id: str, trace_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Every span of these traces (with input and output), in start order, by trace id."""
        s = t.span.c
        out: dict[str, list[dict[str, Any]]] = {}
        ids = sorted(set(trace_ids))
        with self._engine.connect() as conn:
            for i in range(0, len(ids), 500):
                stmt = (select(t.span).where(s.project_id == project_id, s.trace_id.in_(ids[i:i + 500]))
                        .order_by(s.trace_id, s.start_time, s.id))
                for x in conn.execute(stmt):
                    out.setdefault(x.trace_id, []).append(dict(x._mapping))
        return out

    # --- counters --------------------------------------------------------------------------------
    def count(self, project_id: str, rule_id: str, *, at: datetime | None = None, **inc: float) -> None:
        """Add to the rule's counters in the bucket of ``at`` (now): ``matched``, ``evaluated``,
        ``failed``, ``judge_calls``, ``judge_cost``, ``lag_s_sum``. A deleted rule's counts are dropped."""
        vals = {k: inc.get(k, 0) for k in _COUNTERS}
        if not any(vals.values()):
            return
        row = {"project_id": project_id, "rule_id": rule_id, "bucket": _bucket(at or datetime.now(UTC)), **vals}
        st = t.online_eval_stat
        try:
            with self._engine.begin() as conn:
                stmt = _insert(conn, st)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["project_id", "rule_id", "bucket"],
                    set_={k: st.c[k] + stmt.excluded[k] for k in _COUNTERS},
                )
                conn.execute(stmt, [row])
        except IntegrityError:
            pass  # the rule was deleted meanwhile

    def totals(self, project_id: str, rule_ids: Sequence[str] | None = None, *,
               since: datetime | None = None) -> dict[str, dict[str, float]]:
        """Counter sums per rule (all time, or since ``since``)."""
        st = t.online_eval_stat.c
        conds: list[ColumnElement[bool]] = [st.project_id == project_id]
        if rule_ids is not None:
            conds.append(st.rule_id.in_(list(rule_ids)))
        if since is not None:
            conds.append(st.bucket >= _bucket(since))
        stmt = select(st.rule_id, *[func.coalesce(func.sum(st[k]), 0).label(k) for k in _COUNTERS]).where(
            *conds).group_by(st.rule_id)
        with self._engine.connect() as conn:
            return {x.rule_id: {k: float(getattr(x, k)) for k in _COUNTERS} for x in conn.execute(stmt)}

    def series(self, project_id: str, rule_id: str, *, minutes: int = 60) -> list[dict[str, Any]]:
        """The last ``minutes`` buckets of one rule, oldest first (buckets without activity are absent)."""
        st = t.online_eval_stat.c
        since = _bucket(datetime.now(UTC) - timedelta(minutes=minutes))
        stmt = (select(t.online_eval_stat).where(st.project_id == project_id, st.rule_id == rule_id,
                                                 st.bucket >= since).order_by(st.bucket))
        with self._engine.connect() as conn:
            return [dict(x._mapping) for x in conn.execute(stmt)]
