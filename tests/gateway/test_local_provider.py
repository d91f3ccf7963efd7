"""The gateway's `local` provider: OpenAI shapes through the Provider protocol, streaming from the
worker thread, fair queueing of concurrent requests, cancellation, embeddings, perplexity."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from podium.config import Settings
from podium.errors import BadRequest, UpstreamError
from podium.gateway.providers.base import Deployment, Provider
from podium.gateway.providers.local import LocalProvider
from podium.inference import LocalChatModel, LocalEmbedder

CHAT = Deployment(alias="local", provider="local", model="smollm2-135m-instruct")
EMBED = Deployment(alias="local-embed", provider="local", model="minilm-l6-v2")
Q = [{"role": "user", "content": "What is the capital of France?"}]
LONG = [{"role": "user", "content": "List 100 animals, one per line."}]


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    # one thread: `make test` runs two xdist workers on two cores (see tests/inference/test_llama.py)
    p = LocalProvider(chat_model=LocalChatModel(n_threads=1), embedder=LocalEmbedder(n_threads=1))
    p.chat_model.load()
    yield p
    p.close()


def body(**kw: Any) -> dict[str, Any]:
    return {"model": CHAT.model, "temperature": 0, "seed": 1, **kw}


async def collect(it: Any) -> list[dict[str, Any]]:
    return [c async for c in it]


def text_of(chunks: list[dict[str, Any]]) -> str:
    out = []
    for c in chunks:
        for ch in c["choices"]:
            out.append(ch["delta"].get("content", "") if "delta" in ch else ch["text"])
    return "".join(out)


def test_is_a_provider_and_builds_from_settings(tmp_path: Any) -> None:
    p = LocalProvider(Settings(local_threads=1, local_context=1024, local_model_path=tmp_path / "m.gguf"))
    try:
        assert isinstance(p.name, str) and p.name == "local"
        _: Provider = p
        assert p.chat_model.n_threads == 1 and p.chat_model.n_ctx == 1024
        assert p.chat_model.model_path == tmp_path / "m.gguf"
        assert not p.chat_model.loaded and not p.embedder.loaded  # lazy
    finally:
        p.close()


@pytest.mark.slow
async def test_chat(provider: LocalProvider) -> None:
    r = await provider.chat(CHAT, body(messages=Q, max_tokens=16))
    assert r["object"] == "chat.completion"
    assert r["model"] == "local"  # the alias the caller used
    assert "Paris" in r["choices"][0]["message"]["content"]
    assert r["usage"]["prompt_tokens"] == provider.chat_model.count_chat_tokens(Q)


@pytest.mark.slow
async def test_chat_stream_matches_chat(provider: LocalProvider) -> None:
    b = body(messages=Q, max_tokens=24)
    whole = await provider.chat(CHAT, b)
    chunks = await collect(provider.chat_stream(CHAT, {**b, "stream": True, "stream_options": {"include_usage": True}}))
    assert text_of(chunks) == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == whole["usage"]
    assert all(c["model"] == "local" for c in chunks)


@pytest.mark.slow
async def test_completion_and_stream(provider: LocalProvider) -> None:
    b = {"model": CHAT.model, "prompt": "1, 2, 3, 4,", "max_tokens": 8, "temperature": 0, "logprobs": 2}
    whole = await provider.completion(CHAT, b)
    assert whole["object"] == "text_completion" and whole["model"] == "local"
    assert len(whole["choices"][0]["logprobs"]["tokens"]) == whole["usage"]["completion_tokens"]
    chunks = await collect(provider.completion_stream(CHAT, {**b, "stream": True}))
    assert text_of(chunks) == whole["choices"][0]["text"]


@pytest.mark.slow
async def test_eight_concurrent_chats_all_complete_correctly(provider: LocalProvider) -> None:
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"What is {i} plus {i}?"}]
               for i in range(8)]
    expected = [(await provider.chat(CHAT, body(messages=p, max_tokens=10)))["choices"][0]["message"]["content"]
                for p in prompts]

    async def streamed(i: int) -> str:
        return text_of(await collect(provider.chat_stream(CHAT, body(messages=prompts[i], max_tokens=10))))

    async def whole(i: int) -> str:
        r = await provider.chat(CHAT, body(messages=prompts[i], max_tokens=10))
        return str(r["choices"][0]["message"]["content"])

    got = await asyncio.wait_for(
        asyncio.gather(*(streamed(i) if i % 2 else whole(i) for i in range(8))), timeout=60
    )
    assert list(got) == expected


@pytest.mark.slow
async def test_closing_a_stream_stops_generation(provider: LocalProvider) -> None:
    stream = provider.chat_stream(CHAT, body(messages=LONG, max_tokens=2000))
    first = [await stream.__anext__() for _ in range(4)]
    assert all(c["choices"][0]["finish_reason"] is None for c in first)
    await stream.aclose()
    t0 = time.monotonic()
    r = await provider.completion(CHAT, {"prompt": "Hi", "max_tokens": 1})  # queued behind the stream's worker
    assert r["usage"]["completion_tokens"] == 1
    assert time.monotonic() - t0 < 5.0  # the 2000 tokens would take 30 s or more


@pytest.mark.slow
async def test_cancelling_a_request_stops_generation(provider: LocalProvider) -> None:
    task = asyncio.create_task(provider.chat(CHAT, body(messages=LONG, max_tokens=2000)))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    t0 = time.monotonic()
    await provider.completion(CHAT, {"prompt": "Hi", "max_tokens": 1})
    assert time.monotonic() - t0 < 5.0


async def test_bad_requests_fail_before_the_first_chunk(provider: LocalProvider) -> None:
    with pytest.raises(BadRequest) as e:
        await provider.chat_stream(CHAT, body(messages=Q, n=3)).__anext__()
    assert e.value.details[0]["field"] == "n"
    with pytest.raises(BadRequest):
        await provider.chat(CHAT, body(messages=Q, temperature=9))
    with pytest.raises(BadRequest):
        await provider.completion_stream(CHAT, {"prompt": [1, 2, 3]}).__anext__()
    with pytest.raises(BadRequest, match="embedding model"):
        await provider.chat(EMBED, body(messages=Q))
    with pytest.raises(BadRequest, match="chat model"):
        await provider.embeddings(CHAT, {"input": "x"})


@pytest.mark.slow
async def test_embeddings(provider: LocalProvider) -> None:
    one = await provider.embeddings(EMBED, {"model": EMBED.model, "input": "A man is eating food."})
    assert one["object"] == "list" and one["model"] == "local-embed"
    assert len(one["data"]) == 1 and len(one["data"][0]["embedding"]) == 384
    assert one["usage"] == {"prompt_tokens": 6, "total_tokens": 6}

    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    many = await provider.embeddings(EMBED, {"input": texts})
    assert [d["index"] for d in many["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in many["data"])
    v = np.asarray([d["embedding"] for d in many["data"]])
    assert float(v[0] @ v[1]) == pytest.approx(0.753, abs=0.01)
    assert many["usage"]["prompt_tokens"] == sum(provider.embedder.count_tokens(t) for t in texts)

    b64 = await provider.embeddings(EMBED, {"input": texts, "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(b64["data"][1]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, v[1], atol=1e-7)
    same = await provider.embeddings(EMBED, {"input": texts, "dimensions": 384})
    assert len(same["data"][0]["embedding"]) == 384


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": []}, "input"),
        ({"input": ""}, "input"),
        ({"input": ["ok", ""]}, "input"),
        ({"input": None}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
async def test_bad_embedding_requests(provider: LocalProvider, extra: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as e:
        await provider.embeddings(EMBED, {"model": EMBED.model, **extra})
    assert e.value.details[0]["field"] == field


@pytest.mark.slow
async def test_dimensions_are_not_supported(provider: LocalProvider) -> None:
    with pytest.raises(BadRequest) as e:
        await provider.embeddings(EMBED, {"input": "x", "dimensions": 128})
    assert e.value.details[0]["field"] == "dimensions"


@pytest.mark.slow
async def test_perplexity(provider: LocalProvider) -> None:
    natural = await provider.perplexity("The sun rises in the east and sets in the west.", model="local")
    shuffled = await provider.perplexity("west the sets east and in rises the sun in the.", model="local")
    assert natural["object"] == "perplexity" and natural["model"] == "local"
    assert natural["perplexity"] * 3 < shuffled["perplexity"]
    assert all(t["logprob"] <= 0 for t in natural["tokens"])
    with pytest.raises(BadRequest):
        await provider.perplexity("")


@pytest.mark.slow
async def test_warm_and_close() -> None:
    p = LocalProvider(chat_model=LocalChatModel(n_threads=1), embedder=LocalEmbedder(n_threads=1))
    await p.warm(embeddings=True)
    assert p.chat_model.loaded and p.embedder.loaded
    stream = p.chat_stream(CHAT, body(messages=LONG, max_tokens=2000))
    await stream.__anext__()
    t0 = time.monotonic()
    await p.aclose()  # stops the running generation instead of waiting for 2000 tokens
    assert time.monotonic() - t0 < 5.0
    with pytest.raises(UpstreamError, match="shut down"):  # the stream ends in an error, not a silent cut
        async for _ in stream:
            pass
    with pytest.raises(UpstreamError, match="closed"):
        await p.chat(CHAT, body(messages=Q))
