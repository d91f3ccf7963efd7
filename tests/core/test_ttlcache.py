"""The one TTL cache: expiry, negative entries, bound, invalidation, coalesced async loads off the loop."""

from __future__ import annotations

import asyncio
import threading
import time

from podium.core.ttlcache import TTLCache


def test_expiry_negative_entries_and_bound() -> None:
    c: TTLCache[int] = TTLCache(0.2, negative_ttl=0.1, max_entries=3)
    calls: list[str] = []

    def loader(k: str, v: int | None):
        def f() -> int | None:
            calls.append(k)
            return v
        return f

    assert c.load("a", loader("a", 1)) == 1 and c.load("a", loader("a", 2)) == 1
    assert c.load("bad", loader("bad", None)) is None and c.load("bad", loader("bad", None)) is None
    assert calls == ["a", "bad"]  # the miss was cached too
    time.sleep(0.12)
    assert c.load("bad", loader("bad", None)) is None and calls[-1] == "bad" and len(calls) == 3
    for k in "bcde":
        c.put(k, 0)
    assert len(c) == 3 and c.get("b") is None  # the oldest went first
    time.sleep(0.21)
    assert c.load("e", loader("e", 5)) == 5  # expired: loaded again
    c.invalidate("e")
    assert c.load("e", loader("e", 6)) == 6
    c.clear()
    assert len(c) == 0


def test_async_loads_run_in_a_thread_and_coalesce() -> None:
    c: TTLCache[str] = TTLCache(5.0)
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def slow() -> str:
        seen.append(threading.get_ident())
        time.sleep(0.05)
        return "v"

    async def main() -> list[str | None]:
        return await asyncio.gather(*(c.get_or_load("k", slow) for _ in range(20)))

    assert asyncio.run(main()) == ["v"] * 20
    assert len(seen) == 1 and seen[0] != loop_thread


def test_a_load_racing_an_invalidation_is_not_stored() -> None:
    c: TTLCache[str] = TTLCache(5.0)

    def stale() -> str:
        c.invalidate("k")  # e.g. the key was revoked while its row was being read
        return "old"

    assert c.load("k", stale) == "old"
    assert c.load("k", lambda: "new") == "new"
