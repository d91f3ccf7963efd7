"""The HTTP providers against real local servers: OpenAI-compatible, Anthropic and Gemini.

What goes over the wire is asserted on the fake's side (``requests``), what comes back on
ours; errors are checked for the router's contract (status, retryable, Retry-After) and
streams for the "never end silently" rule.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from podium.errors import UpstreamError, UpstreamTimeout
from podium.gateway.providers.anthropic import AnthropicProvider
from podium.gateway.providers.base import Deployment
from podium.gateway.providers.gemini import GeminiProvider
from podium.gateway.providers.http import iter_sse, make_client, parse_retry_after
from podium.gateway.providers.openai import OpenAIProvider
from tests.gateway.fake_upstream import Fail, FakeUpstream, Reply
from tests.gateway.fake_vendors import (
    FakeVendor,
    Json,
    Sse,
    anthropic_events,
    anthropic_message,
    gemini_response,
)

# --- fixtures ----------------------------------------------------------------------------------

BACKENDS = [
    "httpx",
    "aiohttp",  # in the server extra: both backends always run
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every provider test runs once per HTTP backend."""
    return str(request.param)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def up(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


@pytest.fixture(scope="module")
def vendor_server() -> Iterator[FakeVendor]:
    v = FakeVendor().start()
    yield v
    v.stop()


@pytest.fixture
def vendor(vendor_server: FakeVendor) -> FakeVendor:
    vendor_server.requests.clear()
    vendor_server._answers.clear()
    return vendor_server


@pytest.fixture
async def openai(backend: str) -> AsyncIterator[OpenAIProvider]:
    p = OpenAIProvider(backend=backend)
    assert p.backend == backend
    yield p
    await p.aclose()


@pytest.fixture
async def anthropic(backend: str) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(backend=backend)
    assert p.backend == backend
    yield p
    await p.aclose()


@pytest.fixture
async def gemini(backend: str) -> AsyncIterator[GeminiProvider]:
    p = GeminiProvider(backend=backend)
    assert p.backend == backend
    yield p
    await p.aclose()


def dep(provider: str, base: str, model: str = "m-1", **kw: Any) -> Deployment:
    return Deployment(alias="a", provider=provider, model=model, api_base=base, api_key="sk-test", **kw)


def dead_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def collect(it: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c async for c in it]


async def collect_until_error(it: AsyncIterator[dict[str, Any]]) -> tuple[list[dict[str, Any]], Exception]:
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as info:
        async for c in it:
            got.append(c)
    return got, info.value


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["delta"].get("content") or "") for ch in chunks for c in ch["choices"])


USER = [{"role": "user", "content": "Say hi"}]

# --- OpenAI-compatible -------------------------------------------------------------------------


async def test_openai_chat_passes_body_and_answer_through(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url, headers={"X-Extra": "yes"})
    body = {"model": "m-1", "messages": USER, "temperature": 0.3, "vendor_knob": {"a": [1, 2]}, "text": "é"}
    out = await openai.chat(d, body)
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["content"] == "Hello from the fake upstream"
    assert out["usage"]["prompt_tokens"] == 10
    rec = up.requests[-1]
    assert rec["path"] == "/v1/chat/completions"
    assert rec["body"] == body  # unknown fields included, nothing added
    assert rec["headers"]["authorization"] == "Bearer sk-test"
    assert rec["headers"]["x-extra"] == "yes"
    assert body == {
        "model": "m-1",
        "messages": USER,
        "temperature": 0.3,
        "vendor_knob": {"a": [1, 2]},
        "text": "é",
    }


