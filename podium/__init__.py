"""Podium: self-hosted LLMOps. This package's top level is the tracing SDK.

Quickstart (keys from ``podium up``; settings from ``PODIUM_*`` environment variables)::

    import podium

    @podium.observe()
    def answer(question: str) -> str:
        with podium.span("retrieve", kind="retrieval", input=question) as s:
            docs = search(question)
            s.update(output=docs)
        return generate(question, docs)

    with podium.propagate_attributes(user_id="u1", session_id="s1"):
        answer("What is Podium?")
    podium.flush()

Managed prompts: ``podium.get_prompt("qa").compile(question=...)`` (docs/prompts.md).
Evaluation: ``podium.evaluate(dataset=..., task=..., scorers=[...])`` (docs/evals.md).
Guardrails: ``podium.guard.scan(text, policy="default")`` and ``@podium.guard(policy=...)``
(docs/guardrails.md).
The drop-in OpenAI client is ``from podium.openai import OpenAI``. See ``docs/sdk.md``.
The server, store and CLI live in sub-packages that this module never imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podium.sdk import (
    Dataset,
    FlushResult,
    Podium,
    Prompt,
    Span,
    configure,
    create_dataset,
    create_prompt,
    create_score,
    feedback,
    flush,
    get_client,
    get_current_span_id,
    get_current_trace_id,
    get_dataset,
    get_prompt,
    observe,
    propagate_attributes,
    shutdown,
    span,
    update_current_span,
    update_current_trace,
    wrap_context,
)

if TYPE_CHECKING:
    from typing import Any

    from podium.experiments.runner import ExperimentResult
    from podium.guardrails.decorator import guard as guard
else:

    class _LazyGuard:
        """``podium.guard``: loads ``podium.guardrails`` (scanners, policies) on first use, so
        ``import podium`` stays light. The real object is ``podium.guardrails.decorator.guard``."""

        __slots__ = ()

        def _target(self):
            from podium.guardrails.decorator import guard

            return guard

        def __call__(self, *args, **kwargs):
            return self._target()(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._target(), name)

        def __repr__(self) -> str:
            return repr(self._target())

    guard = _LazyGuard()

__version__ = "0.1.0"


def evaluate(**kwargs: Any) -> ExperimentResult:
    """Run an experiment: a task over a dataset, scored, recorded. The arguments are
    :func:`podium.experiments.runner.evaluate`'s (``dataset=``, ``task=``, ``scorers=``,
    ``repetitions=``, ...); ``client`` defaults to the default client (:func:`get_client`).

    The engine (``podium.experiments``, numpy, the scorers) is imported on the first call, so
    ``import podium`` stays light. It is a plain import of a layer above the SDK: the engine
    takes the client as a parameter and never reaches back for a global."""
    try:
        from podium.experiments.runner import evaluate as run
    except ImportError as e:
        if (e.name or "").startswith("podium"):
            raise
        from podium.errors import ConfigurationError

        raise ConfigurationError(
            f"podium.evaluate needs the evaluation extra ({e.name} is missing): pip install 'podium[eval]'"
        ) from e
    if kwargs.get("client") is None:
        kwargs["client"] = get_client()
    return run(**kwargs)


__all__ = [
    "Dataset",
    "FlushResult",
    "Podium",
    "Prompt",
    "Span",
    "__version__",
    "configure",
    "create_dataset",
    "create_prompt",
    "create_score",
    "evaluate",
    "feedback",
    "flush",
    "get_client",
    "get_current_span_id",
    "get_current_trace_id",
    "get_dataset",
    "get_prompt",
    "guard",
    "observe",
    "propagate_attributes",
    "shutdown",
    "span",
    "update_current_span",
    "update_current_trace",
    "wrap_context",
]
