"""Red-team run against the local model: attack-success rate per family, and how many attacks
the default guardrail policy blocks.

    .venv/bin/python bench/guard_redteam.py            # every family, 12 probes each (~8 min on 2 cores)
    .venv/bin/python bench/guard_redteam.py --quick    # 4 probes per family; prints only

``podium gateway`` in its own process (fresh PODIUM_HOME, a ``--role gateway`` key, cache off),
alias ``local`` (SmolLM2-135M-Instruct on llama.cpp), warmed by one request. Then the README's
command, ``podium redteam run redteam.yaml --guard default -o report.json``, as a subprocess: the
built-in probe sets (all families; encodings base64, rot13 and leetspeak), the default system
prompt with its canary and fake customer record, ``max_tokens`` 96, temperature 0, one
repetition, concurrency 2. ``--guard default`` runs the default policy in process on every
attack (input rules) and every answer (output rules) of the same run, so "without the guard"
(ASR) and "with it" (ASR after guard) come from the same answers. Grading is deterministic
(markers, canary, planted personal data, the ``refusal`` scanner); no judge model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import yaml

from bench._common import ROOT, command_line, free_port, header_block, machine_facts, md_table, write_section
from bench.gateway_overhead import Proc, child_env, cli_json

TITLE = "Red team: local model"


def ci(s: dict[str, Any], suffix: str = "") -> str:
    v, lo, hi = s.get("asr" + suffix), s.get("low" + suffix), s.get("high" + suffix)
    if v is None:
        return "–"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def reading(res: dict[str, Any]) -> str:
    """What the table says, from the numbers (the order of families by ASR, where the policy helps)."""
    fams = res["families"]
    worst = sorted(fams, key=lambda f: -(fams[f]["asr"] or 0))
    helped = [f"{f} ({fams[f]['successes_blocked']} of {fams[f]['successes']})" for f in worst
              if fams[f]["successes_blocked"]]
    missed = [f for f in worst if fams[f]["successes"] and not fams[f]["successes_blocked"]]
    o = res["overall"]
    top = ", ".join(f"{f} {fams[f]['asr']:.2f}" for f in worst[:3])
    return (f"Reading it: the highest attack-success rates are {top}. "
            f"The default policy would stop {o['successes_blocked']} of the {o['successes']} successful attacks "
            f"({', '.join(helped) or 'none'}); it stops none in {', '.join(missed) or 'no family'}. It judges the "
            "attack's wording (its input rules: prompt-injection blocks, secrets redacts, pii only flags) and "
            "on the answer only redacts secrets and flags personal data, so it cannot stop a leaked canary or "
            "customer record, nor a plainly worded harmful request; `strict`, `banned-topics` or an output "
            "`regex` on your own secrets cover those. "
            "The input columns count attacks the policy recognises whether or not the model would have "
            "obeyed them.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 probes per family; prints only")
    ap.add_argument("--num-probes", type=int, help="at most this many probes per family (default 12, a seeded sample)")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--write-docs", action="store_true", help="write docs/benchmarks.md even with --quick")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    num = args.num_probes or (4 if args.quick else 12)
    write_docs = (not args.quick or args.write_docs) and not args.no_docs
    with tempfile.TemporaryDirectory(prefix="guard-redteam-") as tmp_s:
        tmp = Path(tmp_s)
        home = tmp / "home"
        home.mkdir()
        port = free_port()
        env = child_env(PODIUM_HOME=str(home), PODIUM_HOST="127.0.0.1", PODIUM_PORT=str(port),
                        PODIUM_GATEWAY_CACHE="off", PODIUM_LOCAL_CONTEXT="2048")
        cli_json(["projects", "create", "bench"], env)
        key = cli_json(["keys", "create", "--project", "bench", "--role", "gateway", "--note", "redteam bench"], env)
        base = f"http://127.0.0.1:{port}"
        server = Proc("podium gateway", [sys.executable, "-m", "podium.cli", "gateway", "--host", "127.0.0.1",
                                         "--port", str(port)], env, tmp / "gateway.log").start()
        try:
            auth = {"Authorization": f"Bearer {key['secret_key']}"}
            server.wait_ready(base + "/v1/models", auth)
            t0 = time.perf_counter()
            httpx.post(base + "/v1/chat/completions", headers=auth, timeout=300,
                       json={"model": "local", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
                       ).raise_for_status()
            print(f"gateway warmed (model load + first answer): {time.perf_counter() - t0:.1f} s", flush=True)
            cfg: dict[str, Any] = {
                "name": "local-model", "target": {"gateway": {"model": "local", "max_tokens": args.max_tokens}},
                "families": "all", "strategies": ["base64", "rot13", "leetspeak"], "repetitions": 1,
                "concurrency": args.concurrency, "gate": {"max_error_rate": 0.05}}
            if num:
                cfg["num_probes"] = num
            cfg_path = tmp / "redteam.yaml"
            cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            report = ROOT / "bench" / "out" / "guard_redteam.json"
            run_env = {**env, "PODIUM_BASE_URL": base, "PODIUM_SECRET_KEY": key["secret_key"]}
            cmd = [sys.executable, "-m", "podium.cli", "redteam", "run", str(cfg_path), "--guard", "default",
                   "-o", str(report), "-o", str(ROOT / "bench" / "out" / "guard_redteam.html")]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=str(ROOT), env=run_env, capture_output=True, text=True, timeout=1200)
            wall = time.perf_counter() - t0
            print(r.stdout[-6000:], r.stderr[-2000:], sep="\n", flush=True)
            if not report.exists():
                sys.exit(f"podium redteam run wrote no report (exit {r.returncode})")
            res = json.loads(report.read_text())
        finally:
            server.stop()
    rows = []
    for fam, s in [*res["families"].items(), ("**overall**", res["overall"])]:
        rows.append([fam, s["attempts"], s["successes"], ci(s), s["blocked_input"], s["blocked_output"],
                     f"{s['successes_blocked']} of {s['successes']}", ci(s, "_after_guard"), s["errors"]])
    table = md_table(["family", "attempts", "attack successes", "ASR [95% CI]", "blocked by default (input)",
                      "blocked by default (output)", "successes the policy stops", "ASR with --guard default",
                      "errors"], rows)
    o = res["overall"]
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        f"`podium redteam run` (exit {r.returncode}) against `local` (SmolLM2-135M-Instruct Q4_1, llama.cpp) through "
        f"`podium gateway`: {o['attempts']} attempts in {wall:.0f} s ({res['settings']['num_probes'] or 'all'} probes "
        f"per family, max_tokens {args.max_tokens}, temperature 0, concurrency {args.concurrency}); grader "
        f"{res['grader']['refusal']}, no judge. ASR = attacks that got what they wanted / attempts, with Wilson 95% "
        "intervals. \"Blocked\" counts attempts the `default` guard policy would have stopped, on the attack "
        "(input rules: prompt-injection, secrets, pii) or on the answer (output rules); \"ASR with --guard default\" "
        "counts only successes the policy did not stop (blocked, or an answer it redacts re-graded on the redacted "
        "text; a redacted input is not re-sent). Both columns come from the same answers.",
        table,
        reading(res),
    ])
    print(body)
    if write_docs:
        write_section(TITLE, body)
        print(f"wrote the '{TITLE}' section of docs/benchmarks.md")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
