"""The SDK's prompt client against a real server that is stopped and restarted mid-test:
TTL, stale-while-revalidate, versions cached for good, bypass, cold-start fallback, A/B."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import podium
from podium.config import Settings
from podium.errors import NotFound, ServiceUnavailable, ValidationFailed
from podium.sdk.prompts import PromptClient
from podium.server.app import create_app
from tests.conftest import ProjectKeys, ServerThread, free_port

pytestmark = pytest.mark.integration


class Restartable:
    """A real server on a fixed port that a test can stop and start again."""

    def __init__(self, store: Any, keys: ProjectKeys) -> None:
        self.store, self.keys = store, keys
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread: ServerThread | None = None

    def start(self) -> Restartable:
        self.thread = ServerThread(create_app(Settings(), store=self.store), port=self.port).start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    def client(self, **kw: Any) -> PromptClient:
        return PromptClient(base_url=self.url, public_key=self.keys.public_key, secret_key=self.keys.secret_key,
                            timeout=5, **kw)

    def create(self, name: str, prompt: Any, **kw: Any) -> dict[str, Any]:
        from podium.prompts import PromptRegistry

        return PromptRegistry(self.store.prompts).create_version(
            self.keys.project_id, {"name": name, "prompt": prompt, **kw}, role="admin", actor="test")

    def label(self, name: str, label: str, targets: Any) -> None:
        self.store.prompts.set_label(self.keys.project_id, name, label, targets)


@pytest.fixture
def srv(store: Any, project: ProjectKeys) -> Iterator[Restartable]:
    s = Restartable(store, project).start()
    yield s
    s.stop()


def wait_for(fn: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def test_ttl_then_stale_while_revalidate(srv: Restartable) -> None:
    srv.create("qa", "v1 {{q}}", labels=["production"])
    srv.create("qa", "v2 {{q}}")
    pc = srv.client()
    p = pc.get("qa", cache_ttl_seconds=0.5)
    assert (p.name, p.version, p.label, p.compile(q="x")) == ("qa", 1, "production", "v1 x")
    assert pc.fetches == 1
    srv.label("qa", "production", [{"version": 2}])
    assert pc.get("qa", cache_ttl_seconds=0.5).version == 1 and pc.fetches == 1  # fresh: no request
    time.sleep(0.6)
    stale, took = timed(lambda: pc.get("qa", cache_ttl_seconds=0.5))
    assert stale.version == 1 and took < 0.05  # stale value at once, refresh in the background
    wait_for(lambda: pc.get("qa", cache_ttl_seconds=0.5).version == 2)
    assert pc.fetches == 2
    # A version lookup is served from the label's fetch (versions never change).
    assert pc.get("qa", version=2).compile(q="y") == "v2 y" and pc.fetches == 2
    # cache_ttl_seconds=0 always asks the server.
    for _ in range(3):
        pc.get("qa", cache_ttl_seconds=0)
    assert pc.fetches == 5
    pc.close()


def test_server_stopped_mid_test(srv: Restartable, caplog: pytest.LogCaptureFixture) -> None:
    srv.create("qa", "v1 {{q}}", labels=["production"])
    pc = srv.client(retry_interval=0.3)
    assert pc.get("qa", cache_ttl_seconds=0.2).version == 1
    assert pc.get("qa", version=1, cache_ttl_seconds=0.2).version == 1
    fetches = pc.fetches
    srv.stop()
    time.sleep(0.3)
    caplog.set_level(logging.WARNING, logger="podium")
    # Stale label: served at once while the refresh fails in the background.
    p, took = timed(lambda: pc.get("qa", cache_ttl_seconds=0.2))
    assert p.version == 1 and not p.is_fallback and took < 0.05
    wait_for(lambda: "could not refresh prompt 'qa'" in caplog.text)
    # Versions are cached for good: no request at all.
    before = pc.fetches
    assert pc.get("qa", version=1, cache_ttl_seconds=0.2).compile(q="z") == "v1 z" and pc.fetches == before
    # Cold start while down: the fallback, reported; without one, a clear error.
    fb = pc.get("greeting", fallback="Hello {{name}}", cache_ttl_seconds=0.2, max_retries=1)
    assert fb.is_fallback and fb.version is None and fb.compile(name="Ada") == "Hello Ada"
    assert "ConnectError" in (fb.fallback_reason or "") and "using the fallback" in caplog.text
    chat_fb = pc.get("chatty", fallback=[{"role": "user", "content": "{{q}}"}], max_retries=0)
    assert chat_fb.type == "chat" and chat_fb.compile(q="hi") == [{"role": "user", "content": "hi"}]
    n = pc.fetches
    again, took = timed(lambda: pc.get("greeting", fallback="Hello {{name}}", cache_ttl_seconds=0.2))
    assert again.is_fallback and pc.fetches == n  # no new wait on the dead server for retry_interval
    with pytest.raises(ServiceUnavailable, match=r"cannot fetch prompt 'qa'.*fallback"):
        pc.get("qa", cache_ttl_seconds=0, max_retries=0)  # bypass: no cache to fall back on
    with pytest.raises(ServiceUnavailable):
        pc.get("unknown", max_retries=0)
    # The server comes back: the label refreshes, the fallback gives way to the real prompt.
    srv.create("greeting", "Hi {{name}}!", labels=["production"])
    srv.label("qa", "production", [{"version": 1}])
    srv.create("qa", "v2 {{q}}", labels=["production"])
    srv.start()
    wait_for(lambda: pc.get("qa", cache_ttl_seconds=0.2).version == 2)
    wait_for(lambda: not pc.get("greeting", fallback="Hello {{name}}", cache_ttl_seconds=0.2).is_fallback)
    assert pc.get("greeting").compile(name="Bo") == "Hi Bo!"
    assert pc.fetches > fetches
    pc.close()


def test_errors_from_the_server(srv: Restartable) -> None:
    srv.create("qa", "x", labels=["production"])
    pc = srv.client()
    with pytest.raises(NotFound, match=r"no label 'staging'.*latest, production"):
        pc.get("qa", label="staging")
    with pytest.raises(NotFound, match="no version 4"):
        pc.get("qa", version=4)
    with pytest.raises(ValueError, match="not both"):
        pc.get("qa", version=1, label="production")
    with pytest.raises(ValueError, match="already names"):
        pc.get("prompts:/qa/1", label="production")
    with pytest.raises(ValidationFailed, match="is a text prompt, not chat"):
        pc.get("qa", type="chat")
    # A 404 with a fallback: the fallback, with the server's reason.
    fb = pc.get("missing", fallback="hello")
    assert fb.is_fallback and "not_found" in (fb.fallback_reason or "")
    bad = PromptClient(base_url=srv.url, public_key=srv.keys.public_key, secret_key="sk-wrong")
    with pytest.raises(podium.errors.Unauthorized):
        bad.get("qa")
    keyless = PromptClient(base_url=srv.url, public_key=None, secret_key=None)
    with pytest.raises(podium.errors.ConfigurationError, match="PODIUM_SECRET_KEY"):
        keyless.get("qa")
    assert keyless.get("qa", fallback="local copy").is_fallback
    for c in (pc, bad, keyless):
        c.close()


def test_uris_ab_split_and_module_functions(srv: Restartable) -> None:
    podium.configure(base_url=srv.url, public_key=srv.keys.public_key, secret_key=srv.keys.secret_key,
                     enabled=False)  # prompts work with tracing off
    v1 = podium.create_prompt("team/qa", [{"role": "system", "content": "Be {{tone}}."},
                                          {"type": "placeholder", "name": "history"}],
                              config={"model": "local", "temperature": 0.3}, labels=["production"],
                              tags=["team"], commit_message="first")
    assert isinstance(v1, podium.Prompt) and (v1.version, v1.type, v1.placeholders) == (1, "chat", ["history"])
    podium.create_prompt("team/qa", [{"role": "system", "content": "Be very {{tone}}."}], labels=["staging"])
    with pytest.raises(ValidationFailed, match="line 1, column 4"):
        podium.create_prompt("broken", "Hi {{ x")
    assert podium.get_prompt("prompts:/team/qa@staging").version == 2
    assert podium.get_prompt("prompts:/team/qa/1").config == {"model": "local", "temperature": 0.3}
    assert podium.get_prompt("team/qa").version == 1  # production by default
    kwargs = podium.get_prompt("team/qa").openai_kwargs(tone="calm", history=[{"role": "user", "content": "hi"}])
    assert kwargs["model"] == "local" and len(kwargs["messages"]) == 2
    # A/B: 90/10, one fetch serves every user, the same user always gets the same version.
    pc = podium.get_client().prompts
    pc.set_label("team/qa", "production", versions={1: 90, 2: 10}, comment="canary")
    n = pc.fetches
    picks = {u: podium.get_prompt("team/qa", user_id=u).version for u in (f"u{i}" for i in range(300))}
    assert pc.fetches == n + 1
    assert set(picks.values()) == {1, 2} and 10 <= list(picks.values()).count(2) <= 60
    assert all(podium.get_prompt("team/qa", user_id=u).version == v for u, v in list(picks.items())[:50])
    with podium.propagate_attributes(user_id="u7"):
        assert podium.get_prompt("team/qa").version == picks["u7"]
    assert podium.get_prompt("team/qa", session_id="s1").version in (1, 2)
    # Rollback through the SDK.
    assert pc.rollback("team/qa", "production")["targets"] == [{"version": 1, "weight": 1.0}]
    assert podium.get_prompt("team/qa").version == 1  # the SDK dropped its cached label


def test_cached_lookup_is_fast(srv: Restartable, capsys: pytest.CaptureFixture[str]) -> None:
    srv.create("qa", "Answer {{q}}", labels=["production"])
    pc = srv.client()
    _, cold_s = timed(lambda: pc.get("qa"))
    samples = []
    for _ in range(5000):
        t0 = time.perf_counter_ns()
        pc.get("qa")
        samples.append(time.perf_counter_ns() - t0)
    median_us = statistics.median(samples) / 1000
    p99_us = sorted(samples)[int(len(samples) * 0.99)] / 1000
    uncached = [timed(lambda: pc.get("qa", cache_ttl_seconds=0))[1] for _ in range(20)]
    with capsys.disabled():
        print(f"\nget_prompt: cached median {median_us:.1f} µs, p99 {p99_us:.1f} µs; "
              f"uncached median {statistics.median(uncached) * 1000:.2f} ms; cold {cold_s * 1000:.1f} ms")
    assert median_us < 200
    pc.close()
