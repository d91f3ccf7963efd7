"""The built-in assertion types, registered through the plugin hook like any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podium.plugins.hookspecs import hookimpl


@hookimpl
def register_scorers(register: Callable[..., Any]) -> None:
    from podium.evals.scorers import _BUILTINS, python_scorer

    for category, cls in _BUILTINS:
        register(cls.type, cls, category=category)
    register("python", python_scorer, category="custom",
             description="A custom Python function (a callable or 'module:function' / 'file.py:function').")
    from podium.evals.scorers.retrieval import register_retrieval

    register_retrieval(register)  # hit-rate, mrr, ndcg, context-precision, context-recall (labelled relevance)
    from podium.evals.scorers.faithfulness import Faithfulness

    register(Faithfulness.type, Faithfulness, category="model")  # claim support without a judge
