"""Context attributions of a trace's answer (``attribution`` table, migration 0023).

One row per run: which generation span, which retrieval span, the method and the result document
built by :class:`podium.rag.attribution.Attribution` (chunks ranked by weight, sentences, fit).
Rows are deleted with their trace (foreign key, ON DELETE CASCADE).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from podium.store import tables as t

__all__ = ["AttributionRepo"]


class AttributionRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, project_id: str, *, trace_id: str, span_id: str, retrieval_span_id: str, method: str,
            level: str, result: dict[str, Any], passes: int, seconds: float, model: str | None = None,
            created_by: str | None = None) -> dict[str, Any]:
        """Store one attribution; returns it as :meth:`get` would."""
        row = {"project_id": project_id, "id": uuid.uuid4().hex, "trace_id": trace_id, "span_id": span_id,
               "retrieval_span_id": retrieval_span_id, "method": method, "level": level, "model": model,
               "top_chunk": (str(result.get("top_chunk"))[:500] if result.get("top_chunk") is not None else None),
               "passes": int(passes), "seconds": float(seconds), "result": result, "created_by": created_by,
               "created_at": datetime.now(UTC)}
        with self._engine.begin() as conn:
            conn.execute(insert(t.attribution).values(**row))
        return _public(row)

    def get(self, project_id: str, attribution_id: str) -> dict[str, Any] | None:
        a = t.attribution.c
        with self._engine.connect() as conn:
            row = conn.execute(select(t.attribution).where(a.project_id == project_id,
                                                           a.id == attribution_id)).first()
        return _public(dict(row._mapping)) if row is not None else None

    def for_trace(self, project_id: str, trace_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """A trace's attributions, newest first."""
        a = t.attribution.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.attribution).where(a.project_id == project_id, a.trace_id == trace_id)
                                .order_by(a.created_at.desc(), a.id).limit(limit)).all()
        return [_public(dict(r._mapping)) for r in rows]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "project_id"}
