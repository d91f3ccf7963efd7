"""Retention: exactly what is older than each period goes, in batches, per project; a legal hold
stops it; the worker's job leases projects and audits what it deleted."""

from __future__ import annotations

from typing import Any

import pytest

from podium.config import Settings
from podium.governance.actor import Actor
from podium.governance.retention import LegalHold, RetentionJob, run_retention
from podium.store import tables as t
from tests.conftest import make_project
from tests.governance.lifecycle_seed import add_annotation, add_score, add_trace, ago, count

ADMIN = Actor("cli", "tester")


def _seed(store: Any, pid: str) -> None:
    add_trace(store, pid, "old1", age_days=40, spans=3, scores=2)
    add_trace(store, pid, "old2", age_days=35, spans=1)
    add_trace(store, pid, "new1", age_days=10, spans=2)
    add_trace(store, pid, "gw-old", age_days=8, spans=1, gateway=True, scores=0, tags=())
    add_trace(store, pid, "gw-new", age_days=1, spans=1, gateway=True, scores=0, tags=())
    add_score(store, pid, "sess-old", age_days=50)  # a session score: no trace
    add_score(store, pid, "sess-new", age_days=2)
    add_score(store, pid, "on-new-old", age_days=45, trace_id="new1")  # old score on a kept trace
    add_annotation(store, pid, "old1")


def _ids(store: Any, table: Any, pid: str) -> set[str]:
    with store.engine.connect() as c:
        return {r.id for r in c.execute(table.select().where(table.c.project_id == pid))}


def test_each_kind_deletes_exactly_what_is_older_than_its_period(store: Any) -> None:
    a = make_project(store, "a")
    b = make_project(store, "b")
    _seed(store, a.project_id)
    _seed(store, b.project_id)
    settings = Settings(retention_pause_ms=0)
    lc = store.lifecycle

    # gateway logs only: the gateway's traces older than 5 days
    lc.set_periods(a.project_id, {"gateway": 5}, actor="t")
    dry = run_retention(store, settings, a.project_id, actor=ADMIN, dry_run=True)
    assert dry.counts["trace"] == 1 and dry.counts["span"] == 1
    run = run_retention(store, settings, a.project_id, actor=ADMIN)
    assert run.counts == dry.counts
    assert _ids(store, t.trace, a.project_id) == {"old1", "old2", "new1", "gw-new"}

    # scores older than 30 days, whichever trace they are on (or none)
    lc.set_periods(a.project_id, {"scores": 30}, actor="t")
    dry = run_retention(store, settings, a.project_id, actor=ADMIN, dry_run=True)
    run = run_retention(store, settings, a.project_id, actor=ADMIN)
    assert run.counts == dry.counts
    assert run.counts["score"] == 5  # old1: 2, old2: 1, sess-old, on-new-old
    assert _ids(store, t.score, a.project_id) == {"new1-sc0", "sess-new"}

    # traces older than 30 days with their spans, tags and annotations; aggregates of the rest intact
    lc.set_periods(a.project_id, {"traces": 30}, actor="t")
    dry = run_retention(store, settings, a.project_id, actor=ADMIN, dry_run=True)
    assert dry.counts["trace"] == 2 and dry.counts["span"] == 4 and dry.counts["trace_tag"] == 2
    assert dry.counts["annotation"] == 1 and dry.counts["annotation_item"] == 1
    run = run_retention(store, settings, a.project_id, actor=ADMIN)
    assert run.counts == dry.counts
    assert _ids(store, t.trace, a.project_id) == {"new1", "gw-new"}
    assert count(store, t.span, a.project_id) == 3
    assert count(store, t.span, a.project_id, trace_id="old1") == 0
    assert count(store, t.annotation_item, a.project_id) == 0

    # the other project kept everything
    assert _ids(store, t.trace, b.project_id) == {"old1", "old2", "new1", "gw-old", "gw-new"}
    assert count(store, t.span, b.project_id) == 8
    assert count(store, t.score, b.project_id) == 7
    assert count(store, t.annotation, b.project_id) == 1

    # a second run finds nothing; the runs are recorded, newest first
    assert sum(run_retention(store, settings, a.project_id, actor=ADMIN).counts.values()) == 0
    runs = lc.runs(a.project_id)
    assert runs[0].actor == "cli:tester" and len(runs) == 7


