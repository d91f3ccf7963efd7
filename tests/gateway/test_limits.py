"""Rate limits and budgets, in-process and through a real Redis (PODIUM_TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.errors import ServiceUnavailable, TooManyRequests, ValidationFailed
from podium.gateway.limits import (
    NEVER_RETRY_AFTER,
    Limiter,
    Limits,
    MemoryLimiter,
    RedisLimiter,
    Scope,
    make_limiter,
)

REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC
# 2025-01-15 12:00:00 UTC: a window boundary (multiple of 60 s), mid-month
T0 = dt.datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Backend:
    """A limiter plus a way to move its clock (fake clock in memory, TIME offset in Redis)."""

    def __init__(self, kind: str, lim: Any, clock: Clock | None = None) -> None:
        self.kind = kind
        self.lim = lim
        self.clock = clock

    def advance(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.t += seconds
        else:
            self.lim.clock_offset += seconds

    def now(self) -> float:
        return self.clock.t if self.clock is not None else time.time() + self.lim.clock_offset


async def drop_prefix(prefix: str) -> None:
    r = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await r.delete(*keys)
    await r.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    r = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await r.ping()
    except Exception as exc:  # pragma: no cover - environment problem, say how to fix it
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it or set PODIUM_TEST_REDIS_URL")
    finally:
        await r.aclose()
    prefix = f"podium-test:{uuid.uuid4().hex}:"
    yield prefix
    await drop_prefix(prefix)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = Clock()
        yield Backend("memory", MemoryLimiter(clock=clock), clock)
        return
    prefix = f"podium-test:{uuid.uuid4().hex}:"
    lim = RedisLimiter(REDIS_URL, prefix=prefix)
    try:
        await lim.usage("key", "ping")
    except Exception as exc:  # pragma: no cover
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it or set PODIUM_TEST_REDIS_URL")
    yield Backend("redis", lim)
    await lim.aclose()
    await drop_prefix(prefix)


def key(**limits: Any) -> Scope:
    return Scope("key", "k1", "ci-bot", Limits(**limits))


def project(**limits: Any) -> Scope:
    return Scope("project", "p1", "acme", Limits(**limits))


async def deny(lim: Limiter, scopes: list[Scope], *, est_tokens: int = 0, est_cost: float = 0.0) -> TooManyRequests:
    with pytest.raises(TooManyRequests) as ei:
        await lim.acquire(scopes, est_tokens=est_tokens, est_cost=est_cost)
    return ei.value


# --- Limits ---------------------------------------------------------------------------------


def test_limits_from_dict_round_trip() -> None:
    d = {"rpm": 60, "tpm": 10_000.0, "max_parallel": 4, "budget_daily": 5, "budget_monthly": 100.5,
         "budget_total": None}
    lim = Limits.from_dict(d)
    assert lim == Limits(rpm=60, tpm=10_000, max_parallel=4, budget_daily=5.0, budget_monthly=100.5)
    assert isinstance(lim.tpm, int) and isinstance(lim.budget_daily, float)
    assert lim.to_dict() == {"rpm": 60, "tpm": 10_000, "max_parallel": 4, "budget_daily": 5.0,
                             "budget_monthly": 100.5}
    assert not lim.empty
    assert Limits.from_dict(None).empty and Limits.from_dict({}).empty
    assert Limits().to_dict() == {}
    assert Limits.from_dict({"rpm": 0}).rpm == 0


def test_limits_from_dict_rejects_unknown_and_bad_values() -> None:
    with pytest.raises(ValidationFailed) as ei:
        Limits.from_dict({"rpm": 1, "rps": 5, "budget": 3})
    assert "'budget', 'rps'" in ei.value.message and "Allowed: rpm" in ei.value.message
    assert {d["field"] for d in ei.value.details} == {"rps", "budget"}
    for bad in ({"rpm": -1}, {"rpm": 1.5}, {"rpm": True}, {"budget_daily": "5"}, {"tpm": float("inf")},
                {"budget_total": -0.01}):
        with pytest.raises(ValidationFailed) as ei:
            Limits.from_dict(bad)
        (name,) = bad
        assert name in ei.value.message and ei.value.details[0]["field"] == name
    with pytest.raises(ValidationFailed):
        Limits.from_dict([1, 2])  # type: ignore[arg-type]


def test_make_limiter() -> None:
    assert isinstance(make_limiter(None), MemoryLimiter)
    lim = make_limiter(REDIS_URL, prefix="x:")
    assert isinstance(lim, RedisLimiter) and isinstance(lim, Limiter)
    asyncio.run(lim.aclose())


# --- each limit on both backends -----------------------------------------------------------------


async def test_rpm(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(rpm=3)]
    for _ in range(3):
        t = await lim.acquire(scopes, est_tokens=0, est_cost=0)
        await lim.release(t, tokens=0, cost=0)
    err = await deny(lim, scopes)
    assert err.message.startswith("key 'ci-bot' is over its limit of 3 requests/min; retry after ")
    assert 1 <= err.retry_after <= 120
    assert err.message.endswith(f"retry after {err.retry_after:g} s")
    assert err.details[0]["limit"] == "rpm" and err.details[0]["retryable"] is True
    assert (await lim.usage("key", "k1"))["rpm"] == pytest.approx(3, abs=0.1)
    backend.advance(120)  # two windows later nothing is remembered
    t = await lim.acquire(scopes, est_tokens=0, est_cost=0)
    await lim.release(t, tokens=0, cost=0)


async def test_rpm_message_matches_the_issue(backend: Backend) -> None:
    scopes = [key(rpm=60)]
    for _ in range(60):
        await backend.lim.acquire(scopes, est_tokens=0, est_cost=0)
    err = await deny(backend.lim, scopes)
    assert err.message.startswith("key 'ci-bot' is over its limit of 60 requests/min; retry after ")
    assert err.status_code == 429


async def test_rpm_sliding_window_interpolates() -> None:
    clock = Clock(T0)  # at a window boundary
    lim = MemoryLimiter(clock=clock)
    scopes = [key(rpm=10)]
    for _ in range(10):
        await lim.acquire(scopes, est_tokens=0, est_cost=0)
    clock.t += 30
    assert (await deny(lim, scopes)).retry_after == 36  # rolls to the next window, then 10% has to fade
    clock.t += 30  # next window starts: the previous 10 still count in full
    err = await deny(lim, scopes)
    assert err.retry_after == 6 and "retry after 6 s" in err.message
    clock.t += 6  # 10 % of the previous window has slid out: room for exactly one
    await lim.acquire(scopes, est_tokens=0, est_cost=0)
    await deny(lim, scopes)
    clock.t += 54  # 100 % slid out; 1 request in the previous window now
    assert (await lim.usage("key", "k1"))["rpm"] == pytest.approx(1.0)
    for _ in range(9):
        await lim.acquire(scopes, est_tokens=0, est_cost=0)
    await deny(lim, scopes)


async def test_rpm_zero_never_passes(backend: Backend) -> None:
    err = await deny(backend.lim, [key(rpm=0)])
    assert "allows 0 requests/min" in err.message
    assert err.retry_after == NEVER_RETRY_AFTER and err.details[0]["retryable"] is False


async def test_tpm_reserves_then_settles(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(tpm=100)]
    t1 = await lim.acquire(scopes, est_tokens=60, est_cost=0)
    err = await deny(lim, scopes, est_tokens=60)
    assert err.message.startswith("key 'ci-bot' is over its limit of 100 tokens/min (~60 used, this request "
                                  "needs ~60); retry after ")
    await lim.release(t1, tokens=10, cost=0)  # actual usage replaces the estimate
    u = await lim.usage("key", "k1")
    assert 9 <= u["tpm"] <= 10
    t2 = await lim.acquire(scopes, est_tokens=60, est_cost=0)
    await lim.release(t2, tokens=95, cost=0)  # more than estimated: counts in full
    assert (await lim.usage("key", "k1"))["tpm"] > 100 - 1
    err = await deny(lim, scopes, est_tokens=0)  # over the limit: even a zero estimate waits
    assert "tokens/min" in err.message
    backend.advance(120)
    assert (await lim.usage("key", "k1"))["tpm"] == 0
    await lim.acquire(scopes, est_tokens=100, est_cost=0)


async def test_tpm_estimate_larger_than_limit_is_refused_clearly(backend: Backend) -> None:
    err = await deny(backend.lim, [key(tpm=100)], est_tokens=150)
    assert err.message == ("key 'ci-bot' allows 100 tokens/min but this request needs ~150 tokens; "
                           "lower max_tokens or shorten the input, or raise the limit")
    assert err.details[0]["retryable"] is False and err.retry_after == NEVER_RETRY_AFTER


async def test_tpm_settles_into_the_previous_window() -> None:
    clock = Clock(T0)
    lim = MemoryLimiter(clock=clock)
    t = await lim.acquire([key(tpm=1000)], est_tokens=500, est_cost=0)
    clock.t += 60  # the reservation is in the previous window now
    assert (await lim.usage("key", "k1"))["tpm"] == 500
    await lim.release(t, tokens=100, cost=0)
    assert (await lim.usage("key", "k1"))["tpm"] == 100
    clock.t += 30
    assert (await lim.usage("key", "k1"))["tpm"] == 50


async def test_max_parallel_released_once(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(max_parallel=2)]
    a = await lim.acquire(scopes, est_tokens=0, est_cost=0)
    b = await lim.acquire(scopes, est_tokens=0, est_cost=0)
    err = await deny(lim, scopes)
    assert err.message == ("key 'ci-bot' has 2 requests in flight, its limit of 2 concurrent requests; "
                           "retry after 1 s")
    assert err.retry_after == 1
    assert (await lim.usage("key", "k1"))["in_flight"] == 2
    await lim.release(a, tokens=0, cost=0)
    await lim.release(a, tokens=0, cost=0)  # a second release of the same ticket changes nothing
    assert (await lim.usage("key", "k1"))["in_flight"] == 1
    c = await lim.acquire(scopes, est_tokens=0, est_cost=0)
    await deny(lim, scopes)
    await lim.release(b, tokens=0, cost=0)
    await lim.release(c, tokens=0, cost=0)
    assert (await lim.usage("key", "k1"))["in_flight"] == 0


async def test_failed_request_settles_with_zero(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(max_parallel=1, tpm=100, budget_daily=1.0)]
    t = await lim.acquire(scopes, est_tokens=80, est_cost=0.5)
    assert (await lim.usage("key", "k1"))["reserved_usd"] == pytest.approx(0.5)
    await lim.release(t, tokens=0, cost=0)
    u = await lim.usage("key", "k1")
    assert u["in_flight"] == 0 and u["reserved_usd"] == 0 and u["tpm"] == 0
    assert u["spend"]["daily"]["usd"] == 0
    await lim.acquire(scopes, est_tokens=100, est_cost=1.0)


# --- budgets -------------------------------------------------------------------------------------


def seconds_to_midnight(now: float) -> float:
    return (math.floor(now / 86400) + 1) * 86400 - now


def seconds_to_next_month(now: float) -> float:
    d = dt.datetime.fromtimestamp(now, UTC)
    nxt = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return nxt.timestamp() - now


async def test_daily_budget_and_reset(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(rpm=1000), project(budget_daily=0.05)]
    t = await lim.acquire(scopes, est_tokens=1, est_cost=0.01)
    await lim.release(t, tokens=1, cost=0.03)
    t = await lim.acquire(scopes, est_tokens=1, est_cost=0.01)  # 0.03 + 0.01 <= 0.05
    await lim.release(t, tokens=1, cost=0.03)  # the estimate was low: 0.06 spent
    err = await deny(lim, scopes, est_cost=0.01)
    wait = seconds_to_midnight(backend.now())
    assert err.message.startswith("project 'acme' budget of $0.05 per day is spent ($0.06 used); resets at "
                                  "00:00 UTC (in ")
    assert err.message.endswith(") or raise the budget")
    assert abs(err.retry_after - wait) <= 2
    assert err.details[0] == {"scope": "project", "scope_id": "p1", "limit": "budget_daily", "limit_value": 0.05,
                              "used": pytest.approx(0.06), "reserved": 0.0, "requested": 0.01, "retryable": True}
    u = await lim.usage("project", "p1")
    today = dt.datetime.fromtimestamp(backend.now(), UTC)
    assert u["spend"]["daily"] == {"period": today.strftime("%Y-%m-%d"), "usd": pytest.approx(0.06)}
    assert u["spend"]["monthly"] == {"period": today.strftime("%Y-%m"), "usd": pytest.approx(0.06)}
    assert u["spend"]["total"]["usd"] == pytest.approx(0.06)
    assert (await lim.usage("key", "k1"))["spend"]["total"]["usd"] == pytest.approx(0.06)

    backend.advance(wait + 1)  # 00:00:01 UTC the next day
    t = await lim.acquire(scopes, est_tokens=1, est_cost=0.01)
    await lim.release(t, tokens=1, cost=0.01)
    u = await lim.usage("project", "p1")
    tomorrow = dt.datetime.fromtimestamp(backend.now(), UTC)
    assert u["spend"]["daily"] == {"period": tomorrow.strftime("%Y-%m-%d"), "usd": pytest.approx(0.01)}
    assert u["spend"]["total"]["usd"] == pytest.approx(0.07)
    if tomorrow.month == today.month:
        assert u["spend"]["monthly"]["usd"] == pytest.approx(0.07)


async def test_budget_left_is_less_than_the_estimate(backend: Backend) -> None:
    lim = backend.lim
    await lim.add_spend("project", "p1", daily=4.9, monthly=4.9, total=4.9)
    err = await deny(lim, [project(budget_daily=5.0)], est_cost=0.5)
    assert err.message.startswith("project 'acme' budget of $5.00 per day has $0.10 left, less than this "
                                  "request's estimated $0.50; resets at 00:00 UTC")
    t = await lim.acquire([project(budget_daily=5.0)], est_tokens=0, est_cost=0.1)
    await lim.release(t, tokens=0, cost=0.11)
    err = await deny(lim, [project(budget_daily=5.0)], est_cost=0.0)
    assert "project 'acme' budget of $5.00 per day is spent ($5.01 used); resets at 00:00 UTC" in err.message


async def test_monthly_budget_resets_on_the_first(backend: Backend) -> None:
    lim = backend.lim
    scopes = [project(budget_monthly=1.0)]
    await lim.add_spend("project", "p1", daily=0.0, monthly=1.0, total=1.0)
    err = await deny(lim, scopes, est_cost=0.01)
    wait = seconds_to_next_month(backend.now())
    assert "project 'acme' budget of $1.00 per month is spent ($1.00 used); resets on the 1st at 00:00 UTC" \
        in err.message
    assert abs(err.retry_after - wait) <= 2
    backend.advance(wait + 1)
    t = await lim.acquire(scopes, est_tokens=0, est_cost=0.01)
    await lim.release(t, tokens=0, cost=0.01)
    u = await lim.usage("project", "p1")
    assert u["spend"]["monthly"]["period"] == dt.datetime.fromtimestamp(backend.now(), UTC).strftime("%Y-%m")
    assert u["spend"]["monthly"]["usd"] == pytest.approx(0.01)
    assert u["spend"]["total"]["usd"] == pytest.approx(1.01)


async def test_total_budget_never_resets(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(budget_total=2.0)]
    t = await lim.acquire(scopes, est_tokens=0, est_cost=1.0)
    await lim.release(t, tokens=0, cost=2.0)
    err = await deny(lim, scopes, est_cost=0.01)
    assert err.message == ("key 'ci-bot' budget of $2.00 in total is spent ($2.00 used); a total budget does "
                           "not reset or raise it to continue")
    assert err.retry_after == NEVER_RETRY_AFTER and err.details[0]["retryable"] is False
    backend.advance(86400 * 40)
    await deny(lim, scopes, est_cost=0.01)


async def test_budget_reserved_by_requests_in_flight(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(budget_daily=0.02)]
    a = await lim.acquire(scopes, est_tokens=0, est_cost=0.01)
    await lim.acquire(scopes, est_tokens=0, est_cost=0.01)
    err = await deny(lim, scopes, est_cost=0.01)
    assert err.message == ("key 'ci-bot' budget of $0.02 per day would be exceeded: $0.00 used + $0.02 reserved "
                           "by requests in flight + $0.01 estimated for this request; retry after 1 s or raise "
                           "the budget")
    assert err.retry_after == 1
    await lim.release(a, tokens=0, cost=0.005)
    await lim.acquire(scopes, est_tokens=0, est_cost=0.005)
    await deny(lim, scopes, est_cost=0.001)


async def test_zero_cost_request_passes_until_budget_is_spent(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(budget_daily=0.0)]
    err = await deny(lim, scopes)
    assert "budget of $0.00 per day is spent" in err.message
    await lim.acquire([key(budget_daily=0.1)], est_tokens=0, est_cost=0.0)


async def test_add_spend_adds_and_replaces(backend: Backend) -> None:
    lim = backend.lim
    await lim.add_spend("key", "k1", daily=1.0, monthly=2.0, total=3.0)
    await lim.add_spend("key", "k1", daily=0.5, monthly=0.5, total=0.5)
    s = (await lim.usage("key", "k1"))["spend"]
    assert (s["daily"]["usd"], s["monthly"]["usd"], s["total"]["usd"]) == (1.5, 2.5, 3.5)
    await lim.add_spend("key", "k1", daily=0.25, monthly=0.5, total=1.0, replace=True)
    s = (await lim.usage("key", "k1"))["spend"]
    assert (s["daily"]["usd"], s["monthly"]["usd"], s["total"]["usd"]) == (0.25, 0.5, 1.0)
    await deny(lim, [key(budget_total=1.0)])


async def test_release_is_idempotent_for_spend(backend: Backend) -> None:
    lim = backend.lim
    t = await lim.acquire([key()], est_tokens=5, est_cost=0.01)
    await lim.release(t, tokens=7, cost=0.02)
    await lim.release(t, tokens=7, cost=0.02)
    u = await lim.usage("key", "k1")
    assert u["spend"]["total"]["usd"] == pytest.approx(0.02)
    assert u["tpm"] == pytest.approx(7, abs=0.5)


async def test_usage_of_unknown_scope_is_zero(backend: Backend) -> None:
    u = await backend.lim.usage("project", "nobody")
    assert u["rpm"] == 0 and u["tpm"] == 0 and u["in_flight"] == 0 and u["reserved_usd"] == 0
    assert u["spend"]["total"] == {"period": None, "usd": 0.0}


# --- atomicity -----------------------------------------------------------------------------------


async def test_failing_scope_reserves_nothing_in_the_others(backend: Backend) -> None:
    lim = backend.lim
    k = key(rpm=5, tpm=1000, max_parallel=5, budget_daily=1.0)
    err = await deny(lim, [k, project(budget_daily=0.0)], est_tokens=100, est_cost=0.1)
    assert err.message.startswith("project 'acme' budget of $0.00 per day is spent")
    err = await deny(lim, [project(max_parallel=0), k], est_tokens=100, est_cost=0.1)
    assert "project 'acme' allows 0 concurrent requests" in err.message
    u = await lim.usage("key", "k1")
    assert (u["rpm"], u["tpm"], u["in_flight"], u["reserved_usd"]) == (0, 0, 0, 0)
    t = await lim.acquire([k, project()], est_tokens=100, est_cost=0.1)
    u = await lim.usage("key", "k1")
    assert (u["rpm"], u["tpm"], u["in_flight"], u["reserved_usd"]) == (1, 100, 1, pytest.approx(0.1))
    assert (await lim.usage("project", "p1"))["in_flight"] == 1
    await lim.release(t, tokens=50, cost=0.05)
    assert (await lim.usage("project", "p1"))["spend"]["daily"]["usd"] == pytest.approx(0.05)


async def test_64_concurrent_requests_never_overspend(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(rpm=100_000), project(budget_daily=0.25)]

    async def one() -> bool:
        try:
            t = await lim.acquire(scopes, est_tokens=10, est_cost=0.01)
        except TooManyRequests as exc:
            assert exc.details[0]["limit"] == "budget_daily"
            return False
        await asyncio.sleep(0.005)
        await lim.release(t, tokens=12, cost=0.01)
        return True

    results = await asyncio.gather(*(one() for _ in range(64)))
    spent = (await lim.usage("project", "p1"))["spend"]["daily"]["usd"]
    assert spent <= 0.25 + 0.01 + 1e-9
    assert spent == pytest.approx(sum(results) * 0.01)
    assert sum(results) == 25  # actual == estimate: exactly the budget, whatever the interleaving
    u = await lim.usage("project", "p1")
    assert u["in_flight"] == 0 and u["reserved_usd"] == 0


async def test_extend_tops_up_a_reservation_when_the_budget_allows(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(rpm=100), project(budget_total=1.0)]
    other = await lim.acquire(scopes, est_tokens=1, est_cost=0.3)
    t = await lim.acquire(scopes, est_tokens=1, est_cost=0.1)
    await lim.extend(t, est_cost=0.6)  # 0.3 (other) + 0.6 <= 1.0
    assert t.est_cost == pytest.approx(0.6)
    assert (await lim.usage("project", "p1"))["reserved_usd"] == pytest.approx(0.9)
    await deny(lim, scopes, est_cost=0.2)  # 0.9 reserved + 0.2 > 1.0
    await lim.extend(t, est_cost=0.2)  # lower than held: nothing changes
    assert t.est_cost == pytest.approx(0.6)
    await lim.release(t, tokens=5, cost=0.55)
    u = await lim.usage("project", "p1")
    assert u["reserved_usd"] == pytest.approx(0.3) and u["in_flight"] == 1  # all of t's reservation went
    await lim.release(other, tokens=1, cost=0.0)
    u = await lim.usage("project", "p1")
    assert u["reserved_usd"] == 0 and u["spend"]["total"]["usd"] == pytest.approx(0.55)


async def test_extend_beyond_the_budget_is_refused_and_changes_nothing(backend: Backend) -> None:
    lim = backend.lim
    scopes = [key(rpm=100), project(budget_daily=0.5)]
    await lim.add_spend("project", "p1", daily=0.1)
    t = await lim.acquire(scopes, est_tokens=1, est_cost=0.1)
    with pytest.raises(TooManyRequests) as ei:
        await lim.extend(t, est_cost=0.45)  # 0.1 spent + 0.45 > 0.5
    e = ei.value
    assert e.details[0]["limit"] == "budget_daily" and e.details[0]["scope"] == "project"
    assert e.details[0]["requested"] == pytest.approx(0.45) and e.details[0]["reserved"] == 0
    assert "has $0.40 left, less than this request's estimated $0.45" in e.message
    assert "resets at 00:00 UTC" in e.message
    assert t.est_cost == pytest.approx(0.1)
    assert (await lim.usage("project", "p1"))["reserved_usd"] == pytest.approx(0.1)
    await lim.release(t, tokens=1, cost=0.1)
    with pytest.raises(TooManyRequests):  # a released ticket reserves nothing more, and says nothing
        await lim.acquire(scopes, est_tokens=1, est_cost=0.31)
    await lim.extend(t, est_cost=10.0)
    assert (await lim.usage("project", "p1"))["reserved_usd"] == 0


async def test_redis_extend_after_the_lease_expired_takes_it_again(redis_prefix: str) -> None:
    lim = RedisLimiter(REDIS_URL, prefix=redis_prefix, lease=0.2)
    scopes = [project(budget_total=1.0)]
    t = await lim.acquire(scopes, est_tokens=1, est_cost=0.2)
    await asyncio.sleep(0.3)
    other = await lim.acquire(scopes, est_tokens=1, est_cost=0.1)  # prunes t's expired lease
    assert (await lim.usage("project", "p1"))["reserved_usd"] == pytest.approx(0.1)
    await lim.extend(t, est_cost=0.5)
    assert (await lim.usage("project", "p1"))["reserved_usd"] == pytest.approx(0.6)
    await lim.release(t, tokens=1, cost=0.4)
    await lim.release(other, tokens=1, cost=0.1)
    u = await lim.usage("project", "p1")
    await lim.aclose()
    assert u["reserved_usd"] == 0 and u["spend"]["total"]["usd"] == pytest.approx(0.5)


async def test_two_processes_share_one_budget(redis_prefix: str) -> None:
    worker = Path(__file__).with_name("limits_worker.py")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(worker), REDIS_URL, redis_prefix, "2", "64",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
        )
        for _ in range(2)
    ]
    outs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
    ok = sum(json.loads(out)["ok"] for out, _ in outs)
    lim = RedisLimiter(REDIS_URL, prefix=redis_prefix)
    u = await lim.usage("project", "p1")
    await lim.aclose()
    spent = u["spend"]["daily"]["usd"]
    assert spent <= 0.25 + 0.01 + 1e-9
    assert spent == pytest.approx(ok * 0.01)
    assert ok == 25
    assert u["in_flight"] == 0


def test_threads_share_a_memory_limiter() -> None:
    lim = MemoryLimiter()
    scopes = [key(max_parallel=8), project(budget_total=1.0)]
    ok = [0] * 8

    def work(i: int) -> None:
        for _ in range(200):
            try:
                t = lim.acquire_nowait(scopes, est_tokens=1, est_cost=0.01)
            except TooManyRequests:
                continue
            ok[i] += 1
            lim.release_nowait(t, tokens=1, cost=0.01)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    u = asyncio.run(lim.usage("project", "p1"))
    assert sum(ok) == 100
    assert u["spend"]["total"]["usd"] == pytest.approx(1.0)
    assert u["in_flight"] == 0


# --- Redis specifics ----------------------------------------------------------------------------


async def test_redis_lease_frees_what_a_dead_process_held(redis_prefix: str) -> None:
    lim = RedisLimiter(REDIS_URL, prefix=redis_prefix, lease=30)
    scopes = [key(max_parallel=1, budget_daily=0.01)]
    await lim.acquire(scopes, est_tokens=0, est_cost=0.01)  # never released: its process "died"
    err = await deny(lim, scopes, est_cost=0.01)
    assert err.details[0]["limit"] == "max_parallel"
    lim.clock_offset += 31
    t = await lim.acquire(scopes, est_tokens=0, est_cost=0.01)
    u = await lim.usage("key", "k1")
    assert u["in_flight"] == 1 and u["reserved_usd"] == pytest.approx(0.01)
    await lim.release(t, tokens=0, cost=0.01)
    u = await lim.usage("key", "k1")
    assert u["in_flight"] == 0 and u["reserved_usd"] == 0 and u["spend"]["daily"]["usd"] == pytest.approx(0.01)
    await lim.aclose()


async def test_redis_release_after_the_lease_still_counts_spend(redis_prefix: str) -> None:
    lim = RedisLimiter(REDIS_URL, prefix=redis_prefix, lease=10)
    t = await lim.acquire([key(max_parallel=1)], est_tokens=0, est_cost=0.5)
    lim.clock_offset += 11
    await lim.acquire([key(max_parallel=1)], est_tokens=0, est_cost=0.0)  # prunes the expired lease
    await lim.release(t, tokens=0, cost=0.5)
    u = await lim.usage("key", "k1")
    assert u["in_flight"] == 1 and u["reserved_usd"] == 0 and u["spend"]["total"]["usd"] == 0.5
    await lim.aclose()


@pytest.mark.parametrize(
    "when",
    ["2024-02-29T23:59:59", "2024-03-01T00:00:00", "2000-02-29T12:00:00", "2100-03-01T00:00:00",
     "2025-12-31T23:59:59", "2026-01-01T00:00:00", "1999-12-31T00:00:00"],
)
async def test_redis_periods_follow_the_utc_calendar(redis_prefix: str, when: str) -> None:
    target = dt.datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp() + 0.5
    lim = RedisLimiter(REDIS_URL, prefix=redis_prefix, clock_offset=target - time.time())
    await lim.add_spend("key", "k1", daily=1.0, monthly=1.0, total=1.0)
    s = (await lim.usage("key", "k1"))["spend"]
    assert s["daily"]["period"] == when[:10] and s["monthly"]["period"] == when[:7]
    assert s["daily"]["usd"] == 1.0
    await lim.aclose()


async def test_redis_down_acquire_fails_closed_release_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lim = RedisLimiter(f"redis://127.0.0.1:{port}/0", socket_timeout=1)
    with pytest.raises(ServiceUnavailable) as ei:
        await lim.acquire([key(rpm=1)], est_tokens=0, est_cost=0)
    assert f"rate limiter store at redis://127.0.0.1:{port}/0 is unreachable" in ei.value.message
    assert "PODIUM_REDIS_URL" in ei.value.message
    from podium.gateway.limits import Ticket

    t = Ticket("x", (key(),), 0, 0.0, 0)
    await lim.release(t, tokens=1, cost=0.1)
    assert t.released
    assert "could not settle" in caplog.text
    await lim.aclose()
