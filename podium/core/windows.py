"""Context windows of known chat models, next to their prices (``context_windows.json``).

:func:`context_window` looks a model up the way prices are looked up: exact name first
(case-insensitive), then without a ``provider/`` prefix, an ``@version`` or ``:tag`` suffix, and
finally the longest listed name that the model extends with ``-`` (``gpt-4o-2024-08-06`` ->
``gpt-4o``). Unknown models give None: callers then ask for the window explicitly.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

__all__ = ["context_window", "known_windows"]


@cache
def known_windows() -> dict[str, int]:
    """``model -> tokens`` from the bundled table."""
    text = resources.files("podium.core").joinpath("context_windows.json").read_text(encoding="utf-8")
    return {k.lower(): int(v) for k, v in json.loads(text)["models"].items()}


def _candidates(name: str) -> list[str]:
    out = [name]
    if "/" in name:
        out.append(name.rsplit("/", 1)[1])
    for c in list(out):
        for sep in ("@", ":"):
            if sep in c:
                out.append(c.split(sep, 1)[0])
    return out


def context_window(model: str | None) -> int | None:
    """The context window of ``model`` in tokens (prompt and completion together), or None."""
    table = known_windows()
    name = (model or "").strip().lower()
    if not name:
        return None
    candidates = _candidates(name)
    for c in candidates:
        if c in table:
            return table[c]
    best = None
    for c in candidates:
        for i, ch in enumerate(c):
            if ch == "-" and c[:i] in table and (best is None or i > len(best)):
                best = c[:i]
    return table[best] if best is not None else None
