"""The built-in alert channels, registered through the plugin hook like any plugin's. The channel
modules are imported when the registry first loads, not at ``import podium``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podium.plugins.hookspecs import hookimpl


@hookimpl
def register_alert_channels(register: Callable[..., Any]) -> None:
    from podium.alerts import pagerduty, smtp, webhook

    register("webhook", webhook.WebhookChannel, description=webhook.WebhookChannel.description)
    register("email", smtp.EmailChannel, description=smtp.EmailChannel.description)
    register("pagerduty", pagerduty.PagerDutyChannel, description=pagerduty.PagerDutyChannel.description)
