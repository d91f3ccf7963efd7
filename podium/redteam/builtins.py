"""Podium's own probe sets (``probes/*.yaml``), registered through the plugin hook
``register_probes`` like any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from podium.plugins.hookspecs import hookimpl

PROBES_DIR = Path(__file__).resolve().parent / "probes"


@hookimpl
def register_probes(register: Callable[..., Any]) -> None:
    for path in sorted(PROBES_DIR.glob("*.yaml")):
        register(path.stem, path)
