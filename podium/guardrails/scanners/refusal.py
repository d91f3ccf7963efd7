"""``refusal``: the model declined to answer ("I'm sorry, but I can't help with that").

Use it to count refusals (``action: flag``), or to block an answer that is only a refusal so
that the caller can retry or fall back. English phrase patterns (curly or straight
apostrophes), plus any ``patterns`` you add; no model.

Score, by where the refusal is: 1.0 when a refusal phrase opens the answer (within its first
two sentences) and the answer is short (``max_chars``, default 400: nothing but the refusal);
0.75 when it opens a longer answer (a refusal followed by something else: often a partial
answer or alternatives); 0.35 when the phrase only appears later (a caveat in an answer).
So the default threshold 0.5 fires on answers that start by refusing. Judged on the whole
answer only: score 0 on stream windows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from podium.guardrails.base import Context, Finding, Result, Scanner
from podium.guardrails.scanners.sentences import sentences

__all__ = ["REFUSAL_PATTERNS", "Refusal"]

_CANT = r"(?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to|must decline to)"
_DO = (r"(?:help|assist|provide|comply|do that|do this|fulfil+|answer|share|create|generate|write|support|engage|"
       r"discuss|give|offer|produce|complete|continue|participate|comment)")
REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"\bI(?:'m| am) (?:so |really |very )?(?:sorry|afraid)[,.]? (?:but )?(?:I|we) {_CANT}",
    rf"\b(?:I|we) {_CANT} {_DO}\b",
    r"\bI(?:'m| am) not (?:able|allowed|permitted|comfortable|going) to (?:help|assist|provide|answer|share|"
    r"discuss|do|create|generate|write|give|comply)",
    r"\bas an AI(?: language model| assistant| model)?,? I (?:can't|cannot|don't|do not|am not|'m not|won't)",
    r"\b(?:that|this|your) (?:request |question )?(?:goes against|violates|is against) (?:my|the|our) "
    r"(?:guidelines|policies|policy|principles|rules|terms)",
    r"\bI (?:must|have to|need to) (?:respectfully )?(?:decline|refuse)\b",
    r"\bI(?:'d| would) (?:prefer not to|rather not) (?:help|answer|discuss|provide|share|engage)",
    rf"\b(?:sorry|apologies|unfortunately),? (?:but )?I {_CANT}",
    r"\bit(?:'s| is| would be| would not be|'d be| wouldn't be) (?:not )?(?:appropriate|inappropriate|ethical|"
    r"responsible) for me to\b",
    r"\bI(?:'m| am) (?:just |only )?an AI(?: language model| assistant)? and (?:can't|cannot|don't|do not)",
    r"\bI(?:'m| am) unable to (?:help|assist|comply|provide|fulfil+|answer|do)",
    r"\bI can(?:'t|not) (?:and will not|and won't) ",
)


def _normalise(text: str) -> str:
    """Straight apostrophes (same length, so spans stay valid)."""
    return text.replace("’", "'").replace("‘", "'")


class Refusal(Scanner):
    """Refusals by phrase (see the module docstring for the score). ``patterns`` adds regexes
    (case-insensitive); ``max_chars`` is the length under which an answer that opens with a
    refusal counts as nothing but a refusal."""

    name = "refusal"
    kinds = frozenset({"output"})
    description = "The model refused to answer (phrase patterns)"

    def __init__(self, patterns: Sequence[str] = (), max_chars: int = 400) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        try:
            self._pattern = re.compile("|".join(f"(?:{p})" for p in (*REFUSAL_PATTERNS, *patterns)),
                                       re.IGNORECASE)
        except re.error as e:
            raise ValueError(f"a refusal pattern does not compile: {e}") from e
        self.max_chars = max_chars

    def scan(self, text: str, ctx: Context) -> Result:
        if not ctx.final:
            return Result(score=0.0, detail="not checked: waits for the whole answer")
        norm = _normalise(text)
        found = [Finding(m.start(), m.end(), "refusal", text[m.start():m.end()]) for m in self._pattern.finditer(norm)]
        if not found:
            return Result(score=0.0)
        sents = sentences(text)
        opening_end = sents[min(1, len(sents) - 1)].end if sents else len(text)
        opens = found[0].start < opening_end
        short = len(text.strip()) <= self.max_chars
        score = (1.0 if short else 0.75) if opens else 0.35
        where = ("the whole answer is a refusal" if opens and short else
                 "the answer opens with a refusal" if opens else "a refusal phrase inside the answer")
        return Result(score=score, findings=[Finding(f.start, f.end, f.label, f.text, score) for f in found],
                      detail=f"{where}: {found[0].text!r}", metadata={"position": "opening" if opens else "inside",
                                                                       "short": short})
