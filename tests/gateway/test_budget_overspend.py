"""Budgets never overspend by more than one request's estimate, for every routing shape.

64 concurrent requests (per process) go through a real :class:`Gateway` to the real fake
upstream, whose every answer uses the whole output bound, against a key's ``budget_total``
of 16.5 requests' estimates: in one process (in-memory limiter) and in two OS processes
sharing Redis. The estimate is the most a request can cost on any deployment it can
reach, so in this set-up the spend never passes the budget at all; the promise checked is
``spent - budget <= one request's estimate``. See tests/gateway/budget_shapes.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from podium.core.pricing import PriceTable
from podium.errors import TooManyRequests
from podium.gateway.config import GatewayConfig, GatewayFile
from podium.gateway.limits import MemoryLimiter, RedisLimiter
from podium.gateway.service import Gateway
from tests.conftest import make_project
from tests.gateway.budget_shapes import (
    MSG,
    PRICES,
    SHAPES,
    TEXT,
    actual_costs,
    closed_port,
    estimate,
    gateway_file,
    make_gateway,
    price_table,
    run_shape,
    settings,
)
from tests.gateway.fake_upstream import FakeUpstream, Hang, Reply

REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
N = 64
BUDGET_IN_ESTIMATES = 16.5


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    up = FakeUpstream(TEXT, record=True).start()
    yield up
    up.stop()


@pytest.fixture
def up(fake: FakeUpstream) -> FakeUpstream:
    fake.reset()
    return fake


async def _drop(prefix: str) -> None:
    r = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await r.delete(*keys)
    await r.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    r = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await r.ping()
    except Exception as exc:  # pragma: no cover - environment problem, say how to fix it
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it or set PODIUM_TEST_REDIS_URL")
    finally:
        await r.aclose()
    p = f"podium-test:{uuid.uuid4().hex}:"
    yield p
    await _drop(p)


def budget_key(store: Any, gw: Any, shape: str) -> tuple[str, str, float, float]:
    """A gateway key whose budget_total is BUDGET_IN_ESTIMATES of this shape's estimate."""
    proj = make_project(store, f"budget-{shape}-{uuid.uuid4().hex[:6]}")
    new = store.projects.create_key(proj.project_id, role="gateway")
    est = estimate(gw, shape, new.secret_key)
    budget = round(est * BUDGET_IN_ESTIMATES, 9)
    store.projects.update_key(proj.project_id, new.key.public_key, limits={"budget_total": budget})
    return new.key.id, new.secret_key, est, budget


def check(shape: str, res: dict[str, Any], spent: float, budget: float, est: float, n: int) -> None:
    assert "errors" not in res, res
    assert res["ok"] + res["denied"] == n
    assert res["ok"] >= 1 and res["denied"] >= 1, res  # the budget was what stopped requests
    costs = actual_costs(shape)
    assert est >= max(costs.values()) - 1e-12, (est, costs)  # the estimate covers the dearest answer
    assert spent - budget <= est + 1e-9, f"{shape}: spent ${spent:.6f} of ${budget:.6f} (estimate ${est:.6f})"
    assert spent <= budget + 1e-9  # estimates are upper bounds here: no overspend at all
    assert min(costs.values()) * res["ok"] - 1e-9 <= spent <= max(costs.values()) * res["ok"] + 1e-9


@pytest.mark.parametrize("shape", SHAPES)
async def test_one_process_overspends_at_most_one_estimate(shape: str, store: Any, up: FakeUpstream) -> None:
    gw = make_gateway(store, MemoryLimiter(), up.base_url, closed_port())
    await gw.start()
    try:
        key_id, secret, est, budget = budget_key(store, gw, shape)
        res = await run_shape(gw, shape, secret, N)
        u = await gw.limiter.usage("key", key_id)
    finally:
        await gw.aclose()
    check(shape, res, u["spend"]["total"]["usd"], budget, est, N)
    assert u["in_flight"] == 0 and u["reserved_usd"] == 0
    if shape == "fallback":  # every answer came from the dear fallback; the cheap one is down
        assert {b["model"] for b in up.bodies()} == {"bud-dear"}


@pytest.mark.slow  # two interpreters start (seconds on a loaded machine); the requests take well under a second
async def test_two_processes_on_redis_overspend_at_most_one_estimate(
    store: Any, db_url: str, up: FakeUpstream, prefix: str
) -> None:
    down = closed_port()
    probe = make_gateway(store, MemoryLimiter(), up.base_url, down)
    keys = {shape: budget_key(store, probe, shape) for shape in SHAPES}
    spec = {"db_url": db_url, "redis_url": REDIS_URL, "prefix": prefix, "base_url": up.base_url,
            "down_port": down, "nprocs": 2, "n": N, "runs": [[s, keys[s][1]] for s in SHAPES]}
    worker = Path(__file__).with_name("limits_worker.py")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, str(worker), "gateway", json.dumps(spec),
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        for _ in range(2)
    ]
    outs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-3000:]
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
    lim = RedisLimiter(REDIS_URL, prefix=prefix)
    try:
        for shape in SHAPES:
            key_id, _secret, est, budget = keys[shape]
            res = {k: sum(r[shape].get(k, 0) for r in results) for k in ("ok", "denied")}
            for r in results:
                assert "errors" not in r[shape], r[shape]
            u = await lim.usage("key", key_id)
            check(shape, res, u["spend"]["total"]["usd"], budget, est, 2 * N)
            assert u["in_flight"] == 0
    finally:
        await lim.aclose()


