"""The toxicity scanner: the shipped model loads, clear cases go the right way, the judge band works."""

from __future__ import annotations

from podium.guardrails import Context
from podium.guardrails.classifier import MODELS_DIR, load_model
from podium.guardrails.scanners.toxicity import ToxicityScanner


def test_shipped_model_loads() -> None:
    assert (MODELS_DIR / "toxicity.json.gz").stat().st_size < 5_000_000
    m = load_model("toxicity")
    assert len(m.weights) > 1000 and m.meta["task"] == "toxicity"


def test_insults_flagged_with_spans_and_neutral_text_passes() -> None:
    s = ToxicityScanner()
    ctx = Context()
    text = "You are a worthless idiot and everyone hates you, you stupid pig."
    r = s.scan(text, ctx)
    assert r.score >= 0.5
    assert "stupid" in {text[f.start:f.end].lower() for f in r.findings}
    for neutral in ["The recipe needs two cups of flour and one egg.",
                    "The meeting moved to Thursday at 10 am in room 4.",
                    "Thanks so much for your help with the report!"]:
        assert s.scan(neutral, ctx).score < 0.5, neutral


def test_lexicon_can_be_turned_off() -> None:
    r = ToxicityScanner(lexicon=False).scan("you stupid idiot", Context())
    assert not r.findings and r.metadata["stage"] == "classifier"


def test_judge_decides_in_band() -> None:
    s = ToxicityScanner(judge=True, band=(0.0, 1.0))
    r = s.scan("some text", Context(llm=lambda p: "SAFE"))
    assert r.score == 0.05 and r.metadata["stage"] == "judge"
