"""promptfoo configs run with `podium eval run` as they are written for promptfoo.

The suites under tests/evals/promptfoo/ use promptfoo's keys the way its examples do
(``openai:`` providers, ``---`` prompt files, ``javascript``/inline ``python`` assertions,
``$ref`` templates, Nunjucks filters, ``transform``, ``outputPath``). They run against a real
server whose gateway serves the models they name from a fake OpenAI upstream that answers by
the prompt's content. The compatibility table in docs/evals.md is checked against them.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import podium
from podium.cli.main import app
from podium.evals.code import js_engine
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "promptfoo"
MODELS = ("gpt-4.1-mini", "o4-mini")

ANSWERS = [  # (substring of the prompt, the answer)
    ("English to French: Good morning", "Bonjour"),
    ("FRENCH: Good morning", "Bonjour !"),
    ("Where is the station?", "¿Dónde está la estación?"),
    (": True", "Aye"),  # `body: Yes` is YAML 1.1 for true, in promptfoo too
    ("I am thirsty", "Arr, bring me rum"),
    ("as JSON", '{"ship": "Sea Wolf", "crew": 40}'),
    ("Good day", "Ahoy there, matey"),
    ("Hand over the treasure", "Arr, give me yer treasure"),
    ("for: Lemon", '{"color": "yellow", "countries": ["Spain", "India"]}'),
    ("for: Blueberry", '{"color": "blue", "countries": ["Canada", "Chile"]}'),
]


def answer(body: dict[str, Any]) -> Reply:
    text = body["messages"][-1]["content"]
    for needle, reply in ANSWERS:
        if needle in text:
            return Reply(reply)
    return Reply(f"no scripted answer for: {text}")


@pytest.fixture
def env(server: LiveServer, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with server.client() as c:
        for name in MODELS:
            r = c.put(f"/api/v1/gateway/models/{name}", json={
                "deployments": [{"provider": "openai", "model": "fake-a", "api_base": upstream.base_url,
                                 "api_key": "k"}]})
            assert r.status_code in (200, 201), r.text
    upstream.respond("fake-a", answer)
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    yield server
    podium.shutdown(timeout=2)


def run(*args: str) -> Any:
    r = CliRunner().invoke(app, ["eval", "run", *args, "--no-progress"], catch_exceptions=False)
    r.flat = " ".join(r.output.split())
    return r


def copy_example(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(EXAMPLES / name, dst)
    return dst / "promptfooconfig.yaml"


def test_a_javascript_engine_is_installed() -> None:
    assert js_engine() == "quickjs"  # the eval extra brings it; Node.js is only the fallback


def test_getting_started(env: LiveServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    cfg = copy_example("getting-started", tmp_path)
    r = run(str(cfg), "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "r.json").read_text())
    # 2 prompts x 2 providers, each provider a gateway model named as promptfoo names it
    variants = {(e["variant"]["prompt"], e["variant"]["provider"]) for e in data["experiments"]}
    assert variants == {(p, m) for p in ("prompt-1", "prompt-2") for m in ("openai:gpt-4.1-mini",
                                                                             "openai:chat:o4-mini")}
    assert all(e["passed"] for e in data["experiments"])
    sent = [b["messages"][-1]["content"] for b in upstream.bodies("fake-a")]
    assert "Say it in FRENCH: Good morning" in sent  # the Nunjucks filter rendered
    assert {b.get("model") for b in upstream.bodies()} == {"fake-a"}


def test_simple_test(env: LiveServer, tmp_path: Path) -> None:
    cfg = copy_example("simple-test", tmp_path)
    r = run(str(cfg), "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "r.json").read_text())
    # the `---`-separated file is two prompts
    assert [e["variant"]["prompt"] for e in data["experiments"]] == ["prompts-1", "prompts-2"]
    for e in data["experiments"]:
        by_desc = {it["metadata"]["description"]: it for it in e["items"]}
        code = by_desc["Custom code checks"]["scores"]
        assert code["javascript"]["passed"] is True
        assert code["python"]["passed"] is True and code["python"]["value"] == 60 - len("Ahoy there, matey")
        assert code["javascript#2"]["value"] == 0.75 and code["javascript#2"]["explanation"] == "3 words"
        refs = by_desc["Reusable assertion templates"]["scores"]
        assert refs["icontains"]["passed"] is True  # from $ref: '#/assertionTemplates/piratey'
    # outputPath: written next to the config, one CSV row per prompt x test
    rows = list(csv.DictReader((cfg.parent / "output.csv").open(encoding="utf-8")))
    assert len(rows) == 10 and {r["pass"] for r in rows} == {"PASS"}
    assert {r["body"] for r in rows} >= {"true", "Good day"} and rows[0]["provider"] == "openai:gpt-4.1-mini"


def test_json_output_with_transforms(env: LiveServer, tmp_path: Path) -> None:
    cfg = copy_example("json-output", tmp_path)
    r = run(str(cfg), "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.output
    items = json.loads((tmp_path / "r.json").read_text())["experiments"][0]["items"]
    blueberry = next(it for it in items if it["input"]["item"] == "Blueberry")
    assert {k: v["passed"] for k, v in blueberry["scores"].items()} == {
        "is-json": True, "javascript": True, "contains-any": True}


def test_a_failing_assertion_fails_the_gate(env: LiveServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    cfg = copy_example("json-output", tmp_path)
    upstream.respond("fake-a", lambda body: Reply('{"color": "red", "countries": ["Peru"]}'))
    r = run(str(cfg), "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 1, r.output
    items = json.loads((tmp_path / "r.json").read_text())["experiments"][0]["items"]
    blueberry = next(it for it in items if it["input"]["item"] == "Blueberry")
    assert blueberry["scores"]["javascript"]["passed"] is False
    assert blueberry["scores"]["contains-any"]["passed"] is False


def test_provider_transform_and_a_direct_endpoint_whose_key_is_never_stored(
        env: LiveServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    cfg = tmp_path / "direct.yaml"
    cfg.write_text(f"""\
