"""Gateway secrets: a project admin cannot read the server's environment through a model
alias, and deployment headers are encrypted at rest and never returned.

Issue 10 item 1. A real server (SQLite and PostgreSQL), the official ``openai`` SDK, and a
real fake upstream that records what it was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from podium.config import Settings
from podium.server.app import create_app
from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hello"}]
Factory = Callable[..., LiveServer]


@pytest.fixture
def gateway(store: Any, project: ProjectKeys, podium_home: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    monkeypatch.setenv("UP_KEY", "sk-allowed-env-value")
    monkeypatch.setenv("PODIUM_DATABASE_URL", "postgresql://root:db-password@db.internal/podium")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-openai-key")
    started: list[ServerThread] = []

    def make(**settings: Any) -> LiveServer:
        th = ServerThread(create_app(Settings(gateway_cache="off", **settings), store=store)).start()
        started.append(th)
        return LiveServer(th.url, store, project, th.server.config.app, th)

    yield make
    for th in started:
        th.stop()


def _oai(srv: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.keys.secret_key, max_retries=0)


@pytest.mark.parametrize("name", ["PODIUM_DATABASE_URL", "PODIUM_ENCRYPTION_KEY", "OPENAI_API_KEY"])
def test_api_alias_may_not_read_the_servers_environment(gateway: Factory, upstream: FakeUpstream,
                                                        name: str) -> None:
    srv = gateway()
    with srv.client() as c:
        r = c.put("/api/v1/gateway/models/exfil", json={"deployments": [
            {"provider": "openai", "model": "m", "api_base": upstream.base_url},
            {"provider": "openai", "model": "m", "api_base": upstream.base_url, "api_key": f"env:{name}"}]})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert set(err) == {"code", "message", "details"} and err["code"] == "validation_error"
        assert err["details"][0]["field"] == "deployments.1.api_key"
        assert "PODIUM_GATEWAY_ENV_ALLOWLIST" in err["message"] and "config file" in err["message"]
        assert "exfil" not in {m["name"] for m in c.get("/api/v1/gateway/models").json()["data"]}
    assert srv.store.gateway.list_models(srv.keys.project_id) == []
    assert upstream.requests == []


def test_allow_listed_variable_is_accepted_and_used(gateway: Factory, upstream: FakeUpstream) -> None:
    srv = gateway(gateway_env_allowlist="UP_KEY, OTHER_KEY")
    with srv.client() as c:
        r = c.put("/api/v1/gateway/models/team", json={"deployments": [
            {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "env:UP_KEY"}]})
        assert r.status_code == 201, r.text
        assert r.json()["deployments"][0]["api_key"] == "env:UP_KEY"
        denied = c.put("/api/v1/gateway/models/team2", json={"deployments": [
            {"provider": "openai", "model": "fake-a", "api_key": "env:OPENAI_API_KEY"}]})
        assert denied.status_code == 400 and "OTHER_KEY, UP_KEY" in denied.json()["error"]["message"]
    _oai(srv).chat.completions.create(model="team", messages=MSG)
    assert upstream.requests[-1]["headers"]["authorization"] == "Bearer sk-allowed-env-value"


def test_the_allow_list_never_takes_podium_settings() -> None:
    with pytest.raises(ValidationError, match="PODIUM_ENCRYPTION_KEY"):
        Settings(gateway_env_allowlist="OPENAI_API_KEY,PODIUM_ENCRYPTION_KEY")
    assert Settings(gateway_env_allowlist=" A , B,").gateway_env_names == frozenset({"A", "B"})


def test_env_reference_stored_before_the_fix_is_not_resolved(gateway: Factory, upstream: FakeUpstream,
                                                             store: Any, project: ProjectKeys) -> None:
    # A row written by an older server (or straight into the database) must not leak either.
    store.gateway.put_model(project.project_id, "old", {"deployments": [
        {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url,
         "api_key": "env:PODIUM_DATABASE_URL"}]})
    srv = gateway()
    with pytest.raises(openai.NotFoundError):
        _oai(srv).chat.completions.create(model="old", messages=MSG)
    assert upstream.requests == []


def test_deployment_headers_are_encrypted_and_never_returned(gateway: Factory, upstream: FakeUpstream) -> None:
    srv = gateway()
    with srv.client() as c:
        r = c.put("/api/v1/gateway/models/hdr", json={"deployments": [
            {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "sk-literal-key",
             "headers": {"X-Org-Secret": "hdr-secret-value", "OpenAI-Organization": "org-123"}}]})
        assert r.status_code == 201, r.text
        dep = r.json()["deployments"][0]
        assert dep["headers"] == ["OpenAI-Organization", "X-Org-Secret"] and dep["api_key"] == "set"
        listed = c.get("/api/v1/gateway/models").text
        for text in (r.text, listed):
            assert "hdr-secret-value" not in text and "org-123" not in text and "sk-literal-key" not in text
    spec = srv.store.gateway.list_models(srv.keys.project_id)[0]["spec"]
    stored = spec["deployments"][0]
    assert all(v.startswith("enc:") for v in stored["headers"].values()) and stored["api_key"].startswith("enc:")
    assert "hdr-secret-value" not in json.dumps(spec) and "org-123" not in json.dumps(spec)
    _oai(srv).chat.completions.create(model="hdr", messages=MSG)
    sent = upstream.requests[-1]["headers"]
    assert sent["x-org-secret"] == "hdr-secret-value" and sent["openai-organization"] == "org-123"
    assert sent["authorization"] == "Bearer sk-literal-key"


def test_plain_headers_stored_earlier_still_work(gateway: Factory, upstream: FakeUpstream, store: Any,
                                                 project: ProjectKeys) -> None:
    store.gateway.put_model(project.project_id, "legacy", {"deployments": [
        {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url,
         "headers": {"X-Legacy": "plain-value"}}]})
    srv = gateway()
    _oai(srv).chat.completions.create(model="legacy", messages=MSG)
    assert upstream.requests[-1]["headers"]["x-legacy"] == "plain-value"
    with srv.client() as c:
        listed = c.get("/api/v1/gateway/models").text
    assert "plain-value" not in listed and "X-Legacy" in listed


def test_an_enc_prefixed_literal_is_encrypted_like_any_other(gateway: Factory, upstream: FakeUpstream) -> None:
    # A caller cannot make the server decrypt a token of its choosing: API values are always sealed.
    srv = gateway()
    with srv.client() as c:
        r = c.put("/api/v1/gateway/models/x", json={"deployments": [
            {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "enc:abc"}]})
        assert r.status_code == 201
    _oai(srv).chat.completions.create(model="x", messages=MSG)
    assert upstream.requests[-1]["headers"]["authorization"] == "Bearer enc:abc"
