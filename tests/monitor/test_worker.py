"""The worker: runs and stops jobs, survives a raising one, sleeps when idle; QueueConsumer acks
and nacks; the embedded worker lives and dies with the app; `podium worker` drains a queue and
stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.monitor.queue.base import QueuedJob
from podium.monitor.worker import PING_KIND, QueueConsumer, Worker

ROOT = Path(__file__).resolve().parents[2]
PODIUM = str(Path(sys.executable).with_name("podium"))


class CountingJob:
    def __init__(self, name: str, interval_s: float, script: Callable[[int], int]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.script = script
        self.calls = 0
        self.times: list[float] = []

    def run_once(self) -> int:
        self.calls += 1
        self.times.append(time.monotonic())
        return self.script(self.calls)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_busy_job_runs_again_at_once_and_an_idle_one_sleeps() -> None:
    busy = CountingJob("busy", 30.0, lambda n: 5 if n <= 20 else 0)  # 20 busy rounds, then idle for 30 s
    idle = CountingJob("idle", 0.1, lambda n: 0)
    w = Worker([busy, idle])
    w.start()
    try:
        wait_for(lambda: busy.calls >= 21, 5, "the busy rounds")
        time.sleep(0.5)
        assert busy.calls == 21  # then it slept its interval
        assert w.counters["busy"].handled == 100 and w.counters["busy"].rounds == 21
        assert 3 <= idle.calls <= 8  # ~0.1 s apart: no busy loop
        assert w.running
    finally:
        t0 = time.monotonic()
        w.stop()
        assert time.monotonic() - t0 < 1.0  # sleeping jobs wake at once
    assert not w.running


def test_a_raising_job_is_logged_and_keeps_running(caplog: pytest.LogCaptureFixture) -> None:
    def script(n: int) -> int:
        if n <= 2:
            raise RuntimeError(f"boom {n}")
        return 0

    job = CountingJob("flaky", 0.02, script)
    w = Worker([job])
    w.start()
    try:
        wait_for(lambda: job.calls >= 4, 5, "rounds after the failures")
    finally:
        w.stop()
    assert w.counters["flaky"].errors == 2
    assert "job flaky failed" in caplog.text and "boom 1" in caplog.text


def test_stop_returns_within_a_second_even_mid_round() -> None:
    release = threading.Event()

    def slow(_n: int) -> int:
        release.wait(10)
        return 0

    job = CountingJob("slow", 0.01, slow)
    w = Worker([job])
    w.start()
    wait_for(lambda: job.calls == 1, 5, "the round to start")
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 1.5
    release.set()


def test_drain_runs_each_job_until_it_is_idle() -> None:
    a = CountingJob("a", 60, lambda n: 2 if n <= 3 else 0)
    b = CountingJob("b", 60, lambda n: 0)
    assert Worker([a, b]).drain() == {"a": 6, "b": 0}
    with pytest.raises(ValueError, match="unique"):
        Worker([a, a])


def test_run_forever_stops_on_another_threads_stop() -> None:
    job = CountingJob("j", 0.05, lambda n: 0)
    w = Worker([job])
    t = threading.Thread(target=w.run_forever)
    t.start()
    wait_for(lambda: job.calls >= 1, 5, "the first round")
    w._stop.set()
    t.join(3)
    assert not t.is_alive()


def test_queue_consumer_acks_nacks_and_kills(store: Any, project: Any) -> None:
    q = store.jobs
    q.enqueue("work", project.project_id, [{"n": i} for i in range(6)])
    seen: list[int] = []

    def handler(jobs: list[QueuedJob]) -> dict[str, str]:
        seen.extend(j.payload["n"] for j in jobs)
        return {j.id: "odd" for j in jobs if j.payload["n"] % 2}

    c = QueueConsumer(q, "work", handler, batch=10, retry_delay_s=0, max_attempts=2)
    assert c.run_once() == 6
    assert q.stats().backlog == 3  # the odd ones, backing off (0 s)
    time.sleep(0.01)
    assert c.run_once() == 3  # second attempt: dead
    st = q.stats()
    assert (st.backlog, st.dead) == (0, 3)
    assert sorted(seen) == [0, 1, 1, 2, 3, 3, 4, 5, 5]
    dead = q.dead(project.project_id)
    assert {d["last_error"] for d in dead} == {"odd"} and {d["attempts"] for d in dead} == {2}
    assert q.retry_dead(project.project_id) == 3
    assert q.stats().backlog == 3

    def raising(jobs: list[QueuedJob]) -> None:
        raise ValueError("no database")

    r = QueueConsumer(q, "work", raising, batch=10, retry_delay_s=60)
    assert r.run_once() == 3
    assert r.failed == 3 and q.claim("w", 10) == []  # nacked, backing off 60 s
    assert {d["last_error"] for d in q.dead(project.project_id)} == set()


def test_the_embedded_worker_starts_and_stops_with_the_app(store: Any, project: Any) -> None:
    from podium.config import Settings
    from podium.server.app import create_app
    from tests.conftest import ServerThread

    app = create_app(Settings(), store=store)
    th = ServerThread(app).start()
    try:
        worker = app.state.metrics.queue.worker
        assert isinstance(worker, Worker) and worker.running
        assert "ping" in worker.counters
        store.jobs.enqueue(PING_KIND, project.project_id, [{}] * 5)
        wait_for(lambda: store.jobs.stats().backlog == 0, 10, "the embedded worker to drain the pings")
        metrics = httpx.get(f"{th.url}/metrics", timeout=10).text
        assert 'podium_worker_handled_total{job="ping"} 5.0' in metrics
        assert "# TYPE podium_queue_backlog gauge" in metrics
    finally:
        th.stop()
    assert not worker.running


def test_no_embedded_worker_when_disabled(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.config import Settings
    from podium.server.app import create_app
    from tests.conftest import ServerThread

    monkeypatch.setenv("PODIUM_WORKER_EMBEDDED", "0")
    app = create_app(Settings(), store=store)
    th = ServerThread(app).start()
    try:
        assert app.state.metrics.queue.worker is None
    finally:
        th.stop()


def _worker_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.update(PODIUM_DATABASE_URL=db_url, PODIUM_HOME=os.environ["PODIUM_HOME"], PODIUM_OTLP_GRPC_PORT="0")
    return env


@pytest.mark.slow
def test_podium_worker_once_drains_the_queue(store: Any, project: Any, db_url: str) -> None:
    store.jobs.enqueue(PING_KIND, project.project_id, [{"n": i} for i in range(40)])
    r = subprocess.run([PODIUM, "worker", "--once"], cwd=ROOT,
                       env=_worker_env(db_url), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ping: 40" in r.stdout and "backlog now 0" in r.stdout
    assert store.jobs.stats().backlog == 0


@pytest.mark.slow
def test_podium_worker_serves_metrics_and_stops_on_sigterm(store: Any, project: Any, db_url: str) -> None:
    from tests.conftest import free_port

    port = free_port()
    p = subprocess.Popen([PODIUM, "worker", "--metrics-port", str(port)], cwd=ROOT,
                         env=_worker_env(db_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def scrape() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return ""

        wait_for(lambda: "podium_queue_backlog" in scrape() or p.poll() is not None, 60, "the metrics port")
        assert p.poll() is None
        store.jobs.enqueue(PING_KIND, project.project_id, [{}] * 7)
        wait_for(lambda: store.jobs.stats().backlog == 0, 15, "the worker to drain the pings")
        wait_for(lambda: 'podium_worker_handled_total{job="ping"} 7.0' in scrape(), 5, "the counter")
        text = scrape()  # the jobs' own series are served by the worker too
        assert "podium_online_eval_evaluated_total 0.0" in text and "# TYPE podium_alert_events_total counter" in text
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
        _, err = p.communicate()
        assert "SIGTERM, stopping" in err and "worker stopped" in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
