"""Judge prompt templates as plain data: a name, a version, chat messages with ``{{placeholders}}``.

Templates are data so they can live in the prompt registry, be tuned and be tracked: a judge
scorer takes a ``prompt_source`` callable (``name -> JudgeTemplate | mapping | None``) and uses
what it returns instead of the built-in template of that name (``None``: keep the built-in).
The name and version used are stored in every judge score's metadata.

Placeholders are ``{{name}}`` (spaces inside the braces allowed), replaced in one pass, so text
substituted in (an output containing ``{{x}}``) is never expanded again. A template may use
fewer placeholders than a judge offers, never others (checked when the judge first runs).

The built-in templates ask for a JSON verdict and carry its JSON Schema (``response_schema``),
which the judge sends as ``response_format`` so that a model with constrained decoding (the
local llama.cpp model, OpenAI) can only answer in that shape. ``score_range`` is the scale the
prompt asks for; judge scores are normalised from it to 0..1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.evals.scorers.errors import ScorerConfigError

__all__ = ["BUILTIN_TEMPLATES", "JudgeTemplate", "builtin_template"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class JudgeTemplate:
    """A versioned judge prompt: chat ``messages`` (role, content with ``{{placeholders}}``)."""

    name: str
    version: int
    messages: tuple[Mapping[str, str], ...]
    response_schema: Mapping[str, Any] | None = None
    score_range: tuple[float, float] | None = None
    description: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.messages:
            raise ScorerConfigError(f"judge template {self.name!r} has no messages")
        for i, m in enumerate(self.messages):
            if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant", "developer") \
                    or not isinstance(m.get("content"), str):
                raise ScorerConfigError(
                    f"judge template {self.name!r}: messages[{i}] must be {{'role': system|user|assistant, "
                    "'content': str}}"
                )
        if self.score_range is not None:
            lo, hi = self.score_range
            if not lo < hi:
                raise ScorerConfigError(f"judge template {self.name!r}: score_range {self.score_range} is empty")

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(p for m in self.messages for p in _PLACEHOLDER.findall(m["content"]))

    def check(self, available: Sequence[str] | frozenset[str]) -> None:
        """Raise :class:`ScorerConfigError` if the template uses a placeholder the judge cannot fill."""
        unknown = sorted(self.placeholders - set(available))
        if unknown:
            used = ", ".join("{{" + u + "}}" for u in unknown)
            raise ScorerConfigError(
                f"judge template {self.name!r} v{self.version} uses {used}, which this judge does not "
                f"provide; it provides: {', '.join(sorted(available))}"
            )

    def render(self, variables: Mapping[str, str]) -> list[dict[str, str]]:
        """The messages with every ``{{name}}`` replaced by ``variables[name]`` (one pass)."""
        self.check(frozenset(variables))

        def sub(m: re.Match[str]) -> str:
            return variables[m.group(1)]

        return [{"role": m["role"], "content": _PLACEHOLDER.sub(sub, m["content"])} for m in self.messages]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, as a prompt registry would store it."""
        return {
            "name": self.name,
            "version": self.version,
            "messages": [dict(m) for m in self.messages],
            "response_schema": self.response_schema,
            "score_range": list(self.score_range) if self.score_range is not None else None,
            "description": self.description,
            "config": dict(self.config),
        }

    @classmethod
    def coerce(cls, obj: Any, *, base: JudgeTemplate | None = None) -> JudgeTemplate:
        """A template from a :class:`JudgeTemplate`, a mapping (:meth:`from_dict`), or a prompt-registry
        prompt (an object with ``prompt``: a string or chat messages, ``version``, ``name`` and
        ``config``; ``config`` may carry ``score_range`` and ``response_schema``)."""
        if isinstance(obj, JudgeTemplate):
            return obj
        if isinstance(obj, Mapping):
            return cls.from_dict(obj, base=base)
        if hasattr(obj, "prompt"):
            return cls.from_dict({"name": getattr(obj, "name", None), "version": getattr(obj, "version", None),
                                  "messages": obj.prompt, "config": dict(getattr(obj, "config", None) or {})},
                                 base=base)
        raise ScorerConfigError(f"cannot use {type(obj).__name__} as a judge template: give a JudgeTemplate, "
                                "a mapping or a prompt with `prompt` and `version`")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: JudgeTemplate | None = None) -> JudgeTemplate:
        """Build from :meth:`to_dict`'s shape; fields left out are taken from ``base``."""
        if not isinstance(data, Mapping):
            raise ScorerConfigError(f"a judge template must be a mapping, got {type(data).__name__}")

        def pick(key: str, default: Any) -> Any:
            return data[key] if data.get(key) is not None else default

        raw_cfg = data.get("config")
        cfg = raw_cfg if isinstance(raw_cfg, Mapping) else {}
        messages = pick("messages", base.messages if base else None)
        if messages is None:
            raise ScorerConfigError("a judge template needs `messages`")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        rng = pick("score_range", cfg.get("score_range", base.score_range if base else None))
        schema = data.get("response_schema", cfg.get("response_schema"))
        if schema is None and base is not None:
            schema = base.response_schema
            if rng is not None and base.score_range is not None and tuple(map(float, rng)) != base.score_range:
                schema = _verdict_schema(float(rng[0]), float(rng[1]))  # a new scale: a matching schema
        version = pick("version", base.version if base else 1)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ScorerConfigError(f"judge template version must be an integer, got {version!r}")
        return cls(
            name=str(pick("name", base.name if base else "custom")),
            version=version,
            messages=tuple(dict(m) for m in messages),
            response_schema=schema,
            score_range=(float(rng[0]), float(rng[1])) if rng is not None else None,
            description=str(pick("description", base.description if base else "")),
            config=dict(pick("config", base.config if base else {})),
        )


