"""The job queue contract on every backend: SQL on SQLite and PostgreSQL (``--db``), and Redis.

Dedup, leases, FIFO claims, nack / backoff / dead, stats; claim exclusivity across threads and
across real subprocesses; a subprocess killed with SIGKILL mid-batch loses nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from podium.monitor.queue.base import JobQueue

REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLAIMER = Path(__file__).with_name("queue_claimer.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "qbackend" in metafunc.fixturenames:
        opt = metafunc.config.getoption("--db")
        dbs = ["sqlite", "postgresql"] if opt == "all" else [opt]
        metafunc.parametrize("qbackend", [*dbs, "redis"])


@dataclass
class Q:
    queue: Any
    project_id: str
    other_project_id: str
    target: str  # what queue_claimer.py opens
    backend: str


def _db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The same fresh database as conftest's ``db_url`` (a copied template / truncated schema)."""
    if backend == "sqlite":
        tpl: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "podium.db"
        shutil.copy(tpl, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_schema_url")
    from sqlalchemy import text

    from podium.store.engine import make_engine
    from podium.store.tables import metadata

    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(text(f"TRUNCATE {', '.join(repr(t.name).replace(chr(39), chr(34)) for t in metadata.sorted_tables)} CASCADE"))
    eng.dispose()
    return url


@pytest.fixture
def q(qbackend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Q]:
    if qbackend == "redis":
        from podium.monitor.queue.redis import RedisQueue

        prefix = f"podium:test:{uuid.uuid4().hex[:12]}:"
        rq = RedisQueue.from_url(REDIS_URL, prefix=prefix)
        try:
            yield Q(rq, "p1", "p2", f"{REDIS_URL}#{prefix}", qbackend)
        finally:
            rq.purge()
            rq.close()
        return
    from podium.store import Store

    url = _db_url(qbackend, tmp_path, request)
    store = Store.from_url(url, migrate=False)
    p1 = store.projects.create_project("one").id
    p2 = store.projects.create_project("two").id
    try:
        yield Q(store.jobs, p1, p2, url, qbackend)
    finally:
        store.close()


def _enqueue_n(q: Q, n: int, kind: str = "work") -> None:
    assert q.queue.enqueue(kind, q.project_id, [{"n": i} for i in range(n)]) == n


# --- the contract, one process ---------------------------------------------------------------


def test_the_backends_satisfy_the_contract(q: Q) -> None:
    queue: JobQueue = q.queue  # mypy checks the structural match
    assert queue.claim("w", 1) == []


def test_enqueue_dedups_by_kind_and_key(q: Q) -> None:
    qu = q.queue
    assert qu.enqueue("work", q.project_id, [{"n": 1}, {"n": 2}, {"n": 3}], dedup_keys=["a", "b", "a"]) == 2
    assert qu.enqueue("work", q.project_id, [{"n": 4}, {"n": 5}], dedup_keys=["b", "c"]) == 1
    assert qu.enqueue("other", q.project_id, [{"n": 6}], dedup_keys=["a"]) == 1  # another kind
    assert qu.enqueue("work", q.other_project_id, [{"n": 7}], dedup_keys=["a"]) == 1  # another project
    assert qu.enqueue("work", q.project_id, [{"n": 8}, {"n": 9}]) == 2  # no keys: always new
    assert qu.enqueue("work", q.project_id, []) == 0
    with pytest.raises(ValueError, match="one per payload"):
        qu.enqueue("work", q.project_id, [{"n": 1}], dedup_keys=["x", "y"])
    got = qu.claim("w", 100, kinds=["work"])
    assert sorted(j.payload["n"] for j in got) == [1, 2, 5, 7, 8, 9]
    assert qu.stats().backlog == 7


def test_claim_is_fifo_leased_and_filtered_by_kind(q: Q) -> None:
    qu = q.queue
    _enqueue_n(q, 10)
    qu.enqueue("other", q.project_id, [{"n": 99}])
    first = qu.claim("w1", 4, kinds=["work"])
    assert [j.payload["n"] for j in first] == [0, 1, 2, 3]
    assert all(j.kind == "work" and j.project_id == q.project_id and j.attempts == 1 for j in first)
    assert all(j.enqueued_at is not None and j.enqueued_at.tzinfo is not None for j in first)
    second = qu.claim("w2", 100, kinds=["work"])
    assert [j.payload["n"] for j in second] == [4, 5, 6, 7, 8, 9]  # leased jobs are invisible
    assert qu.claim("w3", 100, kinds=["work"]) == []
    assert [j.payload["n"] for j in qu.claim("w3", 100)] == [99]  # kinds=None: every kind
    assert qu.claim("w3", 0) == []


def test_an_expired_lease_is_claimable_again(q: Q) -> None:
    qu = q.queue
    _enqueue_n(q, 3)
    lost = qu.claim("dies", 3, lease_s=0.3)
    assert len(lost) == 3
    assert qu.claim("w2", 10, lease_s=0.3) == []
    time.sleep(0.4)
    back = qu.claim("w2", 10, lease_s=30)
    assert sorted(j.payload["n"] for j in back) == [0, 1, 2]
    assert {j.attempts for j in back} == {2}
    qu.ack([j.id for j in back])
    qu.ack([j.id for j in lost])  # the late ack of the first worker: harmless
    assert qu.stats().backlog == 0


def test_ack_removes_and_nack_backs_off_then_kills(q: Q) -> None:
    qu = q.queue
    _enqueue_n(q, 2)
    a, b = qu.claim("w", 2)
    qu.ack([a.id])
    qu.nack([b.id], error="boom", delay_s=0.3, max_attempts=2)
    assert qu.claim("w", 10) == []  # backing off
    st = qu.stats()
    assert (st.backlog, st.leased, st.dead) == (1, 0, 0)
    time.sleep(0.4)
    (again,) = qu.claim("w", 10)
    assert again.payload == {"n": 1} and again.attempts == 2
    qu.nack([again.id], error="boom again", delay_s=0, max_attempts=2)  # 2 claims: dead
    time.sleep(0.05)
    assert qu.claim("w", 10) == []
    st = qu.stats()
    assert (st.backlog, st.leased, st.dead) == (0, 0, 1)
    assert st.dead_by_kind == {"work": 1}


def test_stats_per_kind_and_project(q: Q) -> None:
    qu = q.queue
    empty = qu.stats()
    assert (empty.backlog, empty.leased, empty.dead, empty.oldest_age_s) == (0, 0, 0, None)
    _enqueue_n(q, 5)
    qu.enqueue("other", q.other_project_id, [{"n": 1}, {"n": 2}])
    qu.claim("w", 2, kinds=["work"])
    time.sleep(0.05)
    st = qu.stats()
    assert st.backlog == 7 and st.leased == 2 and st.dead == 0
    assert st.by_kind == {"work": 5, "other": 2}
    assert st.leased_by_kind == {"work": 2}
    assert st.oldest_age_s is not None and 0.04 < st.oldest_age_s < 30
    assert set(st.oldest_age_by_kind) == {"work", "other"}
    mine = qu.stats(q.other_project_id)
    assert mine.backlog == 2 and mine.by_kind == {"other": 2}


def test_threads_claim_each_job_once(q: Q) -> None:
    qu = q.queue
    n = 600
    qu.enqueue("work", q.project_id, [{"n": i} for i in range(n)])
    seen: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def consume(wid: str) -> None:
        try:
            while True:
                jobs = qu.claim(wid, 25, kinds=["work"])
                if not jobs:
                    return
                with lock:
                    seen.extend(j.payload["n"] for j in jobs)
                qu.ack([j.id for j in jobs])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=consume, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(seen) == list(range(n))
    assert qu.stats().backlog == 0


# --- real processes ---------------------------------------------------------------------------


def _spawn(q: Q, worker: str, out: Path, mode: str, batch: int, lease_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(CLAIMER), q.target, worker, str(out), mode, str(batch), str(lease_s)],
                            cwd=Path(__file__).resolve().parents[2])


