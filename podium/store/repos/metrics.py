"""Metric queries (``podium.core.metrics.MetricQuery``): one number over a window (``value``,
what alert rules watch), one number per dimension value (``value_by``) and a bucketed time
series per dimension value (``series``, what charts draw). Read-only, project-scoped, the same
answers on SQLite and PostgreSQL (time buckets and nearest-rank percentiles come from
``podium.store.repos.dashboard``, JSON access is the only other dialect-specific part).

Status: ``value``, ``value_by`` and ``series`` are ready (issue 14 item 5).

How a query runs: every metric is a set of *rows*, each with a time (the start of its trace),
a dimension key and a value ``v``; the aggregation runs over the rows of the window.

- ``traces``: one row per trace, v = 1. ``spans``: one row per span, v = 1.
- ``errors`` / ``error_rate``: one row per trace, v = 1 when it failed, else 0.
- ``latency`` (ms, finished traces), ``cost`` (USD), ``tokens`` / ``input_tokens`` /
  ``output_tokens``: one row per trace, v = the trace's value.
- With dimension ``model`` or ``prompt`` the rows are the model calls instead (spans with a
  model, or that name a prompt version; wrappers whose usage is counted elsewhere left out):
  ``latency`` is the call's latency, ``cost`` and tokens the call's, ``errors`` failed calls,
  ``traces`` the traces that made such a call (a trace counts once per model).
- ``score:<name>``: one row per score of that name on a trace (boolean scores are 0/1);
  ``score:*`` every score, with dimension ``score`` to split by the score's name.
- ``guardrail:<rule or scanner>``: one row per guardrail check by a rule of that name (or a
  scanner of that type), v = 1 when it fired (flag, warn, redact, block); ``guardrail:*`` one
  row per guardrail span, v = 1 when the decision was anything but allow. Dimensions ``rule``
  and ``scanner`` split guardrail metrics by the rule / scanner that checked.

Aggregations: ``count`` (number of rows; for the 0/1 metrics, of rows with v = 1), ``sum``,
``avg``, ``min``, ``max``, ``p50`` / ``p90`` / ``p95`` / ``p99`` (nearest rank, exact), ``rate``
(the share of rows with v = 1, for the 0/1 metrics). ``count`` and ``sum`` are 0 over a window
without rows; the others are None (no data).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
)

from podium.core.metrics import MetricQuery
from podium.errors import BadRequest
from podium.store import tables as t
from podium.store.repos.dashboard import Bucketing, nearest_rank, time_bucket
from podium.store.repos.traces import TraceFilter, trace_conditions

__all__ = [
    "AGGS",
    "DIMENSIONS",
    "FILTERS",
    "MAX_BUCKETS",
    "METRICS",
    "MetricsRepo",
    "aggs_for",
    "check_query",
    "trace_filter",
]

#: The plain metrics; ``score:<name>`` and ``guardrail:<rule>`` are the parameterised ones.
METRICS = ["traces", "spans", "errors", "error_rate", "latency", "cost", "tokens", "input_tokens",
           "output_tokens", "score:<name>", "guardrail:<rule>"]
AGGS = ["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "rate"]
DIMENSIONS = ["model", "prompt", "user_id", "session_id", "release", "environment", "name", "tag",
              "score", "rule", "scanner"]
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
MAX_BUCKETS = 5000
NONE_KEY = "(none)"
OTHER_KEY = "other"

_COUNTS = ("count", "sum")
_VALUE_AGGS = ("count", "sum", "avg", "min", "max", *PERCENTILES)
_AGGS_BY_METRIC: dict[str, tuple[str, ...]] = {
    "traces": _COUNTS,
    "spans": _COUNTS,
    "errors": ("count", "sum", "rate", "avg"),
    "error_rate": ("rate", "avg"),
    "latency": _VALUE_AGGS,
    "cost": _VALUE_AGGS,
    "tokens": _VALUE_AGGS,
    "input_tokens": _VALUE_AGGS,
    "output_tokens": _VALUE_AGGS,
    "score": _VALUE_AGGS,
    "guardrail": ("rate", "avg", "count", "sum"),
}
_INDICATOR = {"traces", "spans", "errors", "error_rate", "guardrail"}
_TRACE_DIMS = {"user_id", "session_id", "release", "environment", "name"}
_CALL_DIMS = {"model", "prompt"}
_GUARD_DIMS = {"rule", "scanner"}
#: Trace-filter fields a query may set (the window is given separately).
FILTERS = [f.name for f in fields(TraceFilter) if f.name not in ("start_after", "start_before")]
_STR_FILTERS = {"name", "q", "user_id", "session_id", "status", "model", "environment", "release", "score_name"}


def _family(metric: str) -> tuple[str, str | None]:
    """``("score", "helpfulness")`` for ``score:helpfulness``, ``("latency", None)`` for ``latency``."""
    if not isinstance(metric, str):
        raise BadRequest(f"metric must be a string, one of {', '.join(METRICS)}", details=[{"field": "metric"}])
    for fam in ("score", "guardrail"):
        if metric.startswith(fam + ":"):
            arg = metric[len(fam) + 1:]
            if not arg or len(arg) > 256:
                raise BadRequest(f"metric {metric!r} needs a name after '{fam}:' (at most 256 characters), "
                                 f"e.g. {fam}:{'helpfulness' if fam == 'score' else 'prompt-injection'}",
                                 details=[{"field": "metric"}])
            return fam, arg
    if metric in _AGGS_BY_METRIC and metric not in ("score", "guardrail"):
        return metric, None
    raise BadRequest(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}",
                     details=[{"field": "metric", "valid": METRICS}])


def aggs_for(metric: str) -> list[str]:
    """The aggregations ``metric`` takes (BadRequest for an unknown metric)."""
    return list(_AGGS_BY_METRIC[_family(metric)[0]])


def trace_filter(filters: dict[str, Any] | None) -> TraceFilter:
    """A ``TraceFilter`` from a query's ``filters`` dict, checked (BadRequest on an unknown key
    or a value of the wrong type)."""
    f = TraceFilter()
    for k, v in (filters or {}).items():
        if k not in FILTERS:
            raise BadRequest(f"unknown filter {k!r}; valid filters: {', '.join(FILTERS)}",
                             details=[{"field": f"filters.{k}", "valid": FILTERS}])
        if v is None:
            continue
        if k == "tags":
            tags = [v] if isinstance(v, str) else v
            if not isinstance(tags, list) or not all(isinstance(x, str) and 0 < len(x) <= 200 for x in tags) \
                    or len(tags) > 20:
                raise BadRequest("filter 'tags' takes a tag or a list of at most 20 tags (strings)",
                                 details=[{"field": "filters.tags"}])
            f.tags = list(tags)
        elif k in _STR_FILTERS:
            if not isinstance(v, str) or len(v) > 1000:
                raise BadRequest(f"filter {k!r} takes a string (at most 1000 characters)",
                                 details=[{"field": f"filters.{k}"}])
            setattr(f, k, v)
        else:
            if isinstance(v, bool) or not isinstance(v, int | float) or v != v or abs(v) > 1e300:
                raise BadRequest(f"filter {k!r} takes a number", details=[{"field": f"filters.{k}"}])
            setattr(f, k, float(v))
    return f


@dataclass(frozen=True)
class _Plan:
    family: str
    arg: str | None
    agg: str
    dimension: str | None
    filter: TraceFilter


def check_query(q: MetricQuery) -> _Plan:
    """Validate ``q``: BadRequest naming the valid metrics / aggregations / dimensions / filters."""
    fam, arg = _family(q.metric)
    valid = _AGGS_BY_METRIC[fam]
    if q.agg not in valid:
        raise BadRequest(f"metric {q.metric!r} takes agg {', '.join(valid)} (got {q.agg!r})",
                         details=[{"field": "agg", "valid": list(valid)}])
    if q.dimension is not None:
        if q.dimension not in DIMENSIONS:
            raise BadRequest(f"unknown dimension {q.dimension!r}; valid dimensions: {', '.join(DIMENSIONS)} "
                             "(or none)", details=[{"field": "dimension", "valid": DIMENSIONS}])
        if q.dimension in _GUARD_DIMS and fam != "guardrail":
            raise BadRequest(f"dimension {q.dimension!r} splits guardrail metrics only (guardrail:<rule> or "
                             "guardrail:*)", details=[{"field": "dimension"}])
        if q.dimension == "score" and fam != "score":
            raise BadRequest("dimension 'score' (the score's name) splits score metrics only (score:* for "
                             "every score)", details=[{"field": "dimension"}])
    if not isinstance(q.filters, dict):
        raise BadRequest("filters must be an object of trace filters", details=[{"field": "filters"}])
    return _Plan(fam, arg, q.agg, q.dimension, trace_filter(q.filters))


def _f(v: Any) -> float | None:
    return float(v) if v is not None else None


#: Dimensions with many values (users, sessions, tags, trace names): their series rank the values
#: in SQL first rather than read every (value, bucket) pair.
_WIDE_DIMS = {"user_id", "session_id", "tag", "name"}


@dataclass(frozen=True)
class _Acc:
    """Partial aggregates of some rows: sum, count of values, count of rows, min, max."""

    s: float | None
    c: int
    n: int
    mn: float | None
    mx: float | None

    @staticmethod
    def merge(parts: list[_Acc]) -> _Acc:
        sums = [a.s for a in parts if a.s is not None]
        mins = [a.mn for a in parts if a.mn is not None]
        maxs = [a.mx for a in parts if a.mx is not None]
        return _Acc(sum(sums) if sums else None, sum(a.c for a in parts), sum(a.n for a in parts),
                    min(mins) if mins else None, max(maxs) if maxs else None)

    def value(self, p: _Plan) -> float | None:
        """The aggregation ``p.agg`` of these rows (as ``MetricsRepo._aggregate`` + ``_finish``)."""
        if p.agg == "count":
            return (self.s or 0.0) if p.family in _INDICATOR else float(self.c)
        if p.agg == "sum":
            return self.s or 0.0
        if not self.n:
            return None
        if p.agg in ("avg", "rate"):
            return self.s / self.c if self.c and self.s is not None else None
        return self.mn if p.agg == "min" else self.mx


def ranked_series(cells: dict[str, dict[int, _Acc]], p: _Plan, b: Bucketing, top: int) -> dict[str, Any]:
    """The one-pass series from partial aggregates per (key, bucket): the ``top`` keys with the most
    rows, the rest combined as ``other``, each with its values per bucket and its total."""
    n_by_key = {k: sum(a.n for a in cs.values()) for k, cs in cells.items()}
    ranked = sorted(cells, key=lambda k: (-n_by_key[k], k))
    keys, rest = ranked[:top], ranked[top:]
    groups = [(k, [cells[k]]) for k in keys]
    if rest:
        groups.append((OTHER_KEY, [cells[k] for k in rest]))
    series = []
    for k, parts in groups:
        values = [_Acc.merge([c[i] for c in parts if i in c]).value(p) for i in range(b.count)]
        total = _Acc.merge([a for c in parts for a in c.values()])
        series.append({"key": k, "values": values, "total": total.value(p), "n": total.n})
    return {"buckets": b.edges(), "interval": b.seconds, "series": series}


class MetricsRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _dialect(self) -> str:
        return self._engine.dialect.name

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection for analytic reads. On PostgreSQL, JIT is off for its transaction: the
        planner's guess for ``jsonb_array_elements`` (100 rows each) inflates the cost past
        the JIT thresholds, and compiling took longer than running (1.3 s of 1.4 s on 10^5 traces)."""
        with self._engine.connect() as conn:
            if self._dialect == "postgresql":
                conn.exec_driver_sql("SET LOCAL jit = off")
            yield conn

    # --- JSON access (the only dialect-specific SQL here besides time buckets) -----------------
    def _json_text(self, col: Any, key: str) -> ColumnElement[Any]:
        """``col[key]`` as text (NULL when absent or ``col`` is not an object)."""
        if self._dialect == "sqlite":
            return func.json_extract(col, literal(f'$."{key}"'))
        return col.op("->>")(literal(key))

    def _outcomes(self, col: Any) -> tuple[Any, ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
        """A table of a guardrail span's outcomes (join it to the span) and its rule, scanner and
        action columns."""
        key = "podium.guardrail.outcomes"
        if self._dialect == "sqlite":
            o = func.json_each(col, literal(f'$."{key}"')).table_valued("value", "type").alias("o")

            def get(k: str) -> ColumnElement[Any]:
                return case((o.c.type == "object", func.json_extract(o.c.value, literal(f"$.{k}"))))
        else:
            arr = col.op("->")(literal(key))
            safe = case((func.jsonb_typeof(arr) == "array", arr), else_=literal_column("'[]'::jsonb"))
            o = func.jsonb_array_elements(safe).table_valued("value").alias("o")

            def get(k: str) -> ColumnElement[Any]:
                return o.c.value.op("->>")(literal(k))
        return o, get("rule"), get("scanner"), get("action")

    # --- the rows of a metric -----------------------------------------------------------------
    def _rows(self, project_id: str, p: _Plan, start: datetime | None, end: datetime | None) -> Any:
        """A subquery with columns ``ts`` (the trace's start), ``key`` (the dimension value) and
        ``v`` (the row's value)."""
        tr = t.trace.c
        s = t.span.c
        conds = trace_conditions(project_id, p.filter)
        if start is not None:
            conds.append(tr.start_time >= start)
        if end is not None:
            conds.append(tr.start_time < end)

        def on_trace(c: Any) -> ColumnElement[bool]:
            return and_(tr.project_id == c.project_id, tr.id == c.trace_id)

        frm: Any = t.trace
        key: ColumnElement[Any] = literal("all", String)
        dim = p.dimension

        # The model calls: rows of the metric itself (call dims), or the (trace, model) pairs a
        # trace-level row joins to (scores, guardrails, traces).
        calls_conds: list[ColumnElement[bool]] = [s.project_id == project_id, s.usage_counted.is_not(False)]
        if dim == "model":
            calls_conds.append(s.model.is_not(None))
            if p.filter.model:
                calls_conds.append(s.model == p.filter.model)
            call_key: ColumnElement[Any] = s.model
        elif dim == "prompt":
            calls_conds.append(s.prompt_name.is_not(None))
            # "name vN" as the home dashboard names them (dashboard._pv_key)
            call_key = case((s.prompt_version.is_(None), s.prompt_name + literal(" (no version)", String)),
                            else_=s.prompt_name + literal(" v", String) + cast(s.prompt_version, String))
        else:
            call_key = literal("all", String)

        def trace_keys() -> Any:
            """Distinct (trace, key) pairs for a trace-level row split by model / prompt."""
            return (select(s.project_id, s.trace_id, call_key.label("key"))
                    .where(*calls_conds).distinct().subquery("k"))

        fam = p.family
        v: ColumnElement[Any]
        trace_values: dict[str, ColumnElement[Any]] = {
            "latency": tr.latency_ms, "cost": type_coerce(tr.total_cost, Float), "tokens": tr.total_tokens,
            "input_tokens": tr.input_tokens, "output_tokens": tr.output_tokens,
        }
        call_values: dict[str, ColumnElement[Any]] = {
            "latency": s.latency_ms, "cost": type_coerce(s.cost_total, Float), "tokens": s.total_tokens,
            "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
        }
        row_key_from_trace = True
        if fam in ("errors", "error_rate", *trace_values) and dim in _CALL_DIMS:
            frm = frm.join(t.span, on_trace(s))
            conds.extend(calls_conds)
            key = call_key
            row_key_from_trace = False
            if fam in ("errors", "error_rate"):
                v = case((s.status == "error", 1), else_=0)
            else:
                v = call_values[fam]
                if fam == "latency":
                    conds.append(s.latency_ms.is_not(None))
        elif fam in ("errors", "error_rate"):
            v = case((tr.status == "error", 1), else_=0)
        elif fam in trace_values:
            v = trace_values[fam]
            if fam == "latency":
                conds.append(tr.end_time.is_not(None))
        elif fam == "traces":
            v = literal_column("1")
        elif fam == "spans":
            frm = frm.join(t.span, on_trace(s))
            conds.append(s.project_id == project_id)
            v = literal_column("1")
            if dim in _CALL_DIMS:
                conds.extend(calls_conds)
                key = call_key
                row_key_from_trace = False
        elif fam == "score":
            sc = t.score.c
            frm = frm.join(t.score, on_trace(sc))
            conds.extend([sc.project_id == project_id, sc.value.is_not(None)])
            if p.arg != "*":
                conds.append(sc.name == p.arg)
            v = sc.value
            if dim == "score":
                key = sc.name
                row_key_from_trace = False
        else:  # guardrail
            gs = t.span.alias("gs")
            g = gs.c
            frm = frm.join(gs, on_trace(g))
            conds.extend([g.project_id == project_id, g.kind == "guardrail"])
            if p.arg == "*" and dim not in _GUARD_DIMS:
                action = self._json_text(g.attributes, "podium.guardrail.action")
                v = case((and_(action.is_not(None), action != "allow"), 1), else_=0)
            else:
                o, rule, scanner, oaction = self._outcomes(g.attributes)
                frm = frm.join(o, true())
                conds.append(rule.is_not(None))
                if p.arg != "*":
                    conds.append(or_(rule == p.arg, scanner == p.arg))
                v = case((and_(oaction.is_not(None), oaction != "none"), 1), else_=0)
                if dim in _GUARD_DIMS:
                    key = func.coalesce(rule if dim == "rule" else scanner, literal(NONE_KEY, String))
                    row_key_from_trace = False

        if row_key_from_trace and dim is not None:
            if dim in _TRACE_DIMS:
                key = func.coalesce(tr[dim], literal(NONE_KEY, String))
            elif dim == "tag":
                tg = t.trace_tag.alias("tg")
                frm = frm.outerjoin(tg, and_(tg.c.project_id == tr.project_id, tg.c.trace_id == tr.id))
                key = func.coalesce(tg.c.tag, literal(NONE_KEY, String))
            elif dim in _CALL_DIMS:
                k = trace_keys()
                frm = frm.join(k, on_trace(k.c))
                key = k.c.key
        return select(tr.start_time.label("ts"), key.label("key"), v.label("v")).select_from(frm).where(*conds)

    # --- aggregation ----------------------------------------------------------------------------
    @staticmethod
    def _aggregate(p: _Plan, rows: Any, group: list[str]) -> Select[Any]:
        """``SELECT <group>, value, n FROM rows GROUP BY <group>``: ``n`` is the number of rows."""
        r = rows.c
        gcols = [r[g] for g in group]
        if p.agg in PERCENTILES:
            ranked = select(
                *gcols,
                r.v,
                func.row_number().over(partition_by=gcols or None, order_by=r.v).label("rn"),
                func.count().over(partition_by=gcols or None).label("n"),
            ).where(r.v.is_not(None)).subquery("ranked")
            k = ranked.c
            kg = [k[g] for g in group]
            return select(*kg, nearest_rank(k.rn, k.n, PERCENTILES[p.agg], k.v).label("value"),
                          func.count().label("n")).group_by(*kg)
        value: ColumnElement[Any]
        if p.agg == "count":
            value = func.sum(r.v) if p.family in _INDICATOR else func.count(r.v)
        elif p.agg == "sum":
            value = func.sum(r.v)
        elif p.agg in ("avg", "rate"):
            value = func.avg(r.v)
        elif p.agg == "min":
            value = func.min(r.v)
        else:
            value = func.max(r.v)
        q = select(*gcols, value.label("value"), func.count().label("n"))
        return q.group_by(*gcols) if gcols else q

    @staticmethod
    def _finish(p: _Plan, value: Any, n: int) -> float | None:
        if p.agg in _COUNTS:
            return float(value or 0)
        return _f(value) if n else None

    # --- the API ---------------------------------------------------------------------------------
    def value(self, project_id: str, q: MetricQuery, start: datetime, end: datetime) -> float | None:
        """One number for ``q`` over traces that started in [start, end): the dimension is ignored
        (use ``value_by``). None when there is no data (``count`` / ``sum``: 0)."""
        p = check_query(q)
        p = _Plan(p.family, p.arg, p.agg, None, p.filter)
        rows = self._rows(project_id, p, start, end).subquery("rows")
        with self._connect() as conn:
            r = conn.execute(self._aggregate(p, rows, [])).one()
        return self._finish(p, r.value, int(r.n or 0))

    def value_by(self, project_id: str, q: MetricQuery, start: datetime, end: datetime,
                 *, limit: int = 100) -> list[dict[str, Any]]:
        """``[{"key", "value", "n"}]`` per value of ``q.dimension`` (one ``"all"`` row without one),
        the ``limit`` keys with the most rows first (then by key)."""
        p = check_query(q)
        rows = self._rows(project_id, p, start, end).subquery("rows")
        agg = self._aggregate(p, rows, ["key"]).subquery("agg")
        stmt = select(agg).order_by(agg.c.n.desc(), agg.c.key).limit(limit)
        with self._connect() as conn:
            out = [{"key": str(r.key), "value": self._finish(p, r.value, int(r.n or 0)), "n": int(r.n or 0)}
                   for r in conn.execute(stmt)]
        return out

    def series(self, project_id: str, q: MetricQuery, start: datetime, end: datetime, interval_s: int,
               *, top: int = 10) -> dict[str, Any]:
        """Buckets of ``interval_s`` seconds from ``start`` (aligned down to a multiple of the
        interval) to ``end``, and one series per dimension value: the ``top`` values with the
        most rows, the rest together as ``"other"`` (one ``"all"`` series without a dimension).
        ``{"buckets": [epoch s, ...], "series": [{"key", "values": [...], "total", "n"}]}``;
        a bucket without rows is 0 for count / sum and None for the other aggregations."""
        p = check_query(q)
        if end <= start:
            raise BadRequest("the range is empty: end must be after start", details=[{"field": "end"}])
        if not isinstance(interval_s, int) or interval_s < 1:
            raise BadRequest("interval must be a whole number of seconds >= 1", details=[{"field": "interval"}])
        b = Bucketing.covering(start, end, interval_s)
        if b.count > MAX_BUCKETS:
            raise BadRequest(f"{b.count} buckets is too many (at most {MAX_BUCKETS}); use a longer interval "
                             "or a shorter range", details=[{"field": "interval"}])
        top = max(1, min(int(top), 50))
        if p.agg not in PERCENTILES and p.dimension not in _WIDE_DIMS:
            return self._series_one_pass(project_id, p, b, top)
        return self._series_ranked(project_id, p, b, top)

    def _series_ranked(self, project_id: str, p: _Plan, b: Bucketing, top: int) -> dict[str, Any]:
        """``series`` for percentiles and wide dimensions: rank the keys by their rows (one
        ``COUNT ... GROUP BY key``; none without a dimension), then one query over the buckets
        with the keys past ``top`` folded into ``other``. Totals come from the same query:
        merged partials, or for percentiles the smallest per-bucket candidate of a rank over the
        whole key (the nearest-rank row is in one of the buckets)."""
        pct = PERCENTILES.get(p.agg)
        keys: list[str] = ["all"]
        has_other = False
        with self._connect() as conn:
            if p.dimension is not None:
                ranked_rows = self._rows(project_id, p, b.start, b.end).subquery("rows")
                rr = ranked_rows.c
                rank_q = select(rr.key, func.count().label("n"))
                if pct is not None:
                    rank_q = rank_q.where(rr.v.is_not(None))
                rank_q = rank_q.group_by(rr.key).order_by(func.count().desc(), rr.key).limit(top + 1)
                ranking = [str(x.key) for x in conn.execute(rank_q)]
                keys, has_other = ranking[:top], len(ranking) > top
            rows = self._rows(project_id, p, b.start, b.end).subquery("rows")
            r = rows.c
            key: ColumnElement[Any] = r.key
            if has_other:
                key = case((r.key.in_(keys), r.key), else_=literal(OTHER_KEY, String))
            bucketed = select(key.label("key"), time_bucket(self._dialect, r.ts, b).label("b"),
                              r.v.label("v")).subquery("bucketed")
            g = bucketed.c
            stmt: Select[Any]
            if pct is not None:
                ranked = select(
                    g.key, g.b, g.v,
                    func.row_number().over(partition_by=[g.key, g.b], order_by=g.v).label("rn"),
                    func.count().over(partition_by=[g.key, g.b]).label("n"),
                    func.row_number().over(partition_by=g.key, order_by=g.v).label("rk"),
                    func.count().over(partition_by=g.key).label("nk"),
                ).where(g.v.is_not(None)).subquery("ranked")
                k = ranked.c
                stmt = select(k.key, k.b, nearest_rank(k.rn, k.n, pct, k.v).label("value"), func.count().label("n"),
                              nearest_rank(k.rk, k.nk, pct, k.v).label("cand")).group_by(k.key, k.b)
            else:
                stmt = select(g.key, g.b, func.sum(g.v).label("s"), func.count(g.v).label("c"),
                              func.count().label("n"), func.min(g.v).label("mn"),
                              func.max(g.v).label("mx")).group_by(g.key, g.b)
            out_keys = keys + ([OTHER_KEY] if has_other else [])
            empty: float | None = 0.0 if p.agg in _COUNTS else None
            values: dict[str, list[float | None]] = {kk: [empty] * b.count for kk in out_keys}
            parts: dict[str, list[_Acc]] = {kk: [] for kk in out_keys}
            cands: dict[str, list[float]] = {kk: [] for kk in out_keys}
            counts: dict[str, int] = dict.fromkeys(out_keys, 0)
            for row in conn.execute(stmt):
                idx, kk = int(row.b), str(row.key)
                if kk not in values or not 0 <= idx < b.count:
                    continue
                counts[kk] += int(row.n)
                if pct is not None:
                    values[kk][idx] = _f(row.value)
                    if row.cand is not None:
                        cands[kk].append(float(row.cand))
                else:
                    acc = _Acc(_f(row.s), int(row.c), int(row.n), _f(row.mn), _f(row.mx))
                    values[kk][idx] = acc.value(p)
                    parts[kk].append(acc)
        series = []
        for kk in out_keys:
            if p.dimension is None and not counts[kk]:
                continue  # no data: no series (as with a dimension)
            total = (min(cands[kk]) if cands[kk] else None) if pct is not None else _Acc.merge(parts[kk]).value(p)
            series.append({"key": kk, "values": values[kk], "total": total, "n": counts[kk]})
        return {"buckets": b.edges(), "interval": b.seconds, "series": series}

    def _series_one_pass(self, project_id: str, p: _Plan, b: Bucketing, top: int) -> dict[str, Any]:
        """``series`` in one query for the aggregations that combine (count, sum, avg, rate, min,
        max) over dimensions with few values: partial aggregates per (key, bucket), then the
        ranking, the totals and ``other`` combined here."""
        rows = self._rows(project_id, p, b.start, b.end).subquery("rows")
        r = rows.c
        bucketed = select(r.key.label("key"), time_bucket(self._dialect, r.ts, b).label("b"),
                          r.v.label("v")).subquery("bucketed")
        g = bucketed.c
        stmt = select(g.key, g.b, func.sum(g.v).label("s"), func.count(g.v).label("c"), func.count().label("n"),
                      func.min(g.v).label("mn"), func.max(g.v).label("mx")).group_by(g.key, g.b)
        cells: dict[str, dict[int, _Acc]] = {}
        with self._connect() as conn:
            for row in conn.execute(stmt):
                idx = int(row.b)
                if 0 <= idx < b.count:
                    cells.setdefault(str(row.key), {})[idx] = _Acc(_f(row.s), int(row.c), int(row.n), _f(row.mn),
                                                                   _f(row.mx))
        return ranked_series(cells, p, b, top)

    def names(self, project_id: str, kind: str, start: datetime, end: datetime, *, limit: int = 20) -> list[str]:
        """The score names (``kind="score"``) or guardrail rules (``kind="guardrail"``, from the
        ``guardrail.<rule>`` scores) scored in [start, end), most used first."""
        sc = t.score.c
        conds = [sc.project_id == project_id, sc.timestamp >= start, sc.timestamp < end]
        prefix = "guardrail."
        if kind == "guardrail":
            conds.append(sc.name.startswith(prefix, autoescape=True))
        elif kind == "score":
            conds.append(sc.source != "guardrail")
        else:
            raise ValueError("kind is score or guardrail")
        q = (select(sc.name, func.count().label("n")).where(*conds).group_by(sc.name)
             .order_by(func.count().desc(), sc.name).limit(limit))
        with self._connect() as conn:
            out = [str(r.name) for r in conn.execute(q)]
        return [n[len(prefix):] for n in out] if kind == "guardrail" else out
