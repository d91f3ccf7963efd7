"""The columnar span store (ClickHouse in-process through chDB) against PostgreSQL.

    .venv/bin/python bench/columnar.py                      # 10^7 spans in chDB, 10^6 on PostgreSQL
    .venv/bin/python bench/columnar.py --spans 1000000 --pg-spans 0 --no-write   # quick look
    .venv/bin/python bench/columnar.py --ingest-only            # ingestion figures only (~3 minutes)

1. Ingestion. The store stage alone: ``ColumnarIngestRepo.write`` (probe, read-before-write, merge, usage
   flags, trace aggregates, one block per table) over ready ``IngestBatch`` objects of new traces, ~1 KB
   spans, in batches of 1,000 and 10,000 (``--batches``): spans/s, process and writer-thread CPU per span,
   and a re-sent batch (the merge path); ``--profile`` prints a cProfile of it. End to end: ``podium up``
   with the columnar store, client processes POSTing native ``/api/v1/ingest`` batches: spans/s
   acknowledged and the server's CPU per span, every acknowledged span counted afterwards.
   ``--ingest-only`` measures only this and replaces only its subsection of the section.
2. Reads at size: ``--spans`` synthetic spans (5 per trace, 30 days, 2,000 users) generated inside
   ClickHouse (``INSERT ... SELECT FROM numbers()``: seconds for 10^7), then the trace list (newest 50;
   by user; by model; slowest first) and the trace detail (trace + its spans + its scores, as
   ``GET /traces/{id}`` does) through the repositories, p50/p95 over ``--reps`` calls.
3. The same rows copied into PostgreSQL (``--pg-spans``: COPY of ClickHouse's TSV, indexes built
   after) and the same repository calls there.
4. Disk bytes per span in each (ClickHouse: active parts of span + trace; PostgreSQL: tables + indexes).

Writes the "Columnar span store" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    command_line,
    fmt_int,
    header_block,
    machine_facts,
    md_table,
    percentile,
    pg_schema,
    write_section,
)

SECTION = "Columnar span store"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
SPANS_PER_TRACE = 5
USERS = 2000
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-8b", "mistral-7b"]
WORDS = ["the", "model", "answer", "question", "context", "user", "assistant", "system", "tool", "call", "result", "error", "retry", "token", "prompt", "document", "search", "vector", "cache", "latency", "budget", "price", "order", "invoice", "refund", "account", "shipping", "weather", "city", "report", "summary"]


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


# --- 1. ingestion --------------------------------------------------------------------------------


def _span_rows(pid: str, n: int, rng: random.Random, offset: int) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        i = offset + k
        tid = f"{i // SPANS_PER_TRACE:032x}"
        j = i % SPANS_PER_TRACE
        st = T0 + timedelta(seconds=i // SPANS_PER_TRACE, milliseconds=100 * j)
        llm = j == SPANS_PER_TRACE - 1
        text = " ".join(rng.choice(WORDS) for _ in range(60))  # ~420 bytes each way
        rows.append({
            "project_id": pid, "trace_id": tid, "id": f"s{j}", "parent_id": None if j == 0 else "s0",
            "name": "llm" if llm else f"step-{j}", "kind": "generation" if llm else "span", "start_time": st,
            "end_time": st + timedelta(milliseconds=80), "latency_ms": 80.0, "status": "ok", "status_message": None,
            "model": MODELS[i % len(MODELS)] if llm else None, "provider": "openai" if llm else None,
            "model_parameters": {"temperature": 0.2} if llm else None, "input": {"role": "user", "content": text},
            "output": text[::-1], "metadata": {"k": j}, "attributes": None,
            "input_tokens": 120 if llm else None, "output_tokens": 40 if llm else None,
            "total_tokens": 160 if llm else None, "usage_details": None, "usage_estimated": False if llm else None,
            "cost_input": Decimal("0.0003") if llm else None, "cost_output": Decimal("0.0004") if llm else None,
            "cost_total": Decimal("0.0007") if llm else None, "completion_start_time": None,
            "prompt_name": None, "prompt_version": None, "updated_at": None,
        })
    return rows


def make_batches(pid: str, total: int, batch: int, seed: int = 7) -> list[Any]:
    """``total`` spans as ready ``IngestBatch`` objects of ``batch`` spans (what the server's writer
    hands the store): new traces of 5 spans, a trace hint (user, session, environment) and a tag
    on each root span, as ``server/convert.py`` builds them."""
    from podium.store.repos.ingest import IngestBatch

    rng = random.Random(seed)
    out = []
    for lo in range(0, total, batch):
        spans = _span_rows(pid, min(batch, total - lo), rng, lo)
        hints: list[Any] = []
        tags: list[tuple[str, str, str]] = []
        for s in spans:
            if s["parent_id"] is None:
                n = int(s["trace_id"], 16)
                hints.append({"project_id": pid, "id": s["trace_id"], "name": None, "user_id": f"u{n % USERS}",
                              "session_id": f"sess{n // 10}", "release": None, "environment": "prod",
                              "metadata": None, "input": None, "output": None})
                tags.append((pid, s["trace_id"], f"tag{n % 3}"))
        out.append(IngestBatch(spans=spans, traces=hints, tags=tags))  # type: ignore[arg-type]  # plain dicts with the rows' keys
    return out


def _check_stored(client: Any, pid: str, spans: int) -> None:
    """Acknowledged = stored: every span once, every trace once, its span_count summing to the spans."""
    n_spans = client.query("SELECT count() FROM $db.span FINAL WHERE project_id = {p:String}", {"p": pid})[0][0]
    n_traces, total = client.query("SELECT count(), sum(span_count) FROM $db.trace FINAL WHERE project_id = {p:String}",
                                   {"p": pid})[0]
    assert (n_spans, n_traces, total) == (spans, spans // SPANS_PER_TRACE, spans), (n_spans, n_traces, total, spans)


def bench_store(client: Any, pid: str, total: int, batch: int, profile: bool = False) -> dict[str, float]:
    """The store stage alone: ``ColumnarIngestRepo.write`` over ready batches. CPU per span is the
    process's (every thread: chDB's parsing, compression and background merges included) and the
    writer thread's own (the Python write path plus what chDB runs on the calling thread)."""
    import cProfile
    import pstats

    from podium.store.columnar import ColumnarIngestRepo

    repo = ColumnarIngestRepo(client)
    batches = make_batches(pid, total, batch)
    wall = cpu = thread = 0.0
    prof = cProfile.Profile() if profile else None
    for b in batches:
        t, c, th = time.perf_counter(), time.process_time(), time.thread_time()
        if prof is not None:
            prof.enable()
        repo.write(b)
        if prof is not None:
            prof.disable()
        wall += time.perf_counter() - t
        cpu += time.process_time() - c
        thread += time.thread_time() - th
    _check_stored(client, pid, total)
    # A re-sent batch (a client retry): every span is stored already, so it goes through the merge path.
    again = make_batches(pid, batch, batch)[0]
    t, c = time.perf_counter(), time.process_time()
    repo.write(again)
    resend_wall, resend_cpu = time.perf_counter() - t, time.process_time() - c
    _check_stored(client, pid, total)
    if prof is not None:
        print(f"--- cProfile of the store stage, batches of {batch:,} (tottime, top 25)")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return {"sps": total / wall, "cpu_us": cpu / total * 1e6, "thread_us": thread / total * 1e6,
            "resend_sps": batch / resend_wall, "resend_cpu_us": resend_cpu / batch * 1e6}


