"""From stored trace/span inputs and outputs to what drift tests compare: the text, its length,
its language and its MiniLM embedding.

Texts come out of the shapes traces hold: a plain string, a chat ``messages`` list (the last
user message for inputs, the last message for outputs), an OpenAI response (``choices``), or a
dict with a usual key (``input``, ``query``, ``question``, ``prompt``, ``text``, ``content``,
``output``, ``answer``, ``response``); anything else is its compact JSON. Embeddings are cached
per process by text (bounded), so a rolling reference window is not embedded again every run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from podium.inference.embeddings import LocalEmbedder

__all__ = ["MAX_CHARS", "EmbeddingCache", "default_cache", "languages", "lengths", "to_text"]

#: Characters of a text kept for embedding and language detection (the model reads 256 tokens).
MAX_CHARS = 2000
_KEYS = ("input", "query", "question", "prompt", "text", "content", "output", "answer", "response", "completion")


def _message_text(m: Any) -> str | None:
    if not isinstance(m, dict):
        return None
    c = m.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # content parts
        parts = [p.get("text") for p in c if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return " ".join(str(p) for p in parts) if parts else None
    return None


def _from_messages(msgs: list[Any], *, last_user: bool) -> str | None:
    cands = [m for m in msgs if isinstance(m, dict)]
    if last_user:
        users = [m for m in cands if m.get("role") == "user"]
        cands = users or cands
    for m in reversed(cands):
        t = _message_text(m)
        if t:
            return t
    return None


def to_text(value: Any, *, is_input: bool = True) -> str | None:
    """The text a stored input/output stands for, or None when there is none."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_CHARS] if value.strip() else None
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        found = _from_messages(value, last_user=is_input)
        return found[:MAX_CHARS] if found else None
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            found = _from_messages(value["messages"], last_user=is_input)
            if found:
                return found[:MAX_CHARS]
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            found = _message_text(choices[0].get("message")) or choices[0].get("text")
            if isinstance(found, str) and found:
                return found[:MAX_CHARS]
        for k in _KEYS:
            v = value.get(k)
            if isinstance(v, str) and v.strip():
                return v[:MAX_CHARS]
    if isinstance(value, bool | int | float):
        return str(value)
    try:
        s = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    return s[:MAX_CHARS]


def lengths(texts: Sequence[str]) -> list[float]:
    """Characters per text."""
    return [float(len(x)) for x in texts]


def languages(texts: Sequence[str]) -> list[str]:
    """py3langid's most likely language per text (the ``language`` guardrail scanner's model);
    ``und`` for texts with fewer than 10 letters."""
    from podium.guardrails.scanners.language import detect

    out: list[str] = []
    for x in texts:
        if sum(ch.isalpha() for ch in x) < 10:
            out.append("und")
            continue
        ranked = detect(x)
        out.append(ranked[0][0] if ranked else "und")
    return out


class EmbeddingCache:
    """MiniLM embeddings by text (sha256), at most ``max_entries`` kept (least recently used
    dropped); thread-safe."""

    def __init__(self, embedder: LocalEmbedder | None = None, *, max_entries: int = 50_000) -> None:
        self._embedder = embedder
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._vecs: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def embedder(self) -> LocalEmbedder:
        if self._embedder is None:
            self._embedder = LocalEmbedder()
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An ``(len(texts), 384)`` float32 array of L2-normalised vectors."""
        keys = [hashlib.sha256(x.encode("utf-8", "replace")).hexdigest() for x in texts]
        with self._lock:
            missing = {k: x for k, x in zip(keys, texts, strict=True) if k not in self._vecs}
        if missing:
            mk = list(missing)
            arr = np.asarray(self.embedder.embed_array([missing[k] for k in mk]), dtype=np.float32)
            with self._lock:
                for k, v in zip(mk, arr, strict=True):
                    self._vecs[k] = v
                while len(self._vecs) > self.max_entries:
                    self._vecs.popitem(last=False)
        with self._lock:
            got = [self._vecs.get(k) for k in keys]
        if any(v is None for v in got):  # evicted meanwhile (a tiny cache): embed those again
            return np.asarray(self.embedder.embed_array(list(texts)), dtype=np.float32)
        if not got:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([v for v in got if v is not None])


_DEFAULT: EmbeddingCache | None = None
_DEFAULT_LOCK = threading.Lock()


def default_cache() -> EmbeddingCache:
    """The process's shared cache over the bundled MiniLM (loaded on first use)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = EmbeddingCache()
        return _DEFAULT
