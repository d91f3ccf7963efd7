"""One entry point for the API, the CLI and the UI: ``explain(target, method, ...)`` picks the
target (a scanner, a scorer, the local model) and the method, checks that they go together and
returns the :class:`~podium.explain.result.Explanation`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.errors import ValidationFailed
from podium.explain.result import METHODS, Explanation

__all__ = ["TARGET_KINDS", "explain"]

TARGET_KINDS: tuple[str, ...] = ("scanner", "scorer", "local-model")
_FOR_KIND = {"scanner": ("shap", "lime"), "scorer": ("shap", "lime"),
             "local-model": ("occlusion", "integrated-gradients")}


def explain(target: Mapping[str, Any], method: str, *, text: str | None = None,
            max_evaluations: int | None = None, granularity: str = "sentence", n_steps: int | None = None,
            local_model: Any = None) -> Explanation:
    """Explain ``target`` with ``method``.

    ``target``: ``{kind: "scanner", name, params?, scan_kind?}`` (explains ``text``),
    ``{kind: "scorer", config, fields, field}`` (explains ``text``, else ``fields[field]``),
    ``{kind: "local-model", messages, response}``. ``method``: ``shap``/``lime`` for scanners and
    scorers, ``occlusion``/``integrated-gradients`` for the local model."""
    kind = target.get("kind")
    if kind not in _FOR_KIND:
        raise ValidationFailed(f"target.kind must be one of {', '.join(TARGET_KINDS)}, got {kind!r}",
                               details=[{"loc": "target.kind"}])
    if method not in METHODS:
        raise ValidationFailed(f"method must be one of {', '.join(METHODS)}, got {method!r}",
                               details=[{"loc": "method"}])
    if method not in _FOR_KIND[kind]:
        raise ValidationFailed(f"a {kind} target is explained with {' or '.join(_FOR_KIND[kind])}, not {method}",
                               details=[{"loc": "method"}])
    if kind == "local-model":
        messages, response = target.get("messages"), target.get("response")
        if method == "occlusion":
            from podium.explain.occlusion import DEFAULT_MAX_EVALUATIONS, occlusion

            return occlusion(messages or [], response or "", granularity=granularity,
                             max_evaluations=max_evaluations or DEFAULT_MAX_EVALUATIONS, model=local_model)
        from podium.explain.gradients import DEFAULT_STEPS, integrated_gradients

        return integrated_gradients(messages or [], response or "", n_steps=n_steps or DEFAULT_STEPS)

    from podium.explain.classifiers import DEFAULT_MAX_EVALUATIONS as CLF_MAX
    from podium.explain.classifiers import explain_text
    from podium.explain.targets import scanner_target, scorer_target

    if kind == "scanner":
        name = target.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationFailed("target.name must name a guardrail scanner (e.g. prompt-injection, toxicity)",
                                   details=[{"loc": "target.name"}])
        t = scanner_target(name, target.get("params") or {}, kind=str(target.get("scan_kind") or "input"))
    else:
        config, fields, field = target.get("config"), target.get("fields") or {}, target.get("field") or "output"
        if not isinstance(config, Mapping):
            raise ValidationFailed("target.config must be a scorer config like {\"type\": \"contains\", "
                                   "\"value\": \"Paris\"} (as in eval files)", details=[{"loc": "target.config"}])
        if not isinstance(fields, Mapping):
            raise ValidationFailed("target.fields must be the item's fields ({input, output, expected, context})",
                                   details=[{"loc": "target.fields"}])
        t = scorer_target(config, fields, str(field))
        if text is None and isinstance(fields.get(field), str):
            text = fields[field]
    if text is None:
        raise ValidationFailed("text is required: the text to explain", details=[{"loc": "text"}])
    return explain_text(t, text, method, max_evaluations=max_evaluations or CLF_MAX)
