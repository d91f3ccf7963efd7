"""Alert rules and their history (``store.alerts``).

A rule's definition columns belong to the API; its state columns (``state``, ``episode``,
``notified_episode``, ``fired_at``, ``last_*``) to the evaluator (:mod:`podium.monitor.alerting`),
which claims due rules with a compare-and-set on ``next_eval_at`` (two workers never evaluate
the same rule at once) and saves a new state with a compare-and-set on ``(state, episode)`` (a
manual resolve that landed meanwhile wins). Events (fired, resolved, renotified, suppressed,
test, error) are the history, each with the deliveries it made.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from podium.errors import BadRequest, Conflict
from podium.store import tables as t
from podium.store.repos.traces import decode_cursor, encode_cursor

__all__ = ["DEFINITION", "EVENT_STATUSES", "STATE", "AlertRepo"]

#: Columns the API writes.
DEFINITION = ("name", "description", "enabled", "severity", "condition", "kind", "op", "threshold", "params",
              "window_s", "min_samples", "cooldown_s", "renotify_s", "eval_interval_s", "channels")
#: Columns the evaluator writes.
STATE = ("state", "episode", "notified_episode", "fired_at", "last_notified_at", "last_evaluated_at", "last_value",
         "last_error")
EVENT_STATUSES = ("fired", "resolved", "renotified", "suppressed", "test", "error", "muted", "unmuted")


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


class AlertRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- rules ----------------------------------------------------------------------------------

    def list_rules(self, project_id: str) -> list[dict[str, Any]]:
        c = t.alert_rule.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.alert_rule).where(c.project_id == project_id).order_by(c.name))
            return [dict(r._mapping) for r in rows]

    def get_rule(self, project_id: str, ref: str) -> dict[str, Any] | None:
        """A rule by id, else by name."""
        c = t.alert_rule.c
        with self._engine.connect() as conn:
            r = conn.execute(select(t.alert_rule).where(c.project_id == project_id, c.id == ref)).first()
            if r is None:
                r = conn.execute(select(t.alert_rule).where(c.project_id == project_id, c.name == ref)).first()
        return dict(r._mapping) if r is not None else None

    def create_rule(self, project_id: str, fields: dict[str, Any], *, now: datetime,
                    actor: str | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {k: fields.get(k) for k in DEFINITION}
        row.update(project_id=project_id, id=_new_id(), state="ok", episode=0, notified_episode=0,
                   next_eval_at=now, created_by=actor, created_at=now, updated_at=now)
        try:
            with self._engine.begin() as conn:
                conn.execute(t.alert_rule.insert().values(**row))
        except IntegrityError:
            raise Conflict(f"an alert rule named {row['name']!r} already exists in this project; "
                           "PATCH it or pick another name") from None
        return self.get_rule(project_id, row["id"]) or row

    def update_rule(self, project_id: str, rule_id: str, changes: dict[str, Any], *,
                    now: datetime) -> dict[str, Any] | None:
        c = t.alert_rule.c
        values = {k: v for k, v in changes.items() if k in DEFINITION}
        try:
            with self._engine.begin() as conn:
                res = conn.execute(update(t.alert_rule).where(c.project_id == project_id, c.id == rule_id)
                                   .values(**values, updated_at=now, next_eval_at=now))
        except IntegrityError:
            raise Conflict(f"an alert rule named {changes.get('name')!r} already exists in this project; "
                           "pick another name") from None
        return self.get_rule(project_id, rule_id) if res.rowcount else None

    def delete_rule(self, project_id: str, rule_id: str) -> bool:
        c = t.alert_rule.c
        with self._engine.begin() as conn:
            conn.execute(delete(t.alert_event).where(t.alert_event.c.project_id == project_id,
                                                     t.alert_event.c.rule_id == rule_id))
            res = conn.execute(delete(t.alert_rule).where(c.project_id == project_id, c.id == rule_id))
        return bool(res.rowcount)

    def set_muted(self, project_id: str, rule_id: str, until: datetime | None, *, now: datetime,
                  event: dict[str, Any] | None = None) -> bool:
        """Mute until ``until`` (``None``: unmute); the next evaluation is due at once."""
        c = t.alert_rule.c
        with self._engine.begin() as conn:
            res = conn.execute(update(t.alert_rule).where(c.project_id == project_id, c.id == rule_id)
                               .values(muted_until=until, next_eval_at=now))
            if res.rowcount and event is not None:
                conn.execute(t.alert_event.insert().values(**self._event_row(project_id, rule_id, event, now)))
        return bool(res.rowcount)

    # --- evaluation -------------------------------------------------------------------------------

    def claim_due(self, now: datetime, *, limit: int = 50) -> list[dict[str, Any]]:
        """Enabled rules whose ``next_eval_at`` has come, each moved on by its interval with a
        compare-and-set: a rule another worker claimed first is left out."""
        c = t.alert_rule.c
        with self._engine.connect() as conn:
            due = [dict(r._mapping) for r in conn.execute(
                select(t.alert_rule).where(c.next_eval_at <= now, c.enabled.is_(True))
                .order_by(c.next_eval_at).limit(limit))]
        claimed = []
        for r in due:
            nxt = now + timedelta(seconds=max(1, int(r["eval_interval_s"])))
            with self._engine.begin() as conn:
                res = conn.execute(update(t.alert_rule).where(
                    c.project_id == r["project_id"], c.id == r["id"], c.next_eval_at == r["next_eval_at"])
                    .values(next_eval_at=nxt))
            if res.rowcount == 1:
                r["next_eval_at"] = nxt
                claimed.append(r)
        return claimed

    def save_state(self, project_id: str, rule_id: str, *, expect_state: str, expect_episode: int,
                   changes: dict[str, Any], event: dict[str, Any] | None, now: datetime) -> bool:
        """Write the evaluator's columns (and the event) if the state is still the one it read."""
        c = t.alert_rule.c
        values = {k: v for k, v in changes.items() if k in STATE}
        with self._engine.begin() as conn:
            res = conn.execute(update(t.alert_rule).where(
                c.project_id == project_id, c.id == rule_id, c.state == expect_state, c.episode == expect_episode)
                .values(**values))
            if res.rowcount != 1:
                return False
            if event is not None:
                conn.execute(t.alert_event.insert().values(**self._event_row(project_id, rule_id, event, now)))
        return True

    # --- history ----------------------------------------------------------------------------------

    @staticmethod
    def _event_row(project_id: str, rule_id: str, ev: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"project_id": project_id, "id": ev.get("id") or _new_id(), "rule_id": rule_id,
                "status": ev["status"], "episode": int(ev.get("episode") or 0), "value": ev.get("value"),
                "threshold": ev.get("threshold"), "window_start": ev.get("window_start"),
                "window_end": ev.get("window_end"), "message": ev.get("message"), "actor": ev.get("actor"),
                "deliveries": ev.get("deliveries") or [], "created_at": ev.get("created_at") or now}

    def add_event(self, project_id: str, rule_id: str, event: dict[str, Any], *, now: datetime) -> dict[str, Any]:
        row = self._event_row(project_id, rule_id, event, now)
        with self._engine.begin() as conn:
            conn.execute(t.alert_event.insert().values(**row))
        return row

    def events(self, project_id: str, *, rule_id: str | None = None, status: str | None = None,
               since: datetime | None = None, limit: int = 50,
               cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, with the rule's name; ``next_cursor`` when there is more."""
        e, r = t.alert_event.c, t.alert_rule.c
        stmt = (select(t.alert_event, r.name.label("rule_name"), r.severity.label("severity"))
                .join(t.alert_rule, and_(r.project_id == e.project_id, r.id == e.rule_id))
                .where(e.project_id == project_id))
        if rule_id is not None:
            stmt = stmt.where(e.rule_id == rule_id)
        if status is not None:
            stmt = stmt.where(e.status == status)
        if since is not None:
            stmt = stmt.where(e.created_at >= since)
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 2 or not isinstance(vals[0], datetime) or not isinstance(vals[1], str):
                raise BadRequest("invalid cursor; pass the next_cursor value from the previous page unchanged",
                                 details=[{"field": "cursor"}])
            stmt = stmt.where(or_(e.created_at < vals[0], and_(e.created_at == vals[0], e.id < vals[1])))
        stmt = stmt.order_by(e.created_at.desc(), e.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [dict(x._mapping) for x in conn.execute(stmt)]
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = encode_cursor([rows[-1]["created_at"], rows[-1]["id"]])
        for x in rows:
            x.pop("project_id", None)
        return rows, nxt
