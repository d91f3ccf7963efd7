"""Chunking: split a document's text into the passages that are embedded and retrieved.

Three strategies, each measured in tokens (cl100k_base through ``podium.core.tokens``, offline;
without tiktoken, words and punctuation marks):

- ``tokens``: windows of ``size`` tokens, each starting ``size - overlap`` tokens after the last;
  window edges move back to the nearest whitespace so words are not cut.
- ``heading``: one chunk per Markdown heading section (``#`` .. ``######``; HTML headings are
  turned into these by the parser); a section longer than ``size`` is split by tokens. Every
  chunk carries its heading path ("Install > Linux").
- ``sentence``: sentences packed greedily up to ``size`` tokens, with the last ``overlap``
  tokens' worth of sentences repeated at the start of the next chunk.

Every chunk records its character span (``start``, ``end``) in the document's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from podium.core import tokens as _tokens
from podium.errors import ValidationFailed

__all__ = ["STRATEGIES", "Chunk", "ChunkConfig", "chunk_text"]

Strategy = Literal["tokens", "heading", "sentence"]
STRATEGIES: tuple[str, ...] = ("tokens", "heading", "sentence")
_WORD = re.compile(r"\w+|[^\w\s]")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|\n\n|$)|\n")


@dataclass(frozen=True)
class ChunkConfig:
    """How a collection chunks its documents."""

    strategy: str = "tokens"
    size: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValidationFailed(f"unknown chunking strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}",
                                   details=[{"field": "chunking.strategy", "message": "|".join(STRATEGIES)}])
        if not 16 <= self.size <= 8192:
            raise ValidationFailed("chunking.size must be 16..8192 tokens",
                                   details=[{"field": "chunking.size", "message": "16..8192"}])
        if not 0 <= self.overlap < self.size // 2 + 1:
            raise ValidationFailed("chunking.overlap must be 0 .. size/2 tokens",
                                   details=[{"field": "chunking.overlap", "message": "0..size/2"}])

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ChunkConfig:
        d = d or {}
        try:
            return cls(strategy=str(d.get("strategy", "tokens")), size=int(d.get("size", 256)),
                       overlap=int(d.get("overlap", 32)))
        except (TypeError, ValueError):
            raise ValidationFailed("chunking.size and chunking.overlap must be integers",
                                   details=[{"field": "chunking", "message": "integers"}]) from None

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "size": self.size, "overlap": self.overlap}


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int
    end: int
    tokens: int
    heading: str | None = None


def _offsets(text: str) -> list[int]:
    """The character offset where each token starts (cl100k_base, or words without tiktoken)."""
    enc = _tokens._encoding()
    if enc is None:
        return [m.start() for m in _WORD.finditer(text)]
    ids = enc.encode_ordinary(text)
    # decode_with_offsets gives each token's start in characters of the decoded (== original) text
    _, offs = enc.decode_with_offsets(ids)
    return list(offs)


def _count(text: str) -> int:
    return _tokens.count_tokens(text)


def _snap(text: str, pos: int, lo: int) -> int:
    """``pos`` moved back to just after whitespace (not before ``lo``) so a word is not cut."""
    if pos >= len(text) or pos <= lo:
        return pos
    j = pos
    while j > lo and not text[j - 1].isspace():
        j -= 1
    return j if j > lo else pos


def _by_tokens(text: str, base: int, size: int, overlap: int, heading: str | None, out: list[Chunk]) -> None:
    offs = _offsets(text)
    if not offs:
        return
    if len(offs) <= size:
        s = len(text) - len(text.lstrip())
        body = text.strip()
        if body:
            out.append(Chunk(len(out), body, base + s, base + s + len(body), len(offs), heading))
        return
    step = size - overlap
    i = 0
    while i < len(offs):
        j = min(i + size, len(offs))
        start = offs[i]
        end = len(text) if j >= len(offs) else _snap(text, offs[j], start)
        piece = text[start:end]
        body = piece.strip()
        if body:
            lead = len(piece) - len(piece.lstrip())
            out.append(Chunk(len(out), body, base + start + lead, base + start + lead + len(body), j - i, heading))
        if j >= len(offs):
            break
        i += step


def _sections(text: str) -> list[tuple[str | None, int, int]]:
    """(heading path, start, end) per Markdown section; text before the first heading has none."""
    marks = list(_HEADING.finditer(text))
    out: list[tuple[str | None, int, int]] = []
    if not marks or marks[0].start() > 0:
        out.append((None, 0, marks[0].start() if marks else len(text)))
    path: list[tuple[int, str]] = []
    for n, m in enumerate(marks):
        level = len(m.group(1))
        path = [(lv, t) for lv, t in path if lv < level] + [(level, m.group(2).strip())]
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        out.append((" > ".join(t for _, t in path), m.start(), end))
    return out


def _by_sentence(text: str, base: int, size: int, overlap: int, heading: str | None, out: list[Chunk]) -> None:
    sents = [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if text[m.start():m.end()].strip()]
    counts = [_count(text[s:e]) for s, e in sents]
    i = 0
    while i < len(sents):
        j, total = i, 0
        while j < len(sents) and (total + counts[j] <= size or j == i):
            total += counts[j]
            j += 1
        if total > size:  # one sentence longer than a chunk: split it by tokens
            _by_tokens(text[sents[i][0]:sents[i][1]], base + sents[i][0], size, overlap, heading, out)
        else:
            piece = text[sents[i][0]:sents[j - 1][1]]
            body = piece.strip()
            lead = len(piece) - len(piece.lstrip())
            s = base + sents[i][0] + lead
            out.append(Chunk(len(out), body, s, s + len(body), total, heading))
        if j >= len(sents):
            break
        # step back over whole sentences worth at most `overlap` tokens
        back, k = 0, j
        while k - 1 > i and back + counts[k - 1] <= overlap:
            back += counts[k - 1]
            k -= 1
        i = k


def chunk_text(text: str, config: ChunkConfig | None = None) -> list[Chunk]:
    """The chunks of ``text`` under ``config`` (default: 256-token windows, 32 overlapping)."""
    cfg = config or ChunkConfig()
    out: list[Chunk] = []
    if not text.strip():
        return out
    if cfg.strategy == "tokens":
        _by_tokens(text, 0, cfg.size, cfg.overlap, None, out)
    elif cfg.strategy == "sentence":
        _by_sentence(text, 0, cfg.size, cfg.overlap, None, out)
    else:
        for heading, s, e in _sections(text):
            _by_tokens(text[s:e], s, cfg.size, cfg.overlap, heading, out)
    return out
