"""Scorers: the contract (:mod:`.base`), the built-in assertion types and their registry.

Importing this package registers the built-in types; none of them imports its optional
library (sacrebleu, rouge-score, jsonschema, openai) or loads a model until it is built or
first used. See ``docs/scorers.md`` for every type and its parameters.
"""

from typing import Any

from podium.evals.scorers.base import (
    COMMON_PARAMS,
    FIELDS,
    FunctionScorer,
    Score,
    Scorer,
    ScorerSpec,
    as_scorer,
    get_scorer,
    register_scorer,
    scorer,
    scorer_from_assertion,
    scorer_specs,
    scorer_types,
    to_score,
)
from podium.evals.scorers.deterministic import (
    Contains,
    ContainsAll,
    ContainsAny,
    ContainsJson,
    Cost,
    Equals,
    IContains,
    IContainsAll,
    IContainsAny,
    IsJson,
    JsonSchema,
    Latency,
    Length,
    Regex,
    StartsWith,
    python_scorer,
)
from podium.evals.scorers.errors import (
    JudgeError,
    MissingDependency,
    MissingField,
    ScorerConfigError,
    ScorerError,
    UnknownScorer,
)
from podium.evals.scorers.judge import (
    AnswerRelevance,
    Coherence,
    ContextFaithfulness,
    Factuality,
    Fluency,
    GEval,
    JudgeModel,
    LlmRubric,
)
from podium.evals.scorers.lexical import (
    Bleu,
    Chrf,
    EditDistance,
    ExactMatch,
    Levenshtein,
    Rouge1,
    Rouge2,
    RougeL,
    RougeLsum,
    TokenF1,
)
from podium.evals.scorers.perplexity import Perplexity
from podium.evals.scorers.script import JavaScript, PythonSnippet
from podium.evals.scorers.semantic import Similar
from podium.evals.scorers.templates import BUILTIN_TEMPLATES, JudgeTemplate

__all__ = [
    "BUILTIN_TEMPLATES",
    "COMMON_PARAMS",
    "FIELDS",
    "AnswerRelevance",
    "Bleu",
    "Chrf",
    "Coherence",
    "Contains",
    "ContainsAll",
    "ContainsAny",
    "ContainsJson",
    "ContextFaithfulness",
    "Cost",
    "EditDistance",
    "Equals",
    "ExactMatch",
    "Factuality",
    "Fluency",
    "FunctionScorer",
    "GEval",
    "IContains",
    "IContainsAll",
    "IContainsAny",
    "IsJson",
    "JavaScript",
    "JsonSchema",
    "JudgeError",
    "JudgeModel",
    "JudgeTemplate",
    "Latency",
    "Length",
    "Levenshtein",
    "LlmRubric",
    "MissingDependency",
    "MissingField",
    "Perplexity",
    "PythonSnippet",
    "Regex",
    "Rouge1",
    "Rouge2",
    "RougeL",
    "RougeLsum",
    "Score",
    "Scorer",
    "ScorerConfigError",
    "ScorerError",
    "ScorerSpec",
    "Similar",
    "StartsWith",
    "TokenF1",
    "UnknownScorer",
    "as_scorer",
    "get_scorer",
    "python_scorer",
    "register_scorer",
    "scorer",
    "scorer_from_assertion",
    "scorer_specs",
    "scorer_types",
    "to_score",
]

_BUILTINS: list[tuple[str, Any]] = [  # (category, scorer class)
    ("deterministic", Equals), ("deterministic", Contains), ("deterministic", IContains),
    ("deterministic", ContainsAny), ("deterministic", ContainsAll), ("deterministic", IContainsAny),
    ("deterministic", IContainsAll), ("deterministic", StartsWith), ("deterministic", Regex),
    ("deterministic", IsJson), ("deterministic", ContainsJson), ("deterministic", JsonSchema),
    ("deterministic", Length), ("deterministic", Latency), ("deterministic", Cost),
    ("lexical", Bleu), ("lexical", Chrf), ("lexical", Rouge1), ("lexical", Rouge2), ("lexical", RougeL),
    ("lexical", RougeLsum), ("lexical", TokenF1), ("lexical", ExactMatch), ("lexical", EditDistance),
    ("lexical", Levenshtein),
    ("semantic", Similar), ("model", Perplexity), ("custom", JavaScript),
    ("judge", LlmRubric), ("judge", GEval), ("judge", Factuality), ("judge", AnswerRelevance),
    ("judge", ContextFaithfulness), ("judge", Coherence), ("judge", Fluency),
]


# The built-ins register through the plugin hook (podium/evals/scorers/builtins.py), with the
# installed plugins' scorers, on first use of the registry (base._ensure_plugins).
