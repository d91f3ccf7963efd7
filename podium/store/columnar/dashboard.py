"""The web UI's aggregates on the columnar span store: ``ColumnarDashboardRepo``, the same methods,
arguments and dict shapes as ``podium.store.repos.dashboard.DashboardRepo`` (the home dashboard, its
by-model and by-prompt breakdowns, top users and sessions, one user's or session's summary and scores, the
trace page's root count and span path), in ClickHouse SQL over the ``FINAL`` (latest) version of each row.
Experiment items live in SQL and are read there (the parent's method).

Buckets and percentiles are the SQL repo's: ``Bucketing`` edges and nearest rank (see
``podium.store.columnar.metrics``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.metrics import bucket_expr, nearest_rank_expr, window_spans
from podium.store.columnar.reads import _Cond
from podium.store.columnar.rows import utc
from podium.store.repos.dashboard import Bucketing, DashboardRepo, _pv_key

__all__ = ["ColumnarDashboardRepo"]

_TS = "DateTime64(6, 'UTC')"


def _f(v: Any) -> float:
    return float(v) if v is not None else 0.0


def _opt(v: Any) -> float | None:
    return float(v) if v is not None else None


def _range(project_id: str, start: datetime | None, end: datetime | None) -> _Cond:
    c = _Cond()
    c.add("project_id = {p:String}", p=project_id)
    if start is not None:
        c.add(f"start_time >= {{ws:{_TS}}}", ws=start)
    if end is not None:
        c.add(f"start_time < {{we:{_TS}}}", we=end)
    return c


def _calls(project_id: str, start: datetime | None, end: datetime | None, span_cols: str, early: str,
           span_conds: str | None = None) -> tuple[str, dict[str, Any]]:
    """``FROM`` spans (``s``, the latest versions meeting ``early`` and ``span_conds``, wrappers whose usage
    is counted elsewhere left out) joined to their traces that started in the range (``tr``). ``early``
    goes before ``FINAL`` (``window_spans``: ``model IS NOT NULL`` or ``prompt_name IS NOT NULL``)."""
    c = _range(project_id, start, end)
    late = ["ifNull(usage_counted, true)", early] + ([span_conds] if span_conds else [])
    spans = window_spans(f"trace_id, {span_cols}", since=start is not None, early=[early], late=late)
    frm = f"({spans}) AS s INNER JOIN (SELECT id, start_time FROM $db.trace FINAL WHERE {c.sql()}) AS tr ON s.trace_id = tr.id"
    params = dict(c.params)
    if start is not None:
        params["x_ws"] = start
    return frm, params


class ColumnarDashboardRepo(DashboardRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)  # experiment items stay in SQL
        self._c = client

    # --- the home dashboard -------------------------------------------------------------------
    def overview(self, project_id: str, b: Bucketing) -> dict[str, Any]:
        """Totals for the range and one row per bucket (missing buckets filled with zeros): one pass, the
        buckets and the whole range as two grouping sets."""
        c = _range(project_id, b.start, b.end)
        done = "end_time IS NOT NULL"
        rows = self._c.query(
            f"SELECT {bucket_expr('start_time', b)} AS b, count(), countIf(status = 'error'), sum(input_tokens), "
            "sum(output_tokens), sum(total_tokens), toFloat64(sum(total_cost)), "
            f"{nearest_rank_expr('latency_ms', 0.5, where=done)}, {nearest_rank_expr('latency_ms', 0.95, where=done)} "
            f"FROM $db.trace FINAL WHERE {c.sql()} GROUP BY GROUPING SETS ((b), ()) "
            "SETTINGS group_by_use_nulls = 1",
            c.params,
        )
        per: dict[int, tuple[Any, ...]] = {}
        tot: tuple[Any, ...] = (None, 0, 0, 0, 0, 0, 0.0, None, None)
        for r in rows:
            if r[0] is None:
                tot = r
            else:
                per[int(r[0])] = r
        series: dict[str, list[Any]] = {
            k: [] for k in ("t", "traces", "errors", "input_tokens", "output_tokens", "cost", "p50", "p95")
        }
        for idx, edge in enumerate(b.edges()):
            cell = per.get(idx)
            series["t"].append(edge)
            series["traces"].append(int(cell[1]) if cell else 0)
            series["errors"].append(int(cell[2] or 0) if cell else 0)
            series["input_tokens"].append(int(cell[3] or 0) if cell else 0)
            series["output_tokens"].append(int(cell[4] or 0) if cell else 0)
            series["cost"].append(_f(cell[6]) if cell else 0.0)
            series["p50"].append(_opt(cell[7]) if cell else None)
            series["p95"].append(_opt(cell[8]) if cell else None)
        traces, errors = int(tot[1] or 0), int(tot[2] or 0)
        totals = {
            "traces": traces,
            "errors": errors,
            "error_rate": (errors / traces) if traces else 0.0,
            "input_tokens": int(tot[3] or 0),
            "output_tokens": int(tot[4] or 0),
            "total_tokens": int(tot[5] or 0),
            "cost": _f(tot[6]),
            "p50": _opt(tot[7]) if traces else None,
            "p95": _opt(tot[8]) if traces else None,
        }
        return {"totals": totals, "series": series}

    def by_model(self, project_id: str, b: Bucketing, *, limit: int = 12) -> dict[str, Any]:
        """One pass over the calls: a row per model and per (model, bucket) as two grouping sets."""
        frm, params = _calls(project_id, b.start, b.end,
                             "model, status, input_tokens, output_tokens, total_tokens, cost_total, latency_ms",
                             "model IS NOT NULL")
        totals: list[tuple[Any, ...]] = []
        cells: dict[str, list[tuple[int, int, Any]]] = {}
        for m, bi, n, e, i, o, tt, c, lat in self._c.query(
            f"SELECT toString(assumeNotNull(s.model)) AS m, {bucket_expr('tr.start_time', b)} AS b, count(), "
            "countIf(s.status = 'error'), sum(s.input_tokens), sum(s.output_tokens), sum(s.total_tokens), "
            f"sum(s.cost_total), avg(s.latency_ms) FROM {frm} GROUP BY GROUPING SETS ((m), (m, b)) "
            "SETTINGS group_by_use_nulls = 1",
            params,
        ):
            if bi is None:
                totals.append((str(m), int(n), e, i, o, tt, c, lat))
            else:
                cells.setdefault(str(m), []).append((int(bi), int(n), c))
        # as the SQL repo orders them: the most cost first (none last), then the most calls, then by name
        totals.sort(key=lambda r: (r[6] is None, -(r[6] or 0), -r[1], r[0]))
        rows: list[dict[str, Any]] = [
            {"model": m, "calls": n, "errors": int(e or 0), "input_tokens": int(i or 0), "output_tokens": int(o or 0),
             "total_tokens": int(tt or 0), "cost": _f(c), "avg_latency_ms": _f(lat)}
            for m, n, e, i, o, tt, c, lat in totals
        ]
        top: list[str] = [r["model"] for r in rows[:limit]]
        cost: dict[str, list[float]] = {m: [0.0] * b.count for m in top}
        calls: dict[str, list[int]] = {m: [0] * b.count for m in top}
        for m in top:
            for idx, n, c in cells.get(m, []):
                if 0 <= idx < b.count:
                    cost[m][idx] = _f(c)
                    calls[m][idx] = n
        return {"rows": rows, "models": top, "cost": cost, "calls": calls}

    def by_prompt(self, project_id: str, start: datetime | None, end: datetime | None,
                  *, limit: int = 20) -> list[dict[str, Any]]:
        frm, params = _calls(project_id, start, end,
                             "prompt_name, prompt_version, status, total_tokens, cost_total, latency_ms",
                             "prompt_name IS NOT NULL")
        done = "s.latency_ms IS NOT NULL"
        out: list[dict[str, Any]] = []
        for name, ver, n, e, tt, cost, lat, p50, p95 in self._c.query(
            "SELECT assumeNotNull(s.prompt_name) AS name, s.prompt_version AS ver, count() AS n, "
            "countIf(s.status = 'error'), sum(s.total_tokens), toFloat64(sum(s.cost_total)), avg(s.latency_ms), "
            f"{nearest_rank_expr('s.latency_ms', 0.5, where=done)}, {nearest_rank_expr('s.latency_ms', 0.95, where=done)} "
            f"FROM {frm} GROUP BY name, ver ORDER BY n DESC, name, ver NULLS FIRST LIMIT {int(limit)}",
            params,
        ):
            out.append({
                "prompt_name": name, "prompt_version": None if ver is None else int(ver), "calls": int(n),
                "errors": int(e or 0), "total_tokens": int(tt or 0), "cost": _f(cost), "avg_latency_ms": _f(lat),
                "p50_latency_ms": _opt(p50), "p95_latency_ms": _opt(p95),
            })
        return out

    def prompt_series(self, project_id: str, b: Bucketing, keys: list[tuple[str, int | None]]) -> dict[str, list[int]]:
        out = {_pv_key(n, v): [0] * b.count for n, v in keys}
        if not keys:
            return out
        frm, params = _calls(project_id, b.start, b.end, "prompt_name, prompt_version",
                             "prompt_name IS NOT NULL", "prompt_name IN {names:Array(String)}")
        for bi, name, ver, n in self._c.query(
            f"SELECT {bucket_expr('tr.start_time', b)} AS b, assumeNotNull(s.prompt_name) AS name, "
            f"s.prompt_version AS ver, count() FROM {frm} GROUP BY b, name, ver",
            {**params, "names": sorted({n for n, _ in keys})},
        ):
            k = _pv_key(name, None if ver is None else int(ver))
            idx = int(bi)
            if k in out and 0 <= idx < b.count:
                out[k][idx] = int(n)
        return out

    def top_groups(self, project_id: str, by: str, start: datetime | None, end: datetime | None,
                   *, limit: int = 10) -> list[dict[str, Any]]:
        if by not in ("user_id", "session_id"):
            raise ValueError("by must be user_id or session_id")
        c = _range(project_id, start, end)
        c.add(f"`{by}` IS NOT NULL")
        return [
            {"id": k, "traces": int(n), "errors": int(e or 0), "total_tokens": int(tt or 0), "cost": _f(cost),
             "last_seen": utc(last)}
            for k, n, e, tt, cost, last in self._c.query(
                f"SELECT assumeNotNull(`{by}`) AS k, count() AS n, countIf(status = 'error'), sum(total_tokens), "
                f"sum(total_cost) AS c, max(start_time) FROM $db.trace FINAL WHERE {c.sql()} "
                f"GROUP BY k ORDER BY c DESC NULLS LAST, n DESC, k LIMIT {int(limit)}",
                c.params,
            )
        ]

    # --- one user / one session -----------------------------------------------------------------
    def group_summary(self, project_id: str, by: str, value: str) -> dict[str, Any] | None:
        if by not in ("user_id", "session_id"):
            raise ValueError("by must be user_id or session_id")
        rows = self._c.query(
            "SELECT count(), uniqExact(session_id), uniqExact(user_id), max(user_id), min(start_time), "
            "max(start_time), countIf(status = 'error'), sum(input_tokens), sum(output_tokens), sum(total_tokens), "
            f"toFloat64(sum(total_cost)), sum(latency_ms) FROM $db.trace FINAL WHERE project_id = {{p:String}} "
            f"AND `{by}` = {{v:String}}",
            {"p": project_id, "v": value},
        )
        n, sessions, users, user_id, first, last, errors, itok, otok, ttok, cost, lat = rows[0]
        if not n:
            return None
        return {
            "traces": int(n), "sessions": int(sessions), "users": int(users), "user_id": user_id,
            "first_seen": utc(first), "last_seen": utc(last), "errors": int(errors or 0), "input_tokens": int(itok or 0),
            "output_tokens": int(otok or 0), "total_tokens": int(ttok or 0), "cost": _f(cost), "latency_ms": _f(lat),
        }

    def scores_by_name(self, project_id: str, *, user_id: str | None = None,
                       session_id: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"p": project_id}
        traces = "trace_id IN (SELECT id FROM $db.trace FINAL WHERE project_id = {p:String} AND `{col}` = {v:String})"
        if user_id is not None:
            target = traces.replace("{col}", "user_id")
            params["v"] = user_id
        elif session_id is not None:
            target = f"(session_id = {{v:String}} OR {traces.replace('{col}', 'session_id')})"
            params["v"] = session_id
        else:
            raise ValueError("give user_id or session_id")
        return [
            {"name": name, "source": source, "data_type": dt, "count": int(n), "avg": avg, "min": mn, "max": mx}
            for name, source, dt, n, avg, mn, mx in self._c.query(
                "SELECT name, toString(source) AS source, toString(data_type) AS dt, count(), avg(value), min(value), "
                f"max(value) FROM $db.score FINAL WHERE project_id = {{p:String}} AND {target} "
                "GROUP BY name, source, dt ORDER BY name, source, dt",
                params,
            )
        ]

    def count_roots(self, project_id: str, trace_id: str) -> int:
        return int(self._c.query(
            "SELECT count() FROM $db.span FINAL WHERE project_id = {p:String} AND trace_id = {t:String} "
            "AND parent_id IS NULL", {"p": project_id, "t": trace_id})[0][0])

    def span_path(self, project_id: str, trace_id: str, span_id: str, *, max_depth: int = 64) -> list[str]:
        """The ids from the top-level ancestor down to ``span_id`` (empty when the span does not exist):
        the trace's (id, parent) pairs in one query (a primary-key range), walked here."""
        parents = dict(self._c.query(
            "SELECT id, parent_id FROM $db.span FINAL WHERE project_id = {p:String} AND trace_id = {t:String}",
            {"p": project_id, "t": trace_id}))
        path: list[str] = []
        cur: str | None = span_id
        while cur is not None and len(path) < max_depth and cur not in path:
            if cur not in parents:
                break
            path.append(cur)
            cur = parents[cur]
        return path[::-1]
