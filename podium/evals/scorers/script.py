"""Snippet scorers, as promptfoo writes them: ``javascript`` and inline ``python``.

``output`` is the task's output (after any ``transform``) and ``context`` holds ``vars`` (the
test's variables), ``prompt`` is not known to scorers and is left out, ``test`` (``vars``,
``expected``, ``metadata``) . A snippet returns:

* a bool: pass or fail (score 1 or 0);
* a number: the score; it passes when it is >= ``threshold``, or > 0 without one (promptfoo's rule);
* a mapping ``{pass, score, reason}`` (promptfoo's GradingResult).

A snippet that throws fails the item with the error as the reason. ``not-javascript`` and
``not-python`` invert the verdict. See :mod:`podium.evals.code` for the forms a snippet takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from podium.evals.code import CodeError, CodeRuntimeError, Snippet, js_function, python_function
from podium.evals.scorers.base import Score, Scorer, ScorerConfigError

__all__ = ["JavaScript", "PythonSnippet", "grading_score"]


def grading_score(result: Any, threshold: float | None, what: str) -> Score:
    """A snippet's return value as a :class:`Score` (promptfoo's rules)."""
    if isinstance(result, bool):
        return Score(result, explanation=None if result else f"{what} returned false")
    if isinstance(result, int | float):
        value = float(result)
        if math.isnan(value):
            return Score(value, passed=False, explanation=f"{what} returned NaN")
        passed = value >= threshold if threshold is not None else value > 0
        rule = f">= {threshold:g}" if threshold is not None else "> 0"
        return Score(value, passed=passed, explanation=f"{what} returned {value:.4g} ({'' if passed else 'not '}{rule})")
    if isinstance(result, Mapping) and ("pass" in result or "pass_" in result or "score" in result):
        passed = result.get("pass", result.get("pass_"))
        score = result.get("score")
        if score is None or isinstance(score, bool) or not isinstance(score, int | float):
            score = 1.0 if passed else 0.0
        if passed is None:
            passed = score >= threshold if threshold is not None else score > 0
        reason = result.get("reason")
        return Score(float(score), passed=bool(passed), explanation=str(reason) if reason else None)
    return Score(False, passed=False, explanation=f"{what} must return a boolean, a number or "
                                                  f"{{pass, score, reason}}; it returned {result!r:.200}")


class _Snippet(Scorer):
    """Shared by the JavaScript and Python snippet scorers."""

    direction = "higher"
    verdict = True
    language: ClassVar[str] = ""

    def __init__(
        self,
        value: str,
        *,
        threshold: float | None = None,
        name: str | None = None,
        weight: float = 1.0,
        invert: bool = False,
    ) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        self.source = value
        try:
            self.fn: Snippet = self._build(value)
        except CodeError as e:
            raise ScorerConfigError(e.message) from None
        self._declare(["output"], ["input", "expected", "metadata"])

    def _build(self, value: str) -> Snippet:
        raise NotImplementedError

    def compute(self, output: Any, input: Any = None, expected: Any = None, metadata: Any = None) -> Score:
        variables = dict(input) if isinstance(input, Mapping) else ({"input": input} if input is not None else {})
        context = {"vars": variables,
                   "test": {"vars": variables, "expected": expected, "metadata": metadata or {}}}
        try:
            result = self.fn(output, context)
        except CodeRuntimeError as e:
            return Score(False, passed=False, explanation=f"{self.language} raised: {e}")
        return grading_score(result, self.threshold, self.language)


class JavaScript(_Snippet):
    """A JavaScript expression, function body or file://x.js over ``output`` and ``context``."""

    type = "javascript"
    language = "javascript"

    def _build(self, value: str) -> Snippet:
        return js_function(value, base=Path.cwd(), what=self.name)


class PythonSnippet(_Snippet):
    """An inline Python expression, function body or file://x.py over ``output`` and ``context``."""

    type = "python"
    language = "python"

    def _build(self, value: str) -> Snippet:
        return python_function(value, base=Path.cwd(), what=self.name)
