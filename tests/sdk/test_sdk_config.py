"""Podium(...) settings precedence, validation, and the lazily built default client."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

import podium
from podium.config import Settings
from podium.errors import ConfigurationError


def test_defaults_env_and_explicit_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    default = podium.Podium()
    assert default.base_url == "http://127.0.0.1:8700"
    assert default.enabled is True
    assert default._exporter.endpoint == "http://127.0.0.1:8700/api/v1/ingest"

    monkeypatch.setenv("PODIUM_BASE_URL", "http://env:1/")
    monkeypatch.setenv("PODIUM_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("PODIUM_FLUSH_AT", "7")
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", "pk-env")
    monkeypatch.setenv("PODIUM_SECRET_KEY", "sk-env")
    from_env = podium.Podium()
    assert from_env.base_url == "http://env:1"
    assert from_env.settings.sample_rate == 0.25 and from_env.settings.flush_at == 7
    assert from_env._exporter._auth == ("pk-env", "sk-env")

    explicit = podium.Podium(base_url="http://arg:2", flush_at=3, public_key="pk-arg")
    assert explicit.base_url == "http://arg:2" and explicit.settings.flush_at == 3
    assert explicit._exporter._auth == ("pk-arg", "sk-env")

    given = Settings(base_url="http://settings:3", flush_interval=9.0)
    from_settings = podium.Podium(settings=given, flush_at=2)
    assert from_settings.base_url == "http://settings:3"
    assert (from_settings.settings.flush_interval, from_settings.settings.flush_at) == (9.0, 2)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"sample_rate": 2}, "sample_rate"),
        ({"flush_at": 0}, "flush_at"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"timeout": -1}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"base_url": "localhost:8700"}, "http://"),
        ({"mask": "not callable"}, "mask"),
        ({"http_client": object()}, "http_client"),
    ],
)
def test_invalid_explicit_settings_raise(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        podium.Podium(**kwargs)  # type: ignore[arg-type]
    assert fragment in info.value.message
    with pytest.raises(ConfigurationError):
        podium.configure(**kwargs)


def test_async_http_client_is_refused() -> None:
    async_client = httpx.AsyncClient()
    try:
        with pytest.raises(ConfigurationError, match="AsyncClient"):
            podium.Podium(http_client=async_client)  # type: ignore[arg-type]
    finally:
        import asyncio

        asyncio.run(async_client.aclose())


def test_default_client_is_lazy_and_built_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.sdk.client import current_default

    assert current_default() is None
    monkeypatch.setenv("PODIUM_FLUSH_AT", "11")
    client = podium.get_client()
    assert client is podium.get_client()
    assert client.settings.flush_at == 11
    podium.shutdown()
    assert current_default() is None


def test_invalid_env_disables_tracing_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PODIUM_SAMPLE_RATE", "5")

    @podium.observe
    def f() -> int:
        return 1

    with caplog.at_level(logging.ERROR, logger="podium"):
        assert f() == 1
    assert podium.get_client().enabled is False
    assert any("PODIUM_SAMPLE_RATE" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError):
        podium.Podium()  # explicit construction still says so


def test_flush_without_any_client_is_empty() -> None:
    assert podium.flush() == podium.FlushResult(sent=0, dropped=0, failed=0, pending=0)


def test_import_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = (
        "import sys, threading, podium; "
        "assert threading.active_count() == 1; "
        "bad = [m for m in sys.modules if m.startswith(('podium.store', 'podium.server', 'podium.cli', "
        "'fastapi', 'sqlalchemy', 'openai'))]; "
        "assert not bad, bad; "
        "import logging; assert not logging.getLogger('podium').handlers; "
        "from podium.sdk.client import current_default; assert current_default() is None"
    )
    repo = Path(podium.__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={"PODIUM_SAMPLE_RATE": "9"}, cwd=repo, timeout=60
    )
