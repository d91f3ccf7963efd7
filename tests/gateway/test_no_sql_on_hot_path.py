"""After warm-up a gateway request runs no SQL at all (issue 12 item 4): keys (valid and
invalid), aliases, project limits and prices come from the TTL caches, and a cache miss
loads in a worker thread, never on the event loop. Real server, real store, both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(store: Any, project: ProjectKeys, upstream: FakeUpstream, podium_home: Path) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    podium_home.mkdir(parents=True, exist_ok=True)
    cfg = podium_home / "gateway.yaml"
    cfg.write_text(f"""
models:
  - name: fake
    deployments:
      - {{provider: openai, model: fake-a, api_base: "{upstream.base_url}"}}
""")
    app = create_app(Settings(gateway_config=cfg, gateway_cache="off"), store=store)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th)
    th.stop()


class SqlLog:
    """Every statement the store's engine runs, with the thread that ran it."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.rows: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> SqlLog:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)

    def _on(self, conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        t = threading.current_thread()
        with self._lock:
            self.rows.append((t.name, t.ident or 0, " ".join(statement.split())))

    def on_thread(self, ident: int) -> list[str]:
        return [s for _n, i, s in self.rows if i == ident]

    def count(self, fragment: str) -> int:
        return sum(fragment in s for _n, _i, s in self.rows)

    def request_path(self) -> list[str]:
        """Statements other than the known background work: the ingest writer storing the
        gateway's spans, the span log's redaction step (its drain hands batches to
        ``Ingester.submit``, which reloads the project's redaction rules in a worker thread once per
        ``redaction.CACHE_TTL``, not per call), the revocation-marker poll, the spend flush."""
        return [s for name, _i, s in self.rows
                if name != "podium-ingest-writer"
                and "FROM redaction_rules" not in s
                and not ("revoked_at IS NOT NULL" in s and "count(" in s.lower())
                and "gateway_spend" not in s]


def test_a_warm_gateway_request_runs_no_sql(gw: LiveServer) -> None:
    good = {"authorization": f"Bearer {gw.keys.secret_key}"}
    bad = {"authorization": "Bearer sk-not-a-real-key"}
    chat = {"model": "fake", "messages": MSG}
    with httpx.Client(base_url=gw.url, timeout=10) as c:
        # Warm-up: the valid key, the invalid one (a cached miss), an unknown model, the listing.
        assert c.post("/v1/chat/completions", json=chat, headers=good).status_code == 200
        assert c.post("/v1/chat/completions", json=chat, headers=bad).status_code == 401
        assert c.post("/v1/chat/completions", json={**chat, "model": "nope"}, headers=good).status_code == 404
        assert c.get("/v1/models", headers=good).status_code == 200
        loop_thread = gw.thread.thread.ident
        assert loop_thread is not None
        for name, send in [
            ("chat, valid key", lambda: c.post("/v1/chat/completions", json=chat, headers=good)),
            ("chat, invalid key", lambda: c.post("/v1/chat/completions", json=chat, headers=bad)),
            ("model listing", lambda: c.get("/v1/models", headers=good)),
        ]:
            with SqlLog(gw.store.engine) as log:
                codes = {send().status_code for _ in range(10)}
            assert codes == ({401} if "invalid" in name else {200}), name
            assert log.on_thread(loop_thread) == [], f"{name}: SQL on the event loop"
            assert log.request_path() == [], f"{name}: SQL per request after warm-up"
            # the span log's redaction rules: cached, at most one reload in these 10 calls
            assert log.count("FROM redaction_rules") <= 1, f"{name}: redaction rules read per call"


def test_a_cold_request_loads_off_the_event_loop(gw: LiveServer) -> None:
    """Even the first request (every cache cold) runs its SQL in worker threads."""
    good = {"authorization": f"Bearer {gw.keys.secret_key}"}
    loop_thread = gw.thread.thread.ident
    assert loop_thread is not None
    with SqlLog(gw.store.engine) as log, httpx.Client(base_url=gw.url, timeout=10) as c:
        r = c.post("/v1/chat/completions", json={"model": "fake", "messages": MSG}, headers=good)
        assert r.status_code == 200, r.text
        assert c.post("/v1/chat/completions", json={"model": "fake", "messages": MSG},
                      headers={"authorization": "Bearer sk-nope"}).status_code == 401
    assert log.request_path(), "the cold request loaded its key, aliases, limits and prices"
    assert log.on_thread(loop_thread) == []
