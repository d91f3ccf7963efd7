"""LLM-as-judge scorers, through any OpenAI-compatible endpoint (normally Podium's gateway).

A judge is given as ``judge=``:

* an OpenAI-compatible client (``openai.OpenAI(base_url=".../v1", api_key=...)``): the judge
  calls ``client.chat.completions.create(model=model, ...)``;
* a callable ``chat(messages, **kw) -> str`` (it receives those of ``model``, ``temperature``,
  ``max_tokens``, ``response_format``, ``seed`` that its signature accepts; an OpenAI-shaped
  dict reply is accepted too), or an object with such a ``chat`` method
  (:class:`podium.inference.LocalChatModel` works as is);
* a :class:`JudgeModel`;
* nothing: an ``openai.OpenAI`` client for the gateway at ``$PODIUM_BASE_URL/v1`` with
  ``$PODIUM_SECRET_KEY``, created on first use.

``model`` is the gateway alias (default ``"local"``, the bundled SmolLM2). Calls use
temperature 0 and send the template's JSON Schema as ``response_format`` (``"json_schema"``;
``"json_object"`` or ``None`` for endpoints that reject it).

Every judge asks for a structured verdict ``{"reasoning": ..., "score": ...}`` on the template's
scale (1-5 for the built-ins) and normalises it to 0..1: ``Score.value = (score - lo) / (hi - lo)``;
the raw score, the template name and version, the model and the number of attempts are in
``Score.metadata``; the reasoning is the explanation. A ``threshold`` (default 0.5, on the 0..1
value) gives the pass flag.

Parsing is forgiving (code fences, text around the JSON, a numeric string, ``"4/5"``, a
truncated object whose ``"score"`` survived) but never guesses: a reply without a score on the
scale is *unparseable*. The judge then asks again, showing the model its reply and what was
wrong, up to ``max_retries`` more times, and then raises :class:`JudgeError` (recorded as that
item's error; never a silent 0). A failed call (network, HTTP error) raises ``JudgeError`` at
once: retrying transport errors is the client's job.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from podium.evals.scorers.base import Score, Scorer, ScorerConfigError, references_of, require, text_of
from podium.evals.scorers.deterministic import extract_json
from podium.evals.scorers.errors import JudgeError
from podium.evals.scorers.templates import JudgeTemplate, builtin_template

__all__ = [
    "AnswerRelevance",
    "Coherence",
    "ContextFaithfulness",
    "Factuality",
    "Fluency",
    "GEval",
    "JudgeModel",
    "LlmRubric",
    "UnparseableVerdict",
    "context_text",
    "parse_list",
    "parse_verdict",
    "parse_verdicts",
]

NOT_GIVEN = "(not given)"
PromptSource = Callable[[str], Any]  # name -> JudgeTemplate | mapping | registry prompt | None


# --- parsing ---------------------------------------------------------------------------------


class UnparseableVerdict(ValueError):
    """The judge's reply has no usable verdict; the message says what was wrong."""


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_NUM = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?)?\s*$")
_SCORE_IN_TEXT = re.compile(r"""["']?\b(?:score|rating)\b["']?\s*[:=]\s*["']?(-?\d+(?:\.\d+)?)""", re.IGNORECASE)
_REASONING_IN_TEXT = re.compile(r'"(?:reasoning|reason|explanation)"\s*:\s*"((?:[^"\\]|\\.)*)', re.IGNORECASE)


def _to_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        m = _NUM.match(v)
        return float(m.group(1)) if m else None
    return None


def _json_of(text: str) -> Any:
    try:
        return extract_json(_THINK.sub("", text))
    except ValueError:
        return None


def _lower_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()}


