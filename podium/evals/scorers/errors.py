"""Errors raised by scorers and the scorer registry.

All are :class:`~podium.errors.PodiumError` subclasses, so the server renders them in its
pinned JSON shape and the CLI can map them to exit codes::

    PodiumError
    ├── ConfigurationError
    │   └── MissingDependency     500 missing_dependency   an optional library a scorer needs is not installed
    ├── BadRequest
    │   ├── ScorerConfigError     400 scorer_config_error  bad scorer parameters (suite/config error)
    │   │   └── UnknownScorer     400 unknown_scorer       unknown type; ``known`` lists the registered ones
    │   └── MissingField          400 missing_field        an item lacks a field the scorer declared
    └── ScorerError               500 scorer_error         a scorer failed on one item (recorded per item)
        └── JudgeError            502 judge_error          judge call failed, or no usable verdict after retries

Per-item problems (:class:`MissingField`, :class:`ScorerError`, :class:`JudgeError`) are what
:meth:`Scorer.score_batch <podium.evals.scorers.base.Scorer.score_batch>` puts in an item's
slot instead of a score: a run records them and goes on. Configuration problems
(:class:`ScorerConfigError`, :class:`MissingDependency`) are raised when a scorer is built, so
a suite fails before any item runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from podium.errors import BadRequest, ConfigurationError, PodiumError

__all__ = [
    "JudgeError",
    "MissingDependency",
    "MissingField",
    "ScorerConfigError",
    "ScorerError",
    "UnknownScorer",
]


class MissingDependency(ConfigurationError):
    """A scorer needs an optional library that is not installed; the message names the pin."""

    code = "missing_dependency"

    def __init__(self, scorer: str, package: str, requirement: str, *, extra: str = "eval") -> None:
        super().__init__(
            f"the {scorer!r} scorer needs the {package!r} package, which is not installed: "
            f"run `pip install 'podium[{extra}]'` (or `pip install '{requirement}'`)",
            details=[{"scorer": scorer, "package": package, "requirement": requirement}],
        )
        self.scorer = scorer
        self.package = package
        self.requirement = requirement


class ScorerConfigError(BadRequest):
    """A scorer was configured wrongly (bad parameter, missing value, invalid regex or schema)."""

    code = "scorer_config_error"


class UnknownScorer(ScorerConfigError):
    """No scorer is registered under this type name; ``known`` lists the ones that are."""

    code = "unknown_scorer"

    def __init__(self, type_name: str, known: Sequence[str], *, suggestion: str | None = None) -> None:
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(
            f"unknown scorer type {type_name!r}.{hint} Known types: {', '.join(known)} "
            "(any of them can be prefixed with `not-` to invert its pass/fail).",
            details=[{"type": type_name, "known": list(known)}],
        )
        self.type_name = type_name
        self.known = list(known)


class MissingField(BadRequest):
    """The item lacks a field (``input``, ``output``, ``expected``, ...) that the scorer declared."""

    code = "missing_field"

    def __init__(self, field: str, scorer: str, *, hint: str = "") -> None:
        super().__init__(
            f"scorer {scorer!r} needs `{field}`, which this item does not have"
            + (f": {hint}" if hint else ""),
            details=[{"field": field, "scorer": scorer}],
        )
        self.field = field
        self.scorer = scorer


class ScorerError(PodiumError):
    """A scorer failed on one item. ``scorer`` names it; the original exception is ``__cause__``."""

    code = "scorer_error"

    def __init__(self, message: str, *, scorer: str = "", details: list[Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.scorer = scorer


class JudgeError(ScorerError):
    """An LLM judge gave no usable verdict: the call failed, or every attempt was unparseable.

    ``attempts`` is how many calls were made; ``raw_outputs`` holds what the judge said each time.
    """

    status_code = 502
    code = "judge_error"

    def __init__(
        self, message: str, *, scorer: str = "", attempts: int = 0, raw_outputs: Sequence[str] = ()
    ) -> None:
        super().__init__(
            message, scorer=scorer, details=[{"attempt": i + 1, "output": o[:2000]} for i, o in enumerate(raw_outputs)]
        )
        self.attempts = attempts
        self.raw_outputs = list(raw_outputs)
