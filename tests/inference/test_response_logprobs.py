"""``LocalChatModel.response_logprobs``: log p of each token of a fixed assistant response given
chat messages, on the bundled SmolLM2 (what context attribution is built on, docs/rag.md).

One thread per model: see tests/inference/test_llama.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from podium.errors import ValidationFailed
from podium.inference import LocalChatModel

SYSTEM = {"role": "system", "content": "Answer the question using only the context."}
QUESTION = "In which city was Zorvian Bank founded?"
CONTEXT = ("The office cat is named Biscuit and sleeps on the printer.\n"
           "Zorvian Bank was founded in 1887 in the port city of Valdoria.\n"
           "The cafeteria serves lentil soup every Thursday.")
WITH = [SYSTEM, {"role": "user", "content": f"Context:\n{CONTEXT}\n\nQuestion: {QUESTION}"}]
WITHOUT = [SYSTEM, {"role": "user", "content": f"Question: {QUESTION}"}]
ANSWER = "Zorvian Bank was founded in Valdoria."


@pytest.fixture(scope="module")
def model() -> Iterator[LocalChatModel]:
    m = LocalChatModel(n_threads=1)
    yield m
    m.close()


def test_a_copied_fact_is_more_likely_with_its_context(model: LocalChatModel) -> None:
    with_ctx = model.response_logprobs(WITH, ANSWER)
    without = model.response_logprobs(WITHOUT, ANSWER)
    assert "".join(with_ctx.tokens) == ANSWER
    assert len(with_ctx.logprobs) == len(with_ctx.tokens) == len(without.logprobs)
    assert all(lp <= 0.0 and math.isfinite(lp) for lp in with_ctx.logprobs)
    assert sum(with_ctx.logprobs) > sum(without.logprobs) + 3.0  # e^3: twenty times more likely


def test_same_call_twice_and_after_score_gives_the_same_numbers(model: LocalChatModel) -> None:
    first = model.response_logprobs(WITH, ANSWER)
    again = model.response_logprobs(WITH, ANSWER)  # the whole prompt's KV is reused
    assert again.logprobs == pytest.approx(first.logprobs, abs=1e-4)
    other = model.response_logprobs(WITHOUT, ANSWER)  # a different prompt in between
    model.score("A different text scored on the same instance resets its cache.")
    after = model.response_logprobs(WITH, ANSWER)
    assert after.logprobs == pytest.approx(first.logprobs, abs=1e-4)
    assert model.response_logprobs(WITHOUT, ANSWER).logprobs == pytest.approx(other.logprobs, abs=1e-4)


def test_a_shared_prefix_does_not_change_the_numbers(model: LocalChatModel) -> None:
    """Ablations share the system prompt: KV reuse must give what a fresh evaluation gives."""
    short = [SYSTEM, {"role": "user", "content": f"Context:\n{CONTEXT.splitlines()[1]}\n\nQuestion: {QUESTION}"}]
    model.score("reset the cache")  # nothing cached: a fresh evaluation
    fresh = model.response_logprobs(short, ANSWER)
    model.response_logprobs(WITH, ANSWER)  # now the cache holds WITH; short shares its first tokens
    reused = model.response_logprobs(short, ANSWER)
    assert reused.logprobs == pytest.approx(fresh.logprobs, abs=1e-3)


def test_bad_input_is_refused_with_the_field_named(model: LocalChatModel) -> None:
    with pytest.raises(ValidationFailed, match="non-empty"):
        model.response_logprobs(WITH, "")
    long_context = [SYSTEM, {"role": "user", "content": "word " * 5000}]
    with pytest.raises(ValidationFailed, match="context window") as e:
        model.response_logprobs(long_context, ANSWER)
    assert e.value.details[0]["field"] == "messages"
