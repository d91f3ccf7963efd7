"""`podium up --workers 2`: two server processes on one port and one database (SQLite: their
writers take turns; PostgreSQL: independent). Every acknowledged span is stored once, no
client sees a lock error, both processes serve, a killed process is replaced, and SIGTERM
drains both."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.conftest import ProjectKeys, wait_for
from tests.server.ingest_load import NATIVE, ServerProcess, acknowledged, stored_span_ids


class Sender(threading.Thread):
    """Posts native batches of fresh spans on new connections (so both processes get some)."""

    def __init__(self, url: str, keys: ProjectKeys, spans: int, requests: int) -> None:
        super().__init__(daemon=True)
        self.url, self.keys, self.spans, self.requests = url, keys, spans, requests
        self.acked: list[str] = []
        self.statuses: dict[int, int] = {}

    def run(self) -> None:
        path, ctype, make = NATIVE
        for _ in range(self.requests):
            body, ids = make(self.spans)
            with httpx.Client(base_url=self.url, auth=self.keys.basic(), timeout=60) as c:
                r = c.post(path, content=body, headers={"Content-Type": ctype})
            self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
            if acknowledged("native", r):
                self.acked.extend(ids)


def _children(proc: Any) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children()


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def test_two_server_processes_store_every_acknowledged_span(
    store: Any, project: ProjectKeys, db_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(db_url, tmp_path / "home")
    server.argv = [sys.executable, "-m", "podium.cli", "up", "--port", str(server.port), "--workers", "2"]
    server.env_extra = {"PODIUM_OTLP_GRPC_PORT": "0"}
    server.start()
    try:
        kids = wait_for("two server processes", lambda: (k := _children(server.proc)) and len(k) == 2 and k)
        before = {p.pid: _cpu(p) for p in kids}
        senders = [Sender(server.url, project, 100, 15) for _ in range(4)]
        for s in senders:
            s.start()
        for s in senders:
            s.join(240)
            assert not s.is_alive(), "a sender did not finish"
        statuses: dict[int, int] = {}
        for s in senders:
            for k, v in s.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
        # No "database is locked" (a 503) or any other failure reaches a client.
        assert statuses == {200: 60}, statuses
        acked = [i for s in senders for i in s.acked]
        stored = stored_span_ids(store, project.project_id)
        assert len(acked) == 6000 and sorted(stored) == sorted(acked)  # each once, nothing lost
        # Both processes did work (connections are spread by the kernel over the shared socket).
        used = {p.pid: _cpu(p) - before[p.pid] for p in kids}
        assert all(v > 0.1 for v in used.values()), used
        if db_url.startswith("sqlite"):
            assert Path(db_url.removeprefix("sqlite:///") + "-ingest.lock").exists()

        # A killed process is replaced; the server keeps answering.
        victim = kids[0]
        victim.kill()
        wait_for(
            "a replacement process",
            lambda: (
                len(_children(server.proc)) == 2 and victim.pid not in {p.pid for p in _children(server.proc)}
            ),
            timeout=60,
        )
        after: list[str] = []
        for _ in range(4):  # new connections: whichever process accepts them
            body, ids = NATIVE[2](5)
            after += ids
            r = httpx.post(
                server.url + NATIVE[0],
                content=body,
                auth=project.basic(),
                timeout=30,
                headers={"Content-Type": NATIVE[1]},
            )
            assert r.status_code == 200, r.text
        assert set(after) <= set(stored_span_ids(store, project.project_id))
    finally:
        assert server.proc is not None
        server.proc.terminate()  # SIGTERM: forwarded; each process drains its queue and exits
        assert server.proc.wait(60) == 0, server.logs()[-3000:]
