"""Dashboards and metric queries on the columnar span store (chDB, in-process) against SQLite.

    .venv/bin/python bench/columnar_dashboards.py                    # 10^6 spans
    .venv/bin/python bench/columnar_dashboards.py --spans 100000 --reps 5 --no-write   # quick look
    .venv/bin/python bench/columnar_dashboards.py --before --projection   # the joins as they were; the projection

1. ``--spans`` synthetic spans (5 per trace, 30 days, 2,000 users, 5 models; bench/columnar.py's
   ``generate``: ``INSERT ... SELECT FROM numbers()`` inside ClickHouse).
2. The same rows copied into a SQLite database (the SQL store's schema, its indexes rebuilt after the
   copy, ANALYZE).
3. The same repository calls on both, in this process (no HTTP): the home dashboard's overview
   (``DashboardRepo.overview``, last 7 days in 2-hour buckets as the UI's "7d", and 30 days in 6-hour
   buckets), the rest of the home page (by model, by prompt, top users and sessions, prompt series),
   and metric series (``MetricsRepo.series``: p95 latency, cost by model, error rate by user). p50 and
   p95 wall time over ``--reps`` calls after one warm-up, and the CPU time of this process per call
   (both engines run in it, so CPU time is the cost of the query without the other work on the cores).
4. The answers of the two stores compared (the same numbers, or the script says which differ).
5. ``--before``: the chDB calls again with every span condition after ``FINAL`` (``WHERE``), as the
   span-to-trace joins were before ``window_spans`` moved the safe ones into ``PREWHERE``: the CPU that
   change saved, measured in the same run.
6. ``--projection``: the alternative that was tried and not kept. A projection of ``span`` ordered by
   ``(project_id, start_time)`` (the dashboards' columns only) cannot serve a ``FINAL`` read (ClickHouse
   reads the table's own parts for ``FINAL``), so a read through it must drop older versions itself
   (``argMax(..., version)`` per span); that read of "cost by model" (7 and 30 days) against the calls
   as they are, the disk the projection adds, and the writer's CPU per span (``bench/columnar.py``'s
   store stage, 100,000 spans in batches of 10,000) with and without it.

Writes the "Columnar dashboards" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
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
    write_section,
)

SECTION = "Columnar dashboards"


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def _select(table: Any) -> str:
    """ClickHouse expressions that give each column as the SQL store keeps it on SQLite: naive UTC text
    times, REAL money, 0/1 booleans, JSON text."""
    from sqlalchemy import Boolean, Numeric

    from podium.store.types import UtcDateTime

    out = []
    for c in table.columns:
        if isinstance(c.type, UtcDateTime):
            out.append(f"formatDateTime(`{c.name}`, '%Y-%m-%d %H:%i:%S.%f')")
        elif isinstance(c.type, Numeric):
            out.append(f"toFloat64(`{c.name}`)")
        elif isinstance(c.type, Boolean):
            out.append(f"toUInt8(`{c.name}`)")
        else:
            out.append(f"`{c.name}`")
    return ", ".join(out)


def copy_to_sqlite(client: Any, db_path: Path, pid: str) -> float:
    from podium.store import tables as t

    t0 = time.perf_counter()
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = OFF")
    idx: list[str] = []
    for name_ in ("span", "trace"):
        for name, ddl in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                     "AND sql IS NOT NULL", (name_,)).fetchall():
            idx.append(ddl)
            con.execute(f'DROP INDEX "{name}"')
    for table in (t.span, t.trace):
        cols = [c.name for c in table.columns]
        n = int(client.query(f"SELECT count() FROM $db.{table.name} WHERE project_id = {{p:String}}", {"p": pid})[0][0])
        chunk = 100_000
        order = "trace_id, id" if table.name == "span" else "id"
        for lo in range(0, n, chunk):
            rows = client.query(f"SELECT {_select(table)} FROM $db.{table.name} WHERE project_id = {{p:String}} "
                                f"ORDER BY {order} LIMIT {chunk} OFFSET {lo}", {"p": pid})
            con.executemany(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            rows)
            con.commit()
        log(f"  sqlite: {table.name} {n:,} rows")
    for ddl in idx:
        con.execute(ddl)
    con.execute("ANALYZE")
    con.commit()
    con.close()
    return time.perf_counter() - t0


def timed(fn: Any, reps: int) -> tuple[float, float, float, float]:
    """p50 / p95 wall ms and p50 / p95 CPU ms of this process per call (one warm-up first)."""
    fn()
    wall, cpu = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return percentile(wall, 50), percentile(wall, 95), percentile(cpu, 50), percentile(cpu, 95)


def calls(store: Any, pid: str, now: datetime) -> dict[str, Any]:
    """The measured calls: name -> a function returning the answer."""
    from podium.core.metrics import MetricQuery
    from podium.store.repos.dashboard import Bucketing

    d, m = store.dashboard, store.metrics
    b7 = Bucketing.covering(now - timedelta(days=7), now, 2 * 3600)
    b30 = Bucketing.covering(now - timedelta(days=30), now, 6 * 3600)

    def home() -> Any:
        prompts = d.by_prompt(pid, b7.start, b7.end)
        return (d.overview(pid, b7), d.by_model(pid, b7), prompts, d.top_groups(pid, "user_id", b7.start, b7.end),
                d.top_groups(pid, "session_id", b7.start, b7.end),
                d.prompt_series(pid, b7, [(p["prompt_name"], p["prompt_version"]) for p in prompts[:8]]))

    return {
        "dashboard overview, 7 days (84 buckets)": lambda: d.overview(pid, b7),
        "dashboard overview, 30 days (120 buckets)": lambda: d.overview(pid, b30),
        "whole home page, 7 days (overview, models, prompts, users, sessions)": home,
        "metric series: latency p95, 7 days, hourly": lambda: m.series(pid, MetricQuery("latency", "p95"),
                                                                       b7.start, b7.end, 3600),
        "metric series: cost sum by model, 7 days, hourly": lambda: m.series(pid, MetricQuery("cost", "sum", "model"),
                                                                             b7.start, b7.end, 3600),
        "metric series: error rate by user (top 10), 30 days, 6-hourly": lambda: m.series(
            pid, MetricQuery("error_rate", "rate", "user_id"), b30.start, b30.end, 6 * 3600),
        "metric value: latency p95 over 1 hour (an alert rule)": lambda: m.value(
            pid, MetricQuery("latency", "p95"), now - timedelta(hours=1), now),
    }


def _all_in_where(cols: str, *, since: bool, early: Any = (), late: Any = (), distinct: bool = False) -> str:
    """``window_spans`` as the joins were before it: every condition after ``FINAL``."""
    conds = ["project_id = {p:String}", *(["start_time >= {x_ws:DateTime64(6, 'UTC')}"] if since else []),
             *early, *late]
    return f"SELECT {'DISTINCT ' if distinct else ''}{cols} FROM $db.span FINAL WHERE {' AND '.join(conds)}"


def time_before(ch_calls: dict[str, Any], answers: dict[str, Any], reps: int) -> dict[str, tuple[float, float, float, float]]:
    """The chDB calls with ``_all_in_where`` patched in (the answers must not change)."""
    import podium.store.columnar.dashboard as dash
    import podium.store.columnar.metrics as met

    saved = dash.window_spans, met.window_spans
    dash.window_spans = met.window_spans = _all_in_where
    out = {}
    try:
        for name, fn in ch_calls.items():
            assert _norm(fn()) == answers[name], f"{name}: the old query shape answers differently"
            out[name] = timed(fn, reps)
            log(f"  before ({name}): chdb {out[name]}")
    finally:
        dash.window_spans, met.window_spans = saved
    return out


PROJECTION = ("ALTER TABLE $db.span ADD PROJECTION p_time (SELECT project_id, trace_id, id, start_time, model, "
              "status, usage_counted, input_tokens, output_tokens, total_tokens, cost_total, latency_ms, prompt_name, "
              "prompt_version, version, is_deleted ORDER BY (project_id, start_time))")
_DEDUP = ["model", "status", "input_tokens", "output_tokens", "total_tokens", "cost_total", "latency_ms",
          "usage_counted"]


def add_projection(client: Any) -> None:
    # A ReplacingMergeTree refuses projections unless told what a merge does to them.
    client.command("ALTER TABLE $db.span MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'")
    client.command(PROJECTION)


def by_model_on_projection(client: Any, pid: str, b: Any) -> list[tuple[Any, ...]]:
    """``by_model``'s query read through the projection: the window's rows (and tombstones, whose start
    is the epoch), calls only, the latest version of each span picked by ``argMax``."""
    from podium.store.columnar.metrics import bucket_expr

    ts = "DateTime64(6, 'UTC')"
    latest = ", ".join(f"argMax({c}, version) AS x_{c}" for c in _DEDUP)
    inner = (f"SELECT trace_id, {latest}, argMax(is_deleted, version) AS x_del FROM $db.span "
             f"WHERE project_id = {{p:String}} AND (start_time >= {{ws:{ts}}} OR start_time = toDateTime64(0, 6, 'UTC')) "
             "AND (model IS NOT NULL OR is_deleted = 1) GROUP BY trace_id, id")
    inner = "SELECT trace_id, " + ", ".join(f"x_{c} AS {c}" for c in _DEDUP) + f", x_del AS del FROM ({inner})"
    return [tuple(r) for r in client.query(
        f"SELECT toString(assumeNotNull(s.model)) AS m, {bucket_expr('tr.start_time', b)} AS b, count(), "
        "countIf(s.status = 'error'), sum(s.input_tokens), sum(s.output_tokens), sum(s.total_tokens), "
        f"sum(s.cost_total), avg(s.latency_ms) FROM ({inner}) AS s INNER JOIN (SELECT id, start_time FROM $db.trace "
        f"FINAL WHERE project_id = {{p:String}} AND start_time >= {{ws:{ts}}} AND start_time < {{we:{ts}}}) AS tr "
        "ON s.trace_id = tr.id WHERE s.del = 0 AND ifNull(s.usage_counted, true) AND s.model IS NOT NULL "
        "GROUP BY GROUPING SETS ((m), (m, b)) SETTINGS group_by_use_nulls = 1",
        {"p": pid, "ws": b.start, "we": b.end})]


def _bytes(client: Any) -> tuple[int, int]:
    """Bytes on disk of span's active parts and of their projection parts."""
    db = client.database
    span = client.query(f"SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '{db}' "
                        "AND table = 'span'")[0][0]
    proj = client.query(f"SELECT sum(bytes_on_disk) FROM system.projection_parts WHERE active AND database = '{db}' "
                        "AND table = 'span'")[0][0]
    return int(span or 0), int(proj or 0)


