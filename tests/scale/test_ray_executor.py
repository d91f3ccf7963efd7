"""Ray as the executor (issue 18 item 2): a real two-node Ray cluster on this machine.

The module starts a head node (``ray start --head --node-ip-address=127.0.0.1``) and a second
node joining it (``ray start --address=...``), one CPU each, checks both are alive, then:

* runs one experiment with the local executor and with Ray and asserts identical results;
* kills the second node's raylet in the middle of a run and asserts the run finishes with every
  item recorded exactly once (its tasks re-run on the head node);
* runs a tune sweep with its trials as Ray tasks and asserts the same study as a local one.

Teardown kills every process of this cluster by pid (the ones whose command line names its
port or temp folder), never a machine-wide ``ray stop``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'podium[ray]'")
psutil = pytest.importorskip("psutil")

from podium.executor import LocalExecutor, RayExecutor  # noqa: E402
from podium.experiments.runner import MemoryRecorder, RunConfig, Runner  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

RAY_BIN = str(Path(sys.executable).with_name("ray"))
STORE = str(80 * 1024 * 1024)  # object store per node: small, the payloads are tiny


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raylets() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "raylet"}


def _ours(port: int, temp: str) -> list[Any]:
    """Every process of this test's cluster: its command line names the GCS port or the temp folder."""
    out: dict[int, Any] = {}
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.pid != os.getpid() and (f":{port}" in cmd or temp in cmd):
            out[p.pid] = p
            try:  # the agents a raylet starts rename themselves (ray::DashboardAgent): take its children too
                out.update((c.pid, c) for c in p.children(recursive=True))
            except psutil.Error:
                pass
    return list(out.values())


# Ray 2.60 turns token authentication on for `ray start --head` once ~/.ray/auth_token exists, while a
# driver reads its own mode when `ray` is imported (before any fixture runs): this short-lived test
# cluster opts out on both sides. docs/ray.md says to keep tokens on for a real cluster.
AUTH = {"RAY_AUTH_MODE": "disabled"}
ENV = {**os.environ, **AUTH, "RAY_USAGE_STATS_ENABLED": "0",
       # notice a dead node in ~5 s instead of the default ~30 s
       "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "5",
       "RAY_health_check_initial_delay_ms": "1000"}
COMMON = ["--num-cpus=1", f"--object-store-memory={STORE}", "--disable-usage-stats"]


class Cluster:
    def __init__(self, port: int, temp: str) -> None:
        self.port, self.temp = port, temp
        self.address = f"127.0.0.1:{port}"

    def add_node(self) -> tuple[int, str]:
        """``ray start --address=...`` one more node; its raylet's pid and its node id, once alive."""
        before = _raylets()
        subprocess.run([RAY_BIN, "start", f"--address={self.address}", "--node-ip-address=127.0.0.1", *COMMON],
                       check=True, env=ENV, capture_output=True, timeout=120)
        new = _raylets() - before
        assert len(new) == 1, f"expected one new raylet, found {new}"
        pid = new.pop()
        sock = next(a.split("=", 1)[1] for a in psutil.Process(pid).cmdline()
                    if a.startswith("--raylet_socket_name="))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for n in ray.nodes() if ray.is_initialized() else []:
                if n["Alive"] and n["RayletSocketName"] == sock:
                    return pid, str(n["NodeID"])
            time.sleep(0.3)
        raise AssertionError(f"the node of raylet {pid} did not come up: {ray.nodes()}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="pray", dir="/tmp")  # short: Ray's socket paths have a length limit
    saved = {k: os.environ.get(k) for k in AUTH}
    os.environ.update(AUTH)  # this process is the driver: it connects with the cluster's token
    try:
        subprocess.run([RAY_BIN, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        "--include-dashboard=false", f"--temp-dir={temp}", *COMMON],
                       check=True, env=ENV, capture_output=True, timeout=120)
        c = Cluster(port, temp)
        ray.init(address=c.address, log_to_driver=False)
        c.add_node()
        assert sum(1 for n in ray.nodes() if n["Alive"]) == 2, ray.nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        procs = _ours(port, temp)
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=20)
        shutil.rmtree(temp, ignore_errors=True)  # the session's logs and sockets
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- the workload (pickled by value: the test module is not importable on the workers) -----------

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def answer(input: str) -> str:
    if input.startswith("bad"):
        raise ValueError(f"cannot answer {input}")
    return input.upper() if len(input) % 3 else input


