"""The `no-pirates` guardrail scanner."""

from __future__ import annotations

import re

from podium.guardrails import Context, Finding, Result, Scanner


class NoPirates(Scanner):
    """Pirate talk (whole words, any case): "arr", "ahoy", "matey" unless told other ``words``."""

    name = "no-pirates"
    description = "Pirate talk: arr, ahoy, matey (or your own words), whole words, any case"

    def __init__(self, words: list[str] | None = None) -> None:
        words = words if words is not None else ["arr", "ahoy", "matey"]
        if not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError("words must be a non-empty list of non-empty strings")
        self.pattern = re.compile(r"\b(?:" + "|".join(re.escape(w.strip()) for w in words) + r")\b", re.IGNORECASE)

    def scan(self, text: str, ctx: Context) -> Result:
        found = [Finding(m.start(), m.end(), "PIRATE", m.group()) for m in self.pattern.finditer(text)]
        return Result(score=1.0 if found else 0.0, findings=found,
                      detail=f"pirate talk: {', '.join(sorted({f.text.lower() for f in found}))}" if found else None)
