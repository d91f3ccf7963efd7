"""One rule's evaluation: measure its value (:func:`measure`), decide the new state and the one
event it makes (:func:`decide`: fire, re-notify, resolve, or suppress under mute or cooldown),
and build the :class:`~podium.alerts.Alert` its channels send.

State machine (``state`` is ``ok`` or ``firing``; ``episode`` counts firings and is part of the
dedup key, so a PagerDuty ``resolve`` closes the incident its ``trigger`` opened):

- ok -> breached: ``firing``, episode + 1. Sent (event ``fired``) unless muted or within
  ``cooldown_s`` of the rule's last notification (event ``suppressed``; the firing is sent
  later if it is still firing when the mute ends or the cooldown passes).
- firing and still breached: every ``renotify_s`` (0: never) a reminder (``renotified``).
- firing -> not breached: ``ok`` (event ``resolved``), sent when the firing was sent and the
  rule is not muted. A manual resolve does the same at once.
- not enough data (no traffic, fewer than ``min_samples`` traces, no baseline): no change.
- the evaluation failed (a drift monitor that is gone): no change; ``last_error`` says why and
  the first failure of a run is an ``error`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from podium.alerts import Alert, Delivery, build
from podium.core.metrics import MetricQuery
from podium.monitor.alerting.conditions import Outcome, anomaly, change, threshold, windows

__all__ = ["Decision", "Source", "StoreSource", "alert_for", "decide", "dedup_key", "deliver", "manual_resolve",
           "measure", "metric_query"]


class Source(Protocol):
    """Where a rule's numbers come from (the store in production; anything in tests)."""

    def metric(self, project_id: str, q: MetricQuery, start: datetime, end: datetime) -> float | None: ...

    def drift(self, project_id: str, monitor: str, statistic: str) -> float | None: ...


class StoreSource:
    """The store's metrics (``store.metrics.value``) and drift results (``store.drift.latest_value``)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def metric(self, project_id: str, q: MetricQuery, start: datetime, end: datetime) -> float | None:
        repo = getattr(self._store, "metrics", None)
        if repo is None:
            from podium.store.repos.metrics import MetricsRepo

            repo = self._store.metrics = MetricsRepo(self._store.engine)
        v = repo.value(project_id, q, start, end)
        return None if v is None else float(v)

    def drift(self, project_id: str, monitor: str, statistic: str) -> float | None:
        repo = getattr(self._store, "drift", None)
        if repo is None:
            raise RuntimeError("this store has no drift repository (store.drift)")
        v = repo.latest_value(project_id, monitor, statistic)
        return None if v is None else float(v)


def metric_query(condition: dict[str, Any]) -> MetricQuery:
    return MetricQuery(metric=condition["metric"], agg=condition.get("agg") or "avg",
                       filters=dict(condition.get("filters") or {}))


def measure(rule: dict[str, Any], now: datetime, source: Source) -> tuple[Outcome, tuple[datetime, datetime]]:
    """The rule's outcome at ``now`` and the current window."""
    cond = rule["condition"]
    params = rule.get("params") or {}
    wins = windows(rule["kind"], now, int(rule["window_s"]), params)
    if "drift" in cond:
        v = source.drift(rule["project_id"], cond["drift"], cond["statistic"])
        return threshold(v, rule["op"], rule["threshold"]), wins[0]
    q = metric_query(cond)
    pid = rule["project_id"]
    start, end = wins[0]
    if int(rule.get("min_samples") or 0) > 0:
        n = source.metric(pid, MetricQuery("traces", "count", filters=q.filters), start, end) or 0
        if n < int(rule["min_samples"]):
            return Outcome(None, reason=f"{n:g} trace(s) in the window; the rule needs {rule['min_samples']}"), wins[0]
    observed = source.metric(pid, q, start, end)
    if rule["kind"] == "change":
        before = source.metric(pid, q, *wins[1]) if observed is not None else None
        return change(observed, before, rule["op"], rule["threshold"], params.get("change_mode") or "relative"), wins[0]
    if rule["kind"] == "anomaly":
        history = [source.metric(pid, q, s, e) for s, e in wins[1:]] if observed is not None else []
        return anomaly(observed, history, rule["op"], rule["threshold"], bool(params.get("two_sided"))), wins[0]
    return threshold(observed, rule["op"], rule["threshold"]), wins[0]


@dataclass
class Decision:
    """What an evaluation changes: the state columns, the event to record (or None) and what to
    send (``firing``, ``resolved`` or None)."""

    changes: dict[str, Any]
    event: str | None = None
    send: str | None = None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _muted(rule: dict[str, Any], now: datetime) -> bool:
    mu = rule.get("muted_until")
    return mu is not None and mu > now


def _since(rule: dict[str, Any], now: datetime) -> float | None:
    last = rule.get("last_notified_at")
    return None if last is None else (now - last).total_seconds()


