"""Explanations (docs/explain.md): which words, sentences or tokens drove a number.

* the local model's answers: :func:`occlusion` (drop a segment, measure the fall of
  log p(response)) and :func:`integrated_gradients` (Captum, on the transformers route);
* Podium's own classifiers (guardrail scanners' scores, scorers with numeric values): SHAP and
  LIME (:func:`explain_shap`, :func:`explain_lime`).

Every method returns one :class:`Explanation` shape. Heavy libraries are imported inside the
functions, so ``import podium.explain`` is cheap.
"""

from __future__ import annotations

from podium.explain.classifiers import explain_lime, explain_shap, explain_text
from podium.explain.gradients import integrated_gradients, load_hf_model
from podium.explain.occlusion import occlusion
from podium.explain.result import METHODS, Explanation, Segment
from podium.explain.run import TARGET_KINDS, explain
from podium.explain.targets import TextTarget, scanner_target, scorer_target

__all__ = [
    "METHODS",
    "TARGET_KINDS",
    "Explanation",
    "Segment",
    "TextTarget",
    "explain",
    "explain_lime",
    "explain_shap",
    "explain_text",
    "integrated_gradients",
    "load_hf_model",
    "occlusion",
    "scanner_target",
    "scorer_target",
]