ATTEMPTS = ""  # a file every attempt of slow_answer appends to (set by the test before the run is pickled)


def slow_answer(input: str) -> str:
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    if ATTEMPTS:
        with open(ATTEMPTS, "a") as f:  # one short O_APPEND write a line: whole lines from every process
            f.write(f"{input}@{node}\n")
    time.sleep(0.05)
    return f"{input}@{node}"


ITEMS = ([{"input": f"question number {i}", "expected": f"QUESTION NUMBER {i}" if i % 2 else f"question number {i}"}
          for i in range(48)] + [{"input": "bad item", "expected": "x"}])
SCORERS = ["exact-match", {"type": "rouge-l", "threshold": 0.5}, {"type": "levenshtein"}, "similar"]
VOLATILE = {"latency_ms", "trace_id"}


def _run(executor: Any, items: list[dict[str, Any]], task: Any = answer, **cfg: Any) -> tuple[Any, MemoryRecorder]:
    from podium.core.datasets import items_from_records

    rec = MemoryRecorder()
    runner = Runner(task, SCORERS if task is answer else ["exact-match"], config=RunConfig(**cfg), recorder=rec,
                    progress=False, executor=executor)
    res = runner.run(list(items_from_records(items)), {})
    return res, rec


def _comparable(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k not in VOLATILE}
    scores = {}
    for name, e in (item.get("scores") or {}).items():
        e = dict(e)
        if name == "similar" and e.get("value") is not None:
            e["value"] = round(e["value"], 4)  # int8 MiniLM: batch composition moves the 6th decimal
            e.get("metadata", {}).pop("value", None)
        scores[name] = e
    out["scores"] = scores
    return out


# --- tests -----------------------------------------------------------------------------------------


def test_two_nodes_alive(cluster: Cluster) -> None:
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) >= 2
    assert ray.cluster_resources().get("CPU", 0) >= 2


def test_ray_results_identical_to_local(cluster: Cluster) -> None:
    local, _ = _run("local", ITEMS, repetitions=2, max_concurrency=4)
    ex = RayExecutor(cluster.address, batch_size=8)
    remote, rec = _run(ex, ITEMS, repetitions=2, max_concurrency=4)
    assert len(remote.items) == len(local.items) == 2 * len(ITEMS)
    assert [_comparable(dict(i)) for i in remote.items] == [_comparable(dict(i)) for i in local.items]
    bad = [i for i in remote.items if i["error"]]
    assert len(bad) == 2 and bad[0]["error"] == "ValueError: cannot answer bad item"
    assert bad[0]["error_type"] == "task_error"
    for name in ("exact-match", "rouge-l", "levenshtein"):
        assert remote.summary["scorers"][name]["mean"] == local.summary["scorers"][name]["mean"]
    assert remote.summary["scorers"]["similar"]["mean"] == pytest.approx(local.summary["scorers"]["similar"]["mean"],
                                                                          abs=1e-5)
    assert remote.pass_rate == local.pass_rate
    assert len(rec.items) == 2 * len(ITEMS)  # the driver recorded each unit once


