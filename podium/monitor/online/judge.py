"""LLM judges for online rules: calls through the in-process gateway, paced per model.

:class:`GatewayJudges` hands each judge scorer a ``chat(messages, **kw)`` callable (what
:class:`podium.evals.JudgeModel` accepts) that sends the request through
:meth:`podium.gateway.service.Gateway.call` as the rule's project, so the gateway's routing,
limits, budgets, cache and trace logging apply (the judge's own traces carry the tag
``podium:online-eval`` and are never evaluated themselves). Each model alias has one
:class:`~podium.evals.limiter.AimdLimiter`: concurrency grows by one per window of successes and
halves on a 429 (from the gateway's limits or the upstream), pausing for ``Retry-After``.
The cost of every call (the gateway's price of its usage) is added to the rule's
:class:`JudgeUsage`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from podium.errors import TooManyRequests, UpstreamError
from podium.evals.limiter import AimdLimiter
from podium.store.repos.online_evals import JUDGE_TAG
from podium.store.repos.projects import ApiKey

__all__ = ["GatewayJudges", "JudgeUsage", "ModelGate"]

T = TypeVar("T")


class JudgeUsage:
    """Calls and USD spent by one rule's judges since the last :meth:`take`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.cost = 0.0
        self.throttled = 0

    def add(self, cost: float, *, throttled: int = 0) -> None:
        with self._lock:
            self.calls += 1
            self.cost += cost
            self.throttled += throttled

    def take(self) -> tuple[int, float]:
        with self._lock:
            out = (self.calls, self.cost)
            self.calls, self.cost = 0, 0.0
        return out


class ModelGate:
    """An :class:`AimdLimiter` shared by threads: ``acquire`` blocks until a call may start."""

    def __init__(self, limiter: AimdLimiter) -> None:
        self.limiter = limiter
        self.in_flight = 0
        self._cv = threading.Condition()

    def acquire(self, timeout: float = 300.0) -> int:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                now = time.monotonic()
                wait = self.limiter.ready_in(now)
                if wait <= 0 and self.in_flight < self.limiter.allowed:
                    self.in_flight += 1
                    return self.limiter.started(now)
                if now >= deadline:
                    raise TooManyRequests("the judge model stayed rate limited; the trace is retried later",
                                          retry_after=5.0)
                self._cv.wait(min(max(wait, 0.01), 0.5, deadline - now))

    def done(self, *, epoch: int, throttled: bool = False, retry_after: float | None = None) -> float:
        with self._cv:
            self.in_flight -= 1
            pause = 0.0
            if throttled:
                pause = self.limiter.throttled(time.monotonic(), epoch=epoch, retry_after=retry_after)
            else:
                self.limiter.success()
            self._cv.notify_all()
        return pause


class _Loop:
    """Runs coroutines on the gateway's event loop (the server's), or on a private one."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._loop
        if loop is None or loop.is_closed():
            with self._lock:
                if self._loop is None or self._loop.is_closed():
                    self._loop = asyncio.new_event_loop()
                    threading.Thread(target=self._loop.run_forever, name="podium-online-judge", daemon=True).start()
                loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def _loop_of(gateway: Any) -> asyncio.AbstractEventLoop | None:
    """The loop a started gateway lives on (its spend flusher's task), so its HTTP clients are used
    from the loop that created them; None when it was never started (a private loop then)."""
    task = getattr(gateway, "_flusher", None)
    return task.get_loop() if task is not None else None


class GatewayJudges:
    """Judge callables over one :class:`~podium.gateway.service.Gateway` and the per-model gates."""

    def __init__(self, gateway: Any, *, max_concurrency: int = 8, rpm: float | None = None,
                 max_throttled: int = 8, timeout_s: float = 120.0,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.gateway = gateway
        self.max_concurrency = max_concurrency
        self.rpm = rpm
        self.max_throttled = max_throttled
        self.timeout_s = timeout_s
        self._gates: dict[str, ModelGate] = {}
        self._lock = threading.Lock()
        self._loop = _Loop(loop or _loop_of(gateway))

    def gate(self, model: str) -> ModelGate:
        with self._lock:
            g = self._gates.get(model)
            if g is None:
                g = self._gates[model] = ModelGate(AimdLimiter(self.max_concurrency, rpm=self.rpm, base_backoff=0.2))
            return g

    def chat_for(self, project_id: str, rule_id: str, usage: JudgeUsage) -> Any:
        """``chat(messages, **kw) -> dict``: one judge call as this project, paced by the model's gate."""
        key = ApiKey(id=f"online-eval:{rule_id}"[:64], project_id=project_id, public_key="online-eval",
                     secret_hint="", role="admin", note="online evaluation", created_at=datetime.now(UTC),
                     revoked_at=None, guardrails="off")

        def chat(messages: list[dict[str, str]], **kw: Any) -> dict[str, Any]:
            model = str(kw.get("model") or "local")
            body: dict[str, Any] = {"model": model, "messages": messages,
                                    **{k: v for k, v in kw.items() if k != "model" and v is not None},
                                    "podium": {"tags": [JUDGE_TAG], "metadata": {"online_eval_rule": rule_id}}}
            gate = self.gate(model)
            throttled = 0
            while True:
                epoch = gate.acquire()
                try:
                    out, cost = self._loop.run(self._call(key, body), self.timeout_s)
                except Exception as e:
                    limited, retry_after = _rate_limited(e)
                    pause = gate.done(epoch=epoch, throttled=limited, retry_after=retry_after)
                    if not limited or throttled >= self.max_throttled:
                        raise
                    throttled += 1
                    del pause  # the gate holds new starts back for the pause
                    continue
                gate.done(epoch=epoch)
                usage.add(cost, throttled=throttled)
                return out

        return chat

    async def _call(self, key: ApiKey, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        gw = self.gateway
        await gw.warm(key.project_id)
        call = gw.prepare(key, "chat", dict(body, podium=dict(body["podium"])), {})
        out = await gw.call(call)
        return out, float(call.cost or 0.0)


def _rate_limited(e: BaseException) -> tuple[bool, float | None]:
    if isinstance(e, TooManyRequests):
        return True, e.retry_after
    if isinstance(e, UpstreamError) and e.upstream_status == 429:
        return True, e.upstream_retry_after
    return False, None
