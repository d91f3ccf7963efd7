"""The gateway's hot path (docs/gateway.md#overhead): the fast dispatch keeps every answer the
middleware stack gave (security headers, the Host allow-list, 404/405 in OpenAI's shape), the
span log is bounded and counts what it drops, and the cheaper helpers build the same records."""

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


def test_gateway_log_is_bounded_and_counts_every_drop(store: Any, project: ProjectKeys) -> None:
    from podium.core.pricing import PriceTable
    from podium.gateway.metrics import GatewayMetrics
    from podium.server.gateway_log import GatewayLog
    from podium.server.ingest import Ingester

    ingester = Ingester(store.ingest)  # not started: the queue refuses every batch
    log = GatewayLog(ingester, lambda _pid: PriceTable.default(), max_buffer=3)
    log.metrics = GatewayMetrics()
    assert [log.record(project.project_id, _span(i)) for i in range(5)] == [True, True, True, False, False]
    log.flush()  # three spans the ingest queue refuses
    assert log.dropped == 5
    assert log.metrics.log_dropped._value.get() == 3  # the record() refusals are counted by the service
    assert log.record(project.project_id, _span(9))  # room again after the flush


def test_gateway_log_drains_in_slices_and_stores_everything(store: Any, project: ProjectKeys) -> None:
    from podium.core.pricing import PriceTable
    from podium.gateway.metrics import GatewayMetrics
    from podium.server.gateway_log import GatewayLog
    from podium.server.ingest import Ingester

    ingester = Ingester(store.ingest)
    ingester.start()
    try:
        log = GatewayLog(ingester, lambda _pid: PriceTable.default(), slice_items=10)
        log.metrics = GatewayMetrics()
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
            return ticks

        ticks = asyncio.run(run())
        assert ticks >= 9  # the loop ran other work between the ten slices
        assert log.metrics.log_buffered._value.get() == n
        deadline = datetime.now(UTC).timestamp() + 20
        while ingester.pending and datetime.now(UTC).timestamp() < deadline:
            asyncio.run(asyncio.sleep(0.05))
    finally:
        ingester.stop()
    assert log.dropped == 0
    assert store.traces.get_trace(project.project_id, f"{n:032x}") is not None


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
