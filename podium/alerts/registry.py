"""The alert channel registry: channel types by name, filled from the plugin hook
``register_alert_channels`` (built-ins first, then installed plugins) on first use."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podium.alerts.base import Channel
from podium.errors import ValidationFailed
from podium.plugins.factory import build_registered

__all__ = ["ChannelSpec", "build", "channel_specs", "register_channel"]


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    factory: Callable[..., Channel]
    description: str
    plugin: str = "built-in"


_REGISTRY: dict[str, ChannelSpec] = {}
_LOCK = threading.RLock()
_LOADED = False


def register_channel(name: str, factory: Callable[..., Channel], *, description: str = "",
                     plugin: str = "built-in", replace_existing: bool = False) -> ChannelSpec:
    """Register a channel type; ``factory(**params)`` builds it (usually a :class:`Channel` subclass)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"bad alert channel name {name!r}: letters, digits, - _ .")
    desc = description or getattr(factory, "description", "") or (inspect.getdoc(factory) or "").split("\n")[0]
    spec = ChannelSpec(name, factory, desc, plugin)
    with _LOCK:
        if name in _REGISTRY and not replace_existing:
            raise ValueError(f"alert channel {name!r} is already registered")
        _REGISTRY[name] = spec
    return spec


def _ensure_plugins() -> None:
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        from podium.plugins.manager import load_alert_channels

        load_alert_channels(register_channel)
        _LOADED = True


def channel_specs() -> dict[str, ChannelSpec]:
    _ensure_plugins()
    with _LOCK:
        return dict(_REGISTRY)


def build(type: str, params: dict[str, Any] | None = None, *, where: str = "channel") -> Channel:
    """Build channel ``type`` with ``params``; unknown types and bad parameters are a 400 that
    lists what exists / what the channel accepts. ``env:NAME`` values are read now."""
    specs = channel_specs()
    channel = build_registered("alert channel", type, {n: sp.factory for n, sp in specs.items()}, params,
                               where=where, unknown="alert channel type")
    spec = specs[type]
    if not callable(getattr(channel, "send", None)):
        raise ValidationFailed(
            f"alert channel {type!r} (plugin {spec.plugin!r}) built {channel.__class__.__name__}, which has no "
            "send(alert); the plugin must return a podium.alerts.Channel",
            details=[{"loc": where, "msg": "not a channel", "type": type}])
    return channel


def _reset() -> None:
    global _LOADED
    with _LOCK:
        _REGISTRY.clear()
        _LOADED = False
