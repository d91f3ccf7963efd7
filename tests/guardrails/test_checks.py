"""Output checks: json-schema (real jsonschema), regex, length (podium.core.tokens), language
(real py3langid), code, urls and refusal; alone and through a policy."""

from __future__ import annotations

import pytest

from podium.core.tokens import count_tokens
from podium.errors import ValidationFailed
from podium.guardrails import Context, Guard
from podium.guardrails.scanners.checks import JsonSchema, Length, Regex
from podium.guardrails.scanners.code import Code
from podium.guardrails.scanners.language import Language
from podium.guardrails.scanners.refusal import Refusal
from podium.guardrails.scanners.urls import Urls, find_urls

OUT = Context(kind="output")
WINDOW = Context(kind="output", final=False)

SCHEMA = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
                         "tags": {"type": "array", "items": {"type": "string"}}}}


# -- json-schema ------------------------------------------------------------------------------


def test_json_schema_pass_fenced_and_failures() -> None:
    s = JsonSchema(SCHEMA)
    assert s.scan('{"name": "Ada", "age": 36}', OUT).score == 0.0
    fenced = s.scan('```json\n{"name": "Ada", "age": 36}\n```', OUT)
    assert fenced.score == 0.0 and fenced.metadata["fenced"] is True
    bad = s.scan('{"name": "Ada", "age": -1, "tags": ["x", 2]}', OUT)
    assert bad.score == 1.0
    assert "$.age: -1 is less than the minimum of 0" in (bad.detail or "")
    assert "$.tags[1]: 2 is not of type 'string'" in (bad.detail or "")
    missing = s.scan('{"name": "Ada"}', OUT)
    assert missing.score == 1.0 and "'age' is a required property" in (missing.detail or "")
    broken = s.scan('{"name": "Ada",', OUT)
    assert broken.score == 1.0 and (broken.detail or "").startswith("not JSON:")
    assert JsonSchema(SCHEMA, allow_fence=False).scan('```json\n{"name": "Ada", "age": 1}\n```', OUT).score == 1.0


def test_json_schema_waits_for_the_whole_answer_and_checks_its_schema() -> None:
    assert JsonSchema(SCHEMA).scan('{"name": ', WINDOW).score == 0.0
    assert JsonSchema().scan("[1, 2]", OUT).score == 0.0  # no schema: must parse only
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        JsonSchema({"type": "objekt"})


def test_json_schema_in_a_stream_blocks_at_the_end() -> None:
    guard = Guard({"stream_window": 16, "output": [{"type": "json-schema", "params": {"schema": SCHEMA}}]})
    sg = guard.stream()
    released = "".join(sg.feed(piece) for piece in ['{"name": "Ada", ', '"age": "thirty-six", ', '"tags": []}'])
    sg.finish()
    assert released  # windows were not held back by the whole-answer check
    assert sg.blocked and "is not of type 'integer'" in sg.summary().reason()


# -- regex ------------------------------------------------------------------------------------


def test_regex_deny_require_and_redact() -> None:
    deny = Regex({"ticket": r"\bTICKET-\d+\b"}, ignore_case=True)
    r = deny.scan("See ticket-42 and TICKET-7.", OUT)
    assert r.score == 1.0 and [f.text for f in r.findings] == ["ticket-42", "TICKET-7"]
    assert deny.scan("No tickets here.", OUT).score == 0.0
    req = Regex([r"^Answer: (yes|no)\b"], mode="require")
    assert req.scan("Answer: yes, because...", OUT).score == 0.0
    miss = req.scan("Maybe.", OUT)
    assert miss.score == 1.0 and "does not match required pattern" in (miss.detail or "")
    assert req.scan("Maybe.", WINDOW).score == 0.0
    guard = Guard({"output": [{"type": "regex", "params": {"patterns": {"ticket": r"TICKET-\d+"}},
                               "action": "redact"}]})
    assert guard.scan("Opened TICKET-12 for you.", "output").text == "Opened <TICKET_1> for you."
    with pytest.raises(ValidationFailed, match="does not compile"):
        Guard({"output": [{"type": "regex", "params": {"patterns": ["(unclosed"]}}]})


# -- length -----------------------------------------------------------------------------------


