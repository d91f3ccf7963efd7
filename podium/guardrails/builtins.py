"""The built-in guardrail scanners, registered through the plugin hook like any plugin's.
Each scanner module is imported when the registry first loads, not at ``import podium``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podium.plugins.hookspecs import hookimpl


@hookimpl
def register_guardrails(register: Callable[..., Any]) -> None:
    # One block per scanner module (each keeps its heavy imports inside its scan/warm).
    pass
