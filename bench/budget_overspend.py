"""Worst budget overspend per routing shape, in one process and in two processes sharing Redis.

    .venv/bin/python bench/budget_overspend.py             # 3 rounds per cell (~1-2 min); writes docs
    .venv/bin/python bench/budget_overspend.py --quick     # 1 round per cell; prints only

Each round creates a gateway key whose ``budget_total`` is 16.5 times one request's
estimate (the reservation of the current rule) and fires 64 concurrent chat calls per
process through a real ``Gateway`` (``podium.gateway.service``) at the fake upstream
(``tests/gateway/fake_upstream.py``, in this process), whose every answer uses the whole
output bound (600 tokens, the requests' ``max_tokens``; 10 prompt tokens). Routing shapes
and prices are those of ``tests/gateway/budget_shapes.py``: ``single``; ``weighted``
(9:1 between a $0.5/$1 and a $10/$60 per 1M deployment); ``fallback`` (a cheap deployment
that refuses connections, then the $10/$60 one); ``unpriced`` (a model without a price);
``no_max_tokens``. One process uses the in-memory limiter; two processes
(``tests/gateway/limits_worker.py gateway``) share one Redis. The store is a fresh SQLite
file. The same rounds run with the reservation rule from before issue 10 (first
deployment only, 512 output tokens without max_tokens, unpriced models free) for comparison.
Overspend = spend − budget after every request settled, reported as a multiple of the budget
and in units of one request's estimate (the promise: ≤ 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, command_line, header_block, machine_facts, md_table, write_section

REDIS_URL = os.environ.get("PODIUM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
N = 64
BUDGET_IN_ESTIMATES = 16.5


NOTE = """Reading the table:

- "Before" overspent where the request could land on a dearer deployment than the first one
  (fallback 3.9x in one process; more with two processes, whose 128 requests all fit under
  the too-small reservations), and without `max_tokens` (512 assumed, 600 used). Unpriced
  models were free for budgets then (spend 0x: a budget did not limit them at all).
- "Now" never passes the budget here because every estimate is an upper bound of the real
  cost. The price of that: a weighted alias reserves its dearest deployment (10% of the
  traffic here), so under one burst only as many requests as fit at that price pass
  (spend/budget well under 1x in one burst); the rest get 429 `retry after 1 s` and pass once
  reservations settle.
