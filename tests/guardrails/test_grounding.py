"""Groundedness: answers checked against the request's documents with word overlap and real
MiniLM embeddings (the `local` extra), the judge stage through a plain callable, and the
whole-answer rule in streams."""

from __future__ import annotations

from typing import Any

import pytest

from podium.guardrails import Context, Guard
from podium.guardrails.scanners.grounding import Groundedness, content_words

DOCS = [
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
    "the engineer Gustave Eiffel, whose company designed and built the tower. It was constructed from 1887 to "
    "1889 as the centerpiece of the 1889 World's Fair. The tower is 330 metres tall and was the tallest man-made "
    "structure in the world until the Chrysler Building in New York was finished in 1930.",
    "The tower has three levels for visitors, with restaurants on the first and second levels. Tickets can be "
    "bought online or at the tower.",
]


def ctx(**kw: Any) -> Context:
    return Context(kind="output", documents=DOCS, **kw)


@pytest.fixture(scope="module")
def g() -> Groundedness:
    s = Groundedness()
    s.warm()
    return s


@pytest.mark.parametrize("answer", [
    "The Eiffel Tower is in Paris and was built between 1887 and 1889 for the World's Fair. It is 330 metres "
    "tall. Visitors can buy tickets online.",
    "Gustave Eiffel's firm designed and constructed the tower. It stood as the world's tallest man-made "
    "structure until 1930.",  # paraphrase: little word overlap, the embedding carries it
])
def test_supported_answers_pass(g: Groundedness, answer: str) -> None:
    r = g.scan(answer, ctx())
    assert r.score == 0.0 and not r.findings
    assert r.metadata["method"] == "lexical+embedding" and r.metadata["unsupported"] == 0


def test_invented_numbers_and_names_are_unsupported(g: Groundedness) -> None:
    r = g.scan("The Eiffel Tower was completed in 1920 and is 500 metres tall.", ctx())
    assert r.score == 1.0 and r.metadata["details"][0]["novel"] == ["1920", "500"]
    assert "1920, 500 not in the documents" in (r.detail or "")
    r = g.scan("The tower was designed by Thomas Edison's company.", ctx())
    assert r.score == 1.0 and set(r.metadata["details"][0]["novel"]) == {"thomas", "edison"}


def test_off_topic_claims_are_unsupported(g: Groundedness) -> None:
    r = g.scan("Our premium plan costs twenty dollars per month. The battery lasts all day on one charge.", ctx())
    assert r.score == 1.0 and len(r.findings) == 2


def test_mixed_answer_reports_the_unsupported_span(g: Groundedness) -> None:
    answer = "The Eiffel Tower is 330 metres tall. It was painted gold by Napoleon in 1805. I hope this helps!"
    r = g.scan(answer, ctx())
    assert r.metadata["claims"] == 2  # the pleasantry is not a claim
    assert r.score == 0.5
    [f] = r.findings
    assert answer[f.start:f.end] == "It was painted gold by Napoleon in 1805." and f.label == "unsupported-claim"
    assert f.score is not None and f.score > 0.9


def test_nothing_to_check(g: Groundedness) -> None:
    r = g.scan("The tower is 330 metres tall.", Context(kind="output"))
    assert r.score == 0.0 and r.metadata["checked"] is False and "no documents" in (r.detail or "")
    assert g.scan("What else would you like to know?", ctx()).metadata["claims"] == 0
    assert g.scan("It was painted gold by Napoleon in 1805.", ctx(final=False)).score == 0.0


def test_prompt_as_context_and_names_from_the_prompt() -> None:
    s = Groundedness(mode="lexical", include_prompt=True)
    c = Context(kind="output", prompt="Our store opens at 9am and closes at 5pm on weekdays.")
    assert s.scan("The store opens at 9am on weekdays.", c).score == 0.0
    r = s.scan("The store opens at 7am on weekdays.", c)
    assert r.score == 1.0 and r.metadata["method"] == "lexical" and "note" not in r.metadata
    # a name the user asked about is not invented by the answer
    q = Context(kind="output", prompt="Tell me about Gustave Eiffel.", documents=DOCS)
    assert Groundedness(mode="lexical").scan("Gustave Eiffel's company built the tower.", q).score == 0.0


def test_judge_decides_the_uncertain_claims() -> None:
    asked: list[str] = []

    def judge(prompt: str) -> str:
        asked.append(prompt)
        return "UNSUPPORTED" if "top level" in prompt else "SUPPORTED"

    s = Groundedness(mode="lexical", judge=True)
    # both claims share most of their words with the documents (support in the uncertain band)
    answer = "Visitors can dine at restaurants on the tower's top level. Tickets are sold online and at the entrance."
    before = Groundedness(mode="lexical").scan(answer, ctx())
    r = s.scan(answer, ctx(llm=judge))
    assert before.score == 0.0 and all(0.25 <= c["support"] <= 0.75 for c in before.metadata["details"])
    assert len(asked) == r.metadata["judged"] == 2 and "Context:" in asked[0]
    assert r.score == 0.5 and r.findings[0].text == "Visitors can dine at restaurants on the tower's top level."
    assert [c["judged"] for c in r.metadata["details"]] == ["unsupported", "supported"]
    assert "no judge model" in s.scan(answer, ctx()).metadata["judge_note"]


def test_in_a_stream_the_whole_answer_is_checked_at_the_end() -> None:
    guard = Guard({"stream_window": 32, "output": [{"type": "groundedness", "threshold": 0.2,
                                                    "timeout_ms": 10_000}]})
    guard.warm()
    sg = guard.stream(documents=DOCS)
    answer = "The Eiffel Tower is 330 metres tall. It was painted gold by Napoleon in 1805."
    out = "".join(sg.feed(answer[i:i + 10]) for i in range(0, len(answer), 10)) + sg.finish()
    assert out == answer[:len(out)] and sg.blocked
    assert "Napoleon" in sg.summary().reason()


def test_numbers_in_words_and_digits_agree() -> None:
    s = Groundedness(mode="lexical")
    assert s.scan("The tower has 3 levels for visitors.", ctx()).score == 0.0  # the documents say "three"
    assert s.scan("The tower has 4 levels for visitors.", ctx()).score == 1.0


def test_content_words() -> None:
    assert content_words("The towers were designed by the company's engineers.") == {
        "tower", "design", "company", "engineer"}