def parse_verdict(text: str, score_range: tuple[float, float]) -> tuple[float, str]:
    """``(score, reasoning)`` from a judge reply; raises :class:`UnparseableVerdict`."""
    if not isinstance(text, str) or not text.strip():
        raise UnparseableVerdict("the reply is empty")
    obj = _json_of(text)
    score: float | None = None
    reasoning = ""
    if isinstance(obj, Mapping):
        low = _lower_keys(obj)
        raw = low.get("score", low.get("rating"))
        score = _to_number(raw)
        if score is None and raw is not None:
            raise UnparseableVerdict(f"`score` must be a number, got {raw!r}")
        r = low.get("reasoning", low.get("reason", low.get("explanation")))
        reasoning = r if isinstance(r, str) else ("" if r is None else text_of(r))
    if score is None:
        m = _SCORE_IN_TEXT.search(_THINK.sub("", text))
        if m is None:
            raise UnparseableVerdict('no score found; expected a JSON object like {"reasoning": "...", "score": 4}')
        score = float(m.group(1))
        if not reasoning:
            rm = _REASONING_IN_TEXT.search(text)
            reasoning = rm.group(1) if rm else ""
    lo, hi = score_range
    if not lo <= score <= hi:
        raise UnparseableVerdict(f"score {score:g} is outside the scale {lo:g} to {hi:g}")
    return score, reasoning.strip()


def parse_list(text: str, key: str) -> list[str]:
    """A list of strings from ``{"<key>": [...]}`` (or a bare JSON list); raises :class:`UnparseableVerdict`."""
    obj = _json_of(text) if isinstance(text, str) else None
    if isinstance(obj, Mapping):
        obj = _lower_keys(obj).get(key)
        if obj is None:
            raise UnparseableVerdict(f'no "{key}" list found; expected {{"{key}": ["...", ...]}}')
    if not isinstance(obj, list):
        raise UnparseableVerdict(f'no JSON list found; expected {{"{key}": ["...", ...]}}')
    out: list[str] = []
    for item in obj:
        if isinstance(item, Mapping):
            low = _lower_keys(item)
            item = next((low[k] for k in ("claim", "statement", "step", "text") if isinstance(low.get(k), str)), None)
        if not isinstance(item, str):
            raise UnparseableVerdict(f'"{key}" must be a list of strings')
        if item.strip():
            out.append(item.strip())
    return out


_YES = {"yes", "true", "supported", "support", "entailed", "1"}
_NO = {"no", "false", "unsupported", "not supported", "contradicted", "0", "idk", "unknown"}


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return bool(v) if v in (0, 1) else None
    if isinstance(v, str):
        s = v.strip().lower()
        return True if s in _YES else False if s in _NO else None
    return None


def parse_verdicts(text: str, n: int) -> list[tuple[bool, str]]:
    """``n`` ``(supported, reasoning)`` pairs from ``{"verdicts": [...]}``; raises :class:`UnparseableVerdict`."""
    obj = _json_of(text) if isinstance(text, str) else None
    if isinstance(obj, Mapping):
        obj = _lower_keys(obj).get("verdicts")
    if not isinstance(obj, list):
        raise UnparseableVerdict('no verdict list found; expected {"verdicts": [{"claim": 1, "supported": true}, ...]}')
    items: list[tuple[int | None, bool, str]] = []
    for i, v in enumerate(obj):
        if not isinstance(v, Mapping):
            raise UnparseableVerdict(f"verdict {i + 1} is not an object")
        low = _lower_keys(v)
        ok = _as_bool(low.get("supported", low.get("verdict")))
        if ok is None:
            raise UnparseableVerdict(f'verdict {i + 1} has no true/false "supported"')
        idx = low.get("claim")
        num = int(idx) if isinstance(idx, int) and not isinstance(idx, bool) else None
        reason = low.get("reasoning", low.get("reason", ""))
        items.append((num, ok, reason if isinstance(reason, str) else text_of(reason)))
    nums = [x[0] for x in items]
    if all(x is not None for x in nums) and sorted(nums) == list(range(1, n + 1)):  # type: ignore[type-var]
        items.sort(key=lambda x: x[0])  # type: ignore[arg-type, return-value]
    elif len(items) != n:
        raise UnparseableVerdict(f"expected {n} verdicts, one per claim, got {len(items)}")
    return [(ok, reason) for _, ok, reason in items]


