"""Drift detection: how large a topic shift a drift monitor catches, how often it fires on
unshifted traffic, and how long a run takes.

    python bench/drift_detection.py [--quick] [--seeds 20] [--n 500] [--no-docs | --write-docs]

Synthetic support traffic (tests/monitor/drift_text.py: templated billing and cooking questions)
is written to a fresh SQLite store: per (shift, seed), a reference week and a current day of
``--n`` traces each, in its own environment. In the current day a second topic (travel questions)
replaces 0/10/30/50% of the traffic. One monitor per scenario (scope: its environment; features
input_embedding, input_topics, input_length, input_language; default thresholds: p < 0.01, AUC >=
0.55) runs once with a cold embedding cache, so the time per run includes embedding both windows
with MiniLM on the CPU. Figures: the share of runs that fired (overall and per feature; at 0% that
is the false-alarm rate), the median p-values, and the run time (p50/max).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import command_line, header_block, machine_facts, md_table, percentile, write_section  # noqa: E402
from podium.core.pricing import PriceTable  # noqa: E402
from podium.core.records import SpanIn  # noqa: E402
from podium.monitor.drift.features import EmbeddingCache, default_cache  # noqa: E402
from podium.monitor.drift.runner import run_monitor  # noqa: E402
from podium.monitor.drift.spec import check_monitor  # noqa: E402
from podium.server.convert import BatchBuilder  # noqa: E402
from podium.store import Store  # noqa: E402
from tests.monitor.drift_text import answer, mixed  # noqa: E402

TITLE = "Drift detection"
BASE = {"billing": 0.5, "cooking": 0.5}
SHIFTS = (0.0, 0.1, 0.3, 0.5)
FEATURES = ["input_embedding", "input_topics", "input_length", "input_language"]


def _write(store: Store, pid: str, env: str, start: datetime, span_s: float, texts: list[str]) -> None:
    import random

    rng = random.Random(env + str(start))
    b = BatchBuilder(pid, PriceTable.default)
    for i, q in enumerate(texts):
        t0 = start + timedelta(seconds=span_s * (i + 0.5) / len(texts))
        b.add_span(SpanIn(id=f"{env}-{start.timestamp()}-{i}", trace_id=f"{env}-{start.timestamp()}-{i}",
                          name="support-bot", start_time=t0, input={"question": q}, output=answer(q, rng),
                          environment=env))
    store.ingest.write(b.batch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 seeds, 200 texts per window; prints only")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="traces per window")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    seeds = args.seeds or (5 if args.quick else 20)
    n = args.n or (200 if args.quick else 500)
    write_docs = args.write_docs or not (args.quick or args.no_docs)

    now = datetime.now(UTC).replace(microsecond=0)
    tmp = Path(tempfile.mkdtemp(prefix="podium-drift-bench-"))
    store = Store.from_url(f"sqlite:///{tmp}/bench.db")
    pid = store.projects.create_project("drift-bench").id
    embedder = default_cache().embedder
    t0 = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - t0

    runs: dict[float, list[dict[str, object]]] = {s: [] for s in SHIFTS}
    for shift in SHIFTS:
        for seed in range(seeds):
            env = f"s{int(shift * 100)}-{seed}"
            cur_topics = {k: v * (1 - shift) for k, v in BASE.items()}
            if shift:
                cur_topics["travel"] = shift
            _write(store, pid, env, now - timedelta(days=8), 7 * 86400, mixed(n, BASE, seed=1000 + seed))
            _write(store, pid, env, now - timedelta(days=1), 86400 - 60, mixed(n, cur_topics, seed=2000 + seed))
            m = store.drift.create(pid, check_monitor({
                "name": env, "scope": {"filter": {"environment": env}}, "window_s": 86400,
                "reference": {"kind": "rolling", "length_s": 7 * 86400}, "features": FEATURES, "sample_size": n}))
            cpu0 = time.process_time()
            r = run_monitor(store, pid, m, now=now, cache=EmbeddingCache(embedder))
            r["cpu_s"] = time.process_time() - cpu0
            runs[shift].append(r)
            st = r["statistics"]
            assert isinstance(st, dict)
            print(f"shift {shift:.0%} seed {seed}: drifted={r['drifted']} auc={st.get('input_embedding_auc', 0):.3f} "
                  f"p_emb={st.get('input_embedding_p_value', 1):.2g} p_topics={st.get('input_topics_p_value', 1):.2g} "
                  f"new_topics={st.get('input_new_topics', 0):.0f} {r['duration_ms']:.0f} ms", flush=True)

    rows = []
    for shift in SHIFTS:
        rs = runs[shift]
        stats = [r["statistics"] for r in rs]

        def rate(key: str, stats: list[object] = stats) -> str:
            fired = sum(1 for s in stats if isinstance(s, dict) and s.get(key) == 1.0)
            return f"{fired}/{len(stats)}"

        def med(key: str, stats: list[object] = stats) -> str:
            vals = [float(s[key]) for s in stats if isinstance(s, dict) and key in s]
            return f"{statistics.median(vals):.2g}" if vals else "-"

        ms = [float(str(r["duration_ms"])) for r in rs]
        rows.append([f"{shift:.0%}" + (" (false alarms)" if shift == 0 else ""), f"**{rate('drifted')}**",
                     rate("input_embedding_drifted"), rate("input_topics_drifted"), rate("input_length_drifted"),
                     rate("input_language_drifted"), med("input_embedding_auc"), med("input_embedding_p_value"),
                     med("input_topics_p_value"), med("input_new_topics"),
                     f"{percentile(ms, 50) / 1000:.2f} / {max(ms) / 1000:.2f}",
                     f"{statistics.median(float(str(r['cpu_s'])) for r in rs):.2f}"])
    table = md_table(["travel share in the current day", "monitor fired", "embedding", "topics", "length",
                      "language", "median AUC", "median p (embedding)", "median p (topics)",
                      "median new topics", "run s (p50 / max)", "CPU s per run (median)"], rows)
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        f"{seeds} seeds per shift; {n:,} traces per window (reference: the 7 days before; current: 1 day), "
        f"SQLite. Features {', '.join(FEATURES)}; a test fires at p < 0.01 (embeddings also need AUC >= 0.55); "
        "the monitor fires when any feature does (topics: the chi-square test or a new topic cluster). Each run "
        f"embeds both windows from cold (MiniLM int8 on the CPU, loaded once in {load_s:.2f} s). Run seconds are "
        "wall-clock on a machine shared with other work; CPU seconds (all threads of this process) are the cost.",
        table,
    ])
    print(body)
    if write_docs:
        write_section(TITLE, body)
        print(f"\nwrote the '{TITLE}' section of docs/benchmarks.md")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
