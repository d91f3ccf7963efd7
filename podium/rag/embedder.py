"""Embedders: text -> L2-normalised float32 vectors for the index.

The default is the bundled MiniLM-L6-v2 (:class:`podium.inference.LocalEmbedder`, 384
dimensions, int8 ONNX, no torch), one instance per model directory per process, loaded on
first use. A collection may instead name a gateway embedding model (``gateway:ALIAS``): the
server hands in a function that calls its gateway (this package sits below the gateway and
never imports it), see :class:`FunctionEmbedder`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from podium.errors import ValidationFailed

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "FunctionEmbedder", "LocalMiniLM", "local_embedder"]

DEFAULT_EMBEDDER = "local:minilm-l6-v2"


class Embedder(Protocol):
    name: str

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Any:
        """A float32 numpy array of shape ``(len(texts), dimensions)``, rows L2-normalised."""
        ...


class LocalMiniLM:
    """The bundled MiniLM-L6-v2 through :class:`podium.inference.LocalEmbedder`."""

    name = DEFAULT_EMBEDDER

    def __init__(self, model_dir: Path | None = None, n_threads: int | None = None) -> None:
        from podium.inference.embeddings import LocalEmbedder

        self._inner = LocalEmbedder(model_dir, n_threads=n_threads)

    @property
    def dimensions(self) -> int:
        return self._inner.dimensions

    def embed(self, texts: Sequence[str]) -> Any:
        return self._inner.embed_array(list(texts))


class FunctionEmbedder:
    """Vectors from a function (a gateway embedding model), normalised here."""

    def __init__(self, name: str, fn: Callable[[list[str]], list[list[float]]], dimensions: int | None = None) -> None:
        self.name = name
        self._fn = fn
        self._dims = dimensions

    @property
    def dimensions(self) -> int:
        if self._dims is None:
            self._dims = int(self.embed(["dimension probe"]).shape[1])
        return self._dims

    def embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        if not texts:
            return np.zeros((0, self._dims or 0), dtype=np.float32)
        arr = np.asarray(self._fn(list(texts)), dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(texts):
            raise ValidationFailed(f"the embedding model {self.name!r} returned {arr.shape}, not one vector per text")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.clip(norms, 1e-12, None)


_lock = threading.Lock()
_local: dict[tuple[str, int | None], LocalMiniLM] = {}


def local_embedder(model_dir: Path | None = None, n_threads: int | None = None) -> LocalMiniLM:
    """The process's MiniLM embedder for ``model_dir`` (created once, loaded on first use)."""
    key = (str(model_dir or ""), n_threads)
    with _lock:
        e = _local.get(key)
        if e is None:
            e = _local[key] = LocalMiniLM(model_dir, n_threads)
        return e