def try_projection(client: Any, store: Any, pid: str, now: datetime, reps: int, work: Path) -> dict[str, Any]:
    from bench.columnar import bench_store
    from podium.store.columnar import open_columnar
    from podium.store.repos.dashboard import Bucketing

    out: dict[str, Any] = {"calls": {}}
    for label, days, hours in (("7 days", 7, 2), ("30 days", 30, 6)):
        b = Bucketing.covering(now - timedelta(days=days), now, hours * 3600)
        out["calls"][label] = {"now": timed(lambda b=b: store.dashboard.by_model(pid, b), reps)}
    add_projection(client)
    t = time.perf_counter()
    client.command("ALTER TABLE $db.span MATERIALIZE PROJECTION p_time SETTINGS mutations_sync = 1")
    out["materialize_s"] = time.perf_counter() - t
    out["span_bytes"], out["projection_bytes"] = _bytes(client)
    for label, days, hours in (("7 days", 7, 2), ("30 days", 30, 6)):
        b = Bucketing.covering(now - timedelta(days=days), now, hours * 3600)
        want = {r["model"]: r["calls"] for r in store.dashboard.by_model(pid, b)["rows"]}
        got = {r[0]: int(r[2]) for r in by_model_on_projection(client, pid, b) if r[1] is None}
        assert got == want, (label, got, want)
        out["calls"][label]["projection"] = timed(lambda b=b: by_model_on_projection(client, pid, b), reps)
        log(f"  projection, cost by model over {label}: {out['calls'][label]}")
    ingest: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(3):  # alternated: the machine's load moves
        for mode in ("without", "with"):
            c = open_columnar(f"chdb://{work / 'chdb'}?database=ing_{uuid.uuid4().hex[:8]}")
            if mode == "with":
                add_projection(c)
            ingest[mode].append(bench_store(c, "bench-ingest", 100_000, 10_000)["cpu_us"])
            log(f"  store stage {mode} the projection: {ingest[mode][-1]:.1f} us of process CPU per span")
            c.drop_database()
    out["ingest"] = ingest
    return out


