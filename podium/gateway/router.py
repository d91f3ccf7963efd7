"""Routing: weighted choice among an alias's deployments, retries, fallbacks, cooldowns.

For one request the router walks the chain ``alias, *alias.fallbacks``. Within an alias it
orders the deployments by a weighted random draw (weights 9:1 send ~90% of first tries to
the first: the basis for canaries), skipping deployments in cooldown. Each deployment is
tried ``1 + max_retries`` times on retryable failures (429, 5xx, network errors,
timeouts) with exponential backoff and jitter, honouring the upstream's Retry-After when
it is shorter than ``max_backoff`` (otherwise the next deployment is tried at once).
401/403/404 from an upstream move to the next deployment without retrying (a
misconfigured deployment); any other 4xx is the caller's fault and is returned as is.
A deployment that fails ``allowed_fails`` times in a row rests for ``cooldown`` seconds.
When every deployment of the chain is cooling down they are tried anyway (better a slow
answer than none).

Streams fail over the same way until their first chunk arrives; after that a failure is
the caller's to see (the route sends an SSE error event, never a truncated 200).

``before(deployment)``, when given, is awaited before the first try of each deployment;
the gateway uses it to top up the request's budget reservation when a fallback is dearer
than what was reserved. Whatever it raises ends the request (no further deployments).
``bind(deployment)``, when given, is awaited next and returns the deployment to call (the local
provider binds a ``registry:/NAME@ALIAS`` model to the version it points at now); what it raises
ends the request too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from podium.errors import UpstreamError
from podium.gateway.config import ModelAlias, RouterSpec
from podium.gateway.providers.base import Deployment, Provider

__all__ = ["Attempt", "Routed", "Router"]

logger = logging.getLogger("podium.gateway")

_SKIP_STATUSES = frozenset({401, 403, 404})
_T = TypeVar("_T")
Before = Callable[[Deployment], Awaitable[None]]
Bind = Callable[[Deployment], Awaitable[Deployment]]


@dataclass(slots=True)
class Attempt:
    deployment: str
    ok: bool
    status: int | None = None
    error: str | None = None
    ms: float = 0.0


@dataclass(slots=True)
class Routed:
    """What the router did for one request: the deployment that answered and every attempt."""

    deployment: Deployment | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def fallback(self) -> bool:
        """True when the answer came from a fallback alias, not the requested one."""
        return bool(self.attempts) and self.deployment is not None and self.deployment.alias != self._first_alias

    _first_alias: str = ""


class Router:
    def __init__(
        self,
        providers: dict[str, Provider],
        spec: RouterSpec,
        *,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.providers = providers
        self.spec = spec
        self._rng = rng
        self._clock = clock
        self._sleep = sleep
        self._fails: dict[str, int] = {}
        self._cool_until: dict[str, float] = {}

    # --- health ------------------------------------------------------------------------------
    def cooling(self, dep: Deployment) -> bool:
        until = self._cool_until.get(dep.id)
        return until is not None and until > self._clock()

    def _ok(self, dep: Deployment) -> None:
        if self._fails.get(dep.id):
            self._fails[dep.id] = 0
            self._cool_until.pop(dep.id, None)

    def _failed(self, dep: Deployment) -> None:
        n = self._fails.get(dep.id, 0) + 1
        self._fails[dep.id] = n
        if n >= self.spec.allowed_fails and self.spec.cooldown > 0:
            self._cool_until[dep.id] = self._clock() + self.spec.cooldown
            logger.warning("deployment %s failed %d times in a row; cooling down for %gs", dep.id, n,
                           self.spec.cooldown)

    def health(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {
            dep: {"consecutive_failures": n, "cooldown_left_s": max(0.0, self._cool_until.get(dep, now) - now)}
            for dep, n in self._fails.items()
        }

    # --- order ---------------------------------------------------------------------------------
    def order(self, alias: ModelAlias) -> list[Deployment]:
        deps = alias.deployments
        if len(deps) == 1:
            return list(deps)
        pool = list(deps)
        out: list[Deployment] = []
        while pool:
            total = sum(d.weight for d in pool)
            x = self._rng() * total
            for i, d in enumerate(pool):
                x -= d.weight
                if x < 0 or i == len(pool) - 1:
                    out.append(pool.pop(i))
                    break
        return out

    def plan(self, chain: list[ModelAlias]) -> list[Deployment]:
        ordered = [d for a in chain for d in self.order(a)]
        healthy = [d for d in ordered if not self.cooling(d)]
        return healthy or ordered

    def _backoff(self, attempt: int, err: UpstreamError) -> float | None:
        """Seconds to wait before retrying the same deployment; None: move on instead."""
        ra = err.upstream_retry_after
        if ra is not None:
            return ra if ra <= self.spec.max_backoff else None
        base = min(self.spec.max_backoff, self.spec.backoff * (2**attempt))
        return base * (0.5 + self._rng() / 2)

    # --- calls ---------------------------------------------------------------------------------
    async def call(self, chain: list[ModelAlias], op: str, body: dict[str, Any], routed: Routed, *,
                   before: Before | None = None, bind: Bind | None = None) -> dict[str, Any]:
        """Run ``provider.<op>(deployment, body)`` along the chain until one answers."""

        async def attempt(dep: Deployment, req: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = await getattr(self.providers[dep.provider], op)(dep, req)
            return out

        return await self._run(chain, body, routed, attempt, before, bind)

    async def stream(
        self, chain: list[ModelAlias], op: str, body: dict[str, Any], routed: Routed, *,
        before: Before | None = None, bind: Bind | None = None,
    ) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
        """Open a stream along the chain; returns its first chunk and the rest of it."""

        async def attempt(dep: Deployment, req: dict[str, Any]) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
            it = getattr(self.providers[dep.provider], op)(dep, req)
            try:
                first: dict[str, Any] = await it.__anext__()
            except StopAsyncIteration:
                await _close(it)
                raise UpstreamError(f"{dep.id} closed the stream without sending anything", retryable=True)
            except BaseException:
                await _close(it)
                raise
            return first, it

        return await self._run(chain, body, routed, attempt, before, bind)

    async def _run(self, chain: list[ModelAlias], body: dict[str, Any], routed: Routed,
                   attempt: Callable[[Deployment, dict[str, Any]], Awaitable[_T]],
                   before: Before | None = None, bind: Bind | None = None) -> _T:
        routed._first_alias = chain[0].name
        last: UpstreamError | None = None
        for dep in self.plan(chain):
            if before is not None:
                await before(dep)
            if bind is not None:
                dep = await bind(dep)
            req = {**body, "model": dep.model}
            for n in range(dep.max_retries + 1):
                t0 = time.perf_counter()
                try:
                    out = await attempt(dep, req)
                except UpstreamError as e:
                    last = e
                    routed.attempts.append(Attempt(dep.id, False, e.upstream_status, e.message,
                                                   (time.perf_counter() - t0) * 1000))
                    if not e.retryable and e.upstream_status not in _SKIP_STATUSES:
                        raise
                    self._failed(dep)
                    if e.upstream_status in _SKIP_STATUSES or n == dep.max_retries:
                        break
                    wait = self._backoff(n, e)
                    if wait is None:
                        break
                    await self._sleep(wait)
                    continue
                routed.attempts.append(Attempt(dep.id, True, 200, None, (time.perf_counter() - t0) * 1000))
                routed.deployment = dep
                self._ok(dep)
                return out
        raise _exhausted(chain, routed, last)


async def _close(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a failed stream must not mask the failure
            pass


def _exhausted(chain: list[ModelAlias], routed: Routed, last: UpstreamError | None) -> UpstreamError:
    names = " -> ".join(a.name for a in chain)
    tried = "; ".join(
        f"{a.deployment}: {a.status or 'no answer'} {a.error or ''}".strip() for a in routed.attempts[-5:]
    )
    msg = f"every deployment of {names} failed after {len(routed.attempts)} attempt(s): {tried}"
    cls = type(last) if last is not None else UpstreamError
    err = cls(msg, upstream_status=last.upstream_status if last else None, retryable=False)
    return err
