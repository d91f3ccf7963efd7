"""Canary deployments' storage (``canary``, ``canary_event``) and the live reads their gates
need: per served model name, the gateway spans since a step started (status, latency, the
router's attempts), their online scores and their guardrail decisions.

The rules (steps, weights, gates, what a breach is) live in :mod:`podium.monitor.canary`; this
module stores and reads, every query scoped by project. ``canary_event`` is each canary's audit
trail: one row per change, numbered in sequence.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from podium.errors import Conflict, NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write

__all__ = ["ACTIVE", "CanaryRepo"]

R = TypeVar("R")
#: Statuses that hold the gateway alias (one such canary per alias).
ACTIVE = ("pending", "running", "paused")
_FIELDS = ("gateway_alias", "model_name", "baseline_version", "candidate_version", "steps", "step_index",
           "step_duration_s", "min_requests", "gates", "suite", "status", "promote_alias", "alert_rule",
           "original_spec", "actor", "reason", "step_started_at", "next_check_at", "last_check", "ended_at")


def _now() -> datetime:
    return datetime.now(UTC)


def _dict(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d.pop("project_id", None)
    return d


class CanaryRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, fn: Callable[[Connection], R]) -> R:
        return locked_write(self._engine, fn, what="the canary")

    # --- canaries -------------------------------------------------------------------------------
    def _event(self, conn: Connection, project_id: str, canary_id: str, action: str, detail: dict[str, Any] | None,
               actor: str | None, now: datetime) -> None:
        e = t.canary_event.c
        last = conn.execute(select(func.max(e.seq), func.max(e.created_at)).where(
            e.project_id == project_id, e.canary_id == canary_id)).one()
        now = max(now, last[1]) if last[1] is not None else now  # history order == sequence order
        conn.execute(insert(t.canary_event).values(project_id=project_id, canary_id=canary_id,
                                                   seq=(last[0] or 0) + 1, action=action, detail=detail or {},
                                                   actor=actor, created_at=now))

    def create(self, project_id: str, fields: dict[str, Any], *, actor: str | None,
               event: dict[str, Any] | None = None, on_created: Callable[[Connection], None] | None = None
               ) -> dict[str, Any]:
        """Insert a canary (a ``start`` event with ``event`` as its detail); 409 when the gateway
        alias already has an active one. ``on_created(conn)`` runs in the same transaction (the
        caller rewrites the gateway alias there, so both happen or neither)."""
        cid = fields.get("id") or uuid.uuid4().hex[:12]
        c = t.canary.c

        def tx(conn: Connection) -> None:
            busy = conn.execute(select(c.id, c.status).where(
                c.project_id == project_id, c.gateway_alias == fields["gateway_alias"],
                c.status.in_(ACTIVE))).first()
            if busy is not None:
                raise Conflict(f"gateway alias {fields['gateway_alias']!r} already has an active canary {busy.id} "
                               f"({busy.status}); finish it first (`podium deploy promote|rollback {busy.id}`)",
                               details=[{"field": "gateway_alias", "canary": busy.id}])
            now = _now()
            vals = {k: fields.get(k) for k in _FIELDS}
            vals.update(project_id=project_id, id=cid, actor=actor, created_at=now, updated_at=now)
            vals["step_index"] = vals["step_index"] or 0
            conn.execute(insert(t.canary).values(**vals))
            self._event(conn, project_id, cid, "start", event, actor, now)
            if on_created is not None:
                on_created(conn)

        self._write(tx)
        return self.get(project_id, cid)

    def get(self, project_id: str, canary_id: str) -> dict[str, Any]:
        c = t.canary.c
        with self._engine.connect() as conn:
            r = conn.execute(select(t.canary).where(c.project_id == project_id, c.id == canary_id)).first()
        if r is None:
            raise NotFound(f"no canary {canary_id!r} in this project; `podium deploy list` or GET /api/v1/canaries "
                           "lists them", details=[{"field": "id", "message": "unknown canary"}])
        return _dict(r)

    def list_canaries(self, project_id: str, *, status: str | None = None, gateway_alias: str | None = None,
             model_name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        c = t.canary.c
        q = select(t.canary).where(c.project_id == project_id)
        if status:
            q = q.where(c.status.in_(ACTIVE) if status == "active" else c.status == status)
        if gateway_alias:
            q = q.where(c.gateway_alias == gateway_alias)
        if model_name:
            q = q.where(c.model_name == model_name)
        with self._engine.connect() as conn:
            rows = conn.execute(q.order_by(c.created_at.desc(), c.id).limit(limit)).all()
        return [_dict(r) for r in rows]

    def events(self, project_id: str, canary_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The canary's audit trail in order (oldest first)."""
        e = t.canary_event.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.canary_event).where(e.project_id == project_id, e.canary_id == canary_id)
                                .order_by(e.seq).limit(limit)).all()
        out = []
        for r in rows:
            d = _dict(r)
            d.pop("canary_id", None)
            out.append(d)
        return out

    def transition(self, project_id: str, canary_id: str, *, expect_status: str | tuple[str, ...],
                   expect_step: int | None = None, changes: dict[str, Any], action: str | None,
                   detail: dict[str, Any] | None = None, actor: str | None = None,
                   on_changed: Callable[[Connection], None] | None = None) -> bool:
        """Apply ``changes`` (and record ``action``) if the canary is still in ``expect_status``
        (and at ``expect_step``); False when another worker or a person changed it first.
        ``on_changed(conn)`` runs in the same transaction (the gateway alias rewrite)."""
        c = t.canary.c
        statuses = (expect_status,) if isinstance(expect_status, str) else expect_status
        vals = {k: v for k, v in changes.items() if k in _FIELDS}
        done: list[bool] = []

        def tx(conn: Connection) -> None:
            conds = [c.project_id == project_id, c.id == canary_id, c.status.in_(statuses)]
            if expect_step is not None:
                conds.append(c.step_index == expect_step)
            now = _now()
            res = conn.execute(update(t.canary).where(and_(*conds)).values(**vals, updated_at=now))
            if res.rowcount != 1:
                done.append(False)
                return
            if action is not None:
                self._event(conn, project_id, canary_id, action, detail, actor, now)
            if on_changed is not None:
                on_changed(conn)
            done.append(True)

        self._write(tx)
        return done[0]

    def add_event(self, project_id: str, canary_id: str, action: str, detail: dict[str, Any] | None = None, *,
                  actor: str | None = None, changes: dict[str, Any] | None = None) -> None:
        """Record an event (a ``check``), optionally saving ``changes`` (``last_check``) with it."""
        c = t.canary.c
        vals = {k: v for k, v in (changes or {}).items() if k in _FIELDS}

        def tx(conn: Connection) -> None:
            now = _now()
            if vals:
                conn.execute(update(t.canary).where(c.project_id == project_id, c.id == canary_id)
                             .values(**vals, updated_at=now))
            self._event(conn, project_id, canary_id, action, detail, actor, now)

        self._write(tx)

    def save_check(self, project_id: str, canary_id: str, last_check: dict[str, Any], *, expect_step: int) -> bool:
        """Save the latest check if the canary still runs at that step (False otherwise)."""
        c = t.canary.c
        with self._engine.begin() as conn:
            res = conn.execute(update(t.canary).where(c.project_id == project_id, c.id == canary_id,
                                                      c.status == "running", c.step_index == expect_step)
                               .values(last_check=last_check))
        return bool(res.rowcount)

    def claim_due(self, now: datetime, *, interval_s: float, limit: int = 20) -> list[dict[str, Any]]:
        """Running canaries whose ``next_check_at`` has come, each moved on by ``interval_s`` with
        a compare-and-set: one another worker claimed first is left out."""
        c = t.canary.c
        with self._engine.connect() as conn:
            due = conn.execute(select(t.canary).where(
                c.status == "running", (c.next_check_at.is_(None)) | (c.next_check_at <= now))
                .order_by(c.next_check_at).limit(limit)).all()
        claimed = []
        nxt = now + timedelta(seconds=max(interval_s, 0.05))
        for r in due:
            cond = c.next_check_at.is_(None) if r.next_check_at is None else c.next_check_at == r.next_check_at
            with self._engine.begin() as conn:
                res = conn.execute(update(t.canary).where(
                    c.project_id == r.project_id, c.id == r.id, c.status == "running", cond)
                    .values(next_check_at=nxt))
            if res.rowcount == 1:
                d = dict(r._mapping)
                d["next_check_at"] = nxt
                claimed.append(d)
        return claimed

    def alias_writer(self, project_id: str, alias: str, spec: dict[str, Any], now: datetime
                     ) -> Callable[[Connection], None]:
        """A function that replaces the API-declared gateway alias's stored spec inside a
        transition's transaction (404 when the alias was deleted meanwhile)."""
        def write(conn: Connection) -> None:
            g = t.gateway_model.c
            res = conn.execute(update(t.gateway_model).where(g.project_id == project_id, g.name == alias)
                               .values(spec=spec, updated_at=now))
            if res.rowcount != 1:
                raise NotFound(f"gateway alias {alias!r} was deleted while the canary ran; declare it again with "
                               f"PUT /api/v1/gateway/models/{alias}")
        return write

    def count_active(self) -> int:
        c = t.canary.c
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(c.status.in_(("running", "paused")))).scalar() or 0)

    # --- live reads for the gates --------------------------------------------------------------
    def spans_since(self, project_id: str, models: list[str], since: datetime, *,
                    limit: int = 200_000) -> list[dict[str, Any]]:
        """Gateway spans whose ``model`` is one of ``models`` that started at or after ``since``:
        id, trace id, model, status, latency and the router's attempts (``metadata.gateway``)."""
        s = t.span.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(s.id, s.trace_id, s.model, s.status, s.latency_ms, s.metadata).where(
                s.project_id == project_id, s.model.in_(models), s.start_time >= since,
                s.kind.in_(("generation", "embedding"))).limit(limit)).all()
        out = []
        for r in rows:
            gw = (r.metadata or {}).get("gateway") if isinstance(r.metadata, dict) else None
            gw = gw if isinstance(gw, dict) else {}
            out.append({"id": r.id, "trace_id": r.trace_id, "model": r.model, "status": r.status,
                        "latency_ms": r.latency_ms, "alias": gw.get("alias"),
                        "attempts": gw.get("attempts") if isinstance(gw.get("attempts"), list) else None})
        return out

    def online_scores(self, project_id: str, models: list[str], since: datetime
                      ) -> list[tuple[str, str, str, float]]:
        """``(trace id, span id, score name, value)`` for numeric/boolean scores with source
        ``online`` on the traces of spans whose ``model`` is one of ``models`` (started at or after
        ``since``); a score on another span of the trace is left out."""
        s, sc = t.span.c, t.score.c
        q = (select(s.trace_id, s.id, sc.name, sc.value)
             .select_from(t.score.join(t.span, and_(s.project_id == sc.project_id, s.trace_id == sc.trace_id)))
             .where(sc.project_id == project_id, sc.source == "online", sc.value.is_not(None),
                    sc.data_type.in_(("numeric", "boolean")), s.model.in_(models), s.start_time >= since,
                    (sc.span_id.is_(None)) | (sc.span_id == s.id)))
        with self._engine.connect() as conn:
            return [(r[0], r[1], r[2], float(r[3])) for r in conn.execute(q)]

    def guardrail_actions(self, project_id: str, models: list[str], since: datetime
                          ) -> list[tuple[str, str, str]]:
        """``(trace id, parent span id, action)`` for every guardrail decision under a span whose ``model``
        is one of ``models`` (action: allow, flag, redact, block, ...)."""
        s = t.span.c
        g = t.span.alias("g")
        q = (select(s.trace_id, s.id, g.c.output, g.c.status)
             .select_from(t.span.join(g, and_(g.c.project_id == s.project_id, g.c.trace_id == s.trace_id,
                                              g.c.parent_id == s.id)))
             .where(s.project_id == project_id, s.model.in_(models), s.start_time >= since,
                    g.c.kind == "guardrail"))
        out = []
        with self._engine.connect() as conn:
            for r in conn.execute(q):
                action = (r.output or {}).get("action") if isinstance(r.output, dict) else None
                out.append((r.trace_id, r.id, str(action or ("block" if r.status == "error" else "allow"))))
        return out

    # --- alert rule for rollbacks --------------------------------------------------------------
    def alert_rule(self, project_id: str, ref: str) -> dict[str, Any] | None:
        """An alert rule by id or name (the rule a rollback raises)."""
        a = t.alert_rule.c
        with self._engine.connect() as conn:
            r = conn.execute(select(t.alert_rule).where(a.project_id == project_id, (a.id == ref) | (a.name == ref))
                             ).first()
        return dict(r._mapping) if r is not None else None
