"""``POST /api/v1/explanations``: explain a number (docs/explain.md).

Body: ``{target, method, text?, max_evaluations?, granularity?, n_steps?}`` with ``target`` one of

* ``{kind: "scanner", name, params?, scan_kind?}``: a guardrail scanner's risk score on ``text``
  (``method``: ``shap`` or ``lime``);
* ``{kind: "scorer", config, fields, field}``: a scorer (built from ``config``, an assertion
  mapping as in eval files) on the item ``fields``, with ``field`` (default ``output``) varied;
  ``text`` defaults to ``fields[field]`` (``shap`` or ``lime``);
* ``{kind: "local-model", messages, response}``: the local model's log-probability of a fixed
  ``response`` after ``messages`` (``occlusion`` or ``integrated-gradients``).

The answer is the explanation: ``{method, target, segments: [{text, start, end, weight}],
base_value?, value?, seconds, evaluations, extra?}``. The work runs in a worker thread (seconds:
hundreds of classifier calls, or one model pass per segment); one explanation at a time per
process, so a burst queues instead of starving the server. Needs WRITE (owner, admin, member):
an explanation costs CPU like an experiment does.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.core.roles import Action
from podium.explain import explain
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.store.repos.projects import ApiKey

__all__ = ["ExplainIn", "router", "run_explanation"]

router = APIRouter(prefix="/api/v1/explanations", tags=["explanations"], route_class=StrictJSONRoute)

Explainer = Annotated[ApiKey, needs(Action.WRITE, "explain scanners, scorers and the local model's answers")]
_ONE_AT_A_TIME = threading.Lock()


class ScannerTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["scanner"]
    name: Annotated[str, Field(min_length=1, max_length=128, description="a guardrail scanner type, e.g. "
                                                                          "prompt-injection, toxicity, pii")]
    params: dict[str, Any] = Field(default_factory=dict, description="the scanner's params, as in a policy")
    scan_kind: Literal["input", "output"] = Field("input", description="scan the text as a prompt or an answer")


class ScorerTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["scorer"]
    config: dict[str, Any] = Field(description="a scorer config (assertion), e.g. {\"type\": \"similar\", "
                                               "\"value\": \"...\"}")
    fields: dict[str, Any] = Field(default_factory=dict, description="the item: input, output, expected, context")
    field: Literal["input", "output", "expected", "context"] = Field("output", description="the field explained")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(max_length=100_000)]


class LocalModelTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["local-model"]
    messages: Annotated[list[Message], Field(min_length=1, max_length=100)]
    response: Annotated[str, Field(min_length=1, max_length=20_000, description="the answer to explain")]


class ExplainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: ScannerTarget | ScorerTarget | LocalModelTarget = Field(discriminator="kind")
    method: Literal["occlusion", "integrated-gradients", "shap", "lime"]
    text: Annotated[str, Field(max_length=20_000)] | None = Field(
        None, description="scanners and scorers: the text to explain")
    max_evaluations: Annotated[int, Field(ge=2, le=5000)] | None = Field(
        None, description="the most classifier calls (shap, lime: default 300) or model passes (occlusion: 64)")
    granularity: Literal["word", "sentence", "message"] = Field("sentence", description="occlusion's segments")
    n_steps: Annotated[int, Field(ge=1, le=64)] | None = Field(None, description="integrated gradients' steps (8)")


def run_explanation(body: ExplainIn) -> dict[str, Any]:
    """Run one explanation (blocking: call it from a worker thread)."""
    with _ONE_AT_A_TIME:
        return explain(body.target.model_dump(), body.method, text=body.text, max_evaluations=body.max_evaluations,
                       granularity=body.granularity, n_steps=body.n_steps).to_dict()


@router.post("", summary="Explain a scanner's or scorer's score, or the local model's answer")
async def create_explanation(body: ExplainIn, key: Explainer) -> dict[str, Any]:
    return await run_in_threadpool(run_explanation, body)