def bench_e2e(seconds: float, batch: int, clients: int) -> dict[str, Any]:
    """End to end: ``podium up`` with the columnar store (chDB under its PODIUM_HOME) in its own process,
    ``clients`` processes POSTing native ``/api/v1/ingest`` batches of new traces in a closed loop
    (bench/ingest_throughput.py's clients and payloads). Spans/s acknowledged in the window and the
    server's CPU per acknowledged span; after a graceful stop, the stored spans are counted."""
    import json
    import multiprocessing as mp
    import subprocess

    import httpx

    from bench._common import ServerProcess, default_keys, proc_cpu_seconds
    from bench.ingest_throughput import PFX, TS, ClientArgs, client_main, make_templates

    home = Path(tempfile.mkdtemp(prefix="bench-columnar-e2e-"))
    server = ServerProcess(home, extra_env={"PODIUM_SPAN_STORE": "clickhouse",
                                            "PODIUM_CLICKHOUSE_URL": f"chdb://{home / 'chdb'}"})
    try:
        server.start(timeout=180)
        auth = default_keys(home)
        pre = make_templates(batch, seed=7, n=1)[0]
        body = pre.body.replace(PFX.encode(), b"ffffffffffffffffffffffffffff").replace(TS.encode(), b"2026-01-01T00:00")
        r = httpx.post(server.url + "/api/v1/ingest", content=body, auth=auth, timeout=120,
                       headers={"content-type": "application/json"})
        if r.status_code != 200 or len(r.json()["successes"]) != batch:
            raise RuntimeError(f"preflight failed: {r.status_code} {r.text[:500]}")
        acked = pre.n_spans
        ctx = mp.get_context("fork")
        ready = [ctx.Event() for _ in range(clients)]
        go = ctx.Event()
        results = ctx.Queue()
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=30)
        warmup = 5.0
        procs = [ctx.Process(target=client_main, daemon=True, args=(
            ClientArgs(i, server.url, auth, batch, f"{random.getrandbits(32):08x}", warmup + seconds, base),
            ready[i], go, results)) for i in range(clients)]
        for p in procs:
            p.start()
        for e in ready:
            e.wait(120)
        go.set()
        t_go = time.monotonic()
        time.sleep(warmup)
        w0, s0 = time.monotonic(), proc_cpu_seconds(server.pid)
        time.sleep(max(0.0, t_go + warmup + seconds - time.monotonic()))
        w1, s1 = time.monotonic(), proc_cpu_seconds(server.pid)
        recs: list[tuple[float, float, int, int, int]] = []
        for _ in procs:
            recs += results.get(timeout=600)[1]
        for p in procs:
            p.join(30)
        server.stop(timeout=300)
        acked += sum(r[3] for r in recs if r[2] == 200)
        inwin = [r for r in recs if w0 <= r[1] <= w1 and r[2] == 200]
        window_spans = sum(r[3] for r in inwin)
        # chDB opens one data directory per process: count in a child process.
        code = ("import sys; from podium.store.columnar import open_columnar; c = open_columnar(sys.argv[1]); "
                "print(c.query('SELECT count() FROM $db.span FINAL')[0][0], "
                "c.query('SELECT sum(span_count) FROM $db.trace FINAL')[0][0])")
        out = subprocess.run([sys.executable, "-c", code, f"chdb://{home / 'chdb'}"], capture_output=True, text=True,
                             check=True, cwd=str(Path(__file__).resolve().parent.parent)).stdout.split()
        stored, summed = int(out[0]), int(out[1])
        assert stored == acked == summed, (stored, acked, summed)
        lat = sorted((r[1] - r[0]) * 1000 for r in inwin)
        return {"sps": window_spans / (w1 - w0), "server_cpu_us": (s1 - s0) / max(window_spans, 1) * 1e6,
                "server_cores": (s1 - s0) / (w1 - w0), "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
                "acked": acked, "statuses": json.dumps({str(k): sum(1 for r in recs if r[2] == k)
                                                        for k in {r[2] for r in recs}})}
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


