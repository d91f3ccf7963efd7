"""Ray executor overhead: a 10,000-item experiment, local executor vs Ray on a local 2-node cluster.

    .venv/bin/python bench/ray_executor.py            # 10,000 items; writes "## Ray executor" in docs/benchmarks.md
    .venv/bin/python bench/ray_executor.py --quick    # 1,000 items; prints only

The experiment: 10,000 short sentences, a trivial task (echo; every fifth output loses its first
word), and three scorers: ``similar`` (MiniLM-L6-v2 int8 embeddings, in process or in each Ray
worker), ``rouge-l`` and ``token-f1`` (lexical). Both runs use the same ``Runner`` and
``MemoryRecorder`` in this process; only the executor differs:

* **local**: the runner's own threads in this process (``executor="local"``);
* **ray**: ``RayExecutor`` connected to a cluster this script starts (``ray start --head`` plus a
  second ``ray start --address=...`` node, one CPU each, on this machine). The task, the scorers
  and the MiniLM model run in the Ray workers; the driver records.

It reports the wall time of each (the cluster's start separately), items/s, and checks the results
match item by item (lexical scores exactly; embedding scores to 1e-4, since int8 MiniLM's values
move in the 6th decimal with the batch composition). On a 2-core machine Ray cannot beat the
local executor: the figure is Ray's overhead (task dispatch, pickling, a model load per worker).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, free_port, header_block, machine_facts, md_table, write_section

TITLE = "Ray executor"
RAY_BIN = str(Path(sys.executable).with_name("ray"))
SCORERS = ["similar", "rouge-l", "token-f1"]


def echo(input: str) -> str:
    words = input.split()
    return " ".join(words[1:]) if len(input) % 5 == 0 else input


def dataset(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(0)
    subjects = ["cat", "dog", "river", "mountain", "city", "teacher", "engine", "garden", "storm", "library"]
    verbs = ["watches", "builds", "crosses", "remembers", "paints", "follows", "repairs", "describes", "visits"]
    objects = ["the old bridge", "a quiet harbour", "the morning light", "a broken clock", "the northern road",
               "a red kite", "the last train", "an empty room", "the tall tower", "a paper boat"]
    out = []
    for i in range(n):
        s = f"The {rnd.choice(subjects)} {rnd.choice(verbs)} {rnd.choice(objects)} on day {i}."
        out.append({"input": s, "expected": s})
    return out


def run(executor: Any, items: list[dict[str, Any]]) -> tuple[float, Any]:
    from podium.core.datasets import items_from_records
    from podium.experiments.runner import MemoryRecorder, RunConfig, Runner

    runner = Runner(echo, SCORERS, config=RunConfig(max_concurrency=8), recorder=MemoryRecorder(), progress=False,
                    executor=executor)
    its = list(items_from_records(items))
    t0 = time.perf_counter()
    res = runner.run(its, {})
    return time.perf_counter() - t0, res


def compare(a: Any, b: Any) -> tuple[bool, float]:
    """(every item matches, the largest |difference| of the embedding scores)."""
    worst = 0.0
    ok = len(a.items) == len(b.items)
    for x, y in zip(a.items, b.items, strict=False):
        if (x["item_id"], x["output"], x["passed"], x["error"]) != (y["item_id"], y["output"], y["passed"], y["error"]):
            ok = False
        for name in SCORERS:
            vx, vy = x["scores"][name]["value"], y["scores"][name]["value"]
            if name == "similar":
                worst = max(worst, abs(vx - vy))
            elif vx != vy:
                ok = False
    return ok and worst <= 1e-4, worst


class LocalCluster:
    """``ray start --head`` + one more node on 127.0.0.1; stopped by pid (never a machine-wide ray stop)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.temp = tempfile.mkdtemp(prefix="pray", dir="/tmp")
        # Ray 2.60 turns token authentication on for `ray start --head` once ~/.ray/auth_token exists, and the
        # driver reads its mode when `ray` is imported: this short-lived local cluster opts out on both sides
        os.environ["RAY_AUTH_MODE"] = "disabled"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        common = ["--num-cpus=1", f"--object-store-memory={200 * 1024 * 1024}", "--disable-usage-stats"]
        t0 = time.perf_counter()
        subprocess.run([RAY_BIN, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                        "--include-dashboard=false", f"--temp-dir={self.temp}", *common],
                       check=True, env=self.env, capture_output=True, timeout=180)
        self.head_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([RAY_BIN, "start", f"--address=127.0.0.1:{self.port}", "--node-ip-address=127.0.0.1",
                        *common], check=True, env=self.env, capture_output=True, timeout=180)
        self.node_s = time.perf_counter() - t0
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        import psutil

        found = [p for p in psutil.process_iter(["cmdline"]) if p.pid != os.getpid()
                 and (f":{self.port}" in " ".join(p.info["cmdline"] or []) or self.temp in " ".join(
                     p.info["cmdline"] or []))]
        procs = {p.pid: p for p in found}
        for p in found:  # the agents a raylet starts rename themselves (ray::DashboardAgent)
            try:
                procs.update((c.pid, c) for c in p.children(recursive=True))
            except psutil.Error:
                pass
        for p in procs.values():
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(list(procs.values()), timeout=20)
        shutil.rmtree(self.temp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 items; print only")
    ap.add_argument("--items", type=int, default=None, help="another item count (still writes the section)")
    args = ap.parse_args()
    n = args.items or (1000 if args.quick else 10_000)
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import ray

    from podium.executor import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    items = dataset(n)
    print(f"{n} items, scorers {', '.join(SCORERS)}", flush=True)
    load: dict[str, float] = {}
    local_s, local = run("local", items)
    load["local"] = os.getloadavg()[0]
    print(f"local (cold): {local_s:.1f} s ({n / local_s:.0f} items/s), load {load['local']:.1f}", flush=True)
    local2_s, local2 = run("local", items)  # the embedding cache is warm now, as for Ray's second run
    load["local2"] = os.getloadavg()[0]
    print(f"local (warm): {local2_s:.1f} s ({n / local2_s:.0f} items/s), load {load['local2']:.1f}", flush=True)
    cluster = LocalCluster()
    print(f"cluster: head {cluster.head_s:.1f} s, second node {cluster.node_s:.1f} s", flush=True)
    try:
        t0 = time.perf_counter()
        ray.init(address=cluster.address, log_to_driver=False)
        connect_s = time.perf_counter() - t0
        nodes = sum(1 for x in ray.nodes() if x["Alive"])
        ex = RayExecutor(cluster.address)
        cold_s, cold = run(ex, items)
        load["cold"] = os.getloadavg()[0]
        print(f"ray (cold workers): {cold_s:.1f} s ({n / cold_s:.0f} items/s), {nodes} nodes, load "
              f"{load['cold']:.1f}", flush=True)
        warm_s, warm = run(ex, items)
        load["warm"] = os.getloadavg()[0]
        print(f"ray (warm workers): {warm_s:.1f} s ({n / warm_s:.0f} items/s), load {load['warm']:.1f}", flush=True)
        batch = max(16, -(-n // (4 * ex.cluster_cpus())))
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()
    ok_cold, worst_cold = compare(local, cold)
    ok_warm, worst_warm = compare(local, warm)
    print(f"results match: cold {ok_cold} (max similar diff {worst_cold:.2e}), warm {ok_warm} "
          f"(max {worst_warm:.2e})", flush=True)
    if args.quick:
        return
    ok_local2, _ = compare(local, local2)
    rows = [
        ["local, first run (MiniLM load, empty embedding cache)", f"{local_s:.1f}", f"{n / local_s:.0f}",
         f"{load['local']:.1f}", "-"],
        ["local, second run (same process: embeddings cached)", f"{local2_s:.1f}", f"{n / local2_s:.0f}",
         f"{load['local2']:.1f}", "yes" if ok_local2 else "NO"],
        ["ray, first run (worker start + MiniLM load per worker)", f"{cold_s:.1f}", f"{n / cold_s:.0f}",
         f"{load['cold']:.1f}", "yes" if ok_cold else "NO"],
        ["ray, second run (warm workers: embeddings cached there)", f"{warm_s:.1f}", f"{n / warm_s:.0f}",
         f"{load['warm']:.1f}", "yes" if ok_warm else "NO"],
    ]
    body = "\n\n".join([
        header_block(machine_facts(with_pg=False), command_line()),
        f"{n:,} items (one sentence each, expected = itself), task: echo (every fifth output drops its first "
        "word); scorers `similar` (MiniLM-L6-v2 int8), `rouge-l`, `token-f1`; `max_concurrency` 8. Ray: a "
        f"local 2-node cluster started by the script (`ray start --head --node-ip-address=127.0.0.1 "
        f"--num-cpus=1` in {cluster.head_s:.1f} s, a second `ray start --address=...` node in "
        f"{cluster.node_s:.1f} s, {nodes} nodes alive, driver connect {connect_s:.1f} s), "
        f"{batch} items per task. The driver records every result (MemoryRecorder).",
        md_table(["executor", "wall s", "items/s", "1-min load after", "results match local's first run"], rows),
        f"Results match: outputs, pass/fail, errors and the lexical scores item by item exactly; the embedding "
        f"scores to {max(worst_cold, worst_warm):.1e} at most (int8 MiniLM's values move in the 6th decimal with "
        "the batch composition; the check allows 1e-4).",
        f"**This machine has 2 cores and was shared with other work while this ran (the load column: 1-minute "
        f"load average, 2.0 = both cores busy), so the wall times measure the contention as much as the "
        f"executors.** On 2 cores Ray cannot beat the local executor: the same two cores do the work, plus "
        f"pickling the batches, dispatch through the raylets and a MiniLM load per Ray worker. The second runs "
        f"compare like with like (embeddings cached in the process, or in each Ray worker): local "
        f"{local2_s:.0f} s, Ray {warm_s:.0f} s, so Ray's overhead here is about {warm_s - local2_s:.0f} s per "
        f"{n:,} items ({(warm_s - local2_s) / n * 1000:.1f} ms an item)"
        + (f"; under this contention Ray's first run came out ahead (local {local_s:.0f} s, Ray {cold_s:.0f} s: "
           "three busy processes get more of a shared machine than one)" if cold_s < local_s else
           f"; the first runs (model loads, empty caches) took local {local_s:.0f} s and Ray {cold_s:.0f} s")
        + ". Ray pays off with more cores than one machine has, or with slow items (model calls through the "
        "gateway) spread over many nodes. Not counted in the wall times: the cluster's start (above) and the "
        "driver's connect.",
    ])
    write_section(TITLE, body)
    print(f"wrote the {TITLE!r} section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
