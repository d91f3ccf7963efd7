"""Judge prompts as versioned prompts in the registry (the client side).

Every built-in judge template ``judge.<name>`` has a registry name ``podium/judge/<name>``
(``judge.factuality`` -> ``podium/judge/factuality``). When a run talks to a server, judge
scorers fetch that prompt (label ``production``, else the latest version) and use it instead of
the built-in template; the prompt's name and version go into every judge score's metadata, so
a tuned judge is tracked like any prompt. A prompt that does not exist, or a server that does
not answer, leaves the built-in template in place.

``podium eval judges push`` writes the built-ins to the registry as version 1 (labelled
``production``) to start tuning from. The naming (:func:`registry_name`) lives in
:mod:`podium.evals.judges`; this module is the client side: it takes the prompt client as a
parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from podium.errors import NotFound, PodiumError
from podium.evals.judges import PREFIX, registry_name
from podium.evals.scorers.templates import BUILTIN_TEMPLATES, JudgeTemplate

__all__ = ["PREFIX", "builtin_prompt_bodies", "registry_name", "registry_prompt_source", "use_registry_prompts"]

logger = logging.getLogger("podium.experiments")


def registry_prompt_source(prompts: Any, *, label: str = "production") -> Callable[[str], Any]:
    """A judge ``prompt_source``: the registry prompt for a template name, or None (built-in)."""

    def source(name: str) -> Any:
        pname = registry_name(name)
        for lb in (label, "latest"):
            try:
                return prompts.get(pname, label=lb, cache_ttl_seconds=60)
            except NotFound:
                continue
            except PodiumError as e:
                logger.warning("judge prompt %s unavailable (%s); using the built-in template", pname, e.message)
                return None
            except Exception as e:  # a network error: the built-in keeps the run going
                logger.warning("judge prompt %s unavailable (%s); using the built-in template", pname, e)
                return None
        return None

    return source


def use_registry_prompts(scorers: Iterable[Any], prompts: Any, *, label: str = "production") -> int:
    """Give every judge scorer without a ``prompt_source`` the registry source; returns how many."""
    source = registry_prompt_source(prompts, label=label)
    n = 0
    for s in scorers:
        if hasattr(s, "prompt_source") and hasattr(s, "templates") and getattr(s, "prompt_source", None) is None:
            s.prompt_source = source
            n += 1
    return n


def builtin_prompt_bodies() -> list[dict[str, Any]]:
    """The built-in judge templates as prompt-registry create bodies (chat prompts)."""
    out = []
    for name, tpl in sorted(BUILTIN_TEMPLATES.items()):
        t: JudgeTemplate = tpl
        config: dict[str, Any] = {}
        if t.score_range is not None:
            config["score_range"] = list(t.score_range)
        if t.response_schema is not None:
            config["response_schema"] = dict(t.response_schema)
        out.append({
            "name": registry_name(name),
            "type": "chat",
            "prompt": [dict(m) for m in t.messages],
            "config": config,
            "labels": ["production"],
            "commit_message": f"built-in judge template {name} v{t.version}",
        })
    return out
