"""Guardrail statistics on the columnar span store: ``GuardrailRepo`` with the decisions (spans of
kind ``guardrail``) and the false-positive marks (scores) read from ClickHouse; the numbers are
computed from them in Python as on SQL (inherited ``stats``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from podium.store.columnar.client import ColumnarClient
from podium.store.columnar.rows import from_db
from podium.store.repos.guardrails import FALSE_POSITIVE, GuardrailRepo

__all__ = ["ColumnarGuardrailRepo"]

_TS = "DateTime64(6, 'UTC')"


class ColumnarGuardrailRepo(GuardrailRepo):
    def __init__(self, engine: Engine, client: ColumnarClient) -> None:
        super().__init__(engine)
        self._c = client

    def _decisions(self, project_id: str, start: datetime, end: datetime, limit: int
                   ) -> tuple[int, list[dict[str, Any]], dict[tuple[str, str], str]]:
        params = {"p": project_id, "gs": start, "ge": end}
        where = (f"project_id = {{p:String}} AND kind = 'guardrail' AND start_time >= {{gs:{_TS}}} "
                 f"AND start_time < {{ge:{_TS}}}")
        total = int(self._c.query(f"SELECT count() FROM $db.span FINAL WHERE {where}", params)[0][0])
        rows = [from_db("span", r) for r in self._c.query_dicts(
            "SELECT trace_id, id, name, start_time, status, output, attributes FROM $db.span FINAL "
            f"WHERE {where} ORDER BY start_time DESC, id DESC LIMIT {int(limit)}", params)] if total else []
        fps: dict[tuple[str, str], str] = {}
        for tid, sid, meta in self._c.query(
                "SELECT trace_id, span_id, metadata FROM $db.score FINAL WHERE project_id = {p:String} "
                f"AND name = {{fp:String}} AND timestamp >= {{gs:{_TS}}} AND value > 0 "
                "ORDER BY timestamp DESC LIMIT 10000", {**params, "fp": FALSE_POSITIVE}):
            if tid is None or sid is None:
                continue
            m = json.loads(meta) if meta is not None else None
            fps.setdefault((tid, sid), str((m if isinstance(m, dict) else {}).get("rule") or "?"))
        return total, rows, fps
