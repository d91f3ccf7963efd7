"""The SDK against a real server driven into overload (a tiny ingest queue and a slowed writer):
429 + Retry-After is waited out and retried, and every span the SDK counts as sent is stored
exactly once (ids are idempotent upserts; trace aggregates are not double-counted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

import podium
from podium.sdk.exporter import FlushResult
from tests.conftest import ProjectKeys, ServerThread

CLIENTS = 4
SPANS_PER_CLIENT = 150
FLUSH_AT = 25


class SlowWrites:
    """The real store's write path, 30 ms slower per transaction: the queue fills up."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def write(self, batch: Any) -> None:
        time.sleep(0.03)
        self.repo.write(batch)


@pytest.fixture
def overloaded(store: Any, project: ProjectKeys) -> Iterator[ServerThread]:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.server.ingest import Ingester

    ingester = Ingester(SlowWrites(store.ingest), max_items=2 * FLUSH_AT, write_batch=FLUSH_AT)  # type: ignore[arg-type]
    th = ServerThread(create_app(Settings(), store=store, ingester=ingester)).start()
    yield th
    th.stop()


def test_sdk_rides_out_429s_and_every_sent_span_is_stored_once(
    overloaded: ServerThread, store: Any, project: ProjectKeys
) -> None:
    clients = [
        podium.Podium(
            base_url=overloaded.url, public_key=project.public_key, secret_key=project.secret_key,
            flush_at=FLUSH_AT, flush_interval=0.05, max_retries=30, retry_backoff=0.05,
        )
        for _ in range(CLIENTS)
    ]
    ids: list[list[str]] = [[] for _ in clients]

    def record(i: int) -> None:
        for n in range(SPANS_PER_CLIENT):
            with clients[i].span(f"work {n}") as s:
                ids[i].append(s.id)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    results = [c.flush(timeout=60) for c in clients]
    for c in clients:
        c.shutdown(timeout=5)

    health = httpx.get(overloaded.url + "/api/v1/health").json()["ingest"]
    assert health["rejected_requests"] > 0, "the server was never overloaded: the test proves nothing"
    total = CLIENTS * SPANS_PER_CLIENT
    assert sum(r.sent for r in results) == total, results
    assert all(r == FlushResult(sent=SPANS_PER_CLIENT, dropped=0, failed=0, pending=0) for r in results), results
    with store.engine.connect() as c:
        rows, distinct = c.execute(
            text("SELECT count(*), count(DISTINCT id) FROM span WHERE project_id = :p"), {"p": project.project_id}
        ).one()
        counted = c.execute(
            text("SELECT coalesce(sum(span_count), 0) FROM trace WHERE project_id = :p"), {"p": project.project_id}
        ).scalar()
        stored = {r[0] for r in c.execute(text("SELECT id FROM span WHERE project_id = :p"), {"p": project.project_id})}
    assert rows == distinct == total and counted == total
    assert stored == {i for per_client in ids for i in per_client}
