"""Gateway response cache: keys, bypass, the in-process LRU and Redis (PODIUM_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from podium.errors import ConfigurationError, ValidationFailed
from podium.gateway.cache import (
    IGNORED_FIELDS,
    MemoryCache,
    RedisCache,
    ResponseCache,
    cache_bypass,
    cache_key,
    cache_ttl,
    make_cache,
)

REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHAT = "/v1/chat/completions"
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "temperature": 0.2,
    "max_tokens": 20,
}
ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": {
    "role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}], "usage": {"total_tokens": 9}}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- keys ------------------------------------------------------------------------------------


def test_key_shape_and_determinism() -> None:
    k = cache_key(CHAT, BODY, namespace="proj-1")
    ns, _, digest = k.partition(":")
    assert ns == "proj-1" and len(digest) == 64 and int(digest, 16) >= 0
    assert cache_key(CHAT, dict(reversed(list(BODY.items()))), namespace="proj-1") == k  # key order


@pytest.mark.parametrize("field,value", [
    ("stream", True), ("stream_options", {"include_usage": True}), ("user", "u-42"),
    ("metadata", {"trace": "abc"}), ("store", True), ("podium", {"cache": True, "tags": ["x"]}),
])
def test_ignored_fields_do_not_change_the_key(field: str, value: Any) -> None:
    assert field in IGNORED_FIELDS
    assert cache_key(CHAT, {**BODY, field: value}, namespace="p") == cache_key(CHAT, BODY, namespace="p")


@pytest.mark.parametrize("change", [
    {"model": "gpt-4o"}, {"temperature": 0.3}, {"max_tokens": 21}, {"n": 2}, {"seed": 7},
    {"messages": [{"role": "user", "content": "Hi"}]}, {"tools": [{"type": "function"}]},
    {"response_format": {"type": "json_object"}}, {"top_p": 0.5},
])
def test_other_fields_change_the_key(change: dict[str, Any]) -> None:
    assert cache_key(CHAT, {**BODY, **change}, namespace="p") != cache_key(CHAT, BODY, namespace="p")


def test_namespace_and_endpoint_separate_entries() -> None:
    base = cache_key(CHAT, BODY, namespace="p1")
    assert cache_key(CHAT, BODY, namespace="p2") != base
    assert cache_key("/v1/completions", BODY, namespace="p1") != base


def test_integral_floats_match_ints_at_top_level() -> None:
    a = cache_key(CHAT, {**BODY, "temperature": 1}, namespace="p")
    assert cache_key(CHAT, {**BODY, "temperature": 1.0}, namespace="p") == a
    assert cache_key(CHAT, {**BODY, "temperature": 1.5}, namespace="p") != a


# --- bypass ----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers,expected", [
    ({}, (False, False)),
    ({"cache-control": "no-cache"}, (True, False)),
    ({"Cache-Control": "no-cache"}, (True, False)),
    ({"CACHE-CONTROL": "No-Store"}, (True, True)),
    ({"cache-control": "max-age=0"}, (True, False)),
    ({"cache-control": "private, no-cache , no-store"}, (True, True)),
    ({"cache-control": "max-age=60"}, (False, False)),
    (httpx.Headers({"Cache-Control": "no-store"}), (True, True)),
])
def test_bypass_headers(headers: Any, expected: tuple[bool, bool]) -> None:
    assert cache_bypass(headers, BODY) == expected


def test_bypass_body() -> None:
    assert cache_bypass({}, {**BODY, "podium": {"cache": False}}) == (True, True)
    assert cache_bypass({}, {**BODY, "podium": {"cache": True}}) == (False, False)
    assert cache_bypass({}, {**BODY, "podium": {"cache": {"ttl": 60}}}) == (False, False)
    assert cache_bypass({}, {**BODY, "podium": {"tags": ["a"]}}) == (False, False)
    assert cache_bypass({"cache-control": "no-cache"}, {**BODY, "podium": {"cache": False}}) == (True, True)
    with pytest.raises(ValidationFailed, match=r'"podium\.cache" must be true, false or'):
        cache_bypass({}, {**BODY, "podium": {"cache": "yes"}})
    with pytest.raises(ValidationFailed, match='"podium" must be an object'):
        cache_bypass({}, {**BODY, "podium": 1})


def test_cache_ttl() -> None:
    assert cache_ttl({}, BODY) is None
    assert cache_ttl({}, {**BODY, "podium": {"cache": {"ttl": 60}}}) == 60.0
    assert cache_ttl({"X-Podium-Cache-TTL": "2.5"}, BODY) == 2.5
    assert cache_ttl({"x-podium-cache-ttl": "30"}, {**BODY, "podium": {"cache": {"ttl": 5}}}) == 5.0
    for bad in (0, -1, "soon", True, float("nan")):
        with pytest.raises(ValidationFailed, match=r"podium\.cache\.ttl must be a number of seconds > 0"):
            cache_ttl({}, {**BODY, "podium": {"cache": {"ttl": bad}}})
    with pytest.raises(ValidationFailed, match="X-Podium-Cache-TTL"):
        cache_ttl({"x-podium-cache-ttl": "x"}, BODY)


# --- memory ------------------------------------------------------------------------------------


async def test_memory_roundtrip_and_isolation() -> None:
    c = MemoryCache(10)
    assert isinstance(c, ResponseCache)
    assert await c.get("k") is None
    await c.set("k", ANSWER, 60)
    got = await c.get("k")
    assert got == ANSWER
    got["choices"][0]["message"]["content"] = "changed by the caller"  # type: ignore[index]
    assert await c.get("k") == ANSWER
    assert (c.stats.hits, c.stats.misses, c.stats.sets) == (2, 1, 1)


async def test_memory_lru_eviction() -> None:
    c = MemoryCache(2)
    await c.set("a", {"v": 1}, 60)
    await c.set("b", {"v": 2}, 60)
    assert await c.get("a") == {"v": 1}  # a is now the most recently used
    await c.set("c", {"v": 3}, 60)
    assert await c.get("b") is None
    assert await c.get("a") == {"v": 1} and await c.get("c") == {"v": 3}
    await c.set("a", {"v": 11}, 60)  # overwrite refreshes, no eviction
    assert len(c) == 2 and c.stats.evictions == 1
    assert await c.get("a") == {"v": 11}


async def test_memory_ttl_expiry() -> None:
    clock = Clock()
    c = MemoryCache(10, clock=clock)
    await c.set("short", {"v": 1}, 5)
    await c.set("long", {"v": 2}, 50)
    await c.set("never", {"v": 3}, 0)  # ttl <= 0: not stored
    clock.t += 4.9
    assert await c.get("short") == {"v": 1}
    clock.t += 0.2
    assert await c.get("short") is None
    assert await c.get("long") == {"v": 2}
    assert await c.get("never") is None
    assert len(c) == 1


def test_make_cache() -> None:
    assert make_cache("off", redis_url=None, max_entries=10) is None
    assert isinstance(make_cache("memory", redis_url=None, max_entries=10), MemoryCache)
    assert isinstance(make_cache(" Memory ", redis_url="redis://x", max_entries=10), MemoryCache)
    with pytest.raises(ConfigurationError, match="PODIUM_GATEWAY_CACHE=redis needs PODIUM_REDIS_URL"):
        make_cache("redis", redis_url=None, max_entries=10)
    with pytest.raises(ConfigurationError, match="use memory, redis or off"):
        make_cache("disk", redis_url=None, max_entries=10)
    with pytest.raises(ConfigurationError, match="PODIUM_GATEWAY_CACHE=off"):
        MemoryCache(0)
    rc = make_cache("redis", redis_url=REDIS_URL, max_entries=10)
    assert isinstance(rc, RedisCache)
    asyncio.run(rc.aclose())


# --- redis -------------------------------------------------------------------------------------


@pytest.fixture
async def redis_cache() -> AsyncIterator[RedisCache]:
    prefix = f"podium-test:{uuid.uuid4().hex}:cache:"
    c = RedisCache(REDIS_URL, prefix=prefix)
    yield c
    await c.aclose()
    r = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match=prefix + "*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def test_redis_roundtrip_and_ttl(redis_cache: RedisCache) -> None:
    c = redis_cache
    k = cache_key(CHAT, BODY, namespace="p1")
    assert await c.get(k) is None
    await c.set(k, ANSWER, 60)
    assert await c.get(k) == ANSWER
    r = aioredis.Redis.from_url(REDIS_URL)
    ttl_ms = await r.pttl(c.prefix + k)
    await r.aclose()
    assert 59_000 < ttl_ms <= 60_000
    await c.set("short", {"v": 1}, 0.15)
    assert await c.get("short") == {"v": 1}
    await asyncio.sleep(0.3)
    assert await c.get("short") is None
    assert (c.stats.hits, c.stats.misses, c.stats.sets, c.stats.errors) == (2, 2, 2, 0)


async def test_redis_down_is_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = RedisCache(f"redis://127.0.0.1:{port}/0", timeout=0.5, retry_interval=1.0)
    with caplog.at_level(logging.WARNING, logger="podium.gateway.cache"):
        assert await c.get("k") is None
        await c.set("k", ANSWER, 60)
        assert await c.get("k") is None
    assert c.stats.errors == 1  # then it stops trying for retry_interval
    assert c.stats.misses == 2 and c.stats.sets == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"redis://127.0.0.1:{port}/0" in warnings[0].getMessage()
    await asyncio.sleep(1.1)  # after the interval it tries again, and still does not raise
    assert await c.get("k") is None
    assert c.stats.errors == 2
    await c.aclose()
