"""Ingestion throughput: native batches against a real `podium up` server in its own process.

For each database (SQLite file in a temporary PODIUM_HOME; a fresh PostgreSQL schema) and
each batch size (100, 500, 1000 spans), a new server is started and several client
processes POST /api/v1/ingest in a closed loop for the configured time. Every request
carries new traces of 10-20 spans (chains/agents with generations + usage, retrievals,
tools, ...), so every acknowledged span must become exactly one row: after the run the
server is stopped gracefully and the span table is counted (COUNT CHECK).

Reported: spans/s acknowledged (200 responses completed inside the measured window, after a
short warm-up), p50/p95 request latency, server CPU (cores) and peak RSS, client CPU and
whole-machine CPU. The clients run on the same 2 cores as the server (and PostgreSQL).

    .venv/bin/python bench/ingest_throughput.py            # 60 s per configuration, writes docs
    .venv/bin/python bench/ingest_throughput.py --quick    # 10 s per configuration, prints only
    .venv/bin/python bench/ingest_throughput.py --profile  # also: py-spy profile of the server
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    OUT,
    RssSampler,
    ServerProcess,
    command_line,
    cpu_delta,
    create_schema,
    default_keys,
    drop_schema,
    fmt_int,
    git_commit,
    header_block,
    import_retry,
    machine_facts,
    md_table,
    named_processes_cpu,
    percentile,
    proc_cpu_seconds,
    proc_rss_mib,
    start_pyspy,
    summarize_pyspy,
    system_cpu_busy,
    write_section,
)
from _workload import RARE_TAG, TAGS, TraceSpec, make_trace

SECTION = "Ingestion throughput"
TARGETS = {"sqlite": 20_000.0, "postgresql": 10_000.0}
PFX = "QQPFXQQ"  # replaced per request by 28 hex chars -> unique trace ids
TS = "QQTSQQ"  # replaced per request by "YYYY-MM-DDTHH:MM" -> times move forward
MAX_REQUESTS_PER_CLIENT = 1_000_000  # a hard bound next to the time bound

# Written by hand from the profiles below and follow-up experiments (see bench/README.md).
ANALYSIS = """\
Measured at commit 7fdabce; re-check after write-path changes.

**Why the targets are missed.**

- *SQLite: one process, one GIL.* The server uses ~0.95 of a core while the machine is only ~1.0 of 2
  cores busy (the clients use < 0.1): a whole core idles. The event loop (JSON decode, pydantic
  validation, BatchBuilder, pricing) and the ingest writer (value conversion, `json.dumps` of JSON
  columns, `sqlite3` executemany, commit) take turns on one GIL — about half of the busy samples each.
  That is ~100-110 µs of server CPU per acknowledged span; 20,000 spans/s on one core needs ≤ 50 µs.
- *Where it goes* (SQLite, batch 1000, profile below). Event loop: `json.loads` of the body 28%,
  `model_validate` + the Python `AfterValidator`s (`utc`, `_check_id`) 22%, `BatchBuilder.add_span`
  16-19%, pricing 8-11% (two runs). Writer: sqlite3 executemany 34% (the only part that overlaps: sqlite3 releases the
  GIL), value conversion ~40% (`_sqlite_time` 14%, the per-column generator, `_dedupe` 9%),
  `json.dumps` 12-14%, commit 6%.
- *PostgreSQL: a serial pipeline, and a refresh that scans the project.* Server ~0.6 core + PostgreSQL
  ~0.6 core, machine ~1.25 of 2: the single writer converts values, then waits for PostgreSQL (60-70% of
  its samples are psycopg waiting), then converts again. Throughput declines during the minute
  (batch 1000: from ~9k to ~5k spans/s per 10 s in the table) because of the bug below.