def _verdict_schema(lo: float, hi: float) -> dict[str, Any]:
    """``{"reasoning": str, "score": ...}``: an integer enum for whole-number scales, else a bounded number."""
    if float(lo).is_integer() and float(hi).is_integer() and hi - lo <= 100:
        score: dict[str, Any] = {"type": "integer", "enum": list(range(int(lo), int(hi) + 1))}
    else:
        score = {"type": "number", "minimum": lo, "maximum": hi}
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "score": score,
        },
        "required": ["reasoning", "score"],
        "additionalProperties": False,
    }


def _list_schema(key: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": {"type": "string"}}},
        "required": [key],
        "additionalProperties": False,
    }


_VERDICTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdicts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "claim": {"type": "integer"},
                    "reasoning": {"type": "string"},
                    "supported": {"type": "boolean"},
                },
                "required": ["claim", "reasoning", "supported"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["verdicts"],
    "additionalProperties": False,
}

_JSON_VERDICT = ('Reply with only a JSON object, no other text: '
                 '{"reasoning": "<one or two sentences>", "score": <integer from 1 to 5>}')


def _t(name: str, system: str, user: str, *, schema: dict[str, Any], rng: tuple[float, float] | None,
       description: str) -> JudgeTemplate:
    return JudgeTemplate(
        name=name, version=1, description=description, response_schema=schema, score_range=rng,
        messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
    )


