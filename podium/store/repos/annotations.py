"""Annotation queues: traces and spans people review against score configs (docs/annotation.md).

- A **queue** names one or more score configs, how many people should review each item
  (``reviews_per_item``; 2 or more gives inter-annotator agreement) and how long a claim lasts.
- An **item** is a trace or a span. Its id comes from (trace id, span id), so adding a target
  twice is a no-op. ``claim_next`` hands an annotator the first item (in the order added) that is
  not done, not skipped, not already reviewed by them and not held by someone else: a
  conditional ``UPDATE`` takes the lock (``assigned_to``, ``locked_until``), so two annotators
  asking at once never get the same item, on SQLite or PostgreSQL. An expired lock is free.
- **Submitting** writes one ``annotation`` row per score config and, in the same transaction, the
  same value as a ``score`` row (source ``human``, the config's name, validated by
  :class:`~podium.store.repos.score_configs.ScoreConfigs` exactly as every other score path), so
  filters, dashboards and alerts see it. Submitting again replaces both.
- **Skipping** takes the item out of the queue for everyone (status ``skipped``).

Item status: ``pending`` (no review, not held), ``in_progress`` (held, or some reviews but fewer
than ``reviews_per_item``), ``done``, ``skipped``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from podium.core.datasets import DatasetItem
from podium.core.records import ScoreIn
from podium.errors import BadRequest, Conflict, NotFound, ValidationFailed
from podium.store import tables as t
from podium.store.repos.evals import EvalRepo
from podium.store.repos.score_configs import ScoreConfigRepo, ScoreConfigs
from podium.store.repos.traces import TraceFilter, TraceRepo

__all__ = [
    "ITEM_STATUSES",
    "MAX_FILTER_ITEMS",
    "AnnotationRepo",
    "Target",
    "item_id_for",
    "trace_filter_from",
]

ITEM_STATUSES = ("pending", "in_progress", "done", "skipped")
#: The most traces one filter adds to a queue at a time.
MAX_FILTER_ITEMS = 10_000
_OPEN = ("pending", "in_progress")
_FILTER_FIELDS = {f.name: f for f in fields(TraceFilter)}
_TIME_FIELDS = ("start_after", "start_before")


def _now() -> datetime:
    return datetime.now(UTC)


def item_id_for(trace_id: str, span_id: str | None) -> str:
    """An item's id: the same target is the same item."""
    return hashlib.sha256(f"{trace_id}\x00{span_id or ''}".encode()).hexdigest()[:32]


def _score_id(queue_id: str, item_id: str, annotator: str, config_id: str) -> str:
    raw = f"{queue_id}\x00{item_id}\x00{annotator}\x00{config_id}".encode()
    return "ann-" + hashlib.sha256(raw).hexdigest()[:40]


def _dataset_item_id(queue_id: str, item_id: str) -> str:
    return "aq-" + hashlib.sha256(f"{queue_id}\x00{item_id}".encode()).hexdigest()[:32]


def trace_filter_from(raw: Mapping[str, Any]) -> TraceFilter:
    """The traces list's filter from its JSON form (the :class:`TraceFilter` field names; times
    as ISO 8601 with a zone). Raises ValidationFailed naming the field to fix."""
    unknown = sorted(set(raw) - set(_FILTER_FIELDS))
    if unknown:
        raise ValidationFailed(f"unknown filter field(s) {unknown}; use {', '.join(sorted(_FILTER_FIELDS))}",
                               details=[{"field": f"filter.{unknown[0]}", "message": "unknown field"}])
    kw: dict[str, Any] = {}
    for k, v in raw.items():
        if v is None:
            continue
        if k in _TIME_FIELDS:
            try:
                ts = datetime.fromisoformat(str(v))
            except ValueError:
                ts = None
            if ts is None or ts.tzinfo is None:
                raise ValidationFailed(f"filter.{k} must be an ISO 8601 time with a zone, e.g. 2026-01-31T00:00:00Z",
                                       details=[{"field": f"filter.{k}", "message": "not a time with a zone"}])
            kw[k] = ts.astimezone(UTC)
        elif k == "tags":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValidationFailed("filter.tags must be a list of strings",
                                       details=[{"field": "filter.tags", "message": "not a list of strings"}])
            kw[k] = list(v)
        elif k.startswith(("min_", "max_")):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValidationFailed(f"filter.{k} must be a number",
                                       details=[{"field": f"filter.{k}", "message": "not a number"}])
            kw[k] = float(v)
        else:
            if not isinstance(v, str):
                raise ValidationFailed(f"filter.{k} must be a string",
                                       details=[{"field": f"filter.{k}", "message": "not a string"}])
            kw[k] = v
    return TraceFilter(**kw)


