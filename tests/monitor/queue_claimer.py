"""A queue consumer run as a real subprocess by tests/monitor/test_queue.py.

    python tests/monitor/queue_claimer.py TARGET WORKER_ID OUT MODE BATCH LEASE_S

TARGET: a database URL, or ``redis://host:port/db#prefix``. Touches ``OUT.ready.WORKER_ID`` once
connected, waits for ``OUT.go`` to exist (so several start together), then:

- ``drain``: claim batches of kind ``work``, write ``handled <n> <attempts> <worker>`` per job
  (flushed) and ack, until the queue is empty (nothing ready and nothing leased).
- ``crash``: claim one batch, write ``claimed <n>`` per job (flushed), then hang until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def open_queue(target: str) -> Any:
    if target.startswith("redis://"):
        from podium.monitor.queue.redis import RedisQueue

        url, _, prefix = target.partition("#")
        return RedisQueue.from_url(url, prefix=prefix)
    from podium.store import Store

    return Store.from_url(target, migrate=False).jobs


def main() -> None:
    target, worker_id, out, mode, batch, lease_s = sys.argv[1:7]
    q = open_queue(target)
    q.stats()  # connected and warm
    Path(f"{out}.ready.{worker_id}").touch()
    go = Path(out + ".go")
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    with open(out, "a", buffering=1) as f:
        if mode == "crash":
            jobs = q.claim(worker_id, int(batch), lease_s=float(lease_s), kinds=["work"])
            for j in jobs:
                f.write(f"claimed {j.payload['n']}\n")
            f.write("ready\n")
            f.flush()
            time.sleep(600)
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = q.claim(worker_id, int(batch), lease_s=float(lease_s), kinds=["work"])
            if not jobs:
                if q.stats().backlog == 0:
                    break
                time.sleep(0.05)  # leased by someone else: wait for an ack or an expired lease
                continue
            for j in jobs:
                f.write(f"handled {j.payload['n']} {j.attempts} {worker_id}\n")
            f.flush()
            time.sleep(0.002)  # a little work per batch
            q.ack([j.id for j in jobs])


if __name__ == "__main__":
    main()
