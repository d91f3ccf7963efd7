"""The built-in gateway providers, registered through the plugin hook like any plugin's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podium.plugins.hookspecs import hookimpl


def _openai(settings: Any) -> Any:
    from podium.gateway.providers.openai import OpenAIProvider

    return OpenAIProvider()


def _anthropic(settings: Any) -> Any:
    from podium.gateway.providers.anthropic import AnthropicProvider

    return AnthropicProvider()


def _gemini(settings: Any) -> Any:
    from podium.gateway.providers.gemini import GeminiProvider

    return GeminiProvider()


def _local(settings: Any) -> Any:
    from podium.gateway.providers.local import LocalProvider

    return LocalProvider(settings)


@hookimpl
def register_providers(register: Callable[..., Any]) -> None:
    register("openai", _openai)
    register("anthropic", _anthropic)
    register("gemini", _gemini)
    register("local", _local)
