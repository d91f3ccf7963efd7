"""The plugin contract (docs/plugins.md) with the real example package, examples/plugin, installed
in the test environment (`make setup` runs `pip install -e examples/plugin`): it shows up in
`podium plugins list`, its scorer runs from a suite YAML with `podium eval run`, and its provider
serves `/v1/chat/completions` from a gateway config file, through the official `openai` client, and its
`file` alert channel builds and sends through `podium.alerts`."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from typer.testing import CliRunner

import podium
from podium.cli.main import app
from podium.plugins import PluginError, hookimpl
from podium.plugins import manager as plugin_manager
from tests.conftest import LiveServer, ProjectKeys, ServerThread

GATEWAY_YAML = """
models:
  - name: shout
    deployments:
      - {provider: echo, model: echo-1}
"""

SUITE = """\
description: Shouting
prompts:
  - "say {{what}}"
providers:
  - id: shout
tests:
  - vars: {what: hello world}
    assert:
      - {type: word-count-between, min: 2, max: 4}
      - {type: contains, value: "SAY HELLO WORLD"}
  - vars: {what: one two three four five}
    assert:
      - {type: not-word-count-between, min: 1, max: 3}
"""


def test_plugins_list_shows_builtins_and_the_example_with_its_version() -> None:
    r = CliRunner().invoke(app, ["plugins", "list", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    by_name = {p["name"]: p for p in json.loads(r.output)}
    ex = by_name["podium-example-plugin"]
    assert ex["version"] == "0.1.0" and ex["module"] == "podium_example_plugin"
    assert ex["hooks"] == ["register_alert_channels", "register_guardrails", "register_providers",
                           "register_scorers"]
    assert ex["registered"] == {"scorers": ["word-count-between"], "providers": ["echo"],
                                "guardrails": ["no-pirates"], "alert_channels": ["file"]}
    assert by_name["podium.alerts.builtins"]["registered"]["alert_channels"] == ["email", "pagerduty", "webhook"]
    builtin_scorers = by_name["podium.evals.scorers.builtins"]
    assert builtin_scorers["version"] == "built-in" and "llm-rubric" in builtin_scorers["registered"]["scorers"]
    assert by_name["podium.gateway.providers.builtins"]["registered"]["providers"] == [
        "anthropic", "gemini", "local", "openai"]
    text = CliRunner().invoke(app, ["plugins", "list"], catch_exceptions=False).output
    assert "podium-example-plugin 0.1.0" in text and "providers: echo" in text and "guardrails: no-pirates" in text
    assert "alert_channels: file" in text and "alert_channels: email, pagerduty, webhook" in text


def test_the_plugin_alert_channel_builds_and_sends(tmp_path: Path) -> None:
    from podium.alerts import Alert, build, channel_specs

    assert channel_specs()["file"].plugin == "podium-example-plugin"
    out = tmp_path / "alerts.jsonl"
    channel = build("file", {"path": str(out)})
    fired = Alert(rule="error-rate", project="demo", title="Error rate above 5%", severity="critical",
                  value=0.08, threshold=0.05, labels={"model": "gpt-4o"})
    d = channel.send(fired)
    assert d.ok and d.channel == "file" and d.attempts == 1 and d.error is None
    channel.send(Alert(rule="error-rate", project="demo", title="Error rate above 5%", status="resolved",
                       labels={"model": "gpt-4o"}))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["status"] for x in lines] == ["firing", "resolved"]
    assert lines[0]["value"] == 0.08 and lines[0]["labels"] == {"model": "gpt-4o"}
    assert lines[0]["dedup_key"] == lines[1]["dedup_key"] == fired.key
    broken = build("file", {"path": str(tmp_path / "missing-dir" / "a.jsonl")})
    d = broken.send(fired)  # a failed Delivery, not an exception
    assert not d.ok and "cannot append" in (d.error or "")


def test_the_plugin_scanner_runs_through_guard_and_the_cli(tmp_path: Path) -> None:
    from podium.guardrails import Guard
    from podium.guardrails.registry import scanner_specs

    assert scanner_specs()["no-pirates"].plugin == "podium-example-plugin"
    guard = Guard({"name": "pirates", "input": [{"type": "no-pirates", "action": "redact"}],
                   "output": [{"type": "no-pirates", "params": {"words": ["yo-ho"]}, "action": "block"}]})
    d = guard.scan("Ahoy matey, what is Podium?", "input")
    assert d.action == "redact" and d.text == "<PIRATE_1> <PIRATE_2>, what is Podium?"
    assert guard.scan("Arrival at the harbour", "input").action == "allow"  # whole words only
    assert guard.scan("yo-ho, a pirate's life", "output").blocked
    policy = tmp_path / "pirates.yaml"
    policy.write_text("input:\n  - {type: no-pirates, action: block}\n")
    r = CliRunner().invoke(app, ["guard", "scan", "arr, matey", "--policy", str(policy)], catch_exceptions=False)
    assert r.exit_code == 1 and "no-pirates: fail 1.00 >= 0.5 -> block" in r.output
    assert "pirate talk: arr, matey" in r.output
    r = CliRunner().invoke(app, ["guard", "scan", "hello", "--policy", str(policy)], catch_exceptions=False)
    assert r.exit_code == 0 and r.output.startswith("allow")


@pytest.fixture
def echo_server(store: Any, project: ProjectKeys, podium_home: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    podium_home.mkdir(parents=True, exist_ok=True)
    cfg = podium_home / "gateway.yaml"
    cfg.write_text(GATEWAY_YAML)
    monkeypatch.setenv("PODIUM_GATEWAY_CONFIG", str(cfg))
    app_ = create_app(Settings(), store=store)
    th = ServerThread(app_).start()
    yield LiveServer(th.url, store, project, app_, th)
    th.stop()


def test_the_plugin_provider_serves_chat_completions_from_gateway_yaml(echo_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=echo_server.url + "/v1", api_key=echo_server.keys.secret_key, max_retries=0)
    msg = [{"role": "user", "content": "hello plugin world"}]
    r = client.chat.completions.create(model="shout", messages=msg)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "HELLO PLUGIN WORLD"
    assert r.usage is not None and r.usage.total_tokens == 6
    stream = client.chat.completions.create(model="shout", messages=msg, stream=True,  # type: ignore[arg-type]
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "HELLO PLUGIN WORLD"


def test_the_plugin_scorer_runs_from_a_suite(echo_server: LiveServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_BASE_URL", echo_server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", echo_server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", echo_server.keys.secret_key)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    try:
        r = CliRunner().invoke(app, ["eval", "run", str(suite), "--no-progress", "-o", str(tmp_path / "r.json")],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        data = json.loads((tmp_path / "r.json").read_text())
        assert data["passed"]
        items = data["experiments"][0]["items"]
        assert len(items) == 2
        assert "word-count-between" in json.dumps(items)
        bad = tmp_path / "bad.yaml"
        bad.write_text(SUITE.replace("min: 2, max: 4", "min: 5, max: 9"))
        r = CliRunner().invoke(app, ["eval", "run", str(bad), "--no-progress"], catch_exceptions=False)
        assert r.exit_code == 1, r.output
    finally:
        podium.shutdown(timeout=2)


def test_a_scorer_type_registered_twice_fails_naming_both_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    @hookimpl
    def register_scorers(register: Any) -> None:
        register("word-count-between", object, category="custom")

    rival = types.ModuleType("rival_plugin")
    rival.register_scorers = register_scorers  # type: ignore[attr-defined]
    pm = plugin_manager.get_plugin_manager()
    pm.register(rival, name="rival-plugin")
    try:
        with pytest.raises(PluginError) as e:
            plugin_manager._collect(pm)
        assert "'rival-plugin'" in e.value.message and "'podium-example-plugin'" in e.value.message
        assert "word-count-between" in e.value.message
        assert e.value.details[0]["plugins"] == ["podium-example-plugin", "rival-plugin"]
    finally:
        pm.unregister(rival)


def test_an_unknown_provider_in_gateway_config_names_the_known_ones() -> None:
    from pydantic import ValidationError

    from podium.gateway.config import DeploymentSpec

    with pytest.raises(ValidationError, match=r"unknown provider 'nope'.*echo.*docs/plugins\.md"):
        DeploymentSpec(provider="nope", model="m")
    assert DeploymentSpec(provider="echo", model="m").provider == "echo"


def test_scorer_parameters_are_read_along_the_class_hierarchy() -> None:
    from podium.evals.scorers import ScorerConfigError, get_scorer, scorer_specs
    from podium.evals.scorers.base import _factory_params

    specs = {s.type: s for s in scorer_specs()}
    judge_keywords = {"judge", "model", "template", "prompt_source", "max_retries", "temperature", "max_tokens",
                      "seed", "response_format", "threshold", "name", "weight", "invert"}
    for t in ("llm-rubric", "g-eval", "factuality", "answer-relevance", "context-faithfulness", "coherence", "fluency"):
        assert judge_keywords <= set(specs[t].params), t
    assert {"value", "steps"} <= set(specs["g-eval"].params) and "max_claims" in specs["context-faithfulness"].params
    assert get_scorer("context-faithfulness").judge.max_tokens == 1024  # the subclass's default survives
    with pytest.raises(ScorerConfigError, match="does not take 'bogus'"):
        get_scorer("fluency", bogus=1)

    def loose(**kwargs: Any) -> Any:
        return kwargs

    with pytest.raises(ValueError, match="must list their parameters"):
        _factory_params(loose)
