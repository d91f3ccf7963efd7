"""Lexical overlap with a reference: BLEU, chrF, ROUGE, token F1, exact match, edit distance.

The reference is the item's ``expected`` (or the assertion's ``value``); a list of strings is
several acceptable references (BLEU/chrF use them as multi-references, the others take the
best match). All values are in 0..1 except ``levenshtein`` (a character count).

* **BLEU** -- sacrebleu ``BLEU(effective_order=True)``, sentence level, default tokenizer
  ``13a`` and ``exp`` smoothing (sacrebleu's defaults, and what ``sacrebleu -sl`` computes);
  sacrebleu's 0..100 is divided by 100. The signature string is stored in the score's metadata.
* **chrF** -- sacrebleu ``CHRF()``: character 6-grams, beta 2, effective-order (no epsilon)
  smoothing at sentence level; ``word_order=2`` gives chrF++.
* **ROUGE-1/2/L/Lsum** -- Google's ``rouge-score``, F-measure, Porter stemming on. Pitfall: its
  default tokenizer keeps only ``[a-z0-9]``, so non-Latin text scores 0; pass
  ``tokenizer="unicode"`` for word tokens in any script (no stemming of non-ASCII words).
* **token F1 / exact match** -- SQuAD's normalisation (lowercase, drop punctuation and the articles
  a/an/the, collapse whitespace) and bag-of-tokens F1; two empty answers agree (SQuAD v2).
* **edit distance** -- Levenshtein distance over Unicode code points by the bit-parallel
  dynamic programme of Myers (1999) / Hyyrö (2001) on Python integers (one pass over the
  shorter string), normalised by the longer length.
"""

from __future__ import annotations

import re
import string
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from podium.evals.scorers.base import Score, Scorer, ScorerConfigError, references_of, require, text_of

__all__ = [
    "Bleu",
    "Chrf",
    "EditDistance",
    "ExactMatch",
    "Levenshtein",
    "Rouge1",
    "Rouge2",
    "RougeL",
    "RougeLsum",
    "TokenF1",
    "levenshtein",
    "normalize_answer",
    "normalized_edit_distance",
    "token_f1",
]


