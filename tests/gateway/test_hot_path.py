"""The gateway's hot path (docs/gateway.md#overhead): the fast dispatch keeps every answer the
middleware stack gave (security headers, the Host allow-list, 404/405 in OpenAI's shape), the
span log is bounded in bytes, makes calls wait for the writer rather than drop their spans and counts
what it still drops, and the cheaper helpers build the same records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ProjectKeys

pytestmark = pytest.mark.integration

BODY = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
SECURITY = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy",
            "cross-origin-opener-policy", "permissions-policy")


def _bearer(srv: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {srv.keys.secret_key}"}


@pytest.mark.parametrize("mode", ["all", "gateway"])
def test_fast_path_answers_like_the_middleware_stack(openai_gateway: Callable[..., LiveServer], mode: str) -> None:
    from podium.server.routes.gateway import FastPath

    srv = openai_gateway(mode=mode)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/v1/chat/completions", json=BODY, headers=_bearer(srv))
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        assert r.headers["x-podium-trace-id"]
        slow = c.get("/v1/models/fake", headers=_bearer(srv))  # a path parameter: the normal route
        assert slow.status_code == 200
        for h in SECURITY:
            assert r.headers[h] == slow.headers[h], h
        assert "strict-transport-security" not in r.headers  # plain HTTP: never
        listed = c.get("/v1/models", headers=_bearer(srv))  # the fast path's GET endpoint
        assert listed.status_code == 200 and "fake" in {m["id"] for m in listed.json()["data"]}
        assert listed.headers["x-frame-options"] == "DENY"
        # Another method on a fast path is the router's 405, in OpenAI's shape, with the same headers.
        wrong = c.get("/v1/chat/completions", headers=_bearer(srv))
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        assert wrong.headers["content-security-policy"] == r.headers["content-security-policy"]
        # Errors on the fast path keep OpenAI's shape and the headers.
        bad = c.post("/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-nope"})
        assert bad.status_code == 401 and bad.json()["error"]["type"]
        assert bad.headers["x-content-type-options"] == "nosniff"
    assert isinstance(srv.app.middleware_stack, FastPath)


def test_fast_path_keeps_the_host_allow_list(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway(mode="gateway", allowed_hosts="gw.example")
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        refused = c.post("/v1/chat/completions", json=BODY, headers=_bearer(srv))  # Host: 127.0.0.1:port
        assert refused.status_code == 400
        assert "PODIUM_ALLOWED_HOSTS" in refused.json()["error"]["message"]
        ok = c.post("/v1/chat/completions", json=BODY, headers={**_bearer(srv), "Host": "gw.example"})
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-frame-options"] == "DENY"


async def test_outermost_serves_the_hot_endpoints_and_hands_the_rest_to_the_app() -> None:
    from types import SimpleNamespace

    from podium.server.routes.gateway import Outermost, outermost

    seen: list[tuple[str, Any]] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        seen.append(("endpoint", scope.get("app")))

    class App:
        state = SimpleNamespace(podium_fast_routes={"/v1/chat/completions": ("POST", endpoint)})
        root_path = ""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            seen.append(("app", scope["type"]))

    app = App()
    outer = outermost(app)
    assert isinstance(outer, Outermost)
    await outer({"type": "http", "path": "/v1/chat/completions", "method": "POST"}, None, None)
    await outer({"type": "http", "path": "/v1/chat/completions", "method": "GET"}, None, None)  # the router's 405
    await outer({"type": "http", "path": "/api/v1/health", "method": "GET"}, None, None)
    await outer({"type": "lifespan"}, None, None)
    assert seen == [("endpoint", app), ("app", "http"), ("app", "http"), ("app", "lifespan")]
    app.root_path = "/gw"  # FastAPI would rewrite the scope's root_path: keep its own __call__
    assert outermost(app) is app
    bare = SimpleNamespace(state=SimpleNamespace())
    assert outermost(bare) is bare  # no fast path installed: the app itself


def test_podium_gateway_uses_a_small_sqlite_page_cache(tmp_path: Any) -> None:
    from podium.cli.commands.gateway import GATEWAY_SQLITE_CACHE_KIB, _small_page_cache
    from podium.store import Store

    store = Store.from_url(f"sqlite:///{tmp_path / 'gw.db'}")
    try:
        with store.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA cache_size").scalar() == -65536  # the engine's default
        _small_page_cache(store)
        with store.engine.connect() as c:  # every connection from now on, the pooled ones included
            assert c.exec_driver_sql("PRAGMA cache_size").scalar() == -GATEWAY_SQLITE_CACHE_KIB
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"  # the engine's pragmas kept
    finally:
        store.close()


# --- the span log ----------------------------------------------------------------------------------


def _span(i: int, **kw: Any) -> Any:
    from podium.core.records import SpanIn, SpanKind, UsageIn

    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": f"{i:016x}", "trace_id": f"{i:032x}", "name": "chat fake", "kind": SpanKind.GENERATION,
        "start_time": now, "end_time": now, "model": "fake-a", "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "hello"},
        "usage": UsageIn(input_tokens=3, output_tokens=1), "trace_name": "gateway fake",
    }
    values.update(kw)
    return SpanIn(**values)


def _log(ingester: Any, **kw: Any) -> Any:
    from podium.core.pricing import PriceTable
    from podium.gateway.metrics import GatewayMetrics
    from podium.server.gateway_log import GatewayLog

    log = GatewayLog(ingester, lambda _pid: PriceTable.default(), **kw)
    log.metrics = GatewayMetrics()
    return log


def _dropped(log: Any, reason: str) -> float:
    return float(log.metrics.log_dropped.labels(reason)._value.get())


class SlowRepo:
    """The store's ingest repo, ``delay`` seconds slower per write (a writer that falls behind);
    ``gate`` (a threading.Event) holds every write until it is set."""

    def __init__(self, repo: Any, delay: float = 0.0) -> None:
        import threading

        self.repo = repo
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.writes = 0

    def write(self, batch: Any) -> None:
        import time

        self.gate.wait(30)
        time.sleep(self.delay)
        self.repo.write(batch)
        self.writes += 1


def test_gateway_log_bounds_its_bytes_and_counts_what_it_drops(store: Any, project: ProjectKeys) -> None:
    from podium.server.gateway_log import approx_bytes
    from podium.server.ingest import Ingester

    ingester = Ingester(store.ingest)  # not started: the queue refuses every batch
    one = approx_bytes(_span(1))
    assert 4096 < one < 8192  # the measured ~5 KB of a small chat span
    assert approx_bytes(_span(2, input=[{"role": "user", "content": "x" * 100_000}])) > 100_000 + 4096
    log = _log(ingester, max_bytes=2 * one)  # full (calls wait) at 2 spans; safety cap at 8
    assert log.record(project.project_id, _span(0)) and not log.full
    assert log.record(project.project_id, _span(1)) and log.full
    assert [log.record(project.project_id, _span(i)) for i in range(2, 10)] == [True] * 6 + [False] * 2
    assert log.held_bytes == 8 * one
    assert _dropped(log, "full") == 2
    log.flush()  # eight spans the stopped ingest queue refuses
    assert _dropped(log, "shutdown") == 8 and log.dropped == 10
    assert log.held_bytes == 0 and not log.full
    assert log.record(project.project_id, _span(11))  # room again
    by_count = _log(ingester, max_buffer=2)  # the item bound (safety cap: 8 items)
    assert [by_count.record(project.project_id, _span(i)) for i in range(9)] == [True] * 8 + [False]
    assert by_count.full


def test_gateway_log_makes_calls_wait_for_the_writer_instead_of_dropping(store: Any, project: ProjectKeys) -> None:
    from podium.server.gateway_log import approx_bytes
    from podium.server.ingest import Ingester

    repo = SlowRepo(store.ingest)
    repo.gate.clear()  # the writer is stuck until the test lets it go
    ingester = Ingester(repo)  # type: ignore[arg-type]  # duck-typed: write(batch)
    ingester.start()
    try:
        async def run() -> None:
            log = _log(ingester, max_bytes=3 * approx_bytes(_span(1)), interval=0.01, max_wait=10)
            log.start()
            for i in range(3):
                assert log.record(project.project_id, _span(i + 1))
            assert log.full
            waiter = asyncio.ensure_future(log.wait_room())
            await asyncio.sleep(0.3)  # drained and handed to the writer, which does not commit
            assert not waiter.done() and log.full  # handed is still held: the call waits
            assert log.metrics.log_bytes._value.get() == log.held_bytes > 0
            repo.gate.set()
            assert await asyncio.wait_for(waiter, 10) is True  # room once the writer committed
            assert log.held_bytes == 0 and log.written == 3
            assert log.waits == 1 and log.metrics.log_waits._value.get() == 1
            assert log.metrics.log_wait_seconds._value.get() >= 0.25
            await log.stop()
            assert log.dropped == 0

        asyncio.run(run())
    finally:
        repo.gate.set()
        ingester.stop()
    assert store.traces.get_trace(project.project_id, f"{3:032x}") is not None


def test_gateway_log_stops_waiting_on_a_stuck_writer_and_counts_the_drops(store: Any, project: ProjectKeys) -> None:
    from podium.server.gateway_log import approx_bytes
    from podium.server.ingest import Ingester

    repo = SlowRepo(store.ingest)
    repo.gate.clear()
    ingester = Ingester(repo)  # type: ignore[arg-type]
    ingester.start()
    try:
        async def run() -> None:
            log = _log(ingester, max_bytes=2 * approx_bytes(_span(1)), interval=0.01, max_wait=0.2)
            log.start()
            log.record(project.project_id, _span(1))
            log.record(project.project_id, _span(2))
            t0 = asyncio.get_running_loop().time()
            assert await log.wait_room() is False  # timed out: the call goes on
            assert 0.15 < asyncio.get_running_loop().time() - t0 < 2
            t1 = asyncio.get_running_loop().time()
            assert await log.wait_room() is False  # stalled: the next call does not wait again
            assert asyncio.get_running_loop().time() - t1 < 0.05
            assert log.wait_timeouts == 1 and log.dropped == 0  # the gateway drops a call's span (next test)
            repo.gate.set()  # the writer recovers: everything held is stored, calls wait again when full
            for _ in range(200):
                if log.held_bytes == 0:
                    break
                await asyncio.sleep(0.02)
            assert log.held_bytes == 0 and log.written == 2 and not log._stalled
            await log.stop()

        asyncio.run(run())
    finally:
        repo.gate.set()
        ingester.stop()
    assert store.traces.get_trace(project.project_id, f"{2:032x}") is not None


def test_gateway_log_retries_a_refused_batch_then_counts_it(store: Any, project: ProjectKeys) -> None:
    from podium.server.ingest import Ingester

    ingester = Ingester(store.ingest)  # not started: 503 on every try

    async def run() -> None:
        log = _log(ingester, interval=0.01, retry_for=0.5)
        log.start()
        log.record(project.project_id, _span(1))
        await asyncio.sleep(0.2)
        assert log.dropped == 0 and log.held_bytes > 0  # still retrying, still held
        await asyncio.sleep(1.0)
        assert _dropped(log, "write_error") == 1 and log.held_bytes == 0
        await log.stop()

    asyncio.run(run())


def test_gateway_log_drains_in_slices_and_stores_everything(store: Any, project: ProjectKeys) -> None:
    from podium.server.ingest import Ingester

    ingester = Ingester(store.ingest)
    ingester.start()
    try:
        log = _log(ingester, slice_items=10)
        n = 95
        for i in range(n):
            assert log.record(project.project_id, _span(i + 1))

        async def run() -> int:
            ticks = 0
            done = False

            async def other() -> None:  # a request's work, between the slices
                nonlocal ticks
                while not done:
                    ticks += 1
                    await asyncio.sleep(0)

            t = asyncio.ensure_future(other())
            await asyncio.sleep(0)
            await log._drain()
            done = True
            await t
            assert log.metrics.log_buffered._value.get() == n
            await log.stop()  # waits for the commits
            return ticks

        ticks = asyncio.run(run())
        assert ticks >= 9  # the loop ran other work between the ten slices
        assert log.written == n and log.held_bytes == 0
    finally:
        ingester.stop()
    assert log.dropped == 0
    assert store.traces.get_trace(project.project_id, f"{n:032x}") is not None


def _gateway(store: Any, log: Any, upstream: Any) -> Any:
    from podium.config import Settings
    from podium.core.pricing import PriceTable
    from podium.gateway.config import GatewayConfig, GatewayFile
    from podium.gateway.limits import MemoryLimiter
    from podium.gateway.service import Gateway

    cfg = GatewayConfig.from_specs(GatewayFile.model_validate({
        "router": {"retries": 0, "timeout": 10},
        "models": [{"name": "fake", "deployments": [{"provider": "openai", "model": "fake-a",
                                                      "api_base": upstream.base_url}]}],
    }))
    return Gateway(Settings(gateway_cache="off"), store, sink=log.record, log_room=log, prices=lambda _p: PriceTable.default(),
                   limiter=MemoryLimiter(), cache=False, config=cfg, metrics=log.metrics)


async def test_gateway_on_a_stuck_writer_serves_calls_and_counts_each_span_it_drops(
    store: Any, project: ProjectKeys, upstream: Any
) -> None:
    """The store stops writing: the first call waits ``max_wait`` for room, then every call is served
    at once and its span counted in ``podium_gateway_log_dropped_total{reason="full"}``; once the
    writer is back, what was held is stored."""
    from podium.errors import NotFound
    from podium.server.gateway_log import approx_bytes
    from podium.server.ingest import Ingester

    repo = SlowRepo(store.ingest)
    repo.gate.clear()
    ingester = Ingester(repo)  # type: ignore[arg-type]
    ingester.start()
    log = _log(ingester, max_bytes=2 * approx_bytes(_span(1)), interval=0.01, max_wait=0.3)
    gw = _gateway(store, log, upstream)
    key = store.projects.create_key(project.project_id, role="gateway").key
    await gw.start()
    log.start()
    try:
        for _ in range(2):  # room for these two
            await gw.call(gw.prepare(key, "chat", dict(BODY), {}))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        first = gw.prepare(key, "chat", dict(BODY), {})
        await gw.call(first)
        assert 0.25 < loop.time() - t0 < 3 and not first.log_room  # waited max_wait in vain
        t1 = loop.time()
        for _ in range(5):
            await gw.call(gw.prepare(key, "chat", dict(BODY), {}))
        assert loop.time() - t1 < 2  # no more waits while nothing is written
        assert _dropped(log, "full") == 6 and log.dropped == 6 and log.waits == 1
        repo.gate.set()
        await log.stop()
    finally:
        repo.gate.set()
        await gw.aclose()
        ingester.stop()
    assert log.written == 2 and log.held_bytes == 0
    with pytest.raises(NotFound):  # dropped, and counted
        store.traces.get_trace(project.project_id, first.trace_id)


async def test_gateway_under_a_slow_writer_slows_down_and_logs_every_call(
    store: Any, project: ProjectKeys, upstream: Any
) -> None:
    """Sustained overload: 300 calls, 32 at a time, against a writer that takes 30 ms per batch and a
    log bounded at 100 KB (about 20 spans): the calls wait for the writer, none is dropped, the log holds
    at most its bound plus the spans of the calls in flight, and every span is stored."""
    from podium.server.ingest import Ingester

    repo = SlowRepo(store.ingest, delay=0.03)
    ingester = Ingester(repo)  # type: ignore[arg-type]
    ingester.start()
    log = _log(ingester, max_bytes=100_000, interval=0.01, max_wait=30)
    gw = _gateway(store, log, upstream)
    key = store.projects.create_key(project.project_id, role="gateway").key
    await gw.start()
    log.start()
    peak = 0
    traces: list[str] = []

    async def client(n: int) -> None:
        nonlocal peak
        for _ in range(n):
            call = gw.prepare(key, "chat", dict(BODY), {})
            out = await gw.call(call)
            assert out["choices"][0]["message"]["content"]
            traces.append(call.trace_id)
            peak = max(peak, log.held_bytes)

    try:
        await asyncio.gather(*(client(300 // 32 + (i < 300 % 32)) for i in range(32)))
        await log.stop()
    finally:
        await gw.aclose()
        ingester.stop()
    assert len(traces) == 300
    assert log.dropped == 0 and log.waits > 0  # back-pressure, not drops
    assert peak <= 100_000 + 32 * 6_000  # the bound plus the spans of the calls in flight
    assert log.written == 300 and repo.writes > 1
    assert store.traces.get_trace(project.project_id, traces[-1]) is not None
    assert store.traces.get_trace(project.project_id, traces[0]) is not None


# --- records and ids -------------------------------------------------------------------------------


def test_construct_builds_what_model_construct_builds() -> None:
    from podium.core.records import CostIn, ScoreDataType, ScoreIn, SpanIn, UsageIn
    from podium.gateway.service import _construct

    now = datetime.now(UTC)
    u = _construct(UsageIn, input_tokens=3, output_tokens=2, total_tokens=None, details=None)
    assert u == UsageIn.model_construct(input_tokens=3, output_tokens=2, total_tokens=None, details=None)
    kw: dict[str, Any] = {"id": "a" * 16, "trace_id": "b" * 32, "name": "chat fake", "start_time": now,
                          "end_time": now, "usage": u, "cost": _construct(CostIn, input=None, output=None, total=0.5),
                          "metadata": {"gateway": {"alias": "fake"}}}
    a, b = _construct(SpanIn, **kw), SpanIn.model_construct(**kw)
    assert a == b
    assert a.model_fields_set == b.model_fields_set
    assert a.model_dump() == b.model_dump()
    assert a.kind == b.kind  # a default filled in
    s = dict(name="pii", value=1.0, data_type=ScoreDataType.NUMERIC, trace_id="b" * 32, span_id="a" * 16,
             source="guardrail", timestamp=now)
    assert _construct(ScoreIn, **s).model_dump() == ScoreIn.model_construct(**s).model_dump()


def test_random_ids_are_hex_and_unique() -> None:
    from podium.gateway.service import _random_hex

    ids = {_random_hex(16) for _ in range(5000)}  # crosses several 4 KiB refills
    assert len(ids) == 5000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(_random_hex(8)) == 16
