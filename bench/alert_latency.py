"""Alert latency: from the event that breaches a rule to the webhook receiving the alert.

A real `podium up` server (its own process, the embedded worker running the alert job), a
local webhook server, and a rule `rate(error_rate) > 0.5` over a 20 s window evaluated every
``--eval-interval`` seconds. Background traffic sends ok traces all along (10 a second). Each
round sends a burst of failing traces (the event: the time just before the POST), waits for the
firing alert at the webhook, then waits for the resolution (the burst leaves the window and the
ok traffic brings the rate down) and a random pause before the next round. Reports p50 / p95 / max of event ->
firing received, and of the resolution delay. Target: p95 < 30 s.

    .venv/bin/python bench/alert_latency.py            # 10 rounds on SQLite and PostgreSQL, writes docs/benchmarks.md
    .venv/bin/python bench/alert_latency.py --quick    # 5 rounds on SQLite, prints only
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ServerProcess,
    command_line,
    create_schema,
    default_keys,
    drop_schema,
    header_block,
    machine_facts,
    md_table,
    percentile,
    schema_url,
    write_section,
)

SECTION = "Alert latency"
WINDOW_S = 20
THRESHOLD = 0.5


class Hook:
    """A local webhook receiver: (time received, status, dedup key) per POST."""

    def __init__(self) -> None:
        self.got: list[tuple[float, str, str]] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                now = time.time()
                alert = body["podium"]["alert"]
                with hook.cond:
                    hook.got.append((now, alert["status"], alert["dedup_key"]))
                    hook.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float) -> tuple[float, str, str] | None:
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, timeout)
            return self.got[n - 1] if len(self.got) >= n else None

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def batch(n: int, error: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"batch": [{"type": "span", "body": {
        "id": uuid.uuid4().hex[:16], "trace_id": uuid.uuid4().hex, "name": "bench", "start_time": now.isoformat(),
        "end_time": (now + timedelta(milliseconds=20)).isoformat(), "status": "error" if error else "ok"}}
        for _ in range(n)]}


def run(db: str, url: str | None, rounds: int, eval_interval: int) -> dict[str, Any]:
    hook = Hook()
    with tempfile.TemporaryDirectory(prefix="podium-bench-alerts-") as home:
        server = ServerProcess(Path(home), database_url=url).start()
        stop = threading.Event()
        try:
            pk, sk = default_keys(Path(home))
            c = httpx.Client(base_url=server.url, auth=(pk, sk), timeout=30)
            r = c.post("/api/v1/alert-rules", json={
                "name": "bench-error-rate", "severity": "critical",
                "condition": {"metric": "error_rate", "agg": "rate"}, "op": ">", "threshold": THRESHOLD,
                "window_s": WINDOW_S, "cooldown_s": 0, "eval_interval_s": eval_interval,
                "channels": [{"type": "webhook", "params": {"url": hook.url, "retries": 0}}]})
            r.raise_for_status()

            def background() -> None:
                with httpx.Client(base_url=server.url, auth=(pk, sk), timeout=30) as bg:
                    while not stop.is_set():
                        bg.post("/api/v1/ingest", json=batch(5, False))
                        stop.wait(0.5)

            threading.Thread(target=background, daemon=True).start()
            time.sleep(2)
            fire: list[float] = []
            resolve: list[float] = []
            lost = 0
            rng = random.Random(20261206)
            for i in range(rounds):
                time.sleep(rng.uniform(0, eval_interval))  # a random phase against the evaluation cadence
                n = len(hook.got)
                t0 = time.time()
                c.post("/api/v1/ingest", json=batch(200, True)).raise_for_status()
                got = hook.wait(n + 1, 120)
                if got is None or got[1] != "firing":
                    lost += 1
                    print(f"  round {i + 1}: no firing alert within 120 s ({got})", flush=True)
                    print("  rule:", c.get("/api/v1/alert-rules/bench-error-rate").json(), flush=True)
                    print("  history:", c.get("/api/v1/alerts", params={"limit": 5}).json()["data"], flush=True)
                    print(server.tail_log(20), flush=True)
                    break
                fire.append(got[0] - t0)
                res = hook.wait(n + 2, 120)
                if res is None or res[1] != "resolved" or res[2] != got[2]:
                    lost += 1
                    print(f"  round {i + 1}: no matching resolution within 120 s ({res})", flush=True)
                    break
                resolve.append(res[0] - got[0])
                print(f"  {db} round {i + 1}/{rounds}: fired after {fire[-1]:.1f} s, resolved {resolve[-1]:.1f} s "
                      "later", flush=True)
            c.close()
        finally:
            stop.set()
            server.stop()
            hook.close()
    return {"db": db, "rounds": len(fire), "lost": lost, "fire": fire, "resolve": resolve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 rounds, SQLite only; prints only")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--eval-interval", type=int, default=10, help="the rule's eval_interval_s (default 10)")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "all"], default=None)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    rounds = args.rounds or (5 if args.quick else 10)
    dbs = ["sqlite", "postgresql"] if (args.db or ("sqlite" if args.quick else "all")) == "all" else [args.db or "sqlite"]
    write_docs = args.write_docs or not (args.quick or args.no_docs)
    results = []
    for db in dbs:
        if db == "postgresql":
            schema, _ = create_schema("bench_alerts")
            try:
                results.append(run(db, schema_url(schema), rounds, args.eval_interval))
            finally:
                drop_schema(schema)
        else:
            results.append(run(db, None, rounds, args.eval_interval))
    rows = []
    for r in results:
        f, s = r["fire"], r["resolve"]
        rows.append([r["db"], r["rounds"], f"{percentile(f, 50):.1f} s", f"{percentile(f, 95):.1f} s",
                     f"{max(f):.1f} s" if f else "-", f"{percentile(s, 50):.1f} s", r["lost"],
                     "yes" if f and percentile(f, 95) < 30 and not r["lost"] else "NO"])
    table = md_table(["database", "rounds", "event → firing p50", "p95", "max", "firing → resolved p50",
                      "missed", "p95 < 30 s"], rows)
    body = "\n\n".join([
        header_block(machine_facts(with_pg="postgresql" in dbs), command_line()),
        f"A real `podium up` (embedded worker), a rule `rate(error_rate) > {THRESHOLD}` over a {WINDOW_S} s window "
        f"evaluated every {args.eval_interval} s, cooldown 0, one webhook channel to a local HTTP server; ok traces "
        "in the background (10/s). Each round: after a random pause (0 to the interval, so bursts land at random "
        "points of the evaluation cycle) a burst of 200 failing traces (the event is the time just before "
        "the POST), then the firing alert at the webhook, then its resolution (same dedup key) once the burst "
        "leaves the window. The delay is bounded by the evaluation interval plus the worker's 1 s tick and the "
        "evaluation itself.",
        table,
    ])
    print()
    print(table)
    if write_docs:
        write_section(SECTION, body)
        print(f"\nwrote the '{SECTION}' section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
