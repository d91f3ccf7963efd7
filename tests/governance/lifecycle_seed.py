"""Rows for the retention and data-subject tests, written straight into the store (so their ages
are exact)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from podium.store import tables as t

NOW = datetime.now(UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def add_trace(store: Any, pid: str, tid: str, *, age_days: float, spans: int = 2, user: str | None = None,
              gateway: bool = False, scores: int = 1, tags: tuple[str, ...] = ("t",)) -> None:
    start = ago(age_days)
    with store.engine.begin() as c:
        c.execute(insert(t.trace).values(
            project_id=pid, id=tid, name="gateway gpt" if gateway else f"job {tid}", name_explicit=True,
            user_id=user, start_time=start, span_count=spans, updated_at=start, input={"q": f"hello from {user}"}))
        if spans:
            c.execute(insert(t.span), [
                {"project_id": pid, "trace_id": tid, "id": f"{tid}-s{i}", "parent_id": None if i == 0 else f"{tid}-s0",
                 "name": "llm", "kind": "generation", "start_time": start + timedelta(seconds=i), "updated_at": start,
                 "input": {"secret": f"{user}-{i}"}}
                for i in range(spans)])
        if scores:
            c.execute(insert(t.score), [
                {"project_id": pid, "id": f"{tid}-sc{i}", "trace_id": tid, "name": "q", "data_type": "numeric",
                 "value": 1.0, "source": "api", "timestamp": start} for i in range(scores)])
        if tags:
            c.execute(insert(t.trace_tag), [{"project_id": pid, "trace_id": tid, "tag": tag} for tag in tags])


def add_score(store: Any, pid: str, sid: str, *, age_days: float, trace_id: str | None = None,
              metadata: dict[str, Any] | None = None, source: str = "api") -> None:
    with store.engine.begin() as c:
        c.execute(insert(t.score).values(project_id=pid, id=sid, trace_id=trace_id, session_id=None, name="fb",
                                         data_type="numeric", value=1.0, source=source, metadata=metadata,
                                         timestamp=ago(age_days)))


def add_annotation(store: Any, pid: str, trace_id: str) -> None:
    now = NOW
    with store.engine.begin() as c:
        if not c.execute(select(t.annotation_queue.c.id).where(t.annotation_queue.c.project_id == pid)).first():
            c.execute(insert(t.annotation_queue).values(project_id=pid, id="q1", name="review",
                                                        score_config_ids=["c1"], created_at=now, updated_at=now))
        c.execute(insert(t.annotation_item).values(project_id=pid, queue_id="q1", id=f"it-{trace_id}",
                                                   trace_id=trace_id, position=1, status="done", created_at=now,
                                                   updated_at=now))
        c.execute(insert(t.annotation).values(project_id=pid, queue_id="q1", item_id=f"it-{trace_id}",
                                              annotator="ana", score_config_id="c1", value=1.0,
                                              score_id=f"{trace_id}-sc0", created_at=now))


def add_dataset_item(store: Any, pid: str, item_id: str, *, source_trace_id: str | None,
                     metadata: dict[str, Any] | None = None, experiment: bool = True) -> None:
    now = NOW
    with store.engine.begin() as c:
        if not c.execute(select(t.dataset.c.name).where(t.dataset.c.project_id == pid)).first():
            c.execute(insert(t.dataset).values(project_id=pid, name="ds", latest_version=1, created_at=now,
                                               updated_at=now))
            c.execute(insert(t.experiment).values(project_id=pid, id="e1", name="exp", status="completed",
                                                  dataset_name="ds", created_at=now, updated_at=now))
        c.execute(insert(t.dataset_item).values(project_id=pid, dataset="ds", id=item_id, valid_from=1, position=1,
                                                input={"q": "x"}, metadata=metadata, source_trace_id=source_trace_id,
                                                content_hash="h"))
        if experiment:
            c.execute(insert(t.experiment_item).values(project_id=pid, experiment_id="e1", item_id=item_id,
                                                       repetition=0, output="y", created_at=now))


def count(store: Any, table: Any, pid: str, **eq: Any) -> int:
    q = select(func.count()).select_from(table).where(table.c.project_id == pid)
    for k, v in eq.items():
        q = q.where(table.c[k] == v)
    with store.engine.connect() as c:
        return int(c.execute(q).scalar_one())
