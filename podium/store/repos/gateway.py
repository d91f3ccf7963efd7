"""Gateway state that outlives a process: API-declared model aliases and persisted spend."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from podium.errors import NotFound
from podium.store import tables as t

__all__ = ["GatewayRepo"]


class GatewayRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- model aliases ------------------------------------------------------------------------
    def list_models(self, project_id: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.gateway_model).where(t.gateway_model.c.project_id == project_id)
                .order_by(t.gateway_model.c.name)
            ).all()
        return [dict(r._mapping) for r in rows]

    def put_model(self, project_id: str, name: str, spec: dict[str, Any]) -> bool:
        """Create or replace an alias; True when it was created."""
        now = datetime.now(UTC)
        key = (t.gateway_model.c.project_id == project_id) & (t.gateway_model.c.name == name)
        with self._engine.begin() as conn:
            res = conn.execute(update(t.gateway_model).where(key).values(spec=spec, updated_at=now))
            if res.rowcount:
                return False
            conn.execute(
                insert(t.gateway_model).values(
                    project_id=project_id, name=name, spec=spec, created_at=now, updated_at=now
                )
            )
        return True

    def delete_model(self, project_id: str, name: str) -> None:
        key = (t.gateway_model.c.project_id == project_id) & (t.gateway_model.c.name == name)
        with self._engine.begin() as conn:
            if not conn.execute(delete(t.gateway_model).where(key)).rowcount:
                raise NotFound(f"no model alias {name!r} declared through the API in this project")

    # --- spend ----------------------------------------------------------------------------------
    def load_spend(self, periods: Iterable[str]) -> list[tuple[str, str, str, float]]:
        """(scope_kind, scope_id, period, amount) for the given period keys."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    t.gateway_spend.c.scope_kind, t.gateway_spend.c.scope_id,
                    t.gateway_spend.c.period, t.gateway_spend.c.amount,
                ).where(t.gateway_spend.c.period.in_(list(periods)))
            ).all()
        return [(r[0], r[1], r[2], float(r[3])) for r in rows]

    def add_spend(self, deltas: dict[tuple[str, str, str], float]) -> None:
        """Add amounts to (scope_kind, scope_id, period) rows in one transaction."""
        if not deltas:
            return
        now = datetime.now(UTC)
        s = t.gateway_spend
        ins = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        rows = [
            {"scope_kind": k, "scope_id": i, "period": p, "amount": Decimal(repr(a)), "updated_at": now}
            for (k, i, p), a in deltas.items()
        ]
        stmt = ins(s)
        stmt = stmt.on_conflict_do_update(
            index_elements=[s.c.scope_kind, s.c.scope_id, s.c.period],
            set_={"amount": s.c.amount + stmt.excluded.amount, "updated_at": stmt.excluded.updated_at},
        )
        with self._engine.begin() as conn:
            conn.execute(stmt, rows)
