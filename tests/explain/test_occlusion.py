"""Occlusion over the real local model (SmolLM2 through llama.cpp)."""

from __future__ import annotations

import pytest

from podium.errors import ValidationFailed
from podium.explain import explain, occlusion

QUESTION = ("The weather in Oslo was cold last week. The secret code for the vault is ZEBRA-42. "
            "Cats usually like to sleep in the sun. What is the secret code for the vault?")
ANSWER = "The secret code for the vault is ZEBRA-42."


def test_the_sentence_whose_fact_the_answer_copies_ranks_first() -> None:
    e = occlusion([{"role": "user", "content": QUESTION}], ANSWER)
    assert [s.text for s in e.segments] == ["The weather in Oslo was cold last week.",
                                            "The secret code for the vault is ZEBRA-42.",
                                            "Cats usually like to sleep in the sun.",
                                            "What is the secret code for the vault?"]
    assert e.top(1)[0].text == "The secret code for the vault is ZEBRA-42."
    assert e.top(1)[0].weight > 5  # nats: the copied code is far less likely without it
    assert e.evaluations == 5 and all(s.message == 0 for s in e.segments)
    d = e.to_dict()
    tokens = d["extra"]["response_tokens"]
    assert "".join(t["text"] for t in tokens) == ANSWER
    assert sum(t["logprob"] for t in tokens) == pytest.approx(d["value"], abs=1e-2)
    assert len(d["extra"]["least_likely"]) == 5


def test_a_small_budget_merges_neighbouring_words() -> None:
    msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": QUESTION}]
    e = explain({"kind": "local-model", "messages": msgs, "response": ANSWER}, "occlusion", granularity="word",
                max_evaluations=6)
    assert e.evaluations <= 6
    assert {s.message for s in e.segments} == {0, 1}
    user = [s for s in e.segments if s.message == 1]
    assert user[0].start == 0 and user[-1].end == len(QUESTION)
    assert "ZEBRA-42." in e.top(1)[0].text


def test_bad_input_is_a_400_that_says_what_to_send() -> None:
    with pytest.raises(ValidationFailed, match="response must be"):
        occlusion([{"role": "user", "content": "hi"}], "")
    with pytest.raises(ValidationFailed, match="messages must be"):
        occlusion([], "x")
    with pytest.raises(ValidationFailed, match="integrated-gradients"):
        explain({"kind": "local-model", "messages": [{"role": "user", "content": "hi"}], "response": "x"}, "shap")