# --- 2. reads at size ----------------------------------------------------------------------------


def _words_sql(seed: str, n: int) -> str:
    arr = "[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    return f"arrayStringConcat(arrayMap(i -> {arr}[1 + cityHash64({seed}, i) % {len(WORDS)}], range({n})), ' ')"


def generate(client: Any, pid: str, n_spans: int) -> float:
    n_traces = n_spans // SPANS_PER_TRACE
    step_ms = max(1, 30 * 86_400_000 // max(n_traces, 1))
    base = T0.strftime("%Y-%m-%d %H:%M:%S")
    tid = "lower(concat(hex(cityHash64(tn)), hex(cityHash64(tn, 1))))"
    models = "[" + ",".join(f"'{m}'" for m in MODELS) + "]"
    t = time.perf_counter()
    client.command(f"""
        INSERT INTO $db.span (project_id, trace_id, id, parent_id, name, kind, start_time, end_time, latency_ms,
            status, status_message, model, provider, model_parameters, input, output, metadata, attributes,
            input_tokens, output_tokens, total_tokens, usage_details, usage_estimated, usage_counted,
            cost_input, cost_output, cost_total, completion_start_time, prompt_name, prompt_version,
            updated_at, version)
        SELECT '{pid}', {tid}, concat('s', toString(j)), if(j = 0, NULL, 's0'),
            if(j = {SPANS_PER_TRACE - 1}, 'llm', concat('step-', toString(j))),
            if(j = {SPANS_PER_TRACE - 1}, 'generation', 'span'),
            st, st + toIntervalMillisecond(80), 80.0, if(tn % 37 = 0 AND j = 1, 'error', 'ok'), NULL,
            if(j = {SPANS_PER_TRACE - 1}, {models}[1 + tn % {len(MODELS)}], NULL),
            if(j = {SPANS_PER_TRACE - 1}, 'openai', NULL),
            if(j = {SPANS_PER_TRACE - 1}, '{{"temperature": 0.2}}', NULL),
            toJSONString(map('role', 'user', 'content', {_words_sql("number", 60)})),
            toJSONString({_words_sql("number + 7", 60)}),
            concat('{{"k": ', toString(j), '}}'), NULL,
            if(j = {SPANS_PER_TRACE - 1}, 120, NULL), if(j = {SPANS_PER_TRACE - 1}, 40, NULL),
            if(j = {SPANS_PER_TRACE - 1}, 160, NULL), NULL,
            if(j = {SPANS_PER_TRACE - 1}, false, NULL), if(j = {SPANS_PER_TRACE - 1}, true, NULL),
            if(j = {SPANS_PER_TRACE - 1}, toDecimal64('0.0003', 10), NULL),
            if(j = {SPANS_PER_TRACE - 1}, toDecimal64('0.0004', 10), NULL),
            if(j = {SPANS_PER_TRACE - 1}, toDecimal64('0.0007', 10), NULL),
            NULL, NULL, NULL, st, 1
        FROM (SELECT number, intDiv(number, {SPANS_PER_TRACE}) AS tn, number % {SPANS_PER_TRACE} AS j,
                     toDateTime64('{base}', 6, 'UTC') + toIntervalMillisecond(tn * {step_ms} + 100 * j) AS st
              FROM numbers({n_spans}))
        SETTINGS max_insert_threads = 2
    """)
    client.command(f"""
        INSERT INTO $db.trace (project_id, id, name, name_explicit, user_id, session_id, release, environment,
            metadata, input, output, input_explicit, output_explicit, start_time, end_time, latency_ms, status,
            span_count, error_count, input_tokens, output_tokens, total_tokens, total_cost, updated_at, version)
        SELECT '{pid}', {tid}, 'step-0', false, concat('u', toString(tn % {USERS})),
            concat('sess', toString(intDiv(tn, 10))), NULL, 'prod', NULL,
            toJSONString(map('role', 'user', 'content', {_words_sql("tn * 5", 60)})),
            toJSONString({_words_sql("tn * 5 + 7", 60)}), false, false, st,
            st + toIntervalMillisecond({100 * (SPANS_PER_TRACE - 1) + 80}), {100.0 * (SPANS_PER_TRACE - 1) + 80},
            if(tn % 37 = 0, 'error', 'ok'), {SPANS_PER_TRACE}, if(tn % 37 = 0, 1, 0), 120, 40, 160,
            toDecimal64('0.0007', 10), st, 1
        FROM (SELECT number AS tn, toDateTime64('{base}', 6, 'UTC') + toIntervalMillisecond(tn * {step_ms}) AS st
              FROM numbers({n_traces}))
    """)
    return time.perf_counter() - t


def timed(fn: Any, reps: int) -> tuple[float, float, int, float]:
    """p50 and p95 wall ms, rows of the last call, and the median CPU ms of this process per call
    (chDB runs in it: its work on every thread; PostgreSQL's work is in the server, not counted)."""
    fn(0)  # warm-up
    xs, cpu = [], []
    rows = 0
    for i in range(reps):
        t, c = time.perf_counter(), time.process_time()
        rows = fn(i + 1)
        xs.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return percentile(xs, 50), percentile(xs, 95), rows, percentile(cpu, 50)


def read_queries(traces: Any, scores: Any, pid: str, trace_ids: list[str], reps: int) -> dict[str, tuple[float, float, int, float]]:
    from podium.store.repos.scores import ScoreFilter
    from podium.store.repos.traces import TraceFilter

    def detail(i: int) -> int:
        tid = trace_ids[i % len(trace_ids)]
        traces.get_trace(pid, tid)
        spans = traces.list_spans(pid, tid, limit=1000).items
        scores.list_scores(pid, ScoreFilter(trace_id=tid), limit=1000)
        return len(spans)

    return {
        "trace list: newest 50": timed(lambda i: len(traces.list_traces(pid, TraceFilter()).items), reps),
        "trace list: one user (newest 50)": timed(
            lambda i: len(traces.list_traces(pid, TraceFilter(user_id=f"u{(i * 37) % USERS}")).items), reps),
        "trace list: model filter (newest 50)": timed(
            lambda i: len(traces.list_traces(pid, TraceFilter(model=MODELS[i % len(MODELS)])).items), reps),
        "trace list: slowest 50, last day": timed(
            lambda i: len(traces.list_traces(pid, TraceFilter(start_after=T0 + timedelta(days=29)),
                                             sort="latency_ms").items), reps),
        "trace detail (trace + spans + scores)": timed(detail, reps),
    }


def ch_bytes(client: Any) -> int:
    return int(client.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {d:String} AND active "
                            "AND table IN ('span', 'trace')", {"d": client.database})[0][0])


