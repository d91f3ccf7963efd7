"""@observe, span(), context propagation, trace attributes, scores, sampling, kill switch."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

import podium
from podium.errors import ConfigurationError
from tests.sdk.sdk_fakes import FakeIngest, make_client

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def flushed(ingest: FakeIngest) -> dict[str, dict[str, Any]]:
    result = podium.flush(timeout=5)
    assert result.pending == 0
    return ingest.spans()


# --- the four kinds of functions -----------------------------------------------------------


def test_sync_function_captures_args_output_and_timing(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    def add(a: int, b: int = 0, *rest: int, scale: int = 1, **extra: Any) -> int:
        return (a + b + sum(rest)) * scale

    assert add(1, 2, 3, scale=2, note="x") == 12
    span = flushed(ingest)["add"]
    assert span["input"] == {"a": 1, "b": 2, "rest": [3], "scale": 2, "note": "x"}
    assert span["output"] == 12
    assert span["kind"] == "span"
    assert HEX16.match(span["id"]) and HEX32.match(span["trace_id"])
    assert "parent_id" not in span
    assert span["start_time"] <= span["end_time"]
    assert span["start_time"].endswith("+00:00")


def test_methods_skip_self_and_cls(client: podium.Podium, ingest: FakeIngest) -> None:
    class Agent:
        @podium.observe(name="agent.run", as_type="agent")
        def run(self, task: str) -> str:
            return task.upper()

        @classmethod
        @podium.observe(name="agent.make")
        def make(cls, n: int) -> int:
            return n

    assert Agent().run("go") == "GO"
    assert Agent.make(3) == 3
    spans = flushed(ingest)
    assert spans["agent.run"]["input"] == {"task": "go"}
    assert spans["agent.run"]["kind"] == "agent"
    assert spans["agent.make"]["input"] == {"n": 3}


async def test_async_function(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe(as_type="tool")
    async def fetch(url: str) -> dict[str, str]:
        await asyncio.sleep(0)
        with podium.span("inner"):
            pass
        return {"url": url}

    assert await fetch("u") == {"url": "u"}
    spans = flushed(ingest)
    assert spans["fetch"]["output"] == {"url": "u"}
    assert spans["fetch"]["kind"] == "tool"
    assert spans["inner"]["parent_id"] == spans["fetch"]["id"]


def test_generator_joins_strings_and_parents_inner_spans(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    def tokens(n: int) -> Any:
        for i in range(n):
            with podium.span(f"step{i}"):
                pass
            yield f"t{i}"

    @podium.observe
    def numbers() -> Any:
        yield 1
        yield 2

    assert podium.get_current_span_id() is None
    gen = tokens(2)
    assert next(gen) == "t0"
    assert podium.get_current_span_id() is None  # the generator's span does not leak to the consumer
    assert list(gen) == ["t1"]
    assert list(numbers()) == [1, 2]
    spans = flushed(ingest)
    assert spans["tokens"]["output"] == "t0t1"
    assert spans["numbers"]["output"] == [1, 2]
    assert spans["step0"]["parent_id"] == spans["tokens"]["id"]
    assert spans["step1"]["parent_id"] == spans["tokens"]["id"]


def test_generator_send_throw_close_and_return(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    def echo() -> Any:
        received: list[Any] = []
        try:
            while True:
                value = yield len(received)
                received.append(value)
        except KeyError:
            yield "caught"
        return received

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(KeyError("k")) == "caught"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == ["a"]

    @podium.observe
    def endless() -> Any:
        while True:
            yield "x"

    gen2 = endless()
    next(gen2)
    gen2.close()

    @podium.observe
    def failing() -> Any:
        yield "ok"
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        list(failing())

    spans = flushed(ingest)
    assert spans["echo"]["output"] == [0, 1, "caught"]
    assert "status" not in spans["echo"]
    assert spans["endless"]["output"] == "x"
    assert "status" not in spans["endless"]  # closing early is not an error
    assert spans["failing"]["status"] == "error"
    assert spans["failing"]["status_message"] == "RuntimeError: broken"


async def test_async_generator(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe(name="stream")
    async def stream(n: int) -> Any:
        for i in range(n):
            with podium.span(f"chunk{i}"):
                await asyncio.sleep(0)
            yield f"c{i}"

    @podium.observe
    async def broken() -> Any:
        yield 1
        raise ValueError("nope")

    assert [c async for c in stream(2)] == ["c0", "c1"]
    with pytest.raises(ValueError):
        async for _ in broken():
            pass
    agen = stream(5)
    assert await agen.__anext__() == "c0"
    await agen.aclose()

    spans: dict[str, list[dict[str, Any]]] = {}
    podium.flush(timeout=5)
    for body in ingest.items():
        spans.setdefault(body["name"], []).append(body)
    first, closed = sorted(spans["stream"], key=lambda s: s["start_time"])
    assert first["output"] == "c0c1"
    assert closed["output"] == "c0"
    assert {s["parent_id"] for s in spans["chunk0"]} == {first["id"], closed["id"]}
    assert spans["broken"][0]["status"] == "error"


# --- nesting, errors, context ------------------------------------------------------------


def test_nesting_builds_one_tree(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    def child() -> str | None:
        return podium.get_current_span_id()

    @podium.observe
    def root() -> tuple[str | None, str | None, str | None]:
        with podium.span("middle", kind="chain") as middle:
            inner_id = child()
            assert podium.get_current_span_id() == middle.id
        return podium.get_current_trace_id(), podium.get_current_span_id(), inner_id

    trace_id, root_id, child_id = root()
    assert podium.get_current_trace_id() is None
    spans = flushed(ingest)
    assert spans["root"]["id"] == root_id and spans["root"]["trace_id"] == trace_id
    assert spans["middle"]["parent_id"] == root_id
    assert spans["child"]["parent_id"] == spans["middle"]["id"]
    assert spans["child"]["id"] == child_id
    assert {s["trace_id"] for s in spans.values()} == {trace_id}

    root()
    podium.flush(timeout=5)
    assert len({s["trace_id"] for s in ingest.items()}) == 2  # a new root, a new trace


def test_exceptions_are_recorded_and_reraised_unchanged(client: podium.Podium, ingest: FakeIngest) -> None:
    class Custom(Exception):
        pass

    error = Custom("exact object")

    @podium.observe
    def fails() -> None:
        raise error

    with pytest.raises(Custom) as info:
        fails()
    assert info.value is error

    with pytest.raises(KeyError), podium.span("block"):
        raise KeyError("k")
    assert podium.get_current_span_id() is None

    spans = flushed(ingest)
    assert spans["fails"]["status"] == "error"
    assert spans["fails"]["status_message"] == "Custom: exact object"
    assert spans["block"]["status"] == "error"


async def test_asyncio_tasks_inherit_the_current_span(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    async def leaf(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        return i

    @podium.observe
    async def fan_out() -> list[int]:
        return list(await asyncio.gather(*(leaf(i) for i in range(3))))

    assert await fan_out() == [0, 1, 2]
    podium.flush(timeout=5)
    items = ingest.items()
    parent = next(s for s in items if s["name"] == "fan_out")
    leaves = [s for s in items if s["name"] == "leaf"]
    assert len(leaves) == 3
    assert {s["parent_id"] for s in leaves} == {parent["id"]}
    assert {s["trace_id"] for s in leaves} == {parent["trace_id"]}


def test_threads_need_the_context_passed(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    def work(i: int) -> int:
        return i

    with podium.span("root") as root:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(podium.wrap_context(work), range(4)))  # same wrapper, several threads at once
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(work, 10))
        thread.start()
        thread.join()
        bare = threading.Thread(target=work, args=(99,))
        bare.start()
        bare.join()

    podium.flush(timeout=5)
    works = {s["input"]["i"]: s for s in ingest.items() if s["name"] == "work"}
    for i in (0, 1, 2, 3, 10):
        assert works[i]["parent_id"] == root.id
        assert works[i]["trace_id"] == root.trace_id
    assert "parent_id" not in works[99]  # a thread without the context starts a new trace
    assert works[99]["trace_id"] != root.trace_id


def test_propagate_attributes_nests_and_merges(client: podium.Podium, ingest: FakeIngest) -> None:
    with podium.span("outside"):
        with podium.propagate_attributes(
            user_id="u1", session_id="s1", tags=["a"], metadata={"k": "v"}, release="1.2", environment="prod"
        ):
            with podium.span("first"):
                pass
            with (
                podium.propagate_attributes(
                    user_id="u2", tags=["b", "a"], metadata={"k2": 2}, trace_name="chat"
                ),
                podium.span("second"),
            ):
                pass
        with podium.span("after"):
            pass
    spans = flushed(ingest)
    first, second = spans["first"], spans["second"]
    assert (first["user_id"], first["session_id"], first["tags"]) == ("u1", "s1", ["a"])
    assert first["trace_metadata"] == {"k": "v"}
    assert (first["release"], first["environment"]) == ("1.2", "prod")
    assert (second["user_id"], second["session_id"], second["tags"]) == ("u2", "s1", ["a", "b"])
    assert second["trace_metadata"] == {"k": "v", "k2": 2}
    assert second["trace_name"] == "chat"
    for name in ("outside", "after"):
        assert "user_id" not in spans[name] and "tags" not in spans[name]


def test_span_update_and_update_current_span(client: podium.Podium, ingest: FakeIngest) -> None:
    with podium.span("gen", kind="generation", input={"q": "hi"}, metadata={"a": 1}) as s:
        s.update(
            output="hello",
            usage={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5, "cached_tokens": 1},
            model="m1",
            provider="local",
            model_parameters={"temperature": 0.1},
            metadata={"b": 2},
            cost={"total": 0.5},
            prompt_name="p",
            prompt_version=2,
        )
        podium.update_current_span(name="gen-renamed", status="ok", attributes={"x": 1})
    s.update(output="ignored after end")

    @podium.observe
    def explicit() -> str:
        podium.update_current_span(output="chosen")
        return "returned"

    explicit()
    podium.update_current_span(output="outside any span is a no-op")
    spans = flushed(ingest)
    gen = spans["gen-renamed"]
    assert gen["input"] == {"q": "hi"} and gen["output"] == "hello"
    assert gen["usage"] == {
        "input_tokens": 3,
        "output_tokens": 2,
        "total_tokens": 5,
        "details": {"cached_tokens": 1},
    }
    assert (gen["model"], gen["provider"], gen["kind"], gen["status"]) == ("m1", "local", "generation", "ok")
    assert gen["metadata"] == {"a": 1, "b": 2}
    assert gen["model_parameters"] == {"temperature": 0.1}
    assert gen["cost"] == {"total": 0.5}
    assert (gen["prompt_name"], gen["prompt_version"]) == ("p", 2)
    assert gen["attributes"] == {"x": 1}
    assert spans["explicit"]["output"] == "chosen"


def test_captured_lists_are_snapshots(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe
    def chat(messages: list[str]) -> list[str]:
        return messages

    history = ["hi"]
    chat(history)
    history.append("later")
    span = flushed(ingest)["chat"]
    assert span["input"] == {"messages": ["hi"]}
    assert span["output"] == ["hi"]


def test_capture_flags(client: podium.Podium, ingest: FakeIngest) -> None:
    @podium.observe(capture_input=False, capture_output=False)
    def secret(password: str) -> str:
        return password

    secret("hunter2")
    span = flushed(ingest)["secret"]
    assert "input" not in span and "output" not in span


def test_manual_span_without_with(client: podium.Podium, ingest: FakeIngest) -> None:
    s = podium.span("manual")
    assert podium.get_current_span_id() is None  # not current without `with`
    s.update(output=1)
    s.end()
    s.end()
    assert flushed(ingest)["manual"]["output"] == 1
    assert len(ingest.items()) == 1


def test_update_current_trace_sends_a_trace_item(client: podium.Podium, ingest: FakeIngest) -> None:
    with podium.span("root") as root:
        podium.update_current_trace(
            name="conversation",
            user_id="u",
            session_id="s",
            tags=["t"],
            metadata={"m": 1},
            input="q",
            output="a",
        )
    podium.update_current_trace(name="outside: ignored")
    podium.flush(timeout=5)
    traces = ingest.items("trace")
    assert traces == [
        {
            "id": root.trace_id,
            "name": "conversation",
            "user_id": "u",
            "session_id": "s",
            "tags": ["t"],
            "metadata": {"m": 1},
            "input": "q",
            "output": "a",
        }
    ]


def test_create_score_and_span_score(client: podium.Podium, ingest: FakeIngest) -> None:
    with podium.span("answer") as s:
        span_score = s.score("helpful", True, comment="nice")
    trace_score = podium.create_score("accuracy", 0.9, trace_id=s.trace_id, metadata={"judge": "m"})
    session_score = podium.create_score("mood", "happy", session_id="sess-1", id="score-1")
    assert podium.create_score("orphan", 1.0) is None  # needs a trace or a session: warned, not sent
    assert podium.create_score("bad", "text", trace_id=s.trace_id, data_type="numeric") is None
    podium.flush(timeout=5)
    scores = {b["name"]: b for b in ingest.items("score")}
    assert set(scores) == {"helpful", "accuracy", "mood"}
    assert scores["helpful"]["span_id"] == s.id and scores["helpful"]["trace_id"] == s.trace_id
    assert scores["helpful"]["data_type"] == "boolean" and scores["helpful"]["id"] == span_score
    assert scores["accuracy"]["value"] == 0.9 and scores["accuracy"]["metadata"] == {"judge": "m"}
    assert scores["accuracy"]["id"] == trace_score and scores["accuracy"]["source"] == "sdk"
    assert scores["mood"]["id"] == session_score == "score-1"
    assert scores["mood"]["data_type"] == "categorical"


# --- sampling and the kill switch ------------------------------------------------------------


def test_sample_rate_zero_keeps_context_but_sends_nothing(ingest: FakeIngest) -> None:
    make_client(ingest, sample_rate=0.0)

    @podium.observe
    def child() -> str | None:
        return podium.get_current_trace_id()

    with podium.span("root") as root:
        assert child() == root.trace_id  # children stay in the trace, they do not become roots
        assert root.score("s", 1.0) is None
    result = podium.flush(timeout=5)
    assert ingest.requests == []
    assert result.dropped == 0  # sampling out is not dropping


def test_sampling_is_per_trace_and_deterministic(ingest: FakeIngest) -> None:
    from podium.sdk.ids import is_sampled, sample_bound

    make_client(ingest, sample_rate=0.5)
    for _ in range(200):
        with podium.span("root"), podium.span("child"):
            pass
    podium.flush(timeout=5)
    by_trace: dict[str, set[str]] = {}
    for body in ingest.items():
        by_trace.setdefault(body["trace_id"], set()).add(body["name"])
    assert 40 < len(by_trace) < 160
    assert all(names == {"root", "child"} for names in by_trace.values())  # all or nothing
    bound = sample_bound(0.5)
    assert all(is_sampled(t, bound) for t in by_trace)
    assert is_sampled("0" * 16 + "7" + "f" * 15, bound) is True
    assert is_sampled("0" * 16 + "8" + "0" * 15, bound) is False
    assert is_sampled("f" * 32, sample_bound(1.0)) is True
    assert is_sampled("0" * 31 + "1", sample_bound(0.0)) is False


def test_kill_switch_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_TRACING_ENABLED", "false")
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", "pk")
    monkeypatch.setenv("PODIUM_SECRET_KEY", "sk")
    calls = []

    @podium.observe
    def f(x: int) -> int:
        calls.append(podium.get_current_span_id())
        return x * 2

    @podium.observe
    async def g() -> int:
        return 1

    @podium.observe
    def gen() -> Any:
        yield 1

    assert f(2) == 4
    assert asyncio.run(g()) == 1
    assert list(gen()) == [1]
    assert calls == [None]
    with podium.span("s", input="x") as s:
        assert s.update(output="y") is s
        assert podium.get_current_span_id() is None
        s.score("n", 1.0)
    with pytest.raises(ZeroDivisionError), podium.span("err"):
        _ = 1 / 0
    assert podium.create_score("n", 1.0, trace_id="t") is None
    assert podium.get_client().enabled is False
    assert podium.flush() == podium.FlushResult(0, 0, 0, 0)
    assert podium.get_client()._exporter._thread is None  # no worker was started


def test_invalid_kind_raises_at_decoration_but_not_at_runtime(
    client: podium.Podium, ingest: FakeIngest
) -> None:
    with pytest.raises(ConfigurationError):
        podium.observe(as_type="nonsense")
    with podium.span("odd", kind="nonsense"):  # type: ignore[arg-type]
        pass
    assert flushed(ingest)["odd"]["kind"] == "span"


def test_data_classes_and_models_in_inputs(client: podium.Podium, ingest: FakeIngest) -> None:
    @dataclass
    class Query:
        text: str
        k: int

    @podium.observe
    def search(q: Query, raw: bytes) -> set[int]:
        return {1}

    search(Query("hi", 3), b"\x00\x01")
    span = flushed(ingest)["search"]
    assert span["input"] == {"q": {"text": "hi", "k": 3}, "raw": "<bytes len=2>"}
    assert span["output"] == [1]
