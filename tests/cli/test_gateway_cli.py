"""`podium models`, `podium limits` and `podium chat` against a live server and a fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import Fail, FakeUpstream, Reply

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def allow_up_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # API-declared aliases may read only operator-allowed variables (docs/security.md).
    monkeypatch.setenv("PODIUM_GATEWAY_ENV_ALLOWLIST", "UP_KEY")


@pytest.fixture
def cli_env(allow_up_key: None, server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    yield server


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


def run(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_models_add_list_chat_remove(cli_env: LiveServer, upstream: FakeUpstream,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UP_KEY", "sk-from-env")
    out = run("models", "add", "team/fast", "--provider", "openai", "--model", "fake-a",
              "--api-base", upstream.base_url, "--api-key-env", "UP_KEY", "--fallback", "local")
    assert "team/fast" in out and "openai/fake-a" in out
    models = {m["name"]: m for m in json.loads(run("models", "list", "--json"))}
    assert models["team/fast"]["source"] == "api" and models["team/fast"]["fallbacks"] == ["local"]
    assert models["team/fast"]["deployments"][0]["api_key"] == "env:UP_KEY"
    assert models["local"]["source"] == "builtin"
    table = run("models", "list")
    assert "team/fast" in table and "local-embed" in table
    upstream.script("fake-a", Reply("streamed through the gateway"))
    out = run("chat", "hello", "--model", "team/fast")
    assert "streamed through the gateway" in out
    assert upstream.requests[-1]["headers"]["authorization"] == "Bearer sk-from-env"
    out = run("chat", "hello", "--model", "team/fast", "--no-stream")
    assert "streamed through the gateway" in out  # the same request: answered from the cache
    out = run("chat", "hello again", "--model", "team/fast", "--no-stream")
    assert "Hello from the fake upstream" in out and len(upstream.requests) == 2
    upstream.script("fake-a", Fail(400, "bad prompt"))
    bad = runner.invoke(app, ["chat", "make it fail", "--model", "team/fast"])
    assert bad.exit_code == 1 and "bad prompt" in bad.output
    unknown = runner.invoke(app, ["chat", "hello", "--model", "nope"])
    assert unknown.exit_code == 1 and "available" in unknown.output
    run("models", "remove", "team/fast")
    assert "team/fast" not in run("models", "list")


def test_limits_set_and_show(cli_env: LiveServer) -> None:
    key = cli_env.store.projects.create_key(cli_env.keys.project_id, role="gateway", note="bot")
    out = json.loads(run("limits", "set", "--rpm", "100", "--budget-daily", "5"))
    assert out["limits"] == {"rpm": 100, "budget_daily": 5.0}
    out = json.loads(run("limits", "set", "--key", key.key.public_key, "--max-parallel", "2", "--model", "local"))
    assert out["limits"] == {"max_parallel": 2} and out["models"] == ["local"]
    shown = json.loads(run("limits", "show"))
    assert shown["project"]["limits"]["rpm"] == 100
    bot = next(k for k in shown["keys"] if k["public_key"] == key.key.public_key)
    assert bot["limits"] == {"max_parallel": 2} and "spend" in bot["usage"]
    bad = runner.invoke(app, ["limits", "set", "--rpm", "-1"])
    assert bad.exit_code == 1
