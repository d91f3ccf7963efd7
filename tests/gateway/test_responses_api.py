"""``POST /v1/responses`` (OpenAI's Responses API) with the official `openai` SDK.

The SDK -> Podium (real uvicorn) -> the fake upstream, which speaks chat completions: the
gateway translates both ways. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.gateway.openai_app import client, wait_span

pytestmark = pytest.mark.integration

TEXT = "Hello from the fake upstream"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}




def test_text_response_is_translated_both_ways_and_traced(openai_gateway: Callable[..., LiveServer],
                                                          upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    raw = client(srv).responses.with_raw_response.create(
        model="fake", input="Say hello", instructions="Be brief.", max_output_tokens=50, temperature=0.3,
        metadata={"feature": "greeting"},
    )
    resp = raw.parse()
    assert resp.output_text == TEXT
    assert resp.object == "response" and resp.status == "completed" and resp.id.startswith("resp_")
    assert resp.output[0].type == "message" and resp.output[0].role == "assistant"
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (10, 5, 15)
    assert resp.instructions == "Be brief." and resp.max_output_tokens == 50
    sent = upstream.bodies("fake-a")[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    assert sent["max_completion_tokens"] == 50 and sent["temperature"] == 0.3
    assert "input" not in sent and "instructions" not in sent and "metadata" not in sent
    span = wait_span(srv, raw.headers["x-podium-trace-id"])
    assert span["name"] == "responses fake" and span["kind"] == "generation"
    assert span["metadata"]["gateway"]["endpoint"] == "responses"
    assert span["metadata"]["feature"] == "greeting"  # the request's metadata goes to the trace
    assert span["input_tokens"] == 10 and span["output_tokens"] == 5
    assert span["output"]["content"] == TEXT


def test_message_list_input_with_parts_and_history(openai_gateway: Callable[..., LiveServer],
                                                   upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    resp = client(srv).responses.create(model="fake", input=[
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"},
                                     {"type": "input_image", "image_url": "https://example.com/a.png"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": "And again?"},
    ])
    assert resp.output_text == TEXT
    assert upstream.bodies("fake-a")[-1]["messages"] == [
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "And again?"},
    ]


EXPECTED_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
]


def test_stream_is_the_responses_event_sequence(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    stream = client(srv).responses.create(model="fake", input="Say hello", stream=True)
    events = list(stream)
    assert [e.type for e in events] == EXPECTED_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    done = events[-1].response  # type: ignore[union-attr]
    assert done.status == "completed" and done.output_text == TEXT
    assert done.usage is not None and done.usage.total_tokens == 15
    assert events[0].response.status == "in_progress"  # type: ignore[union-attr]
    item_id = events[2].item.id  # type: ignore[union-attr]
    assert all(getattr(e, "item_id", item_id) == item_id for e in events)
    # the SDK's own stream helper accumulates the events into the final response
    with client(srv).responses.stream(model="fake", input="Say hello") as s:
        texts = [e.delta for e in s if e.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(texts) == TEXT and final.output_text == TEXT


def test_stream_sse_has_event_names_and_no_done_marker(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    with srv.client() as c, c.stream("POST", "/v1/responses",
                                     json={"model": "fake", "input": "Hi", "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    names = [ln[7:] for ln in lines if ln.startswith("event: ")]
    datas = [json.loads(ln[6:]) for ln in lines if ln.startswith("data: ")]
    assert names == [d["type"] for d in datas] == EXPECTED_EVENTS


def test_function_tool_round_trip(openai_gateway: Callable[..., LiveServer], upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    c = client(srv)
    upstream.script("fake-a", Reply(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}]),
                    Reply("It is sunny in Paris"))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = c.responses.create(model="fake", input=[question], tools=[WEATHER],  # type: ignore[list-item]
                               tool_choice="auto")
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and first.output_text == ""
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == "call_fake_0" and call.status == "completed"
    sent = upstream.bodies("fake-a")[-1]
    assert sent["tools"] == [{"type": "function", "function": {k: WEATHER[k] for k in
                                                               ("name", "description", "parameters")}}]
    assert sent["tool_choice"] == "auto"
    # the caller runs the tool and sends the call and its output back
    second = c.responses.create(model="fake", tools=[WEATHER], input=[  # type: ignore[list-item]
        question, *[o.model_dump(exclude_none=True) for o in first.output],  # type: ignore[misc]
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"},
    ])
    assert second.output_text == "It is sunny in Paris"
    msgs = upstream.bodies("fake-a")[-1]["messages"]
    assert msgs[1]["role"] == "assistant" and msgs[1]["tool_calls"] == [
        {"id": "call_fake_0", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_fake_0", "content": "sunny, 24 C"}


def test_function_call_stream(openai_gateway: Callable[..., LiveServer], upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    upstream.script("fake-a", Reply(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}]))
    with client(srv).responses.stream(model="fake", input="Weather in Paris?",
                                      tools=[WEATHER]) as s:  # type: ignore[list-item]
        types = [e.type for e in s]
        final = s.get_final_response()
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types.count("response.function_call_arguments.delta") == 2
    assert types[-3:] == ["response.function_call_arguments.done", "response.output_item.done",
                          "response.completed"]
    call = final.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}


def test_cache_and_limits_apply_as_for_chat(openai_gateway: Callable[..., LiveServer], upstream: FakeUpstream) -> None:
    srv = openai_gateway(cache="memory")
    c = client(srv)
    a = c.responses.with_raw_response.create(model="fake", input="cache me", temperature=0)
    b = c.responses.with_raw_response.create(model="fake", input="cache me", temperature=0)
    assert a.headers["x-podium-cache"] == "miss" and b.headers["x-podium-cache"] == "hit"
    assert b.parse().output_text == TEXT and len(upstream.bodies("fake-a")) == 1
    stream = c.responses.create(model="fake", input="cache me", temperature=0, stream=True)
    events = list(stream)  # a streamed hit, replayed as events (the cached text in one delta)
    assert [e.type for e in events] == [t for i, t in enumerate(EXPECTED_EVENTS) if t != EXPECTED_EVENTS[i - 1]]
    assert events[-1].response.output_text == TEXT  # type: ignore[union-attr]
    assert len(upstream.bodies("fake-a")) == 1


def test_midstream_upstream_failure_is_error_and_failed_events(openai_gateway: Callable[..., LiveServer],
                                                               upstream: FakeUpstream) -> None:
    srv = openai_gateway()
    upstream.script("fake-a", Reply(TEXT, cut_after=2))
    events = list(client(srv).responses.create(model="fake", input="Hi", stream=True))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert "stream" in events[-2].message  # type: ignore[union-attr]
    assert events[-1].response.status == "failed" and events[-1].response.error is not None  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "fake"}, "input"),
    ({"model": "fake", "input": []}, "input"),
    ({"model": "fake", "input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    ({"model": "fake", "input": "hi", "tools": [{"type": "web_search"}]}, "tools.0"),
    ({"model": "fake", "input": [{"role": "robot", "content": "hi"}]}, "input.0.role"),
    ({"model": "fake", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0"),
    ({"model": "fake", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "fake", "input": "hi", "text": {"format": {"type": "xml"}}}, "text.format"),
])
def test_bad_requests_are_openai_400s_naming_the_param(openai_gateway: Callable[..., LiveServer], body: dict[str, Any],
                                                       param: str) -> None:
    srv = openai_gateway()
    with pytest.raises(openai.BadRequestError) as ei:
        client(srv).post("/responses", body=body, cast_to=dict)
    err = ei.value.body
    assert isinstance(err, dict) and err["param"] == param and err["type"] == "invalid_request_error"


def test_unknown_model_and_embedding_model(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    c = client(srv)
    with pytest.raises(openai.NotFoundError) as nf:
        c.responses.create(model="nope", input="hi")
    assert "fake" in nf.value.message  # lists the aliases
    with pytest.raises(openai.BadRequestError) as br:
        c.responses.create(model="fake-embed", input="hi")
    assert "embedding" in br.value.message


@pytest.mark.slow
def test_local_model_answers_responses(openai_gateway: Callable[..., LiveServer]) -> None:
    srv = openai_gateway()
    c = client(srv)
    resp = c.responses.create(model="local", input="What is the capital of France?", max_output_tokens=8,
                              temperature=0)
    assert resp.output_text.strip() and resp.usage is not None and 0 < resp.usage.output_tokens <= 8
    stream = c.responses.create(model="local", input="What is the capital of France?", max_output_tokens=8,
                                temperature=0, stream=True)
    events = list(stream)
    assert events[-1].type in ("response.completed", "response.incomplete")
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == resp.output_text
