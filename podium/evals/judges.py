"""Where judge prompts live in the prompt registry: pure naming, usable server-side.

Every built-in judge template ``judge.<name>`` has a registry name ``podium/judge/<name>``
(``judge.factuality`` -> ``podium/judge/factuality``). The client side, which fetches those
prompts for a run and pushes the built-ins to the registry, is :mod:`podium.experiments.judges`.
"""

from __future__ import annotations

__all__ = ["PREFIX", "registry_name"]

PREFIX = "podium/judge/"


def registry_name(template_name: str) -> str:
    """``judge.factuality`` -> ``podium/judge/factuality``."""
    return PREFIX + template_name.removeprefix("judge.").replace(".", "/")
