"""Drop-in OpenAI clients that trace every call: ``from podium.openai import OpenAI``.

Needs the ``openai`` package (``pip install 'podium[openai]'``). See
:mod:`podium.sdk.integrations.openai` and ``docs/sdk.md``.
"""

from podium.sdk.integrations.openai import AsyncOpenAI, OpenAI

__all__ = ["AsyncOpenAI", "OpenAI"]