@dataclass(frozen=True)
class Target:
    trace_id: str
    span_id: str | None = None


class AnnotationRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- queues ------------------------------------------------------------------------------------
    def _configs(self, project_id: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        snap = ScoreConfigRepo(self._engine).snapshot(project_id)
        out = []
        for cid in ids:
            c = snap.by_id.get(cid)
            if c is None:
                raise ValidationFailed(f"score config {cid!r} does not exist in this project; "
                                       "GET /api/v1/score-configs lists them (POST there to make one)",
                                       details=[{"field": "score_config_ids", "message": f"unknown config {cid}"}])
            out.append(c)
        return out

    def create_queue(self, project_id: str, *, name: str, score_config_ids: Sequence[str],
                     description: str | None = None, reviews_per_item: int = 1, lock_seconds: int = 600,
                     created_by: str | None = None) -> dict[str, Any]:
        ids = list(dict.fromkeys(score_config_ids))
        if not ids:
            raise ValidationFailed("a queue needs at least one score config: score_config_ids: [\"<config id>\"]",
                                   details=[{"field": "score_config_ids", "message": "empty"}])
        for c in self._configs(project_id, ids):
            if c["archived"]:
                raise ValidationFailed(f"score config {c['name']!r} is archived; unarchive it or pick another",
                                       details=[{"field": "score_config_ids", "message": "archived config"}])
        now = _now()
        row = {"project_id": project_id, "id": str(uuid.uuid4()), "name": name, "description": description,
               "score_config_ids": ids, "reviews_per_item": reviews_per_item, "lock_seconds": lock_seconds,
               "source": None, "created_by": created_by, "created_at": now, "updated_at": now}
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(t.annotation_queue).values(**row))
        except IntegrityError:
            raise Conflict(f"an annotation queue named {name!r} already exists in this project; "
                           "pick another name or add items to that one") from None
        return self.get_queue(project_id, str(row["id"]))

    def _queue_row(self, conn: Connection, project_id: str, queue_id: str) -> dict[str, Any]:
        q = t.annotation_queue.c
        r = conn.execute(select(t.annotation_queue).where(q.project_id == project_id, q.id == queue_id)).first()
        if r is None:
            raise NotFound(f"no annotation queue {queue_id!r} in this project; "
                           "GET /api/v1/annotation-queues lists them")
        d = dict(r._mapping)
        d.pop("project_id", None)
        return d

    def get_queue(self, project_id: str, queue_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            q = self._queue_row(conn, project_id, queue_id)
            q["counts"] = self._counts(conn, project_id, [queue_id]).get(queue_id, _zero())
        return q

    def list_queues(self, project_id: str) -> list[dict[str, Any]]:
        q = t.annotation_queue.c
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(t.annotation_queue).where(q.project_id == project_id).order_by(q.created_at.desc(), q.id))]
            counts = self._counts(conn, project_id, [r["id"] for r in rows])
        for r in rows:
            r.pop("project_id", None)
            r["counts"] = counts.get(r["id"], _zero())
        return rows

    def _counts(self, conn: Connection, project_id: str, queue_ids: list[str]) -> dict[str, dict[str, int]]:
        if not queue_ids:
            return {}
        i = t.annotation_item.c
        out: dict[str, dict[str, int]] = {}
        status = _status_expr(_now()).label("st")
        for r in conn.execute(select(i.queue_id, status, func.count()).where(
                i.project_id == project_id, i.queue_id.in_(queue_ids)).group_by(i.queue_id, status)):
            d = out.setdefault(r[0], _zero())
            d[r[1]] = int(r[2])
            d["total"] += int(r[2])
        return out

    def update_queue(self, project_id: str, queue_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        allowed = {"name", "description", "score_config_ids", "reviews_per_item", "lock_seconds"}
        vals = {k: v for k, v in changes.items() if k in allowed and v is not None}
        if "description" in changes:
            vals["description"] = changes["description"]
        if "score_config_ids" in vals:
            vals["score_config_ids"] = list(dict.fromkeys(vals["score_config_ids"]))
            if not vals["score_config_ids"]:
                raise ValidationFailed("a queue needs at least one score config",
                                       details=[{"field": "score_config_ids", "message": "empty"}])
            self._configs(project_id, vals["score_config_ids"])
        q = t.annotation_queue.c
        try:
            with self._engine.begin() as conn:
                self._queue_row(conn, project_id, queue_id)
                if vals:
                    conn.execute(update(t.annotation_queue).where(q.project_id == project_id, q.id == queue_id)
                                 .values(**vals, updated_at=_now()))
                    if "reviews_per_item" in vals:
                        self._restatus(conn, project_id, queue_id, int(vals["reviews_per_item"]))
        except IntegrityError:
            raise Conflict(f"an annotation queue named {vals.get('name')!r} already exists; pick another name") from None
        return self.get_queue(project_id, queue_id)

    def _restatus(self, conn: Connection, project_id: str, queue_id: str, need: int) -> None:
        i = t.annotation_item.c
        base = [i.project_id == project_id, i.queue_id == queue_id, i.status != "skipped"]
        conn.execute(update(t.annotation_item).where(*base, i.review_count >= need).values(status="done"))
        conn.execute(update(t.annotation_item).where(*base, i.review_count < need, i.review_count > 0)
                     .values(status="in_progress"))

    def delete_queue(self, project_id: str, queue_id: str) -> None:
        """Delete the queue, its items and annotations (the scores they wrote stay on the traces)."""
        q = t.annotation_queue.c
        with self._engine.begin() as conn:
            self._queue_row(conn, project_id, queue_id)
            a, i = t.annotation.c, t.annotation_item.c
            # Explicit deletes: SQLite enforces the cascades only with foreign keys switched on.
            conn.execute(delete(t.annotation).where(a.project_id == project_id, a.queue_id == queue_id))
            conn.execute(delete(t.annotation_item).where(i.project_id == project_id, i.queue_id == queue_id))
            conn.execute(delete(t.annotation_queue).where(q.project_id == project_id, q.id == queue_id))

    # --- items -------------------------------------------------------------------------------------
    def add_items(self, project_id: str, queue_id: str, targets: Iterable[Target]) -> dict[str, int]:
        """Add traces/spans (ignoring ones already in the queue); the traces must exist."""
        wanted = list(dict.fromkeys(targets))
        if not wanted:
            return {"added": 0, "existing": 0}
        i = t.annotation_item.c
        now = _now()
        with self._engine.begin() as conn:
            self._queue_row(conn, project_id, queue_id)
            trace_ids = list({x.trace_id for x in wanted})
            known = self._known_traces(conn, project_id, trace_ids)
            missing = [x for x in trace_ids if x not in known]
            if missing:
                raise NotFound(f"no trace(s) {', '.join(map(repr, missing[:5]))} in this project; "
                               "send ids of traces this project has (GET /api/v1/traces)",
                               details=[{"field": "items", "missing": missing[:100]}])
            spans = [x for x in wanted if x.span_id is not None]
            if spans:
                have = self._known_spans(conn, project_id, spans)
                bad = [x for x in spans if (x.trace_id, x.span_id) not in have]
                if bad:
                    raise NotFound(f"no span {bad[0].span_id!r} in trace {bad[0].trace_id!r}; "
                                   "send span ids from GET /api/v1/traces/{id}/spans",
                                   details=[{"field": "items", "missing": [[b.trace_id, b.span_id] for b in bad[:100]]}])
            ids = {item_id_for(x.trace_id, x.span_id): x for x in wanted}
            existing: set[str] = set()
            keys = list(ids)
            for k in range(0, len(keys), 500):
                existing.update(r[0] for r in conn.execute(select(i.id).where(
                    i.project_id == project_id, i.queue_id == queue_id, i.id.in_(keys[k:k + 500]))))
            pos = conn.execute(select(func.coalesce(func.max(i.position), -1)).where(
                i.project_id == project_id, i.queue_id == queue_id)).scalar_one()
            rows = []
            for iid, x in ids.items():
                if iid in existing:
                    continue
                pos += 1
                rows.append({"project_id": project_id, "queue_id": queue_id, "id": iid, "trace_id": x.trace_id,
                             "span_id": x.span_id, "position": pos, "status": "pending", "review_count": 0,
                             "assigned_to": None, "locked_until": None, "created_at": now, "updated_at": now})
            for k in range(0, len(rows), 500):
                conn.execute(insert(t.annotation_item), rows[k:k + 500])
        return {"added": len(rows), "existing": len(existing)}

    def add_from_filter(self, project_id: str, queue_id: str, raw_filter: Mapping[str, Any],
                        limit: int = 100) -> dict[str, int]:
        """Add up to ``limit`` traces matching the traces list's filter, newest first."""
        if limit < 1 or limit > MAX_FILTER_ITEMS:
            raise ValidationFailed(f"limit must be 1..{MAX_FILTER_ITEMS}", details=[{"field": "limit"}])
        f = trace_filter_from(raw_filter)
        repo = self._trace_repo()
        found: list[Target] = []
        cursor: str | None = None
        while len(found) < limit:
            page = repo.list_traces(project_id, f, limit=min(500, limit - len(found)), cursor=cursor)
            found.extend(Target(r["id"]) for r in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        got = self.add_items(project_id, queue_id, found)
        q = t.annotation_queue.c
        with self._engine.begin() as conn:
            conn.execute(update(t.annotation_queue).where(q.project_id == project_id, q.id == queue_id).values(
                source={"kind": "filter", "filter": dict(raw_filter), "limit": limit}, updated_at=_now()))
        return {**got, "matched": len(found)}

    def list_items(self, project_id: str, queue_id: str, *, status: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[dict[str, Any]]:
        i = t.annotation_item.c
        conds = [i.project_id == project_id, i.queue_id == queue_id]
        if status is not None:
            conds.append(_status_expr(_now()) == status)
        with self._engine.connect() as conn:
            self._queue_row(conn, project_id, queue_id)
            rows = [dict(r._mapping) for r in conn.execute(
                select(t.annotation_item).where(*conds).order_by(i.position).limit(limit).offset(offset))]
        for r in rows:
            r.pop("project_id", None)
            _fix_status(r)
        return rows

    def get_item(self, project_id: str, queue_id: str, item_id: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            return self._item_row(conn, project_id, queue_id, item_id)

    def _item_row(self, conn: Connection, project_id: str, queue_id: str, item_id: str) -> dict[str, Any]:
        i = t.annotation_item.c
        r = conn.execute(select(t.annotation_item).where(
            i.project_id == project_id, i.queue_id == queue_id, i.id == item_id)).first()
        if r is None:
            raise NotFound(f"no item {item_id!r} in annotation queue {queue_id!r}; "
                           f"GET /api/v1/annotation-queues/{queue_id}/items lists them")
        d = dict(r._mapping)
        d.pop("project_id", None)
        return _fix_status(d)

    # --- claiming ----------------------------------------------------------------------------------
    def claim_next(self, project_id: str, queue_id: str, annotator: str, *,
                   now: datetime | None = None) -> dict[str, Any] | None:
        """The item this annotator holds, else the next free one, locked for them; None when the
        queue has nothing left for them."""
        now = now or _now()
        i, a = t.annotation_item.c, t.annotation.c
        with self._engine.connect() as conn:
            q = self._queue_row(conn, project_id, queue_id)
        until = now + timedelta(seconds=int(q["lock_seconds"]))
        base = [i.project_id == project_id, i.queue_id == queue_id]
        reviewed = select(a.item_id).where(a.project_id == project_id, a.queue_id == queue_id,
                                           a.annotator == annotator)
        for _ in range(20):
            with self._engine.begin() as conn:
                held = conn.execute(select(i.id).where(
                    *base, i.status.in_(_OPEN), i.assigned_to == annotator, i.locked_until > now,
                    i.id.not_in(reviewed)).order_by(i.position).limit(1)).first()
                if held is not None:
                    conn.execute(update(t.annotation_item).where(*base, i.id == held[0])
                                 .values(locked_until=until, updated_at=now))
                    return self._item_row(conn, project_id, queue_id, held[0])
                free = or_(i.assigned_to.is_(None), i.locked_until.is_(None), i.locked_until <= now)
                cands = [r[0] for r in conn.execute(select(i.id).where(
                    *base, i.status.in_(_OPEN), free, i.id.not_in(reviewed)).order_by(i.position).limit(10))]
                if not cands:
                    return None
                for cid in cands:
                    res = conn.execute(update(t.annotation_item).where(*base, i.id == cid, i.status.in_(_OPEN), free)
                                       .values(assigned_to=annotator, locked_until=until, status="in_progress",
                                               updated_at=now))
                    if res.rowcount == 1:
                        return self._item_row(conn, project_id, queue_id, cid)
        return None  # lost every race 20 times over: let the caller ask again

    def release(self, project_id: str, queue_id: str, item_id: str, annotator: str) -> None:
        """Give back a claim without reviewing (the item returns to the queue)."""
        i = t.annotation_item.c
        with self._engine.begin() as conn:
            self._release(conn, project_id, queue_id, item_id, annotator)
            conn.execute(update(t.annotation_item).where(
                i.project_id == project_id, i.queue_id == queue_id, i.id == item_id, i.review_count == 0,
                i.status == "in_progress").values(status="pending"))

    def _release(self, conn: Connection, project_id: str, queue_id: str, item_id: str, annotator: str) -> None:
        i = t.annotation_item.c
        conn.execute(update(t.annotation_item).where(
            i.project_id == project_id, i.queue_id == queue_id, i.id == item_id, i.assigned_to == annotator)
            .values(assigned_to=None, locked_until=None))

    def _check_holder(self, item: dict[str, Any], annotator: str, now: datetime) -> None:
        holder, until = item["assigned_to"], item["locked_until"]
        if holder is not None and holder != annotator and until is not None and until > now:
            raise Conflict(f"item {item['id']} is being reviewed by {holder!r} until {until.isoformat()}; "
                           "ask for the next item instead (POST .../next)")

    def skip(self, project_id: str, queue_id: str, item_id: str, annotator: str) -> dict[str, Any]:
        now = _now()
        i = t.annotation_item.c
        with self._engine.begin() as conn:
            item = self._item_row(conn, project_id, queue_id, item_id)
            self._check_holder(item, annotator, now)
            if item["status"] == "done":
                raise Conflict(f"item {item_id} already has its reviews; it cannot be skipped")
            conn.execute(update(t.annotation_item).where(
                i.project_id == project_id, i.queue_id == queue_id, i.id == item_id)
                .values(status="skipped", assigned_to=None, locked_until=None, updated_at=now))
            return self._item_row(conn, project_id, queue_id, item_id)

    # --- annotating --------------------------------------------------------------------------------
    def submit(self, project_id: str, queue_id: str, item_id: str, annotator: str,
               values: Mapping[str, Any], *, comment: str | None = None) -> dict[str, Any]:
        """Record ``values`` ({score config id or name: value}) for the item by ``annotator`` and
        write each as a score (source ``human``). Raises ValidationFailed (nothing written) when a
        value breaks its config, naming what the config allows."""
        if not values:
            raise ValidationFailed("send at least one value: {\"values\": {\"<score config id>\": value}}",
                                   details=[{"field": "values", "message": "empty"}])
        now = _now()
        with self._engine.connect() as conn:
            q = self._queue_row(conn, project_id, queue_id)
        configs = self._configs(project_id, q["score_config_ids"])
        by_key = {c["id"]: c for c in configs} | {c["name"]: c for c in configs}
        snap = ScoreConfigs.of(configs)
        i, a = t.annotation_item.c, t.annotation.c
        with self._engine.begin() as conn:
            item = self._item_row(conn, project_id, queue_id, item_id)
            self._check_holder(item, annotator, now)
            if item["status"] == "skipped":
                raise Conflict(f"item {item_id} was skipped; it takes no annotations")
            already = {r[0] for r in conn.execute(select(a.annotator).distinct().where(
                a.project_id == project_id, a.queue_id == queue_id, a.item_id == item_id))}
            if annotator not in already and len(already) >= int(q["reviews_per_item"]):
                raise Conflict(f"item {item_id} already has its {q['reviews_per_item']} review(s); "
                               "ask for the next item (POST .../next)")
            ann_rows, score_rows = [], []
            for key, value in values.items():
                c = by_key.get(key)
                if c is None:
                    names = ", ".join(f"{x['name']} ({x['id']})" for x in configs)
                    raise ValidationFailed(f"this queue does not score {key!r}; it scores {names}",
                                           details=[{"field": f"values.{key}", "message": "not a config of the queue"}])
                try:
                    sc = ScoreIn(name=c["name"], value=value, config_id=c["id"], trace_id=item["trace_id"],
                                 span_id=item["span_id"], source="human", comment=comment)
                except ValidationError as e:
                    raise ValidationFailed(f"value for {c['name']!r}: {e.errors()[0].get('msg', 'invalid')}",
                                           details=[{"field": f"values.{key}", "message": "invalid value"}]) from None
                checked = snap.check(sc)
                assert checked is not None  # the config is named by id
                sid = _score_id(queue_id, item_id, annotator, c["id"])
                ann_rows.append({"project_id": project_id, "queue_id": queue_id, "item_id": item_id,
                                 "annotator": annotator, "score_config_id": c["id"], "value": checked.value,
                                 "string_value": checked.string_value, "comment": comment, "score_id": sid,
                                 "created_at": now})
                score_rows.append({"project_id": project_id, "id": sid, "trace_id": item["trace_id"],
                                   "span_id": item["span_id"], "session_id": None, "name": c["name"],
                                   "data_type": checked.data_type, "value": checked.value,
                                   "string_value": checked.string_value, "source": "human", "comment": comment,
                                   "metadata": {"annotation_queue": queue_id, "item_id": item_id,
                                                "annotator": annotator, "config_id": c["id"]},
                                   "timestamp": now})
            cfg_ids = [r["score_config_id"] for r in ann_rows]
            conn.execute(delete(t.annotation).where(
                a.project_id == project_id, a.queue_id == queue_id, a.item_id == item_id,
                a.annotator == annotator, a.score_config_id.in_(cfg_ids)))
            conn.execute(insert(t.annotation), ann_rows)
            self._put_scores(conn, project_id, score_rows)
            n = len(already | {annotator})
            status = "done" if n >= int(q["reviews_per_item"]) else "in_progress"
            held_by_me = item["assigned_to"] == annotator
            conn.execute(update(t.annotation_item).where(i.project_id == project_id, i.queue_id == queue_id,
                                                         i.id == item_id).values(
                review_count=n, status=status, updated_at=now,
                **({"assigned_to": None, "locked_until": None} if held_by_me else {})))
            out = self._item_row(conn, project_id, queue_id, item_id)
        out["score_ids"] = [r["id"] for r in score_rows]
        return out

    def annotations(self, project_id: str, queue_id: str, *, item_id: str | None = None,
                    annotator: str | None = None) -> list[dict[str, Any]]:
        """The queue's annotations, oldest first (``value``: the number; ``label``: a category's label)."""
        a = t.annotation.c
        conds = [a.project_id == project_id, a.queue_id == queue_id]
        if item_id is not None:
            conds.append(a.item_id == item_id)
        if annotator is not None:
            conds.append(a.annotator == annotator)
        with self._engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(t.annotation).where(*conds).order_by(a.created_at, a.item_id, a.annotator))]
        for r in rows:
            r.pop("project_id", None)
            r["label"] = r.pop("string_value")
        return rows

    def history(self, project_id: str, queue_id: str, annotator: str) -> list[str]:
        """The items this annotator reviewed, in the order they last submitted them."""
        a = t.annotation.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(a.item_id, func.max(a.created_at).label("at")).where(
                a.project_id == project_id, a.queue_id == queue_id, a.annotator == annotator)
                .group_by(a.item_id).order_by("at", a.item_id)).all()
        return [r[0] for r in rows]

    def progress(self, project_id: str, queue_id: str) -> dict[str, Any]:
        """Item counts by status, reviews done and wanted, and each annotator's count."""
        a = t.annotation.c
        with self._engine.connect() as conn:
            q = self._queue_row(conn, project_id, queue_id)
            counts = self._counts(conn, project_id, [queue_id]).get(queue_id, _zero())
            per = conn.execute(select(a.annotator, func.count(func.distinct(a.item_id)), func.max(a.created_at))
                               .where(a.project_id == project_id, a.queue_id == queue_id)
                               .group_by(a.annotator).order_by(a.annotator)).all()
        need = int(q["reviews_per_item"])
        reviews = sum(int(r[1]) for r in per)
        wanted = (counts["total"] - counts["skipped"]) * need
        finished = counts["done"] + counts["skipped"]
        return {"queue_id": queue_id, "reviews_per_item": need, **counts,
                "reviews": reviews, "reviews_wanted": wanted,
                "percent_complete": round(100.0 * finished / counts["total"], 1) if counts["total"] else 0.0,
                "annotators": [{"annotator": r[0], "reviewed": int(r[1]), "last_at": r[2]} for r in per]}

    # --- to a dataset ------------------------------------------------------------------------------
    def to_dataset(self, project_id: str, queue_id: str, dataset: str, *, only_done: bool = True,
                   expected: str = "output", actor: str | None = None) -> dict[str, Any]:
        """Reviewed items as items of ``dataset`` (made when missing), one per queue item, with a
        stable id: running it again changes nothing unless the annotations changed.

        ``input``: the trace's (or span's) input. ``expected``: with ``"output"`` the trace's
        (span's) output, with ``"annotation"`` the consensus ``{config name: value}``. The
        consensus is always in ``labels`` (majority label for categorical and boolean configs,
        ties to the first given; mean for numeric ones), the comments and annotators in
        ``metadata``."""
        if expected not in ("output", "annotation"):
            raise BadRequest('expected is "output" (the trace output) or "annotation" (the consensus scores)')
        with self._engine.connect() as conn:
            q = self._queue_row(conn, project_id, queue_id)
        statuses = ("done",) if only_done else ("done", "in_progress")
        i = t.annotation_item.c
        with self._engine.connect() as conn:
            items = [dict(r._mapping) for r in conn.execute(select(t.annotation_item).where(
                i.project_id == project_id, i.queue_id == queue_id, i.status.in_(statuses), i.review_count > 0)
                .order_by(i.position))]
        configs = {c["id"]: c for c in self._configs(project_id, q["score_config_ids"])}
        anns: dict[str, list[dict[str, Any]]] = {}
        for r in self.annotations(project_id, queue_id):
            anns.setdefault(r["item_id"], []).append(r)
        io = self._io(project_id, items)
        out: list[DatasetItem] = []
        for it in items:
            src = io.get((it["trace_id"], it["span_id"]))
            if src is None:  # the trace (or span) is gone
                continue
            rows = anns.get(it["id"], [])
            labels = _consensus(rows, configs)
            comments = [{"annotator": r["annotator"], "comment": r["comment"]} for r in rows if r["comment"]]
            comments = list({(c["annotator"], c["comment"]): c for c in comments}.values())
            out.append(DatasetItem(
                id=_dataset_item_id(queue_id, it["id"]), input=src.get("input"),
                expected=src.get("output") if expected == "output" else labels,
                metadata={"annotation_queue": q["name"], "queue_id": queue_id, "item_id": it["id"],
                          "trace_id": it["trace_id"], "span_id": it["span_id"],
                          "annotators": sorted({r["annotator"] for r in rows}), "comments": comments},
                labels=labels, source_trace_id=it["trace_id"]))
        if not out:
            raise BadRequest(f"queue {q['name']!r} has no {'done' if only_done else 'reviewed'} items yet; "
                             "review some first" + (" or send only_done: false" if only_done else ""))
        change = EvalRepo(self._engine).change_items(
            project_id, dataset, upsert=out, message=f"from annotation queue {q['name']}",
            source={"kind": "annotation-queue", "queue_id": queue_id}, actor=actor, create=True,
            description=f"reviewed items of annotation queue {q['name']}")
        return {**change, "items": len(out)}


    # --- the span store (spans, traces, scores): SQL here, ClickHouse in ColumnarAnnotationRepo --------
    def _known_traces(self, conn: Connection, project_id: str, trace_ids: list[str]) -> set[str]:
        """Those of ``trace_ids`` the project has."""
        tr = t.trace.c
        known: set[str] = set()
        for k in range(0, len(trace_ids), 500):
            known.update(r[0] for r in conn.execute(select(tr.id).where(
                tr.project_id == project_id, tr.id.in_(trace_ids[k:k + 500]))))
        return known

    def _known_spans(self, conn: Connection, project_id: str, spans: list[Target]) -> set[tuple[str, str]]:
        """``(trace id, span id)`` of those span targets the project has."""
        s = t.span.c
        have: set[tuple[str, str]] = set()
        for k in range(0, len(spans), 500):
            chunk = spans[k:k + 500]
            have.update((r[0], r[1]) for r in conn.execute(select(s.trace_id, s.id).where(
                s.project_id == project_id, s.trace_id.in_({x.trace_id for x in chunk}),
                s.id.in_({x.span_id for x in chunk}))))
        return have

    def _trace_repo(self) -> TraceRepo:
        """The trace list a filter adds from."""
        return TraceRepo(self._engine)

    def _put_scores(self, conn: Connection, project_id: str, rows: list[dict[str, Any]]) -> None:
        """Write (replace) the scores a submission gives, in the submission's transaction."""
        s = t.score.c
        conn.execute(delete(t.score).where(s.project_id == project_id, s.id.in_([r["id"] for r in rows])))
        conn.execute(insert(t.score), rows)

    def _io(self, project_id: str, items: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
        """Input and output of each item's trace or span, in a few queries."""
        out: dict[tuple[str, str | None], dict[str, Any]] = {}
        tr, sp = t.trace.c, t.span.c
        trace_ids = sorted({it["trace_id"] for it in items if not it["span_id"]})
        spans = [it for it in items if it["span_id"]]
        with self._engine.connect() as conn:
            for k in range(0, len(trace_ids), 500):
                for r in conn.execute(select(tr.id, tr.input, tr.output).where(
                        tr.project_id == project_id, tr.id.in_(trace_ids[k:k + 500]))):
                    out[(r.id, None)] = {"input": r.input, "output": r.output}
            for k in range(0, len(spans), 500):
                chunk = spans[k:k + 500]
                for s in conn.execute(select(sp.trace_id, sp.id, sp.input, sp.output).where(
                        sp.project_id == project_id, sp.trace_id.in_({c["trace_id"] for c in chunk}),
                        sp.id.in_({c["span_id"] for c in chunk}))):
                    out[(s.trace_id, s.id)] = {"input": s.input, "output": s.output}
        return out


def _status_expr(now: datetime) -> Any:
    """An item's status as shown: a claim that expired before any review is ``pending`` again."""
    i = t.annotation_item.c
    stale = and_(i.status == "in_progress", i.review_count == 0,
                 or_(i.locked_until.is_(None), i.locked_until <= now))
    return case((stale, "pending"), else_=i.status)


def _fix_status(d: dict[str, Any]) -> dict[str, Any]:
    """The same rule on a fetched row (its lock fields cleared when it expired)."""
    until = d.get("locked_until")
    if until is not None and until <= _now():
        d["assigned_to"], d["locked_until"] = None, None
    if d["status"] == "in_progress" and d["review_count"] == 0 and d.get("locked_until") is None:
        d["status"] = "pending"
    return d


def _zero() -> dict[str, int]:
    return {"total": 0, **{s: 0 for s in ITEM_STATUSES}}


def _consensus(rows: list[dict[str, Any]], configs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    by_cfg: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_cfg.setdefault(r["score_config_id"], []).append(r)
    out: dict[str, Any] = {}
    for cid, rs in by_cfg.items():
        c = configs.get(cid)
        if c is None:
            continue
        dt = c["data_type"]
        if dt == "numeric":
            vals = [float(r["value"]) for r in rs if r["value"] is not None]
            out[c["name"]] = sum(vals) / len(vals) if vals else None
            continue
        keys: list[Any] = [(r["label"] if dt == "categorical" else bool(r["value"])) for r in rs]
        tally: dict[Any, int] = {}
        for k in keys:
            tally[k] = tally.get(k, 0) + 1
        out[c["name"]] = max(tally, key=lambda k: tally[k])  # ties: the first given
    return out

