"""The experiment engine takes the SDK client as a parameter: ``podium.evaluate`` passes the
default one, ``podium.experiments.evaluate(client=...)`` and ``Runner(client=...)`` use exactly
the one given, and nothing in the engine reaches for a global client."""

from __future__ import annotations

import pytest

import podium
from podium.errors import ConfigurationError
from podium.experiments import PromptTask, Runner, evaluate
from podium.sdk.client import current_default
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply

ITEMS = [{"input": {"country": "France"}, "expected": "Paris"}, {"input": {"country": "Italy"}, "expected": "Rome"}]


def _fake_model(server: LiveServer, upstream: FakeUpstream) -> None:
    with server.client() as c:
        r = c.put("/api/v1/gateway/models/fake", json={
            "deployments": [{"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "k"}]})
        assert r.status_code in (200, 201), r.text


def _client(server: LiveServer) -> podium.Podium:
    return podium.Podium(base_url=server.url, public_key=server.keys.public_key,
                         secret_key=server.keys.secret_key, flush_interval=0.05)


def test_an_explicit_client_is_the_only_one_used(server: LiveServer) -> None:
    sdk = _client(server)
    try:
        r = evaluate(dataset=[{"input": "a", "expected": "A"}], task=str.upper, scorers=["equals"],
                     name="explicit", client=sdk, progress=False)
    finally:
        sdk.shutdown(timeout=5)
    assert current_default() is None   # no default client was built behind our back
    assert sdk.evals.base_url == server.url and r.id
    with server.client() as c:
        exp = c.get(f"/api/v1/experiments/{r.id}").json()
    assert exp["name"] == "explicit" and exp["summary"]["pass_rate"]["mean"] == 1.0


def test_without_a_client_the_engine_runs_offline_and_says_how_to_reach_a_server() -> None:
    r = evaluate(dataset=[{"input": "a", "expected": "A"}], task=str.upper, scorers=["equals"], progress=False)
    assert r.summary["pass_rate"]["mean"] == 1.0 and current_default() is None
    with pytest.raises(ConfigurationError, match="lives on a server"):
        evaluate(dataset="qa", task=str.upper, progress=False)
    with pytest.raises(ConfigurationError, match="record=True needs a server"):
        evaluate(dataset=[{"input": "a"}], task=str.upper, record=True, progress=False)


def test_a_registry_prompt_task_is_fetched_through_the_run_client(server: LiveServer,
                                                                  upstream: FakeUpstream) -> None:
    _fake_model(server, upstream)
    podium.configure(base_url=server.url, public_key=server.keys.public_key, secret_key=server.keys.secret_key,
                     flush_interval=0.05)
    podium.create_prompt("capital", "Capital of {{country}}? One word.", config={"model": "fake"},
                         labels=["production"])
    task = PromptTask("prompts:/capital@production", base_url=server.url, api_key=server.keys.secret_key)
    assert task.name == "capital"   # known before the prompt is fetched
    upstream.script("fake-a", Reply("Paris"), Reply("Rome"))
    r = podium.evaluate(dataset=ITEMS, task=task, scorers=["icontains"], max_concurrency=1, progress=False)
    assert [i["output"] for i in r.items] == ["Paris", "Rome"] and r.summary["pass_rate"]["mean"] == 1.0
    assert upstream.bodies("fake-a")[0]["messages"] == [{"role": "user", "content": "Capital of France? One word."}]
    described = r.experiment["task"]
    assert (described["prompt_name"], described["prompt_version"], described["model"]) == ("capital", 1, "fake")


def test_an_unbound_registry_prompt_task_says_how_to_give_it_a_client() -> None:
    task = PromptTask("prompts:/capital/2", base_url="http://127.0.0.1:9", api_key=None)
    assert task.name == "capital"
    with pytest.raises(ConfigurationError, match="pass prompt_client="):
        Runner(task, ["equals"], progress=False).run([], {})
