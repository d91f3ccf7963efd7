"""The bundled local models through the gateway with the official `openai` SDK: no keys, no network."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer, ProjectKeys, ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any]]:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.store import Store

    home = tmp_path_factory.mktemp("local-home")
    store = Store.from_url(f"sqlite:///{home / 'podium.db'}")
    p = store.projects.create_project("local")
    k = store.projects.create_key(p.id, role="admin")
    keys = ProjectKeys(p.id, k.key.public_key, k.secret_key)
    app = create_app(Settings(home=home, gateway_cache="off"), store=store)
    th = ServerThread(app).start()
    srv = LiveServer(th.url, store, keys, app, th)
    yield srv, openai.OpenAI(base_url=th.url + "/v1", api_key=k.secret_key, max_retries=0, timeout=120)
    th.stop()
    store.close()


def test_local_chat_stream_and_non_stream_agree(local_server: tuple[LiveServer, Any]) -> None:
    _srv, client = local_server
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    resp = client.chat.completions.create(model="local", messages=msgs, max_tokens=16, temperature=0, seed=1)
    text = resp.choices[0].message.content
    assert text and text.strip()
    assert resp.usage.prompt_tokens > 5 and 0 < resp.usage.completion_tokens <= 16
    stream = client.chat.completions.create(model="local", messages=msgs, max_tokens=16, temperature=0, seed=1,
                                            stream=True)
    streamed = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert streamed == text


def test_local_completion_with_logprobs(local_server: tuple[LiveServer, Any]) -> None:
    _srv, client = local_server
    resp = client.completions.create(model="local", prompt="The capital of France is", max_tokens=4,
                                     temperature=0, logprobs=3)
    lp = resp.choices[0].logprobs
    assert lp is not None and len(lp.tokens) == len(lp.token_logprobs) >= 1
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(len(t) <= 3 for t in lp.top_logprobs)


def test_local_embeddings(local_server: tuple[LiveServer, Any]) -> None:
    _srv, client = local_server
    out = client.embeddings.create(model="local-embed", input=["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."])
    a, b, c = (d.embedding for d in out.data)
    assert len(a) == 384

    def cos(x: list[float], y: list[float]) -> float:
        return sum(i * j for i, j in zip(x, y, strict=True)) / math.sqrt(sum(i * i for i in x) * sum(j * j for j in y))

    assert cos(a, b) > 0.6 and cos(a, b) > cos(a, c) + 0.3  # related sentences are closer
    assert out.usage.prompt_tokens > 0


def test_local_call_is_logged_free(local_server: tuple[LiveServer, Any]) -> None:
    import time

    srv, client = local_server
    raw = client.chat.completions.with_raw_response.create(
        model="local", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    trace_id = raw.headers["x-podium-trace-id"]
    with srv.client() as c:
        for _ in range(100):
            r = c.get(f"/api/v1/traces/{trace_id}")
            if r.status_code == 200 and r.json()["spans"]:
                break
            time.sleep(0.1)
        span = r.json()["spans"][0]
    assert span["provider"] == "local" and span["model"] == "smollm2-135m-instruct"
    assert span["input_tokens"] > 0 and float(span["cost_total"]) == 0.0
