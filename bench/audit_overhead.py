"""Audit log overhead: prompt label moves (``PUT /api/v1/prompts/{name}/labels/production``)
through a real uvicorn server, with the audit middleware and without it, on SQLite and
PostgreSQL; then ``verify`` over the chain that was written.

    .venv/bin/python bench/audit_overhead.py            # 400 moves per run, writes docs/benchmarks.md
    .venv/bin/python bench/audit_overhead.py --quick    # 100 moves per run, prints only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    command_line,
    free_port,
    header_block,
    machine_facts,
    md_table,
    percentile,
    pg_schema,
    write_section,
)

SECTION = "Audit log overhead"
NOTES = """\
Notes (written by hand; re-check when the audit log changes):

- Two servers over one database, one with the middleware and one without, in one process; the
  client alternates between them request by request, so the load of the (2-core, shared) machine
  hits both the same way: compare the columns of one run, not runs with each other.
- With the middleware each move also appends one event: one short transaction that locks the
  chain's head row, inserts the event and moves the head (plus the label history read for the
  note's before/after). It runs in a worker thread before the response starts, so the client
  only sees the response once its event is committed.
- *append alone*: `store.audit.append` called in a loop from this process (the chain's cost
  without HTTP, the worker thread or the note's history read).
- *verify* recomputes every event's hash in chain order, 1,000 rows per read.
"""


def _server(url: str, audited: bool) -> tuple[Any, Any, threading.Thread, Any]:
    import uvicorn

    from podium.config import Settings
    from podium.server.app import create_app
    from podium.server.audit_log import AuditLogMiddleware
    from podium.store import Store

    store = Store.from_url(url)
    app = create_app(Settings(), store=store)
    if not audited:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditLogMiddleware]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    return server, store, th, f"http://127.0.0.1:{port}"


class _Mover:
    """A server (with or without the audit middleware) and a client moving one label back and forth."""

    def __init__(self, url: str, audited: bool) -> None:
        import httpx

        self.server, self.store, self.thread, base = _server(url, audited)
        p = self.store.projects.create_project(f"bench-{int(audited)}-{time.monotonic_ns()}")
        k = self.store.projects.create_key(p.id, role="admin")
        self.client = httpx.Client(base_url=base, auth=(k.key.public_key, k.secret_key), timeout=60)
        for v in range(2):
            self.client.post("/api/v1/prompts", json={"name": "qa", "prompt": f"v{v}: {{{{q}}}}"}).raise_for_status()
        self.i = 0

    def move(self) -> float:
        self.i += 1
        t0 = time.perf_counter()
        self.client.put("/api/v1/prompts/qa/labels/production", json={"version": 1 + self.i % 2}).raise_for_status()
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)
        self.store.close()


def moves(url: str, n: int) -> dict[bool, list[float]]:
    """``n`` moves on each of two servers over one database, alternating request by request, so
    the machine's load hits both the same way."""
    movers = {True: _Mover(url, True), False: _Mover(url, False)}
    try:
        for _ in range(20):  # warm up
            for m in movers.values():
                m.move()
        lat: dict[bool, list[float]] = {True: [], False: []}
        for i in range(n):
            order = (True, False) if i % 2 else (False, True)
            for audited in order:
                lat[audited].append(movers[audited].move())
        return lat
    finally:
        for m in movers.values():
            m.close()


def append_ms(url: str, n: int) -> list[float]:
    """The append alone, called from this process (what the middleware adds, less the HTTP side)."""
    from podium.governance.actor import Actor
    from podium.store import Store

    store = Store.from_url(url, migrate=False)
    actor = Actor("key", "pk-bench", role="admin", ip="127.0.0.1")
    try:
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            store.audit.append(project_id=None, actor=actor, action="prompt.label.move", target_type="prompt",
                               target_id="qa", before={"targets": [{"version": 1 + i % 2, "weight": 1.0}]},
                               after={"targets": [{"version": 2 - i % 2, "weight": 1.0}]},
                               detail={"label": "production"}, status=200, method="PUT",
                               route="/api/v1/prompts/{name:path}/labels/{label}",
                               path="/api/v1/prompts/qa/labels/production", user_agent="bench")
            lat.append((time.perf_counter() - t0) * 1000)
        return lat
    finally:
        store.close()


def verify_ms(url: str) -> tuple[int, float]:
    from podium.governance.audit import verify
    from podium.store import Store

    store = Store.from_url(url, migrate=False)
    try:
        t0 = time.perf_counter()
        r = verify(store.audit.iter_events(), store.audit.head())
        ms = (time.perf_counter() - t0) * 1000
        assert r.ok, r.reason
        return r.checked, ms
    finally:
        store.close()


def run_db(name: str, url: str, n: int) -> list[Any]:
    runs = moves(url, n)
    appends = append_ms(url, n)
    checked, vms = verify_ms(url)
    row = [name]
    for audited in (False, True):
        lat = runs[audited]
        row += [f"{percentile(lat, 50):.2f}", f"{percentile(lat, 95):.2f}"]
    delta = percentile(runs[True], 50) - percentile(runs[False], 50)
    row += [f"{delta:+.2f}", f"{percentile(appends, 50):.2f} / {percentile(appends, 95):.2f}",
            f"{checked:,} in {vms:.0f} ms"]
    print(name, row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 100 if args.quick else 400
    os.environ.setdefault("PODIUM_WORKER_EMBEDDED", "0")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PODIUM_HOME"] = tmp
        rows.append(run_db("SQLite", f"sqlite:///{tmp}/bench.db", n))
        with pg_schema("bench_audit") as (_schema, url):
            rows.append(run_db("PostgreSQL", url, n))
    table = md_table(["database", "without: p50 ms", "p95 ms", "with audit: p50 ms", "p95 ms", "p50 added ms",
                      "append alone p50 / p95 ms", "verify"], rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    body = (f"{header_block(machine_facts(), command_line())}\n- Load average at the end: {load}\n\n{n} label moves "
            f"per database and mode, one at a time.\n\n{table}\n\n{NOTES}")
    print(body)
    if not args.quick:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
