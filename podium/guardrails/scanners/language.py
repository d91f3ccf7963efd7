"""``language``: the text must be in one of the allowed languages.

Detection is py3langid 0.4 (langid.py's naive Bayes model over byte n-grams, bundled in the
package: offline, ~0.7 s to load once, well under 1 ms a sentence). It knows 140 languages by
ISO 639-1 code where there is one (``en``, ``fr``, ``zh``), else ISO 639-3 (``yue``, ``pcm``),
plus ``zxx`` for text with no language. It ships with the ``server`` extra.

Score: the probability that the text is *not* in an allowed language (1 - the summed
probability of the allowed ones), so 0.5 means "as likely not as yes". Code blocks and URLs
are removed first (they read as noise); of a text longer than 6,000 characters, the first,
middle and last 2,000 are judged. Texts with fewer than ``min_chars`` letters, and texts
whose most likely language is below ``min_confidence``, are not judged (score 0, said in
``detail``): one word or "ok" is no evidence. Stream windows are judged like whole texts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from podium.errors import ConfigurationError
from podium.guardrails.base import Context, Result, Scanner

__all__ = ["KNOWN", "Language", "detect"]

# py3langid 0.4's labels (``LanguageIdentifier.labels``), so that a policy naming an unknown code
# is a 400 when it is saved rather than an error when the model loads (tests check the two agree).
_CODES = """
ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es et eu ext fa fi fo fr fuv
fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy id ig is it ja jv ka kab kik kk km kn ko ku ky
la lb lg lij ln lo lt ltg lv mg mk ml mn mr ms mt my ne nl nn no nso oc om or pa pcm pl ps pt qu ro ru rw sa sdh
se si sk sl sn so sq sr st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo wa wuu xh yo yue zh zu zxx
"""
KNOWN = frozenset(_CODES.split())
SAMPLE = 2000  # characters from each of the start, middle and end of a long text
_LOCK = threading.Lock()
_IDENTIFIER: Any = None
_STRIP = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|\b(?:https?://|www\.)\S+", re.DOTALL)


def _identifier() -> Any:
    global _IDENTIFIER
    if _IDENTIFIER is None:
        with _LOCK:
            if _IDENTIFIER is None:
                try:
                    from py3langid.langid import MODEL_FILE, LanguageIdentifier
                except ImportError as e:
                    raise ConfigurationError(
                        "the language scanner needs py3langid: run `pip install 'podium[server]'` "
                        "(or `pip install 'py3langid>=0.4,<0.5'`)") from e
                _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _IDENTIFIER


def detect(text: str, candidates: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """Languages of ``text`` with probabilities, most likely first; restricted to
    ``candidates`` (renormalised) when given."""
    ranked = [(lang, float(p)) for lang, p in _identifier().rank(text)]
    if candidates:
        keep = set(candidates)
        ranked = [(lang, p) for lang, p in ranked if lang in keep]
        total = sum(p for _, p in ranked) or 1.0
        ranked = [(lang, p / total) for lang, p in ranked]
    return ranked


class Language(Scanner):
    """``allowed``: ISO 639-1 codes (``["en", "fr"]``). ``candidates``: only consider these
    languages (fewer confusions between close ones, such as English and Nigerian Pidgin).
    ``min_chars`` (letters, default 20) and ``min_confidence`` (default 0.5) skip texts too
    short or too mixed to tell."""

    name = "language"
    kinds = frozenset({"input", "output"})
    description = "The text is in one of the allowed languages (py3langid, offline)"

    def __init__(self, allowed: Sequence[str] = ("en",), candidates: Sequence[str] | None = None,
                 min_chars: int = 20, min_confidence: float = 0.5) -> None:
        if isinstance(allowed, str):
            allowed = [allowed]
        self.allowed = [a.strip().lower() for a in allowed]
        if not self.allowed:
            raise ValueError("give at least one allowed language (ISO 639-1 code, such as en)")
        self.candidates = [c.strip().lower() for c in candidates] if candidates else None
        bad = [c for c in [*self.allowed, *(self.candidates or [])] if c not in KNOWN]
        if bad:
            raise ValueError(f"not language codes py3langid knows: {', '.join(bad)} "
                             "(use ISO 639-1 codes such as en, fr, de, zh)")
        if not 0 <= min_confidence <= 1:
            raise ValueError("min_confidence must be in [0, 1]")
        self.min_chars = min_chars
        self.min_confidence = min_confidence

    def warm(self) -> None:
        _identifier()

    def scan(self, text: str, ctx: Context) -> Result:
        clean = _STRIP.sub(" ", text)
        letters = sum(c.isalpha() for c in clean)
        if letters < self.min_chars:
            return Result(score=0.0, detail=f"not judged: {letters} letters < min_chars {self.min_chars}")
        if len(clean) > 3 * SAMPLE:  # a long text: its start, middle and end are evidence enough
            mid = len(clean) // 2 - SAMPLE // 2
            clean = " ".join((clean[:SAMPLE], clean[mid:mid + SAMPLE], clean[-SAMPLE:]))
        ranked = detect(clean, self.candidates)
        if not ranked:
            return Result(score=0.0, detail="not judged: no candidate language")
        top, p = ranked[0]
        meta = {"language": top, "confidence": round(p, 4), "top": [[lang, round(q, 4)] for lang, q in ranked[:3]]}
        if p < self.min_confidence:
            return Result(score=0.0, detail=f"not judged: most likely {top} at only {p:.2f}", metadata=meta)
        ok = sum(q for lang, q in ranked if lang in self.allowed)
        score = min(1.0, max(0.0, 1.0 - ok))
        detail = None if score < 0.5 else f"language {top} ({p:.2f}) not in {', '.join(self.allowed)}"
        return Result(score=score, detail=detail, metadata=meta)
