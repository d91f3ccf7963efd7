"""Score configs: typed score definitions (numeric with a range, boolean, categorical with allowed
values) and the check a score passes at ingestion when it names one or its name matches one.

The check runs on the ingest hot path, so it works on :class:`ScoreConfigs`, an immutable snapshot
of one project's configs that the server caches (and drops when a config changes).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from podium.core.records import ScoreIn
from podium.errors import Conflict, ValidationFailed
from podium.store import tables as t

__all__ = ["CONFIG_TYPES", "ScoreConfigRepo", "ScoreConfigs", "check_config"]

CONFIG_TYPES = ("numeric", "boolean", "categorical")

def check_config(c: dict[str, Any]) -> dict[str, Any]:
    """A config's fields made consistent (raises ValidationFailed with a fix when they are not)."""
    dt = c.get("data_type")
    if dt not in CONFIG_TYPES:
        raise ValidationFailed(f"data_type must be one of {', '.join(CONFIG_TYPES)}",
                               details=[{"field": "data_type", "message": "unknown data type"}])
    lo, hi, cats = c.get("min_value"), c.get("max_value"), c.get("categories")
    if dt == "numeric":
        if lo is not None and hi is not None and lo > hi:
            raise ValidationFailed(f"min_value {lo} is above max_value {hi}; swap them",
                                   details=[{"field": "min_value", "message": "above max_value"}])
        if cats:
            raise ValidationFailed("categories are for categorical configs; drop them or use data_type categorical",
                                   details=[{"field": "categories", "message": "not allowed for numeric"}])
    else:
        if lo is not None or hi is not None:
            raise ValidationFailed(f"min_value/max_value are for numeric configs, not {dt}; drop them",
                                   details=[{"field": "min_value", "message": f"not allowed for {dt}"}])
    if dt == "categorical":
        if not cats:
            raise ValidationFailed('a categorical config needs categories: [{"label": "good", "value": 1}, ...]',
                                   details=[{"field": "categories", "message": "required"}])
        labels = [x["label"] for x in cats]
        values = [x["value"] for x in cats]
        if len(set(labels)) != len(labels) or len(set(values)) != len(values):
            raise ValidationFailed("category labels and values must each be unique",
                                   details=[{"field": "categories", "message": "duplicate label or value"}])
    elif dt == "boolean" and cats:
        raise ValidationFailed("categories are for categorical configs; a boolean config takes true/false",
                               details=[{"field": "categories", "message": "not allowed for boolean"}])
    return c

def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)

@dataclass(frozen=True)
class Checked:
    """A score as it will be stored: data type, numeric value, string value."""

    data_type: str
    value: float | None
    string_value: str | None