def decide(rule: dict[str, Any], outcome: Outcome, now: datetime) -> Decision:
    changes: dict[str, Any] = {"last_evaluated_at": now, "last_error": outcome.error}
    if outcome.observed is not None or outcome.error is None:
        changes["last_value"] = outcome.observed
    if outcome.breached is None:
        if outcome.error and not rule.get("last_error"):  # the first failure of a run of them goes in the history
            return Decision(changes, "error", None, f"evaluation failed: {outcome.error}")
        return Decision(changes, message=outcome.error or outcome.reason)
    muted = _muted(rule, now)
    since = _since(rule, now)
    cooling = since is not None and since < int(rule.get("cooldown_s") or 0)
    if outcome.breached:
        if rule["state"] != "firing":
            ep = int(rule["episode"]) + 1
            changes.update(state="firing", episode=ep, fired_at=now)
            if muted:
                return Decision(changes, "suppressed", None,
                                f"{outcome.reason}; muted until {rule['muted_until'].isoformat(timespec='seconds')}")
            if cooling:
                return Decision(changes, "suppressed", None,
                                f"{outcome.reason}; in cooldown ({since:.0f}s since the last notification, "
                                f"cooldown {rule['cooldown_s']}s)")
            changes.update(notified_episode=ep, last_notified_at=now)
            return Decision(changes, "fired", "firing", outcome.reason)
        if muted:
            return Decision(changes, message=outcome.reason)
        if int(rule["notified_episode"]) != int(rule["episode"]) and not cooling:
            # suppressed when it began (muted or cooling down) and still firing: send it now
            changes.update(notified_episode=rule["episode"], last_notified_at=now)
            return Decision(changes, "fired", "firing", outcome.reason + " (held back by mute or cooldown until now)")
        renotify = int(rule.get("renotify_s") or 0)
        if renotify > 0 and since is not None and since >= renotify:
            changes.update(last_notified_at=now)
            return Decision(changes, "renotified", "firing", outcome.reason + " (still firing)")
        return Decision(changes, message=outcome.reason)
    if rule["state"] == "firing":
        changes.update(state="ok", fired_at=None)
        sent = int(rule["notified_episode"]) == int(rule["episode"]) and not muted
        return Decision(changes, "resolved", "resolved" if sent else None, outcome.reason)
    return Decision(changes, message=outcome.reason)


def manual_resolve(rule: dict[str, Any], now: datetime, actor: str) -> Decision:
    """A person resolved the rule: ok at once, the resolution sent if the firing was. If the
    condition still holds, the next evaluation fires a new episode (after the cooldown)."""
    sent = int(rule["notified_episode"]) == int(rule["episode"]) and not _muted(rule, now)
    return Decision({"state": "ok", "fired_at": None}, "resolved", "resolved" if sent else None,
                    f"resolved by {actor}")


def dedup_key(rule: dict[str, Any], episode: int | None = None) -> str:
    ep = rule["episode"] if episode is None else episode
    return f"podium/{rule['project_id']}/{rule['id']}/{ep}"


def alert_for(rule: dict[str, Any], project: str, status: str, *, value: float | None, message: str,
              base_url: str, now: datetime, test: bool = False) -> Alert:
    """The notification for ``rule`` (``status`` firing or resolved)."""
    cond = rule["condition"]
    if "drift" in cond:
        watched = f"drift {cond['drift']}.{cond['statistic']}"
    else:
        watched = f"{cond.get('agg') or 'avg'}({cond['metric']})"
    labels = {"kind": rule["kind"], "watch": watched, "window": f"{rule['window_s']}s"}
    labels.update({f"filter.{k}": str(v) for k, v in sorted((cond.get("filters") or {}).items())})
    fired_at = rule.get("fired_at") or now
    title = f"{rule['name']}: {watched} {rule['op']} {rule['threshold']:g}"
    if test:
        title = f"Test: {title}"
    return Alert(rule=rule["name"], project=project, title=title, severity=rule["severity"],
                 status="resolved" if status == "resolved" else "firing", summary=message, value=value,
                 threshold=rule["threshold"], labels=labels, started_at=fired_at,
                 ended_at=now if status == "resolved" else None,
                 url=f"{base_url.rstrip('/')}/alerts/{rule['id']}",
                 dedup_key=f"podium/{rule['project_id']}/{rule['id']}/test" if test else dedup_key(rule))


def deliver(rule: dict[str, Any], alert: Alert) -> list[Delivery]:
    """Send ``alert`` through each of the rule's channels; a channel that cannot be built (an
    ``env:NAME`` no longer set) is a failed delivery, never an exception."""
    out = []
    for i, ch in enumerate(rule.get("channels") or []):
        try:
            channel = build(ch["type"], ch.get("params") or {}, where=f"channels[{i}]")
        except Exception as e:
            msg = getattr(e, "message", None) or str(e)
            out.append(Delivery(str(ch.get("type")), False, None, f"cannot build the channel: {msg}", 0.0, 0, ""))
            continue
        out.append(channel.send(alert))
    return out


def next_window(now: datetime, rule: dict[str, Any]) -> datetime:
    return now + timedelta(seconds=int(rule["eval_interval_s"]))
