"""podium.openai against a real local server speaking the OpenAI protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

import podium
from podium.openai import AsyncOpenAI, OpenAI
from tests.sdk.fake_openai import REPLY, FakeOpenAI
from tests.sdk.sdk_fakes import FakeIngest

MESSAGES: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


@pytest.fixture
def oai(server: FakeOpenAI) -> Iterator[OpenAI]:
    client = OpenAI(base_url=server.base_url, api_key="sk-fake", max_retries=0)
    yield client
    client.close()


@pytest.fixture
async def aoai(server: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=server.base_url, api_key="sk-fake", max_retries=0)
    yield client
    await client.close()


def spans(ingest: FakeIngest) -> list[dict[str, Any]]:
    assert podium.flush(timeout=5).pending == 0
    return ingest.items()


def test_is_a_drop_in_subclass(oai: OpenAI) -> None:
    assert isinstance(oai, openai.OpenAI)
    assert isinstance(oai.chat.completions, openai.resources.chat.Completions)
    assert isinstance(oai.with_options(timeout=5), OpenAI)


def test_chat_completion(client: podium.Podium, ingest: FakeIngest, oai: OpenAI, server: FakeOpenAI) -> None:
    with podium.span("app") as app:
        response = oai.chat.completions.create(  # type: ignore[call-overload]  # podium_* kwargs
            model="gpt-test",
            messages=MESSAGES,
            temperature=0.2,
            max_tokens=10,
            podium_name="answer",
            podium_metadata={"feature": "chat"},
        )
    assert response.choices[0].message.content == REPLY
    assert "podium_name" not in server.requests[0]["body"]  # popped before the request
    span = next(s for s in spans(ingest) if s["name"] == "answer")
    assert span["kind"] == "generation"
    assert span["parent_id"] == app.id and span["trace_id"] == app.trace_id
    assert span["model"] == "gpt-test-2024"  # the response's model
    assert span["provider"] == "openai"
    assert span["model_parameters"] == {"temperature": 0.2, "max_tokens": 10}
    assert span["input"] == MESSAGES
    assert span["output"] == {"role": "assistant", "content": REPLY}
    assert span["usage"] == {
        "input_tokens": 5,
        "output_tokens": 2,
        "total_tokens": 7,
        "details": {"cached_tokens": 1},
    }
    assert span["metadata"] == {"feature": "chat"}
    assert span["start_time"] <= span["end_time"]


def test_chat_n_choices_and_tools(client: podium.Podium, ingest: FakeIngest, oai: OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    oai.chat.completions.create(model="m", messages=MESSAGES, n=2, tools=tools)
    (span,) = spans(ingest)
    assert span["name"] == "OpenAI.chat.completions"
    assert span["input"] == {"messages": MESSAGES, "tools": tools}
    assert [m["content"] for m in span["output"]] == [f"{REPLY} 0", f"{REPLY} 1"]


def test_api_error_is_recorded_and_reraised(client: podium.Podium, ingest: FakeIngest, oai: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="bad-model", messages=MESSAGES)
    assert info.value.status_code == 400
    (span,) = spans(ingest)
    assert span["status"] == "error"
    assert "BadRequestError" in span["status_message"] and "model not found" in span["status_message"]


def test_chat_stream(client: podium.Podium, ingest: FakeIngest, oai: OpenAI) -> None:
    stream = oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces == ["Hel", "lo"]
    (span,) = spans(ingest)
    assert span["output"] == {"role": "assistant", "content": "Hello"}
    assert span["model"] == "m-2024"
    assert span["model_parameters"] == {"stream": True}
    assert span["start_time"] <= span["completion_start_time"] <= span["end_time"]
    assert "usage" not in span  # the server sent none; nothing was injected
    assert "stream_options" not in ingest.requests[0]["batch"][0]["body"]["model_parameters"]


def test_stream_closed_early_and_context_manager(
    client: podium.Podium, ingest: FakeIngest, oai: OpenAI
) -> None:
    with oai.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        assert stream.response.status_code == 200  # attributes pass through
    stream2 = oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    stream2.close()
    ended = spans(ingest)
    assert len(ended) == 2
    assert all("status" not in s for s in ended)


def test_stream_error_is_recorded(client: podium.Podium, ingest: FakeIngest, oai: OpenAI) -> None:
    stream = oai.chat.completions.create(model="stream-error", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError, match="upstream exploded"):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2
    (span,) = spans(ingest)
    assert span["status"] == "error" and "upstream exploded" in span["status_message"]
    assert span["output"] == {"role": "assistant", "content": "Hel"}


def test_legacy_completions_and_embeddings(client: podium.Podium, ingest: FakeIngest, oai: OpenAI) -> None:
    assert oai.completions.create(model="inst", prompt="Say hello").choices[0].text == "Hello"
    text = "".join(c.choices[0].text for c in oai.completions.create(model="inst", prompt="p", stream=True))
    assert text == "Hello"
    embedded = oai.embeddings.create(model="emb", input=["a", "b"])  # base64 by default in the SDK
    assert embedded.data[0].embedding == [0.5, 0.25, 0.125]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for span in spans(ingest):
        by_kind.setdefault(span["kind"], []).append(span)
    completion, streamed = sorted(by_kind["generation"], key=lambda s: s["start_time"])
    assert completion["input"] == "Say hello" and completion["output"] == "Hello"
    assert completion["usage"]["input_tokens"] == 2
    assert streamed["output"] == "Hello"
    (embedding,) = by_kind["embedding"]
    assert embedding["name"] == "OpenAI.embeddings"
    assert embedding["input"] == ["a", "b"]
    assert embedding["output"] == {"count": 2, "dimensions": 3}
    assert embedding["usage"] == {"input_tokens": 4, "total_tokens": 4}


def test_raw_response_still_works(client: podium.Podium, ingest: FakeIngest, oai: OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == REPLY
    (span,) = spans(ingest)
    assert span["kind"] == "generation"


def test_disabled_tracing_still_calls_openai(
    monkeypatch: pytest.MonkeyPatch, oai: OpenAI, server: FakeOpenAI
) -> None:
    monkeypatch.setenv("PODIUM_TRACING_ENABLED", "false")
    response = oai.chat.completions.create(model="m", messages=MESSAGES, podium_name="x")  # type: ignore[call-overload]
    assert response.choices[0].message.content == REPLY
    assert "podium_name" not in server.requests[0]["body"]


async def test_async_chat_and_stream(client: podium.Podium, ingest: FakeIngest, aoai: AsyncOpenAI) -> None:
    @podium.observe
    async def agent() -> str:
        response = await aoai.chat.completions.create(model="m", messages=MESSAGES)
        stream = await aoai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        parts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
        embedded = await aoai.embeddings.create(model="e", input="x")
        assert len(embedded.data) == 1
        return (response.choices[0].message.content or "") + "|" + "".join(parts)

    assert await agent() == f"{REPLY}|Hello"
    items = spans(ingest)
    root = next(s for s in items if s["name"] == "agent")
    children = [s for s in items if s["name"] != "agent"]
    assert len(children) == 3
    assert {s["parent_id"] for s in children} == {root["id"]}
    outputs = sorted(s["output"]["content"] for s in children if s["kind"] == "generation")
    assert outputs == ["Hello", REPLY]


async def test_async_stream_error_and_close(
    client: podium.Podium, ingest: FakeIngest, aoai: AsyncOpenAI
) -> None:
    stream = await aoai.chat.completions.create(model="stream-error", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    async with await aoai.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream2:
        await stream2.__anext__()
    with pytest.raises(openai.BadRequestError):
        await aoai.completions.create(model="bad-model", prompt="x")
    items = spans(ingest)
    assert len(items) == 3
    assert sorted(s.get("status", "none") for s in items) == ["error", "error", "none"]