def _go(out: Path, procs: list[subprocess.Popen[bytes]], workers: list[str]) -> None:
    """Start them together: wait until each has connected, then let them go."""
    deadline = time.monotonic() + 60
    while not all(Path(f"{out}.ready.{w}").exists() for w in workers):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a claimer did not start"
        time.sleep(0.01)
    Path(f"{out}.go").touch()


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_subprocesses_claim_each_job_once(q: Q, tmp_path: Path) -> None:
    n = 900
    q.queue.enqueue("work", q.project_id, [{"n": i} for i in range(n)])
    out = tmp_path / "handled.txt"
    workers = [f"proc{i}" for i in range(3)]
    procs = [_spawn(q, w, out, "drain", 20, 30) for w in workers]
    _go(out, procs, workers)
    for p in procs:
        assert p.wait(90) == 0
    handled = [line for line in _lines(out) if line[0] == "handled"]
    counts = Counter(int(line[1]) for line in handled)
    assert sorted(counts) == list(range(n)) and set(counts.values()) == {1}  # each exactly once
    assert len({line[3] for line in handled}) >= 2  # they did run concurrently
    assert q.queue.stats().backlog == 0


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing(q: Q, tmp_path: Path) -> None:
    n = 200
    q.queue.enqueue("work", q.project_id, [{"n": i} for i in range(n)])
    crashed_out = tmp_path / "crashed.txt"
    victim = _spawn(q, "victim", crashed_out, "crash", 50, 1.5)
    _go(crashed_out, [victim], ["victim"])
    deadline = time.monotonic() + 30
    while ["ready"] not in _lines(crashed_out):
        assert time.monotonic() < deadline and victim.poll() is None, "the victim never claimed"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    lost = {int(line[1]) for line in _lines(crashed_out) if line[0] == "claimed"}
    assert len(lost) == 50

    out = tmp_path / "survivors.txt"
    workers = [f"survivor{i}" for i in range(2)]
    survivors = [_spawn(q, w, out, "drain", 20, 30) for w in workers]
    _go(out, survivors, workers)
    for p in survivors:
        assert p.wait(90) == 0
    handled = [line for line in _lines(out) if line[0] == "handled"]
    counts = Counter(int(line[1]) for line in handled)
    assert sorted(counts) == list(range(n)) and set(counts.values()) == {1}  # nothing lost, nothing twice
    attempts = {int(line[1]): int(line[2]) for line in handled}
    assert {attempts[i] for i in lost} == {2}  # the victim's jobs came back after its lease
    assert {attempts[i] for i in range(n) if i not in lost} == {1}
    assert q.queue.stats().backlog == 0


def test_make_queue_follows_the_settings(store: Any) -> None:
    from podium.config import Settings
    from podium.errors import ConfigurationError
    from podium.monitor.queue.factory import make_queue
    from podium.monitor.queue.redis import RedisQueue

    assert make_queue(Settings(), store) is store.jobs
    with pytest.raises(ConfigurationError, match="PODIUM_QUEUE=redis needs PODIUM_REDIS_URL"):
        make_queue(Settings(queue="redis"), store)
    rq = make_queue(Settings(queue="redis", redis_url=REDIS_URL), store)
    assert isinstance(rq, RedisQueue)
    rq.close()
