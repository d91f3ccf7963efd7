"""podium.openai links generations to prompt versions (unit level: fake OpenAI, fake ingest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import podium
from podium.openai import OpenAI
from tests.sdk.fake_openai import FakeOpenAI
from tests.sdk.sdk_fakes import FakeIngest, make_client


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    fake = FakeIngest()
    yield fake
    podium.shutdown(timeout=2)
    fake.client.close()


@pytest.fixture
def oai() -> Iterator[tuple[OpenAI, FakeOpenAI]]:
    server = FakeOpenAI()
    client = OpenAI(base_url=server.base_url, api_key="sk-fake", max_retries=0)
    yield client, server
    client.close()
    server.close()


def spans(ingest: FakeIngest) -> list[dict[str, Any]]:
    assert podium.flush(timeout=5).pending == 0
    return ingest.items()


def test_prompt_messages_podium_prompt_and_fallback(ingest: FakeIngest, oai: tuple[OpenAI, FakeOpenAI]) -> None:
    make_client(ingest)
    client, server = oai
    chat = podium.Prompt(name="qa", type="chat", version=3, label="production",
                         prompt=[{"role": "user", "content": "{{q}}"}], config={"model": "gpt-x", "temperature": 0})
    text = podium.Prompt(name="summary", version=7, prompt="Summarise: {{doc}}")
    fallback = podium.Prompt(name="qa", prompt="{{q}}", is_fallback=True, fallback_reason="down")
    client.chat.completions.create(**chat.openai_kwargs(q="a"), podium_name="auto")  # type: ignore[call-overload]
    client.chat.completions.create(model="m", messages=chat.compile(q="b"), podium_name="compiled")  # type: ignore[call-overload]
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": text.compile(doc="d")}],
                                   podium_prompt=text, podium_name="explicit",  # type: ignore[call-overload]
                                   podium_metadata={"feature": "x"})
    client.chat.completions.create(**fallback.openai_kwargs(q="c"), model="m", podium_name="fallback")  # type: ignore[call-overload]
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "plain"}], podium_name="plain")  # type: ignore[call-overload]
    by = {s["name"]: s for s in spans(ingest)}
    assert (by["auto"]["prompt_name"], by["auto"]["prompt_version"]) == ("qa", 3)
    assert by["auto"]["metadata"] == {"prompt_label": "production"}
    assert by["auto"]["model_parameters"] == {"temperature": 0}
    assert (by["compiled"]["prompt_name"], by["compiled"]["prompt_version"]) == ("qa", 3)
    assert (by["explicit"]["prompt_name"], by["explicit"]["prompt_version"]) == ("summary", 7)
    assert by["explicit"]["metadata"] == {"feature": "x"}
    assert by["fallback"]["prompt_name"] == "qa" and "prompt_version" not in by["fallback"]
    assert by["fallback"]["metadata"] == {"prompt_fallback": True}
    assert "prompt_name" not in by["plain"]
    assert all(set(r["body"]) & {"podium_prompt", "podium_name", "podium_metadata"} == set() for r in server.requests)
    assert server.requests[0]["body"]["messages"] == [{"role": "user", "content": "a"}]
