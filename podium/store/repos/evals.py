"""Evaluation SQL: versioned datasets, experiments, their items and labels.

Datasets: an item row is valid for the versions ``valid_from <= v < valid_to`` (``valid_to``
NULL while current). A change locks the dataset row (``FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` takes the single write lock before anything is read), closes the rows it
replaces or removes and inserts the new content under the next version number, so a version,
once written, never changes. A change that changes nothing makes no version.

Experiments: rows are written as the runner sends item results (idempotent upserts keyed by
item id and repetition, so a retried or resumed batch never duplicates); each item's scores are
also upserted into the ``score`` table (built by the caller) in the same transaction.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from podium.core.datasets import DatasetItem, content_hash
from podium.errors import Conflict, NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write
from podium.store.repos.traces import Page, _bad_cursor, decode_cursor, encode_cursor

__all__ = ["EvalRepo", "ExperimentFilter"]

logger = logging.getLogger(__name__)

R = TypeVar("R")
_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _upsert(conn: Connection, table: Any, keys: list[str]) -> Any:
    stmt = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    )


def _current(v: int) -> Any:
    di = t.dataset_item.c
    return and_(di.valid_from <= v, or_(di.valid_to.is_(None), di.valid_to > v))


class ExperimentFilter:
    def __init__(self, *, name: str | None = None, dataset: str | None = None, label: str | None = None,
                 status: str | None = None, run_group: str | None = None) -> None:
        self.name = name
        self.dataset = dataset
        self.label = label
        self.status = status
        self.run_group = run_group


_ITEM_OUT = ("id", "input", "expected", "context", "metadata", "split", "labels", "source_trace_id")


class EvalRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- plumbing ------------------------------------------------------------------------------
    def _write(self, fn: Callable[[Connection], R]) -> R:
        return locked_write(self._engine, fn, what="the dataset")

    def _no_dataset(self, conn: Connection, project_id: str, name: str) -> NotFound:
        d = t.dataset.c
        names = list(conn.execute(
            select(d.name).where(d.project_id == project_id).order_by(d.name).limit(1000)).scalars())
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none yet"
        return NotFound(f"no dataset {name!r} in this project{hint}. Datasets: {listing} (`podium datasets list`)",
                        details=[{"field": "name", "available": names[:100]}])

    def _dataset_row(self, conn: Connection, project_id: str, name: str, *, lock: bool = False) -> Any:
        d = t.dataset.c
        q = select(t.dataset).where(d.project_id == project_id, d.name == name)
        row = conn.execute(q.with_for_update() if lock else q).first()
        if row is None:
            raise self._no_dataset(conn, project_id, name)
        return row

    # --- datasets ------------------------------------------------------------------------------
    def create_dataset(
        self, project_id: str, name: str, *, description: str | None = None, metadata: dict[str, Any] | None = None,
        items: Sequence[DatasetItem] = (), message: str | None = None, source: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Create a dataset whose version 1 holds ``items`` (possibly none)."""

        def work(conn: Connection) -> None:
            d = t.dataset.c
            if conn.execute(select(d.name).where(d.project_id == project_id, d.name == name)).first():
                raise Conflict(f"dataset {name!r} already exists; add items with POST /api/v1/datasets/{name}/items "
                               "(each change makes a new version)")
            now = _now()
            conn.execute(insert(t.dataset).values(
                project_id=project_id, name=name, description=description, metadata=metadata or {},
                latest_version=0, next_position=0, created_at=now, updated_at=now))
            self._apply(conn, project_id, name, upsert=list(items), delete_ids=[], replace_all=False,
                        message=message, source=source or {"kind": "api"}, actor=actor, force=True)

        self._write(work)
        return self.get_dataset(project_id, name)

    def get_dataset(self, project_id: str, name: str) -> dict[str, Any]:
        d, v = t.dataset.c, t.dataset_version.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.dataset, v.item_count)
                .join(t.dataset_version, and_(v.project_id == d.project_id, v.name == d.name,
                                              v.version == d.latest_version), isouter=True)
                .where(d.project_id == project_id, d.name == name)
            ).first()
            if row is None:
                raise self._no_dataset(conn, project_id, name)
        return _dataset_out(dict(row._mapping))

    def list_datasets(self, project_id: str, *, limit: int = 50, cursor: str | None = None,
                      q: str | None = None) -> Page:
        d, v = t.dataset.c, t.dataset_version.c
        conds: list[Any] = [d.project_id == project_id]
        if q:
            conds.append(func.lower(d.name).contains(q.lower(), autoescape=True))
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 1 or not isinstance(vals[0], str):
                raise _bad_cursor()
            conds.append(d.name > vals[0])
        stmt = (
            select(t.dataset, v.item_count)
            .join(t.dataset_version, and_(v.project_id == d.project_id, v.name == d.name,
                                          v.version == d.latest_version), isouter=True)
            .where(*conds).order_by(d.name).limit(limit + 1)
        )
        with self._engine.connect() as conn:
            rows = [_dataset_out(dict(r._mapping)) for r in conn.execute(stmt)]
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor([rows[-1]["name"]]) if more and rows else None)

    def update_dataset(self, project_id: str, name: str, *, description: str | None = None,
                       metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {"updated_at": _now()}
        if description is not None:
            values["description"] = description
        if metadata is not None:
            values["metadata"] = metadata
        d = t.dataset.c
        with self._engine.begin() as conn:
            self._dataset_row(conn, project_id, name)
            conn.execute(update(t.dataset).where(d.project_id == project_id, d.name == name).values(**values))
        return self.get_dataset(project_id, name)

    def delete_dataset(self, project_id: str, name: str) -> None:
        d = t.dataset.c
        with self._engine.begin() as conn:
            self._dataset_row(conn, project_id, name)
            for table, key in ((t.dataset_item, "dataset"), (t.dataset_version, "name")):
                conn.execute(delete(table).where(table.c.project_id == project_id, table.c[key] == name))
            conn.execute(delete(t.dataset).where(d.project_id == project_id, d.name == name))

    def list_versions(self, project_id: str, name: str) -> list[dict[str, Any]]:
        v = t.dataset_version.c
        with self._engine.connect() as conn:
            self._dataset_row(conn, project_id, name)
            rows = conn.execute(
                select(t.dataset_version).where(v.project_id == project_id, v.name == name).order_by(v.version.desc())
            ).all()
        out = []
        for r in rows:
            m = dict(r._mapping)
            m.pop("project_id", None)
            out.append(m)
        return out

    def resolve_version(self, project_id: str, name: str, version: int | None) -> int:
        with self._engine.connect() as conn:
            row = self._dataset_row(conn, project_id, name)
        if version is None:
            return int(row.latest_version)
        if not 1 <= version <= row.latest_version:
            raise NotFound(f"dataset {name!r} has versions 1 to {row.latest_version}; there is no version {version}",
                           details=[{"field": "version", "latest": row.latest_version}])
        return version

    def list_items(self, project_id: str, name: str, *, version: int | None = None, split: str | None = None,
                   limit: int = 100, cursor: str | None = None) -> tuple[int, Page]:
        """``(version, page)``: items of a version in insertion order."""
        v = self.resolve_version(project_id, name, version)
        di = t.dataset_item.c
        conds: list[Any] = [di.project_id == project_id, di.dataset == name, _current(v)]
        if split is not None:
            conds.append(di.split == split)
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 1 or not isinstance(vals[0], int):
                raise _bad_cursor()
            conds.append(di.position > vals[0])
        stmt = select(t.dataset_item).where(*conds).order_by(di.position).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor([rows[-1]["position"]]) if more and rows else None
        return v, Page([_item_out(r) for r in rows], nxt)

    def get_item(self, project_id: str, name: str, item_id: str, *, version: int | None = None) -> dict[str, Any]:
        v = self.resolve_version(project_id, name, version)
        di = t.dataset_item.c
        with self._engine.connect() as conn:
            row = conn.execute(select(t.dataset_item).where(
                di.project_id == project_id, di.dataset == name, di.id == item_id, _current(v))).first()
        if row is None:
            raise NotFound(f"dataset {name!r} v{v} has no item {item_id!r}")
        out = _item_out(dict(row._mapping))
        out["version"] = v
        return out

    def find_items(self, project_id: str, item_id: str) -> list[dict[str, Any]]:
        """The current items with this id in any dataset of the project (ids are unique per
        dataset only), each with ``dataset`` (its name) and ``created_at`` (of its version)."""
        di, v = t.dataset_item.c, t.dataset_version.c
        stmt = (select(t.dataset_item, v.created_at)
                .join(t.dataset_version, and_(v.project_id == di.project_id, v.name == di.dataset,
                                              v.version == di.valid_from), isouter=True)
                .where(di.project_id == project_id, di.id == item_id, di.valid_to.is_(None))
                .order_by(di.dataset))
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        return [{**_item_out(r), "dataset": r["dataset"], "created_at": r["created_at"]} for r in rows]

    def change_items(
        self, project_id: str, name: str, *, upsert: Sequence[DatasetItem] = (), delete_ids: Sequence[str] = (),
        replace_all: bool = False, message: str | None = None, source: dict[str, Any] | None = None,
        actor: str | None = None, create: bool = False, description: str | None = None,
    ) -> dict[str, Any]:
        """Add or replace ``upsert`` (by id), remove ``delete_ids`` (or, with ``replace_all``,
        every current item not in ``upsert``). One new version when anything changed.

        ``create``: make the dataset first when it does not exist. Returns the counts and the
        version (the latest one, unchanged, when nothing changed)."""

        def work(conn: Connection) -> dict[str, Any]:
            d = t.dataset.c
            if create and conn.execute(select(d.name).where(d.project_id == project_id, d.name == name)).first() is None:
                now = _now()
                conn.execute(insert(t.dataset).values(
                    project_id=project_id, name=name, description=description, metadata={}, latest_version=0,
                    next_position=0, created_at=now, updated_at=now))
                return self._apply(conn, project_id, name, upsert=list(upsert), delete_ids=list(delete_ids),
                                   replace_all=replace_all, message=message, source=source, actor=actor, force=True)
            return self._apply(conn, project_id, name, upsert=list(upsert), delete_ids=list(delete_ids),
                               replace_all=replace_all, message=message, source=source, actor=actor)

        return self._write(work)

    def _apply(self, conn: Connection, project_id: str, name: str, *, upsert: list[DatasetItem], delete_ids: list[str],
               replace_all: bool, message: str | None, source: dict[str, Any] | None, actor: str | None,
               force: bool = False) -> dict[str, Any]:
        ds = self._dataset_row(conn, project_id, name, lock=True)
        di = t.dataset_item.c
        base = [di.project_id == project_id, di.dataset == name, di.valid_to.is_(None)]
        current: dict[str, tuple[str, int]] = {}
        if replace_all:
            for r in conn.execute(select(di.id, di.content_hash, di.position).where(*base)):
                current[r.id] = (r.content_hash, r.position)
        else:
            ids = list({*(i.id for i in upsert), *delete_ids})
            for chunk in _chunks(ids):
                for r in conn.execute(select(di.id, di.content_hash, di.position).where(*base, di.id.in_(list(chunk)))):
                    current[r.id] = (r.content_hash, r.position)
        missing = [i for i in delete_ids if i not in current]
        if missing:
            raise NotFound(f"dataset {name!r} has no current item(s) {', '.join(map(repr, missing[:10]))}",
                           details=[{"field": "ids", "missing": missing[:100]}])
        added: list[tuple[DatasetItem, str]] = []
        changed: list[tuple[DatasetItem, str]] = []
        unchanged = 0
        for item in upsert:
            h = content_hash(item)
            if item.id not in current:
                added.append((item, h))
            elif current[item.id][0] != h:
                changed.append((item, h))
            else:
                unchanged += 1
        removed = list(delete_ids)
        if replace_all:
            keep = {i.id for i in upsert}
            removed = [i for i in current if i not in keep]
        prev_count = 0
        if ds.latest_version:
            v = t.dataset_version.c
            prev_count = conn.execute(select(v.item_count).where(
                v.project_id == project_id, v.name == name, v.version == ds.latest_version)).scalar_one()
        counts = {"added": len(added), "updated": len(changed), "removed": len(removed), "unchanged": unchanged}
        if not (added or changed or removed or force):
            return {"name": name, "version": ds.latest_version, "changed": False, "item_count": prev_count, **counts}
        version = ds.latest_version + 1
        close = [i.id for i, _ in changed] + removed
        for chunk in _chunks(close):
            conn.execute(update(t.dataset_item).where(*base, di.id.in_(list(chunk))).values(valid_to=version))
        pos = int(ds.next_position)
        rows = []
        for item, h in changed:
            rows.append(_item_row(project_id, name, item, h, version, current[item.id][1]))
        for item, h in added:
            rows.append(_item_row(project_id, name, item, h, version, pos))
            pos += 1
        for chunk in _chunks(rows):
            conn.execute(insert(t.dataset_item), list(chunk))
        now = _now()
        item_count = prev_count + len(added) - len(removed)
        conn.execute(insert(t.dataset_version).values(
            project_id=project_id, name=name, version=version, item_count=item_count, added=len(added),
            updated=len(changed), removed=len(removed), message=message, source=source, created_by=actor,
            created_at=now))
        d = t.dataset.c
        conn.execute(update(t.dataset).where(d.project_id == project_id, d.name == name).values(
            latest_version=version, next_position=pos, updated_at=now))
        return {"name": name, "version": version, "changed": True, "item_count": item_count, **counts}

    # --- experiments ---------------------------------------------------------------------------
    def create_experiment(self, project_id: str, rec: dict[str, Any], labels: Sequence[str] = ()) -> dict[str, Any]:
        now = _now()
        row = {"project_id": project_id, "status": "running", "item_count": 0, "error_count": 0, "created_at": now,
               "updated_at": now, **rec}
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(t.experiment).values(**row))
                if labels:
                    conn.execute(insert(t.experiment_label), [
                        {"project_id": project_id, "experiment_id": rec["id"], "label": lb} for lb in dict.fromkeys(labels)])
        except IntegrityError as e:
            raise Conflict(f"experiment {rec['id']!r} already exists; resume it instead of creating it again") from e
        return self.get_experiment(project_id, rec["id"])

    def _experiment_row(self, conn: Connection, project_id: str, experiment_id: str, *, lock: bool = False) -> Any:
        """The experiment's row; ``lock`` holds it until commit (PostgreSQL ``FOR UPDATE``; SQLite's
        single writer serializes already), so concurrent writers of one experiment take turns."""
        e = t.experiment.c
        stmt = select(t.experiment).where(e.project_id == project_id, e.id == experiment_id)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r} in this project (`podium eval list` lists them)")
        return row

    def _labels(self, conn: Connection, project_id: str, ids: Sequence[str]) -> dict[str, list[str]]:
        lc = t.experiment_label.c
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(ids)):
            for r in conn.execute(select(lc.experiment_id, lc.label).where(
                    lc.project_id == project_id, lc.experiment_id.in_(list(chunk))).order_by(lc.label)):
                out.setdefault(r.experiment_id, []).append(r.label)
        return out

    def get_experiment(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            row = dict(self._experiment_row(conn, project_id, experiment_id)._mapping)
            row["labels"] = self._labels(conn, project_id, [experiment_id]).get(experiment_id, [])
        row.pop("project_id", None)
        return row

    def list_experiments(self, project_id: str, f: ExperimentFilter | None = None, *, limit: int = 50,
                         cursor: str | None = None, with_summary: bool = True) -> Page:
        f = f or ExperimentFilter()
        e = t.experiment.c
        cols = [c for c in t.experiment.columns if with_summary or c.name not in ("summary", "task", "scorers")]
        conds: list[Any] = [e.project_id == project_id]
        if f.name is not None:
            conds.append(e.name == f.name)
        if f.dataset is not None:
            conds.append(e.dataset_name == f.dataset)
        if f.status is not None:
            conds.append(e.status == f.status)
        if f.run_group is not None:
            conds.append(e.run_group == f.run_group)
        if f.label is not None:
            lc = t.experiment_label.c
            conds.append(e.id.in_(select(lc.experiment_id).where(lc.project_id == project_id, lc.label == f.label)))
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 2 or not isinstance(vals[0], datetime) or not isinstance(vals[1], str):
                raise _bad_cursor()
            conds.append(or_(e.created_at < vals[0], and_(e.created_at == vals[0], e.id < vals[1])))
        stmt = select(*cols).where(*conds).order_by(e.created_at.desc(), e.id.desc()).limit(limit + 1)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            more = len(rows) > limit
            rows = rows[:limit]
            labels = self._labels(conn, project_id, [r["id"] for r in rows])
        for r in rows:
            r.pop("project_id", None)
            r["labels"] = labels.get(r["id"], [])
        nxt = encode_cursor([rows[-1]["created_at"], rows[-1]["id"]]) if more and rows else None
        return Page(rows, nxt)

    def update_experiment(self, project_id: str, experiment_id: str, *, values: dict[str, Any] | None = None,
                          add_labels: Sequence[str] = (), remove_labels: Sequence[str] = ()) -> dict[str, Any]:
        e, lc = t.experiment.c, t.experiment_label.c
        with self._engine.begin() as conn:
            self._experiment_row(conn, project_id, experiment_id)
            conn.execute(update(t.experiment).where(e.project_id == project_id, e.id == experiment_id).values(
                **(values or {}), updated_at=_now()))
            if remove_labels:
                conn.execute(delete(t.experiment_label).where(
                    lc.project_id == project_id, lc.experiment_id == experiment_id, lc.label.in_(list(remove_labels))))
            if add_labels:
                have = set(self._labels(conn, project_id, [experiment_id]).get(experiment_id, []))
                new = [lb for lb in dict.fromkeys(add_labels) if lb not in have]
                if new:
                    conn.execute(insert(t.experiment_label), [
                        {"project_id": project_id, "experiment_id": experiment_id, "label": lb} for lb in new])
        return self.get_experiment(project_id, experiment_id)

    def delete_experiment(self, project_id: str, experiment_id: str) -> None:
        e = t.experiment.c
        with self._engine.begin() as conn:
            self._experiment_row(conn, project_id, experiment_id)
            for table in (t.experiment_item, t.experiment_label):
                conn.execute(delete(table).where(table.c.project_id == project_id,
                                                 table.c.experiment_id == experiment_id))
            conn.execute(delete(t.experiment).where(e.project_id == project_id, e.id == experiment_id))

    def add_items(self, project_id: str, experiment_id: str, rows: Sequence[dict[str, Any]],
                  score_rows: Sequence[dict[str, Any]] = ()) -> dict[str, int]:
        """Upsert item results (by item id and repetition) and their score rows; returns the counts."""
        ei, e = t.experiment_item.c, t.experiment.c
        now = _now()
        with self._engine.begin() as conn:
            # locked: two concurrent batches would each count only their own rows (READ COMMITTED)
            self._experiment_row(conn, project_id, experiment_id, lock=True)
            if rows:
                full = [{"project_id": project_id, "experiment_id": experiment_id, "created_at": now, **r} for r in rows]
                stmt = _upsert(conn, t.experiment_item, ["project_id", "experiment_id", "item_id", "repetition"])
                for chunk in _chunks(full, 200):
                    conn.execute(stmt, list(chunk))
            if score_rows:
                self._put_scores(conn, list({r["id"]: {"project_id": project_id, **r} for r in score_rows}.values()))
            where = [ei.project_id == project_id, ei.experiment_id == experiment_id]
            total = conn.execute(select(func.count()).where(*where)).scalar_one()
            errors = conn.execute(select(func.count()).where(*where, ei.error.is_not(None))).scalar_one()
            conn.execute(update(t.experiment).where(e.project_id == project_id, e.id == experiment_id).values(
                item_count=total, error_count=errors, updated_at=now))
        return {"item_count": int(total), "error_count": int(errors)}

    def _put_scores(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Upsert the score rows of a batch of item results (by id), in its transaction; the columnar
        store writes them to ClickHouse instead."""
        stmt = _upsert(conn, t.score, ["project_id", "id"])
        for chunk in _chunks(rows, 200):
            conn.execute(stmt, list(chunk))

    def done_keys(self, project_id: str, experiment_id: str, *, retry_types: Sequence[str] = ()) -> list[list[Any]]:
        """``[item_id, repetition]`` of stored items, except those whose ``error_type`` is in ``retry_types``."""
        ei = t.experiment_item.c
        conds: list[Any] = [ei.project_id == project_id, ei.experiment_id == experiment_id]
        if retry_types:
            conds.append(or_(ei.error_type.is_(None), ei.error_type.not_in(list(retry_types))))
        with self._engine.connect() as conn:
            self._experiment_row(conn, project_id, experiment_id)
            return [[r.item_id, r.repetition] for r in conn.execute(
                select(ei.item_id, ei.repetition).where(*conds).order_by(ei.position, ei.repetition))]

    def list_experiment_items(self, project_id: str, experiment_id: str, *, limit: int = 100,
                              cursor: str | None = None, errored: bool | None = None,
                              passed: bool | None = None) -> Page:
        ei = t.experiment_item.c
        conds: list[Any] = [ei.project_id == project_id, ei.experiment_id == experiment_id]
        if errored is not None:
            conds.append(ei.error.is_not(None) if errored else ei.error.is_(None))
        if passed is not None:
            conds.append(ei.passed.is_(passed))
        if cursor:
            vals = decode_cursor(cursor)
            if len(vals) != 3 or not isinstance(vals[0], int) or not isinstance(vals[1], str) \
                    or not isinstance(vals[2], int):
                raise _bad_cursor()
            p, iid, rep = vals
            conds.append(or_(ei.position > p, and_(ei.position == p, or_(
                ei.item_id > iid, and_(ei.item_id == iid, ei.repetition > rep)))))
        stmt = (select(t.experiment_item).where(*conds)
                .order_by(ei.position, ei.item_id, ei.repetition).limit(limit + 1))
        with self._engine.connect() as conn:
            self._experiment_row(conn, project_id, experiment_id)
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        more = len(rows) > limit
        rows = rows[:limit]
        for r in rows:
            r.pop("project_id", None)
            r.pop("experiment_id", None)
        nxt = encode_cursor([rows[-1]["position"], rows[-1]["item_id"], rows[-1]["repetition"]]) if more and rows else None
        return Page(rows, nxt)

    def all_items(self, project_id: str, experiment_id: str, *, full: bool = False) -> list[dict[str, Any]]:
        """Every item of an experiment (the columns statistics need, or all with ``full``)."""
        ei = t.experiment_item.c
        cols = list(t.experiment_item.columns) if full else [
            ei.item_id, ei.repetition, ei.position, ei.scores, ei.passed, ei.weighted_score, ei.error, ei.error_type,
            ei.latency_ms, ei.cost, ei.usage, ei.labels, ei.trace_id]
        with self._engine.connect() as conn:
            self._experiment_row(conn, project_id, experiment_id)
            rows = [dict(r._mapping) for r in conn.execute(
                select(*cols).where(ei.project_id == project_id, ei.experiment_id == experiment_id)
                .order_by(ei.position, ei.item_id, ei.repetition))]
        for r in rows:
            r.pop("project_id", None)
            r.pop("experiment_id", None)
        return rows

    def latest_with_label(self, project_id: str, label: str, *, name: str | None = None,
                          exclude: Sequence[str] = ()) -> dict[str, Any] | None:
        """The newest completed experiment carrying ``label`` (and named ``name``, when given)."""
        e, lc = t.experiment.c, t.experiment_label.c
        conds: list[Any] = [e.project_id == project_id, e.status == "completed",
                            e.id.in_(select(lc.experiment_id).where(lc.project_id == project_id, lc.label == label))]
        if name is not None:
            conds.append(e.name == name)
        if exclude:
            conds.append(e.id.not_in(list(exclude)))
        with self._engine.connect() as conn:
            eid = conn.execute(select(e.id).where(*conds).order_by(e.created_at.desc(), e.id.desc()).limit(1)).scalar()
        return self.get_experiment(project_id, eid) if eid else None


def _dataset_out(r: dict[str, Any]) -> dict[str, Any]:
    r.pop("project_id", None)
    r.pop("next_position", None)
    r["item_count"] = int(r.get("item_count") or 0)
    r["metadata"] = r.get("metadata") or {}
    return r


def _item_out(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r.get(k) for k in _ITEM_OUT}
    out["metadata"] = out["metadata"] or {}
    out["labels"] = out["labels"] or {}
    out["valid_from"] = r.get("valid_from")
    return out


def _item_row(project_id: str, name: str, item: DatasetItem, h: str, version: int, position: int) -> dict[str, Any]:
    return {
        "project_id": project_id, "dataset": name, "id": item.id, "valid_from": version, "valid_to": None,
        "position": position, "input": item.input, "expected": item.expected, "context": item.context,
        "metadata": dict(item.metadata) or None, "labels": dict(item.labels) or None, "split": item.split,
        "source_trace_id": item.source_trace_id, "content_hash": h,
    }