def context_text(context: Any) -> str:
    """Context for a prompt: a string as is; a list of passages numbered ``[1] ...``."""
    if isinstance(context, str):
        return context
    if isinstance(context, list | tuple):
        parts = []
        for i, c in enumerate(context, 1):
            if isinstance(c, Mapping):
                c = next((c[k] for k in ("content", "text", "page_content") if isinstance(c.get(k), str)), c)
            parts.append(f"[{i}] {text_of(c)}")
        return "\n".join(parts)
    return text_of(context)


# --- the judge model -------------------------------------------------------------------------

_DEFAULT_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _gateway_client() -> Any:
    openai = require("openai", scorer="judge", package="openai", requirement="openai>=1.40")
    base = os.environ.get("PODIUM_BASE_URL", "http://127.0.0.1:8700").rstrip("/")
    key = os.environ.get("PODIUM_SECRET_KEY") or "podium"
    with _CLIENTS_LOCK:
        client = _DEFAULT_CLIENTS.get((base, key))
        if client is None:
            client = _DEFAULT_CLIENTS[(base, key)] = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    return client


def _reply_text(reply: Any) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, Mapping):
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"the judge returned a mapping that is not a chat completion: {str(reply)[:200]}") from None
        return content or ""
    choices = getattr(reply, "choices", None)
    if choices:
        return getattr(choices[0].message, "content", None) or ""
    raise JudgeError(f"the judge returned {type(reply).__name__}; a chat callable must return a string")


class JudgeModel:
    """Sends judge prompts to a model: an OpenAI-compatible client, a ``chat`` callable, or the
    gateway (``judge=None``). Thread-safe if the client is (the ``openai`` client is)."""

    def __init__(
        self,
        judge: Any = None,
        *,
        model: str = "local",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        response_format: str | None = "json_schema",
    ) -> None:
        if response_format not in ("json_schema", "json_object", None):
            raise ScorerConfigError(f"`response_format` must be json_schema, json_object or null, got {response_format!r}")
        if not isinstance(model, str) or not model:
            raise ScorerConfigError(f"`model` must be a model alias such as 'local', got {model!r}")
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.response_format = response_format
        self._client: Any = None
        self._fn: Callable[..., Any] | None = None
        self._accepts: frozenset[str] | None = None  # None: passes every keyword
        if judge is None:
            pass  # the gateway client, on first use
        elif hasattr(judge, "chat") and hasattr(judge.chat, "completions"):
            self._client = judge
        elif callable(judge) or callable(getattr(judge, "chat", None)):
            fn = judge if callable(judge) and not hasattr(judge, "chat") else judge.chat
            self._fn = fn
            try:
                params = inspect.signature(fn).parameters.values()
            except (TypeError, ValueError):
                params = ()  # type: ignore[assignment]
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                self._accepts = frozenset(p.name for p in params)
        else:
            raise ScorerConfigError(
                f"`judge` must be an OpenAI-compatible client, a chat(messages, **kw) callable or a JudgeModel, "
                f"got {type(judge).__name__}"
            )

    def _response_format(self, schema: Mapping[str, Any] | None, schema_name: str) -> dict[str, Any] | None:
        if self.response_format == "json_schema" and schema is not None:
            return {"type": "json_schema", "json_schema": {"name": schema_name, "schema": dict(schema), "strict": True}}
        if self.response_format in ("json_object", "json_schema"):
            return {"type": "json_object"}
        return None

    def complete(self, messages: list[dict[str, str]], *, schema: Mapping[str, Any] | None = None,
                 schema_name: str = "verdict") -> str:
        """The judge's reply text for ``messages``."""
        kw: dict[str, Any] = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens}
        rf = self._response_format(schema, schema_name)
        if rf is not None:
            kw["response_format"] = rf
        if self.seed is not None:
            kw["seed"] = self.seed
        if self._fn is not None:
            if self._accepts is not None:
                kw = {k: v for k, v in kw.items() if k in self._accepts}
            return _reply_text(self._fn(messages, **kw))
        client = self._client or _gateway_client()
        resp = client.chat.completions.create(messages=messages, **kw)
        return _reply_text(resp)


# --- judge scorers ---------------------------------------------------------------------------


