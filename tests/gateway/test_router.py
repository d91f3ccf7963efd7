"""The router alone, with scripted in-process providers and a fake clock: order, retries, cooldown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium.errors import UpstreamError, UpstreamTimeout
from podium.gateway.config import AliasSpec, DeploymentSpec, RouterSpec, resolve_alias
from podium.gateway.providers.base import Deployment
from podium.gateway.router import Routed, Router


class Scripted:
    """A provider whose deployments answer from a script: an exception to raise or a reply."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: dict[str, list[Any]] = {}
        self.calls: list[str] = []

    async def chat(self, dep: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(dep.model)
        queue = self.script.get(dep.model) or []
        step = queue.pop(0) if queue else {"ok": dep.model}
        if isinstance(step, BaseException):
            raise step
        return step

    async def chat_stream(self, dep: Deployment, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        out = await self.chat(dep, body)
        yield out
        yield {"done": True}


def alias(name: str, *models: str, weights: tuple[float, ...] = (), fallbacks: list[str] | None = None,
          retries: int | None = None) -> Any:
    deps = [DeploymentSpec(provider="openai", model=m, weight=(weights[i] if weights else 1.0), max_retries=retries)
            for i, m in enumerate(models)]
    return resolve_alias(AliasSpec(name=name, deployments=deps, fallbacks=fallbacks or []), RouterSpec(), "file")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def make(spec: RouterSpec, rng: float = 0.0) -> tuple[Router, Scripted, Clock]:
    p = Scripted()
    clock = Clock()
    r = Router({"openai": p}, spec, rng=lambda: rng, clock=clock, sleep=clock.sleep)  # type: ignore[dict-item]
    return r, p, clock


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_retries_with_backoff_then_next_deployment() -> None:
    r, p, clock = make(RouterSpec(retries=2, backoff=0.5, allowed_fails=100))
    a = alias("m", "a", "b")
    p.script["a"] = [UpstreamError("x", upstream_status=500)] * 3
    routed = Routed()
    assert run(r.call([a], "chat", {}, routed)) == {"ok": "b"}
    assert p.calls == ["a", "a", "a", "b"]
    assert clock.slept == [0.25, 0.5]  # base * 2**n * (0.5 + rng/2) with rng = 0
    assert routed.retries == 3 and routed.deployment is not None and routed.deployment.model == "b"


def test_retry_after_longer_than_max_backoff_moves_on_at_once() -> None:
    r, p, clock = make(RouterSpec(retries=3, max_backoff=2, allowed_fails=100))
    p.script["a"] = [UpstreamError("slow down", upstream_status=429, retry_after=30)]
    assert run(r.call([alias("m", "a", "b")], "chat", {}, Routed())) == {"ok": "b"}
    assert clock.slept == []
    p.script["a"] = [UpstreamError("slow down", upstream_status=429, retry_after=1.5)]
    assert run(r.call([alias("m", "a", "b")], "chat", {}, Routed())) == {"ok": "a"}
    assert clock.slept == [1.5]


def test_client_errors_are_not_retried_but_deployment_errors_move_on() -> None:
    r, p, _ = make(RouterSpec(retries=2, allowed_fails=100))
    p.script["a"] = [UpstreamError("bad request", upstream_status=400, retryable=False)]
    with pytest.raises(UpstreamError, match="bad request"):
        run(r.call([alias("m", "a", "b")], "chat", {}, Routed()))
    assert p.calls == ["a"]
    p.calls.clear()
    p.script["a"] = [UpstreamError("bad key", upstream_status=401, retryable=False)]
    assert run(r.call([alias("m", "a", "b")], "chat", {}, Routed())) == {"ok": "b"}
    assert p.calls == ["a", "b"]


def test_cooldown_skips_a_failing_deployment_then_recovers() -> None:
    r, p, clock = make(RouterSpec(retries=0, allowed_fails=2, cooldown=30))
    a = alias("m", "a", "b", retries=0)
    p.script["a"] = [UpstreamError("down", upstream_status=503)] * 2
    run(r.call([a], "chat", {}, Routed()))
    run(r.call([a], "chat", {}, Routed()))
    assert r.cooling(a.deployments[0])
    p.calls.clear()
    run(r.call([a], "chat", {}, Routed()))
    assert p.calls == ["b"]  # "a" rests
    clock.now += 31
    p.calls.clear()
    run(r.call([a], "chat", {}, Routed()))
    assert p.calls == ["a"] and not r.cooling(a.deployments[0])
    assert r.health() == {a.deployments[0].id: {"consecutive_failures": 0, "cooldown_left_s": 0.0}}


def test_everything_cooling_is_tried_anyway_and_exhaustion_names_the_attempts() -> None:
    r, p, _ = make(RouterSpec(retries=0, allowed_fails=1, cooldown=300))
    a, fb = alias("m", "a", retries=0), alias("fb", "z", retries=0)
    p.script["a"] = [UpstreamError("down", upstream_status=503)] * 5
    p.script["z"] = [UpstreamTimeout("slow", upstream_status=None)] * 5
    with pytest.raises(UpstreamTimeout) as ei:
        run(r.call([a, fb], "chat", {}, Routed()))
    assert "m -> fb" in ei.value.message and "down" in ei.value.message
    p.calls.clear()
    with pytest.raises(UpstreamError):
        run(r.call([a, fb], "chat", {}, Routed()))
    assert p.calls == ["a", "z"]  # all cooling: tried anyway, in order


def test_weighted_order() -> None:
    a = alias("m", "heavy", "light", weights=(9, 1))
    r_low, _, _ = make(RouterSpec(), rng=0.5)
    assert [d.model for d in r_low.order(a)] == ["heavy", "light"]
    r_high, _, _ = make(RouterSpec(), rng=0.95)
    assert [d.model for d in r_high.order(a)] == ["light", "heavy"]


def test_stream_fails_over_before_the_first_chunk() -> None:
    r, p, _ = make(RouterSpec(retries=0, allowed_fails=100))
    p.script["a"] = [UpstreamError("reset", upstream_status=502)]
    routed = Routed()

    async def go() -> list[Any]:
        first, rest = await r.stream([alias("m", "a", "b", retries=0)], "chat_stream", {}, routed)
        return [first] + [c async for c in rest]

    assert run(go()) == [{"ok": "b"}, {"done": True}]
    assert routed.deployment is not None and routed.deployment.model == "b"
