"""The scanner registry: scanner types by name, filled from the plugin hook
``register_guardrails`` (built-ins first, then installed plugins) on first use."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podium.guardrails.base import KINDS, Kind, Scanner
from podium.plugins.factory import build_registered

__all__ = ["ScannerSpec", "build", "register_scanner", "scanner_specs"]


@dataclass(frozen=True)
class ScannerSpec:
    name: str
    factory: Callable[..., Scanner]
    kinds: frozenset[Kind]
    description: str
    plugin: str = "built-in"


_REGISTRY: dict[str, ScannerSpec] = {}
_LOCK = threading.RLock()
_LOADED = False


def register_scanner(name: str, factory: Callable[..., Scanner], *, kinds: tuple[Kind, ...] | None = None,
                     description: str = "", plugin: str = "built-in", replace_existing: bool = False) -> ScannerSpec:
    """Register a scanner type; ``factory(**params)`` builds it (usually a :class:`Scanner` subclass)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"bad scanner name {name!r}: letters, digits, - _ .")
    ks = frozenset(kinds or getattr(factory, "kinds", None) or KINDS)
    desc = description or getattr(factory, "description", "") or (inspect.getdoc(factory) or "").split("\n")[0]
    spec = ScannerSpec(name, factory, ks, desc, plugin)
    with _LOCK:
        if name in _REGISTRY and not replace_existing:
            raise ValueError(f"scanner {name!r} is already registered")
        _REGISTRY[name] = spec
    return spec


def _ensure_plugins() -> None:
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        from podium.plugins.manager import load_guardrails

        load_guardrails(register_scanner)
        _LOADED = True


def scanner_specs() -> dict[str, ScannerSpec]:
    _ensure_plugins()
    with _LOCK:
        return dict(_REGISTRY)


def build(name: str, params: dict[str, Any], *, where: str = "scanner") -> Scanner:
    """Build scanner ``name`` with ``params``; unknown names and bad parameters are a 400 that
    lists what exists / what the scanner accepts."""
    specs = scanner_specs()
    return build_registered("guardrail scanner", name, {n: sp.factory for n, sp in specs.items()}, params,
                            where=where)


def _reset() -> None:
    global _LOADED
    with _LOCK:
        _REGISTRY.clear()
        _LOADED = False
