"""The prompt registry's SQL: prompts, immutable numbered versions, labels, label history,
protected-label settings, and per-version analytics over the spans linked to a prompt.

Concurrency: every write is one transaction that first locks the prompt row (``FOR UPDATE``
on PostgreSQL; ``BEGIN IMMEDIATE`` takes SQLite's single write lock before anything is read).
Version numbers and label-event sequence numbers are part of primary keys as well, so two
writers that read the same "next number" can never both commit: the loser gets an
IntegrityError and the whole transaction is retried (two creators of a new prompt race so).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    and_,
    case,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    type_coerce,
    union,
    update,
)

from podium.errors import Conflict, NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write
from podium.store.repos.traces import Page, _bad_cursor, decode_cursor, encode_cursor

__all__ = ["PromptRepo"]

logger = logging.getLogger(__name__)

_LATEST = "latest"
R = TypeVar("R")


def _now() -> datetime:
    return datetime.now(UTC)


def _targets_json(targets: Sequence[Any]) -> list[dict[str, Any]]:
    """Targets (core ``Target`` objects or dicts) as stored JSON: ``[{"version", "weight"}]``."""
    out = []
    for x in targets:
        if isinstance(x, dict):
            out.append({"version": int(x["version"]), "weight": float(x.get("weight", 1.0))})
        else:
            out.append({"version": int(x.version), "weight": float(x.weight)})
    return out


def _main_version(targets: list[dict[str, Any]]) -> int:
    return int(max(targets, key=lambda x: (x["weight"], -x["version"]))["version"])


class PromptRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- plumbing -------------------------------------------------------------------------------
    def _write(self, fn: Callable[[Connection], R]) -> R:
        return locked_write(self._engine, fn, what="the prompt")

    def _lock_prompt(self, conn: Connection, project_id: str, name: str) -> Any:
        p = t.prompt.c
        return conn.execute(
            select(t.prompt).where(p.project_id == project_id, p.name == name).with_for_update()
        ).first()

    def _require_prompt(self, conn: Connection, project_id: str, name: str, *, lock: bool = False) -> Any:
        p = t.prompt.c
        q = select(t.prompt).where(p.project_id == project_id, p.name == name)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise self._no_prompt(conn, project_id, name)
        return row

    def _no_prompt(self, conn: Connection, project_id: str, name: str) -> NotFound:
        names = list(conn.execute(
            select(t.prompt.c.name).where(t.prompt.c.project_id == project_id).order_by(t.prompt.c.name).limit(1000)
        ).scalars())
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
        return NotFound(
            f"no prompt {name!r} in this project{hint} Prompts: {listing} (`podium prompts list`)",
            details=[{"field": "name", "available": names[:100]}],
        )

    def _label_rows(self, conn: Connection, project_id: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not names:
            return {}
        lc = t.prompt_label.c
        out: dict[str, dict[str, Any]] = {}
        for r in conn.execute(
            select(t.prompt_label).where(lc.project_id == project_id, lc.name.in_(list(names))).order_by(lc.label)
        ):
            out.setdefault(r.name, {})[r.label] = {
                "version": r.version, "targets": _targets_json(r.targets), "updated_at": r.updated_at,
                "updated_by": r.updated_by,
            }
        return out

    def _protected(self, conn: Connection, project_id: str) -> list[str]:
        v = conn.execute(
            select(t.prompt_settings.c.protected_labels).where(t.prompt_settings.c.project_id == project_id)
        ).scalar()
        return list(v or [])

    @staticmethod
    def _labels_of(version: int, latest: int, labels: dict[str, dict[str, Any]]) -> list[str]:
        out = [lb for lb, v in labels.items() if any(x["version"] == version for x in v["targets"])]
        if version == latest:
            out.append(_LATEST)
        return sorted(out)

    def _version_dict(self, r: Any, latest: int, labels: dict[str, dict[str, Any]], tags: Any) -> dict[str, Any]:
        return {
            "name": r.name,
            "version": r.version,
            "type": r.type,
            "template_format": r.template_format,
            "prompt": r.template,
            "config": r.config or {},
            "variables": r.variables or [],
            "placeholders": r.placeholders or [],
            "commit_message": r.commit_message,
            "size_bytes": r.size_bytes,
            "created_by": r.created_by,
            "created_at": r.created_at,
            "labels": self._labels_of(r.version, latest, labels),
            "tags": list(tags or []),
        }

    def _summary(self, r: Any, labels: dict[str, dict[str, Any]], protected: Iterable[str]) -> dict[str, Any]:
        prot = set(protected)
        return {
            "name": r.name,
            "type": r.type,
            "tags": list(r.tags or []),
            "latest_version": r.latest_version,
            "labels": {
                _LATEST: {"version": r.latest_version, "targets": [{"version": r.latest_version, "weight": 1.0}],
                          "protected": False},
                **{lb: {"version": v["version"], "targets": v["targets"], "protected": lb in prot,
                        "updated_at": v["updated_at"], "updated_by": v["updated_by"]} for lb, v in labels.items()},
            },
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }

    # --- versions -----------------------------------------------------------------------------------
    def create_version(
        self,
        project_id: str,
        name: str,
        *,
        type: str,
        template: Any,
        template_format: str,
        config: dict[str, Any] | None,
        variables: list[str],
        placeholders: list[str],
        size_bytes: int,
        commit_message: str | None = None,
        tags: list[str] | None = None,
        labels: Sequence[str] = (),
        actor: str | None = None,
        base_version: int | None = None,
    ) -> dict[str, Any]:
        """Append the next version (1 for a new prompt); move ``labels`` to it. ``tags`` replace
        the prompt's tags (None keeps them). ``base_version``: refuse (409) unless the latest
        version is this one (0: unless the prompt is new) - optimistic locking for ``push``."""

        def tx(conn: Connection) -> dict[str, Any]:
            now = _now()
            row = self._lock_prompt(conn, project_id, name)
            latest = row.latest_version if row is not None else 0
            if base_version is not None and latest != base_version:
                where = f"is at version {latest}" if row is not None else "does not exist"
                raise Conflict(
                    f"prompt {name!r} {where} on the server, but this change is based on version {base_version}; "
                    "pull the latest version and merge your change (or force it)",
                    details=[{"field": "base_version", "latest_version": latest}],
                )
            if row is not None and row.type != type:
                raise Conflict(
                    f"prompt {name!r} is a {row.type} prompt and this version is {type}; its new versions must "
                    f"be {row.type} too (create a prompt with another name for a {type} prompt)",
                    details=[{"field": "type", "message": f"must be {row.type}"}],
                )
            version = latest + 1
            if row is None:
                conn.execute(insert(t.prompt).values(
                    project_id=project_id, name=name, type=type, tags=tags or None, latest_version=version,
                    created_at=now, updated_at=now))
                current_tags: Any = tags
            else:
                values: dict[str, Any] = {"latest_version": version, "updated_at": now}
                if tags is not None:
                    values["tags"] = tags or None
                conn.execute(update(t.prompt).where(t.prompt.c.project_id == project_id, t.prompt.c.name == name)
                             .values(**values))
                current_tags = tags if tags is not None else row.tags
            conn.execute(insert(t.prompt_version).values(
                project_id=project_id, name=name, version=version, type=type, template_format=template_format,
                template=template, config=config or None, variables=variables, placeholders=placeholders,
                commit_message=commit_message, size_bytes=size_bytes, created_by=actor, created_at=now))
            for lb in dict.fromkeys(labels):
                self._move(conn, project_id, name, lb, [{"version": version, "weight": 1.0}], actor=actor,
                           comment=commit_message, action="set", now=now)
            label_rows = self._label_rows(conn, project_id, [name]).get(name, {})
            r = conn.execute(select(t.prompt_version).where(
                t.prompt_version.c.project_id == project_id, t.prompt_version.c.name == name,
                t.prompt_version.c.version == version)).one()
            return self._version_dict(r, version, label_rows, current_tags)

        return self._write(tx)

    def get_version(self, project_id: str, name: str, version: int | str) -> dict[str, Any]:
        """One version (an int, or ``"latest"``); 404 naming the versions that exist."""
        pv = t.prompt_version.c
        with self._engine.connect() as conn:
            p = self._require_prompt(conn, project_id, name)
            v = p.latest_version if version == _LATEST else version
            r = conn.execute(select(t.prompt_version).where(
                pv.project_id == project_id, pv.name == name, pv.version == v)).first()
            if r is None:
                raise NotFound(
                    f"prompt {name!r} has no version {version}; its versions are 1 to {p.latest_version} "
                    "(or use a label such as latest or production)",
                    details=[{"field": "version", "available": list(range(1, p.latest_version + 1))[-1000:]}],
                )
            labels = self._label_rows(conn, project_id, [name]).get(name, {})
            return self._version_dict(r, p.latest_version, labels, p.tags)

    def list_versions(self, project_id: str, name: str, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Versions, newest first (``cursor``: the last version number seen)."""
        pv = t.prompt_version.c
        conds = [pv.project_id == project_id, pv.name == name]
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 1 or not isinstance(vals[0], int):
                raise _bad_cursor()
            conds.append(pv.version < vals[0])
        with self._engine.connect() as conn:
            p = self._require_prompt(conn, project_id, name)
            labels = self._label_rows(conn, project_id, [name]).get(name, {})
            rows = conn.execute(select(t.prompt_version).where(*conds).order_by(pv.version.desc())
                                .limit(limit + 1)).all()
        items = [self._version_dict(r, p.latest_version, labels, p.tags) for r in rows[:limit]]
        nxt = encode_cursor([items[-1]["version"]]) if len(rows) > limit and items else None
        return Page(items=items, next_cursor=nxt)

    # --- prompts ------------------------------------------------------------------------------------
    def get_prompt(self, project_id: str, name: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            p = self._require_prompt(conn, project_id, name)
            labels = self._label_rows(conn, project_id, [name]).get(name, {})
            return self._summary(p, labels, self._protected(conn, project_id))

    def list_prompts(
        self,
        project_id: str,
        *,
        q: str | None = None,
        prefix: str | None = None,
        tag: str | None = None,
        label: str | None = None,
        type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Prompts by name (``prefix``: a folder such as ``support/``; ``q``: a substring)."""
        p = t.prompt.c
        conds: list[Any] = [p.project_id == project_id]
        if q:
            conds.append(func.lower(p.name).contains(q.lower(), autoescape=True))
        if prefix:
            conds.append(p.name.startswith(prefix, autoescape=True))
        if type:
            conds.append(p.type == type)
        if label and label != _LATEST:
            lc = t.prompt_label.c
            conds.append(exists().where(lc.project_id == p.project_id, lc.name == p.name, lc.label == label))
        if tag:
            if self._engine.dialect.name == "postgresql":
                conds.append(p.tags.op("@>")(type_coerce([tag], t.prompt.c.tags.type)))
            else:
                conds.append(exists(
                    select(literal_column("1")).select_from(func.json_each(p.tags).table_valued("value"))
                    .where(literal_column("value") == tag)
                ))
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 1 or not isinstance(vals[0], str):
                raise _bad_cursor()
            conds.append(p.name > vals[0])
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.prompt).where(*conds).order_by(p.name).limit(limit + 1)).all()
            page = rows[:limit]
            labels = self._label_rows(conn, project_id, [r.name for r in page])
            protected = self._protected(conn, project_id)
        items = [self._summary(r, labels.get(r.name, {}), protected) for r in page]
        nxt = encode_cursor([items[-1]["name"]]) if len(rows) > limit and items else None
        return Page(items=items, next_cursor=nxt)

    def set_tags(self, project_id: str, name: str, tags: list[str]) -> dict[str, Any]:
        def tx(conn: Connection) -> None:
            self._require_prompt(conn, project_id, name, lock=True)
            conn.execute(update(t.prompt).where(t.prompt.c.project_id == project_id, t.prompt.c.name == name)
                         .values(tags=tags or None, updated_at=_now()))

        self._write(tx)
        return self.get_prompt(project_id, name)

    def delete_prompt(self, project_id: str, name: str) -> None:
        """Delete a prompt with all its versions, labels and label history."""

        def tx(conn: Connection) -> None:
            self._require_prompt(conn, project_id, name, lock=True)
            for table in (t.prompt_label_event, t.prompt_label, t.prompt_version):
                conn.execute(delete(table).where(table.c.project_id == project_id, table.c.name == name))
            conn.execute(delete(t.prompt).where(t.prompt.c.project_id == project_id, t.prompt.c.name == name))

        self._write(tx)

    def export(self, project_id: str, *, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every prompt's latest version, with the prompt's labels (``podium prompts pull``)."""
        p, pv = t.prompt.c, t.prompt_version.c
        q = (
            select(t.prompt_version, p.tags.label("prompt_tags"), p.latest_version)
            .select_from(t.prompt.join(t.prompt_version, and_(
                pv.project_id == p.project_id, pv.name == p.name, pv.version == p.latest_version)))
            .where(p.project_id == project_id)
            .order_by(p.name)
        )
        if prefix:
            q = q.where(p.name.startswith(prefix, autoescape=True))
        with self._engine.connect() as conn:
            rows = conn.execute(q).all()
            labels = self._label_rows(conn, project_id, [r.name for r in rows])
        out = []
        for r in rows:
            lbs = labels.get(r.name, {})
            v = self._version_dict(r, r.latest_version, lbs, r.prompt_tags)
            v["label_targets"] = {lb: x["targets"] for lb, x in lbs.items()}
            out.append(v)
        return out

    # --- labels ----------------------------------------------------------------------------------------
    def get_label(self, project_id: str, name: str, label: str) -> dict[str, Any]:
        """A label with its targets and the full content of every target version (what the
        SDK caches: one request resolves an A/B split locally)."""
        pv = t.prompt_version.c
        with self._engine.connect() as conn:
            p = self._require_prompt(conn, project_id, name)
            labels = self._label_rows(conn, project_id, [name]).get(name, {})
            if label == _LATEST:
                info: dict[str, Any] = {"version": p.latest_version,
                                        "targets": [{"version": p.latest_version, "weight": 1.0}],
                                        "updated_at": p.updated_at, "updated_by": None}
            elif label in labels:
                info = labels[label]
            else:
                have = [_LATEST, *sorted(labels)]
                raise NotFound(
                    f"prompt {name!r} has no label {label!r}; its labels: {', '.join(have)} "
                    f"(set one with `podium prompts label {name} {label} VERSION`)",
                    details=[{"field": "label", "available": have}],
                )
            versions = [x["version"] for x in info["targets"]]
            rows = conn.execute(select(t.prompt_version).where(
                pv.project_id == project_id, pv.name == name, pv.version.in_(versions))).all()
            protected = label in self._protected(conn, project_id)
        by_v = {r.version: self._version_dict(r, p.latest_version, labels, p.tags) for r in rows}
        return {
            "name": name,
            "label": label,
            "version": info["version"],
            "targets": info["targets"],
            "protected": protected,
            "updated_at": info["updated_at"],
            "updated_by": info["updated_by"],
            "versions": [by_v[v] for v in versions if v in by_v],
        }

    def _move(self, conn: Connection, project_id: str, name: str, label: str, targets: list[dict[str, Any]] | None,
              *, actor: str | None, comment: str | None, action: str, now: datetime) -> bool:
        """Point ``label`` at ``targets`` (None: remove it) and record the event; False if unchanged."""
        lc, ec = t.prompt_label.c, t.prompt_label_event.c
        cur = conn.execute(select(t.prompt_label).where(
            lc.project_id == project_id, lc.name == name, lc.label == label)).first()
        before = cur.targets if cur is not None else None
        if before == targets:
            return False
        where = (lc.project_id == project_id, lc.name == name, lc.label == label)
        if targets is None:
            conn.execute(delete(t.prompt_label).where(*where))
        elif cur is None:
            conn.execute(insert(t.prompt_label).values(project_id=project_id, name=name, label=label, targets=targets,
                                                       version=_main_version(targets), updated_at=now,
                                                       updated_by=actor))
        else:
            conn.execute(update(t.prompt_label).where(*where).values(
                targets=targets, version=_main_version(targets), updated_at=now, updated_by=actor))
        last = conn.execute(select(func.max(ec.seq), func.max(ec.created_at)).where(
            ec.project_id == project_id, ec.name == name, ec.label == label)).one()
        seq = (last[0] or 0) + 1
        now = max(now, last[1]) if last[1] is not None else now  # history order == sequence order
        conn.execute(insert(t.prompt_label_event).values(
            project_id=project_id, name=name, label=label, seq=seq, action=action, from_targets=before,
            to_targets=targets, from_version=_main_version(before) if before else None,
            to_version=_main_version(targets) if targets else None, actor=actor, comment=comment, created_at=now))
        return True

    def set_label(self, project_id: str, name: str, label: str, targets: Sequence[Any], *,
                  actor: str | None = None, comment: str | None = None) -> dict[str, Any]:
        """Point ``label`` at one version or split it between several (``[Target]`` or dicts)."""
        tj = _targets_json(targets)

        def tx(conn: Connection) -> None:
            p = self._require_prompt(conn, project_id, name, lock=True)
            bad = [x["version"] for x in tj if x["version"] > p.latest_version]
            if bad:
                raise NotFound(
                    f"prompt {name!r} has no version {bad[0]}; its versions are 1 to {p.latest_version}",
                    details=[{"field": "version", "available": list(range(1, p.latest_version + 1))[-1000:]}],
                )
            self._move(conn, project_id, name, label, tj, actor=actor, comment=comment, action="set", now=_now())

        self._write(tx)
        return self.get_label(project_id, name, label)

    def delete_label(self, project_id: str, name: str, label: str, *, actor: str | None = None,
                     comment: str | None = None) -> None:
        def tx(conn: Connection) -> None:
            self._require_prompt(conn, project_id, name, lock=True)
            if not self._move(conn, project_id, name, label, None, actor=actor, comment=comment, action="delete",
                              now=_now()):
                raise self._no_label(conn, project_id, name, label)

        self._write(tx)

    def _no_label(self, conn: Connection, project_id: str, name: str, label: str) -> NotFound:
        have = [_LATEST, *sorted(self._label_rows(conn, project_id, [name]).get(name, {}))]
        return NotFound(f"prompt {name!r} has no label {label!r}; its labels: {', '.join(have)}",
                        details=[{"field": "label", "available": have}])

    def rollback_label(self, project_id: str, name: str, label: str, *, actor: str | None = None,
                       comment: str | None = None) -> dict[str, Any]:
        """Undo the label's last move: it goes back to where it pointed before. Rolling back
        again goes further back (each move pushes the old target, each rollback pops one)."""
        ec = t.prompt_label_event.c

        def tx(conn: Connection) -> None:
            self._require_prompt(conn, project_id, name, lock=True)
            events = conn.execute(select(ec.action, ec.from_targets, ec.seq, ec.created_at).where(
                ec.project_id == project_id, ec.name == name, ec.label == label).order_by(ec.seq)).all()
            if not events:
                raise self._no_label(conn, project_id, name, label)
            stack: list[Any] = []
            for e in events:
                if e.action == "rollback":
                    if stack:
                        stack.pop()
                else:
                    stack.append(e.from_targets)
            if not stack:
                raise Conflict(f"label {label!r} of prompt {name!r} has no earlier version to roll back to "
                               "(every earlier move was already rolled back)")
            previous = stack[-1]
            if previous is None:
                raise Conflict(
                    f"label {label!r} of prompt {name!r} did not exist before its first move; there is no earlier "
                    f"version to roll back to (point it elsewhere with `podium prompts label`, or remove it)"
                )
            self._move(conn, project_id, name, label, previous, actor=actor, comment=comment, action="rollback",
                       now=_now())

        self._write(tx)
        return self.get_label(project_id, name, label)

    def label_history(self, project_id: str, name: str, label: str | None = None, *, limit: int = 50,
                      cursor: str | None = None) -> Page:
        """Label moves, newest first: who (key), when, from which version(s) to which."""
        ec = t.prompt_label_event.c
        conds: list[Any] = [ec.project_id == project_id, ec.name == name]
        if label:
            conds.append(ec.label == label)
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 2 or not isinstance(vals[1], str) or not isinstance(vals[0], int):
                raise _bad_cursor()
            conds.append(or_(ec.seq < vals[0], and_(ec.seq == vals[0], ec.label < vals[1])))
        with self._engine.connect() as conn:
            self._require_prompt(conn, project_id, name)
            order = (ec.seq.desc(),) if label else (ec.created_at.desc(), ec.seq.desc(), ec.label.desc())
            rows = conn.execute(select(t.prompt_label_event).where(*conds).order_by(*order).limit(limit + 1)).all()
        items = [
            {"label": r.label, "seq": r.seq, "action": r.action, "from_version": r.from_version,
             "to_version": r.to_version, "from_targets": _targets_json(r.from_targets) if r.from_targets else None,
             "to_targets": _targets_json(r.to_targets) if r.to_targets else None,
             "actor": r.actor, "comment": r.comment, "created_at": r.created_at}
            for r in rows[:limit]
        ]
        nxt = encode_cursor([items[-1]["seq"], items[-1]["label"]]) if len(rows) > limit and items else None
        return Page(items=items, next_cursor=nxt)

    # --- settings ---------------------------------------------------------------------------------------
    def get_settings(self, project_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            return {"protected_labels": self._protected(conn, project_id)}

    def put_settings(self, project_id: str, *, protected_labels: list[str]) -> dict[str, Any]:
        s = t.prompt_settings.c
        labels = sorted(dict.fromkeys(protected_labels))

        def tx(conn: Connection) -> None:
            now = _now()
            if conn.execute(select(s.project_id).where(s.project_id == project_id)).first() is None:
                conn.execute(insert(t.prompt_settings).values(project_id=project_id, protected_labels=labels,
                                                              updated_at=now))
            else:
                conn.execute(update(t.prompt_settings).where(s.project_id == project_id)
                             .values(protected_labels=labels, updated_at=now))

        self._write(tx)
        return self.get_settings(project_id)

    def protected_labels(self, project_id: str) -> list[str]:
        with self._engine.connect() as conn:
            return self._protected(conn, project_id)

    # --- analytics ----------------------------------------------------------------------------------------
    def analytics(self, project_id: str, name: str, *, start: datetime | None = None, end: datetime | None = None,
                  version: int | None = None) -> list[dict[str, Any]]:
        """Per version of ``name``: spans linked to it (count, traces, errors), latency (avg,
        p50, p95 by nearest rank), tokens, cost and the average of numeric/boolean scores
        attached to those spans or to their traces. Versions without calls are included;
        spans naming the prompt without a version (e.g. a fallback) come as version null."""
        pv = t.prompt_version.c
        with self._engine.connect() as conn:
            p = self._require_prompt(conn, project_id, name)
            labels = self._label_rows(conn, project_id, [name]).get(name, {})
            vq = select(pv.version, pv.created_at, pv.commit_message).where(pv.project_id == project_id,
                                                                             pv.name == name)
            if version is not None:
                vq = vq.where(pv.version == version)
            versions = conn.execute(vq.order_by(pv.version.desc())).all()
        stats, pcts, scores = self._usage(project_id, name, start=start, end=end, version=version)
        out = []
        keys: list[Any] = [v.version for v in versions]
        if None in stats and version is None:
            keys.append(None)
        meta = {v.version: v for v in versions}
        for v in keys:
            st, pc = stats.get(v), pcts.get(v)
            n = int(st["count"]) if st is not None else 0
            cost = float(st["cost"]) if st is not None and st["cost"] is not None else 0.0
            out.append({
                "version": v,
                "labels": self._labels_of(v, p.latest_version, labels) if v is not None else [],
                "created_at": meta[v].created_at if v in meta else None,
                "commit_message": meta[v].commit_message if v in meta else None,
                "count": n,
                "traces": int(st["traces"]) if st is not None else 0,
                "errors": int(st["errors"] or 0) if st is not None else 0,
                "error_rate": (int(st["errors"] or 0) / n) if st is not None and n else 0.0,
                "latency_ms": {
                    "avg": _f(st["avg_latency"]) if st is not None else None,
                    "p50": _f(pc["p50"]) if pc is not None else None,
                    "p95": _f(pc["p95"]) if pc is not None else None,
                    "max": _f(pc["max"]) if pc is not None else None,
                },
                "input_tokens": int(st["input_tokens"] or 0) if st is not None else 0,
                "output_tokens": int(st["output_tokens"] or 0) if st is not None else 0,
                "total_tokens": int(st["total_tokens"] or 0) if st is not None else 0,
                "cost": {"total": round(cost, 10), "avg": round(cost / n, 10) if n else None},
                "scores": scores.get(v, {}),
                "first_seen": st["first_seen"] if st is not None else None,
                "last_seen": st["last_seen"] if st is not None else None,
            })
        return out

    def _usage(self, project_id: str, name: str, *, start: datetime | None, end: datetime | None,
               version: int | None) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]],
                                             dict[Any, dict[str, Any]]]:
        """What ``analytics`` reads from the span store, per prompt version (None: no version):
        the calls' figures (``count``, ``traces``, ``errors``, tokens, ``cost``, ``avg_latency``,
        ``first_seen``, ``last_seen``), the latency percentiles (``p50``, ``p95``, ``max``) and
        ``{score name: {avg, count}}`` (the columnar store answers the same from ClickHouse)."""
        s = t.span.c
        conds: list[Any] = [s.project_id == project_id, s.prompt_name == name]
        if start is not None:
            conds.append(s.start_time >= start)
        if end is not None:
            conds.append(s.start_time < end)
        if version is not None:
            conds.append(s.prompt_version == version)
        # The calls: wrappers of a call whose own span reports the usage are left out (usage is
        # counted once, docs/data-model.md); scores given to a wrapper still count below.
        calls = [*conds, s.usage_counted.is_not(False)]
        is_err = case((s.status == "error", 1), else_=0)
        agg = (
            select(
                s.prompt_version.label("v"),
                func.count().label("count"),
                func.count(distinct(s.trace_id)).label("traces"),
                func.sum(is_err).label("errors"),
                func.sum(s.input_tokens).label("input_tokens"),
                func.sum(s.output_tokens).label("output_tokens"),
                func.sum(s.total_tokens).label("total_tokens"),
                func.sum(s.cost_total).label("cost"),
                func.avg(s.latency_ms).label("avg_latency"),
                func.min(s.start_time).label("first_seen"),
                func.max(s.start_time).label("last_seen"),
            )
            .where(*calls)
            .group_by(s.prompt_version)
        )
        ranked = (
            select(
                s.prompt_version.label("v"),
                s.latency_ms.label("lat"),
                func.row_number().over(partition_by=s.prompt_version, order_by=s.latency_ms).label("rn"),
                func.count().over(partition_by=s.prompt_version).label("n"),
            )
            .where(*calls, s.latency_ms.is_not(None))
            .subquery()
        )
        pct = select(
            ranked.c.v,
            func.min(case((ranked.c.rn >= ranked.c.n * 0.5, ranked.c.lat))).label("p50"),
            func.min(case((ranked.c.rn >= ranked.c.n * 0.95, ranked.c.lat))).label("p95"),
            func.max(ranked.c.lat).label("max"),
        ).group_by(ranked.c.v)
        sc = t.score.c
        linked = select(s.trace_id, s.prompt_version.label("v")).where(*calls).distinct().subquery()
        trace_scores = (
            select(linked.c.v, sc.name, sc.id, sc.value)
            .select_from(t.score.join(linked, and_(sc.trace_id == linked.c.trace_id)))
            .where(sc.project_id == project_id, sc.span_id.is_(None), sc.data_type.in_(("numeric", "boolean")))
        )
        span_scores = (
            select(s.prompt_version.label("v"), sc.name, sc.id, sc.value)
            .select_from(t.score.join(t.span, and_(
                sc.project_id == s.project_id, sc.trace_id == s.trace_id, sc.span_id == s.id)))
            .where(*conds, sc.project_id == project_id, sc.data_type.in_(("numeric", "boolean")))
        )
        both = union(trace_scores, span_scores).subquery()
        scores_q = select(
            both.c.v, both.c.name, type_coerce(func.avg(both.c.value), Float).label("avg"), func.count().label("n")
        ).group_by(both.c.v, both.c.name).order_by(both.c.name)
        with self._engine.connect() as conn:
            stats = {r.v: dict(r._mapping) for r in conn.execute(agg)}
            pcts = {r.v: dict(r._mapping) for r in conn.execute(pct)}
            scores: dict[Any, dict[str, Any]] = {}
            for r in conn.execute(scores_q):
                scores.setdefault(r.v, {})[r.name] = {"avg": float(r.avg) if r.avg is not None else None,
                                                      "count": int(r.n)}
        return stats, pcts, scores


def _f(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)

