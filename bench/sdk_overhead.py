"""SDK overhead per decorated call and per context-manager span, with the exporter running
against a live Podium server: Podium SDK vs the Langfuse SDK vs the OpenTelemetry SDK
(BatchSpanProcessor + OTLP/HTTP exporter), each in its own virtual environment, in one run.

    .venv/bin/python bench/sdk_overhead.py [--quick]

Every SDK exports to the same local server (Langfuse and OTel through our OTLP endpoints),
so each pays for its real background export. Overhead = p50/p99 of one call minus the p50
of the same undecorated function. Target: Podium <= 15 us p50.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BENCH,
    ServerProcess,
    command_line,
    default_keys,
    header_block,
    machine_facts,
    md_table,
    write_section,
)

VENVS = BENCH / ".venvs"
NOTE = (
    "Delivery is not the same across SDKs: Podium's queue was raised to 10M items here and every span was "
    "delivered (the final flush measures the server ingesting single-span traces sent one batch at a time); "
    "the OpenTelemetry BatchSpanProcessor keeps at most 2,048 queued spans and drops the rest without error, "
    "and this harness does not count what the Langfuse and OTel runs delivered, so their flush times are not "
    "comparable."
)

WORKER = textwrap.dedent(
    r'''
    import gc, json, os, sys, time
    mode, n = sys.argv[1], int(sys.argv[2])
    url, pk, sk = os.environ["BENCH_URL"], os.environ["BENCH_PK"], os.environ["BENCH_SK"]

    def bare(x):
        return x

    if mode == "podium":
        import podium
        podium.configure(base_url=url, public_key=pk, secret_key=sk, max_queue_size=10_000_000)

        @podium.observe()
        def deco(x):
            return x

        def ctx(x):
            with podium.span("ctx"):
                return x

        def flush():
            r = podium.flush(timeout=120)
            return {"sent": r.sent, "dropped": r.dropped, "failed": r.failed}
    elif mode == "langfuse":
        os.environ.update(LANGFUSE_PUBLIC_KEY=pk, LANGFUSE_SECRET_KEY=sk, LANGFUSE_BASE_URL=url, LANGFUSE_HOST=url)
        import langfuse
        from langfuse import get_client, observe
        lf = get_client()

        @observe()
        def deco(x):
            return x

        start = getattr(lf, "start_as_current_observation", None) or lf.start_as_current_span

        def ctx(x):
            with start(name="ctx"):
                return x

        def flush():
            lf.flush()
            return {"version": getattr(langfuse, "__version__", "?")}
    else:
        import base64
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        token = base64.b64encode(f"{pk}:{sk}".encode()).decode()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=url + "/v1/traces", headers={"Authorization": f"Basic {token}"})))
        tracer = provider.get_tracer("bench")

        @tracer.start_as_current_span("deco")
        def deco(x):
            return x

        def ctx(x):
            with tracer.start_as_current_span("ctx"):
                return x

        def flush():
            provider.force_flush(120_000)
            return {}

    def measure(fn):
        for i in range(2000):
            fn(i)
        out = []
        pc = time.perf_counter_ns
        gc.disable()
        for i in range(n):
            t0 = pc(); fn(i); out.append(pc() - t0)
        gc.enable()
        out.sort()
        return out[len(out) // 2] / 1000, out[int(len(out) * 0.99)] / 1000

    res = {}
    t0 = time.perf_counter()
    for name, fn in (("bare", bare), ("decorator", deco), ("span", ctx)):
        res[name] = measure(fn)
    t1 = time.perf_counter()
    res["flush"] = flush()
    res["flush_s"] = time.perf_counter() - t1
    res["calls"] = 2 * (n + 2000)
    res["wall_s"] = t1 - t0
    print(json.dumps(res))
    '''
)


def venv_python(name: str, packages: list[str]) -> Path:
    path = VENVS / name
    py = path / "bin" / "python"
    stamp = path / ".bench-installed"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
        stamp.write_text(" ".join(packages))
    return py


def run_worker(py: Path, mode: str, n: int, env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(WORKER)
    try:
        out = subprocess.run([str(py), fh.name, mode, str(n)], env=env, capture_output=True, text=True,
                             timeout=900)
    finally:
        os.unlink(fh.name)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20k calls per measurement instead of 200k")
    args = ap.parse_args()
    n = 20_000 if args.quick else 200_000
    pythons = {
        "podium": Path(sys.executable),
        "langfuse": venv_python("langfuse", ["langfuse"]),
        "otel": venv_python("otel", ["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"]),
    }
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "home") as server:
        pk, sk = default_keys(server.home)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "OTEL_", "LANGFUSE_"))}
        env.update(BENCH_URL=server.url, BENCH_PK=pk, BENCH_SK=sk)
        for mode, py in pythons.items():
            results[mode] = run_worker(py, mode, n, env)
            print(mode, json.dumps(results[mode]))
    rows = []
    base = results["podium"]
    for mode, r in results.items():
        bare = r["bare"][0]
        dec = (r["decorator"][0] - bare, r["decorator"][1] - bare)
        spn = (r["span"][0] - bare, r["span"][1] - bare)
        pd = (base["decorator"][0] - base["bare"][0], base["span"][0] - base["bare"][0])
        rows.append([
            mode, f"{dec[0]:.1f}", f"{dec[1]:.1f}", f"{spn[0]:.1f}", f"{spn[1]:.1f}",
            f"{dec[0] / pd[0]:.1f}x" if pd[0] > 0 else "-", f"{spn[0] / pd[1]:.1f}x" if pd[1] > 0 else "-",
            f"{r['flush_s']:.1f}",
        ])
    pod = results["podium"]
    verdict = "met" if pod["decorator"][0] - pod["bare"][0] <= 15 else "NOT met"
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        f"{n:,} calls per measurement after 2,000 warm-up calls; GC off while timing; each SDK exports "
        "to a live Podium server (SQLite) in the same run. Overhead in microseconds = call time minus "
        "the p50 of the same undecorated function. Ratios are relative to Podium (higher = slower).",
        md_table(["SDK", "decorator p50 µs", "decorator p99 µs", "span() p50 µs", "span() p99 µs",
                  "decorator vs Podium", "span vs Podium", "final flush s"], rows),
        f"Podium flush result: `{json.dumps(pod['flush'])}`. Target ≤ 15 µs p50 per decorated call: **{verdict}**.",
        NOTE,
    ])
    write_section("SDK overhead", body)
    print(body)


if __name__ == "__main__":
    main()
