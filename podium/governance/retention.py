"""Retention: how long a project keeps its traces, scores and gateway logs, and the job that
deletes what is older (docs/governance.md#retention).

- A project's period per kind is its own (days; ``0`` keeps forever) or, when it sets none, the
  installation default ``PODIUM_RETENTION_DAYS`` (unset: keep forever). See :func:`effective_days`.
- A legal hold stops every deletion of the project: retention skips it, a manual run and a
  data-subject deletion are refused with :class:`LegalHold` (409), naming the hold.
- :func:`run_retention` purges one project (or counts what would go: ``dry_run``), records the run
  and appends an audit event (``retention.purge``) through ``store.audit.append``.
- :class:`RetentionJob` is the worker's job: it leases the projects whose run is due (one run per
  project every ``PODIUM_RETENTION_INTERVAL_S``) and purges them in batches of
  ``PODIUM_RETENTION_BATCH`` rows with ``PODIUM_RETENTION_PAUSE_MS`` between two transactions.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.config import Settings
from podium.errors import Conflict
from podium.governance.actor import Actor
from podium.store import Store
from podium.store.repos.lifecycle import KINDS, RetentionPolicy, RetentionRun

__all__ = ["SYSTEM_ACTOR", "LegalHold", "RetentionJob", "cutoffs_for", "effective_days", "policy_view",
           "run_retention"]

logger = logging.getLogger("podium.retention")

#: Who the audit log says ran the worker's purges.
SYSTEM_ACTOR = Actor("system", "retention")


class LegalHold(Conflict):
    code = "legal_hold"


def hold_error(policy: RetentionPolicy, what: str) -> LegalHold:
    reason = f" ({policy.legal_hold_reason})" if policy.legal_hold_reason else ""
    return LegalHold(f"project is under a legal hold{reason}: {what} is refused while it is on; "
                     "turn it off first (PUT /api/v1/legal-hold {\"on\": false} or `podium legal-hold off`)",
                     details=[{"legal_hold": True, "reason": policy.legal_hold_reason}])


def effective_days(policy: RetentionPolicy, default_days: int | None) -> dict[str, int | None]:
    """Days kept per kind (None: forever): the project's own period, else the installation default."""
    out: dict[str, int | None] = {}
    for kind in KINDS:
        own = policy.days(kind)
        days = default_days if own is None else own
        out[kind] = days if days else None
    return out


def cutoffs_for(days: dict[str, int | None], now: datetime) -> dict[str, datetime | None]:
    """What is older than these instants goes."""
    return {k: (now - timedelta(days=d) if d else None) for k, d in days.items()}


def policy_view(store: Store, settings: Settings, project_id: str) -> dict[str, Any]:
    """The policy as the API, CLI and UI show it: own and effective periods, the hold, the last runs."""
    p = store.lifecycle.policy(project_id)
    runs = store.lifecycle.runs(project_id, limit=10)
    return {
        "project_id": project_id,
        "periods": {k: p.days(k) for k in KINDS},
        "effective_days": effective_days(p, settings.retention_days),
        "installation_default_days": settings.retention_days,
        "legal_hold": {"on": p.legal_hold, "reason": p.legal_hold_reason},
        "updated_by": p.updated_by,
        "updated_at": p.updated_at.isoformat() if p.updated_at else None,
        "last_run": run_view(runs[0]) if runs else None,
        "runs": [run_view(r) for r in runs],
    }


def run_view(r: RetentionRun) -> dict[str, Any]:
    return {"id": r.id, "dry_run": r.dry_run, "status": r.status, "cutoffs": r.cutoffs,
            "counts": r.counts, "total": sum(r.counts.values()), "batches": r.batches, "max_tx_ms": r.max_tx_ms,
            "error": r.error, "actor": r.actor, "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None}


def run_retention(store: Store, settings: Settings, project_id: str, *, actor: Actor, dry_run: bool = False,
                  now: datetime | None = None, batch: int | None = None, pause_s: float | None = None,
                  should_stop: Any = None) -> RetentionRun:
    """Purge one project now (or count what would go). Raises :class:`LegalHold` under a hold."""
    policy = store.lifecycle.policy(project_id)
    if policy.legal_hold:
        raise hold_error(policy, "a retention run")
    started = datetime.now(UTC)
    days = effective_days(policy, settings.retention_days)
    cutoffs = cutoffs_for(days, now or started)
    if dry_run:
        counts = store.lifecycle.count_expired(project_id, cutoffs)
        return store.lifecycle.record_run(project_id, dry_run=True, status="ok", cutoffs=cutoffs, counts=counts,
                                          batches=0, max_tx_ms=None, error=None, actor=actor.label(),
                                          started_at=started)
    error: str | None = None
    res = None
    try:
        res = store.lifecycle.purge(
            project_id, cutoffs, batch=batch or settings.retention_batch,
            pause_s=settings.retention_pause_ms / 1000 if pause_s is None else pause_s, should_stop=should_stop)
    except Exception as e:  # recorded, then raised: the next round retries
        error = f"{e.__class__.__name__}: {e}"
        raise
    finally:
        counts = res.counts if res is not None else {}
        run = store.lifecycle.record_run(
            project_id, dry_run=False, status="error" if error else "ok", cutoffs=cutoffs, counts=counts,
            batches=res.batches if res else 0, max_tx_ms=round(res.max_tx_ms, 2) if res else None, error=error,
            actor=actor.label(), started_at=started)
        if res is not None and (res.total or error):
            store.audit.append(project_id=project_id, actor=actor, action="retention.purge",
                               target_type="project", target_id=project_id,
                               after={"counts": counts, "run_id": run.id},
                               detail={"cutoffs": run.cutoffs, "batches": run.batches, "max_tx_ms": run.max_tx_ms,
                                       "error": error})
    return run


class RetentionJob:
    """The worker's retention job (see the module docstring). ``run_once`` purges every project
    whose run is due and returns the rows deleted."""

    name = "retention"

    def __init__(self, store: Store, settings: Settings, *, interval_s: float = 60.0) -> None:
        self.store = store
        self.settings = settings
        self.interval_s = interval_s
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> int:
        now = datetime.now(UTC)
        if self.settings.retention_days:
            self.store.lifecycle.ensure_policies()
        due = self.store.lifecycle.claim_due(
            now=now, next_at=now + timedelta(seconds=self.settings.retention_interval_s))
        deleted = 0
        for policy in due:
            if policy.legal_hold:
                logger.info("retention: project %s is under a legal hold; nothing deleted", policy.project_id)
                continue
            days = effective_days(policy, self.settings.retention_days)
            if not any(days.values()):
                continue
            t0 = time.perf_counter()
            run = run_retention(self.store, self.settings, policy.project_id, actor=SYSTEM_ACTOR, now=now,
                                should_stop=self._stop.is_set)
            n = sum(run.counts.values())
            deleted += n
            if n:
                logger.info("retention: project %s: %d rows deleted in %d batches (%.1f s, longest %.0f ms)",
                            policy.project_id, n, run.batches, time.perf_counter() - t0, run.max_tx_ms or 0)
        return deleted
