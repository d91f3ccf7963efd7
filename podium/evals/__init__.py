"""Evaluation: scorers (``podium.evals.scorers``) and the statistics behind results (``podium.evals.stats``).

Quick use::

    from podium.evals import get_scorer, as_scorer, Score

    contains = get_scorer("icontains", value="paris")
    contains(output="The capital is Paris.")            # Score(value=True, passed=True, ...)

    def shorter_than_expected(output, expected):         # a plain function; fields by name
        return len(output) <= len(expected)

    results = as_scorer(shorter_than_expected).score_batch(items)   # Score or error per item

Running experiments (tasks, the runner, suites, reports) is ``podium.experiments``, a layer
above this one; ``podium.evals`` imports neither it, the SDK, the server nor the CLI, so the
server uses it too (``podium.evals.service``). See ``podium/evals/README.md``,
``docs/scorers.md`` and ``docs/evals.md``.
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