**Bug (PostgreSQL): the trace-aggregate refresh reads every span of the project on each write.** The
`UPDATE trace ... FROM (SELECT ... FROM span WHERE project_id = :p AND trace_id IN (:ids) GROUP BY
trace_id)` of `_refresh_statement` gets `trace_id = ANY(...)` as a *filter*, not an index condition.
EXPLAIN (ANALYZE) for a 500-trace write into a project of 300k spans (statistics not yet refreshed by
autovacuum): `Bitmap Heap Scan on span ... Recheck Cond: (project_id = ...) Filter: (trace_id = ANY
(...)) Rows Removed by Filter: 295341` (18k blocks read, 105 ms), then a bitmap scan of all 30,000 traces
of the project; with fresh statistics on 100k spans it chose `Seq Scan on span` (95k rows removed). The
refresh grew from 25 to 208 ms per 5,000-span transaction as the table grew from 5k to 380k spans, and
the 1.1M-span bulk load of `bench/datagen.py` averaged 3,300 spans/s. **Fix:** drive the aggregate from
the id list, `FROM unnest(CAST(:ids AS text[])) AS k(id) CROSS JOIN LATERAL (SELECT min(start_time), ...
FROM span WHERE project_id = :p AND trace_id = k.id) AS a` and join `trace` on `(project_id, k.id)`:
the same aggregate took 115 ms with the IN list and 7.5 ms with unnest + LATERAL (493 index scans), and
it does not grow with the table. (SQLite plans the IN list through the index already.) An earlier
version of this refresh (per-row `UPDATE` via executemany, before commit 074dadf) had a worse form of the
same problem: psycopg prepares a statement after 5 runs, and PostgreSQL cached a generic plan built
while the table was empty that used `ix_trace_project_id_user_id_start_time` with only `project_id` as
the index condition (*Rows Removed by Filter: 4999* per updated row). Any per-row statement whose plan
depends on table size is exposed to this; `prepare_threshold=None` in the psycopg connect args (or
`plan_cache_mode=force_custom_plan`) removes the risk.

**Proposals, by expected payoff.**

1. PostgreSQL refresh: unnest + LATERAL as above (removes the O(project) scan; the decline over time).
2. Parse and validate in one pass from bytes: a `TypeAdapter` over the whole batch (a tagged union of
   span/trace/score items) with `validate_json(body)` — pydantic-core parses JSON in Rust without
   building Python dicts first — and fall back to today's per-item loop only when that raises, so
   per-item 207 errors stay. Replace the Python `AfterValidator`s by native constraints
   (`Field(pattern=...)` for ids; normalise time zones once in `BatchBuilder`). Targets ~50% of the
   event loop's time.
3. Writer conversion: SQLite time text straight from C (`v.astimezone(UTC).replace(tzinfo=None)
   .isoformat(" ")`, or keep the validated ISO string), `orjson.dumps` for JSON columns (several times
   faster than `json.dumps`), and skip `_dedupe` when a set of keys shows no duplicates. ~50% of the
   writer's time.
4. Use the second core. PostgreSQL: several `podium up` / uvicorn worker processes (each has its own
   writer; docs/architecture.md already allows it, upserts are idempotent). SQLite: parse/validate in
   worker processes and hand rows to the one writer, so request parsing stops sharing the writer's GIL.
5. PostgreSQL settings for ingest-heavy installs: this instance runs the defaults (shared_buffers
   128 MB, max_wal_size 1 GB, wal_compression off). Writing 60k spans into the 1.1M-span table wrote
   32k WAL full-page images (283 MiB of WAL) and 59k buffers were written out by the backend itself.
   Document shared_buffers ≈ 25% of RAM, `wal_compression = on`, a larger `max_wal_size`.

Larger batches help on SQLite (~7k spans/s at 100 spans, ~9k at 500-1,000) at the cost of latency
(p95 ~75 ms → ~600 ms): the writer merges concurrent requests into one transaction either way, so the
gain is mostly less per-request overhead.
"""


# --- payloads --------------------------------------------------------------------------------


def _ts(ms: float) -> str:
    """A time inside the request's minute: TS + ':SS.ffffffZ' (ms < 60,000)."""
    us = int(ms * 1000)
    return f"{TS}:{us // 1_000_000:02d}.{us % 1_000_000:06d}Z"


def _wire(tr: TraceSpec, k: int, t0_ms: float) -> list[dict[str, Any]]:
    trace_id = f"{PFX}{k:04x}"
    items: list[dict[str, Any]] = []
    for i, s in enumerate(tr.spans):
        body: dict[str, Any] = {
            "id": s.id,
            "trace_id": trace_id,
            "parent_id": s.parent_id,
            "name": s.name,
            "kind": s.kind,
            "start_time": _ts(t0_ms + s.start_ms),
            "end_time": _ts(t0_ms + s.start_ms + s.dur_ms),
            "status": s.status,
        }
        for f in ("status_message", "input", "output", "metadata", "model", "provider", "model_parameters"):
            v = getattr(s, f)
            if v is not None:
                body[f] = v
        if s.input_tokens is not None:
            body["usage"] = {"input_tokens": s.input_tokens, "output_tokens": s.output_tokens or 0}
        if s.ttft_ms is not None:
            body["completion_start_time"] = _ts(t0_ms + s.start_ms + s.ttft_ms)
        if i == 0:
            body.update(user_id=tr.user_id, session_id=tr.session_id, tags=tr.tags,
                        environment=tr.environment, release=tr.release)
        items.append({"type": "span", "body": body})
    return items


