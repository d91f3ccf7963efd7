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
The drop-in OpenAI client is ``from podium.openai import OpenAI``. See ``docs/sdk.md``.
The server, store and CLI live in sub-packages that this module never imports.
"""

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
    evaluate,
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

__version__ = "0.1.0"

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
    "flush",
    "get_client",
    "get_current_span_id",
    "get_current_trace_id",
    "get_dataset",
    "get_prompt",
    "observe",
    "propagate_attributes",
    "shutdown",
    "span",
    "update_current_span",
    "update_current_trace",
    "wrap_context",
]
