"""What a red-team run attacks: a gateway model, a registry prompt called through the gateway,
or any HTTP endpoint. Each target takes the conversation so far (user and assistant turns) and
returns the model's next answer; it adds its own system prompt.

A gateway that blocks a request with its guardrails (HTTP 400, code ``content_blocked``)
answers with an empty text marked ``blocked``: the attack did not get through, and no error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from podium.errors import PodiumError
from podium.redteam.config import GatewayTarget, HttpTarget, PromptTarget, RedteamConfig

__all__ = ["Answer", "ChatTarget", "HttpEndpointTarget", "PromptChatTarget", "Target", "TargetError", "make_target"]

Messages = list[dict[str, str]]


class TargetError(PodiumError):
    """The target could not answer (unreachable, an HTTP error, an answer without text)."""

    code = "target_error"


@dataclass
class Answer:
    text: str
    blocked: bool = False  # the target's own guardrails refused the request
    latency_ms: float = 0.0


def _error_text(r: httpx.Response) -> tuple[str, str | None]:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300], None
    err = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(err, Mapping):
        return str(err.get("message") or err)[:300], err.get("code")
    return str(body)[:300], None


class Target:
    """Base: an httpx client, timing, errors as :class:`TargetError`."""

    kind = "target"

    def __init__(self, timeout: float) -> None:
        self._http = httpx.AsyncClient(timeout=timeout)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    async def prepare(self) -> None:
        """Check what can be checked before the run (fetch a prompt)."""

    async def send(self, conversation: Messages) -> Answer:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, url: str, **kw: Any) -> httpx.Response:
        try:
            return await self._http.request(kw.pop("method", "POST"), url, **kw)
        except httpx.TimeoutException as e:
            raise TargetError(f"{url}: no answer within the timeout ({type(e).__name__}); raise the target's "
                              "`timeout` or lower `concurrency`") from e
        except httpx.HTTPError as e:
            raise TargetError(f"{url}: {type(e).__name__}: {e}; is the server running?") from e


class ChatTarget(Target):
    """A model through Podium's gateway (or any OpenAI-compatible ``/v1/chat/completions``)."""

    kind = "gateway"

    def __init__(self, cfg: GatewayTarget | PromptTarget, *, base_url: str, api_key: str | None,
                 system_prompt: str | None) -> None:
        super().__init__(cfg.timeout)
        self.cfg = cfg
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.system_prompt = system_prompt
        self.model: str = getattr(cfg, "model", None) or "local"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url}

    def messages(self, conversation: Messages) -> Messages:
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*head, *conversation]

    def params(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.cfg.max_tokens, "temperature": self.cfg.temperature}

    async def send(self, conversation: Messages) -> Answer:
        body = {**self.params(), "messages": self.messages(conversation)}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        t0 = time.perf_counter()
        r = await self._post(f"{self.base_url}/v1/chat/completions", json=body, headers=headers)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            msg, code = _error_text(r)
            if r.status_code == 400 and code == "content_blocked":
                return Answer("", blocked=True, latency_ms=ms)
            hint = " (check the api_key / PODIUM_SECRET_KEY)" if r.status_code in (401, 403) else ""
            raise TargetError(f"{self.base_url}: HTTP {r.status_code}: {msg}{hint}")
        try:
            content = r.json()["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise TargetError(f"{self.base_url}: the answer is not a chat completion: {r.text[:200]}") from e
        return Answer(content or "", latency_ms=ms)


class PromptChatTarget(ChatTarget):
    """A registry prompt, compiled with the attack in its ``variable``, called through the gateway.
    Its own messages replace the run's system prompt; ``{{canary}}`` and ``{{pii}}`` variables,
    when the prompt has them, get the run's canary and fake personal data."""

    kind = "prompt"

    def __init__(self, cfg: PromptTarget, *, base_url: str, api_key: str | None, public_key: str | None,
                 canary: str, pii: str) -> None:
        super().__init__(cfg, base_url=base_url, api_key=api_key, system_prompt=None)
        self.pcfg = cfg
        self.public_key = public_key
        self.secrets = {"canary": canary, "pii": pii}
        self.prompt: Any = None
        self.variable = cfg.variable

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        v = self.prompt.version if self.prompt is not None else self.pcfg.version
        d.update(prompt=self.pcfg.name, version=v, label=self.pcfg.label)
        return d

    async def prepare(self) -> None:
        from podium.sdk.prompts import PromptClient

        def fetch() -> Any:
            pc = PromptClient(base_url=self.base_url, public_key=self.public_key, secret_key=self.api_key)
            try:
                return pc.get(self.pcfg.name, version=self.pcfg.version, label=self.pcfg.label, max_retries=1)
            finally:
                pc.close()

        try:
            self.prompt = await asyncio.to_thread(fetch)
        except PodiumError as e:
            raise TargetError(f"prompt {self.pcfg.name!r}: {e.message}") from e
        names = [v for v in self.prompt.variables if v not in self.secrets and v not in self.pcfg.variables]
        if self.variable is None:
            if not names:
                raise TargetError(f"prompt {self.pcfg.name!r} has no variable for the attack text; give "
                                  "target.prompt.variable, or add one such as {{input}} to the prompt")
            self.variable = names[0]
        self.model = self.pcfg.model or self.prompt.config.get("model") or "local"

    def params(self) -> dict[str, Any]:
        kw = {k: v for k, v in self.prompt.openai_kwargs(**self._vars("")).items() if k != "messages"}
        kw.setdefault("max_tokens", self.pcfg.max_tokens)
        kw.setdefault("temperature", self.pcfg.temperature)
        kw["model"] = self.model
        return kw

    def _vars(self, text: str) -> dict[str, Any]:
        assert self.variable is not None
        return {**self.secrets, **self.pcfg.variables, self.variable: text}

    def messages(self, conversation: Messages) -> Messages:
        first, rest = conversation[0]["content"], conversation[1:]
        compiled = self.prompt.compile(**self._vars(first))
        head = list(compiled) if self.prompt.type == "chat" else [{"role": "user", "content": compiled}]
        return [dict(m) for m in head] + rest


def _path(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(obj, list):
            obj = obj[int(part)]
        elif isinstance(obj, Mapping):
            obj = obj[part]
        else:
            raise KeyError(part)
    return obj


class HttpEndpointTarget(Target):
    """Any HTTP endpoint: the body template gets the attack, ``response_path`` finds the answer."""

    kind = "http"

    def __init__(self, cfg: HttpTarget, *, system_prompt: str | None) -> None:
        super().__init__(cfg.timeout)
        self.cfg = cfg
        self.system_prompt = system_prompt

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.cfg.url, "method": self.cfg.method}

    def _fill(self, node: Any, conversation: Messages) -> Any:
        msgs = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + conversation
        if isinstance(node, str):
            if node == "{{messages}}":
                return msgs
            return (node.replace("{{prompt}}", conversation[-1]["content"])
                    .replace("{{system_prompt}}", self.system_prompt or "")
                    .replace("{{messages_json}}", json.dumps(msgs)))
        if isinstance(node, list):
            return [self._fill(x, conversation) for x in node]
        if isinstance(node, Mapping):
            return {k: self._fill(v, conversation) for k, v in node.items()}
        return node

    async def send(self, conversation: Messages) -> Answer:
        body = self._fill(self.cfg.body, conversation)
        kw: dict[str, Any] = {"headers": self.cfg.headers, "method": self.cfg.method}
        if self.cfg.method == "GET":
            kw["params"] = body if isinstance(body, Mapping) else {"prompt": body}
        elif isinstance(body, str):
            kw["content"] = body.encode()
        else:
            kw["json"] = body
        t0 = time.perf_counter()
        r = await self._post(self.cfg.url, **kw)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code >= 400:
            msg, code = _error_text(r)
            if code == "content_blocked":
                return Answer("", blocked=True, latency_ms=ms)
            raise TargetError(f"{self.cfg.url}: HTTP {r.status_code}: {msg}")
        if not self.cfg.response_path:
            return Answer(r.text, latency_ms=ms)
        try:
            value = _path(r.json(), self.cfg.response_path)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise TargetError(f"{self.cfg.url}: response_path {self.cfg.response_path!r} is not in the answer: "
                              f"{r.text[:200]}") from e
        return Answer(value if isinstance(value, str) else json.dumps(value), latency_ms=ms)


def make_target(cfg: RedteamConfig, *, base_url: str | None = None, api_key: str | None = None,
                public_key: str | None = None) -> Target:
    """The configured target; ``base_url`` / ``api_key`` / ``public_key`` are the defaults
    (``PODIUM_BASE_URL`` and the project's keys) for gateway and prompt targets."""
    t = cfg.target
    if t.gateway is not None:
        url = t.gateway.base_url or base_url
        if not url:
            raise TargetError("target.gateway: no base_url (set it, or PODIUM_BASE_URL)")
        return ChatTarget(t.gateway, base_url=url, api_key=t.gateway.api_key or api_key,
                          system_prompt=cfg.rendered_system_prompt())
    if t.prompt is not None:
        url = t.prompt.base_url or base_url
        if not url:
            raise TargetError("target.prompt: no base_url (set it, or PODIUM_BASE_URL)")
        return PromptChatTarget(t.prompt, base_url=url, api_key=t.prompt.api_key or api_key,
                                public_key=t.prompt.public_key or public_key, canary=cfg.canary or "",
                                pii=cfg.pii_text())
    assert t.http is not None
    return HttpEndpointTarget(t.http, system_prompt=cfg.rendered_system_prompt())
