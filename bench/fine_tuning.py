"""SFT and DPO with LoRA on SmolLM2-135M-Instruct: steps/s and peak RSS (issue 15, Measure).

Each method runs in its own process (so peak RSS is that run's alone) through
``podium.tune.trainer.train``, the function ``podium tune sft|dpo`` calls, on a synthetic
dataset of chat records (SFT) and preference pairs (DPO) with the recipe's defaults
(LoRA r=8 on q_proj/v_proj, batch 4) and a fixed ``max_length``. The first run also converts
the bundled GGUF into the cached transformers folder (timed separately, once per
``$PODIUM_HOME``). CPU by default; ``--device cuda`` on a GPU machine.

    .venv/bin/python bench/fine_tuning.py            # 30 steps each, writes docs/benchmarks.md
    .venv/bin/python bench/fine_tuning.py --quick    # 6 steps each, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench._common import write_section  # noqa: E402

TITLE = "Fine-tuning (SFT and DPO with LoRA, SmolLM2-135M)"

_TOPICS = ["the weather", "a fruit", "Paris", "a dog", "tea", "the sea", "a train", "music", "bread", "snow"]


def sft_records(n: int) -> list[dict[str, object]]:
    return [{"messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
        {"role": "user", "content": f"Tell me something about {_TOPICS[i % len(_TOPICS)]} ({i})."},
        {"role": "assistant", "content": f"Here is one fact about {_TOPICS[i % len(_TOPICS)]}: it is "
                                         f"interesting in many ways, and item {i} shows it well."},
    ]} for i in range(n)]


def dpo_records(n: int) -> list[dict[str, object]]:
    return [{
        "prompt": [{"role": "user", "content": f"Describe {_TOPICS[i % len(_TOPICS)]} politely ({i})."}],
        "chosen": [{"role": "assistant", "content": f"Certainly! {_TOPICS[i % len(_TOPICS)].capitalize()} is "
                                                    "lovely, and I am glad you asked."}],
        "rejected": [{"role": "assistant", "content": "No. Figure it out yourself."}],
    } for i in range(n)]


def child(method: str, steps: int, max_length: int, device: str, home: str) -> None:
    """Runs in a subprocess: one training run, prints a JSON line with its figures."""
    os.environ["PODIUM_HOME"] = home
    from podium.config import Settings
    from podium.tune.base_model import ensure_base_model, torch_threads
    from podium.tune.recipe import parse_recipe
    from podium.tune.trainer import StepLog, train

    settings = Settings()
    t0 = time.monotonic()
    ensure_base_model(settings)
    convert_s = time.monotonic() - t0
    recipe = parse_recipe({
        "method": method, "data": {"path": "unused.jsonl"}, "device": device,
        "training": {"max_steps": steps, "batch_size": 4, "max_length": max_length, "save_steps": 10_000,
                     "logging_steps": 1},
    })
    records = sft_records(64) if method == "sft" else dpo_records(64)
    losses: list[float] = []

    class Hooks:
        def on_log(self, log: StepLog) -> None:
            if log.loss is not None:
                losses.append(log.loss)

        def should_stop(self) -> bool:
            return False

    with tempfile.TemporaryDirectory() as out:
        t0 = time.monotonic()
        result = train(recipe, records, records[:8], output_dir=Path(out), settings=settings, hooks=Hooks())
        wall = time.monotonic() - t0
    print(json.dumps({
        "method": method, "steps": result.steps, "steps_per_s": result.steps_per_s,
        "train_s": result.duration_s, "wall_s": wall, "peak_rss_mb": result.peak_rss_mb,
        "loss_first_last": [losses[0], losses[-1]] if losses else None,
        "eval_loss": result.metrics.get("eval_loss"), "convert_s": convert_s, "device": result.hardware.get("device"),
        "threads": torch_threads(),
    }), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="6 steps each; print only")
    ap.add_argument("--steps", type=int, help="optimizer steps per method (default 30, quick 6)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--home", help="PODIUM_HOME holding the converted base model (default: a cache under /tmp)")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "STEPS", "MAXLEN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    home = args.home or str(Path(tempfile.gettempdir()) / "podium-bench-home")
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), args.device, home)
        return 0
    steps = args.steps or (6 if args.quick else 30)
    rows = []
    for method in ("sft", "dpo"):
        cmd = [sys.executable, __file__, "--child", method, str(steps), str(args.max_length), "--device", args.device,
               "--home", home]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{")), None)
        if out.returncode != 0 or line is None:
            print(out.stdout[-2000:], out.stderr[-4000:], sep="\n")
            print(f"{method}: failed (exit {out.returncode})")
            return 1
        r = json.loads(line)
        rows.append(r)
        print(f"{method}: {r['steps']} steps in {r['train_s']:.1f} s = {r['steps_per_s']:.2f} steps/s "
              f"({1 / r['steps_per_s']:.2f} s/step), peak RSS {r['peak_rss_mb']:.0f} MB, device {r['device']}, "
              f"loss {r['loss_first_last']}, eval_loss {r['eval_loss']}, base conversion {r['convert_s']:.1f} s", flush=True)
    if args.no_docs or (args.quick and not args.write_docs):
        return 0
    cpu = platform.processor() or platform.machine()
    body = [
        f"`bench/fine_tuning.py` (steps {steps}, batch 4, max_length {args.max_length}, LoRA r=8 on q_proj/v_proj, "
        f"{os.cpu_count()} cores, {cpu}, {rows[0]['threads']} torch thread(s): the trainer's default, all cores but "
        f"one, `OMP_NUM_THREADS` overrides; each method in its own process; measured "
        f"{time.strftime('%Y-%m-%d')}).",
        "",
        "| method | device | steps | steps/s | s/step | peak RSS | loss first → last | eval loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ev = f"{r['eval_loss']:.3f}" if isinstance(r["eval_loss"], float) else "-"
        fl = r["loss_first_last"]
        loss = f"{fl[0]:.3f} → {fl[1]:.3f}" if fl else "-"
        body.append(f"| {r['method'].upper()} | {r['device']} | {r['steps']} | {r['steps_per_s']:.2f} | "
                    f"{1 / r['steps_per_s']:.2f} | {r['peak_rss_mb']:.0f} MB | {loss} | {ev} |")
    conv = [r["convert_s"] for r in rows]
    body += ["", f"Converting the bundled GGUF into the cached transformers folder took {max(conv):.1f} s "
                 "(once per `$PODIUM_HOME`; later runs reuse it). A GPU row appears when the script runs on one "
                 "(`--device cuda`)."]
    write_section(TITLE, "\n".join(body))
    print(f"\nwrote the '{TITLE}' section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
