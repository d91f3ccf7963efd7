"""The gateway's OpenAI surface: streams as OpenAI sends them, unknown paths, bad bodies, 500s.

The official `openai` SDK -> Podium (real uvicorn) -> the fake upstream; every test runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.gateway.openai_app import client, wait_span

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "Say hello"}]
TEXT = "Hello from the fake upstream"




def _events(srv: LiveServer, path: str, body: dict[str, Any]) -> list[Any]:
    """The SSE `data:` payloads of a stream, parsed (``[DONE]`` kept as the string)."""
    out: list[Any] = []
    with srv.client() as c, c.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


# --- streams: usage only when asked ------------------------------------------------------------------


def test_the_docs_stream_loop_works(openai_gateway: Callable[..., LiveServer], upstream: FakeUpstream,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    srv = openai_gateway()
    stream = client(srv).chat.completions.create(model="fake", messages=MSG, stream=True)
    for chunk in stream:  # exactly the loop in OpenAI's docs: every chunk has a choice
        print(chunk.choices[0].delta.content or "", end="")
    assert capsys.readouterr().out == TEXT
    # Podium still asked the upstream for usage, and the trace has the upstream's numbers.
    assert upstream.bodies("fake-a")[-1]["stream_options"] == {"include_usage": True}
    span = wait_span(srv, stream.response.headers["x-podium-trace-id"])
    assert span["input_tokens"] == 10 and span["output_tokens"] == 5


def test_no_usage_chunk_and_no_usage_field_unless_asked(openai_gateway: Callable[..., LiveServer],
                                                        upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    for opts in (None, {"include_usage": False}):
        body: dict[str, Any] = {"model": "fake", "messages": MSG, "stream": True}
        if opts is not None:
            body["stream_options"] = opts
        events = _events(srv, "/v1/chat/completions", body)
        assert events[-1] == "[DONE]"
        chunks = events[:-1]
        assert all(c["choices"] and "usage" not in c for c in chunks)
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == TEXT
        # the caller's own stream_options are kept, with include_usage forced for the gateway's books
        assert upstream.bodies("fake-a")[-1]["stream_options"] == {"include_usage": True}
    # the legacy completions stream follows the same rule
    events = _events(srv, "/v1/completions", {"model": "fake", "prompt": "Hi", "stream": True})
    assert all(c["choices"] and "usage" not in c for c in events[:-1])


def test_include_usage_sends_usage_null_then_the_usage_chunk(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    events = _events(srv, "/v1/chat/completions",
                     {"model": "fake", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    *content, last = events[:-1]
    assert all(c["usage"] is None and c["choices"] for c in content)  # as OpenAI: usage: null on every chunk
    assert last["choices"] == [] and last["usage"] == {"prompt_tokens": 10, "completion_tokens": 5,
                                                       "total_tokens": 15}
    # the SDK sees the same
    stream = client(srv).chat.completions.create(model="fake", messages=MSG, stream=True,
                                                 stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])


def test_include_usage_without_upstream_usage_sends_podiums_count(openai_gateway: Callable[..., LiveServer],
                                                                  upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    upstream.script("fake-a", Reply(usage=False))
    events = _events(srv, "/v1/chat/completions",
                     {"model": "fake", "messages": MSG, "stream": True, "stream_options": {"include_usage": True}})
    last = events[-2]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] > 0
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]


def test_cached_stream_follows_the_same_rule(openai_gateway: Callable[..., LiveServer], upstream: FakeUpstream) -> None:
    srv = openai_gateway(cache="memory")
    c = client(srv)
    c.chat.completions.create(model="fake", messages=MSG, seed=7)
    with c.chat.completions.with_streaming_response.create(model="fake", messages=MSG, seed=7, stream=True) as r:
        assert r.headers["x-podium-cache"] == "hit"
        chunks = list(r.parse())
    assert all(ch.choices for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == TEXT


# --- unknown paths and methods ------------------------------------------------------------------------


def test_unknown_v1_path_is_openai_404_listing_endpoints(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    with srv.client() as c:
        r = c.post("/v1/assistants", json={})
        assert r.status_code == 404
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["type"] == "invalid_request_error" and err["code"] == "unknown_url"
        for ep in ("POST /v1/chat/completions", "POST /v1/responses", "POST /v1/embeddings", "GET /v1/models"):
            assert ep in err["message"]
        assert c.get("/v1").status_code == 404
        # wrong methods: 405 naming the right one
        r = c.get("/v1/chat/completions")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert r.json()["error"]["code"] == "method_not_allowed" and "use POST" in r.json()["error"]["message"]
        r = c.delete("/v1/models/fake")
        assert r.status_code == 405 and r.headers["allow"] == "GET"
        # the real routes still win: the models list, OTLP on /v1/traces, Podium's API in its own shape
        assert c.get("/v1/models").status_code == 200
        otlp = c.post("/v1/traces", json={"resourceSpans": []})
        assert otlp.status_code == 200, otlp.text
        api = c.get("/api/v1/no-such-thing")
        assert api.status_code == 404 and "code" in api.json()["error"] and "type" not in api.json()["error"]
    # the SDK raises its own NotFoundError with our message
    with pytest.raises(openai.NotFoundError) as ei:
        client(srv).files.list()
    assert "POST /v1/responses" in ei.value.message


def test_gateway_only_mode_answers_unknown_paths_too(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway(mode="gateway")
    with srv.client() as c:
        r = c.post("/v1/traces", json={})
        assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
        assert "/v1/traces" not in r.json()["error"]["message"].split("serves:")[1]


# --- bodies that must be 400s, and 500s in OpenAI's shape -------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions"])
def test_deeply_nested_body_is_an_openai_400(openai_gateway: Callable[..., LiveServer], path: str) -> None:
    srv = openai_gateway()
    with srv.client() as c:
        for body in (b"[" * 100_000 + b"]" * 100_000,
                     b'{"model": "fake", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                     b'{"model": "fake", "input": "x", "messages": ' + b"[" * 200 + b"]" * 200 + b"}"):
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error" and "nests JSON" in err["message"]


def test_nested_tool_schema_within_the_limit_passes(openai_gateway: Callable[..., LiveServer],
                                                    upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}}
    tool = {"type": "function", "function": {"name": "deep", "parameters": schema}}
    out = client(srv).chat.completions.create(model="fake", messages=MSG, tools=[tool])  # type: ignore[list-item]
    assert out.choices[0].message.content == TEXT
    assert upstream.bodies("fake-a")[-1]["tools"] == [tool]


def test_unexpected_error_is_an_openai_500(openai_gateway: Callable[..., LiveServer],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    srv = openai_gateway()
    gw = srv.app.state.podium.gateway

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(gw, "prepare", broken)
    for path, body in (("/v1/chat/completions", {"model": "fake", "messages": MSG}),
                       ("/v1/responses", {"model": "fake", "input": "hi"})):
        r = httpx.post(srv.url + path, json=body, headers={"authorization": "Bearer " + srv.keys.secret_key})
        assert r.status_code == 500
        assert r.json() == {"error": {"message": r.json()["error"]["message"], "type": "server_error",
                                      "param": None, "code": "internal_error"}}
        assert "server log" in r.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError):
        client(srv).chat.completions.create(model="fake", messages=MSG)


def test_unexpected_error_mid_stream_is_an_openai_error_event(openai_gateway: Callable[..., LiveServer],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    srv = openai_gateway()
    gw = srv.app.state.podium.gateway
    real_stream = gw.stream

    async def broken_stream(call: Any) -> Any:
        it = await real_stream(call)

        async def gen() -> Any:
            async for chunk in it:
                yield chunk
                raise RuntimeError("injected fault")

        return gen()

    monkeypatch.setattr(gw, "stream", broken_stream)
    events = _events(srv, "/v1/chat/completions", {"model": "fake", "messages": MSG, "stream": True})
    assert events[-1]["error"]["type"] == "server_error" and events[-1]["error"]["code"] == "internal_error"
    with pytest.raises(openai.APIError):
        for _ in client(srv).chat.completions.create(model="fake", messages=MSG, stream=True):
            pass


# --- embeddings: the logged dimension count --------------------------------------------------------------


@pytest.mark.slow
def test_embedding_log_counts_dimensions_of_base64_vectors(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    c = client(srv)
    for fmt in ("base64", "float"):
        raw = c.embeddings.with_raw_response.create(model="local-embed", input="a sentence",
                                                    encoding_format=fmt)  # type: ignore[arg-type]
        # asked for explicitly, base64 reaches the caller as the string (2048 characters for 384 float32s)
        assert len(raw.parse().data[0].embedding) == (2048 if fmt == "base64" else 384)
        span = wait_span(srv, raw.headers["x-podium-trace-id"])
        assert span["output"] == {"embeddings": 1, "dimensions": 384}


@pytest.mark.parametrize("n", [1, 2, 3, 384])
def test_embedding_dimensions_of_float_lists_and_base64(n: int) -> None:
    import base64
    import struct

    from podium.gateway.wire import embedding_dimensions

    vec = [0.5] * n
    b64 = base64.b64encode(struct.pack(f"<{n}f", *vec)).decode()  # padded with "=" for n = 1, 2
    assert embedding_dimensions({"embedding": vec}) == n
    assert embedding_dimensions({"embedding": b64}) == n
    assert embedding_dimensions({}) == 0


def test_depth_check_reads_brackets_in_strings_as_text() -> None:
    from podium.errors import BadRequest
    from podium.gateway.wire import MAX_JSON_DEPTH, parse_body

    text = 'code: a[0]["k"] \\ "{' * 300  # brackets, quotes and backslashes inside a string
    body = {"model": "fake", "messages": [{"role": "user", "content": text}]}
    assert parse_body(json.dumps(body).encode()) == body
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(BadRequest, match="nests JSON"):  # string brackets cannot hide real depth
        parse_body(json.dumps({"a": ["]" * 200, deep, "[" * 200]}).encode())
    at_limit: Any = "x"
    for _ in range(MAX_JSON_DEPTH - 1):
        at_limit = [at_limit]
    assert parse_body(json.dumps({"a": at_limit}).encode()) == {"a": at_limit}
    with pytest.raises(BadRequest, match="nests JSON"):
        parse_body(json.dumps({"a": deep}).encode("utf-16"))  # other encodings json accepts