async def test_openai_no_key_no_auth_header(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = Deployment(alias="a", provider="openai", model="m-1", api_base=up.base_url + "/")
    await openai.chat(d, {"model": "m-1", "messages": USER})
    assert "authorization" not in up.requests[-1]["headers"]


async def test_openai_completion_and_embeddings(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url)
    out = await openai.completion(d, {"model": "m-1", "prompt": "Once"})
    assert out["object"] == "text_completion" and out["choices"][0]["text"]
    emb = await openai.embeddings(d, {"model": "m-1", "input": ["a", "b"]})
    assert [e["index"] for e in emb["data"]] == [0, 1]
    assert [r["path"] for r in up.requests] == ["/v1/completions", "/v1/embeddings"]


async def test_openai_stream_adds_include_usage(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url)
    up.script("m-1", Reply("one two three"))
    body = {"model": "m-1", "messages": USER, "stream": True}
    chunks = await collect(openai.chat_stream(d, body))
    assert text_of(chunks) == "one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    sent = up.requests[-1]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert "stream_options" not in body  # the caller's dict is not modified


async def test_openai_stream_keeps_callers_stream_options(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url)
    chunks = await collect(
        openai.chat_stream(d, {"model": "m-1", "messages": USER, "stream_options": {"include_usage": False}})
    )
    assert up.requests[-1]["body"]["stream_options"] == {"include_usage": False}
    assert all("usage" not in c for c in chunks)


async def test_openai_completion_stream(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url)
    up.script("m-1", Reply("a b"))
    chunks = await collect(openai.completion_stream(d, {"model": "m-1", "prompt": "x"}))
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "a b"
    assert up.requests[-1]["path"] == "/v1/completions"


async def test_openai_stream_cut_raises_after_chunks(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url)
    up.script("m-1", Reply("a b c d e", cut_after=2))
    got, err = await collect_until_error(openai.chat_stream(d, {"model": "m-1", "messages": USER}))
    assert text_of(got) == "a b"
    assert str(err).startswith("stream ended before completion")
    assert err.retryable


async def test_openai_stream_connection_dropped_mid_body(vendor: FakeVendor, openai: OpenAIProvider) -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
    }
    vendor.script(Sse([(None, chunk), (None, chunk)], abort=True))
    got, err = await collect_until_error(openai.chat_stream(dep("openai", vendor.url), {"messages": USER}))
    assert len(got) == 2
    assert "stream ended before completion" in str(err)


async def test_openai_stream_error_event(vendor: FakeVendor, openai: OpenAIProvider) -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}],
    }
    vendor.script(Sse([(None, chunk), (None, {"error": {"message": "engine died", "type": "server_error"}})]))
    got, err = await collect_until_error(openai.chat_stream(dep("openai", vendor.url), {"messages": USER}))
    assert len(got) == 1 and err.message == "engine died" and err.retryable


async def test_openai_stream_failing_before_first_chunk(up: FakeUpstream, openai: OpenAIProvider) -> None:
    d = dep("openai", up.base_url)
    up.script("m-1", Fail(503, "overloaded"))
    it = openai.chat_stream(d, {"model": "m-1", "messages": USER})  # lazy: nothing sent yet
    with pytest.raises(UpstreamError) as info:
        await it.__anext__()
    assert info.value.upstream_status == 503 and info.value.retryable
    assert info.value.message == "overloaded"


