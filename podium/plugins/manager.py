"""The plugin manager: built-ins (``DEFAULT_PLUGINS``) then the ``podium`` entry points, loaded
lazily on first use. Each plugin's hooks are called one by one so that everything registered is
attributed to its plugin, and a name registered twice fails naming both plugins."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from podium.errors import ConfigurationError
from podium.plugins import hookspecs

DEFAULT_PLUGINS: tuple[str, ...] = (
    "podium.evals.scorers.builtins",
    "podium.gateway.providers.builtins",
    "podium.guardrails.builtins",
    "podium.redteam.builtins",
    "podium.alerts.builtins",
)
HOOKS = ("register_scorers", "register_providers", "register_guardrails", "register_alert_channels",
         "register_probes")


class PluginError(ConfigurationError):
    code = "plugin_error"


@dataclass
class PluginInfo:
    name: str
    version: str  # "built-in" for Podium's own
    module: str
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "module": self.module,
                "hooks": list(self.hooks), "registered": {k: list(v) for k, v in self.registered.items()}}


_LOCK = threading.RLock()
_PM: pluggy.PluginManager | None = None
_COLLECTED: dict[str, dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]]] | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, built on first call."""
    global _PM
    with _LOCK:
        if _PM is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for dotted in DEFAULT_PLUGINS:
                pm.register(importlib.import_module(dotted), name=dotted)
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            _PM = pm
        return _PM


def _plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    for p, dist in pm.list_plugin_distinfo():
        if p is plugin:
            return str(dist.project_name)
    return pm.get_name(plugin) or repr(plugin)


def _collect(pm: pluggy.PluginManager) -> dict[str, dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    """Call every plugin's hooks; ``{hook: {name: (plugin, args, kwargs)}}``."""
    out: dict[str, dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]]] = {h: {} for h in HOOKS}
    for hook in HOOKS:
        for impl in getattr(pm.hook, hook).get_hookimpls():  # registration order
            owner = _plugin_label(pm, impl.plugin)

            def register(name: str, *args: Any, _hook: str = hook, _owner: str = owner, **kwargs: Any) -> None:
                seen = out[_hook].get(name)
                if seen is not None:
                    raise PluginError(
                        f"plugin {_owner!r} registers {_hook.removeprefix('register_')[:-1]} {name!r}, "
                        f"which plugin {seen[0]!r} already registered; uninstall one of them or rename the type",
                        details=[{"name": name, "hook": _hook, "plugins": [seen[0], _owner]}],
                    )
                out[_hook][name] = (_owner, args, kwargs)

            impl.function(register=register)
    return out


def _collected() -> dict[str, dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    global _COLLECTED
    with _LOCK:
        if _COLLECTED is None:
            _COLLECTED = _collect(get_plugin_manager())
        return _COLLECTED


def load_scorers(register_scorer: Callable[..., Any]) -> None:
    """Feed every plugin's scorers to the scorer registry (``podium.evals.scorers.base.register_scorer``)."""
    for name, (_owner, args, kwargs) in _collected()["register_scorers"].items():
        register_scorer(name, *args, replace_existing=True, **kwargs)


def provider_factories() -> dict[str, Callable[..., Any]]:
    """``{provider name: factory(settings)}`` from every plugin."""
    return {name: args[0] if args else kwargs["factory"]
            for name, (_o, args, kwargs) in _collected()["register_providers"].items()}


def load_guardrails(register_scanner: Callable[..., Any]) -> None:
    """Feed every plugin's guardrail scanners to the scanner registry
    (``podium.guardrails.registry.register_scanner``), each tagged with its plugin."""
    for name, (owner, args, kwargs) in _collected()["register_guardrails"].items():
        register_scanner(name, *args, plugin=owner, replace_existing=True, **kwargs)


def load_alert_channels(register_channel: Callable[..., Any]) -> None:
    """Feed every plugin's alert channels to the channel registry
    (``podium.alerts.registry.register_channel``), each tagged with its plugin."""
    for name, (owner, args, kwargs) in _collected()["register_alert_channels"].items():
        register_channel(name, *args, plugin=owner, replace_existing=True, **kwargs)


def probe_sets() -> dict[str, dict[str, Any]]:
    """``{set name: {"source", "family", "plugin"}}``: the red-team probe sets of every plugin
    (``source`` a YAML path or its content; see :mod:`podium.redteam.probes`)."""
    return {name: {"source": args[0] if args else kwargs["source"], "family": kwargs.get("family"), "plugin": owner}
            for name, (owner, args, kwargs) in _collected()["register_probes"].items()}


def list_plugins() -> list[PluginInfo]:
    """The loaded plugins: name, version (or "built-in"), hooks implemented and what each registered."""
    pm = get_plugin_manager()
    collected = _collected()
    dists = {id(p): d for p, d in pm.list_plugin_distinfo()}
    infos: list[PluginInfo] = []
    for plugin in pm.get_plugins():
        dist = dists.get(id(plugin))
        name = str(dist.project_name) if dist else (pm.get_name(plugin) or repr(plugin))
        info = PluginInfo(name=name, version=str(dist.version) if dist else "built-in",
                          module=getattr(plugin, "__name__", repr(plugin)),
                          hooks=sorted(c.name for c in (pm.get_hookcallers(plugin) or [])))
        for hook, regs in collected.items():
            names = sorted(n for n, (owner, _a, _k) in regs.items() if owner == name)
            if names:
                info.registered[hook.removeprefix("register_")] = names
        infos.append(info)
    return sorted(infos, key=lambda i: (i.version != "built-in", i.name))


def _reset() -> None:
    """Forget the loaded plugins (tests)."""
    global _PM, _COLLECTED
    with _LOCK:
        _PM = None
        _COLLECTED = None
