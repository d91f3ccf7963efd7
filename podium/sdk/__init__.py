"""Podium's tracing SDK: decorators, spans, scores and the background exporter.

Imports only ``podium.core``, ``podium.config``, ``podium.errors``, the standard library,
httpx and pydantic. Importing it starts nothing and reads no environment variable; the
default client is built on first use. ``podium/__init__.py`` re-exports the public names.
"""

from podium.core.datasets import Dataset
from podium.core.prompts import Prompt
from podium.sdk.client import Podium, configure, get_client
from podium.sdk.context import get_current_span_id, get_current_trace_id, propagate_attributes, wrap_context
from podium.sdk.evals import create_dataset, get_dataset
from podium.sdk.exporter import FlushResult
from podium.sdk.prompts import create_prompt, get_prompt
from podium.sdk.span import Span
from podium.sdk.tracing import (
    create_score,
    feedback,
    flush,
    observe,
    shutdown,
    span,
    update_current_span,
    update_current_trace,
)

__all__ = [
    "Dataset",
    "FlushResult",
    "Podium",
    "Prompt",
    "Span",
    "configure",
    "create_dataset",
    "create_prompt",
    "create_score",
    "feedback",
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
