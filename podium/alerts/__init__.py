"""Alert channels: where an alert goes (webhook/Slack, e-mail, PagerDuty, plugins). Rules and
their evaluation live in :mod:`podium.monitor.alerting`; they build channels with :func:`build`
and call ``channel.send(alert)``. User docs: docs/alerts.md."""

from __future__ import annotations

from podium.alerts.base import SEVERITIES, STATUSES, Alert, Channel, Delivery, DeliveryError
from podium.alerts.registry import ChannelSpec, build, channel_specs, register_channel

__all__ = ["SEVERITIES", "STATUSES", "Alert", "Channel", "ChannelSpec", "Delivery", "DeliveryError", "build",
           "channel_specs", "register_channel"]
