"""Banned topics and competitors.

``banned-topics`` compares the text, and each of its sentences, with example sentences of each
banned topic by MiniLM-L6-v2 embedding cosine (``podium.guardrails.scanners.vectors``), and
matches optional keyword lists. Its score is the strongest signal: 1.0 for a keyword hit, else
the best cosine mapped linearly from [0.2, 0.6] to [0, 1], so the default threshold 0.5 sits at
cosine 0.40. Measured on MiniLM: paraphrases of an example score 0.65-0.7 (score 1.0), an
on-topic question in other words ~0.45 (0.6), neighbouring but harmless questions ("side
effects of aspirin" against "what medication should I take") ~0.3 (0.25), unrelated text < 0.16 (0).

``competitors`` finds competitor names and their aliases as whole words (case-insensitive by
default), score 1.0 on any mention, with a finding per mention so ``action: redact`` replaces
them (``<COMPETITOR_1>``).

Without the embedding model (the ``local`` extra), ``mode: auto`` (the default) checks the
keyword lists only and says so in ``detail`` and ``metadata["note"]``; ``mode: embedding``
raises a configuration error naming the install command instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from podium.guardrails.base import Context, Finding, Result, Scanner
from podium.guardrails.scanners import vectors
from podium.guardrails.scanners.sentences import sentences

__all__ = ["BannedTopics", "Competitors", "keyword_pattern", "similarity_score"]

log = logging.getLogger("podium.guardrails")

LOW, HIGH = 0.2, 0.6  # cosine -> score: LOW maps to 0, HIGH to 1 (0.40 -> 0.5)
MAX_SEGMENTS = 48  # sentences embedded per text; longer texts are scanned in merged runs of sentences


def similarity_score(cosine: float) -> float:
    """MiniLM cosine mapped to a [0, 1] score (0.2 -> 0, 0.4 -> 0.5, 0.6 -> 1)."""
    return min(1.0, max(0.0, (cosine - LOW) / (HIGH - LOW)))


def keyword_pattern(terms: Sequence[str], *, case_sensitive: bool = False) -> re.Pattern[str] | None:
    """One regex matching any of ``terms`` as whole words (inner spaces match any whitespace)."""
    alts = sorted({t.strip() for t in terms if t and t.strip()}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(r"\s+".join(re.escape(part) for part in t.split()) for t in alts)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", 0 if case_sensitive else re.IGNORECASE)


def _named_lists(value: Mapping[str, Sequence[str]] | Sequence[str] | None, what: str,
                 default_label: str | None) -> dict[str, list[str]]:
    """``{label: [strings]}`` from a mapping, or from a list (each string its own label, or all
    under ``default_label``)."""
    if value is None:
        return {}
    if isinstance(value, str):
        raise ValueError(f"{what} must be a list or a mapping of name -> list, not a string")
    if isinstance(value, Mapping):
        out: dict[str, list[str]] = {}
        for k, v in value.items():
            items = [v] if isinstance(v, str) else list(v)
            if not all(isinstance(x, str) and x.strip() for x in items):
                raise ValueError(f"{what}[{k!r}] must be a list of non-empty strings")
            out[str(k)] = items
        return out
    items = list(value)
    if not all(isinstance(x, str) and x.strip() for x in items):
        raise ValueError(f"{what} must be a list of non-empty strings")
    if default_label is not None:
        return {default_label: items}
    return {x: [x] for x in items}


def _segments(text: str) -> list[tuple[int, int, str]]:
    """The spans to embed: each sentence (runs of sentences when there are more than
    MAX_SEGMENTS), plus the whole text when it has several."""
    sents = sentences(text)
    if not sents:
        return []
    if len(sents) > MAX_SEGMENTS:
        size = -(-len(sents) // MAX_SEGMENTS)
        groups = [sents[i:i + size] for i in range(0, len(sents), size)]
        segs = [(g[0].start, g[-1].end, text[g[0].start:g[-1].end]) for g in groups]
    else:
        segs = [(s.start, s.end, s.text) for s in sents]
    if len(segs) > 1:
        segs.append((sents[0].start, sents[-1].end, text[sents[0].start:sents[-1].end]))
    return segs


class BannedTopics(Scanner):
    """Topics the app must not discuss, by example sentences (MiniLM similarity) and keywords.

    ``topics``: ``{name: [example, ...]}``, or a list of short descriptions (each its own topic
    and example). ``keywords``: ``{name: [word, ...]}`` or a list (label ``banned-topic``).
    ``mode``: ``auto`` (embeddings when installed, else keywords only), ``embedding`` (error when
    not installed) or ``keywords``."""

    name = "banned-topics"
    cost = "slow"
    description = "Banned topics by example sentences (MiniLM embedding similarity) and keyword lists"

    def __init__(self, topics: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
                 keywords: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
                 mode: Literal["auto", "embedding", "keywords"] = "auto", case_sensitive: bool = False) -> None:
        if mode not in ("auto", "embedding", "keywords"):
            raise ValueError(f"mode must be auto, embedding or keywords, not {mode!r}")
        self.topics = _named_lists(topics, "topics", None)
        kw = _named_lists(keywords, "keywords", "banned-topic")
        if not self.topics and not kw:
            raise ValueError("give banned topics as `topics` (name -> example sentences) and/or `keywords`")
        if mode == "keywords" and not kw:
            raise ValueError("mode keywords needs `keywords`")
        self.mode = mode
        self.keywords = {label: p for label, terms in kw.items()
                         if (p := keyword_pattern(terms, case_sensitive=case_sensitive)) is not None}
        self._labels: list[str] = [label for label, ex in self.topics.items() for _ in ex]
        self._examples: list[str] = [x for ex in self.topics.values() for x in ex]
        self._vectors: Any = None

    def _use_embeddings(self) -> bool:
        if self.mode == "keywords" or not self._examples:
            return False
        return self.mode == "embedding" or vectors.available()

    def warm(self) -> None:
        if self._use_embeddings():
            self._vectors = vectors.embed(self._examples)  # raises with the install hint when missing

    def scan(self, text: str, ctx: Context) -> Result:
        findings: list[Finding] = []
        best_topic: str | None = None
        for label, pattern in self.keywords.items():
            for m in pattern.finditer(text):
                findings.append(Finding(m.start(), m.end(), label, m.group(), 1.0))
                best_topic = best_topic or label
        score = 1.0 if findings else 0.0
        meta: dict[str, Any] = {"method": "keywords"}
        detail = f"keyword for topic {best_topic!r}: {findings[0].text!r}" if findings else None
        if self._use_embeddings():
            cos, topic, hits = self._similar(text)
            meta.update(method="embedding+keywords" if self.keywords else "embedding",
                        similarity=round(cos, 4), topic=topic)
            findings.extend(hits)
            sim = similarity_score(cos)
            if sim > score:
                score, best_topic = sim, topic
                detail = f"close to banned topic {topic!r} (cosine {cos:.2f})"
        elif self._examples and self.mode == "auto":
            meta["note"] = f"embedding model not installed; checked keywords only ({vectors.INSTALL_HINT})"
            detail = f"{detail}; " if detail else ""
            detail += "examples not checked: the embedding model is not installed"
            _warn_once()
        if best_topic is not None:
            meta["topic"] = best_topic
        return Result(score=score, findings=sorted(findings, key=lambda f: f.start), detail=detail, metadata=meta)

    def _similar(self, text: str) -> tuple[float, str | None, list[Finding]]:
        segs = _segments(text)
        if not segs:
            return 0.0, None, []
        if self._vectors is None:
            self._vectors = vectors.embed(self._examples)
        sims = vectors.embed([s[2] for s in segs]) @ self._vectors.T  # segments x examples
        best = sims.max(axis=1)
        which = sims.argmax(axis=1)
        top = int(best.argmax())
        hits = []
        for i, (start, end, seg) in enumerate(segs[:-1] if len(segs) > 1 else segs):
            s = similarity_score(float(best[i]))
            if s >= 0.5:
                hits.append(Finding(start, end, self._labels[int(which[i])], seg, round(s, 4)))
        return float(best[top]), self._labels[int(which[top])], hits


_WARNED = False


def _warn_once() -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        log.warning("banned-topics: the MiniLM embedding model is not installed, so topic examples are not "
                    "checked (keywords only): run %s", vectors.INSTALL_HINT)


class Competitors(Scanner):
    """Mentions of competitors: ``competitors`` is a list of names or ``{name: [alias, ...]}``;
    matched as whole words, case-insensitive unless ``case_sensitive``. Score 1.0 on a mention."""

    name = "competitors"
    description = "Mentions of competitor names and aliases (whole words); redact replaces them"

    def __init__(self, competitors: Mapping[str, Sequence[str]] | Sequence[str],
                 case_sensitive: bool = False, label: str = "COMPETITOR") -> None:
        names = _named_lists(competitors, "competitors", None)
        if not names:
            raise ValueError("give at least one competitor name")
        self.label = label
        self._alias: dict[str, str] = {}
        for name, aliases in names.items():
            for a in [name, *aliases]:
                self._alias[a.strip() if case_sensitive else a.strip().casefold()] = name
        self.case_sensitive = case_sensitive
        pattern = keyword_pattern(list(self._alias), case_sensitive=case_sensitive)
        assert pattern is not None  # names are non-empty (checked above)
        self._pattern = pattern

    def scan(self, text: str, ctx: Context) -> Result:
        findings = [Finding(m.start(), m.end(), self.label, m.group(), 1.0) for m in self._pattern.finditer(text)]
        if not findings:
            return Result(score=0.0)
        found = list(dict.fromkeys(self._name_of(f.text) for f in findings))
        return Result(score=1.0, findings=findings, detail=f"mentions {', '.join(found)}",
                      metadata={"competitors": found})

    def _name_of(self, mention: str) -> str:
        key = " ".join(mention.split())
        return self._alias.get(key if self.case_sensitive else key.casefold(), mention)
