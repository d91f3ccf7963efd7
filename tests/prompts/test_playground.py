"""The playground and generations linked to prompt versions, end to end:
SDK / REST -> Podium (real uvicorn, SQLite and PostgreSQL) -> gateway -> a real fake upstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import podium
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration

CHAT = [{"role": "system", "content": "Answer in a {{tone}} way."}, {"role": "user", "content": "{{question}}"}]


def wait_for(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out:
            return out
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def declare_fake_model(c: httpx.Client, up: FakeUpstream) -> None:
    r = c.put("/api/v1/gateway/models/fake", json={
        "deployments": [{"provider": "openai", "model": "fake-a", "api_base": up.base_url, "api_key": "sk-up"}]})
    assert r.status_code in (200, 201), r.text
    r = c.put("/api/v1/prices/fake-a", json={"input_per_million": "1", "output_per_million": "2"})
    assert r.status_code == 200, r.text


def test_playground_run_is_traced_and_linked(server: LiveServer, upstream: FakeUpstream) -> None:
    with server.client() as c:
        declare_fake_model(c, upstream)
        c.post("/api/v1/prompts", json={"name": "support/qa", "prompt": CHAT,
                                        "config": {"model": "fake", "temperature": 0.5, "max_tokens": 50}})
        upstream.script("fake-a", Reply("Forty-two.", prompt_tokens=12))
        r = c.post("/api/v1/prompts/support/qa/versions/1/run", json={
            "variables": {"tone": "terse", "question": "Meaning of life?"}, "params": {"max_tokens": 7},
            "user_id": "alice"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["output"] == "Forty-two." and out["message"]["role"] == "assistant"
        assert out["model"] == "fake" and out["usage"]["prompt_tokens"] == 12 and out["cache_hit"] is False
        assert out["cost"] == pytest.approx((12 * 1 + out["usage"]["completion_tokens"] * 2) / 1e6)
        assert out["latency_ms"] > 0 and out["prompt"] == {"name": "support/qa", "version": 1}
        sent = upstream.requests[-1]["body"]
        assert sent["model"] == "fake-a" and sent["temperature"] == 0.5 and sent["max_tokens"] == 7
        assert sent["messages"] == [{"role": "system", "content": "Answer in a terse way."},
                                    {"role": "user", "content": "Meaning of life?"}]
        assert "podium" not in sent
        # The gateway logged the call; the playground linked it to the version and named the trace.
        def logged() -> Any:
            r = c.get(f"/api/v1/traces/{out['trace_id']}")
            spans = r.json().get("spans") if r.status_code == 200 else None
            # The gateway's span batch (user, tags) and the playground's trace row (its name) are
            # two writes, and a trace read is two queries: wait until both have landed.
            done = spans and spans[0]["prompt_version"] and spans[0]["output"] and r.json()["user_id"]
            return r.json() if done else None

        t = wait_for(logged)
        assert t["name"] == "playground support/qa v1", t
        assert t["user_id"] == "alice" and "playground" in t["tags"], t
        assert t["input"] == {"tone": "terse", "question": "Meaning of life?"} and t["output"] == "Forty-two."
        (span,) = t["spans"]
        assert span["id"] == out["span_id"] and span["kind"] == "generation" and span["name"] == "chat fake"
        assert (span["prompt_name"], span["prompt_version"]) == ("support/qa", 1)
        assert span["output"]["content"] == "Forty-two." and span["input_tokens"] == 12
        assert float(span["cost_total"]) == pytest.approx(out["cost"])
        stats = c.get("/api/v1/prompts/support/qa/analytics").json()["data"]
        assert stats[0]["version"] == 1 and stats[0]["count"] == 1 and stats[0]["cost"]["total"] == pytest.approx(
            out["cost"])
        # A second identical run is answered by the gateway's cache (free), unless asked not to.
        again = c.post("/api/v1/prompts/support/qa/versions/latest/run", json={
            "variables": {"tone": "terse", "question": "Meaning of life?"}, "params": {"max_tokens": 7}}).json()
        assert again["cache_hit"] is True and again["cost"] == 0
        fresh = c.post("/api/v1/prompts/support/qa/versions/1/run", json={
            "variables": {"tone": "terse", "question": "Meaning of life?"}, "params": {"max_tokens": 7},
            "cache": False}).json()
        assert fresh["cache_hit"] is False and len(upstream.requests) == 2
        # Bad input.
        r = c.post("/api/v1/prompts/support/qa/versions/1/run", json={"variables": {"tone": "x"}})
        assert r.status_code == 400 and "missing variable: question" in r.json()["error"]["message"]
        r = c.post("/api/v1/prompts/support/qa/versions/1/run",
                   json={"variables": {"tone": "x", "question": "y"}, "model": "nope"})
        assert r.status_code == 404 and "available" in r.json()["error"]["message"]
        r = c.post("/api/v1/prompts/support/qa/versions/3/run", json={"variables": {}})
        assert r.status_code == 404 and "versions are 1 to 1" in r.json()["error"]["message"]
        r = c.post("/api/v1/prompts/support/qa/versions/1/run", json={"variables": {}, "colour": 1})
        assert r.status_code == 400
    viewer = server.store.projects.create_key(server.keys.project_id, role="viewer")
    with httpx.Client(base_url=server.url, auth=(viewer.key.public_key, viewer.secret_key)) as v:
        r = v.post("/api/v1/prompts/support/qa/versions/1/run", json={"variables": {"tone": "x", "question": "y"}})
        assert r.status_code == 403


def test_openai_generations_link_to_the_chosen_version(server: LiveServer, upstream: FakeUpstream) -> None:
    from podium.openai import OpenAI

    with server.client() as c:
        declare_fake_model(c, upstream)
        c.post("/api/v1/prompts", json={"name": "qa", "prompt": CHAT, "config": {"model": "fake"}})
        c.post("/api/v1/prompts", json={"name": "qa", "prompt": CHAT, "config": {"model": "fake", "temperature": 0}})
        c.put("/api/v1/prompts/qa/labels/production",
              json={"versions": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]})
    podium.configure(base_url=server.url, public_key=server.keys.public_key, secret_key=server.keys.secret_key,
                     flush_interval=0.05)
    client = OpenAI(base_url=server.url + "/v1", api_key=server.keys.secret_key, max_retries=0)
    chosen: dict[str, int] = {}
    for i in range(16):
        user = f"user-{i}"
        with podium.propagate_attributes(user_id=user), podium.span("handle") as s:
            prompt = podium.get_prompt("qa")  # the user's A/B bucket, from propagate_attributes
            chosen[user] = prompt.version  # type: ignore[assignment]
            reply = client.chat.completions.create(**prompt.openai_kwargs(tone="kind", question=f"q{i}"))
            assert reply.choices[0].message.content
            podium.create_score("helpful", 1.0 if prompt.version == 2 else 0.0, trace_id=s.trace_id)
    # Explicitly, with messages built by hand, through podium_prompt=.
    p1 = podium.get_prompt("qa", version=1)
    client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hand made"}],
                                   podium_prompt=p1)  # type: ignore[call-overload]
    # A fallback links the name only (its version is unknown).
    fb = podium.get_prompt("not-there", fallback=[{"role": "user", "content": "{{question}}"}])
    client.chat.completions.create(model="fake", **fb.openai_kwargs(question="x"))
    result = podium.flush(timeout=10)
    assert result.failed == 0 and result.dropped == 0
    client.close()
    assert set(chosen.values()) == {1, 2}
    expected = {1: list(chosen.values()).count(1) + 1, 2: list(chosen.values()).count(2)}
    with server.client() as c:
        def ready() -> Any:
            data = {r["version"]: r for r in c.get("/api/v1/prompts/qa/analytics").json()["data"]}
            return data if data[1]["count"] == expected[1] and data[2]["count"] == expected[2] else None

        by_v = wait_for(ready)
        assert by_v[2]["scores"]["helpful"] == {"avg": 1.0, "count": expected[2]}
        assert by_v[1]["scores"]["helpful"] == {"avg": 0.0, "count": expected[1] - 1}
        assert by_v[1]["total_tokens"] > 0 and by_v[1]["latency_ms"]["p50"] is not None
        spans = c.get("/api/v1/traces", params={"user_id": "user-3", "include_io": True}).json()["data"]
        detail = c.get(f"/api/v1/traces/{spans[0]['id']}").json()
        gen = next(s for s in detail["spans"] if s["kind"] == "generation")
        assert gen["prompt_name"] == "qa" and gen["prompt_version"] == chosen["user-3"]
        assert gen["metadata"]["prompt_label"] == "production"
    assert all("podium_prompt" not in r["body"] for r in upstream.requests)
