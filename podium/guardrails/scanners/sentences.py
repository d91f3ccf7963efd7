"""Sentence spans: where each sentence of a text starts and ends, for scanners that judge a
text sentence by sentence (banned topics, groundedness) and report findings with spans.

A rule-based splitter, not a model: a sentence ends at ``.``, ``!``, ``?`` (or ``。！？``)
followed by space and an upper-case letter, digit, quote or bracket, or at a blank line or a
list item's line break. Common abbreviations (``e.g.``, ``Dr.``, ``U.S.``) and decimals
(``3.14``) do not end a sentence. Good enough for model answers, which are mostly tidy prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "sentences", "words"]

_ABBREVIATIONS = ("mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig no approx inc ltd co corp dept est jan feb mar "
                  "apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m")
_ABBREV = frozenset(_ABBREVIATIONS.split())
# A candidate end: terminal punctuation (with closing quotes/brackets) then whitespace; or a line break
# before a list item / blank line.
_END = re.compile(r"""[.!?。！？]+["'”’)\]]*(?=\s+|$)|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)""")
_LAST_TOKEN = re.compile(r"([^\s(\"'“]+)\.$")  # the word before a period (searched in a short window)
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int
    end: int
    text: str


def _abbreviation(text: str, end: int) -> bool:
    """True when the period at ``text[end-1]`` belongs to an abbreviation or a number."""
    m = _LAST_TOKEN.search(text, max(0, end - 24), end)
    if m is None:
        return False
    token = m.group(1).lower()
    if token in _ABBREV or (len(token) == 1 and token.isalpha()):
        return True
    nxt = text[end:end + 2]
    return token[-1:].isdigit() and nxt[:1].isdigit()


def sentences(text: str) -> list[Sentence]:
    """The sentences of ``text`` with their spans, stripped of surrounding whitespace; empty
    pieces are dropped. ``text[s.start:s.end] == s.text`` for each."""
    out: list[Sentence] = []
    start = 0
    for m in _END.finditer(text):
        end = m.end()
        if m.group().startswith((".",)) and "\n" not in m.group() and _abbreviation(text, m.start() + 1):
            continue
        _add(out, text, start, end)
        start = end
    _add(out, text, start, len(text))
    return out


def _add(out: list[Sentence], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    s = start + lead
    out.append(Sentence(s, s + len(stripped), stripped))


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits; inner apostrophes, dots and hyphens kept)."""
    return [w.lower() for w in _WORD.findall(text)]
