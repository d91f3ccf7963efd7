"""The ``webhook`` channel: POST a JSON body that Slack (and Mattermost, Rocket.Chat, Discord's
``/slack`` endpoint) renders as a message (``text`` + Block Kit ``blocks``), with the structured
alert under ``podium`` for anything else that reads it."""

from __future__ import annotations

from typing import Any

from podium.alerts.base import Alert, Channel, resolve_secret
from podium.alerts.transport import check_url, post_json, safe_target

__all__ = ["WebhookChannel", "headline", "slack_body"]


def _esc(text: str) -> str:
    """Slack mrkdwn escaping (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def headline(alert: Alert) -> str:
    return f"[{alert.status.upper()}] {alert.severity}: {alert.title} ({alert.project})"


def slack_body(alert: Alert) -> dict[str, Any]:
    """The webhook's JSON body for ``alert``."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(alert)[:150]}},
    ]
    if alert.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _esc(alert.summary)[:3000]}})
    blocks.append({"type": "section", "fields": [
        {"type": "mrkdwn", "text": f"*Project*\n{_esc(alert.project)}"},
        {"type": "mrkdwn", "text": f"*Rule*\n{_esc(alert.rule)}"},
        {"type": "mrkdwn", "text": f"*Value*\n{_num(alert.value)}"},
        {"type": "mrkdwn", "text": f"*Threshold*\n{_num(alert.threshold)}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*Started*\n{alert.started_at.isoformat(timespec='seconds')}"},
    ]})
    context = [f"{_esc(k)}={_esc(v)}" for k, v in sorted(alert.labels.items())]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)[:3000]}]})
    if alert.url:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{alert.url}|Open in Podium>"}})
    text = headline(alert) + (f": {alert.summary}" if alert.summary else "")
    return {"text": text, "blocks": blocks, "podium": {"version": 1, "alert": alert.to_dict()}}


class WebhookChannel(Channel):
    """POST the alert as Slack-compatible JSON to ``url`` (an incoming-webhook URL, or any endpoint)."""

    name = "webhook"
    description = "POST Slack-compatible JSON (text + blocks, and the alert under `podium`) to a URL"

    def __init__(self, url: str, headers: dict[str, str] | None = None, *, timeout_s: float = 10.0,
                 retries: int = 2, backoff_s: float = 0.5) -> None:
        super().__init__(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
        self.url = check_url(resolve_secret(url, "url"))
        if headers is not None and not (isinstance(headers, dict)
                                        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())):
            raise ValueError("headers must be a mapping of header names to strings (values may be env:NAME)")
        self.headers = {k: resolve_secret(v, f"headers.{k}") for k, v in (headers or {}).items()}
        self.target = safe_target(self.url)
        self._secrets = [self.url, *self.headers.values()]

    def _deliver(self, alert: Alert) -> int | None:
        return post_json(self.url, slack_body(alert), headers={"User-Agent": "podium-alerts", **self.headers},
                         timeout_s=self.timeout_s)