BUILTIN_TEMPLATES: dict[str, JudgeTemplate] = {
    t.name: t
    for t in (
        _t(
            "judge.rubric",
            "You are a strict, impartial evaluator. You grade an AI assistant's output against a rubric. "
            + _JSON_VERDICT,
            "Rubric:\n{{rubric}}\n\nInput given to the assistant:\n{{input}}\n\nOutput to grade:\n{{output}}\n\n"
            "How well does the output satisfy the rubric? 1 = not at all, 2 = mostly not, 3 = partly, "
            "4 = mostly, 5 = fully. Reply with only the JSON object.",
            schema=_verdict_schema(1, 5), rng=(1, 5),
            description="llm-rubric: does the output satisfy a free-text rubric (1-5)",
        ),
        _t(
            "judge.g-eval",
            "You evaluate an AI output on one criterion by following the evaluation steps. " + _JSON_VERDICT,
            "Evaluation criteria:\n{{criteria}}\n\nEvaluation steps:\n{{steps}}\n\nInput:\n{{input}}\n\n"
            "Expected output:\n{{expected}}\n\nContext:\n{{context}}\n\nActual output:\n{{output}}\n\n"
            "Follow the evaluation steps, then score the actual output on the criteria from 1 (worst) to 5 (best). "
            "Reply with only the JSON object.",
            schema=_verdict_schema(1, 5), rng=(1, 5),
            description="g-eval: criteria + evaluation steps, form-filling score (1-5)",
        ),
        _t(
            "judge.g-eval-steps",
            'You write evaluation steps for grading AI outputs. Reply with only a JSON object: '
            '{"steps": ["<step>", "<step>", ...]}',
            "Write 3 to 5 short, concrete steps that a grader should follow to judge an output on this "
            "criterion:\n{{criteria}}\n\nReply with only the JSON object.",
            schema=_list_schema("steps"), rng=None,
            description="g-eval: generates the evaluation steps from the criteria (auto chain-of-thought)",
        ),
        _t(
            "judge.factuality",
            "You compare an answer with a reference answer for factual agreement. Wording and style do not "
            "matter, only facts. " + _JSON_VERDICT,
            "Question:\n{{input}}\n\nReference answer (treat it as correct):\n{{expected}}\n\n"
            "Answer to check:\n{{output}}\n\n"
            "Score the factual agreement of the answer with the reference: 5 = the same facts (or a consistent "
            "subset or superset that contradicts nothing), 4 = agrees on the main fact with small omissions, "
            "3 = partly agrees, 2 = mostly misses or disagrees with the main fact, 1 = contradicts the reference. "
            "Reply with only the JSON object.",
            schema=_verdict_schema(1, 5), rng=(1, 5),
            description="factuality: agreement of the output's facts with the expected answer (1-5)",
        ),
        _t(
            "judge.answer-relevance",
            "You judge whether an answer addresses the question that was asked. Judge relevance only, "
            "not correctness. " + _JSON_VERDICT,
            "Question:\n{{input}}\n\nAnswer:\n{{output}}\n\n"
            "How directly and completely does the answer address the question? 5 = fully, nothing off-topic; "
            "4 = with minor gaps or digressions; 3 = partly; 2 = mostly off-topic or evasive; 1 = not at all. "
            "Reply with only the JSON object.",
            schema=_verdict_schema(1, 5), rng=(1, 5),
            description="answer-relevance: does the output address the input question (1-5)",
        ),
        _t(
            "judge.faithfulness-claims",
            'You split an answer into short, self-contained factual claims. Reply with only a JSON object: '
            '{"claims": ["<claim>", ...]}',
            "Question (for reference):\n{{input}}\n\nAnswer:\n{{output}}\n\n"
            "List every factual claim the answer makes, each as one short standalone sentence (replace "
            "pronouns with what they refer to). Skip opinions, greetings and questions. If there are none, "
            'reply {"claims": []}.',
            schema=_list_schema("claims"), rng=None,
            description="context-faithfulness, step 1: extract the output's claims",
        ),
        _t(
            "judge.faithfulness-verdicts",
            "You check claims against a context. A claim is supported only if the context states it or "
            "directly implies it; anything else, including true facts the context does not mention, is not "
            "supported. Reply with only a JSON object: "
            '{"verdicts": [{"claim": <claim number>, "reasoning": "<short>", "supported": true|false}, ...]} '
            "with one entry per claim, in order.",
            "Context:\n{{context}}\n\nClaims:\n{{claims}}\n\nFor each numbered claim, decide whether the "
            "context supports it. Reply with only the JSON object.",
            schema=_VERDICTS_SCHEMA, rng=None,
            description="context-faithfulness, step 2: check each claim against the context",
        ),
        _t(
            "judge.coherence",
            "You rate the coherence of a text: the collective quality of all its sentences. A coherent text "
            "is well structured and well organised, builds from sentence to sentence into a coherent body of "
            "information, and is not a heap of related facts. " + _JSON_VERDICT,
            "Input (for reference):\n{{input}}\n\nText to rate:\n{{output}}\n\n"
            "Rate its coherence from 1 (incoherent) to 5 (perfectly coherent). Reply with only the JSON object.",
            schema=_verdict_schema(1, 5), rng=(1, 5),
            description="coherence: structure and organisation of the output (1-5, G-Eval's definition)",
        ),
        _t(
            "judge.fluency",
            "You rate the fluency of a text: the quality of its individual sentences. Fluent sentences are "
            "grammatical, well written and natural to read, without repetition, fragments or formatting "
            "problems. " + _JSON_VERDICT,
            "Text to rate:\n{{output}}\n\nRate its fluency from 1 (unreadable) to 5 (perfectly fluent). "
            "Reply with only the JSON object.",
            schema=_verdict_schema(1, 5), rng=(1, 5),
            description="fluency: grammar and readability of the output (1-5)",
        ),
    )
}


def builtin_template(name: str) -> JudgeTemplate:
    try:
        return BUILTIN_TEMPLATES[name]
    except KeyError:
        raise ScorerConfigError(
            f"no built-in judge template {name!r}; built-ins: {', '.join(sorted(BUILTIN_TEMPLATES))}"
        ) from None
