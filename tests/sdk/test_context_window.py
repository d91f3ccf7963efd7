"""The conversation helper: context windows, budget arithmetic, each strategy, cost per turn,
the summary through a real gateway (a fake upstream model behind it), and its spans."""

from __future__ import annotations

import json
from typing import Any

import pytest

import podium
from podium.core.pricing import PriceTable
from podium.core.tokens import count_tokens
from podium.core.windows import context_window, known_windows
from podium.errors import ConfigurationError
from podium.sdk.conversation import SUMMARY_PREFIX, ContextTooLong, ContextWindow, fit_messages
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.sdk.sdk_fakes import FakeIngest

SYSTEM = {"role": "system", "content": "You are a helpful travel agent."}


def chat(turns: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [SYSTEM]
    for i in range(turns):
        out.append({"role": "user", "content": f"Question {i}: " + "tell me about the trains of Europe " * 5})
        out.append({"role": "assistant", "content": f"Answer {i}: " + "the trains run often and on time " * 5})
    return out


def test_context_windows() -> None:
    assert context_window("gpt-4o-2024-08-06") == 128_000
    assert context_window("openai/gpt-4o-mini") == 128_000
    assert context_window("GPT-4") == 8192 and context_window("gpt-4-32k") == 32768
    assert context_window("local") == 2048 and context_window("smollm2:135m") == 8192
    assert context_window("claude-3-5-haiku-20241022") == 200_000
    assert context_window("my-own-model") is None and context_window(None) is None
    prices = PriceTable.default()
    for model in known_windows():  # every window belongs to a model of the price table
        assert prices.lookup(model) is not None, model


def test_budget_arithmetic_and_bad_settings() -> None:
    w = ContextWindow("gpt-4", max_output_tokens=1000, reserve=192)
    assert (w.context_window, w.budget) == (8192, 7000)
    assert ContextWindow("anything", context_window=4096, max_output_tokens=96).budget == 4000
    with pytest.raises(ConfigurationError, match="pass context_window=TOKENS"):
        ContextWindow("my-own-model")
    with pytest.raises(ConfigurationError, match="leave no room"):
        ContextWindow("local", max_output_tokens=2048)
    with pytest.raises(ConfigurationError, match="unknown strategy 'drop'"):
        ContextWindow("local", strategy="drop")


def test_a_conversation_that_fits_is_unchanged() -> None:
    msgs = chat(2)
    fit = ContextWindow("gpt-4o-mini").fit(msgs)
    assert fit.messages == msgs and not fit.changed
    assert fit.tokens_before == fit.tokens_after == count_tokens(msgs)


def test_truncate_oldest_keeps_the_system_prompt_and_as_many_recent_turns_as_fit() -> None:
    msgs = chat(20)
    w = ContextWindow("gpt-4o-mini", context_window=700, max_output_tokens=100)
    fit = w.fit(msgs)
    assert fit.messages[0] == SYSTEM and fit.messages[-1] == msgs[-1]
    assert fit.messages[1:] == msgs[len(msgs) - len(fit.messages) + 1:]  # a contiguous recent tail
    assert fit.tokens_after <= w.budget == 600 < fit.tokens_before
    assert fit.dropped == len(msgs) - len(fit.messages) and fit.summarized == 0
    # maximal: one more (older) message would not fit
    longer = [SYSTEM, msgs[len(msgs) - len(fit.messages)], *fit.messages[1:]]
    assert w.count(longer) > w.budget


def test_cost_and_tokens_per_turn() -> None:
    fit = ContextWindow("gpt-4o-mini").fit(chat(3))
    price = PriceTable.default().lookup("gpt-4o-mini")
    assert price is not None
    assert sum(t.tokens for t in fit.turns) + 3 == fit.tokens_after  # + 3 priming the reply
    for t in fit.turns:
        assert t.cost == pytest.approx(t.tokens * float(price.input_per_million) / 1e6)
    assert fit.cost == pytest.approx(fit.tokens_after * float(price.input_per_million) / 1e6)
    assert ContextWindow("local").fit(chat(1)).cost == 0.0  # the local model costs nothing
    assert json.dumps(fit.to_dict())


def test_keep_last() -> None:
    msgs = chat(10)
    fit = ContextWindow("gpt-4o-mini", strategy="keep_last", keep_last=4).fit(msgs)
    assert fit.messages == [SYSTEM, *msgs[-4:]] and fit.dropped == len(msgs) - 5


def test_tool_results_never_lose_their_call() -> None:
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    msgs: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": "weather? " * 60}, call,
            {"role": "tool", "tool_call_id": "c1", "content": "sunny " * 40},
            {"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "Thanks!"}]
    fit = ContextWindow("gpt-4o-mini", strategy="keep_last", keep_last=3).fit(msgs)
    assert [m["role"] for m in fit.messages] == ["system", "assistant", "user"]  # the orphaned tool result went
    w = ContextWindow("gpt-4o-mini", context_window=count_tokens(msgs) - 10, max_output_tokens=1)
    fit = w.fit(msgs)
    assert [m["role"] for m in fit.messages][:3] == ["system", "assistant", "tool"]  # the call and its result
    assert fit.messages[1] == call


def test_too_long_even_alone() -> None:
    with pytest.raises(ContextTooLong, match="shorten them or lower max_output_tokens"):
        ContextWindow("local", max_output_tokens=200).fit([SYSTEM, {"role": "user", "content": "word " * 3000}])


def test_summarize_with_a_function() -> None:
    seen: list[Any] = []

    def summarizer(prompt: list[dict[str, Any]], model: str, max_tokens: int) -> str:
        seen.append((prompt, model, max_tokens))
        return "The user asked about European trains; they run often."

    msgs = chat(20)
    fit = fit_messages(msgs, "gpt-4o-mini", context_window=900, max_output_tokens=100, strategy="summarize",
                       keep_last=4, summarizer=summarizer)
    assert fit.messages[0] == SYSTEM
    assert fit.messages[1] == {"role": "system",
                               "content": SUMMARY_PREFIX + "The user asked about European trains; they run often."}
    assert fit.messages[2:] == msgs[-4:] and fit.summarized == len(msgs) - 5 and fit.dropped == 0
    prompt, model, max_tokens = seen[0]
    assert model == "gpt-4o-mini" and max_tokens == 256
    assert prompt[1]["content"].startswith("user: Question 0:") and "assistant: Answer 17:" in prompt[1]["content"]
    # a conversation that fits is not summarised
    assert not fit_messages(chat(1), "gpt-4o-mini", strategy="summarize", summarizer=summarizer).changed
    assert len(seen) == 1


def test_summarize_through_the_gateway_and_trace(server: LiveServer, upstream: FakeUpstream,
                                                 ingest: FakeIngest) -> None:
    """The summary call goes through Podium's gateway to a (fake) upstream model, and both the fit
    and the summary call are spans."""
    from tests.sdk.sdk_fakes import make_client

    with server.client() as c:
        r = c.put("/api/v1/gateway/models/fake", json={
            "deployments": [{"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "k"}]})
        assert r.status_code in (200, 201), r.text
    upstream.script("fake-a", Reply("They discussed trains in Europe.", prompt_tokens=321))
    make_client(ingest)
    msgs = chat(12)
    w = ContextWindow("fake", context_window=800, max_output_tokens=100, strategy="summarize", keep_last=2,
                      base_url=server.url, api_key=server.keys.secret_key)
    fit = w.fit(msgs)
    assert fit.summary == "They discussed trains in Europe." and fit.summarized == len(msgs) - 3
    assert fit.messages == [SYSTEM, {"role": "system", "content": SUMMARY_PREFIX + fit.summary}, *msgs[-2:]]
    body = upstream.bodies("fake-a")[0]
    assert body["messages"][0]["content"].startswith("Summarise the conversation below")
    assert body["max_tokens"] == 256 and "assistant: Answer 10:" in body["messages"][1]["content"]
    # the summariser's window (800 here: "fake" is not in the table) bounds the transcript: oldest lines go
    assert "Question 0:" not in body["messages"][1]["content"] and count_tokens(body["messages"]) <= 800 - 256
    assert podium.flush(timeout=5).pending == 0
    spans = ingest.spans()
    fit_span, summary_span = spans["context.fit"], spans["context.summarize"]
    assert fit_span["kind"] == "chain" and summary_span["kind"] == "generation"
    assert summary_span["parent_id"] == fit_span["id"]
    meta = fit_span["metadata"]
    assert meta["context.tokens_before"] == fit.tokens_before > meta["context.tokens_after"] == fit.tokens_after
    assert meta["context.strategy"] == "summarize" and meta["context.summarized_turns"] == fit.summarized
    assert meta["context.budget"] == 700 and meta["context.dropped_turns"] == 0
    assert summary_span["usage"]["input_tokens"] == 321 and summary_span["output"] == fit.summary
    # a wrong key: the error says what to check
    bad = ContextWindow("fake", context_window=800, max_output_tokens=100, strategy="summarize", keep_last=2,
                        base_url=server.url, api_key="sk-wrong")
    with pytest.raises(ConfigurationError, match="check PODIUM_BASE_URL and PODIUM_SECRET_KEY"):
        bad.fit(msgs)


def test_an_openai_client_as_summarizer() -> None:
    class Completions:
        def create(self, **kw: Any) -> Any:
            self.kw = kw
            msg = type("M", (), {"content": "short summary"})()
            usage = type("U", (), {"prompt_tokens": 50, "completion_tokens": 3})()
            return type("R", (), {"choices": [type("C", (), {"message": msg})()], "usage": usage})()

    completions = Completions()
    client = type("Client", (), {"chat": type("Chat", (), {"completions": completions})()})()
    fit = fit_messages(chat(20), "gpt-4o-mini", context_window=900, max_output_tokens=100, strategy="summarize",
                       summarizer=client, summary_model="gpt-4o-mini")
    assert fit.summary == "short summary" and fit.summary_usage == {"input_tokens": 50, "output_tokens": 3}
    assert completions.kw["model"] == "gpt-4o-mini" and completions.kw["temperature"] == 0
