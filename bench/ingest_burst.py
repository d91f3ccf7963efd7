"""Ingestion bursts: memory and answer times of `podium up` (SQLite) under concurrent large requests.

Starts `podium up` in its own process on a fresh SQLite database, sends BURSTS bursts of
CONCURRENCY concurrent native requests (each SPANS spans with PAD bytes of input), and
reports: status codes, the slowest answer, server RSS before / peak (VmHWM) / 3 s after the
last burst, and every acknowledged span stored (COUNT CHECK).

    .venv/bin/python bench/ingest_burst.py                       # issue 10's case: 48 x 1 span x 19 MB
    .venv/bin/python bench/ingest_burst.py --spans 500 --pad 2000 --concurrency 32
    .venv/bin/python bench/ingest_burst.py --unbounded           # bounds lifted (as before the fix)
    .venv/bin/python bench/ingest_burst.py --no-trim             # without malloc_trim after bursts
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server.ingest_load import ServerProcess, native_body, stored_span_ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1)
    ap.add_argument("--pad", type=int, default=19 * 1024 * 1024)
    ap.add_argument("--concurrency", type=int, default=48)
    ap.add_argument("--bursts", type=int, default=2)
    ap.add_argument("--unbounded", action="store_true", help="lift the byte/wait bounds, 200k items")
    ap.add_argument("--no-trim", action="store_true")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    ap.add_argument("--preamble", default="", help="python run in the server process before `podium up`")
    args = ap.parse_args()

    from podium.store import Store

    home = Path(tempfile.mkdtemp(prefix="podium-burst-"))
    url = f"sqlite:///{home / 'podium.db'}"
    store = Store.from_url(url)
    project = store.projects.create_project("burst")
    key = store.projects.create_key(project.id, role="admin")
    auth = (key.key.public_key, key.secret_key)
    env = {"PODIUM_MAX_REQUEST_BYTES": str(32 * 1024 * 1024)}
    if args.unbounded:
        env |= {"PODIUM_INGEST_QUEUE_MAX_BYTES": str(1 << 40), "PODIUM_INGEST_QUEUE_MAX_WAIT": "1e9",
                "PODIUM_INGEST_QUEUE_MAX_ITEMS": "200000"}
    env |= dict(e.split("=", 1) for e in args.env)
    server = ServerProcess(url, home / "home", env_extra=env)
    if args.no_trim or args.preamble:
        code = ("import podium.server.ingest as i; i._malloc_trim = None\n" if args.no_trim else "") + args.preamble
        server.argv = [sys.executable, "-c", code + "\nfrom podium.cli.main import app; app()", "up", "--port",
                       str(server.port)]
    server.start()
    try:
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as c:
            c.post("/api/v1/ingest", content=native_body(5)[0], headers={"Content-Type": "application/json"})
        time.sleep(1)
        before = server.rss_kib()
        acked: list[str] = []
        codes: dict[int | str, int] = {}
        slowest: dict[int | str, float] = {}
        lock = threading.Lock()

        def post(go: threading.Barrier) -> None:
            body, ids = native_body(args.spans, args.pad)
            go.wait()
            t0 = time.monotonic()
            try:
                with httpx.Client(base_url=server.url, auth=auth, timeout=60) as c:
                    r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/json"})
                code: int | str = r.status_code
            except httpx.HTTPError as e:
                code = type(e).__name__
            with lock:
                slowest[code] = max(slowest.get(code, 0.0), time.monotonic() - t0)
                codes[code] = codes.get(code, 0) + 1
                if code == 200:
                    acked.extend(ids)

        for _ in range(args.bursts):
            go = threading.Barrier(args.concurrency)
            threads = [threading.Thread(target=post, args=(go,)) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        peak = server.rss_kib("VmHWM")
        time.sleep(3)
        after = server.rss_kib()
        health = server.health()
        stored = set(stored_span_ids(store, project.id))
        lost = len(set(acked) - stored)
        mib = 1024
        print(f"requests: {args.bursts} x {args.concurrency} x {args.spans} spans x {args.pad} B pad; "
              f"unbounded={args.unbounded} trim={not args.no_trim}")
        print(f"status codes: {codes}; slowest answer (s) by status: "
              f"{ {k: round(v, 2) for k, v in slowest.items()} }")
        print(f"server RSS MiB: before {before // mib}, peak {peak // mib}, 3 s after {after // mib}; "
              f"memory_trims={health.get('memory_trims')}")
        print(f"COUNT CHECK: {len(acked)} acknowledged, {lost} lost")
    finally:
        server.stop()
        store.close()


if __name__ == "__main__":
    main()
