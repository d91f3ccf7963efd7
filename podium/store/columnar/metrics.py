"""Metric queries on the columnar span store: ``ColumnarMetricsRepo``, the same methods, arguments,
answers and errors as ``podium.store.repos.metrics.MetricsRepo`` (what custom charts and alert rules
read), in ClickHouse SQL over the ``FINAL`` (latest) version of each row.

The rows of a metric are built as in the SQL repo (one row per trace, per model call, per score or per
guardrail check, with ``ts`` the trace's start, a dimension ``key`` and a value ``v``); the trace filter
is ``podium.store.columnar.reads.trace_conditions``. Time buckets are the SQL repo's ``Bucketing``
(``intDiv(epoch seconds - start, interval)``) and percentiles its nearest rank: the value of rank
``ceil(n * p)`` among the ``n`` non-NULL values in ascending order (``_nearest_rank``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from podium.core.metrics import MetricQuery
from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.reads import _Cond, trace_conditions
from podium.store.repos.dashboard import Bucketing
from podium.store.repos.metrics import (
    _CALL_DIMS,
    _COUNTS,
    _GUARD_DIMS,
    _INDICATOR,
    _TRACE_DIMS,
    NONE_KEY,
    OTHER_KEY,
    PERCENTILES,
    MetricsRepo,
    _Acc,
    _Plan,
    check_query,
    ranked_series,
)

__all__ = ["ColumnarMetricsRepo", "bucket_expr", "json_text_expr", "nearest_rank_expr", "window_spans"]

_TS = "DateTime64(6, 'UTC')"
#: Span conditions that may go before ``FINAL`` (``window_spans``): a later version never clears them.
_EARLY = ("model IS NOT NULL", "prompt_name IS NOT NULL")
_TRACE_COLS = ("id, start_time, end_time, status, latency_ms, total_cost, total_tokens, input_tokens, "
               "output_tokens, user_id, session_id, release, environment, name")


def nearest_rank_expr(col: str, p: float, *, where: str | None = None) -> str:
    """The ``p`` quantile (nearest rank, exact) of ``col`` as an aggregate: the ``ceil(n * p)``-th smallest
    of the ``n`` non-NULL values (``dashboard.nearest_rank``'s ``min(value) where rank >= n * p``); NULL when
    there are none. ``where`` keeps only the rows where it holds."""
    arr = f"groupArrayIf({col}, {where})" if where else f"groupArray({col})"
    n = f"countIf({col} IS NOT NULL AND {where})" if where else f"count({col})"
    return f"if({n} = 0, NULL, arraySort({arr})[toUInt64(ceil({n} * {float(p)!r}))])"


def window_spans(cols: str, *, since: bool, early: Sequence[str] = (), late: Sequence[str] = (),
                 distinct: bool = False) -> str:
    """``SELECT cols`` of the project's spans (``{p}``) on ``FINAL`` that may belong to traces starting at or
    after ``{x_ws}`` (``since``): the rows of a span-to-trace join over a time window.

    ``span`` is ordered by trace, so such a read goes through every span of the project. ``PREWHERE``
    drops rows before ``FINAL`` merges their versions (ClickHouse's documented order), which is where
    the time goes: the start condition and ``early`` (conditions that hold for a span's latest version
    whenever they hold for an older one: ``model IS NOT NULL``, ``prompt_name IS NOT NULL``, as the
    writer never clears those) keep tombstones (``is_deleted``; their start is the epoch) and so never
    bring back an older version in place of a latest one the join would keep. An older version kept
    for a span whose latest start is before ``{x_ws}`` does no harm: its trace started before that too,
    and the join to the window's traces drops it. ``late`` conditions apply to the latest version
    (``WHERE``). At 10^6 spans a 7-day join costs about half the CPU it did with every condition in
    ``WHERE`` (docs/benchmarks.md, "Columnar dashboards")."""
    pre = ["project_id = {p:String}"]
    if since:
        pre.append(f"(start_time >= {{x_ws:{_TS}}} OR is_deleted = 1)")
    pre += [f"({c} OR is_deleted = 1)" for c in early]
    where = f" WHERE {' AND '.join(late)}" if late else ""
    return f"SELECT {'DISTINCT ' if distinct else ''}{cols} FROM $db.span FINAL PREWHERE {' AND '.join(pre)}{where}"


def bucket_expr(col: str, b: Bucketing) -> str:
    """The index (0, 1, ...) of ``b``'s bucket for the time ``col`` (``dashboard.time_bucket``: whole epoch
    seconds since ``b.start``, divided by the interval)."""
    return f"intDiv(toInt64(toUnixTimestamp({col})) - {int(b.start.timestamp())}, {int(b.seconds)})"


def json_text_expr(col: str, key: str) -> str:
    """``col[key]`` as text, NULL when absent, JSON null or ``col`` not an object (SQLite's ``json_extract``
    / PostgreSQL's ``->>``: strings unquoted, other values as JSON). ``key`` is a fixed identifier."""
    k = "'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'"
    c = f"ifNull({col}, '')"
    return (f"multiIf(NOT JSONHas({c}, {k}) OR JSONType({c}, {k}) = 'Null', NULL, "
            f"JSONType({c}, {k}) = 'String', JSONExtractString({c}, {k}), JSONExtractRaw({c}, {k}))")


def _num(v: Any) -> float | None:
    if v is None:
        return None
    x = float(v)
    return None if math.isnan(x) else x


class _Rows:
    """``SELECT ts, key, v FROM ...``: the rows of one metric, with their bound parameters."""

    def __init__(self, sql: str, params: dict[str, Any]) -> None:
        self.sql = sql
        self.params = params


class ColumnarMetricsRepo(MetricsRepo):
    """``MetricsRepo`` on ClickHouse: ``value``, ``value_by``, ``series`` (through the parent's checks and
    its choice of the one-pass or ranked plan) and ``names``."""

    def __init__(self, client: ColumnarClient) -> None:
        self._c = client

    # --- the rows of a metric -----------------------------------------------------------------
    def _rows_ch(self, project_id: str, p: _Plan, start: datetime | None, end: datetime | None) -> _Rows:
        cond = trace_conditions(project_id, p.filter)
        if start is not None:
            cond.add(f"start_time >= {{x_ws:{_TS}}}", x_ws=start)
        if end is not None:
            cond.add(f"start_time < {{x_we:{_TS}}}", x_we=end)
        params = dict(cond.params)
        frm = f"(SELECT {_TRACE_COLS} FROM $db.trace FINAL WHERE {cond.sql()}) AS tr"

        def spans(alias: str, cols: str, conds: list[str], *, distinct: bool = False) -> str:
            # A trace starts with its first span, so a span of a trace of the window starts in or after it.
            early = [c for c in conds if c in _EARLY]
            sub = window_spans(cols, since=start is not None, early=early, late=conds, distinct=distinct)
            return f" INNER JOIN ({sub}) AS {alias} ON {alias}.trace_id = tr.id"

        dim = p.dimension
        calls: list[str] = ["ifNull(usage_counted, true)"]
        call_key = "'all'"
        if dim == "model":
            calls.append("model IS NOT NULL")
            if p.filter.model:
                calls.append("model = {model:String}")
            call_key = "toString(assumeNotNull(model))"
        elif dim == "prompt":
            calls.append("prompt_name IS NOT NULL")
            # "name vN" as the home dashboard names them (dashboard._pv_key)
            call_key = ("if(prompt_version IS NULL, concat(assumeNotNull(prompt_name), ' (no version)'), "
                        "concat(assumeNotNull(prompt_name), ' v', toString(prompt_version)))")

        fam = p.family
        key = "'all'"
        conds: list[str] = []
        trace_values = {"latency": "tr.latency_ms", "cost": "toFloat64(tr.total_cost)", "tokens": "tr.total_tokens",
                        "input_tokens": "tr.input_tokens", "output_tokens": "tr.output_tokens"}
        call_values = {"latency": "s.latency_ms", "cost": "toFloat64(s.cost_total)", "tokens": "s.total_tokens",
                       "input_tokens": "s.input_tokens", "output_tokens": "s.output_tokens"}
        call_cols = f"trace_id, {call_key} AS ckey, status, latency_ms, cost_total, total_tokens, input_tokens, " \
                    "output_tokens"
        key_from_trace = True
        if fam in ("errors", "error_rate", *trace_values) and dim in _CALL_DIMS:
            frm += spans("s", call_cols, calls + (["latency_ms IS NOT NULL"] if fam == "latency" else []))
            key = "s.ckey"
            key_from_trace = False
            v = "toUInt8(s.status = 'error')" if fam in ("errors", "error_rate") else call_values[fam]
        elif fam in ("errors", "error_rate"):
            v = "toUInt8(tr.status = 'error')"
        elif fam in trace_values:
            v = trace_values[fam]
            if fam == "latency":
                conds.append("tr.end_time IS NOT NULL")
        elif fam == "traces":
            v = "toUInt8(1)"
        elif fam == "spans":
            v = "toUInt8(1)"
            if dim in _CALL_DIMS:
                frm += spans("s", call_cols, calls)
                key = "s.ckey"
                key_from_trace = False
            else:
                frm += spans("s", "trace_id", [])
        elif fam == "score":
            sc = ["project_id = {p:String}", "value IS NOT NULL", "trace_id IS NOT NULL"]
            if p.arg != "*":
                sc.append("name = {x_name:String}")
                params["x_name"] = p.arg
            frm += (" INNER JOIN (SELECT assumeNotNull(trace_id) AS trace_id, name, value FROM $db.score FINAL "
                    f"WHERE {' AND '.join(sc)}) AS sc ON sc.trace_id = tr.id")
            v = "sc.value"
            if dim == "score":
                key = "sc.name"
                key_from_trace = False
        else:  # guardrail
            if p.arg == "*" and dim not in _GUARD_DIMS:
                action = json_text_expr("attributes", "podium.guardrail.action")
                frm += spans("g", f"trace_id, {action} AS gaction", ["kind = 'guardrail'"])
                v = "toUInt8(g.gaction IS NOT NULL AND g.gaction != 'allow')"
            else:
                outcomes = ("arrayJoin(JSONExtractArrayRaw(ifNull(attributes, ''), 'podium.guardrail.outcomes')) "
                            "AS o")
                cols = (f"trace_id, {outcomes}, {json_text_expr('o', 'rule')} AS rule, "
                        f"{json_text_expr('o', 'scanner')} AS scanner, {json_text_expr('o', 'action')} AS oaction")
                frm += spans("g", cols, ["kind = 'guardrail'"])
                conds.append("g.rule IS NOT NULL")
                if p.arg != "*":
                    conds.append("(g.rule = {x_rule:String} OR g.scanner = {x_rule:String})")
                    params["x_rule"] = p.arg
                v = "toUInt8(g.oaction IS NOT NULL AND g.oaction != 'none')"
                if dim in _GUARD_DIMS:
                    key = f"ifNull(g.{dim}, '{NONE_KEY}')"
                    key_from_trace = False

        if key_from_trace and dim is not None:
            if dim in _TRACE_DIMS:
                key = f"toString(ifNull(tr.`{dim}`, '{NONE_KEY}'))"
            elif dim == "tag":
                frm += (" LEFT JOIN (SELECT DISTINCT trace_id, tag FROM $db.trace_tag WHERE project_id = {p:String}) "
                        "AS tg ON tg.trace_id = tr.id")
                key = f"ifNull(tg.tag, '{NONE_KEY}')"
            elif dim in _CALL_DIMS:
                frm += spans("k", f"trace_id, {call_key} AS ckey", calls, distinct=True)
                key = "k.ckey"
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        return _Rows(f"SELECT tr.start_time AS ts, {key} AS key, {v} AS v FROM {frm}{where}", params)

    # --- aggregation ----------------------------------------------------------------------------
    @staticmethod
    def _agg(p: _Plan) -> str:
        """The aggregation of ``v`` (percentiles over rows already limited to non-NULL values)."""
        if p.agg in PERCENTILES:
            return nearest_rank_expr("v", PERCENTILES[p.agg])
        if p.agg == "count":
            return "sum(v)" if p.family in _INDICATOR else "count(v)"
        if p.agg == "sum":
            return "sum(v)"
        if p.agg in ("avg", "rate"):
            return "avg(v)"
        return "min(v)" if p.agg == "min" else "max(v)"

    def _query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._c.query(f"{sql} SETTINGS join_use_nulls = 1, group_by_use_nulls = 1", params)

    @staticmethod
    def _nonnull(p: _Plan) -> str:
        return " WHERE v IS NOT NULL" if p.agg in PERCENTILES else ""

    def _finish_ch(self, p: _Plan, value: Any, n: int) -> float | None:
        if p.agg in _COUNTS:
            return _num(value) or 0.0
        return _num(value) if n else None

    # --- the API ---------------------------------------------------------------------------------
    def value(self, project_id: str, q: MetricQuery, start: datetime, end: datetime) -> float | None:
        p = check_query(q)
        p = _Plan(p.family, p.arg, p.agg, None, p.filter)
        rows = self._rows_ch(project_id, p, start, end)
        r = self._query(f"SELECT {self._agg(p)}, count() FROM ({rows.sql}){self._nonnull(p)}", rows.params)[0]
        return self._finish_ch(p, r[0], int(r[1] or 0))

    def value_by(self, project_id: str, q: MetricQuery, start: datetime, end: datetime,
                 *, limit: int = 100) -> list[dict[str, Any]]:
        p = check_query(q)
        rows = self._rows_ch(project_id, p, start, end)
        out = self._query(
            f"SELECT key, {self._agg(p)} AS value, count() AS n FROM ({rows.sql}){self._nonnull(p)} "
            f"GROUP BY key ORDER BY n DESC, key LIMIT {int(limit)}", rows.params)
        return [{"key": str(k), "value": self._finish_ch(p, val, int(n or 0)), "n": int(n or 0)} for k, val, n in out]

    def _series_ranked(self, project_id: str, p: _Plan, b: Bucketing, top: int) -> dict[str, Any]:
        """As ``MetricsRepo._series_ranked``: the keys ranked by their rows first, the rest folded into
        ``other``; a percentile's total is the percentile over all the key's rows (a grouping set)."""
        pct = PERCENTILES.get(p.agg)
        rows = self._rows_ch(project_id, p, b.start, b.end)
        keys: list[str] = ["all"]
        has_other = False
        if p.dimension is not None:
            ranking = [str(r[0]) for r in self._query(
                f"SELECT key, count() AS n FROM ({rows.sql}){self._nonnull(p)} GROUP BY key "
                f"ORDER BY n DESC, key LIMIT {top + 1}", rows.params)]
            keys, has_other = ranking[:top], len(ranking) > top
        params = dict(rows.params)
        key = "key"
        if has_other:
            key = f"if(key IN {{x_keys:Array(String)}}, key, '{OTHER_KEY}')"
            params["x_keys"] = keys
        bucketed = f"SELECT {key} AS key, {bucket_expr('ts', b)} AS b, v FROM ({rows.sql}){self._nonnull(p)}"
        out_keys = keys + ([OTHER_KEY] if has_other else [])
        empty: float | None = 0.0 if p.agg in _COUNTS else None
        values: dict[str, list[float | None]] = {kk: [empty] * b.count for kk in out_keys}
        parts: dict[str, list[_Acc]] = {kk: [] for kk in out_keys}
        totals: dict[str, float | None] = dict.fromkeys(out_keys)
        counts: dict[str, int] = dict.fromkeys(out_keys, 0)
        if pct is not None:
            for kk, bi, value, n in self._query(
                    f"SELECT key, b, {nearest_rank_expr('v', pct)}, count() FROM ({bucketed}) "
                    "GROUP BY GROUPING SETS ((key, b), (key))", params):
                kk = str(kk)
                if kk not in values:
                    continue
                if bi is None:
                    totals[kk] = _num(value)
                elif 0 <= int(bi) < b.count:
                    values[kk][int(bi)] = _num(value)
                    counts[kk] += int(n)
        else:
            for kk, bi, s, c, n, mn, mx in self._query(
                    f"SELECT key, b, sum(v), count(v), count(), min(v), max(v) FROM ({bucketed}) GROUP BY key, b",
                    params):
                kk = str(kk)
                if kk not in values or not 0 <= int(bi) < b.count:
                    continue
                acc = _Acc(_num(s), int(c), int(n), _num(mn), _num(mx))
                values[kk][int(bi)] = acc.value(p)
                parts[kk].append(acc)
                counts[kk] += int(n)
        series = []
        for kk in out_keys:
            if p.dimension is None and not counts[kk]:
                continue  # no data: no series (as with a dimension)
            total = totals[kk] if pct is not None else _Acc.merge(parts[kk]).value(p)
            series.append({"key": kk, "values": values[kk], "total": total, "n": counts[kk]})
        return {"buckets": b.edges(), "interval": b.seconds, "series": series}

    def _series_one_pass(self, project_id: str, p: _Plan, b: Bucketing, top: int) -> dict[str, Any]:
        """As ``MetricsRepo._series_one_pass``: partial aggregates per (key, bucket) in one query, the
        ranking, totals and ``other`` combined here."""
        rows = self._rows_ch(project_id, p, b.start, b.end)
        cells: dict[str, dict[int, _Acc]] = {}
        for kk, bi, s, c, n, mn, mx in self._query(
                f"SELECT key, {bucket_expr('ts', b)} AS b, sum(v), count(v), count(), min(v), max(v) "
                f"FROM ({rows.sql}) GROUP BY key, b", rows.params):
            idx = int(bi)
            if 0 <= idx < b.count:
                cells.setdefault(str(kk), {})[idx] = _Acc(_num(s), int(c), int(n), _num(mn), _num(mx))
        return ranked_series(cells, p, b, top)

    def names(self, project_id: str, kind: str, start: datetime, end: datetime, *, limit: int = 20) -> list[str]:
        cond = _Cond()
        cond.add(f"project_id = {{p:String}} AND timestamp >= {{s:{_TS}}} AND timestamp < {{e:{_TS}}}",
                 p=project_id, s=start, e=end)
        prefix = "guardrail."
        if kind == "guardrail":
            cond.add("startsWith(name, {pre:String})", pre=prefix)
        elif kind == "score":
            cond.add("source != 'guardrail'")
        else:
            raise ValueError("kind is score or guardrail")
        out = [str(r[0]) for r in self._c.query(
            f"SELECT name, count() AS n FROM $db.score FINAL WHERE {cond.sql()} GROUP BY name "
            f"ORDER BY n DESC, name LIMIT {int(limit)}", cond.params)]
        return [n[len(prefix):] for n in out] if kind == "guardrail" else out
