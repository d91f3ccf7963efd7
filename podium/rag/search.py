"""Retrieval: vector, keyword (BM25) and hybrid search over a collection, with metadata filters.

- ``vector``: cosine similarity of the query's embedding to every current chunk (the flat
  index, podium/rag/index.py); exact.
- ``keyword``: the database's full-text index (SQLite FTS5 ``bm25()``; PostgreSQL
  ``ts_rank``), the query's words OR-ed, Porter/English-stemmed.
- ``hybrid``: both lists (``candidates`` long each) fused with reciprocal rank fusion,
  ``score = sum(1 / (rrf_k + rank))`` with ``rrf_k = 60`` (Cormack et al., 2009); a chunk found
  by only one retriever still counts.

Filters match a document's metadata (plus ``kind``, ``source`` and ``document_id``): ``{"lang":
"en"}`` (equal), ``{"tag": ["a", "b"]}`` (any of), ``{"year": {"gte": 2020}}`` (``gt``, ``gte``,
``lt``, ``lte``, ``ne``, ``in``). Vector search masks non-matching rows before ranking (exact);
keyword search over-fetches and drops them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from podium.errors import ValidationFailed

__all__ = ["MODES", "RRF_K", "Hit", "check_request", "finite", "matches", "rrf"]

Mode = Literal["vector", "keyword", "hybrid"]
MODES: tuple[str, ...] = ("vector", "keyword", "hybrid")
RRF_K = 60
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a is not None and a > b, "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b, "lte": lambda a, b: a is not None and a <= b,
    "ne": lambda a, b: a != b, "eq": lambda a, b: a == b,
    "in": lambda a, b: a in b if isinstance(b, list) else a == b,
}


@dataclass
class Hit:
    """One retrieved chunk: ``rank`` (1-based), ``score`` (the mode's), and each retriever's."""

    rank: int
    score: float
    id: str
    document_id: str
    text: str
    title: str | None = None
    source: str | None = None
    heading: str | None = None
    start: int = 0
    end: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # {"vector": cos, "keyword": bm25}
    key: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("key", None)
        return out


def rrf(ranked: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several ranked key lists: ``[(key, fused score)]``, best first
    (ties keep the order of first appearance)."""
    scores: dict[int, float] = {}
    for lst in ranked:
        for rank, key in enumerate(lst, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def _check_filter(filters: Mapping[str, Any]) -> None:
    for f, cond in filters.items():
        if isinstance(cond, Mapping):
            bad = [op for op in cond if op not in _OPS]
            if bad:
                raise ValidationFailed(f"unknown filter operator(s) {bad} on {f!r}; use {', '.join(_OPS)}",
                                       details=[{"field": f"filters.{f}", "message": "|".join(_OPS)}])


def matches(meta: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether a document's metadata satisfies every filter."""
    for f, cond in filters.items():
        v = meta.get(f)
        if isinstance(cond, Mapping):
            for op, want in cond.items():
                try:
                    if not _OPS[op](v, want):
                        return False
                except TypeError:
                    return False
        elif isinstance(cond, list):
            if (v not in cond) and not (isinstance(v, list) and any(x in cond for x in v)):
                return False
        elif v != cond and not (isinstance(v, list) and cond in v):
            return False
    return True


def check_request(mode: str, top_k: int, filters: Mapping[str, Any] | None) -> None:
    if mode not in MODES:
        raise ValidationFailed(f"unknown search mode {mode!r}; use vector, keyword or hybrid",
                               details=[{"field": "mode", "message": "vector|keyword|hybrid"}])
    if not 1 <= top_k <= 100:
        raise ValidationFailed("top_k must be 1..100", details=[{"field": "top_k", "message": "1..100"}])
    if filters:
        _check_filter(filters)


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
