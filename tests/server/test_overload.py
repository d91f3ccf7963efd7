"""Overload: bursts of concurrent large requests against `podium up` (a subprocess) with a small
ingest queue. Every request is answered within a second (200, or 429 with Retry-After), the
server's memory stays bounded, and every acknowledged span is stored. Native JSON and OTLP
protobuf, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ProjectKeys, ServerThread
from tests.server.ingest_load import NATIVE, OTLP, ServerProcess, acknowledged, native_body, stored_span_ids

MiB = 1024 * 1024
CONCURRENCY = 24
BURSTS = 1
SPANS, PAD = 2, 1_000_000  # ~2 MB per request, a burst is ~48 MB of bodies
MAX_BYTES = 4 * MiB
# Peak RSS growth measured on SQLite (bench/ingest_burst.py --spans 2 --pad 1000000 --concurrency 24):
# ~60 MiB with this byte bound, ~220 MiB with the bounds lifted.
RSS_GROWTH_MAX = 120 * MiB
# Every answer within 1 s (issue 10). This machine's CPUs are shared with other test runs: the bound
# stretches with the run queue (load average per core) so a busy machine does not fail it spuriously.
ANSWER_MAX_S = 1.0 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def burst(url: str, keys: ProjectKeys, protocol: str) -> list[tuple[float, httpx.Response | Exception, list[str]]]:
    path, ctype, make = NATIVE if protocol == "native" else OTLP
    bodies = [make(SPANS, PAD) for _ in range(CONCURRENCY)]
    clients = [httpx.Client(base_url=url, auth=keys.basic(), timeout=30) for _ in range(CONCURRENCY)]
    go = threading.Barrier(CONCURRENCY)
    out: list[tuple[float, httpx.Response | Exception, list[str]]] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        body, ids = bodies[i]
        go.wait()
        t0 = time.monotonic()
        try:
            r: httpx.Response | Exception = clients[i].post(path, content=body, headers={"Content-Type": ctype})
        except httpx.HTTPError as e:
            r = e
        with lock:
            out.append((time.monotonic() - t0, r, ids))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_bursts_get_prompt_429s_bounded_memory_and_lose_nothing(
    store: Any, project: ProjectKeys, db_url: str, tmp_path: Path
) -> None:
    env = {
        "PODIUM_INGEST_QUEUE_MAX_BYTES": str(MAX_BYTES),
        "PODIUM_INGEST_QUEUE_MAX_ITEMS": "1000",
        "PODIUM_INGEST_QUEUE_MAX_WAIT": "0.5",
    }
    server = ServerProcess(db_url, tmp_path / "home", env_extra=env).start()
    try:
        with httpx.Client(base_url=server.url, auth=project.basic(), timeout=30) as c:  # warm both paths up
            for path, ctype, make in (NATIVE, OTLP):
                assert c.post(path, content=make(SPANS, PAD)[0], headers={"Content-Type": ctype}).status_code == 200
        time.sleep(0.5)
        baseline = server.rss_kib() * 1024
        acked: dict[str, list[str]] = {"native": [], "otlp": []}
        for protocol in ("native", "otlp"):
            statuses: list[int] = []
            for _ in range(BURSTS):
                for seconds, r, ids in burst(server.url, project, protocol):
                    assert isinstance(r, httpx.Response), f"{protocol}: {r!r}"
                    statuses.append(r.status_code)
                    assert seconds < ANSWER_MAX_S, (
                        f"{protocol}: HTTP {r.status_code} answered after {seconds:.2f} s (limit {ANSWER_MAX_S:.1f} s)"
                    )
                    if r.status_code == 429:
                        assert int(r.headers["Retry-After"]) >= 1
                        err = r.json()["error"]
                        assert err["code"] == "rate_limited" and "retry after" in err["message"]
                    else:
                        assert r.status_code == 200 and acknowledged(protocol, r), r.text[:300]
                        acked[protocol].extend(ids)
            assert 429 in statuses and 200 in statuses, f"{protocol}: {statuses}"
        peak = server.rss_kib("VmHWM") * 1024
        assert peak - baseline < RSS_GROWTH_MAX, f"RSS grew {(peak - baseline) / MiB:.0f} MiB under the bursts"
        health = server.health()
        assert health["queued_bytes"] == 0 and health["pending"] == 0 and health["rejected_requests"] > 0
        stored = set(stored_span_ids(store, project.project_id))
        for protocol, ids in acked.items():
            missing = set(ids) - stored
            assert not missing, f"{protocol}: {len(missing)} of {len(ids)} acknowledged spans are not stored"
    finally:
        server.stop()


# --- the bounds one by one, in process, with the writer held -----------------------------------


class HeldWrites:
    """The real store's writes, held until ``gate`` opens: requests stay queued."""

    def __init__(self, repo: Any) -> None:
        self.repo, self.gate = repo, threading.Event()

    def write(self, batch: Any) -> None:
        self.gate.wait(20)
        self.repo.write(batch)