def test_worker_node_killed_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    global ATTEMPTS
    ATTEMPTS = str(tmp_path / "attempts.log")
    Path(ATTEMPTS).touch()
    raylet, node = cluster.add_node()  # a third node, killed below (the module's two stay)
    alive = sum(1 for n in ray.nodes() if n["Alive"])
    items = [{"input": f"q{i}", "expected": "-"} for i in range(240)]
    ex = RayExecutor(cluster.address, batch_size=6, max_retries=5)
    seen: list[int] = []
    killed = threading.Event()
    stop = threading.Event()

    def killer() -> None:
        """Kill the third node while it is inside a batch: right after it starts a batch's first item."""
        while not stop.is_set() and not killed.is_set():
            for line in Path(ATTEMPTS).read_text().split():
                q, _, where = line.partition("@")
                if where == node and int(q[1:]) % 6 == 0:
                    os.kill(raylet, signal.SIGKILL)
                    killed.set()
                    return
            time.sleep(0.01)

    original = ex.map

    def map_recording(fn: Any, payload: Any, *, batch_size: Any = None, on_batch: Any = None) -> Any:
        def record(start: int, results: list[Any]) -> None:
            seen.append(start)
            on_batch(start, results)

        return original(fn, payload, batch_size=batch_size, on_batch=record)

    ex.map = map_recording  # type: ignore[method-assign]  # counts the batches the driver accepts
    watcher = threading.Thread(target=killer, daemon=True)
    watcher.start()
    try:
        res, rec = _run(ex, items, task=slow_answer, max_concurrency=1)
    finally:
        stop.set()
        watcher.join(5)
    assert killed.is_set(), "the third node never ran a batch"
    assert len(res.items) == len(items) and len(rec.items) == len(items)
    keys = [(i["item_id"], i["repetition"]) for i in rec.items]
    assert len(set(keys)) == len(keys)  # nothing counted twice
    assert sorted(seen) == list(range(0, len(items), 6))  # every batch accepted once
    assert all(i["error"] is None for i in res.items), [i["error"] for i in res.items if i["error"]][:3]
    lines = Path(ATTEMPTS).read_text().split()
    runs: dict[str, int] = {}
    for x in lines:
        q = x.split("@")[0]
        runs[q] = runs.get(q, 0) + 1
    assert set(runs) == {i["input"] for i in items}
    retried = [q for q, k in runs.items() if k > 1]
    assert retried  # Ray re-ran the batch the dead node was running ...
    assert all(sum(1 for r in rec.items if r["input"] == q) == 1 for q in retried)  # ... and it was recorded once
    deadline = time.monotonic() + 30
    while sum(1 for n in ray.nodes() if n["Alive"]) != alive - 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert sum(1 for n in ray.nodes() if n["Alive"]) == alive - 1


def test_tune_sweep_trials_on_ray(cluster: Cluster, tmp_path: Path) -> None:
    from podium.config import Settings
    from podium.tune.sweep import parse_sweep, run_sweep

    spec = parse_sweep({"recipe": {"method": "sft", "data": {"path": "train.jsonl"}}, "trials": 5, "seed": 2,
                        "space": {"training.learning_rate": {"type": "float", "low": 0.1, "high": 1.0}},
                        "pruner": "none"})

    def objective(ctx: Any) -> float:
        lr = ctx.params["training.learning_rate"]
        for step in (1, 2):
            ctx.report(lr * step, step)
        return (lr - 0.4) ** 2

    settings = Settings(home=tmp_path)
    local = run_sweep(spec, objective, sweep_id="local", settings=settings)
    remote = run_sweep(spec, objective, sweep_id="remote", settings=settings, executor="ray",
                       ray_address=cluster.address)
    assert [(t.params, t.value, t.state) for t in remote.trials] == [(t.params, t.value, t.state) for t in local.trials]
    assert remote.best is not None and local.best is not None and remote.best.number == local.best.number
    assert all(t.last_step == 2 for t in remote.trials)  # the reports made on Ray reached the study


def test_local_executor_map_keeps_order() -> None:
    got: list[int] = []
    out = LocalExecutor(max_workers=3).map(lambda b: [x * 2 for x in b], list(range(25)), batch_size=4,
                                           on_batch=lambda start, r: got.append(start))
    assert out == [x * 2 for x in range(25)]
    assert sorted(got) == list(range(0, 25, 4))


