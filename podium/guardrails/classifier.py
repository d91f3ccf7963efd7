"""The small text classifiers that ship inside Podium: n-gram logistic regression, pure Python.

Each model is a gzipped JSON file in ``podium/guardrails/models/`` (``injection.json.gz``,
``toxicity.json.gz``) written by ``scripts/train_guard.py`` from public labelled data that installs
from the package registries (docs/guardrails-data.md lists every source and licence). A model is
a bias and one weight per feature; a text's features are its lower-cased character 3- to 5-grams
and word 1- and 2-grams, each present feature counting ``1/sqrt(number of features)``. Scoring is
a dictionary lookup per n-gram: no numpy, no scikit-learn, no download, about a millisecond for a
1,000-character prompt. Models load on first use (or in a scanner's ``warm()``) and are cached.

:func:`features` is the single definition used by training and inference, so the two cannot drift.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MODELS_DIR", "TextModel", "features", "load_model"]

MODELS_DIR = Path(__file__).resolve().parent / "models"
WINDOW = 1500  # characters per scoring window; longer texts are scored window by window (max)
MAX_WINDOWS = 8

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+|[^\w\s]", re.U)


def features(text: str, window: int = WINDOW) -> set[str]:
    """The feature set of one text (the first ``window`` characters): char 3/4/5-grams of the
    lower-cased, whitespace-collapsed text and word unigrams and bigrams (prefixed ``w:``)."""
    t = _WS.sub(" ", text[:window].lower()).strip()
    out: set[str] = set()
    n = len(t)
    for k in (3, 4, 5):
        for i in range(n - k + 1):
            out.add(t[i:i + k])
    words = _WORD.findall(t)
    prev = "^"
    for w in words:
        out.add("w:" + w)
        out.add("w:" + prev + " " + w)
        prev = w
    return out


def _windows(text: str, window: int) -> list[str]:
    if len(text) <= window:
        return [text]
    step = window - window // 5
    starts = list(range(0, len(text) - window // 5, step))[:MAX_WINDOWS]
    return [text[s:s + window] for s in starts]


@dataclass(slots=True)
class TextModel:
    """A loaded linear model: ``score(text)`` is the probability that ``text`` is positive."""

    name: str
    bias: float
    weights: dict[str, float]
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def logit(self, text: str) -> float:
        feats = features(text)
        if not feats:
            return self.bias
        get = self.weights.get
        s = 0.0
        for f in feats:
            w = get(f)
            if w is not None:
                s += w
        return self.bias + s / math.sqrt(len(feats))

    def score(self, text: str) -> float:
        """Probability in [0, 1]; long texts are scored in overlapping windows and the highest wins."""
        best = max(self.logit(w) for w in _windows(text, WINDOW))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, best))))

    def top_features(self, text: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` present features that pushed the score up most (for explanations)."""
        feats = features(text)
        got = [(f, self.weights[f]) for f in feats if f in self.weights]
        return sorted(got, key=lambda fw: -fw[1])[:k]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "bias": self.bias, "threshold": self.threshold, "meta": self.meta,
                "weights": self.weights}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        path.write_bytes(gzip.compress(data.encode("utf-8"), compresslevel=9, mtime=0))

    @classmethod
    def load(cls, path: Path) -> TextModel:
        data = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
        return cls(name=data["name"], bias=float(data["bias"]), weights=data["weights"],
                   threshold=float(data.get("threshold", 0.5)), meta=data.get("meta", {}))


_CACHE: dict[Path, TextModel] = {}
_LOCK = threading.Lock()


def load_model(name: str, path: str | Path | None = None) -> TextModel:
    """The shipped model ``name`` (``injection`` or ``toxicity``), or the file at ``path``;
    loaded once per process."""
    p = Path(path) if path else MODELS_DIR / f"{name}.json.gz"
    with _LOCK:
        model = _CACHE.get(p)
        if model is None:
            if not p.exists():
                from podium.errors import ConfigurationError

                raise ConfigurationError(f"guardrail model {p} is missing: reinstall Podium, or run "
                                  f"`python scripts/train_guard.py` to rebuild it")
            model = _CACHE[p] = TextModel.load(p)
    return model