async def test_openai_400_passthrough(vendor: FakeVendor, openai: OpenAIProvider) -> None:
    err_body = {
        "error": {
            "message": "temperature must be <= 2",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
    }
    vendor.script(Json(400, err_body))
    with pytest.raises(UpstreamError) as info:
        await openai.chat(dep("openai", vendor.url), {"model": "m", "messages": USER, "temperature": 9})
    e = info.value
    assert not isinstance(e, UpstreamTimeout)
    assert (e.upstream_status, e.retryable, e.message) == (400, False, "temperature must be <= 2")
    assert (e.error_type, e.param) == ("invalid_request_error", "temperature")
    assert e.details[0]["code"] == "invalid_value"


async def test_openai_429_with_retry_after(up: FakeUpstream, openai: OpenAIProvider) -> None:
    up.script("m-1", Fail(429, "slow down", retry_after=1.5, type="rate_limit_error"))
    with pytest.raises(UpstreamError) as info:
        await openai.chat(dep("openai", up.base_url), {"model": "m-1", "messages": USER})
    e = info.value
    assert (e.upstream_status, e.retryable, e.upstream_retry_after) == (429, True, 1.5)
    assert e.error_type == "rate_limit_error"


@pytest.mark.parametrize("status", [500, 502, 408])
async def test_openai_retryable_statuses(status: int, up: FakeUpstream, openai: OpenAIProvider) -> None:
    up.script("m-1", Fail(status, "nope"))
    with pytest.raises(UpstreamError) as info:
        await openai.chat(dep("openai", up.base_url), {"model": "m-1", "messages": USER})
    assert info.value.upstream_status == status and info.value.retryable


async def test_openai_non_json_error_body(vendor: FakeVendor, openai: OpenAIProvider) -> None:
    vendor.script(Json(502, "<html>bad gateway</html>"))
    with pytest.raises(UpstreamError) as info:
        await openai.chat(dep("openai", vendor.url), {"model": "m", "messages": USER})
    assert info.value.retryable and "bad gateway" in info.value.message


async def test_openai_connection_refused(openai: OpenAIProvider) -> None:
    base = dead_port_url()
    with pytest.raises(UpstreamError) as info:
        await openai.chat(dep("openai", base), {"model": "m", "messages": USER})
    e = info.value
    assert not isinstance(e, UpstreamTimeout)
    assert e.upstream_status is None and e.retryable
    assert e.message.startswith(f"could not reach {base}")
    with pytest.raises(UpstreamError, match="could not reach"):
        await openai.chat_stream(dep("openai", base), {"messages": USER}).__anext__()


async def test_openai_timeout(up: FakeUpstream, openai: OpenAIProvider) -> None:
    up.script("m-1", Reply("late", delay=3), Reply("late", delay=3))
    d = dep("openai", up.base_url, timeout=0.3)
    with pytest.raises(UpstreamTimeout) as info:
        await openai.chat(d, {"model": "m-1", "messages": USER})
    assert info.value.retryable and info.value.status_code == 504
    with pytest.raises(UpstreamTimeout):
        await openai.chat_stream(d, {"model": "m-1", "messages": USER}).__anext__()


async def test_openai_stream_timeout_between_chunks(up: FakeUpstream, openai: OpenAIProvider) -> None:
    up.script("m-1", Reply("a b c", chunk_delay=2))
    d = dep("openai", up.base_url, timeout=0.3)
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamTimeout, match="stream ended before completion"):
        async for c in openai.chat_stream(d, {"model": "m-1", "messages": USER}):
            got.append(c)
    assert text_of(got) == "a"


def test_provider_survives_a_new_event_loop(upstream: FakeUpstream, backend: str) -> None:
    p = OpenAIProvider(backend=backend)
    d = dep("openai", upstream.base_url)
    for _ in range(2):  # pooled connections of the first loop must not be reused in the second
        out = asyncio.run(p.chat(d, {"model": "m-1", "messages": USER}))
        assert out["object"] == "chat.completion"
    asyncio.run(p.aclose())


async def test_json_answer_where_stream_expected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"error": {"message": "streaming disabled", "type": "invalid_request_error"}}
        )

    p = OpenAIProvider(transport=httpx.MockTransport(handler))
    with pytest.raises(UpstreamError, match="streaming disabled"):
        await p.chat_stream(dep("openai", "http://x/v1"), {"messages": USER}).__anext__()
    await p.aclose()


async def test_shared_client_is_not_closed() -> None:
    client = make_client()
    p = OpenAIProvider(client=client)
    assert p.client is client
    await p.aclose()
    assert not client.is_closed
    await client.aclose()


# --- plumbing -----------------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "7"})) == 0.25
    assert parse_retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


async def test_sse_parser() -> None:
    raw = (
        b": comment\r\n"
        b'event: first\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"data: plain\n\n"
        b"id: 3\nretry: 10\ndata:no-space\n\n"
        b"data: [DONE]"  # no trailing blank line
    )
    resp = httpx.Response(200, content=raw)
    events = [e async for e in iter_sse(resp, provider_name="t")]
    assert events == [
        ("first", '{"a":\n1}'),
        ("message", "plain"),
        ("message", "no-space"),
        ("message", "[DONE]"),
    ]


# --- Anthropic ----------------------------------------------------------------------------------


