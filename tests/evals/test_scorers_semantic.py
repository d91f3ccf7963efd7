"""Embedding similarity: batching and caching with a counting embedder, then the real local MiniLM."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from podium.evals import MissingField, Score, ScorerError, get_scorer


class CountingEmbedder:
    """Deterministic fake: a text's vector is its letter histogram; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_array(self, texts: list[str]) -> Any:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for c in t.lower():
                if "a" <= c <= "z":
                    out[i, ord(c) - 97] += 1
            out[i, 0] += 1e-3  # never a zero vector
        return out


def _cos(a: str, b: str) -> float:
    e = CountingEmbedder()
    v = e.embed_array([a, b])
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return float(v[0] @ v[1])


def test_batch_embeds_unique_texts_once_and_caches_them() -> None:
    emb = CountingEmbedder()
    s = get_scorer("similar", embedder=emb, threshold=0.9)
    items = [
        {"output": "abc", "expected": "abd"},
        {"output": "abc", "expected": "xyz"},
        {"output": "same", "expected": "same"},
        {"output": "no reference"},
    ]
    out = s.score_batch(items)
    assert len(emb.calls) == 1 and sorted(emb.calls[0]) == sorted({"abc", "abd", "xyz", "same"})
    assert out[0].value == pytest.approx(_cos("abc", "abd"))  # type: ignore[union-attr]
    assert out[1].value == pytest.approx(_cos("abc", "xyz"))  # type: ignore[union-attr]
    assert out[2] == Score(pytest.approx(1.0), True, out[2].explanation, "similar")  # type: ignore[union-attr]
    assert isinstance(out[3], MissingField)
    s.score_batch(items[:3])  # everything is cached now
    assert len(emb.calls) == 1
    s.score_batch([{"output": "new text", "expected": "abc"}])
    assert emb.calls[-1] == ["new text"]


def test_best_of_several_references_and_value_as_reference() -> None:
    emb = CountingEmbedder()
    r = get_scorer("similar", embedder=emb)(output="abc", expected=["xyz", "abd", "abc"])
    assert r.value == pytest.approx(1.0)
    v = get_scorer("similar", value="abc", embedder=emb)
    assert v.fields == ("output",) and v(output="abc").value == pytest.approx(1.0)


def test_callable_embedder_and_bad_embedder_output() -> None:
    r = get_scorer("similar", embedder=lambda texts: [[1.0, 0.0] if t == "x" else [0.6, 0.8] for t in texts])
    assert r(output="x", expected="y").value == pytest.approx(0.6)
    bad = get_scorer("similar", embedder=lambda texts: [[1.0]])
    res = bad.score_batch([{"output": "p", "expected": "q"}, {"output": "p2", "expected": "q2"}])
    assert all(isinstance(x, ScorerError) and "shape" in str(x) for x in res)


@pytest.mark.slow
def test_local_minilm_cosine_matches_the_embedder_directly() -> None:
    from podium.evals.scorers.semantic import default_embedder
    from podium.inference import LocalEmbedder

    pairs = [
        ("I like food", "I like bread"),
        ("I like food", "I like babies"),
        ("The capital of France is Paris.", "Paris is France's capital city."),
        ("The capital of France is Paris.", "Bananas are rich in potassium."),
    ]
    reference = LocalEmbedder()  # a separate instance: the reference computation
    vecs = reference.embed_array([t for p in pairs for t in p])
    want = [float(vecs[2 * i] @ vecs[2 * i + 1]) for i in range(len(pairs))]
    s = get_scorer("similar")
    got = [x.value for x in s.score_batch([{"output": a, "expected": b} for a, b in pairs])]  # type: ignore[union-attr]
    assert got == pytest.approx(want, abs=1e-5)
    single = [s(output=a, expected=b).value for a, b in pairs]
    assert single == pytest.approx(want, abs=1e-5)
    assert got[2] > 0.75 > got[3]  # paraphrase vs unrelated
    assert got[0] > got[1]
    assert default_embedder() is default_embedder()  # one shared model per process
