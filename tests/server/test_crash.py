"""Crash safety: `podium up` is killed with SIGKILL mid-ingest (native JSON and OTLP protobuf
arriving at once), restarted on the same database, and every span it acknowledged is stored."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ProjectKeys
from tests.server.ingest_load import NATIVE, OTLP, ServerProcess, acknowledged, stored_span_ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Sender(threading.Thread):
    """Posts batches of fresh spans back to back until the server goes away; remembers the
    span ids of every acknowledged request."""

    def __init__(self, url: str, keys: ProjectKeys, protocol: str, spans: int) -> None:
        super().__init__(daemon=True)
        self.url, self.keys, self.protocol, self.spans = url, keys, protocol, spans
        self.acked: list[str] = []
        self.requests = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        path, ctype, make = NATIVE if self.protocol == "native" else OTLP
        with httpx.Client(base_url=self.url, auth=self.keys.basic(), timeout=10) as c:
            while not self.stop.is_set():
                body, ids = make(self.spans)
                try:
                    r = c.post(path, content=body, headers={"Content-Type": ctype})
                except httpx.HTTPError:
                    return  # the server died under this request: not acknowledged
                self.requests += 1
                if acknowledged(self.protocol, r):
                    self.acked.extend(ids)
                elif r.status_code not in (429, 503):
                    self.error = AssertionError(f"{self.protocol}: HTTP {r.status_code} {r.text[:300]}")
                    return


def test_kill_9_mid_ingest_loses_nothing_acknowledged(
    store: Any, project: ProjectKeys, db_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(db_url, tmp_path / "home").start()
    try:
        senders = [Sender(server.url, project, p, 40) for p in ("native", "otlp", "native", "otlp")]
        for s in senders:
            s.start()
        deadline = time.monotonic() + 20
        while sum(len(s.acked) for s in senders) < 2000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(s.acked for s in senders), "the senders did not get acknowledgements before the kill"
        server.kill()  # SIGKILL while requests are in flight: no lifespan shutdown, no final flush
        for s in senders:
            s.join(15)
            assert not s.is_alive() and s.error is None, s.error
        in_flight_at_kill = sum(s.requests for s in senders)

        server.start()  # the same database, after a crash (SQLite: WAL recovery)
        stored = set(stored_span_ids(store, project.project_id))
        for proto in ("native", "otlp"):
            acked = [i for s in senders if s.protocol == proto for i in s.acked]
            missing = set(acked) - stored
            assert acked and not missing, f"{proto}: {len(missing)} of {len(acked)} acknowledged spans lost"
        # The restarted server ingests again.
        with httpx.Client(base_url=server.url, auth=project.basic(), timeout=10) as c:
            body, ids = NATIVE[2](3)
            r = c.post(NATIVE[0], content=body, headers={"Content-Type": NATIVE[1]})
            assert r.status_code == 200, r.text
        assert set(ids) <= set(stored_span_ids(store, project.project_id))
        assert in_flight_at_kill > len(senders)
    finally:
        server.stop()
