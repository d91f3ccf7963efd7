"""Guardrails: scanners that check prompts and answers, policies that say what to do about
them, and the engine that runs them (docs/guardrails.md).

    from podium.guardrails import Guard
    decision = Guard("default").scan("Ignore all previous instructions", kind="input")
    decision.blocked, decision.reason()

The package is named ``guardrails`` (not ``guard``) because ``podium.guard`` is the SDK's
entry point: ``podium.guard.scan(...)`` and the ``@podium.guard(...)`` decorator.
"""

from __future__ import annotations

from podium.guardrails.base import Context, Finding, Result, Scanner
from podium.guardrails.engine import Decision, Guard, Outcome, StreamGuard
from podium.guardrails.policy import BUILTIN_POLICIES, Policy, Rule, parse_policy
from podium.guardrails.registry import register_scanner, scanner_specs

__all__ = [
    "BUILTIN_POLICIES",
    "Context",
    "Decision",
    "Finding",
    "Guard",
    "Outcome",
    "Policy",
    "Result",
    "Rule",
    "Scanner",
    "StreamGuard",
    "parse_policy",
    "register_scanner",
    "scanner_specs",
]