async def test_anthropic_request_translation(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    vendor.script(Json(200, anthropic_message("ok")))
    body = {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {"role": "assistant", "content": "A cat.  "},
            {"role": "developer", "content": [{"type": "text", "text": "Use JSON."}]},
            {"role": "user", "content": "More"},
            {"role": "user", "content": "please"},
        ],
        "max_completion_tokens": 99,
        "temperature": 1.7,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-1",
        "presence_penalty": 0.5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
    }
    out = await anthropic.chat(
        dep("anthropic", vendor.url, model="claude-x", headers={"anthropic-beta": "b1"}), body
    )
    assert out["choices"][0]["message"]["content"] == "ok"
    rec = vendor.requests[-1]
    assert rec["path"] == "/v1/messages"
    assert rec["headers"]["x-api-key"] == "sk-test"
    assert rec["headers"]["anthropic-version"] == "2023-06-01"
    assert rec["headers"]["anthropic-beta"] == "b1"
    sent = rec["body"]
    assert sent["model"] == "claude-x"
    assert sent["max_tokens"] == 99
    assert sent["temperature"] == 1.0  # clamped to Anthropic's range
    assert sent["top_p"] == 0.9
    assert sent["stop_sequences"] == ["END"]
    assert sent["metadata"] == {"user_id": "u-1"}
    assert "presence_penalty" not in sent and "stream" not in sent
    assert sent["system"][0] == {"type": "text", "text": "Be terse."}
    assert sent["system"][1] == {"type": "text", "text": "Use JSON."}
    assert "JSON schema" in sent["system"][2]["text"] and '{"type": "object"}' in sent["system"][2]["text"]
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A cat.  "}]},
        {"role": "user", "content": [{"type": "text", "text": "More"}, {"type": "text", "text": "please"}]},
    ]


