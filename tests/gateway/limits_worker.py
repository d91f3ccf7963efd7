"""One gateway-like process for the multi-process budget tests.

Usage: python limits_worker.py REDIS_URL PREFIX NPROCS N
Waits until NPROCS workers are ready (a counter in Redis), then runs N concurrent
acquire -> sleep -> release(cost=0.01) against a shared daily budget of $0.25 and prints
{"ok": successes, "denied": 429s} as JSON (test_limits.py).

Usage: python limits_worker.py gateway SPEC_JSON
A real :class:`Gateway` (RedisLimiter under ``prefix``, the store at ``db_url``, the fake
upstream at ``base_url``) runs, for each ``[shape, secret_key]`` of ``runs``, ``n``
concurrent chat calls once all ``nprocs`` workers are at that shape's start line, and
prints {shape: {"ok", "denied"[, "errors", "first_error"]}} as JSON
(test_budget_overspend.py, bench/budget_overspend.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio as aioredis

from podium.errors import TooManyRequests
from podium.gateway.limits import Limits, RedisLimiter, Scope


async def start_line(r: Any, name: str, nprocs: int) -> None:
    await r.incr(name)
    deadline = time.monotonic() + 30
    while int(await r.get(name) or 0) < nprocs:
        if time.monotonic() > deadline:
            raise SystemExit("the other workers never got ready")
        await asyncio.sleep(0.002)


async def gateway_main(spec: dict[str, Any]) -> None:
    from podium.store import Store
    from tests.gateway.budget_shapes import make_gateway, run_shape

    store = Store.from_url(spec["db_url"], migrate=False)
    lim = RedisLimiter(spec["redis_url"], prefix=spec["prefix"])
    gw = make_gateway(store, lim, spec["base_url"], spec["down_port"], legacy=spec.get("legacy", False))
    await gw.start()
    r = aioredis.Redis.from_url(spec["redis_url"])
    out: dict[str, Any] = {}
    try:
        for shape, secret in spec["runs"]:
            await lim.usage("key", "warm-up")  # a connection is open before the start line
            await start_line(r, f"{spec['prefix']}ready:{shape}:{secret[-8:]}", spec["nprocs"])
            out[shape] = await run_shape(gw, shape, secret, spec["n"])
    finally:
        await r.aclose()
        await gw.aclose()
        store.close()
    print(json.dumps(out))


async def main(url: str, prefix: str, nprocs: int, n: int) -> None:
    lim = RedisLimiter(url, prefix=prefix)
    scopes = [
        Scope("key", "k1", "ci-bot", Limits(rpm=1_000_000)),
        Scope("project", "p1", "acme", Limits(budget_daily=0.25)),
    ]
    await lim.usage("project", "p1")  # open a connection before the start line
    r = aioredis.Redis.from_url(url)
    await r.incr(prefix + "ready")
    deadline = time.monotonic() + 30
    while int(await r.get(prefix + "ready") or 0) < nprocs:
        if time.monotonic() > deadline:
            raise SystemExit("the other workers never got ready")
        await asyncio.sleep(0.002)
    await r.aclose()

    async def one() -> bool:
        try:
            t = await lim.acquire(scopes, est_tokens=10, est_cost=0.01)
        except TooManyRequests:
            return False
        await asyncio.sleep(0.01)
        await lim.release(t, tokens=12, cost=0.01)
        return True

    results = await asyncio.gather(*(one() for _ in range(n)))
    await lim.aclose()
    print(json.dumps({"ok": sum(results), "denied": n - sum(results)}))


if __name__ == "__main__":
    if sys.argv[1] == "gateway":
        asyncio.run(gateway_main(json.loads(sys.argv[2])))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