def held_server(store: Any, **bounds: Any) -> tuple[ServerThread, HeldWrites, Any]:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.server.ingest import Ingester

    repo = HeldWrites(store.ingest)
    ingester = Ingester(repo, **bounds)  # type: ignore[arg-type]
    return ServerThread(create_app(Settings(), store=store, ingester=ingester)).start(), repo, ingester


def post_in_background(url: str, keys: ProjectKeys, body: bytes, out: list[httpx.Response]) -> threading.Thread:
    def run() -> None:
        with httpx.Client(base_url=url, auth=keys.basic(), timeout=30) as c:
            out.append(c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/json"}))

    t = threading.Thread(target=run)
    t.start()
    return t


def wait_for(cond: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_health_counts_spans_trace_rows_and_bytes_separately(store: Any, project: ProjectKeys) -> None:
    th, repo, ingester = held_server(store)
    try:
        spans = [{"type": "span", "body": {"id": f"s{i}", "trace_id": "t1", "name": "x", "user_id": "u",
                                            "session_id": "chat", "start_time": "2026-01-01T00:00:00Z"}}
                 for i in range(3)]
        body = json.dumps({"batch": [*spans, {"type": "trace", "body": {"id": "t1", "name": "n"}}]}).encode()
        out: list[httpx.Response] = []
        t = post_in_background(th.url, project, body, out)
        wait_for(lambda: ingester.pending > 0)
        h = httpx.get(th.url + "/api/v1/health").json()["ingest"]
        assert h["pending_spans"] == 3 and h["pending_trace_rows"] >= 1 and h["pending_scores"] == 0
        assert h["pending"] == h["pending_spans"] + h["pending_trace_rows"]
        assert h["queued_bytes"] == len(body) and h["max_bytes"] == 64 * MiB and h["max_items"] == 25_000
        repo.gate.set()
        t.join(10)
        assert out[0].status_code == 200, out[0].text
        h = httpx.get(th.url + "/api/v1/health").json()["ingest"]
        assert (h["pending"], h["pending_spans"], h["pending_trace_rows"], h["queued_bytes"]) == (0, 0, 0, 0)
        assert h["written"] >= 4 and h["rejected_requests"] == 0
    finally:
        repo.gate.set()
        th.stop()


@pytest.mark.parametrize("bound", ["bytes", "wait"])
def test_a_request_over_a_bound_is_refused_before_its_body_is_parsed(
    store: Any, project: ProjectKeys, bound: str
) -> None:
    bounds = {"max_bytes": 64 * 1024} if bound == "bytes" else {"max_wait": 0.0}
    th, repo, ingester = held_server(store, **bounds)
    try:
        out: list[httpx.Response] = []
        t = post_in_background(th.url, project, native_body(5, 20_000)[0], out)  # ~100 KB, held
        wait_for(lambda: ingester.pending > 0)
        with httpx.Client(base_url=th.url, auth=project.basic(), timeout=30) as c:
            t0 = time.monotonic()
            # Not even JSON: a 429 decided at the headers never looks at it.
            r = c.post("/api/v1/ingest", content=b"x" * 200_000, headers={"Content-Type": "application/json"})
            took = time.monotonic() - t0
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) >= 1 and took < 1.0 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
        message = r.json()["error"]["message"]
        assert ("PODIUM_INGEST_QUEUE_MAX_BYTES" if bound == "bytes" else "behind") in message
        assert "Nothing from this request was stored" in message
        repo.gate.set()
        t.join(10)
        assert out[0].status_code == 200
        assert httpx.get(th.url + "/api/v1/health").json()["ingest"]["rejected_requests"] == 1
    finally:
        repo.gate.set()
        th.stop()
