"""Fine-tuning runs' storage: a run (parameters, hardware, metrics, artifacts, status with cancel
and resume), its logged steps (loss, learning rate, ... upserted on ``(run, step)`` so a resumed
run may resend a step) and hyperparameter sweeps whose trials are runs.

The trainer (podium.tune) reaches this through the REST API (``podium.cli.run_tracker``); the
rules on status moves live here so the API, the UI and the CLI refuse the same things. Every
query is scoped by project.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from podium.errors import BadRequest, Conflict, NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write

__all__ = ["METHODS", "RUN_STATUSES", "STEP_FIELDS", "SWEEP_STATUSES", "TERMINAL", "TrainingRepo"]

R = TypeVar("R")

METHODS = ("sft", "dpo", "kto")
RUN_STATUSES = ("running", "completed", "failed", "cancelled", "pruned")
TERMINAL = ("completed", "failed", "cancelled", "pruned")
SWEEP_STATUSES = ("running", "completed", "failed", "cancelled")
STEP_FIELDS = ("loss", "learning_rate", "epoch", "grad_norm", "eval_loss")
#: Where a run may go from each status; the same status again is a no-op (a retried PATCH).
MOVES: dict[str, tuple[str, ...]] = {
    "running": TERMINAL,
    "cancelled": ("running",),  # resume from the checkpoint
    "failed": ("running",),
    "completed": (),
    "pruned": (),
}
_RUN_PATCH = ("name", "hardware", "output_dir", "error", "duration_s", "tags", "params")


def _now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class TrainingRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, fn: Callable[[Connection], R], what: str = "the training run") -> R:
        return locked_write(self._engine, fn, what=what)

    # --- runs -----------------------------------------------------------------------------------
    def _require(self, conn: Connection, project_id: str, run_id: str, *, lock: bool = False) -> Any:
        r = t.training_run.c
        q = select(t.training_run).where(r.project_id == project_id, r.id == run_id)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(f"no training run {run_id!r} in this project; `podium tune runs list` or "
                           "GET /api/v1/training-runs lists them",
                           details=[{"field": "id", "message": "unknown training run"}])
        return row

    @staticmethod
    def _run_dict(r: Any) -> dict[str, Any]:
        return {"id": r.id, "name": r.name, "method": r.method, "status": r.status, "base_model": r.base_model,
                "dataset": ({"name": r.dataset_name, "version": r.dataset_version} if r.dataset_name else None),
                "data_path": r.data_path, "params": dict(r.params or {}), "hardware": dict(r.hardware or {}),
                "output_dir": r.output_dir, "metrics": dict(r.metrics or {}), "artifacts": dict(r.artifacts or {}),
                "sweep_id": r.sweep_id, "trial": r.trial, "tags": list(r.tags or []), "error": r.error,
                "cancel_requested": bool(r.cancel_requested), "last_step": r.last_step,
                "created_by": r.created_by, "created_at": r.created_at, "started_at": r.started_at,
                "ended_at": r.ended_at, "updated_at": r.updated_at, "duration_s": r.duration_s}

    def create_run(self, project_id: str, *, method: str, base_model: str, params: dict[str, Any] | None = None,
                   name: str | None = None, dataset: dict[str, Any] | None = None, data_path: str | None = None,
                   hardware: dict[str, Any] | None = None, output_dir: str | None = None,
                   sweep_id: str | None = None, trial: int | None = None, tags: list[str] | None = None,
                   actor: str | None = None) -> dict[str, Any]:
        """A new run, status ``running`` (the trainer creates it as it starts)."""
        if method not in METHODS:
            raise BadRequest(f"method must be one of {', '.join(METHODS)}, not {method!r}",
                             details=[{"field": "method", "allowed": list(METHODS)}])
        run_id = new_id("run")

        def tx(conn: Connection) -> None:
            if sweep_id is not None:
                self._require_sweep(conn, project_id, sweep_id)
            now = _now()
            conn.execute(insert(t.training_run).values(
                project_id=project_id, id=run_id, name=name, method=method, status="running",
                base_model=base_model, dataset_name=(dataset or {}).get("name"),
                dataset_version=(dataset or {}).get("version"), data_path=data_path, params=dict(params or {}),
                hardware=dict(hardware or {}), output_dir=output_dir, metrics={}, artifacts={},
                sweep_id=sweep_id, trial=trial, tags=list(tags or []), error=None, cancel_requested=False,
                last_step=None, duration_s=None, created_by=actor, created_at=now, started_at=now,
                ended_at=None, updated_at=now))

        self._write(tx)
        return self.get_run(project_id, run_id)

    def get_run(self, project_id: str, run_id: str, *, steps: bool = False) -> dict[str, Any]:
        with self._engine.connect() as conn:
            out = self._run_dict(self._require(conn, project_id, run_id))
            if steps:
                out["steps"] = self._steps(conn, project_id, run_id)
        return out

    def list_runs(self, project_id: str, *, method: str | None = None, status: str | None = None,
                  sweep_id: str | None = None, ids: list[str] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first (a sweep's runs: by trial number)."""
        r = t.training_run.c
        q = select(t.training_run).where(r.project_id == project_id)
        if method:
            q = q.where(r.method == method)
        if status:
            q = q.where(r.status == status)
        if ids is not None:
            q = q.where(r.id.in_(ids))
        if sweep_id:
            q = q.where(r.sweep_id == sweep_id).order_by(r.trial, r.created_at)
        else:
            q = q.order_by(r.created_at.desc(), r.id)
        with self._engine.connect() as conn:
            rows = conn.execute(q.limit(limit)).all()
        return [self._run_dict(x) for x in rows]

    def update_run(self, project_id: str, run_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a run: ``status`` (checked against :data:`MOVES`), ``metrics`` and ``artifacts``
        (merged into what is there), ``hardware`` (merged), and name, output_dir, error, duration_s,
        tags, params (replaced). Ending a run stamps ``ended_at`` (and ``duration_s`` from the
        start when not given); resuming (``running`` again) clears the cancel request and error."""
        def tx(conn: Connection) -> None:
            row = self._require(conn, project_id, run_id, lock=True)
            now = _now()
            vals: dict[str, Any] = {k: v for k, v in changes.items() if k in _RUN_PATCH}
            for key in ("metrics", "artifacts", "hardware"):
                if changes.get(key) is not None:
                    vals[key] = {**dict(getattr(row, key) or {}), **changes[key]}
            status = changes.get("status")
            if status is not None and status != row.status:
                if status not in RUN_STATUSES:
                    raise BadRequest(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}",
                                     details=[{"field": "status", "allowed": list(RUN_STATUSES)}])
                allowed = MOVES[row.status]
                if status not in allowed:
                    hint = (f"it can go to {', '.join(allowed)}" if allowed else
                            "it is finished; start a new run instead")
                    raise Conflict(f"training run {run_id} is {row.status} and cannot become {status}: {hint}",
                                   details=[{"field": "status", "from": row.status, "allowed": list(allowed)}])
                vals["status"] = status
                if status == "running":
                    vals.update(cancel_requested=False, ended_at=None, error=changes.get("error"))
                    if changes.get("duration_s") is None:
                        vals["duration_s"] = row.duration_s  # the time run so far; the trainer adds to it
                else:
                    vals["ended_at"] = now
                    if changes.get("duration_s") is None and row.duration_s is None:
                        vals["duration_s"] = round((now - row.started_at).total_seconds(), 3)
            vals["updated_at"] = now
            r = t.training_run.c
            conn.execute(update(t.training_run).where(r.project_id == project_id, r.id == run_id).values(**vals))

        self._write(tx)
        return self.get_run(project_id, run_id)

    def request_cancel(self, project_id: str, run_id: str) -> dict[str, Any]:
        """Ask a running run to stop: the trainer sees it on its next steps report, saves a
        checkpoint and ends the run ``cancelled``."""
        def tx(conn: Connection) -> None:
            row = self._require(conn, project_id, run_id, lock=True)
            if row.status != "running":
                raise Conflict(f"training run {run_id} is {row.status}, not running; only a running run can be "
                               "cancelled", details=[{"field": "status", "status": row.status}])
            r = t.training_run.c
            conn.execute(update(t.training_run).where(r.project_id == project_id, r.id == run_id)
                         .values(cancel_requested=True, updated_at=_now()))

        self._write(tx)
        return self.get_run(project_id, run_id)

    def delete_run(self, project_id: str, run_id: str) -> None:
        def tx(conn: Connection) -> None:
            self._require(conn, project_id, run_id, lock=True)
            s, r = t.training_step.c, t.training_run.c
            conn.execute(delete(t.training_step).where(s.project_id == project_id, s.run_id == run_id))
            conn.execute(delete(t.training_run).where(r.project_id == project_id, r.id == run_id))

        self._write(tx)

    # --- steps ----------------------------------------------------------------------------------
    def log_steps(self, project_id: str, run_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
        """Upsert steps (``step`` plus any of :data:`STEP_FIELDS`; other keys go to ``extra``).
        A step sent again fills in what it carries and keeps the rest: the trainer logs a step's
        loss and, separately, its evaluation (``eval_loss``) under the same step number, and a
        resumed run may resend a step. Returns ``{accepted, cancel_requested}``."""
        out: dict[str, Any] = {}

        def tx(conn: Connection) -> None:
            row = self._require(conn, project_id, run_id, lock=True)
            out["cancel_requested"] = bool(row.cancel_requested)
            out["accepted"] = len(steps)
            if not steps:
                return
            now = _now()
            rows: dict[int, dict[str, Any]] = {}
            for s in steps:
                extra = {k: v for k, v in s.items() if k != "step" and k not in STEP_FIELDS and v is not None}
                prev = rows.get(int(s["step"]))
                fields = {k: s.get(k) for k in STEP_FIELDS}
                if prev is not None:  # the same step twice in one batch: merge like the upsert below
                    fields = {k: v if v is not None else prev[k] for k, v in fields.items()}
                    extra = {**(prev["extra"] or {}), **extra}
                rows[int(s["step"])] = {"project_id": project_id, "run_id": run_id, "step": int(s["step"]),
                                        **fields, "extra": extra or None, "logged_at": now}
            table = t.training_step
            stmt = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
            keys = ("project_id", "run_id", "step")
            conn.execute(stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={c.name: func.coalesce(stmt.excluded[c.name], table.c[c.name])
                      for c in table.columns if c.name not in keys}),
                list(rows.values()))
            s_ = t.training_step.c
            last = conn.execute(select(func.max(s_.step)).where(s_.project_id == project_id,
                                                                 s_.run_id == run_id)).scalar()
            r = t.training_run.c
            conn.execute(update(t.training_run).where(r.project_id == project_id, r.id == run_id)
                         .values(last_step=last, updated_at=now))

        self._write(tx)
        return out

    @staticmethod
    def _steps(conn: Connection, project_id: str, run_id: str) -> list[dict[str, Any]]:
        s = t.training_step.c
        rows = conn.execute(select(t.training_step).where(s.project_id == project_id, s.run_id == run_id)
                            .order_by(s.step)).all()
        return [{"step": x.step, **{k: getattr(x, k) for k in STEP_FIELDS}, **dict(x.extra or {}),
                 "logged_at": x.logged_at} for x in rows]

    def steps(self, project_id: str, run_id: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            self._require(conn, project_id, run_id)
            return self._steps(conn, project_id, run_id)

    # --- sweeps ---------------------------------------------------------------------------------
    def _require_sweep(self, conn: Connection, project_id: str, sweep_id: str) -> Any:
        w = t.training_sweep.c
        row = conn.execute(select(t.training_sweep).where(w.project_id == project_id, w.id == sweep_id)).first()
        if row is None:
            raise NotFound(f"no sweep {sweep_id!r} in this project; `podium tune sweeps list` or "
                           "GET /api/v1/training-sweeps lists them",
                           details=[{"field": "sweep_id", "message": "unknown sweep"}])
        return row

    @staticmethod
    def _sweep_dict(r: Any) -> dict[str, Any]:
        return {"id": r.id, "name": r.name, "status": r.status, "space": dict(r.space or {}),
                "objective": dict(r.objective or {}), "settings": dict(r.settings or {}),
                "best_run_id": r.best_run_id, "summary": dict(r.summary or {}), "created_by": r.created_by,
                "created_at": r.created_at, "updated_at": r.updated_at}

    def create_sweep(self, project_id: str, *, name: str | None = None, space: dict[str, Any] | None = None,
                     objective: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                     actor: str | None = None) -> dict[str, Any]:
        sweep_id = new_id("sweep")

        def tx(conn: Connection) -> None:
            now = _now()
            conn.execute(insert(t.training_sweep).values(
                project_id=project_id, id=sweep_id, name=name, status="running", space=dict(space or {}),
                objective=dict(objective or {}), settings=dict(settings or {}), best_run_id=None, summary={},
                created_by=actor, created_at=now, updated_at=now))

        self._write(tx, "the sweep")
        return self.get_sweep(project_id, sweep_id)

    def get_sweep(self, project_id: str, sweep_id: str, *, runs: bool = False) -> dict[str, Any]:
        with self._engine.connect() as conn:
            out = self._sweep_dict(self._require_sweep(conn, project_id, sweep_id))
        if runs:
            out["runs"] = self.list_runs(project_id, sweep_id=sweep_id, limit=10_000)
        return out

    def list_sweeps(self, project_id: str, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        w = t.training_sweep.c
        q = select(t.training_sweep).where(w.project_id == project_id)
        if status:
            q = q.where(w.status == status)
        with self._engine.connect() as conn:
            rows = conn.execute(q.order_by(w.created_at.desc(), w.id).limit(limit)).all()
            counts: dict[str, int] = dict(conn.execute(
                select(t.training_run.c.sweep_id, func.count()).where(
                    t.training_run.c.project_id == project_id,
                    t.training_run.c.sweep_id.in_([x.id for x in rows]))
                .group_by(t.training_run.c.sweep_id)).tuples().all()) if rows else {}
        return [{**self._sweep_dict(x), "trials": int(counts.get(x.id, 0))} for x in rows]

    def update_sweep(self, project_id: str, sweep_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``status`` (any of :data:`SWEEP_STATUSES`: a resumed sweep runs again), ``best_run_id``
        (a run of this sweep), ``summary`` (merged)."""
        def tx(conn: Connection) -> None:
            row = self._require_sweep(conn, project_id, sweep_id)
            vals: dict[str, Any] = {"updated_at": _now()}
            status = changes.get("status")
            if status is not None:
                if status not in SWEEP_STATUSES:
                    raise BadRequest(f"status must be one of {', '.join(SWEEP_STATUSES)}, not {status!r}",
                                     details=[{"field": "status", "allowed": list(SWEEP_STATUSES)}])
                vals["status"] = status
            best = changes.get("best_run_id")
            if best is not None:
                run = self._require(conn, project_id, best)
                if run.sweep_id != sweep_id:
                    raise BadRequest(f"run {best} is not a trial of sweep {sweep_id}; pick one of its runs "
                                     f"(GET /api/v1/training-sweeps/{sweep_id})",
                                     details=[{"field": "best_run_id", "message": "not a trial of this sweep"}])
                vals["best_run_id"] = best
            if changes.get("summary") is not None:
                vals["summary"] = {**dict(row.summary or {}), **changes["summary"]}
            if "name" in changes and changes["name"] is not None:
                vals["name"] = changes["name"]
            w = t.training_sweep.c
            conn.execute(update(t.training_sweep).where(w.project_id == project_id, w.id == sweep_id).values(**vals))

        self._write(tx, "the sweep")
        return self.get_sweep(project_id, sweep_id)

    def delete_sweep(self, project_id: str, sweep_id: str) -> None:
        """Delete the sweep record; its runs stay (their ``sweep_id`` still names it)."""
        def tx(conn: Connection) -> None:
            self._require_sweep(conn, project_id, sweep_id)
            w = t.training_sweep.c
            conn.execute(delete(t.training_sweep).where(w.project_id == project_id, w.id == sweep_id))

        self._write(tx, "the sweep")