def projection_lines(r: dict[str, Any], spans: int) -> list[str]:
    rows = [[f"cost by model, {label}", f"{v['now'][2]:.0f}", f"{v['projection'][2]:.0f}"]
            for label, v in r["calls"].items()]
    w, p = r["ingest"]["without"], r["ingest"]["with"]
    return [
        "\n### Tried and not kept: a span projection ordered by time (`--projection`)\n",
        "A projection of `span` ordered by `(project_id, start_time)` with the dashboards' columns only. ClickHouse "
        "does not read projections for `FINAL`, so a read through it drops older versions itself (`argMax(..., "
        "version)` per span, tombstones kept by their epoch start); same answers as the calls.\n",
        md_table(["call", "as shipped (PREWHERE, FINAL), CPU p50 ms", "through the projection, CPU p50 ms"], rows),
        f"\nCost: the projection adds {r['projection_bytes'] / spans:.0f} bytes per span on disk (span's parts: "
        f"{r['span_bytes'] / spans:.0f}; materialized over the {fmt_int(spans)} spans in {r['materialize_s']:.0f} s), "
        f"and the writer's process CPU per span (store stage, 100,000 spans in batches of 10,000, runs alternated) "
        f"is {', '.join(f'{x:.1f}' for x in p)} µs with it against {', '.join(f'{x:.1f}' for x in w)} µs without "
        f"(medians {statistics.median(p):.1f} against {statistics.median(w):.1f}): a second sorted part per insert, "
        "rebuilt on every merge.\n",
    ]


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, list | tuple):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--no-write", action="store_true", help="print the section, do not write docs/benchmarks.md")
    ap.add_argument("--projection", action="store_true",
                    help="also try a span projection ordered by time (added to the chDB copy at the end)")
    ap.add_argument("--before", action="store_true",
                    help="also time the chDB calls with every span condition after FINAL (the joins before PREWHERE)")
    args = ap.parse_args()

    from bench.columnar import SPANS_PER_TRACE, T0, USERS, generate
    from podium.store import Store
    from podium.store.columnar import open_columnar
    from podium.store.engine import make_engine

    facts = machine_facts(with_pg=False)
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="podium-bench-chdash-"))
    db_path = work / "podium.db"
    sql_store = Store.from_url(f"sqlite:///{db_path}")
    pid = sql_store.projects.create_project("bench-columnar-dashboards").id
    client = open_columnar(f"chdb://{work / 'chdb'}?database=bench_{uuid.uuid4().hex[:8]}")
    ch_store = Store(make_engine(f"sqlite:///{db_path}"), client)
    log(f"generate {args.spans:,} spans in chDB")
    gen_s = generate(client, pid, args.spans)
    log(f"  {gen_s:.1f} s; copy to SQLite")
    copy_s = copy_to_sqlite(client, db_path, pid)
    log(f"  {copy_s:.1f} s")
    now = T0 + timedelta(days=30)  # the generated month ends here
    results: dict[str, dict[str, tuple[float, float, float, float]]] = {"chdb": {}, "sqlite": {}}
    same: dict[str, bool] = {}
    answers: dict[str, Any] = {}
    ch_calls, sql_calls = calls(ch_store, pid, now), calls(sql_store, pid, now)
    for name in ch_calls:
        a, b = _norm(ch_calls[name]()), _norm(sql_calls[name]())
        answers[name] = a
        same[name] = a == b
        log(f"{name}: same answer on both: {same[name]}")
        results["chdb"][name] = timed(ch_calls[name], args.reps)
        results["sqlite"][name] = timed(sql_calls[name], args.reps)
        log(f"  chdb {results['chdb'][name]}, sqlite {results['sqlite'][name]}")
    before = time_before(ch_calls, answers, args.reps) if args.before else {}
    proj = try_projection(client, ch_store, pid, now, args.reps, work) if args.projection else None
    after = os.getloadavg()
    n_traces = args.spans // SPANS_PER_TRACE
    lines = [header_block(facts, command_line())]
    lines.append(
        f"\nMachine load: 1-minute load average {load[0]:.1f} at the start and {after[0]:.1f} at the end on "
        f"{os.cpu_count()} cores shared with other work, so the wall times are floors for an idle machine; the CPU "
        "columns (this process's CPU time per call; chDB and SQLite both run in it) are the comparable figures.\n")
    lines.append(
        f"Data: {fmt_int(args.spans)} spans ({fmt_int(n_traces)} traces of {SPANS_PER_TRACE} spans, one model call "
        f"each, ~1 KB of input/output text per span, 30 days, {USERS:,} users, one project), generated in chDB in "
        f"{gen_s:.0f} s (bench/columnar.py's generator) and copied to SQLite (the SQL store's schema and indexes, "
        f"ANALYZE) in {copy_s:.0f} s. `ColumnarDashboardRepo` / `ColumnarMetricsRepo` against `DashboardRepo` / "
        f"`MetricsRepo` on SQLite, in-process, {args.reps} calls after one warm-up; chDB parts as the inserts left "
        "them (no OPTIMIZE), every read on `FINAL`.\n")
    rows = []
    for name in ch_calls:
        c, s = results["chdb"][name], results["sqlite"][name]
        row = [name, f"{c[0]:.0f}", f"**{c[1]:.0f}**", f"{c[2]:.0f}", f"{c[3]:.0f}"]
        if before:
            row.append(f"{before[name][2]:.0f}")
        rows.append([*row, f"{s[0]:.0f}", f"**{s[1]:.0f}**", f"{s[2]:.0f}", f"{s[2] / c[2]:.1f}x" if c[2] else "-",
                     "yes" if same[name] else "**no**"])
    head = ["call", "chDB p50 ms", "chDB p95 ms", "chDB CPU p50 ms", "chDB CPU p95 ms"]
    if before:
        head.append("chDB CPU p50 ms, all span conditions after FINAL")
        lines.append(
            "The last chDB column times the same calls with every span condition after `FINAL` (`WHERE`), as the "
            "span-to-trace joins (by model, by prompt, prompt series, a metric split by model) were before "
            "`window_spans` put the start and `model`/`prompt_name IS NOT NULL` conditions in `PREWHERE` "
            "(`--before`, same run).\n")
    lines.append(md_table([*head, "SQLite p50 ms", "SQLite p95 ms", "SQLite CPU p50 ms", "CPU SQLite / chDB (p50)",
                           "same answer"], rows))
    if proj is not None:
        lines += projection_lines(proj, args.spans)
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        log(f"wrote the '{SECTION}' section of docs/benchmarks.md")
    client.drop_database()
    ch_store.engine.dispose()
    sql_store.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
