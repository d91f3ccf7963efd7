"""Saved dashboards: a named, per-project list of charts. A chart is a metric query
(``podium.core.metrics.MetricQuery``: metric, agg, dimension, filters) plus how to draw it
(``chart_type`` line | bar | number, ``interval_s``, ``range_s``, ``top``). Charts are written
with their dashboard (create / replace), so a dashboard is always saved whole.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from podium.core.metrics import MetricQuery
from podium.errors import BadRequest, Conflict, NotFound
from podium.store import tables as t
from podium.store.repos.metrics import check_query

__all__ = ["CHART_FIELDS", "CHART_TYPES", "DashboardsRepo", "check_chart"]

CHART_TYPES = ("line", "bar", "number")
CHART_FIELDS = ("title", "metric", "agg", "dimension", "filters", "chart_type", "interval_s", "range_s", "top")
MAX_CHARTS = 50


def check_chart(c: dict[str, Any], i: int = 0) -> dict[str, Any]:
    """A chart's fields, checked (BadRequest naming the chart and the valid values)."""
    q = MetricQuery(metric=c.get("metric", ""), agg=c.get("agg") or "avg", dimension=c.get("dimension") or None,
                    filters=c.get("filters") or {})
    try:
        check_query(q)
    except BadRequest as e:
        raise BadRequest(f"chart {i + 1}: {e.message}", details=e.details) from None
    ct = c.get("chart_type") or "line"
    if ct not in CHART_TYPES:
        raise BadRequest(f"chart {i + 1}: chart_type must be one of {', '.join(CHART_TYPES)}",
                         details=[{"field": f"charts.{i}.chart_type", "valid": list(CHART_TYPES)}])
    title = str(c.get("title") or "").strip() or f"{q.agg} {q.metric}" + (f" by {q.dimension}" if q.dimension else "")
    return {
        "id": c.get("id") or uuid.uuid4().hex[:12],
        "title": title[:200],
        "metric": q.metric,
        "agg": q.agg,
        "dimension": q.dimension,
        "filters": dict(q.filters) or None,
        "chart_type": ct,
        "interval_s": c.get("interval_s"),
        "range_s": c.get("range_s"),
        "top": c.get("top"),
    }


class DashboardsRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list_dashboards(self, project_id: str) -> list[dict[str, Any]]:
        """Every saved dashboard (without charts) with its chart count, by name."""
        d = t.dashboard.c
        with self._engine.connect() as conn:
            rows: list[dict[str, Any]] = [dict(r._mapping) for r in conn.execute(
                select(t.dashboard).where(d.project_id == project_id).order_by(d.name))]
            ch = t.dashboard_chart.c
            counts: dict[str, int] = {}
            for c in conn.execute(select(ch.dashboard_id).where(ch.project_id == project_id)):
                counts[c.dashboard_id] = counts.get(c.dashboard_id, 0) + 1
        for r in rows:
            r.pop("project_id", None)
            r["chart_count"] = counts.get(r["id"], 0)
        return rows

    def get(self, project_id: str, dashboard_id: str) -> dict[str, Any]:
        d = t.dashboard.c
        ch = t.dashboard_chart.c
        with self._engine.connect() as conn:
            row = conn.execute(select(t.dashboard).where(d.project_id == project_id, d.id == dashboard_id)).first()
            if row is None:
                raise NotFound(f"no dashboard {dashboard_id!r} in this project; GET /api/v1/dashboards lists them")
            out = dict(row._mapping)
            out["charts"] = [
                {**{k: r._mapping[k] for k in ("id", *CHART_FIELDS)}, "filters": r.filters or {}}
                for r in conn.execute(select(t.dashboard_chart)
                                      .where(ch.project_id == project_id, ch.dashboard_id == dashboard_id)
                                      .order_by(ch.position))
            ]
        out.pop("project_id", None)
        return out

    def _write_charts(self, conn: Any, project_id: str, dashboard_id: str, charts: list[dict[str, Any]]) -> None:
        ch = t.dashboard_chart.c
        conn.execute(delete(t.dashboard_chart).where(ch.project_id == project_id, ch.dashboard_id == dashboard_id))
        seen: set[str] = set()
        rows = []
        for i, c in enumerate(charts):
            cid = c["id"] if c["id"] not in seen else uuid.uuid4().hex[:12]
            seen.add(cid)
            rows.append({**c, "id": cid, "project_id": project_id, "dashboard_id": dashboard_id, "position": i})
        if rows:
            conn.execute(insert(t.dashboard_chart), rows)

    @staticmethod
    def _charts(charts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(charts) > MAX_CHARTS:
            raise BadRequest(f"a dashboard holds at most {MAX_CHARTS} charts; split it in two",
                             details=[{"field": "charts"}])
        return [check_chart(c, i) for i, c in enumerate(charts)]

    def create(self, project_id: str, *, name: str, description: str | None = None,
               layout: dict[str, Any] | None = None, charts: list[dict[str, Any]] | None = None,
               created_by: str | None = None) -> dict[str, Any]:
        checked = self._charts(charts or [])
        now = datetime.now(UTC)
        did = uuid.uuid4().hex[:16]
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(t.dashboard).values(
                    project_id=project_id, id=did, name=name, description=description, layout=layout,
                    created_by=created_by, created_at=now, updated_at=now))
                self._write_charts(conn, project_id, did, checked)
        except IntegrityError:
            raise Conflict(f"a dashboard named {name!r} already exists in this project; pick another name",
                           details=[{"field": "name"}]) from None
        return self.get(project_id, did)

    def update(self, project_id: str, dashboard_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change name / description / layout and, when ``charts`` is given, replace the charts."""
        d = t.dashboard.c
        values = {k: changes[k] for k in ("name", "description", "layout") if k in changes}
        if "name" in values and not values["name"]:
            raise BadRequest("name cannot be empty", details=[{"field": "name"}])
        checked = self._charts(changes["charts"]) if changes.get("charts") is not None else None
        try:
            with self._engine.begin() as conn:
                res = conn.execute(update(t.dashboard)
                                   .where(d.project_id == project_id, d.id == dashboard_id)
                                   .values(**values, updated_at=datetime.now(UTC)))
                if res.rowcount == 0:
                    raise NotFound(f"no dashboard {dashboard_id!r} in this project; GET /api/v1/dashboards "
                                   "lists them")
                if checked is not None:
                    self._write_charts(conn, project_id, dashboard_id, checked)
        except IntegrityError:
            raise Conflict(f"a dashboard named {values.get('name')!r} already exists in this project; "
                           "pick another name", details=[{"field": "name"}]) from None
        return self.get(project_id, dashboard_id)

    def delete(self, project_id: str, dashboard_id: str) -> None:
        d = t.dashboard.c
        ch = t.dashboard_chart.c
        with self._engine.begin() as conn:
            conn.execute(delete(t.dashboard_chart).where(ch.project_id == project_id, ch.dashboard_id == dashboard_id))
            res = conn.execute(delete(t.dashboard).where(d.project_id == project_id, d.id == dashboard_id))
            if res.rowcount == 0:
                raise NotFound(f"no dashboard {dashboard_id!r} in this project; GET /api/v1/dashboards lists them")
