"""Projects and API keys. Secrets are shown once and stored as sha256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from podium.core.roles import ROLES as _ROLES
from podium.errors import Conflict, NotFound, ValidationFailed
from podium.store import tables as t

__all__ = ["ROLES", "ApiKey", "NewKey", "Project", "ProjectRepo", "hash_secret"]

#: admin: everything; member: read + write; ingest: write traces only; viewer: read only;
#: gateway: call the model gateway only (a "virtual key": give it limits and a model list).
ROLES = _ROLES


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    project_id: str
    public_key: str
    secret_hint: str
    role: str
    note: str | None
    created_at: datetime
    revoked_at: datetime | None
    limits: dict[str, Any] | None = None  # gateway limits of this key (rpm, tpm, budgets...)
    models: list[str] | None = None  # model aliases this key may call through the gateway (None: all)
    guardrails: str | None = None  # guardrail policy of this key's gateway calls ("off": none; None: inherit)


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret_key: str  # shown once, never stored


class ProjectRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- projects ----------------------------------------------------------------------
    def create_project(self, name: str) -> Project:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed("project name must be 1-200 characters")
        p = Project(id=str(uuid.uuid4()), name=name, created_at=datetime.now(UTC))
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(t.project).values(id=p.id, name=p.name, created_at=p.created_at))
        except IntegrityError:
            raise Conflict(f"a project named {name!r} already exists; pick another name")
        return p

    def list_projects(self) -> list[Project]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.project).order_by(t.project.c.created_at)).all()
        return [Project(id=r.id, name=r.name, created_at=r.created_at) for r in rows]

    def get_project(self, name_or_id: str) -> Project:
        with self._engine.connect() as conn:
            r = conn.execute(
                select(t.project).where((t.project.c.id == name_or_id) | (t.project.c.name == name_or_id))
            ).first()
        if r is None:
            raise NotFound(f"no project {name_or_id!r}; list them with `podium projects list`")
        return Project(id=r.id, name=r.name, created_at=r.created_at)

    # --- keys ----------------------------------------------------------------------------
    def create_key(
        self,
        project_id: str,
        *,
        role: str = "admin",
        note: str | None = None,
        limits: dict[str, Any] | None = None,
        models: list[str] | None = None,
        guardrails: str | None = None,
    ) -> NewKey:
        if role not in ROLES:
            raise ValidationFailed(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
        public = "pk-pd-" + secrets.token_hex(12)
        secret = "sk-pd-" + secrets.token_urlsafe(32)
        key = ApiKey(
            id=str(uuid.uuid4()),
            project_id=project_id,
            public_key=public,
            secret_hint=secret[:6] + "..." + secret[-4:],
            role=role,
            note=note,
            created_at=datetime.now(UTC),
            revoked_at=None,
            limits=limits or None,
            models=models,
            guardrails=guardrails,
        )
        with self._engine.begin() as conn:
            if conn.execute(select(t.project.c.id).where(t.project.c.id == project_id)).first() is None:
                raise NotFound(f"no project with id {project_id!r}")
            conn.execute(
                insert(t.api_key).values(
                    id=key.id,
                    project_id=project_id,
                    public_key=public,
                    secret_hash=hash_secret(secret),
                    secret_hint=key.secret_hint,
                    role=role,
                    note=note,
                    created_at=key.created_at,
                    limits=key.limits,
                    models=models,
                    guardrails=guardrails,
                )
            )
        return NewKey(key=key, secret_key=secret)

    def list_keys(self, project_id: str) -> list[ApiKey]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.api_key).where(t.api_key.c.project_id == project_id).order_by(t.api_key.c.created_at)
            ).all()
        return [_key(r) for r in rows]

    def revoke_key(self, project_id: str | None, public_key: str) -> ApiKey:
        cond = t.api_key.c.public_key == public_key
        if project_id is not None:
            cond = cond & (t.api_key.c.project_id == project_id)
        with self._engine.begin() as conn:
            res = conn.execute(
                update(t.api_key).where(cond, t.api_key.c.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC))
            )
            r = conn.execute(select(t.api_key).where(cond)).first()
        if r is None:
            raise NotFound(f"no key {public_key!r} in this project; list keys with `podium keys list`")
        _ = res
        return _key(r)

    def update_key(
        self,
        project_id: str,
        public_key: str,
        *,
        limits: dict[str, Any] | _Unset | None = ...,
        models: list[str] | _Unset | None = ...,
        note: str | _Unset | None = ...,
        guardrails: str | _Unset | None = ...,
    ) -> ApiKey:
        """Change a key's gateway limits, model list, note or guardrail policy (``...`` leaves a
        field as is)."""
        values: dict[str, Any] = {}
        if limits is not ...:
            values["limits"] = limits or None
        if models is not ...:
            values["models"] = models
        if note is not ...:
            values["note"] = note
        if guardrails is not ...:
            values["guardrails"] = guardrails
        cond = (t.api_key.c.public_key == public_key) & (t.api_key.c.project_id == project_id)
        with self._engine.begin() as conn:
            if values:
                conn.execute(update(t.api_key).where(cond).values(**values))
            r = conn.execute(select(t.api_key).where(cond)).first()
        if r is None:
            raise NotFound(f"no key {public_key!r} in this project; list keys with `podium keys list`")
        return _key(r)

    def project_limits(self, project_id: str) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            return conn.execute(
                select(t.project.c.gateway_limits).where(t.project.c.id == project_id)
            ).scalar()

    def set_project_limits(self, project_id: str, limits: dict[str, Any] | None) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(t.project).where(t.project.c.id == project_id).values(gateway_limits=limits or None))

    def project_guardrails(self, project_id: str) -> dict[str, Any]:
        """The project's guardrail settings: ``{"default": name | "off" | None, "policies": {name: spec}}``."""
        with self._engine.connect() as conn:
            raw = conn.execute(select(t.project.c.guardrails).where(t.project.c.id == project_id)).scalar()
        raw = raw if isinstance(raw, dict) else {}
        policies = raw.get("policies")
        return {"default": raw.get("default"), "policies": dict(policies) if isinstance(policies, dict) else {}}

    def set_project_guardrails(self, project_id: str, data: dict[str, Any]) -> None:
        """Replace the project's guardrail settings (the whole ``{"default", "policies"}`` object)."""
        value = {"default": data.get("default"), "policies": dict(data.get("policies") or {})}
        with self._engine.begin() as conn:
            res = conn.execute(update(t.project).where(t.project.c.id == project_id).values(guardrails=value))
        if res.rowcount == 0:
            raise NotFound(f"no project with id {project_id!r}")

    def revocation_marker(self) -> tuple[int, datetime | None]:
        """(revoked keys, latest revocation): a cheap value that changes whenever any key is
        revoked, by this process or another (the CLI writes the database directly)."""
        from sqlalchemy import func

        with self._engine.connect() as conn:
            r = conn.execute(
                select(func.count(), func.max(t.api_key.c.revoked_at)).where(t.api_key.c.revoked_at.is_not(None))
            ).one()
        return int(r[0]), r[1]

    def by_public_key(self, public_key: str) -> ApiKey | None:
        """The active key whose public key is ``public_key`` (the feedback endpoint accepts the
        public key alone, and grants it nothing but writing feedback)."""
        with self._engine.connect() as conn:
            r = conn.execute(select(t.api_key).where(t.api_key.c.public_key == public_key)).first()
        return None if r is None or r.revoked_at is not None else _key(r)

    def authenticate(self, secret_key: str, public_key: str | None = None) -> ApiKey | None:
        """The active key whose secret is ``secret_key`` (and whose public key matches, if given)."""
        with self._engine.connect() as conn:
            r = conn.execute(select(t.api_key).where(t.api_key.c.secret_hash == hash_secret(secret_key))).first()
        if r is None or r.revoked_at is not None:
            return None
        if public_key is not None and r.public_key != public_key:
            return None
        return _key(r)


_Unset = EllipsisType  # `...` in a keyword: leave the field as is


def _key(r: Row[Any]) -> ApiKey:
    return ApiKey(
        id=r.id,
        project_id=r.project_id,
        public_key=r.public_key,
        secret_hint=r.secret_hint,
        role=r.role,
        note=r.note,
        created_at=r.created_at,
        revoked_at=r.revoked_at,
        limits=r.limits,
        models=r.models,
        guardrails=getattr(r, "guardrails", None),
    )
