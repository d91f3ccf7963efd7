"""The gateway end to end: the official `openai` SDK -> Podium (real uvicorn) -> a real fake upstream.

Every test runs on SQLite and PostgreSQL (the `store` fixture). The upstream is a real HTTP
server speaking OpenAI's protocol, scripted per model (errors, delays, cut streams).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer, ProjectKeys, ServerThread, make_project
from tests.gateway.fake_upstream import Fail, FakeUpstream, Hang, Reply

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hello there, how are you doing today?"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def up(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


def _config(up: FakeUpstream, extra: str = "") -> str:
    return f"""
router:
  retries: 2
  backoff: 0.01
  cooldown: 30
  allowed_fails: 100
  timeout: 10
models:
  - name: fake
    deployments:
      - {{provider: openai, model: fake-a, api_base: "{up.base_url}", api_key: env:FAKE_KEY}}
  - name: primary
    deployments:
      - {{provider: openai, model: down-1, api_base: "{up.base_url}", max_retries: 1}}
    fallbacks: [backup]
  - name: backup
    deployments:
      - {{provider: openai, model: backup-1, api_base: "{up.base_url}"}}
  - name: split
    deployments:
      - {{provider: openai, model: split-a, api_base: "{up.base_url}", weight: 9}}
      - {{provider: openai, model: split-b, api_base: "{up.base_url}", weight: 1}}
  - name: quick
    deployments:
      - {{provider: openai, model: slow-1, api_base: "{up.base_url}", timeout: 0.3, max_retries: 0}}
  - name: fake-embed
    mode: embedding
    deployments:
      - {{provider: openai, model: embed-1, api_base: "{up.base_url}"}}
{extra}
"""


GatewayFactory = Callable[..., LiveServer]


@pytest.fixture
def gateway(store: Any, project: ProjectKeys, up: FakeUpstream, podium_home: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayFactory]:
    from podium.config import Settings
    from podium.server.app import create_app

    monkeypatch.setenv("FAKE_KEY", "sk-upstream-secret")
    started: list[ServerThread] = []

    def make(cache: str = "off", extra: str = "", **settings: Any) -> LiveServer:
        podium_home.mkdir(parents=True, exist_ok=True)
        cfg = podium_home / "gateway.yaml"
        cfg.write_text(_config(up, extra))
        s = Settings(gateway_config=cfg, gateway_cache=cache, **settings)
        app = create_app(s, store=store)
        th = ServerThread(app).start()
        started.append(th)
        return LiveServer(th.url, store, project, app, th)

    yield make
    for th in started:
        th.stop()


def oai(srv: LiveServer, keys: ProjectKeys | None = None, **kw: Any) -> openai.OpenAI:
    k = keys or srv.keys
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=k.secret_key, max_retries=0, **kw)


def wait_span(srv: LiveServer, trace_id: str, timeout: float = 10.0) -> dict[str, Any]:
    with srv.client() as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = c.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200 and r.json()["spans"]:
                return r.json()
            time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} was not stored within {timeout}s")


# --- the happy paths ------------------------------------------------------------------------------


def test_chat_completion_is_proxied_and_logged(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    client = oai(srv)
    raw = client.chat.completions.with_raw_response.create(
        model="fake", messages=MSG, temperature=0.2, user="alice",
        extra_headers={"x-podium-session-id": "sess-1", "x-podium-tags": "a,b"},
        extra_body={"podium": {"metadata": {"feature": "faq"}}},
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "Hello from the fake upstream"
    assert resp.usage is not None and resp.usage.prompt_tokens == 10
    sent = up.requests[-1]
    assert sent["body"]["model"] == "fake-a"  # the alias became the upstream's model name
    assert "podium" not in sent["body"]  # our extra field never goes upstream
    assert sent["headers"]["authorization"] == "Bearer sk-upstream-secret"  # env:FAKE_KEY
    trace_id = raw.headers["x-podium-trace-id"]
    tr = wait_span(srv, trace_id)
    span = tr["spans"][0]
    assert span["kind"] == "generation"
    assert span["model"] == "fake-a" and span["provider"] == "openai"
    assert span["input"] == MSG
    assert span["output"]["content"] == "Hello from the fake upstream"
    assert span["input_tokens"] == 10
    assert span["model_parameters"]["temperature"] == 0.2
    assert span["metadata"]["feature"] == "faq"
    gw = span["metadata"]["gateway"]
    assert gw["alias"] == "fake" and gw["cache_hit"] is False and gw["retries"] == 0
    assert gw["key"] == srv.keys.public_key
    assert tr["user_id"] == "alice" and tr["session_id"] == "sess-1"
    assert sorted(tr["tags"]) == ["a", "b"]


def test_stream_relays_chunks_and_records_ttft(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("fake-a", Reply("one two three four", chunk_delay=0.01))
    stream = oai(srv).chat.completions.create(model="fake", messages=MSG, stream=True,
                                              stream_options={"include_usage": True})
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == "one two three four"
    assert usage is not None and usage.completion_tokens == 4
    trace_id = stream.response.headers["x-podium-trace-id"]
    span = wait_span(srv, trace_id)["spans"][0]
    assert span["completion_start_time"] is not None
    assert span["output"]["content"] == "one two three four"
    assert span["metadata"]["gateway"]["stream"] is True


def test_completions_embeddings_and_models(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    c = oai(srv)
    comp = c.completions.create(model="fake", prompt="Say hi", max_tokens=5)
    assert comp.choices[0].text == "Hello from the fake upstream"
    emb = c.embeddings.create(model="fake-embed", input=["a", "b"])
    assert len(emb.data) == 2 and emb.data[0].embedding == [0.1, 0.2, 0.3]
    ids = {m.id for m in c.models.list()}
    assert {"local", "local-embed", "fake", "primary", "backup", "fake-embed"} <= ids
    assert c.models.retrieve("fake").id == "fake"


# --- bad input ---------------------------------------------------------------------------------------


def test_unknown_model_is_404_listing_aliases(gateway: GatewayFactory) -> None:
    srv = gateway()
    with pytest.raises(openai.NotFoundError) as ei:
        oai(srv).chat.completions.create(model="gpt-9", messages=MSG)
    err = ei.value.body
    assert err["code"] == "not_found" and err["param"] == "model"
    assert "gpt-9" in err["message"] and "local" in err["message"] and "fake" in err["message"]


def test_wrong_endpoint_for_model_mode(gateway: GatewayFactory) -> None:
    srv = gateway()
    with pytest.raises(openai.BadRequestError) as ei:
        oai(srv).embeddings.create(model="fake", input="x")
    assert "/v1/chat/completions" in ei.value.body["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake"}, "messages"),
        ({"messages": MSG}, "model"),
        ({"model": "fake", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": "fake", "messages": MSG, "temperature": 7}, "temperature"),
        ({"model": "fake", "messages": MSG, "max_tokens": -1}, "max_tokens"),
        ({"model": "fake", "messages": MSG, "podium": "x"}, "podium"),
    ],
)
def test_malformed_body_is_400_naming_the_field(gateway: GatewayFactory, body: dict[str, Any], param: str) -> None:
    srv = gateway()
    r = httpx.post(srv.url + "/v1/chat/completions", json=body,
                   headers={"authorization": f"Bearer {srv.keys.secret_key}"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param


def test_not_json_and_oversize(gateway: GatewayFactory) -> None:
    srv = gateway(max_request_bytes=2000)
    h = {"authorization": f"Bearer {srv.keys.secret_key}", "content-type": "application/json"}
    r = httpx.post(srv.url + "/v1/chat/completions", content=b"{nope", headers=h)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    big = {"model": "fake", "messages": [{"role": "user", "content": "x" * 5000}]}
    r = httpx.post(srv.url + "/v1/chat/completions", json=big, headers=h)
    assert r.status_code == 413 and "PODIUM_MAX_REQUEST_BYTES" in r.json()["error"]["message"]


def test_keys_missing_invalid_revoked_and_wrong_role(gateway: GatewayFactory, store: Any) -> None:
    srv = gateway()
    r = httpx.post(srv.url + "/v1/chat/completions", json={"model": "fake", "messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-nope", max_retries=0).chat.completions.create(
            model="fake", messages=MSG)
    other = make_project(store, "other")
    store.projects.revoke_key(other.project_id, other.public_key)
    with pytest.raises(openai.AuthenticationError):
        oai(srv, other).chat.completions.create(model="fake", messages=MSG)
    viewer = store.projects.create_key(srv.keys.project_id, role="viewer")
    with pytest.raises(openai.PermissionDeniedError) as ei:
        openai.OpenAI(base_url=srv.url + "/v1", api_key=viewer.secret_key, max_retries=0).chat.completions.create(
            model="fake", messages=MSG)
    assert "gateway" in ei.value.body["message"]


# --- upstream faults -----------------------------------------------------------------------------------


def test_retries_then_succeeds(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("fake-a", Fail(500, "boom"), Fail(429, "slow down", retry_after=0.01))
    raw = oai(srv).chat.completions.with_raw_response.create(model="fake", messages=MSG)
    assert raw.parse().choices[0].message.content
    assert len(up.bodies("fake-a")) == 3
    gw = wait_span(srv, raw.headers["x-podium-trace-id"])["spans"][0]["metadata"]["gateway"]
    assert gw["retries"] == 2
    assert [a["status"] for a in gw["attempts"]] == [500, 429, 200]


def test_falls_back_to_the_next_alias(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("down-1", Fail(503, "maintenance"), Fail(503, "maintenance"))
    raw = oai(srv).chat.completions.with_raw_response.create(model="primary", messages=MSG)
    assert raw.headers["x-podium-deployment"].startswith("backup#0")
    assert len(up.bodies("down-1")) == 2 and len(up.bodies("backup-1")) == 1
    span = wait_span(srv, raw.headers["x-podium-trace-id"])["spans"][0]
    assert span["metadata"]["gateway"]["fallback"] is True and span["model"] == "backup-1"


def test_everything_fails_is_502_with_the_reason(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("down-1", *[Fail(500, "disk on fire")] * 2)
    up.script("backup-1", *[Fail(502, "bad gateway upstream")] * 3)
    with pytest.raises(openai.InternalServerError) as ei:
        oai(srv).chat.completions.create(model="primary", messages=MSG)
    assert ei.value.status_code == 502
    msg = ei.value.body["message"]
    assert "primary -> backup" in msg and "bad gateway upstream" in msg


def test_upstream_4xx_passes_through_without_retry(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("fake-a", Fail(400, "context length exceeded", type="invalid_request_error"))
    with pytest.raises(openai.BadRequestError) as ei:
        oai(srv).chat.completions.create(model="fake", messages=MSG)
    assert "context length exceeded" in ei.value.body["message"]
    assert len(up.bodies("fake-a")) == 1


def test_timeout_is_504(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("slow-1", Reply("late", delay=3))
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as ei:
        oai(srv).chat.completions.create(model="quick", messages=MSG)
    assert ei.value.status_code == 504
    assert time.monotonic() - t0 < 2.5


def test_weighted_split_follows_weights(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    c = oai(srv)
    for _ in range(60):
        c.chat.completions.create(model="split", messages=MSG)
    a, b = len(up.bodies("split-a")), len(up.bodies("split-b"))
    assert a + b == 60 and a > 40 and b >= 1  # 9:1 (P[b == 0] = 0.9^60 < 0.2%)


def test_stream_failing_before_first_byte_fails_over(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("down-1", Fail(500, "x"), Fail(500, "x"))
    up.script("backup-1", Reply("saved by the backup"))
    stream = oai(srv).chat.completions.create(model="primary", messages=MSG, stream=True)
    text = "".join((ch.choices[0].delta.content or "") for ch in stream if ch.choices)
    assert text == "saved by the backup"


def test_stream_cut_midway_is_an_error_not_a_truncated_success(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("fake-a", Reply("a b c d e f", cut_after=2))
    stream = oai(srv).chat.completions.create(model="fake", messages=MSG, stream=True)
    got = []
    with pytest.raises(openai.APIError) as ei:
        for ch in stream:
            if ch.choices:
                got.append(ch.choices[0].delta.content)
    assert got == ["a", " b"]
    assert "stream" in str(ei.value.message).lower()
    span = wait_span(srv, stream.response.headers["x-podium-trace-id"])["spans"][0]
    assert span["status"] == "error"


def test_client_disconnect_cancels_the_upstream_call(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("fake-a", Hang())
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(srv.url + "/v1/chat/completions", json={"model": "fake", "messages": MSG},
                   headers={"authorization": f"Bearer {srv.keys.secret_key}"}, timeout=0.5)
    deadline = time.monotonic() + 5
    while up.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert up.disconnects == 1  # the gateway closed its upstream request when the client left


def test_client_disconnect_mid_stream_closes_upstream(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    up.script("fake-a", Reply(" ".join(["w"] * 200), chunk_delay=0.05))
    with httpx.stream("POST", srv.url + "/v1/chat/completions",
                      json={"model": "fake", "messages": MSG, "stream": True},
                      headers={"authorization": f"Bearer {srv.keys.secret_key}"}) as r:
        for i, _line in enumerate(r.iter_lines()):
            if i > 3:
                break
    deadline = time.monotonic() + 5
    while up.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert up.disconnects == 1


# --- limits, budgets, cache ----------------------------------------------------------------------------------


def test_key_rpm_limit_is_429_with_retry_after(gateway: GatewayFactory, store: Any) -> None:
    srv = gateway()
    k = store.projects.create_key(srv.keys.project_id, role="gateway", note="ci-bot", limits={"rpm": 2})
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key=k.secret_key, max_retries=0)
    c.chat.completions.create(model="fake", messages=MSG)
    c.chat.completions.create(model="fake", messages=MSG)
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model="fake", messages=MSG)
    assert "ci-bot" in ei.value.body["message"]
    assert int(ei.value.response.headers["retry-after"]) >= 1


def test_budget_holds_under_64_concurrent_requests(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    with srv.client() as c:
        # $1 per 1k tokens in and out: a call costs 10 + 1 tokens = $0.011 (estimate ~ $0.02-0.03)
        assert c.put("/api/v1/prices/fake-a", json={"input_per_million": 1000, "output_per_million": 1000}
                     ).status_code == 200
        assert c.put("/api/v1/gateway/limits", json={"budget_total": 0.2}).status_code == 200
    up.script("fake-a", *[Reply("ok", delay=0.05)] * 64)

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=srv.url, timeout=30,
                                     headers={"authorization": f"Bearer {srv.keys.secret_key}"}) as ac:
            rs = await asyncio.gather(*[
                ac.post("/v1/chat/completions", json={"model": "fake", "messages": MSG, "max_tokens": 5})
                for _ in range(64)
            ])
        return [r.status_code for r in rs]

    codes = asyncio.run(run())
    ok = codes.count(200)
    assert set(codes) <= {200, 429} and 0 < ok < 64
    with srv.client() as c:
        usage = c.get("/api/v1/gateway/spend").json()["project"]["usage"]
    spent = usage["spend"]["total"]["usd"]
    assert spent == pytest.approx(ok * 0.011, rel=1e-6)
    assert spent <= 0.2 + 0.03  # at most one request's estimate over


def test_cache_hit_skips_upstream_and_costs_nothing(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway(cache="memory")
    c = oai(srv)
    first = c.chat.completions.with_raw_response.create(model="fake", messages=MSG, seed=1)
    second = c.chat.completions.with_raw_response.create(model="fake", messages=MSG, seed=1)
    assert first.headers["x-podium-cache"] == "miss" and second.headers["x-podium-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(up.bodies("fake-a")) == 1
    span = wait_span(srv, second.headers["x-podium-trace-id"])["spans"][0]
    assert span["metadata"]["gateway"]["cache_hit"] is True
    assert float(span["cost_total"] or 0) == 0
    # opt-outs: the header and the body field
    third = c.chat.completions.with_raw_response.create(model="fake", messages=MSG, seed=1,
                                                        extra_headers={"cache-control": "no-cache"})
    assert third.headers["x-podium-cache"] == "miss"
    c.chat.completions.create(model="fake", messages=MSG, seed=1, extra_body={"podium": {"cache": False}})
    assert len(up.bodies("fake-a")) == 3
    # a stream request is answered from the cache too, as chunks
    stream = c.chat.completions.create(model="fake", messages=MSG, seed=1, stream=True)
    assert "".join((ch.choices[0].delta.content or "") for ch in stream if ch.choices) == "Hello from the fake upstream"
    assert len(up.bodies("fake-a")) == 3


def test_traceparent_nests_the_call_in_the_callers_trace(gateway: GatewayFactory) -> None:
    srv = gateway()
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    raw = oai(srv).chat.completions.with_raw_response.create(
        model="fake", messages=MSG, extra_headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert raw.headers["x-podium-trace-id"] == trace_id
    span = wait_span(srv, trace_id)["spans"][0]
    assert span["parent_id"] == parent


def test_metrics_are_exposed(gateway: GatewayFactory, up: FakeUpstream) -> None:
    srv = gateway()
    oai(srv).chat.completions.create(model="fake", messages=MSG)
    up.script("fake-a", Fail(400, "nope"))
    with pytest.raises(openai.BadRequestError):
        oai(srv).chat.completions.create(model="fake", messages=MSG)
    text = httpx.get(srv.url + "/metrics").text
    assert 'podium_gateway_requests_total{deployment="fake#0:openai/fake-a",model="fake",status="ok"}' in text
    assert 'status="ok"' in text and 'status="400"' in text
    assert "podium_gateway_request_duration_seconds_bucket" in text
    assert 'podium_gateway_tokens_total{kind="input",model="fake"} 10.0' in text


# --- managing aliases and keys through the API ----------------------------------------------------------------


def test_api_declared_alias_with_encrypted_secret(gateway: GatewayFactory, up: FakeUpstream, store: Any) -> None:
    srv = gateway()
    with srv.client() as c:
        r = c.put("/api/v1/gateway/models/team/gpt", json={
            "deployments": [{"provider": "openai", "model": "team-model", "api_base": up.base_url,
                             "api_key": "sk-very-secret"}],
            "fallbacks": ["fake"]})
        assert r.status_code == 201, r.text
        assert "sk-very-secret" not in r.text and r.json()["deployments"][0]["api_key"] == "set"
        listed = c.get("/api/v1/gateway/models").text
        assert "sk-very-secret" not in listed
        bad = c.put("/api/v1/gateway/models/x", json={"deployments": [{"provider": "azure", "model": "m"}]})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"].startswith("deployments")
    row = store.gateway.list_models(srv.keys.project_id)[0]
    assert row["spec"]["deployments"][0]["api_key"].startswith("enc:")
    assert "sk-very-secret" not in json.dumps(row["spec"])
    oai(srv).chat.completions.create(model="team/gpt", messages=MSG)
    assert up.requests[-1]["headers"]["authorization"] == "Bearer sk-very-secret"


def test_key_model_allow_list(gateway: GatewayFactory, store: Any) -> None:
    srv = gateway()
    k = store.projects.create_key(srv.keys.project_id, role="gateway")
    with srv.client() as c:
        r = c.put(f"/api/v1/gateway/keys/{k.key.public_key}", json={"models": ["fake"], "limits": {"rpm": 100}})
        assert r.status_code == 200 and r.json()["models"] == ["fake"]
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=k.secret_key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["fake"]
    client.chat.completions.create(model="fake", messages=MSG)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="backup", messages=MSG)


def test_limits_and_cache_shared_through_redis(gateway: GatewayFactory, up: FakeUpstream, store: Any) -> None:
    # Two gateway processes' worth of apps sharing one Redis: the limit and the cache are shared.
    a = gateway(cache="redis", redis_url="redis://127.0.0.1:6379/0")
    b = gateway(cache="redis", redis_url="redis://127.0.0.1:6379/0")
    k = store.projects.create_key(a.keys.project_id, role="gateway", note="shared", limits={"rpm": 3})
    ca = openai.OpenAI(base_url=a.url + "/v1", api_key=k.secret_key, max_retries=0)
    cb = openai.OpenAI(base_url=b.url + "/v1", api_key=k.secret_key, max_retries=0)
    msgs = [{"role": "user", "content": f"redis test {k.key.id}"}]  # unique: the Redis cache outlives the test
    first = ca.chat.completions.with_raw_response.create(model="fake", messages=msgs)
    second = cb.chat.completions.with_raw_response.create(model="fake", messages=msgs)
    assert first.headers["x-podium-cache"] == "miss" and second.headers["x-podium-cache"] == "hit"
    assert len(up.bodies("fake-a")) == 1
    ca.chat.completions.create(model="fake", messages=msgs, extra_headers={"cache-control": "no-cache"})
    with pytest.raises(openai.RateLimitError) as ei:
        cb.chat.completions.create(model="fake", messages=msgs)
    assert "shared" in ei.value.body["message"] and "3 requests/min" in ei.value.body["message"]


def test_call_links_to_a_prompt_version(gateway: GatewayFactory) -> None:
    srv = gateway()
    c = oai(srv)
    raw = c.chat.completions.with_raw_response.create(model="fake", messages=MSG,
                                                      extra_headers={"x-podium-prompt": "support/qa@3"})
    span = wait_span(srv, raw.headers["x-podium-trace-id"])["spans"][0]
    assert span["prompt_name"] == "support/qa" and span["prompt_version"] == 3
    raw = c.chat.completions.with_raw_response.create(
        model="fake", messages=MSG, extra_body={"podium": {"prompt": {"name": "qa", "version": 1}}})
    span = wait_span(srv, raw.headers["x-podium-trace-id"])["spans"][0]
    assert (span["prompt_name"], span["prompt_version"]) == ("qa", 1)
    with pytest.raises(openai.BadRequestError) as ei:
        c.chat.completions.create(model="fake", messages=MSG, extra_body={"podium": {"prompt": {"name": "qa"}}})
    assert ei.value.body["param"] == "podium.prompt"
