"""The ``pagerduty`` channel: a PagerDuty Events API v2 event (``trigger`` when an alert fires,
``resolve`` when it resolves, tied by ``dedup_key``), POSTed to ``url`` (PagerDuty's endpoint by
default; any Events-v2-compatible receiver works)."""

from __future__ import annotations

from typing import Any

from podium.alerts.base import Alert, Channel, resolve_secret
from podium.alerts.transport import check_url, post_json, safe_target

__all__ = ["DEFAULT_URL", "PagerDutyChannel", "pagerduty_event"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"


def pagerduty_event(alert: Alert, routing_key: str, *, source: str | None = None,
                    component: str | None = None, group: str | None = None) -> dict[str, Any]:
    """The Events API v2 body for ``alert``."""
    if alert.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.key}
    summary = alert.title + (f": {alert.summary}" if alert.summary else "")
    payload: dict[str, Any] = {
        "summary": summary[:1024],
        "source": source or f"podium/{alert.project}",
        "severity": alert.severity,  # Podium's three are among PagerDuty's critical|error|warning|info
        "timestamp": alert.started_at.isoformat(),
        "class": alert.rule,
        "custom_details": {"project": alert.project, "rule": alert.rule, "value": alert.value,
                           "threshold": alert.threshold, "labels": dict(alert.labels), "summary": alert.summary},
    }
    if component:
        payload["component"] = component
    payload["group"] = group or alert.project
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": "trigger", "dedup_key": alert.key,
                             "payload": payload, "client": "Podium"}
    if alert.url:
        event["client_url"] = alert.url
        event["links"] = [{"href": alert.url, "text": "Open in Podium"}]
    return event


class PagerDutyChannel(Channel):
    """Trigger and resolve PagerDuty incidents (Events API v2) with the integration's ``routing_key``."""

    name = "pagerduty"
    description = "PagerDuty Events API v2: trigger on firing, resolve on resolved (same dedup_key)"

    def __init__(self, routing_key: str, url: str = DEFAULT_URL, source: str | None = None,
                 component: str | None = None, group: str | None = None, *, timeout_s: float = 10.0,
                 retries: int = 2, backoff_s: float = 0.5) -> None:
        super().__init__(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        self.routing_key = resolve_secret(routing_key, "routing_key")
        if not isinstance(self.routing_key, str) or not self.routing_key.strip():
            raise ValueError("routing_key must be the integration key of a PagerDuty service (or env:NAME)")
        self.url = check_url(resolve_secret(url, "url"))
        self.source, self.component, self.group = source, component, group
        self.target = safe_target(self.url)
        self._secrets = [self.routing_key]

    def _deliver(self, alert: Alert) -> int | None:
        body = pagerduty_event(alert, self.routing_key, source=self.source, component=self.component,
                               group=self.group)
        return post_json(self.url, body, headers={"User-Agent": "podium-alerts"}, timeout_s=self.timeout_s)
