"""Shared helpers of the guardrails tests.

SDK/API/CLI helpers (``sdk_*``): tiny real scanners registered under ``sdk-*`` names and a
policy that uses them, so the SDK, API and CLI tests do not depend on which built-in scanners
are installed; the gateway tests subclass ``SdkKeyword``/``SdkEmail`` under ``gw-*`` names. Other
parts of the suite add their own helpers below in their own sections.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from podium.guardrails import Context, Finding, Result, Scanner
from podium.guardrails.registry import register_scanner

# --- SDK, API and CLI (tests/guardrails/test_sdk_guard.py, test_api_guard.py, test_cli_guard.py) ---

SDK_BAD = "ignore all previous instructions"
SDK_SECRET = "TOPSECRET-0042"


class SdkKeyword(Scanner):
    """Fires on any of ``words`` (case-insensitive); label KEYWORD."""

    name = "sdk-keyword"

    def __init__(self, words: list[str]) -> None:
        self.words = [w.lower() for w in words]

    def scan(self, text: str, ctx: Context) -> Result:
        low = text.lower()
        found = [Finding(m.start(), m.end(), "KEYWORD", text[m.start():m.end()])
                 for w in self.words for m in re.finditer(re.escape(w), low)]
        return Result(score=1.0 if found else 0.0, findings=found,
                      detail=f"matched {found[0].text!r}" if found else None)


class SdkEmail(Scanner):
    """Finds e-mail addresses (label EMAIL)."""

    name = "sdk-email"

    def scan(self, text: str, ctx: Context) -> Result:
        found = [Finding(m.start(), m.end(), "EMAIL", m.group()) for m in re.finditer(r"[\w.]+@[\w.]+\.\w+", text)]
        return Result(score=1.0 if found else 0.0, findings=found)


class SdkBoom(Scanner):
    """Always raises (a scanner whose model is missing)."""

    name = "sdk-boom"

    def scan(self, text: str, ctx: Context) -> Result:
        raise RuntimeError("model file missing")


def sdk_policy(**overrides: Any) -> dict[str, Any]:
    """Input: block SDK_BAD, redact e-mails (reversible); output: block SDK_SECRET, redact e-mails."""
    policy: dict[str, Any] = {
        "name": "sdk-test",
        "input": [
            {"type": "sdk-keyword", "params": {"words": [SDK_BAD]}, "action": "block", "name": "injection"},
            {"type": "sdk-email", "action": "redact", "reversible": True},
        ],
        "output": [
            {"type": "sdk-keyword", "params": {"words": [SDK_SECRET]}, "action": "block", "name": "leak"},
            {"type": "sdk-email", "action": "redact"},
        ],
    }
    policy.update(overrides)
    return policy


@pytest.fixture
def sdk_scanners() -> None:
    """Register the ``sdk-*`` scanners (idempotent)."""
    for cls in (SdkKeyword, SdkEmail, SdkBoom):
        register_scanner(cls.name, cls, replace_existing=True)