def test_length_limits() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 10
    n_tokens = count_tokens(text)
    ok = Length(max_chars=1000, max_words=100, max_tokens=n_tokens).scan(text, OUT)
    assert ok.score == 0.0 and ok.metadata == {"chars": len(text), "words": 90, "tokens": n_tokens}
    over = Length(max_tokens=n_tokens - 1, min_words=100).scan(text, OUT)
    assert over.score == 1.0
    assert over.detail == f"90 words < min_words 100; {n_tokens} tokens > max_tokens {n_tokens - 1}"
    assert Length(min_chars=10).scan("short", WINDOW).score == 0.0
    assert Length(min_chars=10).scan("short", OUT).score == 1.0
    with pytest.raises(ValueError, match="at least one limit"):
        Length()
    with pytest.raises(ValueError, match="above"):
        Length(min_words=10, max_words=5)


# -- language ---------------------------------------------------------------------------------


def test_language_allowed_and_not() -> None:
    en = Language(allowed=["en"])
    en.warm()
    r = en.scan("The weather is lovely today, so we are going for a long walk in the park.", OUT)
    assert r.score < 0.1 and r.metadata["language"] == "en"
    fr = en.scan("Bonjour, je voudrais réserver une table pour deux personnes ce soir.", OUT)
    assert fr.score > 0.9 and fr.metadata["language"] == "fr" and "fr" in (fr.detail or "")
    both = Language(allowed=["en", "fr"])
    assert both.scan("Bonjour, je voudrais réserver une table pour deux personnes ce soir.", OUT).score < 0.1
    short = en.scan("Hola", OUT)
    assert short.score == 0.0 and "not judged" in (short.detail or "")
    # code and links do not count as text
    mixed = en.scan("Voici la réponse à votre question sur le jardin:\n```python\nprint('hello world')\n```", OUT)
    assert mixed.metadata["language"] == "fr"


def test_language_candidates_and_bad_codes() -> None:
    s = Language(allowed=["de"], candidates=["de", "en"])
    r = s.scan("Hallo, wie geht es dir heute? Ich hoffe, es geht dir gut.", OUT)
    assert r.score < 0.01 and [lang for lang, _ in r.metadata["top"]] == ["de", "en"]
    with pytest.raises(ValidationFailed, match="not language codes py3langid knows: english, xx"):
        Guard({"output": [{"type": "language", "params": {"allowed": ["English", "xx"]}}]})


def test_known_codes_are_the_models() -> None:
    from podium.guardrails.scanners.language import KNOWN, _identifier

    assert set(_identifier().labels) == KNOWN


# -- code -------------------------------------------------------------------------------------


def test_code_fenced_unfenced_and_prose() -> None:
    s = Code()
    fenced = s.scan("Here is how:\n```python\ndef f(x):\n    return x + 1\n```\nDone.", OUT)
    assert fenced.score == 1.0 and fenced.metadata["languages"] == ["python"]
    assert fenced.findings[0].text.startswith("```python")
    loose = s.scan("Try this:\nimport os\nprint(os.getcwd())\nThat prints the folder.", OUT)
    assert loose.score == 1.0 and loose.findings[0].text == "import os\nprint(os.getcwd())"
    assert s.scan("SELECT name FROM users WHERE id = 1;", OUT).metadata["languages"] == ["sql"]
    for prose in ["I love programming in C++ and Java; it is fun.", "The return on investment was 5%.",
                  "Step 1: open the file.\nStep 2: edit it.\nStep 3: save it.", "We met at 5:00; then we left."]:
        assert s.scan(prose, OUT).score == 0.0, prose


def test_code_languages_and_fenced_only() -> None:
    text = "Run this:\n```sql\nSELECT 1;\n```"
    assert Code(languages=["python"]).scan(text, OUT).score == 0.0
    assert Code(languages=["SQL"]).scan(text, OUT).score == 1.0
    assert Code(fenced_only=True).scan("const x = 5;\nconsole.log(x);", OUT).score == 0.0
    js = Code().scan("const x = 5;\nconsole.log(x);", OUT)
    assert js.score == 1.0 and js.metadata["languages"] == ["javascript"]
    # one code-like line in a long answer scores low
    long = "\n".join(["This paragraph is prose about gardens."] * 9 + ["x = compute(y)"])
    assert 0 < Code().scan(long, OUT).score < 0.5