class _Reference(Scorer):
    """A scorer comparing the output with reference text(s): ``value`` or the item's ``expected``."""

    def __init__(
        self, value: Any = None, *, threshold: float | None = None, name: str | None = None,
        weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        self.refs = references_of(value) if value is not None else None
        self._declare(["output"] if value is not None else ["output", "expected"])

    def _refs(self, expected: Any) -> list[str]:
        return self.refs if self.refs is not None else references_of(expected)

    def compute(self, output: Any, expected: Any = None) -> Any:
        return self.measure(text_of(output), self._refs(expected))

    def measure(self, hyp: str, refs: list[str]) -> Any:
        raise NotImplementedError


# --- sacrebleu -------------------------------------------------------------------------------

_SACREBLEU = ("sacrebleu", "sacrebleu>=2.4,<3")


class _Sacre(_Reference):
    def __init__(self, value: Any, *, threshold: float | None, name: str | None, weight: float, invert: bool) -> None:
        super().__init__(value, threshold=threshold, name=name, weight=weight, invert=invert)
        self._metrics = require("sacrebleu.metrics", scorer=self.type, package=_SACREBLEU[0], requirement=_SACREBLEU[1])
        self._local = threading.local()  # sacrebleu metric objects keep per-call state: one per thread
        self._metric()  # bad options fail now, not on the first item
        self._signatures: dict[int, str] = {}  # by number of references (part of the signature)

    def _make(self) -> Any:
        raise NotImplementedError

    def _metric(self) -> Any:
        m = getattr(self._local, "m", None)
        if m is None:
            m = self._local.m = self._make()
        return m

    def measure(self, hyp: str, refs: list[str]) -> Score:
        metric = self._metric()
        s = metric.sentence_score(hyp, refs)
        sig = self._signatures.get(len(refs))
        if sig is None:
            sig = self._signatures[len(refs)] = str(metric.get_signature())
        return Score(s.score / 100.0, metadata={"signature": sig})

    def signature(self, n_refs: int = 1) -> str:
        """sacrebleu's signature string (tokenizer, smoothing, version) for ``n_refs`` references."""
        if n_refs not in self._signatures:
            self.measure("x", ["x"] * n_refs)
        return self._signatures[n_refs]


class Bleu(_Sacre):
    """Sentence BLEU (sacrebleu, effective order, ``exp`` smoothing), 0..1."""

    type = "bleu"

    def __init__(
        self, value: Any = None, *, tokenize: str = "13a", smooth_method: str = "exp",
        smooth_value: float | None = None, lowercase: bool = False, threshold: float | None = None,
        name: str | None = None, weight: float = 1.0, invert: bool = False,
    ) -> None:
        if smooth_method not in ("exp", "floor", "add-k", "none"):
            raise ScorerConfigError(f"bleu: `smooth_method` must be exp, floor, add-k or none, got {smooth_method!r}")
        self._kw = {"tokenize": tokenize, "smooth_method": smooth_method, "smooth_value": smooth_value,
                    "lowercase": lowercase, "effective_order": True}
        super().__init__(value, threshold=threshold, name=name, weight=weight, invert=invert)

    def _make(self) -> Any:
        try:
            return self._metrics.BLEU(**self._kw)
        except Exception as e:  # an unknown tokenizer, a tokenizer whose extra is missing
            raise ScorerConfigError(f"bleu: {e}") from e


class Chrf(_Sacre):
    """Sentence chrF (sacrebleu; ``word_order=2`` for chrF++), 0..1."""

    type = "chrf"

    def __init__(
        self, value: Any = None, *, char_order: int = 6, word_order: int = 0, beta: int = 2,
        lowercase: bool = False, whitespace: bool = False, eps_smoothing: bool = False,
        threshold: float | None = None, name: str | None = None, weight: float = 1.0, invert: bool = False,
    ) -> None:
        self._kw = {"char_order": char_order, "word_order": word_order, "beta": beta, "lowercase": lowercase,
                    "whitespace": whitespace, "eps_smoothing": eps_smoothing}
        super().__init__(value, threshold=threshold, name=name, weight=weight, invert=invert)

    def _make(self) -> Any:
        try:
            return self._metrics.CHRF(**self._kw)
        except Exception as e:
            raise ScorerConfigError(f"chrf: {e}") from e


# --- rouge-score -----------------------------------------------------------------------------

_UNICODE_WORD = re.compile(r"\w+", re.UNICODE)


class _UnicodeTokenizer:
    """rouge-score tokenizer for any script: lowercased ``\\w+`` tokens; Porter stems ASCII words."""

    def __init__(self, stemmer: Any | None) -> None:
        self._stemmer = stemmer

    def tokenize(self, text: str) -> list[str]:
        toks = _UNICODE_WORD.findall(text.lower())
        if self._stemmer is None:
            return toks
        return [self._stemmer.stem(t) if t.isascii() and len(t) > 3 else t for t in toks]


class _Rouge(_Reference):
    rouge_type: ClassVar[str] = ""

    def __init__(
        self, value: Any = None, *, measure: str = "fmeasure", stemmer: bool = True, tokenizer: str = "default",
        threshold: float | None = None, name: str | None = None, weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(value, threshold=threshold, name=name, weight=weight, invert=invert)
        if measure not in ("fmeasure", "precision", "recall"):
            raise ScorerConfigError(f"{self.type}: `measure` must be fmeasure, precision or recall, got {measure!r}")
        if tokenizer not in ("default", "unicode"):
            raise ScorerConfigError(f"{self.type}: `tokenizer` must be 'default' or 'unicode', got {tokenizer!r}")
        rs = require("rouge_score.rouge_scorer", scorer=self.type, package="rouge-score",
                     requirement="rouge-score>=0.1.2,<0.2")
        tok = None
        if tokenizer == "unicode":
            stem = None
            if stemmer:
                from nltk.stem import porter

                stem = porter.PorterStemmer()
            tok = _UnicodeTokenizer(stem)
        self.measure_name = measure
        self._scorer = rs.RougeScorer([self.rouge_type], use_stemmer=stemmer, tokenizer=tok)

    def measure(self, hyp: str, refs: list[str]) -> float:
        if len(refs) == 1:
            s = self._scorer.score(refs[0], hyp)[self.rouge_type]
        else:
            s = self._scorer.score_multi(refs, hyp)[self.rouge_type]  # the best reference by F-measure
        return float(getattr(s, self.measure_name))


class Rouge1(_Rouge):
    """ROUGE-1 (unigram overlap), F-measure with stemming, 0..1."""

    type = "rouge-1"
    rouge_type = "rouge1"


class Rouge2(_Rouge):
    """ROUGE-2 (bigram overlap), F-measure with stemming, 0..1."""

    type = "rouge-2"
    rouge_type = "rouge2"


class RougeL(_Rouge):
    """ROUGE-L (longest common subsequence), F-measure with stemming, 0..1."""

    type = "rouge-l"
    rouge_type = "rougeL"


class RougeLsum(_Rouge):
    """ROUGE-Lsum (summary-level LCS over newline-separated sentences), F-measure, 0..1."""

    type = "rouge-lsum"
    rouge_type = "rougeLsum"


# --- SQuAD token F1 / exact match ------------------------------------------------------------

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation, drop a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of two strings (after :func:`normalize_answer`)."""
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


class TokenF1(_Reference):
    """SQuAD token F1 against the best reference, 0..1."""

    type = "token-f1"

    def measure(self, hyp: str, refs: list[str]) -> float:
        return max(token_f1(hyp, r) for r in refs)


class ExactMatch(_Reference):
    """SQuAD exact match: equal after normalisation (case, punctuation, articles, spaces)."""

    type = "exact-match"
    direction = None
    verdict = True

    def __init__(self, value: Any = None, *, name: str | None = None, weight: float = 1.0, invert: bool = False) -> None:
        super().__init__(value, name=name, weight=weight, invert=invert)

    def measure(self, hyp: str, refs: list[str]) -> bool:
        h = normalize_answer(hyp)
        return any(h == normalize_answer(r) for r in refs)


# --- edit distance ---------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute; cost 1 each) over code points.

    Bit-parallel DP (Myers 1999, Hyyrö 2001): the longer string is the bit pattern, one
    column update per character of the shorter one, so O(min(n, m)) big-integer steps.
    """
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    m = len(a)
    if not b:
        return m
    peq: dict[str, int] = {}
    bit = 1
    for c in a:
        peq[c] = peq.get(c, 0) | bit
        bit <<= 1
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for c in b:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def normalized_edit_distance(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length: 0 equal, 1 nothing in common; two empties 0."""
    n = max(len(a), len(b))
    return levenshtein(a, b) / n if n else 0.0


class EditDistance(_Reference):
    """Normalised Levenshtein distance to the closest reference (0 same .. 1 different); lower is better."""

    type = "edit-distance"
    direction = "lower"

    def __init__(
        self, value: Any = None, *, ignore_case: bool = False, threshold: float | None = None,
        name: str | None = None, weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(value, threshold=threshold, name=name, weight=weight, invert=invert)
        self._norm: Callable[[str], str] = str.casefold if ignore_case else (lambda s: s)

    def measure(self, hyp: str, refs: list[str]) -> float:
        h = self._norm(hyp)
        return min(normalized_edit_distance(h, self._norm(r)) for r in refs)


class Levenshtein(EditDistance):
    """Raw Levenshtein distance (characters) to the closest reference; lower is better."""

    type = "levenshtein"

    def measure(self, hyp: str, refs: list[str]) -> float:
        h = self._norm(hyp)
        return float(min(levenshtein(h, self._norm(r)) for r in refs))