# --- 3. the same rows on PostgreSQL --------------------------------------------------------------


def copy_to_pg(client: Any, pg_url: str, pid: str, n_spans: int, tmp: Path) -> tuple[Any, float]:
    from sqlalchemy import text

    from podium.store import Store
    from podium.store import tables as t
    from podium.store.columnar.rows import SPAN_COLUMNS, TRACE_COLUMNS

    store = Store.from_url(pg_url)
    with store.engine.begin() as c:
        c.execute(t.project.insert().values(id=pid, name="bench-columnar", created_at=datetime.now(UTC)))
    t0 = time.perf_counter()
    n_traces = n_spans // SPANS_PER_TRACE
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        idx = []
        for table in ("span", "trace"):
            cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND schemaname = "
                        "current_schema() AND indexname NOT IN (SELECT conname FROM pg_constraint)", (table,))
            for name, ddl in cur.fetchall():
                idx.append(ddl)
                cur.execute(f'DROP INDEX "{name}"')
        raw.commit()
        for table, cols, n in (("span", SPAN_COLUMNS, n_spans), ("trace", TRACE_COLUMNS, n_traces)):
            chunk = 1_000_000
            for lo in range(0, n, chunk):
                path = tmp / f"{table}.tsv"
                path.unlink(missing_ok=True)
                select = ", ".join(f"`{c}`" for c in cols)
                order = "trace_id, id" if table == "span" else "id"
                client.command(f"SELECT {select} FROM $db.{table} WHERE project_id = '{pid}' "
                               f"ORDER BY {order} LIMIT {chunk} OFFSET {lo} INTO OUTFILE '{path}' FORMAT TSV")
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp, path.open("rb") as f:
                    while block := f.read(1 << 20):
                        cp.write(block)
                raw.commit()
                log(f"  postgresql: {table} {min(lo + chunk, n):,}/{n:,}")
        for ddl in idx:
            cur.execute(ddl)
            raw.commit()
        cur.execute("ANALYZE span")
        cur.execute("ANALYZE trace")
        raw.commit()
    finally:
        raw.close()
    with store.engine.connect() as c:
        size = c.execute(text("SELECT pg_total_relation_size('span') + pg_total_relation_size('trace')")).scalar_one()
    return (store, int(size)), time.perf_counter() - t0


