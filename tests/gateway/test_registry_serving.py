"""Registered GGUF versions served by the gateway (`provider: local`, `model: registry:/NAME@ALIAS`)
through a real server and the official openai client: the span records the served version
``NAME@N``, the response the alias the caller used, an alias move is served after the TTL, loaded
models are kept in an LRU, and unknown or non-GGUF versions answer OpenAI-shaped errors that say
how to fix them."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from podium.inference.llama import default_model_path
from tests.conftest import LiveServer, ProjectKeys, ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TTL = 0.5


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any, Path]]:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.store import Store

    home = tmp_path_factory.mktemp("registry-serving")
    store = Store.from_url(f"sqlite:///{home / 'podium.db'}")
    p = store.projects.create_project("serving")
    k = store.projects.create_key(p.id, role="admin")
    keys = ProjectKeys(p.id, k.key.public_key, k.secret_key)
    settings = Settings(home=home, gateway_cache="memory", gateway_registry_ttl=TTL, local_max_models=1,
                        local_threads=1, local_context=512)
    app = create_app(settings, store=store)
    th = ServerThread(app).start()
    srv = LiveServer(th.url, store, keys, app, th)
    copy = home / "copy.gguf"  # a second file: a second loaded model
    shutil.copyfile(default_model_path(), copy)
    with srv.client() as c:
        for path in (default_model_path(), copy):
            r = c.post("/api/v1/registry/models/bot/versions",
                       json={"artifact": {"kind": "gguf", "uri": str(path)}, "base_model": "smollm2"})
            assert r.status_code == 201, r.text
        r = c.post("/api/v1/registry/models/bot/versions",
                   json={"artifact": {"kind": "merged", "uri": str(home / "merged")}})
        assert r.status_code == 201, r.text
        assert c.put("/api/v1/registry/models/bot/aliases/champion", json={"version": 1}).status_code == 200
        assert c.put("/api/v1/registry/models/bot/aliases/nope", json={"version": 1}).status_code == 200
        for name, model in (("bot", "registry:/bot@champion"), ("bot-v2", "registry:/bot@2"),
                            ("bot-merged", "registry:/bot@3"), ("bot-nope", "registry:/bot@nope")):
            r = c.put(f"/api/v1/gateway/models/{name}", json={"deployments": [{"provider": "local", "model": model}]})
            assert r.status_code in (200, 201), r.text
        # the registry alias goes away after the gateway alias named it: calls get the 404 below
        assert c.delete("/api/v1/registry/models/bot/aliases/nope").status_code == 204
    client = openai.OpenAI(base_url=th.url + "/v1", api_key=k.secret_key, max_retries=0, timeout=120)
    yield srv, client, copy
    th.stop()
    store.close()


def _span_model(srv: LiveServer, trace_id: str) -> str:
    with srv.client() as c:
        for _ in range(100):
            r = c.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200 and r.json()["spans"]:
                return str(r.json()["spans"][0]["model"])
            time.sleep(0.1)
    raise AssertionError(f"no span for trace {trace_id}")


def _ask(client: Any, model: str) -> tuple[Any, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0)
    return raw.parse(), raw.headers["x-podium-trace-id"]


def test_alias_serves_its_version_and_a_move_is_seen_after_the_ttl(served: tuple[LiveServer, Any, Path]) -> None:
    srv, client, copy = served
    resp, trace = _ask(client, "bot")
    assert resp.model == "bot" and resp.choices[0].message.content
    assert _span_model(srv, trace) == "bot@1"
    _resp, trace = _ask(client, "bot")  # same request again: not answered from the cache (the alias can move)
    assert _span_model(srv, trace) == "bot@1"

    with srv.client() as c:
        assert c.put("/api/v1/registry/models/bot/aliases/champion", json={"version": 2}).status_code == 200
    time.sleep(TTL + 0.1)
    resp, trace = _ask(client, "bot")
    assert resp.model == "bot" and _span_model(srv, trace) == "bot@2"
    provider = srv.app.state.podium.gateway.providers["local"]
    assert provider.loaded_models() == [str(copy)]  # local_max_models=1: version 1's model was closed

    with srv.client() as c:  # rollback: served again after the TTL
        assert c.post("/api/v1/registry/models/bot/aliases/champion/rollback", json={}).status_code == 200
    time.sleep(TTL + 0.1)
    _resp, trace = _ask(client, "bot")
    assert _span_model(srv, trace) == "bot@1"


def test_pinned_version_streams(served: tuple[LiveServer, Any, Path]) -> None:
    _srv, client, _copy = served
    stream = client.chat.completions.create(model="bot-v2", messages=[{"role": "user", "content": "Say hi."}],
                                            max_tokens=4, temperature=0, stream=True)
    chunks = list(stream)
    assert all(c.model == "bot-v2" for c in chunks)
    assert "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


def test_a_reference_is_a_model_name_without_declaring_an_alias(served: tuple[LiveServer, Any, Path]) -> None:
    srv, client, _copy = served
    resp, trace = _ask(client, "registry:/bot@2")
    assert resp.model == "registry:/bot@2" and _span_model(srv, trace) == "bot@2"
    with pytest.raises(openai.NotFoundError) as e:
        _ask(client, "registry:/bot@7")
    assert "no version 7" in str(e.value)


def test_unknown_alias_or_model_is_404_and_says_how_to_fix(served: tuple[LiveServer, Any, Path]) -> None:
    _srv, client, _copy = served
    with pytest.raises(openai.NotFoundError) as e:
        _ask(client, "bot-nope")
    assert "no alias 'nope'" in str(e.value) and "podium registry alias" in str(e.value)
    # declaring a local deployment of a version that does not exist is refused when it is saved
    with _srv.client() as c:
        for model, says in (("registry:/ghost@champion", "ghost"), ("registry:/bot@later", "later")):
            r = c.put("/api/v1/gateway/models/bad", json={"deployments": [{"provider": "local", "model": model}]})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert says in err["message"] and err["details"][0]["field"] == "deployments.0.model", err


def test_non_gguf_version_is_400_pointing_at_tune_package(served: tuple[LiveServer, Any, Path]) -> None:
    _srv, client, _copy = served
    with pytest.raises(openai.BadRequestError) as e:
        _ask(client, "bot-merged")
    assert "bot@3" in str(e.value) and "podium tune package" in str(e.value)
