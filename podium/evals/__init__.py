"""Evaluation: scorers (``podium.evals.scorers``) and the statistics behind results (``podium.evals.stats``).

Quick use::

    from podium.evals import get_scorer, as_scorer, Score

    contains = get_scorer("icontains", value="paris")
    contains(output="The capital is Paris.")            # Score(value=True, passed=True, ...)

    def shorter_than_expected(output, expected):         # a plain function; fields by name
        return len(output) <= len(expected)

    results = as_scorer(shorter_than_expected).score_batch(items)   # Score or error per item

See ``docs/scorers.md``.
"""

from podium.evals import stats
from podium.evals.scorers import (
    FIELDS,
    FunctionScorer,
    JudgeError,
    JudgeModel,
    JudgeTemplate,
    MissingDependency,
    MissingField,
    Score,
    Scorer,
    ScorerConfigError,
    ScorerError,
    ScorerSpec,
    UnknownScorer,
    as_scorer,
    get_scorer,
    register_scorer,
    scorer,
    scorer_from_assertion,
    scorer_specs,
    scorer_types,
)

__all__ = [
    "FIELDS",
    "FunctionScorer",
    "JudgeError",
    "JudgeModel",
    "JudgeTemplate",
    "MissingDependency",
    "MissingField",
    "Score",
    "Scorer",
    "ScorerConfigError",
    "ScorerError",
    "ScorerSpec",
    "UnknownScorer",
    "as_scorer",
    "get_scorer",
    "register_scorer",
    "scorer",
    "scorer_from_assertion",
    "scorer_specs",
    "scorer_types",
    "stats",
]
