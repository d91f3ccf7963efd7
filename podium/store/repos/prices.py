"""Per-project model price overrides (USD per 1M tokens)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, select

from podium.errors import NotFound
from podium.store import tables as t
from podium.store.repos.ingest import _insert

__all__ = ["PriceRepo"]


class PriceRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list(self, project_id: str) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.model_price).where(t.model_price.c.project_id == project_id).order_by(t.model_price.c.model)
            ).all()
        return [dict(r._mapping) for r in rows]

    def put(
        self,
        project_id: str,
        model: str,
        *,
        input_per_million: Decimal,
        output_per_million: Decimal,
        cached_input_per_million: Decimal | None = None,
    ) -> dict[str, Any]:
        row = {
            "project_id": project_id,
            "model": model,
            "input_per_million": input_per_million,
            "output_per_million": output_per_million,
            "cached_input_per_million": cached_input_per_million,
            "updated_at": datetime.now(UTC),
        }
        with self._engine.begin() as conn:
            stmt = _insert(conn, t.model_price)
            stmt = stmt.on_conflict_do_update(
                index_elements=["project_id", "model"],
                set_={k: stmt.excluded[k] for k in row if k not in ("project_id", "model")},
            )
            conn.execute(stmt, row)
        return row

    def delete(self, project_id: str, model: str) -> None:
        with self._engine.begin() as conn:
            res = conn.execute(
                delete(t.model_price).where(t.model_price.c.project_id == project_id, t.model_price.c.model == model)
            )
        if res.rowcount == 0:
            raise NotFound(f"no price override for model {model!r}; list them with GET /api/v1/prices")
