"""A rule's scorers, built from their specs.

Three kinds of spec (``scorers`` in a rule)::

    {"type": "icontains", "params": {"value": "refund"}}            any registered scorer
    {"guardrail": "pii", "params": {...}, "scan": "output"}         a guardrail scanner
    {"type": "llm-rubric", "params": {"value": "polite"}, "model": "gpt-judge"}   an LLM judge

``name`` renames the score. A guardrail scanner scores its risk (0..1, 1 = bad) on the mapped
``output`` (or ``input`` with ``scan: input``), passing below ``threshold`` (0.5). A judge type
(any registered scorer that takes a ``judge``) calls ``model`` (default ``local``) through the
gateway (:mod:`podium.monitor.online.judge`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podium.errors import BadRequest, ConfigurationError
from podium.evals import Score, Scorer, ScorerConfigError, get_scorer, scorer_specs
from podium.evals.scorers.base import text_of
from podium.guardrails.base import Context, Scanner
from podium.guardrails.registry import build as build_scanner

__all__ = ["Built", "GuardrailScorer", "build_scorers", "is_judge_type"]

Chat = Callable[..., Any]


@dataclass(frozen=True)
class Built:
    index: int
    kind: str  # "scorer" | "guardrail" | "judge"
    scorer: Scorer
    model: str | None = None


class GuardrailScorer(Scorer):
    """A guardrail scanner as a scorer: value = the scanner's risk, passed = risk < threshold."""

    direction = "lower"
    default_threshold = 0.5

    def __init__(self, scanner: Scanner, *, scan: str = "output", name: str | None = None,
                 threshold: float | None = None) -> None:
        self.scanner = scanner
        self.scan_field = scan
        super().__init__(name=name or f"guardrail:{scanner.name or type(scanner).__name__}", threshold=threshold)
        self._declare([scan], ["input", "context"] if scan == "output" else [])

    def compute(self, *args: Any, **fields: Any) -> Score:
        text = text_of(fields[self.scan_field])
        docs = fields.get("context")
        documents = [text_of(d) for d in docs] if isinstance(docs, list) else ([text_of(docs)] if docs else [])
        prompt = fields.get("input")
        ctx = Context(kind="output" if self.scan_field == "output" else "input",
                      prompt=text_of(prompt) if prompt is not None else None, documents=documents)
        r = self.scanner.scan(text, ctx)
        meta: dict[str, Any] = {"findings": [f.to_dict() for f in r.findings][:20]}
        if r.metadata:
            meta["scanner"] = dict(r.metadata)
        return Score(value=float(r.score), explanation=r.detail, metadata=meta)


def is_judge_type(type_name: str) -> bool:
    base = type_name[4:] if type_name.startswith("not-") else type_name
    return any(s.type == base and "judge" in s.params for s in scorer_specs())


def _where(i: int, message: str) -> dict[str, Any]:
    return {"field": f"scorers.{i}", "message": message}


def build_scorers(specs: Sequence[Mapping[str, Any]], *, chat: Chat | None = None,
                  default_model: str = "local") -> list[Built]:
    """Build every scorer of a rule. ``chat`` is the judges' model callable (None: a placeholder
    that refuses to be called, for validation). Raises BadRequest naming the bad scorer."""
    out: list[Built] = []
    names: set[str] = set()
    for i, spec in enumerate(specs):
        params = dict(spec.get("params") or {})
        name = spec.get("name")
        try:
            if spec.get("guardrail"):
                threshold = params.pop("threshold", None)
                scanner = build_scanner(str(spec["guardrail"]), params, where=f"scorers.{i}.params")
                sc: Scorer = GuardrailScorer(scanner, scan=str(spec.get("scan") or "output"), name=name,
                                             threshold=threshold)
                built = Built(i, "guardrail", sc)
            else:
                type_name = str(spec.get("type") or "")
                if name:
                    params["name"] = name
                if type_name and is_judge_type(type_name):
                    model = str(spec.get("model") or params.pop("model", None) or default_model)
                    params["judge"] = chat if chat is not None else _no_calls
                    params["model"] = model
                    built = Built(i, "judge", get_scorer(type_name, **params), model)
                else:
                    if spec.get("model"):
                        raise ScorerConfigError(f"scorer {type_name!r} is not an LLM judge and takes no `model`")
                    built = Built(i, "scorer", get_scorer(type_name, **params))
        except (BadRequest, ConfigurationError) as e:
            err = BadRequest(f"scorers[{i}]: {e.message}", details=[_where(i, e.message)])
            err.code = e.code  # keep the precise code (unknown_scorer, missing_dependency, ...)
            raise err from e
        except Exception as e:  # a factory that refused its params in its own way
            msg = f"{type(e).__name__}: {e}"
            raise BadRequest(f"scorers[{i}]: cannot build it: {msg}; check its params",
                             details=[_where(i, msg)]) from e
        if built.scorer.name in names:
            raise BadRequest(f"scorers[{i}]: two scorers make scores named {built.scorer.name!r}; give one a `name`",
                             details=[_where(i, "duplicate score name")])
        names.add(built.scorer.name)
        out.append(built)
    return out


def _no_calls(messages: Any, **kw: Any) -> str:
    raise RuntimeError("this judge was built for validation only")