"""


def new_key(store: Any, gw: Any, shape: str) -> dict[str, Any]:
    from tests.gateway.budget_shapes import estimate

    p = store.projects.create_project(f"bench-budget-{uuid.uuid4().hex[:8]}")
    k = store.projects.create_key(p.id, role="gateway")
    est = estimate(gw, shape, k.secret_key)
    budget = round(est * BUDGET_IN_ESTIMATES, 9)
    store.projects.update_key(p.id, k.key.public_key, limits={"budget_total": budget})
    return {"shape": shape, "id": k.key.id, "secret": k.secret_key, "est": est, "budget": budget}


async def one_process(store: Any, up: Any, down: int, shape: str, legacy: bool, ref: Any) -> dict[str, Any]:
    from podium.gateway.limits import MemoryLimiter
    from tests.gateway.budget_shapes import make_gateway, run_shape

    gw = make_gateway(store, MemoryLimiter(), up.base_url, down, legacy=legacy)
    await gw.start()
    try:
        k = new_key(store, ref, shape)  # the budget is sized on the current rule's estimate
        res = await run_shape(gw, shape, k["secret"], N)
        u = await gw.limiter.usage("key", k["id"])
    finally:
        await gw.aclose()
    return {**k, **res, "spent": u["spend"]["total"]["usd"]}


async def two_processes(store: Any, db_url: str, up: Any, down: int, shapes: list[str], rounds: int,
                        legacy: bool, ref: Any) -> list[dict[str, Any]]:
    from podium.gateway.limits import RedisLimiter

    prefix = f"podium-bench:{uuid.uuid4().hex}:"
    keys = [new_key(store, ref, s) for _ in range(rounds) for s in shapes]
    spec = {"db_url": db_url, "redis_url": REDIS_URL, "prefix": prefix, "base_url": up.base_url,
            "down_port": down, "nprocs": 2, "n": N, "legacy": legacy,
            "runs": [[k["shape"], k["secret"]] for k in keys]}
    worker = ROOT / "tests" / "gateway" / "limits_worker.py"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [subprocess.Popen([sys.executable, str(worker), "gateway", json.dumps(spec)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"budget worker failed:\n{err[-3000:]}")
    lim = RedisLimiter(REDIS_URL, prefix=prefix)
    out = []
    try:
        for k in keys:
            u = await lim.usage("key", k["id"])
            out.append({**k, "spent": u["spend"]["total"]["usd"]})
    finally:
        r = lim._redis
        names = [x async for x in r.scan_iter(match=prefix + "*", count=1000)]
        if names:
            await r.delete(*names)
        await lim.aclose()
    return out


def worst(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return max(rows, key=lambda r: r["spent"] - r["budget"])


async def run(rounds: int) -> tuple[list[list[Any]], bool]:
    from podium.gateway.limits import MemoryLimiter
    from podium.store import Store
    from tests.gateway.budget_shapes import SHAPES, TEXT, closed_port, make_gateway
    from tests.gateway.fake_upstream import FakeUpstream

    up = FakeUpstream(TEXT, record=False).start()
    down = closed_port()
    rows: list[list[Any]] = []
    ok_all = True
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PODIUM_HOME"] = tmp
        db_url = f"sqlite:///{tmp}/bench.db"
        store = Store.from_url(db_url)
        ref = make_gateway(store, MemoryLimiter(), up.base_url, down)  # sizes budgets, estimates
        try:
            results: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
            for legacy in (True, False):
                for shape in SHAPES:
                    results[(shape, "1", legacy)] = [await one_process(store, up, down, shape, legacy, ref)
                                                     for _ in range(rounds)]
                two = await two_processes(store, db_url, up, down, list(SHAPES), rounds, legacy, ref)
                for shape in SHAPES:
                    results[(shape, "2 (Redis)", legacy)] = [r for r in two if r["shape"] == shape]
            for shape in SHAPES:
                for procs in ("1", "2 (Redis)"):
                    old, new = worst(results[(shape, procs, True)]), worst(results[(shape, procs, False)])
                    over_new = max(0.0, new["spent"] - new["budget"])
                    held = over_new <= new["est"] + 1e-9
                    ok_all &= held
                    rows.append([
                        shape, procs,
                        f"{old['spent'] / old['budget']:.2f}x",
                        f"{new['spent'] / new['budget']:.2f}x",
                        f"${over_new:.6f}",
                        f"${new['est']:.6f}",
                        f"{over_new / new['est']:.2f} (≤ one request's estimate)" if held
                        else f"{over_new / new['est']:.2f} (MORE than one estimate)",
                    ])
        finally:
            store.close()
            up.stop()
    return rows, ok_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round per cell; prints only (unless --write-docs)")
    ap.add_argument("--rounds", type=int, help="rounds per cell (default 3, --quick 1)")
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    rows, ok_all = asyncio.run(run(rounds))
    table = md_table(["routing shape", "processes", "before: spend / budget", "now: spend / budget",
                      "now: worst overspend", "one request's estimate", "now: overspend in estimates"], rows)
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        f"{N} concurrent chat calls per process per round, {rounds} round(s) per cell, worst round shown; "
        f"budget_total = {BUDGET_IN_ESTIMATES} x one request's estimate under the current rule. Every answer uses "
        "its whole output bound (600 tokens). \"Before\" is the reservation rule replaced in issue 10 (priced on "
        "the alias's first deployment, 512 output tokens when max_tokens is absent, unpriced models free); "
        "\"now\" reserves the most the request can cost on any deployment it can reach and tops the "
        "reservation up before a dearer fallback (docs/gateway.md, Budgets).",
        table,
        f"Promise (overspend ≤ one request's estimate in every cell): **{'met' if ok_all else 'NOT met'}**.",
        NOTE,
    ])
    print(body)
    if (not args.quick or args.write_docs) and not args.no_docs:
        write_section("Budget overspend", body)


if __name__ == "__main__":
    main()
