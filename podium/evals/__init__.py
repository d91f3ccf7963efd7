"""Evaluation: scorers (``podium.evals.scorers``) and the statistics behind results (``podium.evals.stats``).

Quick use::

    from podium.evals import get_scorer, as_scorer, Score

    contains = get_scorer("icontains", value="paris")
    contains(output="The capital is Paris.")            # Score(value=True, passed=True, ...)

    def shorter_than_expected(output, expected):         # a plain function; fields by name
        return len(output) <= len(expected)

    results = as_scorer(shorter_than_expected).score_batch(items)   # Score or error per item

Experiments (``podium.evaluate`` is :func:`podium.evals.runner.evaluate`)::

    from podium.evals import PromptTask, evaluate

    task = PromptTask("Capital of {{country}}?", model="local", base_url=URL, api_key=SK)
    result = evaluate(dataset="capitals", task=task, scorers=[{"type": "icontains", "value": "Paris"}])

See ``docs/scorers.md`` and ``docs/evals.md``.
"""

from podium.evals import stats
from podium.evals.runner import ExperimentResult, Interrupted, RunConfig, Runner, evaluate
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
from podium.evals.tasks import HttpTask, PromptTask, PythonTask, TaskOutput

__all__ = [
    "FIELDS",
    "ExperimentResult",
    "FunctionScorer",
    "HttpTask",
    "Interrupted",
    "JudgeError",
    "JudgeModel",
    "JudgeTemplate",
    "MissingDependency",
    "MissingField",
    "PromptTask",
    "PythonTask",
    "RunConfig",
    "Runner",
    "Score",
    "Scorer",
    "ScorerConfigError",
    "ScorerError",
    "ScorerSpec",
    "TaskOutput",
    "UnknownScorer",
    "as_scorer",
    "evaluate",
    "get_scorer",
    "register_scorer",
    "scorer",
    "scorer_from_assertion",
    "scorer_specs",
    "scorer_types",
    "stats",
]
