"""The built-in guardrail scanners, registered through the plugin hook like any plugin's.
Each scanner module is imported when the registry first loads, not at ``import podium``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podium.plugins.hookspecs import hookimpl


@hookimpl
def register_guardrails(register: Callable[..., Any]) -> None:
    # One block per scanner module (each keeps its heavy imports inside its scan/warm).
    from podium.guardrails.scanners import pii

    register("pii", pii.make_pii_scanner, kinds=("input", "output"), description=pii.PiiScanner.description)

    from podium.guardrails.scanners import injection, toxicity

    register("prompt-injection", injection.InjectionScanner, kinds=("input", "output"),
             description=injection.InjectionScanner.description)
    register("toxicity", toxicity.ToxicityScanner, kinds=("input", "output"),
             description=toxicity.ToxicityScanner.description)

    from podium.guardrails.scanners import secrets

    register("secrets", secrets.SecretsScanner, kinds=("input", "output"),
             description=secrets.SecretsScanner.description)

    from podium.guardrails.scanners import topics

    register("banned-topics", topics.BannedTopics, kinds=("input", "output"),
             description=topics.BannedTopics.description)
    register("competitors", topics.Competitors, kinds=("input", "output"),
             description=topics.Competitors.description)

    from podium.guardrails.scanners import checks, code, language, refusal, urls

    register("json-schema", checks.JsonSchema, kinds=("input", "output"), description=checks.JsonSchema.description)
    register("regex", checks.Regex, kinds=("input", "output"), description=checks.Regex.description)
    register("length", checks.Length, kinds=("input", "output"), description=checks.Length.description)
    register("language", language.Language, kinds=("input", "output"), description=language.Language.description)
    register("code", code.Code, kinds=("input", "output"), description=code.Code.description)
    register("urls", urls.Urls, kinds=("input", "output"), description=urls.Urls.description)
    register("refusal", refusal.Refusal, kinds=("output",), description=refusal.Refusal.description)

    from podium.guardrails.scanners import grounding

    register("groundedness", grounding.Groundedness, kinds=("output",),
             description=grounding.Groundedness.description)
    pass
