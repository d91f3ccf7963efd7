"""One gateway-like process for the two-process budget test in test_limits.py.

Usage: python limits_worker.py REDIS_URL PREFIX NPROCS N
Waits until NPROCS workers are ready (a counter in Redis), then runs N concurrent
acquire -> sleep -> release(cost=0.01) against a shared daily budget of $0.25 and prints
{"ok": successes, "denied": 429s} as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import redis.asyncio as aioredis

from podium.errors import TooManyRequests
from podium.gateway.limits import Limits, RedisLimiter, Scope


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
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