# The write path before it was made column-oriented (a row dict per span, `json.dumps` per JSON cell,
# an `Array(String)` parameter per read, clickhouse-connect's Native encoding in Python), measured with
# this script (`--ingest-only --ingest-spans 50000 --e2e-seconds 30`) on the same machine in the same
# session, load average ~9: the baseline the figures above are compared with.
BEFORE = """\
*Before* (the row-by-row write path at commit d588e6f, same script and machine, 2026-12-07 06:00 UTC, load
average ~9): 1,000-span batches 2,870 spans/s, 114 µs process / 45 µs writer-thread CPU per span; 10,000-span
batches 6,136 spans/s, 47 / 30 µs; end to end 2,000 spans/s acknowledged at 153 µs of server CPU per span
(p50 996 ms, p95 1,538 ms)."""


def ingest_section(args: Any, store_res: dict[int, dict[str, float]], e2e: dict[str, Any],
                   load: tuple[float, float, float]) -> str:
    if not store_res and not e2e:
        return ""
    out = ["### Ingestion into chDB\n"]
    if store_res:
        rows = []
        for size, r in store_res.items():
            rows.append([f"`ColumnarIngestRepo.write`, {size:,}-span batches of new traces", f"**{fmt_int(r['sps'])}**",
                         f"{r['cpu_us']:.1f}", f"{r['thread_us']:.1f}", fmt_int(1e6 / r["cpu_us"]), ">= 100,000"])
            rows.append([f"the same, a re-sent batch of {size:,} (every span stored already: merged)",
                         fmt_int(r["resend_sps"]), f"{r['resend_cpu_us']:.1f}", "", "", ""])
        out.append(md_table(["store stage", "spans/s (wall)", "CPU µs/span (process)", "CPU µs/span (writer thread)",
                             "spans/s per busy core", "target"], rows))
        out.append(
            f"\n{args.ingest_spans:,} spans per batch size (~1 KB of input/output each, traces of {SPANS_PER_TRACE} "
            "spans, a trace hint and a tag per trace), the batches built before the clock starts (what the "
            "server's writer hands the store); acknowledged = stored checked (`count() FINAL`, and the traces' "
            "`span_count` summing to the spans). *Process* CPU counts every thread of the process (chDB's JSON "
            "parsing, sorting, compression and background merges included); *writer thread* is the calling "
            "thread alone (the Python write path and the part of the insert chDB runs on it). *Spans/s per busy "
            "core* = 10^6 / process µs: what one otherwise idle core would do.\n")
    out.append(BEFORE + "\n")
    if e2e:
        out.append(md_table(
            ["end to end (`podium up`, columnar store)", "spans/s acknowledged", "server CPU µs/span",
             "server cores busy", "p50 ms", "p95 ms"],
            [[f"native `/api/v1/ingest`, {args.e2e_batch:,}-span requests, {args.e2e_clients} client processes",
              f"**{fmt_int(e2e['sps'])}**", f"{e2e['server_cpu_us']:.0f}", f"{e2e['server_cores']:.2f}",
              f"{e2e['p50_ms']:.0f}", f"{e2e['p95_ms']:.0f}"]]))
        out.append(
            f"\n{args.e2e_seconds:.0f} s window after 5 s of warm-up; the clients run on the same cores. Every "
            f"acknowledged span stored ({fmt_int(e2e['acked'])} counted after a graceful stop; statuses "
            f"{e2e['statuses']}). Server CPU per span covers the whole request: HTTP, JSON decoding, validation, "
            "pricing and conversion on the event loop, then the writer thread's store stage.\n")
    return "\n".join(out)


