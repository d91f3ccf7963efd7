"""Retrieval scorers against labelled relevance: ``hit-rate``, ``mrr``, ``ndcg``,
``context-precision`` and ``context-recall`` (docs/rag.md, docs/scorers.md).

Each reads the ranked list a retriever returned from the item's ``output`` and the relevant ids
from ``expected``; no model is involved (these are the ID-based variants, as in RAGAS's
``IDBasedContextPrecision``/``Recall``).

- ``output``: a list of ids (``["guide.md#0", ...]``), a list of hits (dicts with ``id`` /
  ``chunk_id`` and/or ``document_id``, as ``/api/v1/collections/{name}/search`` returns them), or a
  dict holding such a list under ``data``, ``hits``, ``chunks``, ``results`` or ``documents``.
- ``expected``: a list of relevant ids, a dict ``{"relevant": [...]}``, or graded relevance
  ``{"id": grade, ...}`` (``ndcg`` uses the grades; the others count grade > 0 as relevant).

A retrieved item is relevant when its chunk id or its document id is a relevant id (``by``:
``auto``, the default; ``chunk``; or ``document``); each relevant id counts once, at its first
(best) rank. ``k`` cuts the list (default: all of it). With ``R`` the relevant ids, ``rel_i`` 1
when rank ``i`` is a first match:

- hit-rate@k = 1 if any ``rel_i`` (i <= k) else 0
- mrr@k = 1 / first relevant rank (0 when none in the top k)
- ndcg@k = sum(g_i / log2(i + 1)) / ideal, the ideal from the grades sorted, top k
- context-precision@k = sum_i(precision@i * rel_i) / sum_i(rel_i) (0 when none)
- context-recall@k = |relevant found in top k| / |R|
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from podium.evals.scorers.base import Scorer
from podium.evals.scorers.errors import ScorerConfigError

__all__ = [
    "RETRIEVAL_SCORERS",
    "ContextPrecision",
    "ContextRecall",
    "HitRate",
    "Mrr",
    "Ndcg",
    "register_retrieval",
    "relevance",
    "retrieved",
]

_LIST_KEYS = ("data", "hits", "chunks", "results", "documents", "retrieved")


def retrieved(output: Any) -> list[tuple[str | None, str | None]]:
    """The ranked ``(chunk id, document id)`` pairs of a retriever's output."""
    items = output
    if isinstance(output, Mapping):
        items = next((output[k] for k in _LIST_KEYS if isinstance(output.get(k), list)), None)
        if items is None:
            raise ValueError(f"output has no list of retrieved items under {', '.join(_LIST_KEYS)}")
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise ValueError("output must be a list of retrieved ids or hits")
    out: list[tuple[str | None, str | None]] = []
    for it in items:
        if isinstance(it, Mapping):
            cid = it.get("id", it.get("chunk_id"))
            did = it.get("document_id")
            out.append((None if cid is None else str(cid), None if did is None else str(did)))
        else:
            out.append((str(it), None))
    return out


def relevance(expected: Any) -> dict[str, float]:
    """``{relevant id: grade}`` from a list, ``{"relevant": [...]}`` or ``{id: grade}``."""
    if isinstance(expected, Mapping) and "relevant" in expected:
        expected = expected["relevant"]
    if isinstance(expected, str):
        return {expected: 1.0}
    if isinstance(expected, Mapping):
        out = {}
        for k, v in expected.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"graded relevance must map ids to numbers; {k!r} has {v!r}")
            if v > 0:
                out[str(k)] = float(v)
        return out
    if isinstance(expected, list):
        return {str(x): 1.0 for x in expected}
    raise ValueError("expected must list the relevant ids (or map them to grades)")


class _Retrieval(Scorer):
    """Shared parsing: the ranked list, the relevant ids, and the first-match grades by rank."""

    default_k: ClassVar[int | None] = None

    def __init__(self, *, k: int | None = None, by: str = "auto", threshold: float | None = None,
                 name: str | None = None, weight: float = 1.0, invert: bool = False) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ScorerConfigError(f"{self.name}: `k` must be a positive integer, got {k!r}")
        if by not in ("auto", "chunk", "document"):
            raise ScorerConfigError(f"{self.name}: `by` must be auto, chunk or document, got {by!r}")
        self.k = k if k is not None else self.default_k
        self.by = by
        self._declare(["output", "expected"])

    def _gains(self, output: Any, expected: Any) -> tuple[list[float], dict[str, float]]:
        """Per rank (top k), the grade of the relevant id it is the first match of (0 otherwise)."""
        rel = relevance(expected)
        ranked = retrieved(output)
        if self.k is not None:
            ranked = ranked[: self.k]
        seen: set[str] = set()
        gains: list[float] = []
        for cid, did in ranked:
            cands = [cid] if self.by == "chunk" else [did] if self.by == "document" else [cid, did]
            if self.by == "document" and did is None:  # plain ids: the id may be a document id
                cands = [cid]
            hit = next((c for c in cands if c is not None and c in rel and c not in seen), None)
            if hit is None:
                gains.append(0.0)
            else:
                seen.add(hit)
                gains.append(rel[hit])
        return gains, rel

    def compute(self, output: Any, expected: Any = None) -> Any:
        gains, rel = self._gains(output, expected)
        return self.measure(gains, rel)

    def measure(self, gains: list[float], rel: dict[str, float]) -> float:
        raise NotImplementedError


class HitRate(_Retrieval):
    """1 when a relevant item is in the top ``k``, else 0."""

    type = "hit-rate"

    def measure(self, gains: list[float], rel: dict[str, float]) -> float:
        return 1.0 if any(g > 0 for g in gains) else 0.0


class Mrr(_Retrieval):
    """Reciprocal rank of the first relevant item (0 when none in the top ``k``)."""

    type = "mrr"

    def measure(self, gains: list[float], rel: dict[str, float]) -> float:
        return next((1.0 / i for i, g in enumerate(gains, start=1) if g > 0), 0.0)


class Ndcg(_Retrieval):
    """Normalised discounted cumulative gain at ``k`` (graded when ``expected`` maps ids to grades)."""

    type = "ndcg"

    def measure(self, gains: list[float], rel: dict[str, float]) -> float:
        dcg = sum(g / math.log2(i + 1) for i, g in enumerate(gains, start=1))
        n = len(gains) if self.k is None else self.k
        ideal = sorted(rel.values(), reverse=True)[: max(n, 0)]
        idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
        return dcg / idcg if idcg > 0 else 0.0


class ContextPrecision(_Retrieval):
    """Mean of precision@i over the ranks i that hold a relevant item (RAGAS's definition)."""

    type = "context-precision"

    def measure(self, gains: list[float], rel: dict[str, float]) -> float:
        found, total = 0, 0.0
        for i, g in enumerate(gains, start=1):
            if g > 0:
                found += 1
                total += found / i
        return total / found if found else 0.0


class ContextRecall(_Retrieval):
    """Share of the relevant ids found in the top ``k``."""

    type = "context-recall"

    def measure(self, gains: list[float], rel: dict[str, float]) -> float:
        return sum(1 for g in gains if g > 0) / len(rel) if rel else 0.0


RETRIEVAL_SCORERS: tuple[type[_Retrieval], ...] = (HitRate, Mrr, Ndcg, ContextPrecision, ContextRecall)


def register_retrieval(register: Callable[..., Any]) -> None:
    """Register the retrieval scorers (called from the built-in ``register_scorers`` hook)."""
    for cls in RETRIEVAL_SCORERS:
        register(cls.type, cls, category="retrieval", description=(cls.__doc__ or "").strip().splitlines()[0])