# --- re-reserving before a dearer deployment ---------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryLimiter()
        return
    p = f"podium-test:{uuid.uuid4().hex}:"
    lim = RedisLimiter(REDIS_URL, prefix=p)
    yield lim
    await _drop(p)


def _slow_primary_gateway(store: Any, limiter: Any, up: FakeUpstream, prices: dict[str, Any]) -> Any:
    """A gateway whose alias ``slow`` times out on ``bud-slow`` (0.3 s) and falls back to
    ``bud-dear``; ``prices`` (mutable) holds the project's price table."""
    prices["table"] = PriceTable.default().with_overrides(PRICES)
    d = {"provider": "openai", "api_base": up.base_url, "api_key": "sk-fake"}
    cfg = GatewayConfig.from_specs(GatewayFile.model_validate({
        "router": {"retries": 0, "cooldown": 0, "allowed_fails": 1000, "timeout": 10},
        "models": [
            {"name": "slow", "deployments": [{**d, "model": "bud-slow", "timeout": 0.3}], "fallbacks": ["dear"]},
            {"name": "dear", "deployments": [{**d, "model": "bud-dear"}]},
        ],
    }))
    return Gateway(settings(), store, sink=lambda _p, _s: True, prices=lambda _p: prices["table"],
                   limiter=limiter, cache=False, config=cfg)


async def _reprice_during_first_try(prices: dict[str, Any], factor: float) -> None:
    await asyncio.sleep(0.1)  # the request holds its reservation and waits on bud-slow
    dear = {"input": PRICES["bud-dear"]["input"] * factor, "output": PRICES["bud-dear"]["output"] * factor}
    prices["table"] = PriceTable.default().with_overrides({**PRICES, "bud-dear": dear})


async def test_fallback_dearer_than_the_reservation_reserves_more(store: Any, up: FakeUpstream,
                                                                  limiter: Any) -> None:
    prices: dict[str, Any] = {}
    gw = _slow_primary_gateway(store, limiter, up, prices)
    await gw.start()
    up.script("bud-slow", Hang())
    up.script("bud-dear", Reply(" ".join(["tok"] * 200)))
    try:
        proj = make_project(store, "rereserve")
        new = store.projects.create_key(proj.project_id, role="gateway", limits={"budget_total": 1.0})
        call = gw.prepare(new.key, "chat", {"model": "slow", "messages": MSG, "max_tokens": 200}, {})
        _, reserved = gw._estimate(call, True)
        out, _ = await asyncio.gather(gw.call(call), _reprice_during_first_try(prices, 10))
        u = await gw.limiter.usage("key", new.key.id)
    finally:
        await gw.aclose()
    assert out["usage"]["completion_tokens"] == 200
    spent = u["spend"]["total"]["usd"]
    assert spent == pytest.approx((10 * 100 + 200 * 600) / 1e6)  # the new price was charged
    assert spent > reserved  # more than the first reservation covered: it was topped up first
    assert u["in_flight"] == 0 and u["reserved_usd"] == 0


async def test_fallback_the_budget_cannot_cover_is_refused_before_it_is_called(
    store: Any, up: FakeUpstream, limiter: Any
) -> None:
    prices: dict[str, Any] = {}
    gw = _slow_primary_gateway(store, limiter, up, prices)
    await gw.start()
    up.script("bud-slow", Hang())
    try:
        proj = make_project(store, "rereserve-refused")
        new = store.projects.create_key(proj.project_id, role="gateway", limits={"budget_total": 0.05})
        call = gw.prepare(new.key, "chat", {"model": "slow", "messages": MSG, "max_tokens": 200}, {})
        with pytest.raises(TooManyRequests) as ei:
            await asyncio.gather(gw.call(call), _reprice_during_first_try(prices, 10))
        u = await gw.limiter.usage("key", new.key.id)
    finally:
        await gw.aclose()
    err = ei.value
    assert err.details[0]["limit"] == "budget_total" and err.details[0]["retryable"] is False
    assert "less than this request's estimated" in err.message and "raise it" in err.message
    assert up.bodies("bud-dear") == []  # the dearer fallback was never called
    assert u["spend"]["total"]["usd"] == 0 and u["in_flight"] == 0 and u["reserved_usd"] == 0


async def test_unpriced_model_is_charged_to_budgets_and_its_span_shows_no_cost(store: Any, up: FakeUpstream) -> None:
    spans: list[Any] = []
    cfg = GatewayConfig.from_specs(GatewayFile.model_validate(gateway_file(up.base_url, closed_port())))
    table = price_table()
    gw = Gateway(settings(), store, sink=lambda _p, span: spans.append(span) or True, prices=lambda _p: table,
                 limiter=MemoryLimiter(), cache=False, config=cfg)
    await gw.start()
    up.script("bud-mystery-model", Reply("one two three four", prompt_tokens=1000))
    try:
        proj = make_project(store, "unpriced")
        new = store.projects.create_key(proj.project_id, role="gateway", limits={"budget_daily": 1.0})
        await gw.call(gw.prepare(new.key, "chat", {"model": "bud-unpriced", "messages": MSG, "max_tokens": 4}, {}))
        u = await gw.limiter.usage("key", new.key.id)
    finally:
        await gw.aclose()
    charge = (1000 * 15 + 4 * 75) / 1e6  # PODIUM_GATEWAY_BUDGET_UNPRICED_INPUT / _OUTPUT defaults
    assert u["spend"]["daily"]["usd"] == pytest.approx(charge)
    span = spans[-1]
    assert span.cost is None  # no price: the trace does not make one up
    assert span.metadata["gateway"]["unpriced"] is True
    assert span.metadata["gateway"]["budget_usd"] == pytest.approx(charge)