class _Judge(Scorer):
    """Base of the judge scorers: template resolution, the ask-parse-retry loop, normalisation.

    Its ``__init__`` holds the judge keywords every judge type takes; subclasses add their own and
    forward ``**kwargs`` here (the registry reads the parameters along the class hierarchy)."""

    direction = "higher"
    default_threshold = 0.5
    templates: ClassVar[tuple[str, ...]] = ()  # built-in template names; the first is the main one
    variables: ClassVar[tuple[str, ...]] = ("input", "output", "expected", "context")

    def __init__(
        self,
        *,
        judge: Any = None,
        model: str = "local",
        template: Any = None,
        prompt_source: PromptSource | None = None,
        max_retries: int = 2,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        response_format: str | None = "json_schema",
        threshold: float | None = None,
        name: str | None = None,
        weight: float = 1.0,
        invert: bool = False,
    ) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ScorerConfigError(f"{self.name}: `max_retries` must be a whole number >= 0, got {max_retries!r}")
        self.max_retries = max_retries
        self.judge = judge if isinstance(judge, JudgeModel) else JudgeModel(
            judge, model=model, temperature=temperature, max_tokens=max_tokens, seed=seed,
            response_format=response_format,
        )
        if prompt_source is not None and not callable(prompt_source):
            raise ScorerConfigError(f"{self.name}: `prompt_source` must be a callable name -> template")
        self.prompt_source = prompt_source
        self._override: dict[str, JudgeTemplate] = {}
        if template is not None:
            main = self.templates[0]
            tpl = JudgeTemplate.coerce(template, base=builtin_template(main))
            self._check_template(main, tpl)
            self._override[main] = tpl
        self._resolved: dict[str, JudgeTemplate] = {}
        self._lock = threading.Lock()

    def _check_template(self, name: str, tpl: JudgeTemplate) -> None:
        tpl.check(self._variables_for(name))
        base = builtin_template(name)
        if base.score_range is not None and tpl.score_range is None:
            raise ScorerConfigError(f"{self.name}: template {tpl.name!r} needs a `score_range` ([low, high])")

    def _variables_for(self, name: str) -> tuple[str, ...]:
        return (*self.variables, *self._extra_variables(name))

    def _extra_variables(self, name: str) -> tuple[str, ...]:
        return ()

    def template(self, name: str) -> JudgeTemplate:
        """The template used for ``name``: the ``template`` override, else ``prompt_source(name)``,
        else the built-in. Resolved once per scorer (one run uses one prompt version)."""
        tpl = self._resolved.get(name)
        if tpl is not None:
            return tpl
        with self._lock:
            tpl = self._resolved.get(name)
            if tpl is None:
                tpl = self._override.get(name)
                if tpl is None and self.prompt_source is not None:
                    got = self.prompt_source(name)
                    if got is not None:
                        tpl = JudgeTemplate.coerce(got, base=builtin_template(name))
                        self._check_template(name, tpl)
                if tpl is None:
                    tpl = builtin_template(name)
                self._resolved[name] = tpl
        return tpl

    def ask(self, name: str, variables: Mapping[str, str], parse: Callable[[str], Any]) -> tuple[Any, dict[str, Any]]:
        """Render template ``name``, call the judge, parse; retry unparseable replies. Returns the
        parsed value and metadata (template, version, model, attempts)."""
        tpl = self.template(name)
        messages = tpl.render(variables)
        convo = messages
        raws: list[str] = []
        problem = ""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                raw = self.judge.complete(convo, schema=tpl.response_schema, schema_name=name.replace(".", "_"))
            except (ScorerConfigError, JudgeError):
                raise
            except Exception as e:
                raise JudgeError(
                    f"{self.name}: the judge call to model {self.judge.model!r} failed: {type(e).__name__}: {e}",
                    scorer=self.name, attempts=attempt, raw_outputs=raws,
                ) from e
            raws.append(raw)
            try:
                parsed = parse(raw)
            except UnparseableVerdict as e:
                problem = str(e)
                convo = [*messages, {"role": "assistant", "content": raw},
                         {"role": "user", "content": f"That reply could not be used: {problem}. "
                                                     "Answer again with only the JSON object asked for above."}]
                continue
            return parsed, {"template": tpl.name, "template_version": tpl.version, "model": self.judge.model,
                            "attempts": attempt}
        raise JudgeError(
            f"{self.name}: the judge ({self.judge.model!r}) gave no usable verdict in {attempts} attempt(s); "
            f"last problem: {problem}; last reply: {raws[-1][:300]!r}",
            scorer=self.name, attempts=attempts, raw_outputs=raws,
        )

    def rate(self, name: str, variables: Mapping[str, str], **extra: Any) -> Score:
        """Ask for a ``{score, reasoning}`` verdict and normalise the score to 0..1."""
        tpl = self.template(name)
        assert tpl.score_range is not None
        lo, hi = tpl.score_range
        (raw, reasoning), meta = self.ask(name, variables, lambda text: parse_verdict(text, (lo, hi)))
        meta.update(raw_score=raw, score_range=[lo, hi], **extra)
        return Score((raw - lo) / (hi - lo), explanation=reasoning or None, metadata=meta)

    @staticmethod
    def _vars(**fields: Any) -> dict[str, str]:
        out = {}
        for k, v in fields.items():
            if v is None:
                out[k] = NOT_GIVEN
            elif k == "context":
                out[k] = context_text(v)
            elif k == "expected" and isinstance(v, list | tuple):
                out[k] = "\n".join(f"- {r}" for r in references_of(v))  # any of these is acceptable
            else:
                out[k] = text_of(v)
        return out


