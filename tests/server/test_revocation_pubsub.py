"""A key revoked through the API stops working at once in the process that revoked it and,
with Redis configured, within a second in every other process (pub/sub), without waiting
for the revocation-marker poll (issue 12 item 4). Two servers, each with its own store on
the same database, sharing Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podium.store import Store
from tests.conftest import LiveServer, ServerThread, make_project

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _start(db_url: str) -> tuple[ServerThread, Any, Store]:
    from podium.config import Settings
    from podium.server.app import create_app

    store = Store.from_url(db_url, migrate=False)
    app = create_app(Settings(redis_url=REDIS_URL), store=store)
    return ServerThread(app).start(), app, store


@pytest.fixture
def two(db_url: str, store: Any) -> Iterator[tuple[LiveServer, LiveServer]]:
    keys = make_project(store, "shared")
    out, started = [], []
    for _ in range(2):
        th, app, st = _start(db_url)
        started.append((th, st))
        out.append(LiveServer(th.url, st, keys, app, th))
    yield out[0], out[1]
    for th, st in started:
        th.stop()
        st.close()


def _codes(srv: LiveServer, secret: str) -> tuple[int, int]:
    h = {"authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=srv.url, timeout=10, headers=h) as c:
        return c.get("/api/v1/traces").status_code, c.get("/v1/models").status_code


def test_api_revocation_reaches_the_other_process_within_a_second(two: tuple[LiveServer, LiveServer],
                                                                 store: Any) -> None:
    a, b = two
    # Only pub/sub can tell B in time: its revocation-marker poll is switched off.
    b.app.state.podium.auth._poll = 3600.0
    victim = store.projects.create_key(a.keys.project_id, role="member")
    assert _codes(a, victim.secret_key) == (200, 200)
    assert _codes(b, victim.secret_key) == (200, 200)  # cached in B for 5 s
    with a.client() as c:
        r = c.delete(f"/api/v1/keys/{victim.key.public_key}")
        assert r.status_code == 200, r.text
    revoked_at = time.monotonic()
    assert _codes(a, victim.secret_key) == (401, 401)  # the same process: at once
    while _codes(b, victim.secret_key) != (401, 401):
        assert time.monotonic() - revoked_at < 1.0, "the other process still accepted the key after 1 s"
        time.sleep(0.05)
    assert _codes(b, b.keys.secret_key) == (200, 200)  # the other keys keep working