async def test_anthropic_defaults_and_prefill(vendor: FakeVendor, backend: str) -> None:
    p = AnthropicProvider(default_max_tokens=321, backend=backend)
    vendor.script(Json(200, anthropic_message('"a": 1}')))
    msgs = [{"role": "user", "content": "json please"}, {"role": "assistant", "content": "{ \n"}]
    await p.chat(dep("anthropic", vendor.url + "/v1"), {"model": "c", "messages": msgs})
    await p.aclose()
    rec = vendor.requests[-1]
    assert rec["path"] == "/v1/messages"  # an api_base ending in /v1 is not doubled
    assert rec["body"]["max_tokens"] == 321
    assert rec["body"]["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "{"}]}
    assert "system" not in rec["body"] and "temperature" not in rec["body"]


async def test_anthropic_response_translation_usage(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 4,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    }
    vendor.script(Json(200, anthropic_message("Hi there", stop_reason="max_tokens", usage=usage)))
    out = await anthropic.chat(dep("anthropic", vendor.url), {"model": "c", "messages": USER})
    assert out["object"] == "chat.completion" and out["id"] == "msg_01" and out["model"] == "claude-test-1"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"] == {"role": "assistant", "content": "Hi there", "refusal": None}
    assert out["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 4,
        "total_tokens": 134,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 20},
    }


async def test_anthropic_tool_call_round_trip(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    d = dep("anthropic", vendor.url)
    vendor.script(
        Json(
            200,
            anthropic_message(
                None,
                tool_use={"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                stop_reason="tool_use",
            ),
        )
    )
    first = await anthropic.chat(
        d,
        {
            "model": "c",
            "messages": USER,
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
    )
    sent = vendor.requests[-1]["body"]
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": tools[0]["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    msg = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["content"] is None
    assert msg["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]

    vendor.script(Json(200, anthropic_message("Sunny in Paris.")))
    history = [
        *USER,
        msg,
        {"role": "tool", "tool_call_id": "toolu_1", "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "n/a"}]},
    ]
    second = await anthropic.chat(
        d, {"model": "c", "messages": history, "tools": tools, "tool_choice": "auto"}
    )
    assert second["choices"][0]["message"]["content"] == "Sunny in Paris."
    sent = vendor.requests[-1]["body"]
    assert sent["tool_choice"] == {"type": "auto"}
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"sky": "sunny"}'},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "n/a"}]},
        ],
    }


async def test_anthropic_stream_translation(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    vendor.script(
        Sse(
            anthropic_events(
                "Hel",
                "lo",
                tool=("toolu_9", "lookup", ['{"q":', ' "x"}']),
                stop_reason="tool_use",
                cache_read=5,
            )
        )
    )
    chunks = await collect(
        anthropic.chat_stream(dep("anthropic", vendor.url), {"model": "c", "messages": USER})
    )
    assert vendor.requests[-1]["body"]["stream"] is True
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "msg_stream" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "Hello"
    calls = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"q": "x"}'
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 17 and chunks[-1]["usage"]["completion_tokens"] == 7
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 5


async def test_anthropic_stream_without_message_stop(
    vendor: FakeVendor, anthropic: AnthropicProvider
) -> None:
    vendor.script(Sse(anthropic_events("a", "b", stop=False)))
    got, err = await collect_until_error(
        anthropic.chat_stream(dep("anthropic", vendor.url), {"messages": USER})
    )
    assert text_of(got) == "ab" and "stream ended before completion" in str(err)


async def test_anthropic_stream_dropped(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    vendor.script(Sse(anthropic_events("a", "b")[:4], abort=True))
    got, err = await collect_until_error(
        anthropic.chat_stream(dep("anthropic", vendor.url), {"messages": USER})
    )
    assert text_of(got) == "a" and "stream ended before completion" in str(err)


async def test_anthropic_stream_error_event(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    events = anthropic_events("a")[:4]
    events.append(
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    vendor.script(Sse(events))
    got, err = await collect_until_error(
        anthropic.chat_stream(dep("anthropic", vendor.url), {"messages": USER})
    )
    assert text_of(got) == "a"
    assert (err.message, err.upstream_status, err.retryable, err.error_type) == (
        "Overloaded",
        529,
        True,
        "overloaded_error",
    )


async def test_anthropic_http_errors(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    d = dep("anthropic", vendor.url)
    vendor.script(
        Json(
            400,
            {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too big"}},
        ),
        Json(
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            headers={"retry-after": "3"},
        ),
    )
    with pytest.raises(UpstreamError) as info:
        await anthropic.chat(d, {"messages": USER})
    assert (info.value.upstream_status, info.value.retryable) == (400, False)
    assert (info.value.message, info.value.error_type) == ("max_tokens: too big", "invalid_request_error")
    with pytest.raises(UpstreamError) as info:
        await anthropic.chat_stream(d, {"messages": USER}).__anext__()
    assert (info.value.upstream_status, info.value.retryable, info.value.upstream_retry_after) == (
        529,
        True,
        3.0,
    )


async def test_anthropic_unsupported(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    d = dep("anthropic", vendor.url)
    with pytest.raises(UpstreamError) as info:
        await anthropic.embeddings(d, {"input": "x"})
    assert info.value.upstream_status == 400 and not info.value.retryable
    assert "no embeddings endpoint" in info.value.message
    with pytest.raises(UpstreamError, match="n must be 1"):
        await anthropic.chat(d, {"messages": USER, "n": 2})
    with pytest.raises(UpstreamError, match="not valid JSON"):
        bad = {
            "role": "assistant",
            "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}],
        }
        await anthropic.chat(d, {"messages": [*USER, bad]})
    assert vendor.requests == []  # refused before anything was sent


async def test_anthropic_legacy_completion(vendor: FakeVendor, anthropic: AnthropicProvider) -> None:
    d = dep("anthropic", vendor.url)
    vendor.script(Json(200, anthropic_message("upon a time")), Sse(anthropic_events("up", "on")))
    out = await anthropic.completion(d, {"model": "c", "prompt": "Once", "max_tokens": 5})
    assert out["object"] == "text_completion" and out["choices"][0]["text"] == "upon a time"
    assert vendor.requests[-1]["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Once"}]}
    ]
    assert vendor.requests[-1]["body"]["max_tokens"] == 5
    chunks = await collect(anthropic.completion_stream(d, {"model": "c", "prompt": ["Once"]}))
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "upon"
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    with pytest.raises(UpstreamError, match="echo"):
        await anthropic.completion(d, {"prompt": "x", "echo": True})


# --- Gemini -------------------------------------------------------------------------------------

GEMINI_USAGE = {
    "promptTokenCount": 8,
    "candidatesTokenCount": 3,
    "thoughtsTokenCount": 2,
    "cachedContentTokenCount": 4,
    "totalTokenCount": 13,
}


async def test_gemini_request_translation(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(Json(200, gemini_response({"text": "ok"}, usage=GEMINI_USAGE)))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    body = {
        "model": "gemini-x",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                ],
            },
            {"role": "assistant", "content": "Seen."},
            {"role": "user", "content": "Again"},
        ],
        "temperature": 0.2,
        "top_p": 0.8,
        "max_tokens": 50,
        "stop": ["X"],
        "n": 2,
        "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": schema}},
            {"googleSearch": {}},
        ],
        "tool_choice": "required",
        "logit_bias": {"1": 2},
    }
    out = await gemini.chat(dep("gemini", vendor.url, model="gemini-x"), body)
    assert out["choices"][0]["message"]["content"] == "ok"
    rec = vendor.requests[-1]
    assert rec["path"] == "/v1beta/models/gemini-x:generateContent"
    assert rec["headers"]["x-goog-api-key"] == "sk-test"
    sent = rec["body"]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert sent["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Look"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
            ],
        },
        {"role": "model", "parts": [{"text": "Seen."}]},
        {"role": "user", "parts": [{"text": "Again"}]},
    ]
    assert sent["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.8,
        "maxOutputTokens": 50,
        "stopSequences": ["X"],
        "candidateCount": 2,
        "seed": 7,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert sent["tools"] == [
        {"functionDeclarations": [{"name": "f", "description": "d", "parametersJsonSchema": schema}]},
        {"googleSearch": {}},
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert "logit_bias" not in json.dumps(sent)


async def test_gemini_response_translation(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(
        Json(
            200,
            gemini_response(
                {"text": "thinking...", "thought": True},
                {"text": "Hi"},
                finish="MAX_TOKENS",
                usage=GEMINI_USAGE,
            ),
        )
    )
    out = await gemini.chat(
        dep("gemini", vendor.url + "/v1beta", model="models/gemini-x"), {"messages": USER}
    )
    assert vendor.requests[-1]["path"] == "/v1beta/models/gemini-x:generateContent"
    assert out["model"] == "gemini-test-001" and out["id"] == "resp-1"
    c = out["choices"][0]
    assert c["finish_reason"] == "length"
    assert c["message"]["content"] == "Hi" and c["message"]["reasoning_content"] == "thinking..."
    assert out["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 5,
        "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


async def test_gemini_blocked_prompt(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(
        Json(200, {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}})
    )
    out = await gemini.chat(dep("gemini", vendor.url), {"messages": USER})
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["usage"]["prompt_tokens"] == 3


async def test_gemini_tool_call_round_trip(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    d = dep("gemini", vendor.url)
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    vendor.script(
        Json(
            200,
            gemini_response(
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                    "thoughtSignature": "c2ln",
                },
                usage=GEMINI_USAGE,
            ),
        )
    )
    first = await gemini.chat(
        d,
        {
            "messages": USER,
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    )
    sent = vendor.requests[-1]["body"]
    assert sent["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": ""}]}]
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    msg = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["content"] is None
    (call,) = msg["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert call["id"].startswith("call_")

    vendor.script(Json(200, gemini_response({"text": "Cold."})))
    history = [*USER, msg, {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": -3}'}]
    await gemini.chat(d, {"messages": history})
    contents = vendor.requests[-1]["body"]["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": "c2ln"}
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": -3}}}],
    }
    with pytest.raises(UpstreamError, match="no earlier assistant tool call"):
        await gemini.chat(d, {"messages": [*USER, {"role": "tool", "tool_call_id": "zz", "content": "1"}]})


async def test_gemini_stream(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    events: list[tuple[str | None, Any]] = [
        (None, gemini_response({"text": "Hel"}, finish=None, usage={"promptTokenCount": 8})),
        (None, gemini_response({"text": "lo"}, finish=None)),
        (None, gemini_response({"text": "!"}, finish="STOP", usage=GEMINI_USAGE)),
    ]
    vendor.script(Sse(events))
    chunks = await collect(
        gemini.chat_stream(dep("gemini", vendor.url, model="gemini-x"), {"messages": USER})
    )
    rec = vendor.requests[-1]
    assert rec["path"] == "/v1beta/models/gemini-x:streamGenerateContent" and rec["query"] == "alt=sse"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert text_of(chunks) == "Hello!"
    assert [ch["finish_reason"] for c in chunks for ch in c["choices"]] == [None, None, "stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


async def test_gemini_stream_tool_call(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(
        Sse([(None, gemini_response({"functionCall": {"name": "f", "args": {"x": 1}}}, usage=GEMINI_USAGE))])
    )
    chunks = await collect(gemini.chat_stream(dep("gemini", vendor.url), {"messages": USER}))
    ch = chunks[0]["choices"][0]
    assert ch["finish_reason"] == "tool_calls"
    assert ch["delta"]["tool_calls"][0]["index"] == 0
    assert ch["delta"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}


async def test_gemini_stream_incomplete(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(Sse([(None, gemini_response({"text": "Hel"}, finish=None))]))
    got, err = await collect_until_error(gemini.chat_stream(dep("gemini", vendor.url), {"messages": USER}))
    assert text_of(got) == "Hel" and "stream ended before completion" in str(err)


async def test_gemini_stream_error_event(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(
        Sse(
            [
                (None, gemini_response({"text": "Hel"}, finish=None)),
                (
                    None,
                    {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
                ),
            ]
        )
    )
    got, err = await collect_until_error(gemini.chat_stream(dep("gemini", vendor.url), {"messages": USER}))
    assert len(got) == 1
    assert (err.message, err.upstream_status, err.retryable) == ("The model is overloaded.", 503, True)


async def test_gemini_errors(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    d = dep("gemini", vendor.url)
    vendor.script(
        Json(400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}),
        Json(
            429,
            {
                "error": {
                    "code": 429,
                    "message": "Quota exceeded",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}],
                }
            },
        ),
    )
    with pytest.raises(UpstreamError) as info:
        await gemini.chat(d, {"messages": USER})
    e = info.value
    assert (e.upstream_status, e.retryable, e.error_type, e.message) == (
        400,
        False,
        "invalid_request_error",
        "API key not valid.",
    )
    with pytest.raises(UpstreamError) as info:
        await gemini.chat(d, {"messages": USER})
    assert (info.value.upstream_status, info.value.retryable, info.value.upstream_retry_after) == (
        429,
        True,
        30.0,
    )


async def test_gemini_embeddings(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    d = dep("gemini", vendor.url, model="text-embedding-004")
    answer = {"embeddings": [{"values": [0.5, 0.25]}, {"values": [1.0, -2.0]}]}
    vendor.script(Json(200, answer), Json(200, answer))
    out = await gemini.embeddings(d, {"model": "text-embedding-004", "input": ["a", "b"], "dimensions": 2})
    rec = vendor.requests[-1]
    assert rec["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert rec["body"] == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "outputDimensionality": 2,
                "content": {"parts": [{"text": t}]},
            }
            for t in ("a", "b")
        ]
    }
    assert out["object"] == "list" and [x["embedding"] for x in out["data"]] == [[0.5, 0.25], [1.0, -2.0]]
    out = await gemini.embeddings(d, {"input": ["a", "b"], "encoding_format": "base64"})
    assert struct.unpack("<2f", base64.b64decode(out["data"][1]["embedding"])) == (1.0, -2.0)
    with pytest.raises(UpstreamError, match="not token ids"):
        await gemini.embeddings(d, {"input": [[1, 2, 3]]})


async def test_gemini_legacy_completion(vendor: FakeVendor, gemini: GeminiProvider) -> None:
    vendor.script(Json(200, gemini_response({"text": "upon"}, usage=GEMINI_USAGE)))
    out = await gemini.completion(dep("gemini", vendor.url), {"prompt": "Once", "max_tokens": 4})
    assert out["choices"][0]["text"] == "upon" and out["usage"]["prompt_tokens"] == 8
    assert vendor.requests[-1]["body"]["generationConfig"] == {"maxOutputTokens": 4}