class LlmRubric(_Judge):
    """The output satisfies a free-text rubric (``value``), judged 1-5."""

    type = "llm-rubric"
    templates = ("judge.rubric",)

    def __init__(self, value: str, **kwargs: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ScorerConfigError("llm-rubric: give the rubric as `value` (what a good output does)")
        self.rubric = value
        super().__init__(**kwargs)
        self._declare(["output"], ["input"])

    def _extra_variables(self, name: str) -> tuple[str, ...]:
        return ("rubric",)

    def compute(self, output: Any, input: Any = None) -> Score:
        return self.rate("judge.rubric", {**self._vars(input=input, output=output, expected=None, context=None),
                                          "rubric": self.rubric})


class GEval(_Judge):
    """G-Eval: a criterion (``value``) and evaluation steps (``steps``; generated once by the judge
    when left out), form-filling score 1-5."""

    type = "g-eval"
    templates = ("judge.g-eval", "judge.g-eval-steps")

    def __init__(self, value: str, *, steps: Sequence[str] | None = None, **kwargs: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ScorerConfigError("g-eval: give the criteria as `value` (what to judge the output on)")
        if steps is not None and (isinstance(steps, str) or not all(isinstance(s, str) for s in steps) or not steps):
            raise ScorerConfigError("g-eval: `steps` must be a non-empty list of strings")
        self.criteria = value
        self.steps: list[str] | None = list(steps) if steps is not None else None
        super().__init__(**kwargs)
        self._steps_lock = threading.Lock()
        self._declare(["output"], ["input", "expected", "context"])

    def _variables_for(self, name: str) -> tuple[str, ...]:
        if name == "judge.g-eval-steps":
            return ("criteria",)  # steps are written once per scorer, before any item
        return (*self.variables, "criteria", "steps")

    def evaluation_steps(self) -> list[str]:
        """The steps: given, or generated once from the criteria (G-Eval's auto chain-of-thought)."""
        if self.steps is None:
            with self._steps_lock:
                if self.steps is None:
                    steps, _ = self.ask("judge.g-eval-steps", {"criteria": self.criteria},
                                        lambda t: parse_list(t, "steps") or _raise_empty("steps"))
                    self.steps = steps
        return self.steps

    def compute(self, output: Any, input: Any = None, expected: Any = None, context: Any = None) -> Score:
        steps = self.evaluation_steps()
        variables = {**self._vars(input=input, output=output, expected=expected, context=context),
                     "criteria": self.criteria, "steps": "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))}
        return self.rate("judge.g-eval", variables, steps=steps)


def _raise_empty(key: str) -> Any:
    raise UnparseableVerdict(f'the "{key}" list is empty')


class Factuality(_Judge):
    """Factual agreement of the output with the reference (``expected``, or ``value``), judged 1-5."""

    type = "factuality"
    templates = ("judge.factuality",)

    def __init__(self, value: Any = None, **kwargs: Any) -> None:
        self.reference = value
        super().__init__(**kwargs)
        self._declare(["output"] if value is not None else ["output", "expected"], ["input"])

    def compute(self, output: Any, expected: Any = None, input: Any = None) -> Score:
        ref = self.reference if self.reference is not None else expected
        return self.rate("judge.factuality", self._vars(input=input, output=output, expected=ref, context=None))


class AnswerRelevance(_Judge):
    """Does the output address the input question (relevance, not correctness), judged 1-5."""

    type = "answer-relevance"
    templates = ("judge.answer-relevance",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._declare(["input", "output"])

    def compute(self, input: Any, output: Any) -> Score:
        return self.rate("judge.answer-relevance",
                         self._vars(input=input, output=output, expected=None, context=None))


class ContextFaithfulness(_Judge):
    """Faithfulness to ``context``: the judge splits the output into claims, then checks each
    against the context; value = supported / total claims (1.0 when there are no claims)."""

    type = "context-faithfulness"
    templates = ("judge.faithfulness-verdicts", "judge.faithfulness-claims")

    def __init__(self, *, max_claims: int = 20, **kwargs: Any) -> None:
        if isinstance(max_claims, bool) or not isinstance(max_claims, int) or max_claims < 1:
            raise ScorerConfigError(f"context-faithfulness: `max_claims` must be a whole number >= 1, got {max_claims!r}")
        self.max_claims = max_claims
        kwargs.setdefault("max_tokens", 1024)  # claims lists run longer
        super().__init__(**kwargs)
        self._declare(["output", "context"], ["input"])

    def _extra_variables(self, name: str) -> tuple[str, ...]:
        return ("claims",)

    def compute(self, output: Any, context: Any, input: Any = None) -> Score:
        base = self._vars(input=input, output=output, expected=None, context=context)
        claims, meta1 = self.ask("judge.faithfulness-claims", {**base, "claims": ""},
                                 lambda t: parse_list(t, "claims"))
        truncated = len(claims) > self.max_claims
        claims = claims[: self.max_claims]
        meta: dict[str, Any] = {"templates": {meta1["template"]: meta1["template_version"]}, "model": meta1["model"],
                                "attempts": meta1["attempts"], "claims": [], "truncated": truncated}
        if not claims:
            return Score(1.0, explanation="the output makes no factual claims", metadata=meta)
        numbered = "\n".join(f"{i}. {c}" for i, c in enumerate(claims, 1))
        verdicts, meta2 = self.ask("judge.faithfulness-verdicts", {**base, "claims": numbered},
                                   lambda t: parse_verdicts(t, len(claims)))
        meta["templates"][meta2["template"]] = meta2["template_version"]
        meta["attempts"] += meta2["attempts"]
        meta["claims"] = [{"claim": c, "supported": ok, "reasoning": r} for c, (ok, r) in zip(claims, verdicts, strict=True)]
        supported = sum(1 for ok, _ in verdicts if ok)
        unsupported = [c for c, (ok, _) in zip(claims, verdicts, strict=True) if not ok]
        why = f"{supported} of {len(claims)} claims supported by the context"
        if unsupported:
            why += "; unsupported: " + "; ".join(repr(c) for c in unsupported[:5])
        return Score(supported / len(claims), explanation=why, metadata=meta)


class Coherence(_Judge):
    """Coherence of the output (structure, organisation; G-Eval's definition), judged 1-5."""

    type = "coherence"
    templates = ("judge.coherence",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._declare(["output"], ["input"])

    def compute(self, output: Any, input: Any = None) -> Score:
        return self.rate("judge.coherence", self._vars(input=input, output=output, expected=None, context=None))


class Fluency(_Judge):
    """Fluency of the output (grammar, readability), judged 1-5."""

    type = "fluency"
    templates = ("judge.fluency",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._declare(["output"])

    def compute(self, output: Any) -> Score:
        return self.rate("judge.fluency", self._vars(input=None, output=output, expected=None, context=None))