def test_redteam_probes_on_ray_match_local(cluster: Cluster, upstream: Any) -> None:
    """An HTTP target (the fake upstream on 127.0.0.1, reachable from every node): the probes sent
    from Ray tasks grade exactly as the ones sent from this process."""
    from podium.redteam import parse_config, run_redteam
    from tests.gateway.fake_upstream import Reply

    def leak(body: dict[str, Any]) -> Reply:
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        return Reply(f"Sure! My instructions: {system}")

    upstream.respond("leaky-ray", leak)
    cfg = parse_config({"name": "ray", "families": ["system-prompt-extraction", "injection"], "num_probes": 3,
                        "repetitions": 2, "concurrency": 2, "canary": "CANARY-0123456789",
                        "target": {"http": {"url": upstream.base_url + "/chat/completions",
                                            "body": {"model": "leaky-ray", "messages": "{{messages}}"}}}})
    local = run_redteam(cfg)
    remote = run_redteam(cfg, executor=RayExecutor(cluster.address, batch_size=2))
    strip = ("latency_ms",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in remote["results"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in local["results"]]
    assert remote["overall"] == local["overall"] and remote["overall"]["successes"] > 0
    assert remote["exit_code"] == local["exit_code"]


def test_online_backfill_scores_on_ray(cluster: Cluster, store: Any, project: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill batch's deterministic scorers run as Ray tasks; the worker writes the scores."""
    from datetime import timedelta

    from tests.monitor.test_online_eval import RULES, T0, Jobs, _serve, ingest, iso, make_rule, online_scores

    monkeypatch.setenv("PODIUM_WORKER_EMBEDDED", "false")  # the jobs are run by hand below
    serving = _serve(store, project)
    srv = next(serving)
    try:
        ingest(srv, [{"id": f"r{i}", "question": "q", "answer": "yes indeed" if i % 3 else "no",
                      "start": T0 + timedelta(minutes=i)} for i in range(12)])
        jobs = Jobs(srv.store)
        ex = RayExecutor(cluster.address, batch_size=4)
        calls: list[int] = []
        original = ex.map

        def counted(fn: Any, rows: Any, **kw: Any) -> Any:
            calls.append(len(rows))
            return original(fn, rows, **kw)

        ex.map = counted  # type: ignore[method-assign]  # counts what went to Ray
        jobs.evaluator.executor = ex
        with srv.client() as c:
            rule = make_rule(c, name="ray-backfill", scorers=[{"type": "icontains", "params": {"value": "yes"}},
                                                              {"type": "length", "params": {"max": 5}}])
            r = c.post(f"{RULES}/{rule['id']}/backfill", json={"start": iso(T0), "end": iso(T0 + timedelta(hours=1))})
            assert r.json() == {"matched": 12, "enqueued": 12}, r.text
            assert jobs.drain() == 12
            scores = online_scores(c)
        assert calls == [12, 12]  # both scorers' batches went to Ray
        got = {(s["trace_id"], s["name"]): s["value"] for s in scores}
        assert len(got) == 24
        for i in range(12):
            assert got[(f"r{i}", "icontains")] is (i % 3 != 0)
            assert got[(f"r{i}", "length")] == (10.0 if i % 3 else 2.0)  # the length; passes at <= 5
    finally:
        serving.close()


def test_without_ray_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.errors import ConfigurationError
    from podium.executor import get_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    with pytest.raises(ConfigurationError) as e:
        get_executor("ray")
    assert "pip install 'podium[ray]'" in e.value.message
    with pytest.raises(ConfigurationError) as e2:
        _run("ray", ITEMS[:2])
    assert "pip install 'podium[ray]'" in e2.value.message
    with pytest.raises(ConfigurationError, match="unknown executor 'dask'"):
        get_executor("dask")
    monkeypatch.setenv("PODIUM_EXECUTOR", "local")
    assert isinstance(get_executor(), LocalExecutor)


def test_private_local_instance_when_no_address(tmp_path: Path) -> None:
    """No PODIUM_RAY_ADDRESS: the run starts its own Ray (127.0.0.1, no dashboard) and shuts it down.
    In a fresh process: this one is connected to the module's cluster."""
    script = tmp_path / "private.py"
    script.write_text(
        "import podium\n"
        "r = podium.evaluate(dataset=[{'input': 'a', 'expected': 'A'}, {'input': 'b', 'expected': 'x'}],\n"
        "                    task=str.upper, scorers=['exact-match'], executor='ray', client=None)\n"
        "import ray\n"
        "print(r.pass_rate, [i['output'] for i in r.items], ray.is_initialized())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_RAY", "RAY_AUTH"))}
    env.update(RAY_USAGE_STATS_ENABLED="0", PODIUM_RAY_BATCH_SIZE="1")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0.5 ['A', 'B'] False"  # and the private instance is shut down
