"""The Podium SDK against a real server: trees, scores, restarts, outages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import podium
from podium.config import Settings
from podium.server.app import create_app
from tests.conftest import LiveServer, ServerThread, free_port

pytestmark = pytest.mark.integration


def _client(url: str, keys: Any, **kw: Any) -> podium.Podium:
    return podium.Podium(base_url=url, public_key=keys.public_key, secret_key=keys.secret_key,
                         flush_interval=0.05, **kw)


def test_decorated_app_becomes_a_trace_tree(server: LiveServer) -> None:
    client = _client(server.url, server.keys)
    podium.configure(base_url=server.url, public_key=server.keys.public_key,
                     secret_key=server.keys.secret_key, flush_interval=0.05)
    try:
        @podium.observe()
        def retrieve(q: str) -> list[str]:
            with podium.span("rerank", kind="reranker") as s:
                s.update(output=["d1"], metadata={"k": 3})
            return ["d1", "d2"]

        @podium.observe(as_type="generation")
        async def generate(q: str, docs: list[str]) -> str:
            podium.update_current_span(model="gpt-4o-mini", usage={"input_tokens": 50, "output_tokens": 10})
            return "answer"

        @podium.observe(name="qa")
        def qa(q: str) -> str:
            with podium.propagate_attributes(user_id="u-sdk", session_id="s-sdk", tags=["sdk"]):
                out = asyncio.run(generate(q, retrieve(q)))
                podium.create_score("helpful", 1.0, trace_id=podium.get_current_trace_id(), comment="auto")
                return out

        assert qa("why?") == "answer"
        result = podium.flush()
        assert result.dropped == 0 and result.failed == 0 and result.sent >= 5
    finally:
        podium.shutdown()
        client.shutdown()
    with server.client() as c:
        traces = c.get("/api/v1/traces").json()["data"]
        assert len(traces) == 1
        t = c.get(f"/api/v1/traces/{traces[0]['id']}").json()
    assert t["name"] == "qa" and t["user_id"] == "u-sdk" and t["session_id"] == "s-sdk" and t["tags"] == ["sdk"]
    spans = {s["name"]: s for s in t["spans"]}
    assert set(spans) == {"qa", "retrieve", "rerank", "generate"}
    assert spans["retrieve"]["parent_id"] == spans["qa"]["id"]
    assert spans["rerank"]["parent_id"] == spans["retrieve"]["id"] and spans["rerank"]["kind"] == "reranker"
    assert spans["generate"]["kind"] == "generation" and spans["generate"]["total_tokens"] == 60
    assert spans["generate"]["input"] == {"q": "why?", "docs": ["d1", "d2"]}
    assert spans["qa"]["output"] == "answer" and t["total_cost"] > 0
    assert [s["name"] for s in t["scores"]] == ["helpful"]


def test_server_restarted_mid_stream_nothing_lost_or_duplicated(store: Any, project: Any) -> None:
    port = free_port()
    th = ServerThread(create_app(Settings(), store=store), port=port).start()
    client = _client(th.url, project, max_retries=20)
    try:
        for i in range(50):
            with client.span(f"before-{i}"):
                pass
        assert client.flush(timeout=10).sent >= 50
        th.stop()
        for i in range(50):
            with client.span(f"during-{i}"):
                pass
        th = ServerThread(create_app(Settings(), store=store), port=port).start()
        result = client.flush(timeout=30)
        assert result.failed == 0 and result.dropped == 0 and result.sent >= 100
    finally:
        client.shutdown()
        th.stop()
    from podium.store.repos.traces import TraceFilter

    page = store.traces.list_traces(project.project_id, TraceFilter(), limit=1000)
    names = sorted(t["name"] for t in page.items)
    assert len(names) == 100 and len(set(names)) == 100


def test_server_down_keeps_memory_bounded_and_counts_drops() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = podium.Podium(base_url=dead, public_key="pk-pd-x", secret_key="sk-pd-x", max_queue_size=100,
                           flush_interval=0.05, max_retries=1, timeout=0.5)
    try:
        for i in range(1000):
            with client.span(f"s{i}"):
                pass
        result = client.flush(timeout=15)
        assert result.dropped >= 800
        assert result.sent == 0
        assert result.dropped + result.failed + result.pending >= 1000 - 1
    finally:
        client.shutdown()
