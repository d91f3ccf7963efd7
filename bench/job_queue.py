"""Job queue throughput: bulk enqueue, then claim + ack in batches of 200 until the queue is
empty, on SQLite, PostgreSQL and Redis (podium.monitor.queue), with 1 consumer and with 4
consumer threads; plus the claim latency with a large backlog and the idle poll cost.

    .venv/bin/python bench/job_queue.py            # 50,000 jobs per run, writes docs/benchmarks.md
    .venv/bin/python bench/job_queue.py --quick    # 10,000 jobs per run, prints only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    command_line,
    create_schema,
    drop_schema,
    fmt_int,
    header_block,
    machine_facts,
    md_table,
    percentile,
    write_section,
)

SECTION = "Job queue"
NOTES = """\
Notes (written by hand; re-check when the queue changes):

- One process drives both ends here, on a 2-core machine shared with other work (see the load
  average): the figures are lower bounds and vary by about 2x between runs. Each claim of 200 is
  one statement; with 4 threads on SQLite the claims queue behind its single writer (same
  throughput, longer p95), while PostgreSQL's `SKIP LOCKED` claims run side by side.
- The claim uses the partial index `ix_monitor_job_kind_available_at` (kind, due time; dead jobs
  left out): on PostgreSQL `EXPLAIN ANALYZE` of the claim over a 20,000-job backlog is an index
  scan of 0.4 ms; SQLite's plan is the same index search.
- *Idle claim* on PostgreSQL right after draining 50,000 jobs includes walking dead index entries
  until autovacuum runs (the migration sets it to 1,000 dead rows for this table); 3 ms after a
  `VACUUM` on this machine, mostly the round trips of one transaction. SQLite's idle claim is a
  plain read that never takes the write lock.
- Redis runs one Lua script per claim and one pipeline per ack.
"""
REDIS_URL = "redis://127.0.0.1:6379/0"
BATCH = 200


def drain(queue: Any, consumers: int) -> tuple[int, float, list[float]]:
    """Claim + ack batches of BATCH with ``consumers`` threads until empty: (jobs, seconds, claim ms)."""
    done = 0
    lat: list[float] = []
    lock = threading.Lock()

    def run(wid: str) -> None:
        nonlocal done
        while True:
            t0 = time.perf_counter()
            jobs = queue.claim(wid, BATCH, lease_s=60, kinds=["bench"])
            t1 = time.perf_counter()
            if not jobs:
                return
            queue.ack([j.id for j in jobs])
            with lock:
                done += len(jobs)
                lat.append((t1 - t0) * 1000)

    threads = [threading.Thread(target=run, args=(f"c{i}",)) for i in range(consumers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done, time.perf_counter() - t0, lat


def enqueue(queue: Any, project_id: str, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        queue.enqueue("bench", project_id, [{"trace_id": f"t{j}", "rule": "r1"} for j in range(i, min(i + 1000, n))],
                      dedup_keys=[f"t{j}:r1" for j in range(i, min(i + 1000, n))])
    return time.perf_counter() - t0


def idle_poll_ms(queue: Any) -> float:
    xs = []
    for _ in range(50):
        t0 = time.perf_counter()
        queue.claim("idle", BATCH, lease_s=60, kinds=["bench"])
        xs.append((time.perf_counter() - t0) * 1000)
    return percentile(xs, 50)


def bench_backend(name: str, open_queue: Callable[[], tuple[Any, str, Callable[[], None]]], n: int) -> list[list[str]]:
    rows = []
    for consumers in (1, 4):
        queue, project_id, close = open_queue()
        try:
            enq_s = enqueue(queue, project_id, n)
            jobs, secs, lat = drain(queue, consumers)
            assert jobs == n, f"{name}: drained {jobs} of {n}"
            idle = idle_poll_ms(queue)
        finally:
            close()
        row = [name, str(consumers), fmt_int(n / enq_s), fmt_int(jobs / secs), f"{percentile(lat, 50):.1f}",
               f"{percentile(lat, 95):.1f}", f"{idle:.2f}"]
        print(" | ".join(row), flush=True)
        rows.append(row)
    return rows


def sql_opener(url_fn: Callable[[], tuple[str, Callable[[], None]]]) -> Callable[[], tuple[Any, str, Callable[[], None]]]:
    def open_queue() -> tuple[Any, str, Callable[[], None]]:
        from podium.store import Store

        url, cleanup = url_fn()
        store = Store.from_url(url)
        pid = store.projects.create_project("bench").id

        def close() -> None:
            store.close()
            cleanup()

        return store.jobs, pid, close

    return open_queue


def sqlite_url() -> tuple[str, Callable[[], None]]:
    d = tempfile.mkdtemp(prefix="podium-bench-queue-")
    return f"sqlite:///{d}/queue.db", lambda: None


def pg_url() -> tuple[str, Callable[[], None]]:
    schema, url = create_schema("bench_queue")
    return url, lambda: drop_schema(schema)


def redis_opener() -> tuple[Any, str, Callable[[], None]]:
    from podium.monitor.queue.redis import RedisQueue

    q = RedisQueue.from_url(REDIS_URL, prefix=f"podium:bench:{uuid.uuid4().hex[:8]}:")

    def close() -> None:
        q.purge()
        q.close()

    return q, "bench-project", close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10,000 jobs per run; print only")
    args = ap.parse_args()
    n = 10_000 if args.quick else 50_000
    load_before = Path("/proc/loadavg").read_text().split()[0]
    header = ["backend", "consumers", "enqueue jobs/s", "claim+ack jobs/s", "claim p50 ms", "claim p95 ms",
              "idle claim ms"]
    print(" | ".join(header))
    rows = []
    rows += bench_backend("SQLite", sql_opener(sqlite_url), n)
    rows += bench_backend("PostgreSQL", sql_opener(pg_url), n)
    rows += bench_backend("Redis", redis_opener, n)
    if args.quick:
        return
    facts = machine_facts()
    facts["Load average during the run"] = f"{load_before} before, {Path('/proc/loadavg').read_text().split()[0]} after"
    body = "\n\n".join([
        header_block(facts, command_line()),
        f"{fmt_int(n)} jobs enqueued in batches of 1,000 with dedup keys, then claimed and acked in batches of "
        f"{BATCH} (lease 60 s) by 1 or 4 consumer threads in one process until the queue is empty. "
        "*claim ms*: one claim of up to 200 jobs; *idle claim ms*: a claim on an empty queue (what each idle "
        "worker pays per poll, once per `interval_s`).",
        md_table(header, rows),
        NOTES,
    ])
    write_section(SECTION, body)


if __name__ == "__main__":
    main()
