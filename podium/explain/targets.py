"""What an explanation explains: a function from one text to one number, built from a guardrail
scanner (its risk score in [0, 1]) or a scorer with a numeric output (the other item fields fixed,
the explained field varied). SHAP and LIME call it on many masked copies of the text."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podium.errors import PodiumError, ValidationFailed
from podium.evals.scorers.base import FIELDS, Score, Scorer, scorer_from_assertion, scorer_specs
from podium.evals.scorers.errors import ScorerError
from podium.guardrails.base import Context, Scanner
from podium.guardrails.registry import build as build_scanner

__all__ = ["TextTarget", "scanner_target", "scorer_target"]


@dataclass(frozen=True)
class TextTarget:
    """``fn(texts) -> numbers`` and how to name it in a result (``describe``)."""

    fn: Callable[[Sequence[str]], list[float]]
    describe: dict[str, Any]


def scanner_target(name: str, params: Mapping[str, Any] | None = None, *, kind: str = "input",
                   scanner: Scanner | None = None) -> TextTarget:
    """The risk score of guardrail scanner ``name`` (built with ``params``, or ``scanner`` as given)
    on a text scanned as ``kind`` (input: a prompt; output: an answer)."""
    if kind not in ("input", "output"):
        raise ValidationFailed(f"kind must be input or output, got {kind!r}", details=[{"loc": "target.kind"}])
    sc = scanner if scanner is not None else build_scanner(name, dict(params or {}), where="target.name")
    ctx = Context(kind="output" if kind == "output" else "input")

    def fn(texts: Sequence[str]) -> list[float]:
        try:
            return [float(sc.scan(str(t), ctx).score) for t in texts]
        except PodiumError:
            raise
        except Exception as e:  # a scanner that cannot work without what it was not given (documents, a judge)
            raise ValidationFailed(f"scanner {name!r} failed on the text: {type(e).__name__}: {e}; check its params "
                                   "(scanners that need documents or a judge cannot be explained here)",
                                   details=[{"loc": "target.name"}]) from e

    return TextTarget(fn, {"kind": "scanner", "name": name, "scan_kind": kind})


def scorer_target(config: Mapping[str, Any] | Scorer, fields: Mapping[str, Any], field: str) -> TextTarget:
    """The numeric value of the scorer built from ``config`` (an assertion mapping, as in eval
    files: ``{type, value?, threshold?, ...}``) on the item ``fields`` with ``field`` replaced by
    the text. Booleans count as 0/1; a categorical (string) value cannot be explained."""
    if field not in FIELDS or field in ("trace", "metadata"):
        raise ValidationFailed(f"field must be one of input, output, expected, context (the text to explain), "
                               f"got {field!r}", details=[{"loc": "target.field"}])
    sc = config if isinstance(config, Scorer) else _build(config)
    base = {k: v for k, v in dict(fields).items() if k in FIELDS}
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValidationFailed(f"unknown item fields {unknown}; use {', '.join(FIELDS)}",
                               details=[{"loc": "target.fields"}])

    def fn(texts: Sequence[str]) -> list[float]:
        results = sc.score_batch([{**base, field: str(t)} for t in texts])
        out: list[float] = []
        for r in results:
            if isinstance(r, ScorerError):
                raise ValidationFailed(f"scorer {sc.name!r} failed on a masked text: {r.message}",
                                       details=[{"loc": "target.config"}]) from r
            if isinstance(r, Exception):
                raise r
            out.append(_numeric(r, sc.name))
        return out

    desc = config.get("type") if isinstance(config, Mapping) else getattr(sc, "type", sc.name)
    return TextTarget(fn, {"kind": "scorer", "name": sc.name, "type": desc, "field": field})


def _build(config: Mapping[str, Any]) -> Scorer:
    """The scorer of an assertion mapping; judges are refused (every masked text would be a model
    call through the gateway: hundreds per explanation)."""
    base = str(config.get("type") or "")
    base = base[4:] if base.startswith("not-") else base
    if any(s.type == base and "judge" in s.params for s in scorer_specs()):
        raise ValidationFailed(f"{base!r} is an LLM judge: explaining it would call the model once per masked text "
                               "(hundreds of calls); explain a model-free scorer, or a guardrail scanner",
                               details=[{"loc": "target.config.type"}])
    try:
        return scorer_from_assertion(config)
    except PodiumError:
        raise
    except Exception as e:  # a factory that refused its params in its own way
        raise ValidationFailed(f"cannot build the scorer: {type(e).__name__}: {e}; check its params",
                               details=[{"loc": "target.config"}]) from e


def _numeric(s: Score, name: str) -> float:
    v = s.numeric
    if v is None:
        raise ValidationFailed(f"scorer {name!r} returned the category {s.value!r}, not a number: only scorers "
                               "with a numeric or boolean value can be explained", details=[{"loc": "target.config"}])
    return v