@dataclass
class Template:
    body: bytes
    n_spans: int
    n_traces: int


def make_templates(batch_size: int, seed: int, n: int = 6) -> list[Template]:
    """``n`` different batches of exactly ``batch_size`` spans (traces of 10-20 spans)."""
    rng = random.Random(seed)
    out: list[Template] = []
    for _ in range(n):
        items: list[dict[str, Any]] = []
        k = 0
        while len(items) < batch_size:
            size = min(rng.randint(10, 20), batch_size - len(items))
            tr = make_trace(rng, size, salt=rng.getrandbits(20), max_ms=45_000.0)
            tr.user_id = f"user-{rng.randint(1, 500)}"
            tr.session_id = f"{tr.user_id}-s{rng.randint(1, 20)}"
            tr.tags = rng.sample(TAGS, rng.randint(0, 3)) + ([RARE_TAG] if rng.random() < 0.001 else [])
            items += _wire(tr, k, rng.uniform(0, 9_000))
            k += 1
        body = json.dumps({"batch": items}, separators=(",", ":")).encode()
        out.append(Template(body, len(items), k))
    return out


# --- clients ---------------------------------------------------------------------------------


@dataclass
class ClientArgs:
    index: int
    url: str
    auth: tuple[str, str]
    batch_size: int
    nonce: str
    deadline_in: float  # seconds after the start signal
    base_time: datetime


def client_main(a: ClientArgs, ready: Any, go: Any, results: Any) -> None:
    templates = make_templates(a.batch_size, seed=1000 + a.index)
    recs: list[tuple[float, float, int, int, int]] = []  # (t_send, t_done, status, spans, traces)
    ready.set()
    go.wait(60)
    deadline = time.monotonic() + a.deadline_in
    pfx_head = f"{a.nonce}{a.index:04x}".encode()
    with httpx.Client(
        base_url=a.url, auth=httpx.BasicAuth(*a.auth), timeout=120,
        headers={"content-type": "application/json"},
    ) as client:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                break
            tpl = templates[n % len(templates)]
            minute = a.base_time + timedelta(minutes=(n * 7 + a.index) % 43_200)
            body = tpl.body.replace(PFX.encode(), pfx_head + f"{n:016x}".encode()).replace(
                TS.encode(), minute.strftime("%Y-%m-%dT%H:%M").encode()
            )
            t0 = time.monotonic()
            try:
                r = client.post("/api/v1/ingest", content=body)
                status = r.status_code
            except httpx.HTTPError:
                status = -1
            t1 = time.monotonic()
            recs.append((t0, t1, status, tpl.n_spans, tpl.n_traces))
            if status == 429:
                time.sleep(min(float(r.headers.get("retry-after", "1")), 2.0))
            elif status == -1:
                time.sleep(0.5)
    results.put((a.index, recs))


# --- one configuration -----------------------------------------------------------------------


@dataclass
class Result:
    db: str
    batch: int
    clients: int
    window_s: float
    spans_per_s: float
    req_per_s: float
    p50_ms: float
    p95_ms: float
    statuses: dict[int, int]
    server_cpu: float  # cores
    db_cpu: float  # PostgreSQL processes, cores (nan on SQLite)
    client_cpu: float
    system_cpu: float
    server_rss_peak: float
    acked_spans: int
    acked_traces: int
    rows_span: int
    rows_trace: int
    sum_span_count: int
    commit: str = ""
    profile: str | None = None
    slices: list[float] = field(default_factory=list)  # spans/s per 10-s slice of the window
    notes: list[str] = field(default_factory=list)

    @property
    def count_ok(self) -> bool:
        return (
            self.rows_span == self.acked_spans
            and self.rows_trace == self.acked_traces
            and self.sum_span_count == self.rows_span
        )


def _count(url: str) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from podium.store import tables as t
    from podium.store.engine import make_engine

    eng = make_engine(url)
    try:
        with eng.connect() as c:
            spans = c.execute(select(func.count()).select_from(t.span)).scalar_one()
            traces = c.execute(select(func.count()).select_from(t.trace)).scalar_one()
            total = c.execute(select(func.coalesce(func.sum(t.trace.c.span_count), 0))).scalar_one()
    finally:
        eng.dispose()
    return int(spans), int(traces), int(total)


