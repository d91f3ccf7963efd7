"""Semantic similarity: cosine of sentence embeddings of the output and the reference.

The default embedder is the bundled MiniLM-L6-v2 (:class:`podium.inference.LocalEmbedder`,
int8 ONNX, 384 dimensions), created once per process on first use and shared by every
``similar`` scorer. :meth:`Similar.compute_batch` embeds a whole batch of outputs and
references in one call (unique texts only), and vectors are kept in a per-embedder LRU
(``CACHE_SIZE`` texts), so references are embedded once per process however many runs,
repetitions or scorers use them. Embedding is the cost: MiniLM int8 does roughly 150-300
short texts a second on two cores.

Any other embedder works: an object with ``embed_array(texts) -> array`` or
``embed(texts) -> list[list[float]]``, or a plain callable ``texts -> vectors``. To go through
the gateway instead of in-process::

    client = openai.OpenAI(base_url="http://127.0.0.1:8700/v1", api_key=SK)
    embed = lambda texts: [d.embedding for d in client.embeddings.create(model="local-embed", input=texts).data]
    get_scorer("similar", embedder=embed)
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from podium.evals.scorers.base import Score, Scorer, ScorerError, references_of, text_of

__all__ = ["Similar", "cosine_similarities", "default_embedder"]

_DEFAULT: Any = None
_DEFAULT_LOCK = threading.Lock()


def default_embedder() -> Any:
    """The process-wide local MiniLM embedder (loads its model on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                from podium.inference import LocalEmbedder

                _DEFAULT = LocalEmbedder()
    return _DEFAULT


def _embed(embedder: Any, texts: list[str]) -> Any:
    import numpy as np

    if hasattr(embedder, "embed_array"):
        vecs = embedder.embed_array(texts)
    elif hasattr(embedder, "embed"):
        vecs = embedder.embed(texts)
    elif callable(embedder):
        vecs = embedder(texts)
    else:
        raise ScorerError(f"the embedder {type(embedder).__name__} has no embed_array/embed and is not callable")
    arr = np.asarray(vecs, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(texts):
        raise ScorerError(f"the embedder returned shape {arr.shape} for {len(texts)} texts")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.clip(norms, 1e-12, None)


class _VectorCache:
    """A bounded LRU of unit vectors by text, per embedder: references repeat across items,
    repetitions and runs in one process, and embedding is the expensive part (~5 ms a text on 2 cores)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, texts: Sequence[str]) -> dict[str, Any]:
        with self._lock:
            found = {}
            for t in texts:
                v = self._data.get(t)
                if v is not None:
                    self._data.move_to_end(t)
                    found[t] = v
            return found

    def put_many(self, texts: Sequence[str], vecs: Any) -> None:
        with self._lock:
            for t, v in zip(texts, vecs, strict=True):
                self._data[t] = v
                self._data.move_to_end(t)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


CACHE_SIZE = 50_000  # vectors per embedder (384 float32 each: ~77 MB at most for MiniLM)
_CACHES: weakref.WeakKeyDictionary[Any, _VectorCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache_for(embedder: Any) -> _VectorCache | None:
    with _CACHES_LOCK:
        try:
            cache = _CACHES.get(embedder)
            if cache is None:
                cache = _CACHES[embedder] = _VectorCache(CACHE_SIZE)
        except TypeError:  # not weak-referenceable (a bound method): no cache
            return None
        return cache


def cosine_similarities(outputs: Sequence[str], references: Sequence[Sequence[str]], embedder: Any = None) -> list[float]:
    """For each output, the best cosine similarity to any of its references.

    Unique texts only are embedded, in one call; vectors are cached per embedder (LRU).
    """
    import numpy as np

    emb = embedder if embedder is not None else default_embedder()
    unique: dict[str, None] = dict.fromkeys(outputs)
    for refs in references:
        unique.update(dict.fromkeys(refs))
    if not unique:
        return []
    texts = list(unique)
    cache = _cache_for(emb)
    known = cache.get_many(texts) if cache is not None else {}
    todo = [t for t in texts if t not in known]
    if todo:
        fresh = _embed(emb, todo)
        if cache is not None:
            cache.put_many(todo, fresh)
        known.update(zip(todo, fresh, strict=True))
    out: list[float] = []
    for o, refs in zip(outputs, references, strict=True):
        v = known[o]
        out.append(max(float(np.dot(known[r], v)) for r in refs))
    return out


class Similar(Scorer):
    """Cosine similarity of the output's embedding to the reference's (``value`` or ``expected``),
    best over several references; passes at ``threshold`` (default 0.75, as promptfoo's ``similar``)."""

    type = "similar"
    default_threshold = 0.75

    def __init__(
        self, value: Any = None, *, embedder: Any = None, threshold: float | None = None, name: str | None = None,
        weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        self.refs = references_of(value) if value is not None else None
        self.embedder = embedder
        self._declare(["output"] if value is not None else ["output", "expected"])

    def compute(self, output: Any, expected: Any = None) -> Any:
        return self.compute_batch([{"output": output, "expected": expected}])[0]

    def compute_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        outs: list[str] = []
        refs: list[list[str]] = []
        slots: list[int] = []
        results: list[Any] = [None] * len(rows)
        for i, row in enumerate(rows):
            try:
                r = self.refs if self.refs is not None else references_of(row.get("expected"))
            except ScorerError as e:
                results[i] = e
                continue
            outs.append(text_of(row["output"]))
            refs.append(r)
            slots.append(i)
        if outs:
            for i, sim in zip(slots, cosine_similarities(outs, refs, self.embedder), strict=True):
                results[i] = Score(sim)
        return results