# -- urls -------------------------------------------------------------------------------------


def test_find_urls_trims_punctuation() -> None:
    text = "See https://example.com/a?b=1, www.test.org. And (https://en.wikipedia.org/wiki/Up_(film))."
    assert [u for _, _, u in find_urls(text)] == ["https://example.com/a?b=1", "www.test.org",
                                                 "https://en.wikipedia.org/wiki/Up_(film)"]


def test_urls_allow_block_and_context() -> None:
    text = "Docs: https://docs.example.com/start and https://evil.test/x"
    allow = Urls(allowed_domains=["example.com"]).scan(text, OUT)
    assert allow.score == 1.0 and [f.text for f in allow.findings] == ["https://evil.test/x"]
    block = Urls(blocked_domains=["https://evil.test"]).scan(text, OUT)
    assert [f.text for f in block.findings] == ["https://evil.test/x"]
    assert Urls().scan(text, OUT).metadata["urls"] == ["https://docs.example.com/start", "https://evil.test/x"]
    assert Urls().scan("no links here, example dot com", OUT).score == 0.0
    ctx = Context(kind="output", documents=["Read https://docs.example.com/start first."])
    grounded = Urls(require_in_context=True).scan(text, ctx)
    assert [f.text for f in grounded.findings] == ["https://evil.test/x"]
    assert "not in the prompt or documents" in (grounded.detail or "")
    assert Urls(allowed_domains=["example.com"]).scan("[x](javascript:alert(1))", OUT).score == 1.0


def test_urls_redacted_by_policy() -> None:
    guard = Guard({"output": [{"type": "urls", "params": {"allowed_domains": ["podium.dev"]}, "action": "redact"}]})
    d = guard.scan("See https://podium.dev/docs or http://phish.example/login.", "output")
    assert d.text == "See https://podium.dev/docs or <URL_1>."


# -- refusal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "score"), [
    ("I’m sorry, but I can’t help with that.", 1.0),
    ("I cannot provide instructions for making weapons.", 1.0),
    ("As an AI language model, I don't have personal opinions.", 1.0),
    ("That request goes against my guidelines.", 1.0),
    ("Unfortunately, I am unable to access the internet. " + "However, here is what I know about it. " * 12, 0.75),
    ("Here is the recipe. Mix the flour and water. Bake it. " * 6 + "I cannot help with wine pairings, though.", 0.35),
    ("Sure! The capital of France is Paris.", 0.0),
    ("I can't wait to help you with this!", 0.0),
    ("You cannot do that in Python; use a list instead.", 0.0),
])
def test_refusal(text: str, score: float) -> None:
    r = Refusal().scan(text, OUT)
    assert r.score == score
    if score:
        assert r.findings and text[r.findings[0].start:r.findings[0].end] == r.findings[0].text


def test_refusal_waits_for_the_whole_answer_and_takes_extra_patterns() -> None:
    assert Refusal().scan("I'm sorry, but I can't help with that.", WINDOW).score == 0.0
    assert Refusal(patterns=[r"\bje ne peux pas\b"]).scan("Désolé, je ne peux pas.", OUT).score == 1.0
    guard = Guard({"output": [{"type": "refusal", "action": "flag"}]})
    d = guard.scan("I'm sorry, but I can't help with that.", "output")
    assert d.action == "flag" and "refusal" in d.reason()
    with pytest.raises(ValidationFailed, match="output text only"):
        Guard({"input": [{"type": "refusal"}]})


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["e.g. " * 20_000, "```\n" * 20_000, "(" * 50_000, "www." + "a." * 30_000,
                                  "I'm " + "so " * 20_000 + "sorry", "a = " + "b" * 100_000 + ";"])
def test_long_hostile_texts_stay_linear(text: str) -> None:
    import time

    from podium.guardrails.scanners.grounding import Groundedness

    for s in (Code(), Urls(), Refusal(), Regex([r"\bfoo\b"]), Groundedness(mode="lexical")):
        t0 = time.perf_counter()
        s.scan(text, Context(kind="output", documents=["foo bar baz qux"]))
        assert time.perf_counter() - t0 < 5.0, type(s).__name__  # quadratic paths took 18-110 s here
