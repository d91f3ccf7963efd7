"""Evaluation sweeps' storage (``eval_sweep``, ``eval_sweep_trial``): a sweep (its suite, search
space, objectives, search method, budget and what it spent) and its trials (a configuration, the
experiment that ran it, its status and objective metrics), upserted on ``(sweep, number)`` so a
resumed or retried sweep may resend a trial. Also the traffic read a cost forecast needs: a
prompt's or a model's traced calls and mean token counts since a time.

The sweep engine (podium.experiments.sweep) writes through the REST API; the Pareto front, the
decisions and the forecast are computed by the server (podium.server.routes.eval_sweeps) from
what is stored here. Every query is scoped by project.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Float, func, insert, select, type_coerce, update

from podium.errors import NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write

__all__ = ["SWEEP_STATUSES", "TRIAL_STATUSES", "EvalSweepRepo"]

R = TypeVar("R")
SWEEP_STATUSES = ("running", "completed", "stopped", "failed")
TRIAL_STATUSES = ("complete", "stopped", "failed")


def _now() -> datetime:
    return datetime.now(UTC)


def _sweep(r: Any, trials: int | None = None) -> dict[str, Any]:
    out = {"id": r.id, "name": r.name, "status": r.status, "suite": dict(r.suite or {}), "space": dict(r.space or {}),
           "objectives": list(r.objectives or []), "search": dict(r.search or {}), "budget_usd": r.budget_usd,
           "spent_usd": float(r.spent_usd or 0.0), "summary": dict(r.summary or {}), "created_by": r.created_by,
           "created_at": r.created_at, "updated_at": r.updated_at}
    if trials is not None:
        out["trial_count"] = trials
    return out


def _trial(r: Any) -> dict[str, Any]:
    return {"number": r.number, "config": dict(r.config or {}), "experiment_id": r.experiment_id,
            "status": r.status, "items": r.items, "metrics": dict(r.metrics or {}), "error": r.error,
            "created_at": r.created_at, "updated_at": r.updated_at}


class EvalSweepRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, fn: Callable[[Connection], R]) -> R:
        return locked_write(self._engine, fn, what="the eval sweep")

    def _require(self, conn: Connection, project_id: str, sweep_id: str) -> Any:
        c = t.eval_sweep.c
        row = conn.execute(select(t.eval_sweep).where(c.project_id == project_id, c.id == sweep_id)).first()
        if row is None:
            raise NotFound(f"no eval sweep {sweep_id!r} in this project; `podium eval sweeps list` or "
                           "GET /api/v1/eval-sweeps lists them",
                           details=[{"field": "id", "message": "unknown eval sweep"}])
        return row

    def create(self, project_id: str, *, name: str, suite: dict[str, Any], space: dict[str, Any] | None = None,
               objectives: Sequence[str] = (), search: dict[str, Any] | None = None,
               budget_usd: float | None = None, actor: str | None = None) -> dict[str, Any]:
        """A new sweep, status ``running`` (the engine creates it as it starts)."""
        sweep_id = f"esw-{uuid.uuid4().hex[:12]}"

        def tx(conn: Connection) -> None:
            now = _now()
            conn.execute(insert(t.eval_sweep).values(
                project_id=project_id, id=sweep_id, name=name, status="running", suite=dict(suite),
                space=dict(space or {}), objectives=list(objectives), search=dict(search or {}),
                budget_usd=budget_usd, spent_usd=0.0, summary={}, created_by=actor, created_at=now,
                updated_at=now))

        self._write(tx)
        return self.get(project_id, sweep_id)

    def get(self, project_id: str, sweep_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            return _sweep(self._require(conn, project_id, sweep_id))

    def list_sweeps(self, project_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, each with its number of trials (``trial_count``)."""
        c, tr = t.eval_sweep.c, t.eval_sweep_trial.c
        n = (select(func.count()).where(tr.project_id == c.project_id, tr.sweep_id == c.id)
             .correlate(t.eval_sweep).scalar_subquery())
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.eval_sweep, n.label("n")).where(c.project_id == project_id)
                                .order_by(c.created_at.desc(), c.id).limit(limit)).all()
        return [_sweep(r, int(r.n)) for r in rows]

    def update(self, project_id: str, sweep_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Set ``status``, ``spent_usd`` and/or ``summary`` (the keys given)."""
        vals = {k: v for k, v in changes.items() if k in ("status", "spent_usd", "summary", "name")}

        def tx(conn: Connection) -> None:
            self._require(conn, project_id, sweep_id)
            c = t.eval_sweep.c
            conn.execute(update(t.eval_sweep).where(c.project_id == project_id, c.id == sweep_id)
                         .values(**vals, updated_at=_now()))

        self._write(tx)
        return self.get(project_id, sweep_id)

    def upsert_trials(self, project_id: str, sweep_id: str, trials: Sequence[dict[str, Any]]) -> int:
        """Insert or replace trials by number (validated by the caller); returns how many were stored."""
        tr = t.eval_sweep_trial.c
        fields = ("config", "experiment_id", "status", "items", "metrics", "error")

        def tx(conn: Connection) -> int:
            self._require(conn, project_id, sweep_id)
            now = _now()
            for trial in trials:
                vals = {k: trial.get(k) for k in fields}
                vals["items"] = vals["items"] or 0
                res = conn.execute(update(t.eval_sweep_trial).where(
                    tr.project_id == project_id, tr.sweep_id == sweep_id, tr.number == trial["number"])
                    .values(**vals, updated_at=now))
                if res.rowcount == 0:
                    conn.execute(insert(t.eval_sweep_trial).values(
                        project_id=project_id, sweep_id=sweep_id, number=trial["number"], **vals, created_at=now,
                        updated_at=now))
            conn.execute(update(t.eval_sweep).where(t.eval_sweep.c.project_id == project_id,
                                                    t.eval_sweep.c.id == sweep_id).values(updated_at=now))
            return len(trials)

        return self._write(tx) if trials else 0

    def trials(self, project_id: str, sweep_id: str) -> list[dict[str, Any]]:
        """The sweep's trials by number (404 when the sweep is not in this project)."""
        tr = t.eval_sweep_trial.c
        with self._engine.connect() as conn:
            self._require(conn, project_id, sweep_id)
            rows = conn.execute(select(t.eval_sweep_trial).where(tr.project_id == project_id, tr.sweep_id == sweep_id)
                                .order_by(tr.number)).all()
        return [_trial(r) for r in rows]

    def traffic(self, project_id: str, *, since: datetime, prompt_name: str | None = None,
                model: str | None = None) -> dict[str, Any]:
        """Model calls (spans with a model whose usage counts) of ``prompt_name`` or else ``model``
        that started at or after ``since``: ``{calls, first, input_mean, output_mean}``."""
        s = t.span.c
        conds = [s.project_id == project_id, s.start_time >= since, s.model.is_not(None), s.usage_counted.is_not(False)]
        if prompt_name is not None:
            conds.append(s.prompt_name == prompt_name)
        elif model is not None:
            conds.append(s.model == model)
        with self._engine.connect() as conn:
            r = conn.execute(select(func.count(), func.min(s.start_time),
                                    func.avg(type_coerce(s.input_tokens, Float)),
                                    func.avg(type_coerce(s.output_tokens, Float))).where(*conds)).one()
        return {"calls": int(r[0] or 0), "first": r[1], "input_mean": float(r[2] or 0.0),
                "output_mean": float(r[3] or 0.0)}
