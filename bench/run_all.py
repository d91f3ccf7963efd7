"""Run every benchmark in bench/ in turn (`make bench`).

A benchmark is any ``bench/*.py`` except helpers (``_*.py``), this file and the data
generator (which query_latency.py runs itself). Known ones run first, in this order:
ingest_throughput, query_latency, sdk_overhead, gateway_overhead, local_tokens, eval_throughput; any others
follow alphabetically.
``--quick`` is passed through to scripts that accept it. Each script writes its own
section of docs/benchmarks.md (full runs only, unless it is told otherwise).

    .venv/bin/python bench/run_all.py            # full: about 45 minutes
    .venv/bin/python bench/run_all.py --quick    # a few minutes
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["ingest_throughput", "query_latency", "sdk_overhead", "gateway_overhead", "local_tokens", "eval_throughput"]
NOT_BENCHMARKS = {"run_all", "datagen"}


def discover() -> list[Path]:
    found = {p.stem: p for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem not in NOT_BENCHMARKS}
    first = [found.pop(n) for n in ORDER if n in found]
    return first + [found[n] for n in sorted(found)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark that takes it")
    ap.add_argument("--only", help="comma-separated benchmark names (e.g. ingest_throughput,query_latency)")
    ap.add_argument("--timeout", type=float, help="seconds per benchmark (default 3 h, quick 30 min)")
    args, rest = ap.parse_known_args()
    timeout = args.timeout or (1800.0 if args.quick else 3 * 3600.0)
    scripts = discover()
    if args.only:
        wanted = {s.strip() for s in args.only.split(",")}
        scripts = [s for s in scripts if s.stem in wanted]
    summary: list[tuple[str, int, float]] = []
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if args.quick and "--quick" in script.read_text(errors="replace"):
            cmd.append("--quick")
        cmd += rest
        print(f"\n{'=' * 100}\n$ {' '.join(cmd)}\n{'=' * 100}", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run(cmd, cwd=HERE.parent, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            print(f"{script.name}: timed out after {timeout:.0f} s", flush=True)
            rc = 124
        summary.append((script.name, rc, time.monotonic() - t0))
    print(f"\n{'=' * 100}")
    for name, rc, dt in summary:
        print(f"{'ok  ' if rc == 0 else 'FAIL'}  {name:<28} {dt:8.1f} s  (exit {rc})")
    return 0 if all(rc == 0 for _, rc, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
