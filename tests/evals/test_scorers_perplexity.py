"""Perplexity under the local model (raw logits via podium.inference), and the scorer's plumbing."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from podium.evals import MissingField, ScorerConfigError, ScorerError, get_scorer


@dataclass(frozen=True)
class _TS:
    tokens: list[str]
    logprobs: list[float]

    @property
    def perplexity(self) -> float:
        return math.exp(-sum(self.logprobs) / len(self.logprobs))


class FakeLM:
    name = "fake-lm"

    def score(self, text: str) -> _TS:
        words = text.split()
        return _TS(words, [-0.5 * len(w) for w in words])


def test_perplexity_plumbing_with_a_fake_model() -> None:
    s = get_scorer("perplexity", model=FakeLM(), threshold=math.exp(2.0))
    r = s(output="ab cd")  # logprobs -1, -1 -> ppl e^1
    assert r.value == pytest.approx(math.e) and r.passed is True  # lower is better: threshold is a maximum
    assert r.metadata == {"tokens": 2, "mean_logprob": -1.0, "model": "fake-lm"}
    assert s(output="abcdefgh").passed is False  # e^4
    res = s.score_batch([{"output": "   "}, {"input": "x"}])
    assert isinstance(res[0], ScorerError) and "empty" in str(res[0])
    assert isinstance(res[1], MissingField)
    on_input = get_scorer("perplexity", field="input", model=FakeLM())
    assert on_input.fields == ("input",) and on_input(input="ab").value == pytest.approx(math.e)
    with pytest.raises(ScorerConfigError, match="`field`"):
        get_scorer("perplexity", field="metadata")


@pytest.mark.slow
def test_perplexity_under_the_local_model_from_raw_logits() -> None:
    from podium.evals.scorers.perplexity import default_language_model

    model = default_language_model()
    natural = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park."
    shuffled = "park lazy the sunny. fox in jumps a over The day quick dog brown was It the"
    s = get_scorer("perplexity", threshold=50)
    r_nat, r_shuf = s(output=natural), s(output=shuffled)
    ts = model.score(natural)  # per-token log-probabilities from the logits, computed independently
    assert r_nat.value == pytest.approx(math.exp(-sum(ts.logprobs) / len(ts.logprobs)), rel=1e-6)
    assert r_nat.value == pytest.approx(model.perplexity(natural), rel=1e-6)
    assert r_nat.metadata["tokens"] == len(ts.logprobs)
    assert 1.0 < r_nat.value < r_shuf.value  # type: ignore[operator]
    assert r_nat.passed is True and r_shuf.passed is False
    res = s.score_batch([{"output": "Hi"}, {"output": natural}])  # a single token cannot be scored
    assert isinstance(res[0], ScorerError) and res[1].value == pytest.approx(r_nat.value)  # type: ignore[union-attr]
