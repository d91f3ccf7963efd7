"""The model registry's storage: registered models, their immutable numbered versions, aliases
and every alias move (``model_alias_event``), with one-call rollback shaped like prompt labels.

Rules on names, references and artifacts live in :mod:`podium.registry`; this module only stores
and reads (every query scoped by project).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from podium.errors import Conflict, NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write

__all__ = ["ModelRepo"]

R = TypeVar("R")
_VERSION_PATCH = ("description", "metadata", "status")


def _now() -> datetime:
    return datetime.now(UTC)


class ModelRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, fn: Callable[[Connection], R]) -> R:
        return locked_write(self._engine, fn, what="the registered model")

    # --- models ---------------------------------------------------------------------------------
    def _require(self, conn: Connection, project_id: str, name: str, *, lock: bool = False) -> Any:
        m = t.registered_model.c
        q = select(t.registered_model).where(m.project_id == project_id, m.name == name)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise NotFound(f"no registered model {name!r} in this project; `podium registry list` or "
                           "GET /api/v1/registry/models lists them",
                           details=[{"field": "name", "message": "unknown model"}])
        return row

    def _aliases(self, conn: Connection, project_id: str, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        a = t.model_alias.c
        q = select(t.model_alias).where(a.project_id == project_id)
        if names is not None:
            q = q.where(a.name.in_(names))
        out: dict[str, dict[str, Any]] = {}
        for r in conn.execute(q.order_by(a.alias)):
            out.setdefault(r.name, {})[r.alias] = {"version": r.version, "updated_at": r.updated_at,
                                                   "updated_by": r.updated_by}
        return out

    def _model_dict(self, r: Any, aliases: dict[str, Any]) -> dict[str, Any]:
        return {"name": r.name, "description": r.description, "tags": list(r.tags or []),
                "latest_version": r.latest_version, "aliases": {k: v["version"] for k, v in aliases.items()},
                "created_by": r.created_by, "created_at": r.created_at, "updated_at": r.updated_at}

    def list_models(self, project_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        m = t.registered_model.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.registered_model).where(m.project_id == project_id)
                                .order_by(m.name).limit(limit)).all()
            aliases = self._aliases(conn, project_id, [r.name for r in rows])
        return [self._model_dict(r, aliases.get(r.name, {})) for r in rows]

    def get_model(self, project_id: str, name: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            r = self._require(conn, project_id, name)
            aliases = self._aliases(conn, project_id, [name])
        return self._model_dict(r, aliases.get(name, {}))

    def create_model(self, project_id: str, name: str, *, description: str | None = None,
                     tags: list[str] | None = None, actor: str | None = None) -> dict[str, Any]:
        def tx(conn: Connection) -> None:
            m = t.registered_model.c
            if conn.execute(select(m.name).where(m.project_id == project_id, m.name == name)).first() is not None:
                raise Conflict(f"a registered model named {name!r} already exists in this project; "
                               "register a new version of it or pick another name")
            now = _now()
            conn.execute(insert(t.registered_model).values(
                project_id=project_id, name=name, description=description, tags=list(tags or []),
                latest_version=0, created_by=actor, created_at=now, updated_at=now))

        self._write(tx)
        return self.get_model(project_id, name)

    def update_model(self, project_id: str, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        vals = {k: v for k, v in changes.items() if k in ("description", "tags")}

        def tx(conn: Connection) -> None:
            self._require(conn, project_id, name, lock=True)
            m = t.registered_model.c
            conn.execute(update(t.registered_model).where(m.project_id == project_id, m.name == name)
                         .values(**vals, updated_at=_now()))

        self._write(tx)
        return self.get_model(project_id, name)

    def delete_model(self, project_id: str, name: str) -> None:
        def tx(conn: Connection) -> None:
            self._require(conn, project_id, name, lock=True)
            for table in (t.model_alias_event, t.model_alias, t.model_version):
                conn.execute(delete(table).where(table.c.project_id == project_id, table.c.name == name))
            m = t.registered_model.c
            conn.execute(delete(t.registered_model).where(m.project_id == project_id, m.name == name))

        self._write(tx)

    # --- versions -------------------------------------------------------------------------------
    def _version_dict(self, r: Any, aliases: dict[str, Any]) -> dict[str, Any]:
        return {"name": r.name, "version": r.version, "artifact": dict(r.artifact or {}),
                "base_model": r.base_model, "training_run_id": r.training_run_id,
                "dataset": ({"name": r.dataset_name, "version": r.dataset_version} if r.dataset_name else None),
                "eval_results": list(r.eval_results or []), "metadata": dict(r.metadata or {}),
                "description": r.description, "status": r.status,
                "aliases": sorted(k for k, v in aliases.items() if v["version"] == r.version),
                "created_by": r.created_by, "created_at": r.created_at, "updated_at": r.updated_at}

    def create_version(self, project_id: str, name: str, fields: dict[str, Any], *, actor: str | None = None,
                       create_model: bool = True, expected_version: int | None = None) -> dict[str, Any]:
        """Add version latest+1 (creating the model first when ``create_model`` and it is new).
        ``fields``: artifact, base_model, training_run_id, dataset_name, dataset_version,
        eval_results, metadata, description. ``expected_version``: refuse (409) unless the new
        version gets that number (a client that named a folder after it)."""
        out: list[int] = []

        def tx(conn: Connection) -> None:
            m = t.registered_model.c
            now = _now()
            row = conn.execute(select(t.registered_model).where(m.project_id == project_id, m.name == name)
                               .with_for_update()).first()
            if row is None:
                if not create_model:
                    self._require(conn, project_id, name)
                conn.execute(insert(t.registered_model).values(
                    project_id=project_id, name=name, description=None, tags=[], latest_version=0,
                    created_by=actor, created_at=now, updated_at=now))
                latest = 0
            else:
                latest = row.latest_version
            v = latest + 1
            if expected_version is not None and expected_version != v:
                raise Conflict(f"model {name!r} would get version {v}, not {expected_version} (another version was "
                               "registered meanwhile); retry with the new number",
                               details=[{"field": "expected_version", "next_version": v}])
            conn.execute(insert(t.model_version).values(
                project_id=project_id, name=name, version=v, artifact=fields["artifact"],
                base_model=fields.get("base_model"), training_run_id=fields.get("training_run_id"),
                dataset_name=fields.get("dataset_name"), dataset_version=fields.get("dataset_version"),
                eval_results=fields.get("eval_results") or [], metadata=fields.get("metadata") or {},
                description=fields.get("description"), status="ready", created_by=actor,
                created_at=now, updated_at=now))
            conn.execute(update(t.registered_model).where(m.project_id == project_id, m.name == name)
                         .values(latest_version=v, updated_at=now))
            out.append(v)

        self._write(tx)
        return self.get_version(project_id, name, out[0])

    def list_versions(self, project_id: str, name: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        mv = t.model_version.c
        with self._engine.connect() as conn:
            self._require(conn, project_id, name)
            rows = conn.execute(select(t.model_version).where(mv.project_id == project_id, mv.name == name)
                                .order_by(mv.version.desc()).limit(limit)).all()
            aliases = self._aliases(conn, project_id, [name]).get(name, {})
        return [self._version_dict(r, aliases) for r in rows]

    def get_version(self, project_id: str, name: str, version: int) -> dict[str, Any]:
        mv = t.model_version.c
        with self._engine.connect() as conn:
            model = self._require(conn, project_id, name)
            r = conn.execute(select(t.model_version).where(
                mv.project_id == project_id, mv.name == name, mv.version == version)).first()
            if r is None:
                have = f"1 to {model.latest_version}" if model.latest_version else "none yet"
                raise NotFound(f"model {name!r} has no version {version}; its versions: {have}",
                               details=[{"field": "version", "message": "unknown version"}])
            aliases = self._aliases(conn, project_id, [name]).get(name, {})
        return self._version_dict(r, aliases)

    def update_version(self, project_id: str, name: str, version: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change only description / metadata / status; the artifact and lineage are immutable."""
        vals = {k: v for k, v in changes.items() if k in _VERSION_PATCH}
        self.get_version(project_id, name, version)
        mv = t.model_version.c

        def tx(conn: Connection) -> None:
            conn.execute(update(t.model_version).where(
                mv.project_id == project_id, mv.name == name, mv.version == version).values(**vals, updated_at=_now()))

        self._write(tx)
        return self.get_version(project_id, name, version)

    # --- aliases --------------------------------------------------------------------------------
    def aliases(self, project_id: str, name: str) -> dict[str, dict[str, Any]]:
        with self._engine.connect() as conn:
            self._require(conn, project_id, name)
            return self._aliases(conn, project_id, [name]).get(name, {})

    def _move(self, conn: Connection, project_id: str, name: str, alias: str, to: int | None, *,
              actor: str | None, comment: str | None, action: str) -> bool:
        a, e = t.model_alias.c, t.model_alias_event.c
        where = (a.project_id == project_id, a.name == name, a.alias == alias)
        cur = conn.execute(select(t.model_alias).where(*where)).first()
        before = cur.version if cur is not None else None
        if before == to:
            return False
        now = _now()
        if to is None:
            conn.execute(delete(t.model_alias).where(*where))
        elif cur is None:
            conn.execute(insert(t.model_alias).values(project_id=project_id, name=name, alias=alias, version=to,
                                                      updated_by=actor, updated_at=now))
        else:
            conn.execute(update(t.model_alias).where(*where).values(version=to, updated_by=actor, updated_at=now))
        last = conn.execute(select(func.max(e.seq), func.max(e.created_at)).where(
            e.project_id == project_id, e.name == name, e.alias == alias)).one()
        seq = (last[0] or 0) + 1
        now = max(now, last[1]) if last[1] is not None else now  # history order == sequence order
        conn.execute(insert(t.model_alias_event).values(
            project_id=project_id, name=name, alias=alias, seq=seq, action=action, from_version=before,
            to_version=to, actor=actor, comment=comment, created_at=now))
        return True

    def _no_alias(self, conn: Connection, project_id: str, name: str, alias: str) -> NotFound:
        have = sorted(self._aliases(conn, project_id, [name]).get(name, {}))
        return NotFound(f"model {name!r} has no alias {alias!r}; its aliases: {', '.join(have) or 'none'} "
                        f"(set one with `podium registry alias {name} {alias} VERSION`)",
                        details=[{"field": "alias", "available": have}])

    def set_alias(self, project_id: str, name: str, alias: str, version: int, *, actor: str | None = None,
                  comment: str | None = None) -> dict[str, Any]:
        mv = t.model_version.c

        def tx(conn: Connection) -> None:
            model = self._require(conn, project_id, name, lock=True)
            r = conn.execute(select(mv.status).where(mv.project_id == project_id, mv.name == name,
                                                     mv.version == version)).first()
            if r is None:
                have = f"1 to {model.latest_version}" if model.latest_version else "none yet"
                raise NotFound(f"model {name!r} has no version {version}; its versions: {have}",
                               details=[{"field": "version", "message": "unknown version"}])
            if r.status == "archived":
                raise Conflict(f"version {version} of model {name!r} is archived; unarchive it first "
                               f"(PATCH .../versions/{version} {{\"status\": \"ready\"}}) or pick another version")
            self._move(conn, project_id, name, alias, version, actor=actor, comment=comment, action="set")

        self._write(tx)
        return self.get_alias(project_id, name, alias)

    def get_alias(self, project_id: str, name: str, alias: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            self._require(conn, project_id, name)
            info = self._aliases(conn, project_id, [name]).get(name, {}).get(alias)
            if info is None:
                raise self._no_alias(conn, project_id, name, alias)
        return {"name": name, "alias": alias, **info}

    def delete_alias(self, project_id: str, name: str, alias: str, *, actor: str | None = None,
                     comment: str | None = None) -> None:
        def tx(conn: Connection) -> None:
            self._require(conn, project_id, name, lock=True)
            if not self._move(conn, project_id, name, alias, None, actor=actor, comment=comment, action="delete"):
                raise self._no_alias(conn, project_id, name, alias)

        self._write(tx)

    def rollback_alias(self, project_id: str, name: str, alias: str, *, actor: str | None = None,
                       comment: str | None = None) -> dict[str, Any]:
        """Undo the alias's last move; again goes further back (moves push, rollbacks pop)."""
        e = t.model_alias_event.c

        def tx(conn: Connection) -> None:
            self._require(conn, project_id, name, lock=True)
            events = conn.execute(select(e.action, e.from_version).where(
                e.project_id == project_id, e.name == name, e.alias == alias).order_by(e.seq)).all()
            if not events:
                raise self._no_alias(conn, project_id, name, alias)
            stack: list[int | None] = []
            for ev in events:
                if ev.action == "rollback":
                    if stack:
                        stack.pop()
                else:
                    stack.append(ev.from_version)
            if not stack:
                raise Conflict(f"alias {alias!r} of model {name!r} has no earlier version to roll back to "
                               "(every earlier move was already rolled back)")
            previous = stack[-1]
            if previous is None:
                raise Conflict(f"alias {alias!r} of model {name!r} did not exist before its first move; there is "
                               f"no earlier version to roll back to (move it with `podium registry alias`)")
            self._move(conn, project_id, name, alias, previous, actor=actor, comment=comment, action="rollback")

        self._write(tx)
        return self.get_alias(project_id, name, alias)

    def alias_history(self, project_id: str, name: str, alias: str | None = None, *,
                      limit: int = 100) -> list[dict[str, Any]]:
        """Alias moves, newest first: who, when, from which version to which, why."""
        e = t.model_alias_event.c
        conds: list[Any] = [e.project_id == project_id, e.name == name]
        if alias:
            conds.append(e.alias == alias)
        with self._engine.connect() as conn:
            self._require(conn, project_id, name)
            rows = conn.execute(select(t.model_alias_event).where(*conds)
                                .order_by(e.created_at.desc(), e.seq.desc(), e.alias).limit(limit)).all()
        return [{"alias": r.alias, "seq": r.seq, "action": r.action, "from_version": r.from_version,
                 "to_version": r.to_version, "actor": r.actor, "comment": r.comment, "created_at": r.created_at}
                for r in rows]

    # --- lineage reads --------------------------------------------------------------------------
    def dataset_version(self, project_id: str, dataset: str, version: int) -> dict[str, Any] | None:
        dv = t.dataset_version.c
        with self._engine.connect() as conn:
            r = conn.execute(select(dv.item_count, dv.message, dv.created_at).where(
                dv.project_id == project_id, dv.name == dataset, dv.version == version)).first()
        if r is None:
            return None
        return {"name": dataset, "version": version, "item_count": r.item_count, "message": r.message,
                "created_at": r.created_at}

    def served(self, project_id: str, models: list[str]) -> dict[str, Any]:
        """Spans whose ``model`` is one of ``models``: count, distinct traces, first and last."""
        s = t.span.c
        with self._engine.connect() as conn:
            r = conn.execute(select(func.count(), func.count(func.distinct(s.trace_id)), func.min(s.start_time),
                                    func.max(s.start_time))
                             .where(s.project_id == project_id, s.model.in_(models))).one()
        return {"spans": int(r[0] or 0), "traces": int(r[1] or 0), "first_at": r[2], "last_at": r[3]}

    def set_artifact_path(self, project_id: str, name: str, version: int, artifact: dict[str, Any]) -> dict[str, Any]:
        """Record where a copied artifact landed (called once, right after the version is created,
        since the copy's folder is named for the version number)."""
        mv = t.model_version.c

        def tx(conn: Connection) -> None:
            conn.execute(update(t.model_version).where(
                mv.project_id == project_id, mv.name == name, mv.version == version).values(artifact=artifact))

        self._write(tx)
        return self.get_version(project_id, name, version)
