"""Aggregates for the web UI: the home dashboard's time series and breakdowns, per-user and
per-session summaries. Read-only, project-scoped, SQLAlchemy Core; the same SQL on SQLite
and PostgreSQL except for the time-bucket expression.

Latency percentiles are exact (nearest rank) through window functions, which both
databases have: ``ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY latency)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Integer,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
)

from podium.store import tables as t

__all__ = ["Bucketing", "DashboardRepo", "nearest_rank", "time_bucket"]


@dataclass(frozen=True)
class Bucketing:
    """A time range [start, end) cut into ``count`` buckets of ``seconds`` each."""

    start: datetime
    end: datetime
    seconds: int

    @classmethod
    def covering(cls, start: datetime, end: datetime, seconds: int) -> Bucketing:
        """Align ``start`` down to a multiple of ``seconds`` (epoch-based), so bucket edges are round."""
        s = int(start.timestamp())
        s -= s % seconds
        return cls(datetime.fromtimestamp(s, UTC), end, seconds)

    @property
    def count(self) -> int:
        span = (self.end - self.start).total_seconds()
        return max(1, int(-(-span // self.seconds)))

    def edges(self) -> list[int]:
        s = int(self.start.timestamp())
        return [s + i * self.seconds for i in range(self.count)]


def time_bucket(dialect: str, col: Any, b: Bucketing) -> ColumnElement[Any]:
    """The index (0, 1, ...) of the bucket of ``b`` that the timestamp ``col`` falls in."""
    # Integers we computed, inlined (not bound) so the same expression in SELECT and GROUP BY
    # renders identically: PostgreSQL refuses two differently-numbered parameters.
    start = literal_column(str(int(b.start.timestamp())), Integer)
    seconds = literal_column(str(int(b.seconds)), Integer)
    if dialect == "sqlite":
        # Stored as naive UTC text; strftime('%s') is whole epoch seconds; int // int truncates (>= 0 here).
        epoch: ColumnElement[Any] = cast(func.strftime("%s", col), Integer)
        return (epoch - start) // seconds
    return func.floor((extract("epoch", col) - start) / seconds)


def nearest_rank(rn: Any, n: Any, p: float, value: Any) -> ColumnElement[Any]:
    """The ``p`` quantile (0..1, nearest rank) of ``value`` in a group, as an aggregate over rows
    that carry ``rn = ROW_NUMBER() OVER (PARTITION BY group ORDER BY value)`` and ``n = COUNT(*)
    OVER (PARTITION BY group)``."""
    return func.min(case((rn >= n * p, value)))


def _f(v: Any) -> float:
    return float(v) if v is not None else 0.0


def _pv_key(name: str, version: int | None) -> str:
    return f"{name} v{version}" if version is not None else f"{name} (no version)"


class DashboardRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- helpers ----------------------------------------------------------------------------
    def _bucket(self, col: Any, b: Bucketing) -> ColumnElement[Any]:
        return time_bucket(self._engine.dialect.name, col, b)

    @staticmethod
    def _range(project_id: str, start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
        tr = t.trace.c
        conds: list[ColumnElement[bool]] = [tr.project_id == project_id]
        if start is not None:
            conds.append(tr.start_time >= start)
        if end is not None:
            conds.append(tr.start_time < end)
        return conds

    # --- the home dashboard -------------------------------------------------------------------
    def overview(self, project_id: str, b: Bucketing) -> dict[str, Any]:
        """Totals for the range and one row per bucket (missing buckets filled with zeros)."""
        tr = t.trace.c
        conds = self._range(project_id, b.start, b.end)
        bucket = self._bucket(tr.start_time, b)
        is_err = case((tr.status == "error", 1), else_=0)
        agg = [
            func.count().label("traces"),
            func.sum(is_err).label("errors"),
            func.sum(tr.input_tokens).label("input_tokens"),
            func.sum(tr.output_tokens).label("output_tokens"),
            func.sum(tr.total_tokens).label("total_tokens"),
            type_coerce(func.sum(tr.total_cost), Float).label("cost"),
        ]
        per_bucket = select(bucket.label("b"), *agg).where(*conds).group_by(bucket)
        totals_q = select(*agg).where(*conds)

        # Percentiles (nearest rank) per bucket and overall, over finished traces.
        done = [*conds, tr.end_time.is_not(None)]
        inner = (
            select(
                bucket.label("b"),
                tr.latency_ms.label("lat"),
                func.row_number().over(partition_by=bucket, order_by=tr.latency_ms).label("rn"),
                func.count().over(partition_by=bucket).label("n"),
                func.row_number().over(order_by=tr.latency_ms).label("rn_all"),
                func.count().over().label("n_all"),
            )
            .where(*done)
            .subquery()
        )
        i = inner.c
        pct_q = select(
            i.b,
            nearest_rank(i.rn, i.n, 0.5, i.lat).label("p50"),
            nearest_rank(i.rn, i.n, 0.95, i.lat).label("p95"),
        ).group_by(i.b)
        pct_all_q = select(
            nearest_rank(i.rn_all, i.n_all, 0.5, i.lat).label("p50"),
            nearest_rank(i.rn_all, i.n_all, 0.95, i.lat).label("p95"),
        )
        with self._engine.connect() as conn:
            rows = {int(r.b): r._mapping for r in conn.execute(per_bucket)}
            tot = conn.execute(totals_q).one()._mapping
            pct = {int(r.b): r._mapping for r in conn.execute(pct_q)}
            pct_all = conn.execute(pct_all_q).one()._mapping
        series: dict[str, list[Any]] = {
            k: [] for k in ("t", "traces", "errors", "input_tokens", "output_tokens", "cost", "p50", "p95")
        }
        for idx, edge in enumerate(b.edges()):
            r = rows.get(idx)
            p = pct.get(idx)
            series["t"].append(edge)
            series["traces"].append(int(r["traces"]) if r else 0)
            series["errors"].append(int(r["errors"] or 0) if r else 0)
            series["input_tokens"].append(int(r["input_tokens"] or 0) if r else 0)
            series["output_tokens"].append(int(r["output_tokens"] or 0) if r else 0)
            series["cost"].append(_f(r["cost"]) if r else 0.0)
            series["p50"].append(_f(p["p50"]) if p and p["p50"] is not None else None)
            series["p95"].append(_f(p["p95"]) if p and p["p95"] is not None else None)
        traces = int(tot["traces"] or 0)
        errors = int(tot["errors"] or 0)
        totals = {
            "traces": traces,
            "errors": errors,
            "error_rate": (errors / traces) if traces else 0.0,
            "input_tokens": int(tot["input_tokens"] or 0),
            "output_tokens": int(tot["output_tokens"] or 0),
            "total_tokens": int(tot["total_tokens"] or 0),
            "cost": _f(tot["cost"]),
            "p50": _f(pct_all["p50"]) if pct_all["p50"] is not None else None,
            "p95": _f(pct_all["p95"]) if pct_all["p95"] is not None else None,
        }
        return {"totals": totals, "series": series}

    def by_model(self, project_id: str, b: Bucketing, *, limit: int = 12) -> dict[str, Any]:
        """Model calls (spans with a model, wrappers left out), in traces that started in the range:
        a row per model and a cost series per model (the ``limit`` most expensive)."""
        s = t.span.c
        tr = t.trace.c
        join = t.span.join(t.trace, (tr.project_id == s.project_id) & (tr.id == s.trace_id))
        # Wrappers of a call whose own span reports the usage (a framework's outer span, a client
        # span around the gateway's) are not calls of their model: docs/data-model.md.
        conds = [*self._range(project_id, b.start, b.end), s.project_id == project_id, s.model.is_not(None),
                 s.usage_counted.is_not(False)]
        is_err = case((s.status == "error", 1), else_=0)
        rows_q = (
            select(
                s.model,
                func.count().label("calls"),
                func.sum(is_err).label("errors"),
                func.sum(s.input_tokens).label("input_tokens"),
                func.sum(s.output_tokens).label("output_tokens"),
                func.sum(s.total_tokens).label("total_tokens"),
                type_coerce(func.sum(s.cost_total), Float).label("cost"),
                func.avg(s.latency_ms).label("avg_latency_ms"),
            )
            .select_from(join)
            .where(*conds)
            .group_by(s.model)
            .order_by(func.sum(s.cost_total).desc().nulls_last(), func.count().desc(), s.model)
        )
        bucket = self._bucket(tr.start_time, b)
        series_q = (
            select(bucket.label("b"), s.model, func.count().label("calls"),
                   type_coerce(func.sum(s.cost_total), Float).label("cost"))
            .select_from(join)
            .where(*conds)
            .group_by(bucket, s.model)
        )
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(rows_q)]
            top = [r["model"] for r in rows[:limit]]
            cost: dict[str, list[float]] = {m: [0.0] * b.count for m in top}
            calls: dict[str, list[int]] = {m: [0] * b.count for m in top}
            if top:
                for r in conn.execute(series_q.where(s.model.in_(top))):
                    idx = int(r.b)
                    if 0 <= idx < b.count:
                        cost[r.model][idx] = _f(r.cost)
                        calls[r.model][idx] = int(r.calls)
        for row in rows:
            row["cost"] = _f(row["cost"])
            row["avg_latency_ms"] = _f(row["avg_latency_ms"])
            for k in ("errors", "input_tokens", "output_tokens", "total_tokens"):
                row[k] = int(row[k] or 0)
        return {"rows": rows, "models": top, "cost": cost, "calls": calls}

    def by_prompt(self, project_id: str, start: datetime | None, end: datetime | None,
                  *, limit: int = 20) -> list[dict[str, Any]]:
        """Spans that name a prompt version, grouped by (prompt, version): calls, errors,
        tokens, cost, average and p50/p95 latency (nearest rank, as the prompt analytics)."""
        s = t.span.c
        tr = t.trace.c
        join = t.span.join(t.trace, (tr.project_id == s.project_id) & (tr.id == s.trace_id))
        conds = [*self._range(project_id, start, end), s.project_id == project_id, s.prompt_name.is_not(None),
                 s.usage_counted.is_not(False)]
        is_err = case((s.status == "error", 1), else_=0)
        q = (
            select(
                s.prompt_name,
                s.prompt_version,
                func.count().label("calls"),
                func.sum(is_err).label("errors"),
                func.sum(s.total_tokens).label("total_tokens"),
                type_coerce(func.sum(s.cost_total), Float).label("cost"),
                func.avg(s.latency_ms).label("avg_latency_ms"),
            )
            .select_from(join)
            .where(*conds)
            .group_by(s.prompt_name, s.prompt_version)
            .order_by(func.count().desc(), s.prompt_name, s.prompt_version)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(q)]
            pcts: dict[tuple[Any, Any], Any] = {}
            if out:
                part = (s.prompt_name, s.prompt_version)
                ranked = (
                    select(
                        s.prompt_name.label("name"),
                        s.prompt_version.label("version"),
                        s.latency_ms.label("lat"),
                        func.row_number().over(partition_by=part, order_by=s.latency_ms).label("rn"),
                        func.count().over(partition_by=part).label("n"),
                    )
                    .select_from(join)
                    .where(*conds, s.latency_ms.is_not(None),
                           s.prompt_name.in_(sorted({r["prompt_name"] for r in out})))
                    .subquery()
                )
                rk = ranked.c
                pq = select(
                    rk.name, rk.version,
                    nearest_rank(rk.rn, rk.n, 0.5, rk.lat).label("p50"),
                    nearest_rank(rk.rn, rk.n, 0.95, rk.lat).label("p95"),
                ).group_by(rk.name, rk.version)
                pcts = {(r.name, r.version): r for r in conn.execute(pq)}
        for r in out:
            r["cost"] = _f(r["cost"])
            r["avg_latency_ms"] = _f(r["avg_latency_ms"])
            r["errors"] = int(r["errors"] or 0)
            r["total_tokens"] = int(r["total_tokens"] or 0)
            p = pcts.get((r["prompt_name"], r["prompt_version"]))
            r["p50_latency_ms"] = _f(p.p50) if p is not None and p.p50 is not None else None
            r["p95_latency_ms"] = _f(p.p95) if p is not None and p.p95 is not None else None
        return out

    def prompt_series(self, project_id: str, b: Bucketing, keys: list[tuple[str, int | None]]) -> dict[str, list[int]]:
        """Calls per bucket for each (prompt, version) in ``keys``, keyed ``"name vN"``."""
        s = t.span.c
        tr = t.trace.c
        out = {_pv_key(n, v): [0] * b.count for n, v in keys}
        if not keys:
            return out
        join = t.span.join(t.trace, (tr.project_id == s.project_id) & (tr.id == s.trace_id))
        bucket = self._bucket(tr.start_time, b)
        q = (
            select(bucket.label("b"), s.prompt_name, s.prompt_version, func.count().label("calls"))
            .select_from(join)
            .where(*self._range(project_id, b.start, b.end), s.project_id == project_id,
                   s.prompt_name.in_(sorted({n for n, _ in keys})), s.usage_counted.is_not(False))
            .group_by(bucket, s.prompt_name, s.prompt_version)
        )
        with self._engine.connect() as conn:
            for r in conn.execute(q):
                k = _pv_key(r.prompt_name, r.prompt_version)
                idx = int(r.b)
                if k in out and 0 <= idx < b.count:
                    out[k][idx] = int(r.calls)
        return out

    def top_groups(self, project_id: str, by: str, start: datetime | None, end: datetime | None,
                   *, limit: int = 10) -> list[dict[str, Any]]:
        """The ``limit`` users (``by="user_id"``) or sessions (``by="session_id"``) with the most
        cost in the range (then the most traces)."""
        if by not in ("user_id", "session_id"):
            raise ValueError("by must be user_id or session_id")
        tr = t.trace.c
        key = tr[by]
        cost = func.sum(tr.total_cost)
        q = (
            select(
                key.label("id"),
                func.count().label("traces"),
                func.sum(case((tr.status == "error", 1), else_=0)).label("errors"),  # failed traces
                func.sum(tr.total_tokens).label("total_tokens"),
                type_coerce(cost, Float).label("cost"),
                func.max(tr.start_time).label("last_seen"),
            )
            .where(*self._range(project_id, start, end), key.is_not(None))
            .group_by(key)
            .order_by(cost.desc().nulls_last(), func.count().desc(), key)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(q)]
        for r in out:
            r["cost"] = _f(r["cost"])
            r["errors"] = int(r["errors"] or 0)
            r["total_tokens"] = int(r["total_tokens"] or 0)
        return out

    # --- one user / one session -----------------------------------------------------------------
    def group_summary(self, project_id: str, by: str, value: str) -> dict[str, Any] | None:
        """Totals over every trace of one user or session; None when it has none."""
        if by not in ("user_id", "session_id"):
            raise ValueError("by must be user_id or session_id")
        tr = t.trace.c
        q = select(
            func.count().label("traces"),
            func.count(func.distinct(tr.session_id)).label("sessions"),
            func.count(func.distinct(tr.user_id)).label("users"),
            func.max(tr.user_id).label("user_id"),
            func.min(tr.start_time).label("first_seen"),
            func.max(tr.start_time).label("last_seen"),
            func.sum(case((tr.status == "error", 1), else_=0)).label("errors"),  # failed traces, not spans
            func.sum(tr.input_tokens).label("input_tokens"),
            func.sum(tr.output_tokens).label("output_tokens"),
            func.sum(tr.total_tokens).label("total_tokens"),
            type_coerce(func.sum(tr.total_cost), Float).label("cost"),
            func.sum(tr.latency_ms).label("latency_ms"),
        ).where(tr.project_id == project_id, tr[by] == value)
        with self._engine.connect() as conn:
            r = dict(conn.execute(q).one()._mapping)
        if not r["traces"]:
            return None
        for k in ("errors", "input_tokens", "output_tokens", "total_tokens"):
            r[k] = int(r[k] or 0)
        r["cost"] = _f(r["cost"])
        r["latency_ms"] = _f(r["latency_ms"])
        return r

    def scores_by_name(self, project_id: str, *, user_id: str | None = None,
                       session_id: str | None = None) -> list[dict[str, Any]]:
        """Scores on a user's traces (or on a session and its traces), one row per (name, source):
        count, average of numeric/boolean values, and the most frequent categorical value."""
        sc = t.score.c
        tr = t.trace.c
        target: ColumnElement[bool]
        if user_id is not None:
            target = sc.trace_id.in_(select(tr.id).where(tr.project_id == project_id, tr.user_id == user_id))
        elif session_id is not None:
            target = (sc.session_id == session_id) | sc.trace_id.in_(
                select(tr.id).where(tr.project_id == project_id, tr.session_id == session_id)
            )
        else:
            raise ValueError("give user_id or session_id")
        q = (
            select(
                sc.name,
                sc.source,
                sc.data_type,
                func.count().label("count"),
                func.avg(sc.value).label("avg"),
                func.min(sc.value).label("min"),
                func.max(sc.value).label("max"),
            )
            .where(sc.project_id == project_id, target)
            .group_by(sc.name, sc.source, sc.data_type)
            .order_by(sc.name, sc.source, sc.data_type)
        )
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def count_roots(self, project_id: str, trace_id: str) -> int:
        s = t.span.c
        q = select(func.count()).where(s.project_id == project_id, s.trace_id == trace_id, s.parent_id.is_(None))
        with self._engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def span_path(self, project_id: str, trace_id: str, span_id: str, *, max_depth: int = 64) -> list[str]:
        """The ids from the top-level ancestor down to ``span_id`` (just ``[span_id]`` for a root;
        empty when the span does not exist). Reads only ids, one indexed lookup per level."""
        s = t.span.c
        path: list[str] = []
        cur: str | None = span_id
        with self._engine.connect() as conn:
            while cur is not None and len(path) < max_depth and cur not in path:
                row = conn.execute(
                    select(s.parent_id).where(s.project_id == project_id, s.trace_id == trace_id, s.id == cur)
                ).first()
                if row is None:
                    break
                path.append(cur)
                cur = row.parent_id
        return path[::-1]

    # --- experiments ---------------------------------------------------------------------------------
    def experiment_items(self, project_id: str, experiment_id: str, item_ids: list[str],
                         *, max_ids: int = 500) -> dict[str, list[dict[str, Any]]]:
        """The results of ``item_ids`` in one experiment (every repetition), for the compare
        page's improved/regressed lists: ``{item_id: [row, ...]}``, repetitions in order."""
        ei = t.experiment_item.c
        ids = list(dict.fromkeys(item_ids))[:max_ids]
        out: dict[str, list[dict[str, Any]]] = {}
        if not ids:
            return out
        cols = [ei.item_id, ei.repetition, ei.input, ei.expected, ei.output, ei.error, ei.error_type, ei.trace_id,
                ei.latency_ms, ei.cost, ei.scores, ei.passed]
        with self._engine.connect() as conn:
            for start in range(0, len(ids), 200):
                q = (select(*cols)
                     .where(ei.project_id == project_id, ei.experiment_id == experiment_id,
                            ei.item_id.in_(ids[start:start + 200]))
                     .order_by(ei.item_id, ei.repetition))
                for r in conn.execute(q):
                    out.setdefault(r.item_id, []).append(dict(r._mapping))
        return out
