"""Trace reads on PostgreSQL at 10^7 spans: the comparison for the columnar store's 10^7 figures.

    .venv/bin/python bench/pg_scale.py                         # generate 10^7 spans, time the reads
    .venv/bin/python bench/pg_scale.py --reuse --reps 40       # time again on the data kept from before

The same shape as ``bench/columnar.py``'s generated data (5 spans per trace, 30 days, 2,000 users, 5
models, one trace in 37 with an error, ~1 KB of input/output text per span), generated inside
PostgreSQL with ``INSERT ... SELECT FROM generate_series`` into Podium's own schema (migrations run by
``Store.from_url``), secondary indexes built after the load, then ``ANALYZE``. The texts come from a
pool of 1,000 generated ones (PostgreSQL stores values under 2 KB inline and uncompressed, so row
sizes match ``bench/columnar.py``'s). The reads are ``bench/columnar.py``'s own ``read_queries`` (the
trace list: newest 50, one user, model filter, slowest 50 of the last day; the trace detail), through
``TraceRepo`` and ``ScoreRepo``.

The data stays in the schema ``bench_pg_scale`` of the ``test`` database for ``--reuse`` (17 GB at
10^7); ``--drop`` removes it. Writes the "Trace reads on PostgreSQL at 10^7 spans" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PG_URL, command_line, header_block, machine_facts, md_table, write_section
from bench.columnar import MODELS, SPANS_PER_TRACE, T0, USERS, WORDS, log, read_queries

SECTION = "Trace reads on PostgreSQL at 10^7 spans"
SCHEMA = "bench_pg_scale"
PID = "bench-pg-scale"
TEXTS = 1000


def schema_url() -> str:
    return f"{PG_URL}?options=-csearch_path%3D{SCHEMA}"


def generate(raw: Any, n_spans: int) -> float:
    """Fill span and trace (and drop/rebuild their secondary indexes around the load)."""
    n_traces = n_spans // SPANS_PER_TRACE
    step_ms = max(1, 30 * 86_400_000 // max(n_traces, 1))
    rng = random.Random(7)
    cur = raw.cursor()
    t0 = time.perf_counter()
    cur.execute("SET TIME ZONE 'UTC'")
    cur.execute("CREATE TEMP TABLE words_pool (i int PRIMARY KEY, t text)")
    with cur.copy("COPY words_pool (i, t) FROM STDIN") as cp:
        for i in range(TEXTS):
            cp.write_row((i, " ".join(rng.choice(WORDS) for _ in range(60))))
    idx = []
    for table in ("span", "trace"):
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND schemaname = "
                    "current_schema() AND indexname NOT IN (SELECT conname FROM pg_constraint)", (table,))
        for name, ddl in cur.fetchall():
            idx.append(ddl)
            cur.execute(f'DROP INDEX "{name}"')
    raw.commit()
    base = T0.strftime("%Y-%m-%d %H:%M:%S+00")
    last = SPANS_PER_TRACE - 1
    models = "ARRAY[" + ",".join(f"'{m}'" for m in MODELS) + "]"
    chunk = 1_000_000
    for lo in range(0, n_spans, chunk):
        hi = min(n_spans, lo + chunk) - 1
        cur.execute(f"""
            INSERT INTO span (project_id, trace_id, id, parent_id, name, kind, start_time, end_time, latency_ms,
                status, model, provider, model_parameters, input, output, metadata, input_tokens, output_tokens,
                total_tokens, usage_estimated, usage_counted, cost_input, cost_output, cost_total, updated_at)
            SELECT '{PID}', md5(tn::text), 's' || j, CASE WHEN j = 0 THEN NULL ELSE 's0' END,
                CASE WHEN j = {last} THEN 'llm' ELSE 'step-' || j END,
                CASE WHEN j = {last} THEN 'generation' ELSE 'span' END,
                st, st + interval '80 milliseconds', 80.0,
                CASE WHEN tn % 37 = 0 AND j = 1 THEN 'error' ELSE 'ok' END,
                CASE WHEN j = {last} THEN ({models})[1 + tn % {len(MODELS)}] END,
                CASE WHEN j = {last} THEN 'openai' END,
                CASE WHEN j = {last} THEN '{{"temperature": 0.2}}'::jsonb END,
                jsonb_build_object('role', 'user', 'content', a.t), to_jsonb(b.t), jsonb_build_object('k', j),
                CASE WHEN j = {last} THEN 120 END, CASE WHEN j = {last} THEN 40 END,
                CASE WHEN j = {last} THEN 160 END, CASE WHEN j = {last} THEN false END,
                CASE WHEN j = {last} THEN true END, CASE WHEN j = {last} THEN 0.0003 END,
                CASE WHEN j = {last} THEN 0.0004 END, CASE WHEN j = {last} THEN 0.0007 END, st
            FROM (SELECT n / {SPANS_PER_TRACE} AS tn, n % {SPANS_PER_TRACE} AS j, n,
                         timestamptz '{base}' + ((n / {SPANS_PER_TRACE}) * {step_ms} + 100 * (n % {SPANS_PER_TRACE}))
                             * interval '1 millisecond' AS st
                  FROM generate_series({lo}::bigint, {hi}::bigint) AS n) g
            JOIN words_pool a ON a.i = g.n % {TEXTS}
            JOIN words_pool b ON b.i = (g.n + 7) % {TEXTS}
        """)
        raw.commit()
        log(f"  span {hi + 1:,}/{n_spans:,}")
    for lo in range(0, n_traces, chunk):
        hi = min(n_traces, lo + chunk) - 1
        cur.execute(f"""
            INSERT INTO trace (project_id, id, name, name_explicit, user_id, session_id, environment, input, output,
                input_explicit, output_explicit, start_time, end_time, latency_ms, status, span_count,
                error_count, input_tokens, output_tokens, total_tokens, total_cost, updated_at)
            SELECT '{PID}', md5(tn::text), 'step-0', false, 'u' || (tn % {USERS}), 'sess' || (tn / 10), 'prod',
                jsonb_build_object('role', 'user', 'content', a.t), to_jsonb(b.t), false, false, st,
                st + interval '{100 * last + 80} milliseconds', {100.0 * last + 80},
                CASE WHEN tn % 37 = 0 THEN 'error' ELSE 'ok' END, {SPANS_PER_TRACE},
                CASE WHEN tn % 37 = 0 THEN 1 ELSE 0 END, 120, 40, 160, 0.0007, st
            FROM (SELECT tn, timestamptz '{base}' + tn * {step_ms} * interval '1 millisecond' AS st
                  FROM generate_series({lo}::bigint, {hi}::bigint) AS tn) g
            JOIN words_pool a ON a.i = (g.tn * 5) % {TEXTS}
            JOIN words_pool b ON b.i = (g.tn * 5 + 7) % {TEXTS}
        """)
        raw.commit()
        log(f"  trace {hi + 1:,}/{n_traces:,}")
    for ddl in idx:
        log(f"  {ddl[:90]}")
        cur.execute(ddl)
        raw.commit()
    cur.execute("ANALYZE span")
    cur.execute("ANALYZE trace")
    raw.commit()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--reuse", action="store_true", help="keep the data of an earlier run if it has --spans spans")
    ap.add_argument("--drop", action="store_true", help="drop the kept schema and exit")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()

    import psycopg
    from sqlalchemy import text

    from podium.store import Store
    from podium.store import tables as t

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as admin:
        if args.drop:
            admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            log(f"dropped {SCHEMA}")
            return
        have = admin.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (SCHEMA,)).fetchone()
        if have and not args.reuse:
            admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
            have = None
        if not have:
            admin.execute(f"CREATE SCHEMA {SCHEMA}")
    facts = machine_facts(with_pg=True)
    load_before = os.getloadavg()[0]
    store = Store.from_url(schema_url())
    try:
        with store.engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM span WHERE project_id = :p"), {"p": PID}).scalar_one()
        gen_s = None
        if n != args.spans:
            with store.engine.begin() as c:
                c.execute(t.span.delete())
                c.execute(t.trace.delete())
                c.execute(t.project.delete().where(t.project.c.id == PID))
                c.execute(t.project.insert().values(id=PID, name="bench-pg-scale", created_at=datetime.now(UTC)))
            log(f"generate {args.spans:,} spans in PostgreSQL")
            raw = store.engine.raw_connection()
            try:
                gen_s = generate(raw.driver_connection, args.spans)
            finally:
                raw.close()
            log(f"  generated in {gen_s:.0f} s")
        with store.engine.connect() as c:
            size = c.execute(text("SELECT pg_total_relation_size('span') + pg_total_relation_size('trace')")
                             ).scalar_one()
            ids = [r[0] for r in c.execute(text(
                "SELECT id FROM trace WHERE project_id = :p ORDER BY md5(id) LIMIT 200"), {"p": PID})]
        log("time the reads")
        res = read_queries(store.traces, store.scores, PID, ids, args.reps)
    finally:
        store.close()
    load_after = os.getloadavg()[0]
    lines = [header_block(facts, command_line()), (
        f"Data: {args.spans:,} spans ({args.spans // SPANS_PER_TRACE:,} traces of {SPANS_PER_TRACE} spans, ~1 KB "
        f"of input/output text per span, 30 days, {USERS:,} users, {len(MODELS)} models, one project) generated "
        "inside PostgreSQL (`generate_series`, secondary indexes built after the load, `ANALYZE`"
        + (f": {gen_s:.0f} s" if gen_s is not None else "; kept from an earlier run") + "). The same repository "
        f"calls as the columnar section's 10^7 table (`bench/columnar.py`'s `read_queries`), {args.reps} "
        f"repetitions after one warm-up. Load average (1 min) {load_before:.1f} at the start, {load_after:.1f} "
        "at the end."), md_table(
        ["query (PostgreSQL)", "p50 ms", "p95 ms", "rows"],
        [[q, f"{p50:.1f}", f"**{p95:.1f}**", rows] for q, (p50, p95, rows, _cpu) in res.items()]),
        f"Disk: **{size / args.spans:,.0f} bytes per span** (span + trace tables, TOAST and indexes, "
        f"{size / 2**30:.2f} GiB)."]
    body = "\n\n".join(lines)
    print(body)
    if not args.no_docs:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
