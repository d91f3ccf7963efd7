"""Policies: which scanners run on a text, in what order, with what threshold and action.

A policy is YAML (in ``gateway.yaml`` under ``guardrails:``, or a file given to
``podium guard scan --policy``) or the same JSON through the API::

    name: strict
    on_error: closed          # a scanner that raises or runs past its time budget blocks (default: open)
    timeout_ms: 200           # time budget of each model-backed scanner (default 250)
    stream_window: 200        # characters scanned at a time in a streamed answer (default 256)
    input:
      - {type: prompt-injection, action: block}
      - {type: pii, action: redact, reversible: true}
      - {type: secrets, action: redact}
    output:
      - {type: secrets, action: block}
      - {type: json-schema, params: {schema: {type: object}}, action: block}

Each rule: ``type`` (a registered scanner), ``params`` (its keyword arguments), ``threshold``
(risk score at or above which it fires; default 0.5), ``action`` (``block``, ``redact``,
``flag`` or ``warn``), and optionally its own ``on_error`` / ``timeout_ms`` and a ``name``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from podium.errors import ValidationFailed
from podium.guardrails.base import Action

__all__ = ["BUILTIN_POLICIES", "Policy", "Rule", "builtin_policy", "parse_policy"]

OnError = Literal["open", "closed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Strict):
    type: Annotated[str, Field(min_length=1, max_length=128, description="a registered scanner type")]
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    action: Action = "block"
    reversible: bool = Field(False, description="redact: put the originals back into the model's answer")
    on_error: OnError | None = None
    timeout_ms: Annotated[float, Field(gt=0, le=60_000)] | None = None
    name: Annotated[str, Field(max_length=128)] | None = None

    @property
    def label(self) -> str:
        return self.name or self.type


class Policy(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)] = "custom"
    description: str = ""
    input: list[Rule] = Field(default_factory=list)
    output: list[Rule] = Field(default_factory=list)
    on_error: OnError = "open"
    timeout_ms: Annotated[float, Field(gt=0, le=60_000)] = 250
    stream_window: Annotated[int, Field(ge=16, le=100_000)] = 256
    fail_fast: bool = Field(True, description="stop at the first rule that blocks")

    @model_validator(mode="after")
    def _known_scanners(self) -> Policy:
        from podium.guardrails.registry import scanner_specs

        specs = scanner_specs()
        for kind in ("input", "output"):
            for i, rule in enumerate(getattr(self, kind)):
                spec = specs.get(rule.type)
                if spec is None:
                    raise ValueError(f"{kind}.{i}.type: unknown scanner {rule.type!r}; use one of "
                                     f"{', '.join(sorted(specs))} (or install the plugin that provides it)")
                if kind not in spec.kinds:
                    raise ValueError(f"{kind}.{i}.type: scanner {rule.type!r} checks "
                                     f"{' and '.join(sorted(spec.kinds))} text only")
        return self


# The policies every installation has. ``default`` is what ``guardrails: default`` turns on:
# fast scanners only (no model on the request path unless the classifier's uncertain band
# asks the judge, which is off unless a judge model is configured).
BUILTIN_POLICIES: dict[str, dict[str, Any]] = {
    "default": {
        "name": "default",
        "description": "Block prompt injection and jailbreaks, redact secrets, flag personal data; "
                       "on output, redact leaked secrets and flag personal data.",
        "on_error": "open",
        "input": [
            {"type": "prompt-injection", "action": "block"},
            {"type": "secrets", "action": "redact"},
            {"type": "pii", "action": "flag"},
        ],
        "output": [
            {"type": "secrets", "action": "redact"},
            {"type": "pii", "action": "flag"},
        ],
    },
    "strict": {
        "name": "strict",
        "description": "The default, fail-closed; secrets blocked, personal data redacted (and put back in "
                       "the answer), toxicity flagged.",
        "on_error": "closed",
        "input": [
            {"type": "prompt-injection", "action": "block", "threshold": 0.4},
            {"type": "secrets", "action": "block"},
            {"type": "pii", "action": "redact", "reversible": True},
            # flag, not block: the toxicity classifier is weak across sources (docs/benchmarks.md)
            {"type": "toxicity", "action": "flag"},
        ],
        "output": [
            {"type": "secrets", "action": "block"},
            {"type": "pii", "action": "redact"},
            {"type": "toxicity", "action": "flag"},
        ],
    },
    "monitor": {
        "name": "monitor",
        "description": "Run the default scanners but only flag: nothing is blocked or changed.",
        "input": [
            {"type": "prompt-injection", "action": "flag"},
            {"type": "secrets", "action": "flag"},
            {"type": "pii", "action": "flag"},
        ],
        "output": [
            {"type": "secrets", "action": "flag"},
            {"type": "pii", "action": "flag"},
        ],
    },
}


def parse_policy(data: Any, *, where: str = "policy") -> Policy:
    """A policy from YAML/JSON data, or the name of a built-in policy. Errors are a 400 naming
    the field and what to put there."""
    if isinstance(data, Policy):
        return data
    if isinstance(data, str):
        return builtin_policy(data)
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        details = [{"loc": ".".join([where, *map(str, err["loc"])]), "msg": err["msg"], "type": err["type"]}
                   for err in e.errors()]
        first = details[0]
        raise ValidationFailed(f"bad guardrail policy: {first['loc']}: {first['msg']}", details=details) from e


def builtin_policy(name: str) -> Policy:
    data = BUILTIN_POLICIES.get(name)
    if data is None:
        raise ValidationFailed(
            f"unknown guardrail policy {name!r}; use one of {', '.join(BUILTIN_POLICIES)} or define it "
            "under guardrails.policies (docs/guardrails.md)", details=[{"loc": "policy", "msg": "unknown policy"}])
    return parse_policy(data, where=name)  # a 400 (not a raw ValidationError) when its scanners are missing
