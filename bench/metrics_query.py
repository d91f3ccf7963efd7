"""Metric queries (``store.metrics``, what dashboards and alert rules run): the time of
``series()`` over 30 days in hourly buckets (720 buckets) on 10^5 traces, and of ``value()``
over the last hour, on SQLite and PostgreSQL, on the store directly (no HTTP).

The data: ``--traces`` traces (default 100,000) spread evenly over 30 days, each a root span
and one model call (10 models, 6 prompt versions, ~3% errors, 2,000 users with a few heavy
ones, 4 releases, 2 environments, 1-2 tags), a ``quality`` score on 20% of them and a
guardrail decision (2 rules) on 25%. Written through ``Store.ingest.write`` into a fresh SQLite
file / PostgreSQL schema (dropped afterwards). Each query runs ``--reps`` times after one
warm-up; the table gives the median and the worst.

    .venv/bin/python bench/metrics_query.py                 # 10^5 traces, both databases, writes docs
    .venv/bin/python bench/metrics_query.py --quick         # 10^4 traces, prints only
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, header_block, machine_facts, md_table, pg_schema, write_section

SECTION = "Metric queries (dashboards)"
T_END = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
MODELS = ["gpt-5.4-mini", "gpt-5.4", "claude-sonnet-4-6", "claude-haiku-4-5", "gemini-2.5-flash", "mistral-large",
          "deepseek-chat", "llama-3.3-70b", "gpt-5.4-nano", "magistral-small"]
WEIGHTS = [30, 12, 15, 12, 12, 6, 6, 5, 1.5, 0.3]
PROMPTS = [("support", 1), ("support", 2), ("support", 3), ("rag", 1), ("rag", 2), ("triage", 1)]
TAGS = ["prod", "web", "mobile", "api", "beta", "vip"]

NOTES = """\
Reading it: splits by model join the spans (a call per trace here) and percentiles sort every row
of the range twice (per bucket and per series, for the total), so they cost the most; counts,
sums, averages and rates over few values are one grouped query. On PostgreSQL the metric reads
run with JIT off (`SET LOCAL jit = off`): the planner's 100-row guess for `jsonb_array_elements`
pushed the guardrail queries past the JIT thresholds, and compiling took ten times longer than
running (guardrail rate by scanner: 1.4 s with JIT, 0.14 s without)."""

QUERIES: list[tuple[str, str, str, str | None]] = [
    # label, metric, agg, dimension
    ("traces", "traces", "count", None),
    ("p95 latency", "latency", "p95", None),
    ("p95 latency by model", "latency", "p95", "model"),
    ("cost by model", "cost", "sum", "model"),
    ("cost by prompt version", "cost", "sum", "prompt"),
    ("error rate by release", "error_rate", "rate", "release"),
    ("traces by user (top 10 + other)", "traces", "count", "user_id"),
    ("avg score by prompt version", "score:quality", "avg", "prompt"),
    ("guardrail rate by scanner", "guardrail:*", "rate", "scanner"),
]


def _span(pid: str, tid: str, sid: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "project_id": pid, "trace_id": tid, "id": sid, "parent_id": None, "name": sid, "kind": "span",
        "start_time": None, "end_time": None, "latency_ms": None, "status": "ok", "status_message": None,
        "model": None, "provider": None, "model_parameters": None, "input": None, "output": None,
        "metadata": None, "attributes": None, "input_tokens": None, "output_tokens": None, "total_tokens": None,
        "usage_details": None, "usage_estimated": None, "cost_input": None, "cost_output": None,
        "cost_total": None, "completion_start_time": None, "prompt_name": None, "prompt_version": None,
        "updated_at": None,
    }
    row.update(kw)
    return row


def generate(store: Any, pid: str, n: int, seed: int = 20261206) -> float:
    """Write ``n`` traces; returns the seconds it took."""
    from podium.store.repos.ingest import IngestBatch

    rnd = random.Random(seed)
    start = T_END - timedelta(days=DAYS)
    step = DAYS * 86400 / n
    users = [f"user-{i:04d}" for i in range(2000)]
    t0 = time.perf_counter()
    spans: list[Any] = []  # store rows (podium.store.repos.ingest's SpanRow, TraceRow, TagRow, ScoreRow)
    hints: list[Any] = []
    tags: list[Any] = []
    scores: list[Any] = []

    def flush() -> None:
        store.ingest.write(IngestBatch(spans=spans, traces=hints, tags=tags, scores=scores))
        for rows in (spans, hints, tags, scores):
            rows.clear()

    for i in range(n):
        tid = f"t{i:07d}"
        st = start + timedelta(seconds=i * step + rnd.random() * step)
        lat = rnd.lognormvariate(6.5, 0.8)
        err = rnd.random() < 0.03
        model = rnd.choices(MODELS, WEIGHTS)[0]
        pname, pver = PROMPTS[rnd.randrange(len(PROMPTS))]
        tin, tout = rnd.randint(50, 3000), rnd.randint(10, 800)
        spans.append(_span(pid, tid, "root", name="chat", start_time=st, end_time=st + timedelta(milliseconds=lat),
                           latency_ms=lat))
        spans.append(_span(pid, tid, "gen", parent_id="root", name="llm", kind="generation", model=model,
                           start_time=st, end_time=st + timedelta(milliseconds=lat * 0.8), latency_ms=lat * 0.8,
                           status="error" if err else "ok", input_tokens=tin, output_tokens=tout,
                           total_tokens=tin + tout, cost_total=Decimal(tin * 1e-6 + tout * 4e-6).quantize(
                               Decimal("0.0000001")), prompt_name=pname, prompt_version=pver))
        user = users[int(rnd.paretovariate(1.2)) % len(users)]
        hints.append({"project_id": pid, "id": tid, "user_id": user, "session_id": f"{user}-{i // 7}",
                      "release": f"v1.{rnd.randrange(4)}", "environment": "prod" if rnd.random() < 0.8 else "dev",
                      "metadata": None, "name": None})
        for tag in rnd.sample(TAGS, rnd.randint(1, 2)):
            tags.append((pid, tid, tag))
        if rnd.random() < 0.2:
            scores.append({"project_id": pid, "id": f"s{i}", "trace_id": tid, "span_id": None, "session_id": None,
                           "name": "quality", "data_type": "numeric", "value": round(rnd.random(), 3),
                           "string_value": None, "source": "eval", "comment": None, "metadata": None,
                           "timestamp": st})
        if rnd.random() < 0.25:
            fired = rnd.random() < 0.1
            outcomes = [{"rule": "pi", "scanner": "prompt-injection", "action": "block" if fired else "none"},
                        {"rule": "pii", "scanner": "pii", "action": "flag" if rnd.random() < 0.05 else "none"}]
            action = "block" if fired else ("flag" if outcomes[1]["action"] == "flag" else "allow")
            spans.append(_span(pid, tid, "guard", parent_id="root", name="guardrail.input", kind="guardrail",
                               start_time=st, end_time=st + timedelta(milliseconds=3), latency_ms=3.0,
                               attributes={"podium.guardrail.action": action,
                                           "podium.guardrail.outcomes": outcomes}))
        if len(spans) >= 5000:
            flush()
    flush()
    return time.perf_counter() - t0


def _time(fn: Any, reps: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def run_db(name: str, url: str, n: int, reps: int) -> dict[str, Any]:
    from sqlalchemy import text

    from podium.core.metrics import MetricQuery
    from podium.store import Store

    store = Store.from_url(url)
    try:
        pid = store.projects.create_project("bench").id
        gen_s = generate(store, pid, n)
        with store.engine.begin() as c:
            c.execute(text("ANALYZE"))
        start = T_END - timedelta(days=DAYS)
        rows = []
        for label, metric, agg, dim in QUERIES:
            q = MetricQuery(metric, agg, dim)
            med, worst = _time(lambda q=q: store.metrics.series(pid, q, start, T_END, 3600), reps)
            out = store.metrics.series(pid, q, start, T_END, 3600)
            rows.append((f"series: {label}", len(out["buckets"]), len(out["series"]), med, worst))
        for label, metric, agg in (("value: p95 latency, last hour", "latency", "p95"),
                                   ("value: error rate, last hour", "error_rate", "rate")):
            q = MetricQuery(metric, agg)
            med, worst = _time(lambda q=q: store.metrics.value(pid, q, T_END - timedelta(hours=1), T_END), reps)
            rows.append((label, 1, 1, med, worst))
        return {"db": name, "gen_s": gen_s, "rows": rows}
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10^4 traces, 3 repetitions, prints only")
    ap.add_argument("--traces", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--db", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    n = args.traces or (10_000 if args.quick else 100_000)
    reps = args.reps or (3 if args.quick else 5)
    results = []
    if args.db in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as d:
            print(f"SQLite: writing {n:,} traces ...", flush=True)
            results.append(run_db("SQLite", f"sqlite:///{d}/metrics.db", n, reps))
    if args.db in ("postgresql", "all"):
        with pg_schema("bench_metrics") as (_schema, url):
            print(f"PostgreSQL: writing {n:,} traces ...", flush=True)
            results.append(run_db("PostgreSQL", url, n, reps))
    table_rows = [(r["db"], label, b, s, f"{med:.0f}", f"{worst:.0f}")
                  for r in results for label, b, s, med, worst in r["rows"]]
    table = md_table(["database", "query", "buckets", "series", "median ms", "worst ms"], table_rows)
    gen = "; ".join(f"{r['db']} {n / r['gen_s']:,.0f} traces/s" for r in results)
    body = "\n\n".join([
        header_block(machine_facts(with_pg=args.db != "sqlite"), command_line()),
        f"{n:,} traces (each a root span and a model call; 20% scored, 25% with a guardrail decision) over "
        f"{DAYS} days; `series()` over all 30 days in 1-hour buckets, `value()` over the last hour; "
        f"{reps} repetitions after a warm-up, on the store (no HTTP). Written at {gen}.",
        table,
        NOTES,
    ])
    print(body)
    if (not args.quick or args.write_docs) and not args.no_docs:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