def test_purge_goes_in_batches_oldest_first_and_splits_big_traces(store: Any) -> None:
    p = make_project(store, "p")
    for i in range(10):
        add_trace(store, p.project_id, f"tr{i}", age_days=100 - i, spans=2, scores=0, tags=())
    add_trace(store, p.project_id, "big", age_days=200, spans=12, scores=1, tags=())
    add_trace(store, p.project_id, "keep", age_days=1, spans=2, scores=0, tags=())
    seen: list[set[str]] = []
    res = store.lifecycle.purge(p.project_id, {"traces": ago(30)},
                                batch=5, pause_s=0,
                                should_stop=lambda: seen.append(_ids(store, t.trace, p.project_id)) or False)
    # the big trace (13 rows > 5) first, over 3 transactions; then 10 traces of 3 rows: one a batch
    assert res.batches >= 3 + 10
    assert res.counts["span"] == 12 + 20 and res.counts["trace"] == 11
    assert _ids(store, t.trace, p.project_id) == {"keep"}
    # oldest first: each check between batches sees the younger traces still there
    assert "tr9" in seen[1] and "big" not in seen[1]
    assert res.max_tx_ms > 0


def test_legal_hold_stops_retention_and_the_job(store: Any) -> None:
    p = make_project(store, "held")
    q = make_project(store, "free")
    for pid in (p.project_id, q.project_id):
        add_trace(store, pid, "old", age_days=40)
    store.lifecycle.set_legal_hold(p.project_id, True, reason="case 42", actor="t")
    settings = Settings(retention_days=30, retention_pause_ms=0)
    with pytest.raises(LegalHold, match="legal hold \\(case 42\\)"):
        run_retention(store, settings, p.project_id, actor=ADMIN)
    with pytest.raises(LegalHold):
        run_retention(store, settings, p.project_id, actor=ADMIN, dry_run=True)

    job = RetentionJob(store, settings)
    assert job.run_once() == 5  # the free project's trace, its 2 spans, 1 score and 1 tag
    assert count(store, t.trace, p.project_id) == 1
    assert count(store, t.trace, q.project_id) == 0
    assert job.run_once() == 0  # leased until the next interval
    events = store.audit.list_events(q.project_id, action="retention.purge").items
    assert len(events) == 1
    assert events[0]["actor"]["kind"] == "system" and events[0]["actor"]["id"] == "retention"
    assert not store.audit.list_events(p.project_id, action="retention.purge").items

    store.lifecycle.set_legal_hold(p.project_id, False, reason=None, actor="t")
    assert sum(run_retention(store, settings, p.project_id, actor=ADMIN).counts.values()) > 0


def test_zero_keeps_forever_and_null_inherits_the_installation_default(store: Any) -> None:
    p = make_project(store, "p")
    add_trace(store, p.project_id, "old", age_days=400)
    add_score(store, p.project_id, "s", age_days=400)
    store.lifecycle.set_periods(p.project_id, {"traces": 0}, actor="t")
    settings = Settings(retention_days=30, retention_pause_ms=0)
    run = run_retention(store, settings, p.project_id, actor=ADMIN)
    assert run.counts["trace"] == 0 and run.counts["score"] == 2  # the default applies to scores (both)
    assert count(store, t.trace, p.project_id) == 1
    assert run_retention(store, Settings(), p.project_id, actor=ADMIN, dry_run=True).counts["trace"] == 0


def test_every_worker_runs_the_retention_job(store: Any) -> None:
    """`podium worker` and the worker embedded in `podium up` build their jobs with build_jobs."""
    from podium.monitor.worker import build_jobs

    jobs = build_jobs(store, Settings(), None)
    (job,) = [j for j in jobs if j.name == "retention"]
    assert isinstance(job, RetentionJob)
