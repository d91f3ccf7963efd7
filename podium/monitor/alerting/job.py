"""The alert job: every ``interval_s`` it claims the rules that are due (a compare-and-set on
``next_eval_at``, so two workers never evaluate the same rule at once), evaluates each, sends
through the rule's channels and records the event with its deliveries.

:class:`Alerting` also serves the API: a manual resolve and a test send go through it, so they
build the same alerts (same dedup key, same URL) as the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from podium.alerts import Alert, Delivery
from podium.monitor.alerting import metrics
from podium.monitor.alerting.conditions import Outcome
from podium.monitor.alerting.evaluator import (
    Decision,
    Source,
    StoreSource,
    alert_for,
    decide,
    deliver,
    manual_resolve,
    measure,
)

__all__ = ["AlertJob", "Alerting"]

log = logging.getLogger("podium.monitor.alerting")


def _now() -> datetime:
    return datetime.now(UTC)


class Alerting:
    """Evaluate, resolve and test rules against a store (``store.alerts``)."""

    def __init__(self, store: Any, *, source: Source | None = None, base_url: str = "http://127.0.0.1:8700",
                 clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.source: Source = source if source is not None else StoreSource(store)
        self.base_url = base_url
        self.clock = clock
        self._projects: dict[str, str] = {}

    def project_name(self, project_id: str) -> str:
        name = self._projects.get(project_id)
        if name is None:
            try:
                name = str(self.store.projects.get_project(project_id).name)
            except Exception:
                name = project_id
            self._projects[project_id] = name
        return name

    def _send(self, rule: dict[str, Any], status: str, value: float | None, message: str,
              now: datetime, *, test: bool = False) -> list[Delivery]:
        alert: Alert = alert_for(rule, self.project_name(rule["project_id"]), status, value=value,
                                 message=message, base_url=self.base_url, now=now, test=test)
        deliveries = deliver(rule, alert)
        metrics.observe_deliveries(deliveries)
        return deliveries

    def evaluate(self, rule: dict[str, Any], now: datetime | None = None) -> tuple[Decision, list[Delivery]]:
        """Evaluate one (claimed) rule, send what it decides and save it (unless a manual resolve
        changed its state meanwhile); returns the decision and the deliveries it made."""
        now = now or self.clock()
        window: tuple[datetime | None, datetime | None] = (None, None)
        try:
            outcome, window = measure(rule, now, self.source)
        except Exception as e:
            log.warning("alert rule %s (%s): evaluation failed: %s", rule["name"], rule["id"], e)
            outcome = Outcome(None, error=f"{type(e).__name__}: {e}")
        d = decide(rule, outcome, now)
        metrics.observe_evaluation(outcome.breached, outcome.error)
        if d.event is not None:
            metrics.observe_event(d.event)
        if d.event is None:
            self.store.alerts.save_state(rule["project_id"], rule["id"], expect_state=rule["state"],
                                         expect_episode=rule["episode"], changes=d.changes, event=None, now=now)
            return d, []
        after = {**rule, **d.changes}
        deliveries = self._send(after, d.send, outcome.observed, d.message, now) if d.send else []
        event = {"status": d.event, "episode": after["episode"], "value": outcome.observed,
                 "threshold": rule["threshold"], "window_start": window[0], "window_end": window[1],
                 "message": d.message, "deliveries": [x.to_dict() for x in deliveries]}
        saved = self.store.alerts.save_state(rule["project_id"], rule["id"], expect_state=rule["state"],
                                             expect_episode=rule["episode"], changes=d.changes, event=event, now=now)
        if not saved:
            log.info("alert rule %s changed while it was evaluated; its new state was not saved", rule["id"])
        return d, deliveries

    def resolve(self, rule: dict[str, Any], actor: str) -> tuple[bool, list[Delivery]]:
        """Resolve a firing rule by hand; False when it was not firing."""
        if rule["state"] != "firing":
            return False, []
        now = self.clock()
        d = manual_resolve(rule, now, actor)
        deliveries = self._send(rule, "resolved", rule.get("last_value"), d.message, now) if d.send else []
        event = {"status": "resolved", "episode": rule["episode"], "value": rule.get("last_value"),
                 "threshold": rule["threshold"], "message": d.message, "actor": actor,
                 "deliveries": [x.to_dict() for x in deliveries]}
        ok = self.store.alerts.save_state(rule["project_id"], rule["id"], expect_state="firing",
                                          expect_episode=rule["episode"], changes=d.changes, event=event, now=now)
        return ok, deliveries

    def test(self, rule: dict[str, Any], actor: str) -> list[Delivery]:
        """Send a test alert through the rule's channels and record it (status ``test``)."""
        now = self.clock()
        msg = f"a test of alert rule {rule['name']!r}, sent by {actor}; nothing is wrong"
        deliveries = self._send(rule, "firing", rule.get("last_value"), msg, now, test=True)
        self.store.alerts.add_event(rule["project_id"], rule["id"], {
            "status": "test", "episode": rule["episode"], "value": rule.get("last_value"),
            "threshold": rule["threshold"], "message": msg, "actor": actor,
            "deliveries": [x.to_dict() for x in deliveries]}, now=now)
        return deliveries


class AlertJob:
    """The worker's job (:class:`podium.monitor.jobs.Job`): evaluate due alert rules."""

    name = "alerts"

    def __init__(self, store: Any, *, source: Source | None = None, base_url: str = "http://127.0.0.1:8700",
                 interval_s: float = 1.0, batch: int = 50, clock: Callable[[], datetime] = _now) -> None:
        self.interval_s = interval_s
        self.batch = batch
        self.alerting = Alerting(store, source=source, base_url=base_url, clock=clock)
        self.store = store
        self.evaluations = 0
        self.notifications = 0

    def run_once(self) -> int:
        now = self.alerting.clock()
        rules = self.store.alerts.claim_due(now, limit=self.batch)
        for rule in rules:
            t0 = time.perf_counter()
            try:
                _, deliveries = self.alerting.evaluate(rule, now)
            except Exception:
                log.exception("alert rule %s: evaluation round failed", rule.get("id"))
                continue
            self.evaluations += 1
            self.notifications += len(deliveries)
            log.debug("alert rule %s evaluated in %.1f ms", rule["id"], (time.perf_counter() - t0) * 1000)
        return len(rules)
