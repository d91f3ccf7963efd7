"""Redaction rules: one document per project (``{"rules": [...], "fail_closed": bool}``).

The store keeps the document as sent (validated by :mod:`podium.governance.redaction`);
the server compiles it and caches the compiled rules per project (a short TTL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from podium.store import tables as t

__all__ = ["RedactionRepo"]


class RedactionRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, project_id: str) -> dict[str, Any] | None:
        """The project's document (``rules``, ``fail_closed``, ``updated_by``, ``updated_at``),
        or None when none was ever set (no redaction)."""
        r = t.redaction_rules.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(r.rules, r.fail_closed, r.updated_by, r.updated_at).where(r.project_id == project_id)
            ).first()
        if row is None:
            return None
        return {"rules": list(row.rules or []), "fail_closed": bool(row.fail_closed),
                "updated_by": row.updated_by, "updated_at": row.updated_at}

    def put(self, project_id: str, rules: list[dict[str, Any]], *, fail_closed: bool,
            updated_by: str | None = None) -> dict[str, Any]:
        """Replace the project's document (an upsert in one transaction); returns it as stored."""
        r = t.redaction_rules.c
        now = datetime.now(UTC)
        values = {"rules": rules, "fail_closed": fail_closed, "updated_by": updated_by, "updated_at": now}
        with self._engine.begin() as conn:
            n = conn.execute(update(t.redaction_rules).where(r.project_id == project_id).values(**values)).rowcount
            if not n:
                conn.execute(insert(t.redaction_rules).values(project_id=project_id, **values))
        return {"rules": rules, "fail_closed": fail_closed, "updated_by": updated_by, "updated_at": now}

    def clear(self, project_id: str) -> bool:
        """Remove the project's rules (redaction off). True when there were some."""
        with self._engine.begin() as conn:
            n = conn.execute(delete(t.redaction_rules).where(t.redaction_rules.c.project_id == project_id)).rowcount
        return bool(n)