prompts: ['Shout {{{{word}}}}']
providers:
  - id: openai:chat:fake-a
    config: {{apiBaseUrl: "{upstream.base_url}", apiKey: sk-direct-secret-123, temperature: 0}}
    transform: output.toUpperCase()
tests:
  - vars: {{word: hi}}
    assert: [{{type: equals, value: HELLO THERE}}]
""")
    upstream.respond("fake-a", lambda body: Reply("hello there"))
    r = run(str(cfg), "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.output
    req = upstream.requests[-1]
    assert req["headers"]["authorization"] == "Bearer sk-direct-secret-123"  # called directly, with its key
    assert "podium" not in req["body"] and req["body"]["temperature"] == 0
    exp_id = json.loads((tmp_path / "r.json").read_text())["experiments"][0]["experiment"]["id"]
    with env.client() as c:
        stored = c.get(f"/api/v1/experiments/{exp_id}").text
        items = c.get(f"/api/v1/experiments/{exp_id}/items").text
    assert "sk-direct-secret-123" not in stored + items and "apiKey" not in stored
    assert '"transform":"output.toUpperCase()"' in stored
    assert "HELLO THERE" in items  # the provider's transform shaped the stored output


@pytest.mark.parametrize(("text", "line", "message"), [
    ("prompts: [a]\ntests: [{vars: {}}]\nredteam: {}\n", 3, "unknown key 'redteam'"),
    ("prompts: [a]\nproviders: [{id: openai:chat:x, delay: 5}]\ntests: [{vars: {}}]\n", 2,
     "unknown key 'delay' for a gateway provider"),
    ("prompts: [a]\ntests:\n  - vars: {}\n    options: {runSerially: true}\n", 4, "unknown test option 'runSerially'"),
    ("prompts: [a]\ntests:\n  - vars: {}\n    assert:\n      - $ref: '#/assertionTemplates/nope'\n", 5,
     "names no assertion template"),
    ("prompts: [a]\ntests:\n  - vars: {}\n    assert:\n      - type: javascript\n        value: 'output.('\n", 5,
     "SyntaxError"),
    ("prompts: [a]\nproviders: [openai:embedding:text-embedding-3-small]\ntests: [{vars: {}}]\n", 2,
     "Podium evaluates chat models"),
    ("prompts: [a]\nproviders: [{id: openai:gpt-4o, config: {apiKey: sk-x}}]\ntests: [{vars: {}}]\n", 2,
     "config.apiKey without apiBaseUrl"),
    ("prompts: [a]\ntests: [{vars: {}}]\noutputPath: out.txt\n", 3, "outputPath 'out.txt'"),
    ("prompts: [a]\ntests: [{vars: {}}]\nsharing: true\n", 3, "never does"),
])
def test_unsupported_keys_exit_2_with_the_line(text: str, line: int, message: str, tmp_path: Path) -> None:
    f = tmp_path / "promptfooconfig.yaml"
    f.write_text(text)
    r = run(str(f))
    assert r.exit_code == 2, r.output
    assert f"{f}:{line}:" in r.output.replace("\n", "") and message in r.flat


def test_a_model_the_gateway_does_not_serve_is_a_configuration_error(env: LiveServer, upstream: FakeUpstream,
                                                                     tmp_path: Path) -> None:
    f = tmp_path / "promptfooconfig.yaml"
    f.write_text("prompts: ['{{q}}']\nproviders:\n  - openai:chat:local-typo\ntests: [{vars: {q: hi}}]\n")
    r = run(str(f))
    assert r.exit_code == 2, r.output
    assert f"{f}:3:" in r.output.replace("\n", "") and "the gateway has no model 'local-typo'" in r.flat
    assert upstream.requests == []  # nothing ran


def test_the_compatibility_table_matches_the_examples() -> None:
    doc = (ROOT / "docs" / "evals.md").read_text()
    table = doc.split("<!-- promptfoo-compat -->", 2)[1]
    rows = []
    for line in table.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows.append((re.match(r"`([^`]+)`", cells[0]).group(1), cells[1], cells[2]))  # type: ignore[union-attr]
    assert len(rows) >= 20
    texts = {p.name: "\n".join(f.read_text() for f in p.iterdir() if f.is_file()) for p in EXAMPLES.iterdir()
             if p.is_dir()}
    for token, status, where in rows:
        if status.strip().startswith("supported") and where.strip():
            for ex in re.findall(r"[a-z-]+", where):
                assert ex in texts, f"docs/evals.md names an example {ex!r} that tests/evals/promptfoo lacks"
                key = token.split(":")[0].strip("$#/").split(".")[-1]
                assert key in texts[ex], f"{ex} does not use `{token}`"
