"""Splitting a text into the segments an explanation weighs: words, sentences or the whole
text, each with its character offsets (``text[start:end] == segment``)."""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["GRANULARITIES", "Granularity", "merge", "split"]

Granularity = Literal["word", "sentence", "message"]
GRANULARITIES: tuple[str, ...] = ("word", "sentence", "message")

_WORD = re.compile(r"\S+")
# a sentence ends at . ! ? (or a newline) followed by whitespace; the terminator stays with its sentence
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+(?=\s|$)|\n|$)")


def split(text: str, granularity: str = "word") -> list[tuple[int, int]]:
    """Offsets of the segments of ``text``: ``word`` (runs of non-space), ``sentence``, ``message``
    (the whole text). Whitespace between segments belongs to none."""
    if granularity == "message":
        s, e = len(text) - len(text.lstrip()), len(text.rstrip())
        return [(s, e)] if e > s else []
    if granularity == "word":
        return [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if granularity != "sentence":
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(text):
        m = _SENTENCE.match(text, pos)
        end = m.end() if m and m.end() > pos else pos + 1
        s, e = pos, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
        pos = end
    return out


def merge(spans: list[tuple[int, int]], groups: int) -> list[tuple[int, int]]:
    """At most ``groups`` spans: neighbours merged into runs of about equal size (a budget too
    small for one evaluation per word explains groups of words instead)."""
    if groups <= 0 or len(spans) <= groups:
        return list(spans)
    out: list[tuple[int, int]] = []
    n = len(spans)
    for g in range(groups):
        a, b = g * n // groups, (g + 1) * n // groups
        if b > a:
            out.append((spans[a][0], spans[b - 1][1]))
    return out