def _pg_stats(url: str) -> str:
    """Per-index scans and tuples read, and sequential scans, in the benchmark's schema."""
    from sqlalchemy import text

    from podium.store.engine import make_engine

    eng = make_engine(url)
    try:
        with eng.connect() as c:
            idx = c.execute(text(
                "SELECT relname, indexrelname, idx_scan, idx_tup_read FROM pg_stat_user_indexes "
                "WHERE schemaname = current_schema() ORDER BY idx_tup_read DESC LIMIT 8"
            )).all()
            tab = c.execute(text(
                "SELECT relname, seq_scan, seq_tup_read, n_tup_ins, n_tup_upd, n_tup_hot_upd "
                "FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname IN ('span', 'trace')"
            )).all()
    finally:
        eng.dispose()
    lines = [f"{r[0]}.{r[1]}: {r[2]:,} scans, {r[3]:,} index tuples read" for r in idx]
    lines += [f"{r[0]}: {r[1]:,} seq scans ({r[2]:,} tuples), {r[3]:,} inserts, {r[4]:,} updates ({r[5]:,} HOT)"
              for r in tab]
    return "\n".join(lines)


def run_config(db: str, batch: int, clients: int, duration: float, warmup: float,
               profile_to: Path | None = None) -> Result:
    home = Path(tempfile.mkdtemp(prefix="podium-bench-ingest-"))
    schema = None
    url: str | None = None
    if db == "postgresql":
        schema, url = create_schema("bench_ingest")
    count_url = url or f"sqlite:///{home / 'podium.db'}"
    server = ServerProcess(home, url)
    commit = git_commit()
    try:
        server.start()
        auth = default_keys(home)
        # Preflight: one batch must come back 200 with every item accepted.
        pre = make_templates(batch, seed=7, n=1)[0]
        body = pre.body.replace(PFX.encode(), b"ffffffffffffffffffffffffffff").replace(
            TS.encode(), b"2026-01-01T00:00"
        )
        r = httpx.post(server.url + "/api/v1/ingest", content=body, auth=auth, timeout=60,
                       headers={"content-type": "application/json"})
        if r.status_code != 200 or len(r.json()["successes"]) != batch:
            raise RuntimeError(f"preflight failed: {r.status_code} {r.text[:500]}")
        acked_spans, acked_traces = pre.n_spans, pre.n_traces

        ctx = mp.get_context("fork")
        ready = [ctx.Event() for _ in range(clients)]
        go = ctx.Event()
        results = ctx.Queue()
        nonce = f"{random.getrandbits(32):08x}"
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=30)
        procs = [
            ctx.Process(
                target=client_main,
                args=(ClientArgs(i, server.url, auth, batch, nonce, warmup + duration, base), ready[i], go, results),
                daemon=True,
            )
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        for e in ready:
            e.wait(120)
        with RssSampler(server.pid) as rss:
            go.set()
            t_go = time.monotonic()
            time.sleep(warmup)
            w0 = time.monotonic()
            cpu_s0 = proc_cpu_seconds(server.pid)
            cpu_c0 = sum(proc_cpu_seconds(p.pid or 0) for p in procs)
            sys0 = system_cpu_busy()
            pg0 = named_processes_cpu("postgres") if db == "postgresql" else {}
            spy = start_pyspy(server.pid, profile_to, duration) if profile_to else None
            time.sleep(max(0.0, t_go + warmup + duration - time.monotonic()))
            w1 = time.monotonic()
            cpu_s1 = proc_cpu_seconds(server.pid)
            cpu_c1 = sum(proc_cpu_seconds(p.pid or 0) for p in procs)
            sys1 = system_cpu_busy()
            pg1 = named_processes_cpu("postgres") if db == "postgresql" else {}
            recs: list[tuple[float, float, int, int, int]] = []
            for _ in procs:
                _i, rr = results.get(timeout=300)
                recs += rr
            for p in procs:
                p.join(30)
            _, hwm = proc_rss_mib(server.pid)
            peak = max(rss.peak, hwm if hwm == hwm else 0.0)
        profile = None
        if spy is not None:
            _, err = spy.communicate(timeout=duration + 60)
            if profile_to and profile_to.exists():
                profile = summarize_pyspy(profile_to)
            else:
                profile = f"py-spy failed: {err.decode(errors='replace')[-500:]}"
        health = httpx.get(server.url + "/api/v1/health", timeout=10).json()
        rc = server.stop()
        if rc not in (0, None):
            print(f"server exited {rc}:\n{server.tail_log()}", file=sys.stderr)
        statuses: dict[int, int] = {}
        for _t0, _t1, st, n, k in recs:
            statuses[st] = statuses.get(st, 0) + 1
            if st == 200:
                acked_spans += n
                acked_traces += k
        window = w1 - w0
        inwin = [r for r in recs if w0 <= r[1] <= w1 and r[2] == 200]
        lat = [(r[1] - r[0]) * 1000 for r in inwin]
        n_slices = max(1, round(window / 10))
        edges = [w0 + window * i / n_slices for i in range(n_slices + 1)]
        slices = [
            sum(r[3] for r in inwin if edges[i] <= r[1] < edges[i + 1]) / (edges[i + 1] - edges[i])
            for i in range(n_slices)
        ]
        rows_span, rows_trace, sum_sc = _count(count_url)
        db_stats = _pg_stats(count_url) if db == "postgresql" else ""
        res = Result(
            db=db, batch=batch, clients=clients, window_s=window,
            spans_per_s=sum(r[3] for r in inwin) / window, req_per_s=len(inwin) / window,
            p50_ms=percentile(lat, 50), p95_ms=percentile(lat, 95), statuses=statuses,
            server_cpu=(cpu_s1 - cpu_s0) / window,
            db_cpu=cpu_delta(pg0, pg1) / window if db == "postgresql" else float("nan"),
            client_cpu=(cpu_c1 - cpu_c0) / window,
            system_cpu=(sys1[0] - sys0[0]) / window, server_rss_peak=peak,
            acked_spans=acked_spans, acked_traces=acked_traces,
            rows_span=rows_span, rows_trace=rows_trace, sum_span_count=sum_sc, profile=profile,
            slices=slices, commit=commit,
        )
        res.notes.append(f"health: {json.dumps(health.get('ingest', health), default=str)[:300]}")
        if db_stats:
            res.notes.append(db_stats)
        return res
    finally:
        server.stop()
        if schema:
            drop_schema(schema)
        shutil.rmtree(home, ignore_errors=True)


# --- report ----------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    rows = []
    for r in results:
        other = {k: v for k, v in r.statuses.items() if k != 200}
        rows.append([
            r.db, r.batch, r.clients, f"**{fmt_int(r.spans_per_s)}**",
            " → ".join(f"{x / 1000:.1f}k" for x in r.slices) if len(r.slices) > 1 else "-",
            f"{r.req_per_s:.1f}",
            f"{r.p50_ms:.0f}", f"{r.p95_ms:.0f}", f"{r.server_cpu:.2f}",
            "-" if r.db_cpu != r.db_cpu else f"{r.db_cpu:.2f}", f"{r.client_cpu:.2f}",
            f"{r.system_cpu:.2f}", f"{r.server_rss_peak:.0f}",
            f"{fmt_int(r.acked_spans)} / {fmt_int(r.rows_span)} {'✅' if r.count_ok else '❌'}",
            ", ".join(f"{k}: {v}" for k, v in sorted(other.items())) or "none",
        ])
    return md_table(
        ["db", "batch (spans)", "clients", "spans/s acked", "spans/s per 10 s", "req/s", "p50 ms", "p95 ms",
         "server CPU (cores)", "PostgreSQL CPU", "client CPU", "machine CPU (of 2)", "server RSS peak MiB",
         "COUNT CHECK acked / rows", "non-200"],
        rows,
    )


def verdicts(results: list[Result]) -> list[str]:
    out = []
    for db, target in TARGETS.items():
        rs = [r for r in results if r.db == db]
        if not rs:
            continue
        best = max(rs, key=lambda r: r.spans_per_s)
        met = "MET" if best.spans_per_s >= target else "NOT MET"
        out.append(
            f"- {db}: target ≥ {fmt_int(target)} spans/s — **{met}** (best {fmt_int(best.spans_per_s)} spans/s "
            f"at batch {best.batch}; {best.spans_per_s / target:.0%} of target)"
        )
    for r in results:
        if not r.count_ok:
            out.append(
                f"- COUNT CHECK FAILED for {r.db} batch {r.batch}: acked {r.acked_spans} spans / "
                f"{r.acked_traces} traces, stored {r.rows_span} spans / {r.rows_trace} traces, "
                f"sum(trace.span_count) = {r.sum_span_count}"
            )
    commits = sorted({r.commit for r in results})
    if len(commits) > 1:
        out.append("- NOTE: the code changed during this run; commits per row: "
                   + ", ".join(f"{r.db}/{r.batch}: {r.commit}" for r in results))
    if results and all(r.count_ok for r in results):
        out.append("- COUNT CHECK passed everywhere: span rows == spans acknowledged, trace rows == traces "
                   "acknowledged, and sum(trace.span_count) == span rows.")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 s per configuration; prints only (see --write-docs)")
    ap.add_argument("--duration", type=float, help="measured seconds per configuration (default 60, quick 10)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before the measured window")
    ap.add_argument("--clients", type=int, default=4, help="client processes (each one connection, closed loop)")
    ap.add_argument("--batch-sizes", default="100,500,1000")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--profile", action="store_true",
                    help="after the matrix, profile the server with py-spy at batch 1000 (20 s per db)")
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true", help="never write docs/benchmarks.md")
    args = ap.parse_args()
    duration = min(max(args.duration or (10.0 if args.quick else 60.0), 1.0), 600.0)
    clients = min(max(args.clients, 1), 32)
    dbs = ["sqlite", "postgresql"] if args.db == "all" else [args.db]
    sizes = [min(max(int(x), 1), 5000) for x in args.batch_sizes.split(",")]
    import_retry("podium.server.app")

    facts = machine_facts(with_pg="postgresql" in dbs)
    print("\n".join(f"{k}: {v}" for k, v in facts.items()), flush=True)
    results: list[Result] = []
    for db in dbs:
        for bs in sizes:
            print(f"\n>>> {db}, batch {bs}, {clients} clients, {duration:.0f} s ...", flush=True)
            r = run_config(db, bs, clients, duration, args.warmup)
            results.append(r)
            print(table([r]), flush=True)
            print("\n".join(r.notes), flush=True)
    profiles: list[tuple[str, str]] = []
    if args.profile:
        pdir = OUT / "profiles"
        pdir.mkdir(parents=True, exist_ok=True)
        for db in dbs:
            pdur = min(duration, 20.0)
            print(f"\n>>> profiling {db}, batch 1000, {pdur:.0f} s (py-spy, 100 Hz) ...", flush=True)
            path = pdir / f"ingest-{db}-1000.txt"
            r = run_config(db, 1000, clients, pdur, args.warmup, profile_to=path)
            profiles.append((db, f"({fmt_int(r.spans_per_s)} spans/s while profiled; raw stacks: "
                                 f"bench/out/profiles/{path.name})\n\n{r.profile or '(no profile)'}"))
            print(r.profile, flush=True)

    print("\n" + table(results))
    v = verdicts(results)
    print("\n".join(v))
    if args.no_docs or (args.quick and not args.write_docs):
        return 0 if all(r.count_ok for r in results) else 1
    body = [
        header_block(facts, command_line()),
        "",
        f"Setup: `podium up` (uvicorn, one process, default settings) in its own process, on a fresh "
        f"database per row (SQLite file in a temporary PODIUM_HOME with WAL; or a fresh PostgreSQL schema). "
        f"{clients} client processes, one keep-alive HTTP/1.1 connection each, POST `/api/v1/ingest` in a "
        f"closed loop: native batches of N spans, new trace ids every request (traces of 10-20 spans: chain/agent "
        f"root with user, session and tags; generations with model + usage, so the server prices them; "
        f"retrievals, embeddings, tools, guardrails; ~3% errors; ~0.5 KB of JSON per span). "
        f"{args.warmup:.0f} s warm-up, then {duration:.0f} s measured. "
        "**The clients share the 2 cores with the server (and PostgreSQL)**: the client and machine CPU "
        "columns say how much. spans/s = spans in 200 responses completed inside the window / window. "
        "The COUNT CHECK stops the server gracefully and counts rows: every acknowledged span is stored "
        "exactly once.",
        "",
        table(results),
        "",
        "Targets (from the issue): ≥ 20,000 spans/s on SQLite, ≥ 10,000 spans/s on PostgreSQL.",
        "",
        *v,
    ]
    body += ["", "### Analysis and proposals", "", ANALYSIS]
    for db, prof in profiles:
        body += ["", f"### Server profile, {db}, batch 1000", "", "```text", prof, "```"]
    write_section(SECTION, "\n".join(body))
    print(f"\nwrote section '{SECTION}' of docs/benchmarks.md")
    return 0 if all(r.count_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
