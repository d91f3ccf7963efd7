"""podium.core.prompts: template syntax, errors with positions, compile, A/B choice, URIs, diff, files."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from podium.core.prompts import (
    MissingVariablesError,
    Prompt,
    PromptMessages,
    Target,
    TemplateSyntaxError,
    check_label,
    check_prompt_name,
    check_targets,
    choose_version,
    diff_versions,
    parse_prompt_uri,
    prompt_from_file,
    prompt_to_file,
    template_variables,
    version_size,
)
from podium.errors import ValidationFailed

CHAT: list[dict[str, Any]] = [
    {"role": "system", "content": "You answer in a {{tone}} tone."},
    {"type": "placeholder", "name": "history"},
    {"role": "user", "content": [{"type": "text", "text": "Question: {{ question }}"},
                                 {"type": "image_url", "image_url": {"url": "data:,x"}}]},
]


def test_variables_escape_and_braces() -> None:
    p = Prompt(name="qa", prompt="Hi {{ name }}! \\{{not_a_var}} {{{x}}} }} {{name}}")
    assert p.variables == ["name", "x"]
    assert p.compile(name="Ada", x=1) == "Hi Ada! {{not_a_var}} {1} }} Ada"
    # Values: JSON for lists/dicts, "" for None, str() otherwise; extra variables are ignored.
    q = Prompt(name="q", prompt="{{a}}|{{b}}|{{c}}")
    assert q.compile(a={"k": [1, "é"]}, b=None, c=2.5, unused=1) == '{"k": [1, "é"]}||2.5'
    assert template_variables("text", "plain text, no variables") == ([], [])


@pytest.mark.parametrize(
    ("template", "line", "column", "words"),
    [
        ("Hello {{ name", 1, 7, "never closed"),
        ("a\nb {{}}", 2, 3, "empty variable"),
        ("line one\n  {{ first name }}", 2, 6, "invalid variable name 'first name'"),
        ('{"json": {{"nested": 1}}}', 1, 12, "invalid variable name"),
        ("{{ a {{ b }}", 1, 1, "never closed"),
    ],
)
def test_syntax_errors_point_at_the_position(template: str, line: int, column: int, words: str) -> None:
    with pytest.raises(TemplateSyntaxError) as exc:
        Prompt(name="bad", prompt=template)
    e = exc.value
    assert (e.line, e.column) == (line, column), e.message
    assert words in e.message and f"line {line}, column {column}" in e.message
    assert "\\{{" in e.message or "name inside" in e.message  # says how to fix it
    assert e.status_code == 400 and e.details[0]["line"] == line and e.details[0]["field"] == "prompt"
    assert isinstance(e, ValueError)


def test_chat_prompt_with_placeholders_and_parts() -> None:
    p = Prompt(name="chat", type="chat", prompt=CHAT, config={"model": "gpt-4o", "temperature": 0.2, "notes": "x"})
    assert p.variables == ["tone", "question"] and p.placeholders == ["history"]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    msgs = p.compile(tone="friendly", question="why?", history=history)
    assert isinstance(msgs, PromptMessages) and isinstance(msgs, list) and msgs.podium_prompt is p
    assert msgs == [
        {"role": "system", "content": "You answer in a friendly tone."},
        *history,
        {"role": "user", "content": [{"type": "text", "text": "Question: why?"},
                                     {"type": "image_url", "image_url": {"url": "data:,x"}}]},
    ]
    assert p.prompt[0]["content"] == "You answer in a {{tone}} tone."  # the template is not mutated
    kwargs = p.openai_kwargs(tone="dry", question="q", history=[])
    assert kwargs["model"] == "gpt-4o" and kwargs["temperature"] == 0.2 and "notes" not in kwargs
    assert [m["role"] for m in kwargs["messages"]] == ["system", "user"]
    text = Prompt(name="t", prompt="Say {{x}}", config={"max_tokens": 5}, version=2).openai_kwargs(x="hi")
    assert text == {"max_tokens": 5, "messages": [{"role": "user", "content": "Say hi"}]}
    assert text["messages"].podium_prompt.version == 2


def test_missing_variables_are_all_named() -> None:
    p = Prompt(name="chat", type="chat", prompt=CHAT, version=3)
    with pytest.raises(MissingVariablesError) as exc:
        p.compile(tone="x")
    e = exc.value
    assert e.missing == ["question", "history"]
    assert "prompt 'chat' v3 is missing variables: question, history" in e.message
    assert e.status_code == 400 and {d["field"] for d in e.details} == {"variables.question", "variables.history"}
    with pytest.raises(ValidationFailed, match="placeholder 'history' takes a list of messages"):
        p.compile(tone="x", question="q", history="not messages")


def test_invalid_chat_structures() -> None:
    for bad, words in [
        ([], "non-empty list"),
        (["hi"], "prompt[0] must be an object"),
        ([{"content": "x"}], "prompt[0] needs a role"),
        ([{"type": "placeholder", "name": "bad name"}], "placeholder whose name"),
        ([{"role": "user", "content": 5}], "content must be"),
        ([{"role": "user", "content": "{{h}}"}, {"type": "placeholder", "name": "h"}], "both as a variable"),
    ]:
        with pytest.raises(ValidationFailed, match=re.escape(words)):
            Prompt(name="c", type="chat", prompt=bad)
    with pytest.raises(TemplateSyntaxError) as exc:
        Prompt(name="c", type="chat", prompt=[{"role": "user", "content": "ok"},
                                              {"role": "user", "content": [{"type": "text", "text": "x {{"}]}])
    assert exc.value.field == "prompt[1].content[0].text"
    with pytest.raises(ValidationFailed, match="text prompt is a string"):
        Prompt(name="t", type="text", prompt=[{"role": "user", "content": "x"}])


def test_jinja2_sandboxed() -> None:
    p = Prompt(name="j", template_format="jinja2",
               prompt="{% if vip is defined and vip %}Dear VIP, {% endif %}{% for d in docs %}[{{ d }}]{% endfor %}"
                      " {{ question | upper }}")
    assert p.variables == ["vip", "docs", "question"]
    assert p.compile(docs=["a", "b"], question="why") == "[a][b] WHY"
    assert p.compile(docs=[], question="q", vip=True) == "Dear VIP,  Q"
    with pytest.raises(MissingVariablesError) as exc:
        p.compile(docs=[])
    assert "question" in exc.value.missing
    with pytest.raises(TemplateSyntaxError) as syn:
        Prompt(name="j", template_format="jinja2", prompt="ok\n{% if x %}never closed")
    assert syn.value.line == 2 and "Jinja2" in syn.value.message
    with pytest.raises(ValidationFailed, match="sandbox"):
        Prompt(name="j", template_format="jinja2", prompt="{{ x.__class__.__mro__ }}").compile(x=1)
    with pytest.raises(ValidationFailed, match="template_format"):
        Prompt(name="j", template_format="handlebars", prompt="x")


def test_names_labels_and_targets() -> None:
    assert check_prompt_name("support/triage-v2.1") == "support/triage-v2.1"
    for bad, words in [("", "needs a name"), ("a//b", "invalid prompt name"), ("a b", "invalid"),
                       ("x" * 257, "at most 256"), ("team/versions/x", "reserved"), ("qa/3", "only digits"),
                       ("/qa", "invalid"), ("qa@prod", "invalid")]:
        with pytest.raises(ValidationFailed, match=words):
            check_prompt_name(bad)
    with pytest.raises(ValidationFailed, match="moves by itself"):
        check_label("latest")
    assert check_label("latest", allow_latest=True) == "latest"
    with pytest.raises(ValidationFailed):
        check_label("has space")
    assert check_targets([3]) == [Target(3, 1.0)]
    assert check_targets([{"version": 3, "weight": 90}, {"version": 4, "weight": 10}]) == [Target(3, 90), Target(4, 10)]
    for bad, words in [([], "give a version"), ([{"version": 1, "weight": 0}], "weight must be > 0"),
                       ([1, 1], "twice"), ([{"version": 0}], "start at 1"), (["x"], "must be"),
                       ([{"version": 1, "weight": "9"}], "number"), (list(range(1, 13)), "at most 10")]:
        with pytest.raises(ValidationFailed, match=words):
            check_targets(bad)


def test_ab_choice_is_deterministic_per_seed_and_follows_weights() -> None:
    targets = [Target(3, 90), Target(4, 10)]
    picks = {f"user-{i}": choose_version(targets, name="qa", label="production", seed=f"user-{i}") for i in range(4000)}
    again = {s: choose_version(targets, name="qa", label="production", seed=s) for s in picks}
    assert picks == again
    share = Counter(picks.values())[4] / len(picks)
    assert 0.08 < share < 0.12, share
    # Another prompt or label buckets users independently.
    other = {s: choose_version(targets, name="other", label="production", seed=s) for s in picks}
    assert other != picks
    random_share = Counter(choose_version(targets, name="qa", label="p") for _ in range(4000))[4] / 4000
    assert 0.07 < random_share < 0.13
    assert choose_version([Target(7)], name="qa", label="p", seed="x") == 7


def test_uris() -> None:
    assert parse_prompt_uri("prompts:/qa@production") == ("qa", None, "production")
    assert parse_prompt_uri("prompts:/qa/3") == ("qa", 3, None)
    assert parse_prompt_uri("prompts:/team/qa/12") == ("team/qa", 12, None)
    assert parse_prompt_uri("prompts:/team/qa@latest") == ("team/qa", None, "latest")
    assert parse_prompt_uri("prompts:/team/qa") == ("team/qa", None, None)
    assert Prompt(name="team/qa", prompt="x", version=4).uri == "prompts:/team/qa/4"
    with pytest.raises(ValidationFailed, match="not a prompt URI"):
        parse_prompt_uri("models:/x/1")


def test_diff_text_chat_and_config() -> None:
    a = {"name": "qa", "version": 1, "type": "text", "prompt": "Answer {{q}}.\nBe brief.", "config": {"t": 0.1}}
    b = {"name": "qa", "version": 2, "type": "text", "prompt": "Answer {{q}}.\nBe thorough.", "config": {"t": 0.1}}
    d = diff_versions(a, b)
    assert d["changed"] == ["prompt"] and not d["identical"] and d["config"] == ""
    assert "--- qa@1/prompt\n+++ qa@2/prompt\n" in d["prompt"]
    assert "-Be brief." in d["prompt"] and "+Be thorough." in d["prompt"] and " Answer {{q}}." in d["prompt"]
    assert diff_versions(a, a)["identical"]
    c1 = {"name": "c", "version": 1, "type": "chat", "prompt": CHAT, "config": {}}
    c2 = {"name": "c", "version": 2, "type": "chat", "prompt": [CHAT[0], CHAT[2]], "config": {"model": "x"}}
    d = diff_versions(c1, c2)
    assert "-[placeholder: history]" in d["prompt"] and '+  "model": "x"' in d["config"]


def test_prompt_file_round_trip_and_checks() -> None:
    v = {"name": "team/qa", "version": 3, "type": "chat", "template_format": "mustache", "prompt": CHAT,
         "config": {"model": "local"}, "tags": ["a"], "commit_message": "tone"}
    f = prompt_to_file(v, labels={"production": 3})
    back = prompt_from_file(f, source="qa.yaml")
    assert back["prompt"] == CHAT and back["version"] == 3 and back["labels"] == {"production": 3}
    for bad, words in [({"name": "x", "prompt": "a {{"}, "qa.yaml: invalid template"),
                       ({"name": "x", "prompt": "a", "colour": 1}, "unknown field"),
                       ({"prompt": "a"}, "needs a name"), ({"name": "x", "prompt": "a", "version": 0}, "version"),
                       ("just text", "mapping")]:
        with pytest.raises(ValidationFailed, match=words):
            prompt_from_file(bad, source="qa.yaml")


def test_version_size_counts_utf8_bytes() -> None:
    assert version_size("é", {}) == len('{"prompt":"é","config":{}}'.encode())
