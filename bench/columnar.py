"""The columnar span store (ClickHouse in-process through chDB) against PostgreSQL.

    .venv/bin/python bench/columnar.py                      # 10^7 spans in chDB, 10^6 on PostgreSQL
    .venv/bin/python bench/columnar.py --spans 1000000 --pg-spans 0 --no-write   # quick look

1. Ingestion: ``ColumnarIngestRepo.write`` (the full write path: read-before-write, merge, usage
   flags, trace aggregates) with ~1 KB spans in large batches, and the engine's own ceiling (the same
   rows inserted as column blocks, no merge work).
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


def bench_ingest(client: Any, pid: str, total: int, batch: int) -> dict[str, float]:
    from podium.store.columnar import ColumnarIngestRepo
    from podium.store.repos.ingest import IngestBatch

    repo = ColumnarIngestRepo(client)
    rng = random.Random(7)
    write_s = cpu_s = 0.0
    done = 0
    while done < total:
        rows = _span_rows(pid, batch, rng, done)
        t, cpu0 = time.perf_counter(), time.process_time()
        repo.write(IngestBatch(spans=rows))  # type: ignore[arg-type]  # plain dicts with SpanRow's keys
        write_s += time.perf_counter() - t
        cpu_s += time.process_time() - cpu0  # every thread of the process: chDB's included
        done += batch
    stored = client.query("SELECT count() FROM $db.span FINAL WHERE project_id = {p:String}", {"p": pid})[0][0]
    traces = client.query("SELECT count() FROM $db.trace FINAL WHERE project_id = {p:String}", {"p": pid})[0][0]
    assert stored == total and traces == total // SPANS_PER_TRACE, (stored, traces)
    # Re-sending the same spans (a client retry) goes through the merge path: stored rows are read back.
    rows = _span_rows(pid, batch, random.Random(7), 0)
    t = time.perf_counter()
    repo.write(IngestBatch(spans=rows))  # type: ignore[arg-type]  # plain dicts with SpanRow's keys
    resend_s = time.perf_counter() - t
    # The engine's ceiling: the same kind of rows as column blocks, no merge work.
    from podium.store.columnar.rows import SPAN_COLUMNS, SPAN_JSON, json_text

    raw_s = raw_cpu = 0.0
    raw_n = 0
    cols = [*SPAN_COLUMNS, "version"]
    while raw_n < total:
        rows = _span_rows(pid + "-raw", batch, rng, raw_n)
        for r in rows:
            for col in SPAN_JSON:
                r[col] = json_text(r[col])
            r["updated_at"] = T0
            r["usage_counted"] = r["total_tokens"] is not None
            r["version"] = 1
        t, cpu0 = time.perf_counter(), time.process_time()
        client.insert("span", cols, [[r[c] for r in rows] for c in cols])
        raw_s += time.perf_counter() - t
        raw_cpu += time.process_time() - cpu0
        raw_n += batch
    return {"write_sps": total / write_s, "write_cpu_us": cpu_s / total * 1e6, "resend_sps": batch / resend_s,
            "raw_sps": raw_n / raw_s, "raw_cpu_us": raw_cpu / raw_n * 1e6}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=10_000_000, help="spans generated for the read queries")
    ap.add_argument("--pg-spans", type=int, default=1_000_000, help="spans copied to PostgreSQL (0: skip)")
    ap.add_argument("--ingest-spans", type=int, default=200_000, help="spans written through ColumnarIngestRepo")
    ap.add_argument("--batch", type=int, default=20_000, help="spans per write")
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
        ing: dict[str, float] = {}
        if args.ingest_spans:
            log(f"ingest: {args.ingest_spans:,} spans in batches of {args.batch:,}")
            ing = bench_ingest(client, pid + "-ingest", args.ingest_spans, args.batch)
            log(f"  {ing}")
            client.command("TRUNCATE TABLE $db.span")
            client.command("TRUNCATE TABLE $db.trace")
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
        if ing:
            lines.append("### Ingestion into chDB\n")
            lines.append(md_table(
                ["path", "spans/s (wall)", "CPU µs per span", "spans/s per busy core", "target"],
                [["`ColumnarIngestRepo.write` (read-before-write, merge, usage flags, trace aggregates), "
                  f"{args.batch:,}-span batches of new traces, ~1 KB spans", f"**{fmt_int(ing['write_sps'])}**",
                  f"{ing['write_cpu_us']:.0f}", fmt_int(1e6 / ing["write_cpu_us"]), ">= 100,000"],
                 [f"the same, a re-sent batch of {args.batch:,} (every span already stored: merged)",
                  fmt_int(ing["resend_sps"]), "", "", ""],
                 ["engine ceiling: the same rows as column blocks (`client.insert`, no merge work)",
                  fmt_int(ing["raw_sps"]), f"{ing['raw_cpu_us']:.0f}", fmt_int(1e6 / ing["raw_cpu_us"]), ""]]))
            lines.append("\n*CPU µs per span*: the process's CPU time (every thread, chDB's included) per span, "
                         "so *spans/s per busy core* is what one otherwise idle core would do; the wall figure "
                         "is what this loaded machine gave.")
            lines.append(f"\n{args.ingest_spans:,} spans, acknowledged = stored checked (`count() FINAL`).\n")
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