def splice_ingest(ingest_text: str) -> str:
    """The current section with its "### Ingestion into chDB" subsection replaced (``--ingest-only``)."""
    import re

    from bench._common import DOCS

    text = DOCS.read_text()
    m = re.search(rf"^## {re.escape(SECTION)}[ \t]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    body = m.group(1) if m else ""
    sub = re.compile(r"^### Ingestion into chDB\n.*?(?=^### |\Z)", re.S | re.M)
    if sub.search(body):
        return sub.sub(lambda _m: ingest_text.rstrip("\n") + "\n\n", body, count=1)
    return body.rstrip("\n") + "\n\n" + ingest_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=10_000_000, help="spans generated for the read queries")
    ap.add_argument("--pg-spans", type=int, default=1_000_000, help="spans copied to PostgreSQL (0: skip)")
    ap.add_argument("--ingest-spans", type=int, default=50_000,
                    help="spans written through ColumnarIngestRepo per batch size (0: skip)")
    ap.add_argument("--batches", default="1000,10000", help="batch sizes of the store stage")
    ap.add_argument("--e2e-seconds", type=float, default=30.0, help="end-to-end window through the server (0: skip)")
    ap.add_argument("--e2e-batch", type=int, default=1000, help="spans per /api/v1/ingest request")
    ap.add_argument("--e2e-clients", type=int, default=2, help="client processes posting in a closed loop")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the store stage")
    ap.add_argument("--ingest-only", action="store_true",
                    help="only the ingestion figures: replace that subsection, keep the read figures as they are")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()

    from sqlalchemy import create_engine

    from podium.store.columnar import open_columnar
    from podium.store.columnar.reads import ColumnarScoreRepo, ColumnarTraceRepo

    facts = machine_facts()
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-columnar-"))
    ch_dir = work / "chdb"
    lines: list[str] = []
    try:
        client = open_columnar(f"chdb://{ch_dir}?database=bench")
        import chdb

        facts["chDB"] = f"{getattr(chdb, '__version__', '?')} (ClickHouse {client.query('SELECT version()')[0][0]})"
        pid = "bench-project"
        # 1. ingestion
        store_res: dict[int, dict[str, float]] = {}
        for size in [int(x) for x in args.batches.split(",") if x] if args.ingest_spans else []:
            log(f"store stage: {args.ingest_spans:,} spans in batches of {size:,}")
            store_res[size] = bench_store(client, f"{pid}-ingest-{size}", args.ingest_spans, size, args.profile)
            log(f"  {store_res[size]}")
        if store_res:
            client.command("TRUNCATE TABLE $db.span")
            client.command("TRUNCATE TABLE $db.trace")
        e2e: dict[str, Any] = {}
        if args.e2e_seconds:
            log(f"end to end: podium up (columnar), {args.e2e_clients} clients, {args.e2e_batch:,}-span requests, "
                f"{args.e2e_seconds:.0f} s")
            e2e = bench_e2e(args.e2e_seconds, args.e2e_batch, args.e2e_clients)
            log(f"  {e2e}")
        ingest_text = ingest_section(args, store_res, e2e, load)
        if args.ingest_only:
            after = os.getloadavg()
            body = splice_ingest(ingest_text + f"\nLoad average {load[0]:.1f} at the start and {after[0]:.1f} at the end "
                                 f"(`{command_line()}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC).\n")
            print(body)
            if not args.no_write:
                write_section(SECTION, body)
                log(f"wrote the ingestion part of the '{SECTION}' section of docs/benchmarks.md")
            return
        # 2. reads at size
        log(f"generate {args.spans:,} spans in ClickHouse")
        gen_s = generate(client, pid, args.spans)
        log(f"  {gen_s:.1f} s; merging parts")
        n_traces = args.spans // SPANS_PER_TRACE
        rng = random.Random(3)
        trace_ids = [r[0] for r in client.query(
            "SELECT id FROM $db.trace WHERE project_id = {p:String} AND cityHash64(id) % {m:UInt64} = 0 LIMIT 200",
            {"p": pid, "m": max(1, n_traces // 2000)})]
        rng.shuffle(trace_ids)
        eng = create_engine("sqlite://")  # the columnar repos never touch it
        ch_traces, ch_scores = ColumnarTraceRepo(eng, client), ColumnarScoreRepo(eng, client)
        parts = client.query("SELECT table, count() FROM system.parts WHERE database = {d:String} AND active "
                             "GROUP BY table ORDER BY table", {"d": client.database})
        log(f"  parts: {parts}")
        ch_res = read_queries(ch_traces, ch_scores, pid, trace_ids, args.reps)
        ch_disk = ch_bytes(client)
        log(f"  clickhouse: {ch_res}, {ch_disk / args.spans:.0f} B/span")
        # 3. PostgreSQL
        pg_res: dict[str, tuple[float, float, int, float]] = {}
        pg_disk = 0
        pg_load_s = 0.0
        if args.pg_spans:
            if args.pg_spans != args.spans:
                log(f"regenerate {args.pg_spans:,} spans for the PostgreSQL comparison")
                client.command("TRUNCATE TABLE $db.span")
                client.command("TRUNCATE TABLE $db.trace")
                generate(client, pid, args.pg_spans)
                ch_small = read_queries(ch_traces, ch_scores, pid, _ids(client, pid, args.pg_spans), args.reps)
                ch_small_disk = ch_bytes(client)
            else:
                ch_small, ch_small_disk = ch_res, ch_disk
            with pg_schema("bench_columnar") as (_schema, url):
                log(f"copy {args.pg_spans:,} spans to PostgreSQL")
                (pg_store, pg_disk), pg_load_s = copy_to_pg(client, url, pid, args.pg_spans, work)
                try:
                    pg_res = read_queries(pg_store.traces, pg_store.scores, pid, _ids(client, pid, args.pg_spans),
                                          args.reps)
                finally:
                    pg_store.close()
            log(f"  postgresql: {pg_res}, {pg_disk / args.pg_spans:.0f} B/span, load {pg_load_s:.0f} s")
        # --- the section
        after = os.getloadavg()
        lines.append(header_block(facts, command_line()))
        lines.append(
            f"\nMachine load: 1-minute load average {load[0]:.1f} at the start and {after[0]:.1f} at the end on "
            f"{os.cpu_count()} cores: other work (parallel test and build runs) shared the cores, so every figure "
            "here is a floor for an idle machine.\n"
        )
        if ingest_text:
            lines.append(ingest_text)
        lines.append(f"### Reads at {args.spans:,} spans\n")
        if args.spans < 10_000_000:
            lines.append("Smaller than the 10^7 of the goal (`--spans`): run with the default for the 10^7 figures "
                         "(generation alone takes ~6 minutes on 2 shared cores).\n")
        lines.append(
            f"Data: {args.spans:,} spans ({n_traces:,} traces of {SPANS_PER_TRACE} spans, ~1 KB of input/output "
            f"text per span, 30 days, {USERS:,} users, 5 models, one project) generated inside ClickHouse in "
            f"{gen_s:.0f} s. Repository calls in-process (no HTTP), {args.reps} repetitions after one warm-up; "
            "parts as left by the inserts (no OPTIMIZE).\n")
        rows = [[q, f"{p50:.1f}", f"**{p95:.1f}**", f"{cpu:.1f}", n] for q, (p50, p95, n, cpu) in ch_res.items()]
        lines.append(md_table(["query (chDB)", "p50 ms", "p95 ms", "CPU ms (median)", "rows"], rows))
        lines.append("\n*CPU ms*: the benchmark process's CPU time per call, chDB's threads included: what the "
                     "query costs without the other work that shared the cores.")
        lines.append(f"\nDisk: **{ch_disk / args.spans:.0f} bytes per span** (span + trace tables, "
                     f"{ch_disk / 2**30:.2f} GiB).\n")
        if pg_res:
            lines.append(f"### ClickHouse against PostgreSQL at {args.pg_spans:,} spans\n")
            lines.append(
                f"The same rows copied to PostgreSQL (COPY, indexes built after, ANALYZE: {pg_load_s:.0f} s) and the "
                "same repository calls (`TraceRepo`, `ScoreRepo`)."
                + (f" PostgreSQL ran at {args.pg_spans:,} spans, not {args.spans:,}: loading 10^7 spans there did "
                   "not fit this run's time." if args.pg_spans != args.spans else "") + "\n")
            rows = []
            for q in pg_res:
                a, b = ch_small[q], pg_res[q]
                rows.append([q, f"{a[0]:.1f}", f"{a[1]:.1f}", f"{a[3]:.1f}", f"{b[0]:.1f}", f"{b[1]:.1f}"])
            lines.append(md_table(["query", "chDB p50 ms", "chDB p95 ms", "chDB CPU ms", "PostgreSQL p50 ms",
                                   "PostgreSQL p95 ms"], rows))
            lines.append(f"\nDisk per span: chDB **{ch_small_disk / args.pg_spans:.0f} B**, PostgreSQL "
                         f"**{pg_disk / args.pg_spans:.0f} B** (tables, TOAST and indexes).\n")
        body = "\n".join(lines)
        print(body)
        if not args.no_write:
            write_section(SECTION, body)
            log(f"wrote the '{SECTION}' section of docs/benchmarks.md")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _ids(client: Any, pid: str, n_spans: int) -> list[str]:
    n_traces = n_spans // SPANS_PER_TRACE
    ids = [r[0] for r in client.query(
        "SELECT id FROM $db.trace WHERE project_id = {p:String} AND cityHash64(id) % {m:UInt64} = 0 LIMIT 200",
        {"p": pid, "m": max(1, n_traces // 2000)})]
    random.Random(3).shuffle(ids)
    return ids


if __name__ == "__main__":
    main()
