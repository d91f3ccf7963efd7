"""Perplexity of a text under the local chat model, from raw logits.

``exp(mean negative log-likelihood)`` of the text's tokens, computed by
:meth:`podium.inference.LocalChatModel.score`: one llama.cpp pass with ``logits_all`` and a
log-softmax over every position in numpy (not ``echo=True`` log-probabilities, which are
misaligned for SmolLM2). Lower means the text is more natural to the model. The model is
created once per process on first use (about 0.5 s, ~400 MB for the all-logits context) unless
a ``model`` is given: any object with ``perplexity(text) -> float`` (and, optionally,
``score(text)`` returning tokens and log-probabilities) works.
"""

from __future__ import annotations

import threading
from typing import Any

from podium.evals.scorers.base import Score, Scorer, ScorerConfigError, ScorerError, text_of

__all__ = ["Perplexity", "default_language_model"]

_DEFAULT: Any = None
_DEFAULT_LOCK = threading.Lock()


def default_language_model() -> Any:
    """The process-wide local SmolLM2 model used for perplexity (loads on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                from podium.inference import LocalChatModel

                _DEFAULT = LocalChatModel()
    return _DEFAULT


class Perplexity(Scorer):
    """Perplexity of the output (or ``field``: input/expected) under the local model; lower is
    better, so ``threshold`` is a maximum."""

    type = "perplexity"
    direction = "lower"

    def __init__(
        self, *, field: str = "output", model: Any = None, threshold: float | None = None,
        name: str | None = None, weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        if field not in ("output", "input", "expected"):
            raise ScorerConfigError(f"perplexity: `field` must be output, input or expected, got {field!r}")
        self.field = field
        self.model = model
        self._declare([field])

    def compute(self, **fields: Any) -> Score:
        text = text_of(fields[self.field])
        model = self.model if self.model is not None else default_language_model()
        if not text.strip():
            raise ScorerError(f"perplexity: the {self.field} is empty; there is nothing to score", scorer=self.name)
        if hasattr(model, "score"):
            ts = model.score(text)
            ppl = float(ts.perplexity)
            meta = {"tokens": len(ts.logprobs),
                    "mean_logprob": (sum(ts.logprobs) / len(ts.logprobs)) if ts.logprobs else None,
                    "model": getattr(model, "name", None)}
        else:
            ppl = float(model.perplexity(text))
            meta = {"model": getattr(model, "name", None)}
        return Score(ppl, metadata=meta)
