"""SHAP and LIME for Podium's own classifiers: a guardrail scanner's risk score, or a scorer's
numeric value, as a function of the words of one text (``podium.explain.targets``).

* **SHAP** (``shap.Explainer(f, shap.maskers.Text(r"\\s+"))``: the Partition explainer over a
  hierarchy of words): Shapley values of each word; ``base_value`` is the score with every word
  masked (``...``), and ``base_value + sum(weights)`` is the score of the whole text.
* **LIME** (``lime.lime_text.LimeTextExplainer``, ``bow=False``: each position its own feature):
  a weighted linear model fitted on random maskings around the text; ``base_value`` is its
  intercept. Seeded (``random_state``), so the same text gives the same explanation.

Both call the classifier ``max_evaluations`` times at most (SHAP's ``max_evals``, LIME's
``num_samples``), in batches; ``evaluations`` in the result counts the texts actually scored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from podium.errors import ValidationFailed
from podium.explain.extra import quiet_import, require
from podium.explain.result import Explanation, Segment
from podium.explain.targets import TextTarget

__all__ = ["DEFAULT_MAX_EVALUATIONS", "explain_lime", "explain_shap", "explain_text"]

DEFAULT_MAX_EVALUATIONS = 300
MAX_CHARS = 20_000
_SPLIT = r"\s+"
_MASK = "..."


class _Counted:
    def __init__(self, target: TextTarget) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, texts: Sequence[Any]) -> Any:
        import numpy as np

        batch = [str(t) for t in texts]
        self.calls += len(batch)
        return np.asarray(self.target.fn(batch), dtype=np.float64)


def _check(text: Any, max_evaluations: int, least: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed("text must be the non-empty text to explain", details=[{"loc": "text"}])
    if len(text) > MAX_CHARS:
        raise ValidationFailed(f"text is {len(text)} characters; explain at most {MAX_CHARS} at a time "
                               "(the part that matters)", details=[{"loc": "text"}])
    if max_evaluations < least:
        raise ValidationFailed(f"max_evaluations must be at least {least}", details=[{"loc": "max_evaluations"}])
    return text


def explain_shap(target: TextTarget, text: str, *, max_evaluations: int = DEFAULT_MAX_EVALUATIONS) -> Explanation:
    """SHAP values of each word of ``text`` for ``target``."""
    require("shap", "shap")
    text = _check(text, max_evaluations, 10)
    import numpy as np

    with quiet_import():
        import shap

    t0 = time.perf_counter()
    f = _Counted(target)
    masker = shap.maskers.Text(_SPLIT, mask_token=_MASK)
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if len(words) == 1:  # SHAP's partition tree needs two features: one word's value is the whole change
        full, empty = f([text])[0], f([_MASK])[0]
        segs = [Segment(text[words[0][0]:words[0][1]], *words[0], float(full - empty))]
        return Explanation("shap", target.describe, segs, time.perf_counter() - t0, f.calls,
                           base_value=float(empty), value=float(full))
    explainer = shap.Explainer(f, masker)
    sv = explainer(np.array([text], dtype=object), max_evals=max_evaluations, silent=True)
    values = np.asarray(sv.values[0], dtype=np.float64).reshape(-1)
    offsets = masker.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) != len(values):
        raise RuntimeError(f"shap returned {len(values)} values for {len(offsets)} words")
    segs = [Segment(text[s:e], int(s), int(e), float(v)) for (s, e), v in zip(offsets, values, strict=True)]
    base = float(np.asarray(sv.base_values).reshape(-1)[0])
    return Explanation("shap", target.describe, segs, time.perf_counter() - t0, f.calls,
                       base_value=base, value=base + float(values.sum()))


def explain_lime(target: TextTarget, text: str, *, max_evaluations: int = DEFAULT_MAX_EVALUATIONS,
                 random_state: int = 0) -> Explanation:
    """LIME weights of each word (position) of ``text`` for ``target``."""
    require("lime", "lime", "sklearn")
    text = _check(text, max_evaluations, 10)
    import numpy as np

    with quiet_import():
        from lime.lime_text import LimeTextExplainer

    t0 = time.perf_counter()
    f = _Counted(target)

    def classifier_fn(texts: Sequence[str]) -> Any:
        y = f(texts)
        return np.column_stack([1.0 - y, y])  # LIME regresses column 1: the score itself, any range

    explainer = LimeTextExplainer(class_names=["score-", "score"], split_expression=_SPLIT, bow=False,
                                  mask_string=_MASK, random_state=random_state)
    exp = explainer.explain_instance(text, classifier_fn, labels=(1,), num_features=10_000,
                                     num_samples=max_evaluations)
    indexed = exp.domain_mapper.indexed_string
    weights = dict(exp.as_map()[1])
    segs: list[Segment] = []
    for idx in range(indexed.num_words()):
        start = int(indexed.string_position(idx)[0])
        word = str(indexed.word(idx))
        segs.append(Segment(word, start, start + len(word), float(weights.get(idx, 0.0))))
    value = float(exp.predict_proba[1]) if getattr(exp, "predict_proba", None) is not None else None
    return Explanation("lime", target.describe, segs, time.perf_counter() - t0, f.calls,
                       base_value=float(exp.intercept[1]), value=value,
                       extra={"fit_r2": round(float(exp.score), 4)} if exp.score is not None else {})


def explain_text(target: TextTarget, text: str, method: str, *,
                 max_evaluations: int = DEFAULT_MAX_EVALUATIONS) -> Explanation:
    if method == "shap":
        return explain_shap(target, text, max_evaluations=max_evaluations)
    if method == "lime":
        return explain_lime(target, text, max_evaluations=max_evaluations)
    raise ValidationFailed(f"method {method!r} does not explain a classifier; use shap or lime "
                           "(occlusion and integrated-gradients explain the local model)", details=[{"loc": "method"}])
