"""An example Podium plugin: a scorer, a gateway provider, a guardrail scanner and an alert channel,
registered through the hooks."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from podium.plugins import hookimpl


@hookimpl
def register_scorers(register: Callable[..., Any]) -> None:
    from podium_example_plugin.scorer import WordCountBetween

    register("word-count-between", WordCountBetween, category="custom")


@hookimpl
def register_providers(register: Callable[..., Any]) -> None:
    register("echo", lambda settings: EchoProvider())


@hookimpl
def register_guardrails(register: Callable[..., Any]) -> None:
    from podium_example_plugin.scanner import NoPirates

    register("no-pirates", NoPirates, kinds=("input", "output"))


@hookimpl
def register_alert_channels(register: Callable[..., Any]) -> None:
    from podium_example_plugin.channel import FileChannel

    register("file", FileChannel, description=FileChannel.description)


def _last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


class EchoProvider:
    """Answers with the last user message upper-cased. Usage counts words."""

    name = "echo"

    def _answer(self, body: dict[str, Any]) -> tuple[str, dict[str, int]]:
        prompt = _last_user_text(body)
        text = prompt.upper()
        p, c = len(prompt.split()), len(text.split())
        return text, {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    async def chat(self, dep: Any, body: dict[str, Any]) -> dict[str, Any]:
        text, usage = self._answer(body)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": dep.model, "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]}

    async def chat_stream(self, dep: Any, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        text, usage = self._answer(body)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": dep.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

        yield chunk({"role": "assistant", "content": ""})
        for i, word in enumerate(text.split(" ")):
            yield chunk({"content": word if i == 0 else " " + word})
        yield chunk({}, "stop", usage=usage)

    async def completion(self, dep: Any, body: dict[str, Any]) -> dict[str, Any]:
        text = str(body.get("prompt") or "").upper()
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": dep.model, "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(text.split()),
                          "total_tokens": 2 * len(text.split())}}

    async def completion_stream(self, dep: Any, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield await self.completion(dep, body)

    async def embeddings(self, dep: Any, body: dict[str, Any]) -> dict[str, Any]:
        from podium.errors import BadRequest

        raise BadRequest("the echo provider does not do embeddings; route this alias to a real provider")

    async def aclose(self) -> None:
        return None