@dataclass(frozen=True)
class ScoreConfigs:
    """One project's configs: every config by id, the non-archived ones by name."""

    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_name: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> ScoreConfigs:
        return cls({r["id"]: r for r in rows}, {r["name"]: r for r in rows if not r["archived"]})

    def config_for(self, sc: ScoreIn) -> dict[str, Any] | None:
        if sc.config_id is not None:
            c = self.by_id.get(sc.config_id)
            if c is None:
                raise ValidationFailed(f"score config {sc.config_id!r} does not exist in this project; "
                                       "GET /api/v1/score-configs lists them",
                                       details=[{"field": "config_id", "message": "unknown score config"}])
            if c["archived"]:
                raise ValidationFailed(f"score config {c['name']!r} ({c['id']}) is archived; unarchive it with "
                                       f"PATCH /api/v1/score-configs/{c['id']} or drop config_id",
                                       details=[{"field": "config_id", "message": "archived score config"}])
            if c["name"] != sc.name:
                raise ValidationFailed(f"score name {sc.name!r} differs from config {c['id']}'s name "
                                       f"{c['name']!r}; send name {c['name']!r}",
                                       details=[{"field": "name", "message": "does not match the config"}])
            return c
        return self.by_name.get(sc.name)

    def check(self, sc: ScoreIn) -> Checked | None:
        """The score's stored form under its config, or None when no config applies; raises
        ValidationFailed naming the config and what it allows. The config's data type wins over
        the score's (inferred) one."""
        c = self.config_for(sc)
        if c is None:
            return None
        dt, name = c["data_type"], f"score config {c['name']!r}"
        v = sc.value
        if dt == "numeric":
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValidationFailed(f"{name} is numeric: send a number, not {v!r}",
                                       details=[{"field": "value", "message": "must be a number"}])
            lo, hi = c["min_value"], c["max_value"]
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                rng = f"[{_fmt(lo) if lo is not None else '-inf'}, {_fmt(hi) if hi is not None else 'inf'}]"
                raise ValidationFailed(f"value {_fmt(v)} is outside {name}'s range {rng}",
                                       details=[{"field": "value", "message": f"must be within {rng}"}])
            return Checked("numeric", float(v), None)
        if dt == "boolean":
            if isinstance(v, bool):
                return Checked("boolean", float(v), None)
            if isinstance(v, int | float) and v in (0, 1):
                return Checked("boolean", float(v), None)
            raise ValidationFailed(f"{name} is boolean: send true or false (or 1/0), not {v!r}",
                                   details=[{"field": "value", "message": "must be true or false"}])
        cats = c["categories"] or []
        num: float | None = None
        if isinstance(v, str):  # a categorical score's number arrives as a string ("2")
            try:
                num = float(v)
            except ValueError:
                num = None
        elif not isinstance(v, bool):
            num = float(v)
        for cat in cats:
            if (isinstance(v, str) and v == cat["label"]) or (num is not None and num == cat["value"]):
                return Checked("categorical", float(cat["value"]), cat["label"])
        allowed = ", ".join(f"{x['label']!r} ({_fmt(x['value'])})" for x in cats)
        raise ValidationFailed(f"value {v!r} is not a category of {name}; allowed: {allowed}",
                               details=[{"field": "value", "message": "not an allowed category"}])

_COLS = ("name", "data_type", "min_value", "max_value", "categories", "description", "archived")

class ScoreConfigRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list(self, project_id: str, *, include_archived: bool = True) -> list[dict[str, Any]]:
        c = t.score_config.c
        stmt = select(t.score_config).where(c.project_id == project_id)
        if not include_archived:
            stmt = stmt.where(c.archived.is_(False))
        with self._engine.connect() as conn:
            return [_row(dict(r._mapping)) for r in conn.execute(stmt.order_by(c.name))]

    def snapshot(self, project_id: str) -> ScoreConfigs:
        return ScoreConfigs.of(self.list(project_id))

    def get(self, project_id: str, config_id: str) -> dict[str, Any] | None:
        c = t.score_config.c
        with self._engine.connect() as conn:
            r = conn.execute(select(t.score_config).where(c.project_id == project_id, c.id == config_id)).first()
        return _row(dict(r._mapping)) if r is not None else None

    def create(self, project_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        row = {"project_id": project_id, "id": str(uuid.uuid4()), "created_at": now, "updated_at": now,
               **{k: fields.get(k) for k in _COLS}}
        row["archived"] = bool(row["archived"])
        check_config(row)
        try:
            with self._engine.begin() as conn:
                conn.execute(t.score_config.insert().values(**row))
        except IntegrityError:
            raise Conflict(f"a score config named {row['name']!r} already exists in this project; "
                           "PATCH it or pick another name") from None
        return _row(row)

    def update(self, project_id: str, config_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
        cur = self.get(project_id, config_id)
        if cur is None:
            return None
        new = {**cur, **{k: v for k, v in changes.items() if k in _COLS}}
        check_config(new)
        c = t.score_config.c
        try:
            with self._engine.begin() as conn:
                conn.execute(update(t.score_config).where(c.project_id == project_id, c.id == config_id)
                             .values(**{k: new[k] for k in _COLS}, updated_at=datetime.now(UTC)))
        except IntegrityError:
            raise Conflict(f"a score config named {new['name']!r} already exists in this project; "
                           "pick another name") from None
        return self.get(project_id, config_id)

def _row(r: dict[str, Any]) -> dict[str, Any]:
    r.pop("project_id", None)
    r["archived"] = bool(r["archived"])
    return r
