"""Podium's plugin contract, on pluggy (the library pytest, datasette and simonw/llm use).

A plugin is a module with ``@hookimpl`` functions, published under the ``podium`` entry-point
group. The built-ins register through the same hooks (``DEFAULT_PLUGINS``). Nothing is loaded at
import time: the manager loads the built-ins and the installed plugins on first use.
See ``docs/plugins.md``.
"""

from podium.plugins.hookspecs import hookimpl, hookspec
from podium.plugins.manager import (
    DEFAULT_PLUGINS,
    PluginError,
    PluginInfo,
    get_plugin_manager,
    list_plugins,
    load_scorers,
    provider_factories,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "PluginError",
    "PluginInfo",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "list_plugins",
    "load_scorers",
    "provider_factories",
]
