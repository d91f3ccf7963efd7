"""The gateway's logic for one call, independent of HTTP.

``Gateway.call`` and ``Gateway.stream`` take an authenticated key, the endpoint and the
caller's JSON body, and do, in order: check the body, resolve the alias (and the key's
model allow-list), look up the cache, reserve limits and budgets, route to a deployment
(retries, fallbacks), settle the limits with the real usage and cost, store the answer
in the cache, count metrics, and hand a ``generation`` span to ``sink`` (the span log; never
awaited: while the log is full, a call waits for room before it starts, see :class:`LogRoom`).
With a guardrail policy (``podium.gateway.guardrails``), the input is scanned after the
limits are taken and before the cache and the upstream, the answer after it (a stream in
windows as it arrives); each decision is a ``guardrail`` span under the generation span,
with one score per rule.

The database is not touched on this path: aliases declared
through the API, key and project limits and prices are read through short
:class:`~podium.core.ttlcache.TTLCache` caches that :meth:`Gateway.warm` fills from a
worker thread before ``prepare`` (the route awaits it), so no SQL runs on the event loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from podium.config import Settings
from podium.core.pricing import ModelPrice, PriceTable, compute_cost
from podium.core.records import CostIn, ScoreDataType, ScoreIn, SpanIn, SpanKind, SpanStatus, UsageIn
from podium.core.roles import Action, key_roles_for
from podium.core.ttlcache import MISSING, TTLCache
from podium.errors import (
    BadRequest,
    ClientClosed,
    ConfigurationError,
    ContentBlocked,
    Forbidden,
    NotFound,
    PodiumError,
    TooManyRequests,
)
from podium.gateway import wire
from podium.gateway.cache import ResponseCache, cache_bypass, cache_key, make_cache
from podium.gateway.config import GatewayConfig, ModelAlias, load_config, parse_alias, resolve_alias
from podium.gateway.guardrails import (
    OFF,
    GuardedStream,
    Guards,
    ProjectGuardrails,
    context_documents,
    prompt_text,
    scan_input,
    scan_output,
)
from podium.gateway.limits import Limiter, Limits, Scope, make_limiter
from podium.gateway.metrics import GatewayMetrics
from podium.gateway.providers.base import Deployment, Provider
from podium.gateway.router import Routed, Router
from podium.gateway.secrets import SecretBox
from podium.guardrails.engine import Decision, Guard
from podium.guardrails.record import score_values, span_fields
from podium.store import Store
from podium.store.repos.projects import ApiKey

__all__ = ["ENDPOINTS", "Call", "Gateway", "LogRoom", "ensure_tokenizer"]

logger = logging.getLogger("podium.gateway")

#: endpoint -> (body check, router method, streaming router method, alias mode, chat-shaped?)
ENDPOINTS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str | None, str]] = {
    "chat": (wire.check_chat, "chat", "chat_stream", "chat"),
    "completion": (wire.check_completion, "completion", "completion_stream", "chat"),
    "embeddings": (wire.check_embeddings, "embeddings", None, "embedding"),
}
#: The action (``podium.core.roles``) every gateway endpoint performs.
GATEWAY_ACTION = Action.CALL_MODELS
_GATEWAY_ROLES = frozenset(key_roles_for(GATEWAY_ACTION))
_PARAMS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n", "presence_penalty",
           "frequency_penalty", "logprobs", "top_logprobs", "response_format", "tools", "tool_choice")
_TTL = 5.0
_M = TypeVar("_M", bound=BaseModel)


class LogRoom(Protocol):
    """The span log's back-pressure (``podium.server.gateway_log.GatewayLog``): a call waits for room
    before it starts while the log is ``full``."""

    @property
    def full(self) -> bool: ...

    async def wait_room(self) -> bool: ...

    def drop(self, n: int, reason: str) -> None: ...


@dataclass(slots=True)
class Call:
    """One request's state, shared by the route and the service."""

    key: ApiKey
    endpoint: str
    body: dict[str, Any]
    headers: dict[str, str]
    options: wire.PodiumOptions = field(default_factory=wire.PodiumOptions)
    chain: list[ModelAlias] = field(default_factory=list)
    routed: Routed = field(default_factory=Routed)
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.perf_counter)
    first_token: datetime | None = None
    cache_key: str | None = None
    cache_read: bool = False
    cache_write: bool = False
    cache_hit: bool = False
    trace_id: str = ""
    span_id: str = ""
    api: str | None = None  # the OpenAI API the caller used when it is not `endpoint` ("responses")
    usage: wire.Usage | None = None  # a stream's usage (the upstream's, or counted) once it has ended
    budgeted: bool = False  # a scope of this request has a budget: reservations are priced
    est_in: int = 0  # estimated prompt tokens
    max_out: int | None = None  # output tokens the caller allows (max_tokens x n); None: not set
    unpriced: bool = False  # the answering model has no price: budgets charged the fallback price
    cost: float | None = None  # USD of the answer, priced once here with the project's table (None: unpriced)
    guard: Guard | None = None  # the guardrail policy of this call (None: none)
    guarded: list[tuple[Decision, datetime]] = field(default_factory=list)  # decisions and when each started
    restore: Decision | None = None  # the input decision whose reversible redactions go back into the answer
    output_blocked: bool = False
    log_room: bool = True  # False: the span log was full and stayed full through the call's wait

    @property
    def alias(self) -> str:
        return self.chain[0].name if self.chain else str(self.body.get("model"))


class Gateway:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        sink: Callable[[str, SpanIn | ScoreIn], bool],
        prices: Callable[[str], PriceTable],
        providers: dict[str, Provider] | None = None,
        limiter: Limiter | None = None,
        cache: ResponseCache | bool | None = True,
        config: GatewayConfig | None = None,
        metrics: GatewayMetrics | None = None,
        prices_async: Callable[[str], Awaitable[PriceTable]] | None = None,
        log_room: LogRoom | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._sink = sink
        # The span log behind ``sink`` (a GatewayLog), when given: calls wait while it is full rather than
        # have their spans dropped (docs/gateway.md#what-is-logged).
        self._log: LogRoom | None = log_room
        self._prices = prices
        self._prices_async = prices_async
        self.config = config or load_config(settings.gateway_config, home=settings.home_dir)
        self.providers = providers if providers is not None else _default_providers(settings)
        self.router = Router(self.providers, self.config.router)
        self.limiter = limiter or make_limiter(settings.redis_url)
        if cache is True:
            cache = make_cache(settings.gateway_cache, redis_url=settings.redis_url,
                               max_entries=settings.gateway_cache_max_entries)
        self.cache: ResponseCache | None = None if cache is None or cache is False else cache  # (len() may be 0)
        self.metrics = metrics or GatewayMetrics(key_labels=settings.metrics_key_labels)
        self._box: SecretBox | None = None
        self._aliases: TTLCache[dict[str, ModelAlias]] = TTLCache(_TTL, max_entries=10_000)
        self._project_limits: TTLCache[Limits] = TTLCache(_TTL, max_entries=10_000)
        self._project_guardrails: TTLCache[ProjectGuardrails] = TTLCache(_TTL, max_entries=10_000)
        self.guards = Guards(self.config.guardrails_default, self.config.guardrail_policies, observer=_observer())
        self._spend: dict[tuple[str, str, str], float] = {}
        self._periods: tuple[int, tuple[str, str, str]] = (-1, ("", "", ""))  # (UTC day number, spend periods)
        self._unpriced: tuple[tuple[float, float], ModelPrice] | None = None
        self._key_scopes: dict[str, tuple[ApiKey, dict[str, Any], Scope]] = {}
        self._flusher: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.limiter.__class__.__name__ == "MemoryLimiter":
            await self._seed_spend()
        self._flusher = asyncio.create_task(self._flush_loop())

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self._flush_spend()
        for p in self.providers.values():
            try:
                await p.aclose()
            except Exception:
                logger.exception("closing provider %s", getattr(p, "name", p))
        await self.limiter.aclose()
        if self.cache is not None:
            await self.cache.aclose()

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox.from_settings(self.settings.encryption_key, self.settings.home_dir)
        return self._box

    # --- aliases ---------------------------------------------------------------------------------
    async def warm(self, project_id: str) -> None:
        """Make sure this project's aliases, limits and prices are cached, loading any that are
        not in a worker thread (concurrent requests share one load): after this, ``prepare``
        and the call run no SQL. Cheap when warm (three dictionary lookups)."""
        if self._aliases.peek(project_id) is MISSING:  # (a peek is cheaper than a coroutine per cache)
            await self._aliases.get_or_load(project_id, lambda: self._load_aliases(project_id))
        if self._project_limits.peek(project_id) is MISSING:
            await self._project_limits.get_or_load(project_id, lambda: self._load_limits(project_id))
        if self._project_guardrails.peek(project_id) is MISSING:
            await self._project_guardrails.get_or_load(project_id, lambda: self._load_guardrails(project_id))
        if self._prices_async is not None:
            await self._prices_async(project_id)

    def aliases(self, project_id: str) -> dict[str, ModelAlias]:
        return self._aliases.load(project_id, lambda: self._load_aliases(project_id))  # type: ignore[return-value]  # the loader never returns None

    def _load_aliases(self, project_id: str) -> dict[str, ModelAlias]:
        merged = dict(self.config.aliases)
        for row in self.store.gateway.list_models(project_id):
            try:
                spec = parse_alias({**row["spec"], "name": row["name"]})
                merged[row["name"]] = resolve_alias(spec, self.config.router, "api", self.box.decrypt,
                                                    env_allowed=self.settings.gateway_env_names)
            except (PodiumError, ValueError) as e:  # one bad row must not take down the others
                logger.error("model alias %r of project %s is unusable: %s", row["name"], project_id, e)
        return merged

    def _load_limits(self, project_id: str) -> Limits:
        return Limits.from_dict(self.store.projects.project_limits(project_id))

    def _load_guardrails(self, project_id: str) -> ProjectGuardrails:
        return ProjectGuardrails.from_dict(self.store.projects.project_guardrails(project_id))

    def check_policy_name(self, project_id: str, name: str | None, *, field: str) -> None:
        """400 unless ``name`` is a policy a call of this project could run (or off/None); for
        admin writes that name a policy (an API-declared alias), so a typo is refused when it is
        saved rather than failing every call afterwards."""
        if not name or name == OFF:
            return
        try:
            self.guards._spec(project_id, name, self._load_guardrails(project_id))
        except ConfigurationError as e:
            raise BadRequest(f"{field}: {e.message}", details=[{"field": field, "message": "unknown policy"}]) from e

    def invalidate(self, project_id: str | None = None) -> None:
        if project_id is None:
            self._aliases.clear()
            self._project_limits.clear()
            self._project_guardrails.clear()
        else:
            self._aliases.invalidate(project_id)
            self._project_limits.invalidate(project_id)
            self._project_guardrails.invalidate(project_id)
        self.guards.invalidate(project_id)

    def visible_aliases(self, key: ApiKey) -> list[ModelAlias]:
        aliases = self.aliases(key.project_id)
        allowed = key.models
        return [a for name, a in sorted(aliases.items()) if allowed is None or name in allowed]

    def _chain(self, key: ApiKey, name: str, mode: str, endpoint: str) -> list[ModelAlias]:
        aliases = self.aliases(key.project_id)
        alias = aliases.get(name)
        if alias is None and name.startswith("registry:/") and "local" in self.providers:
            # A registered version called by reference (registry:/NAME@ALIAS): an implicit local alias.
            alias = ModelAlias(name, "chat", [Deployment(alias=name, provider="local", model=name)], [], "registry")
        allowed = key.models
        if alias is None or (allowed is not None and name not in allowed):
            names = [n for n in sorted(aliases) if allowed is None or n in allowed]
            raise NotFound(
                f"model {name!r} does not exist or this key may not use it; available: {', '.join(names) or 'none'}",
                details=[{"field": "model", "message": "unknown model"}],
            )
        if alias.mode != mode:
            where = "/v1/embeddings" if alias.mode == "embedding" else "/v1/chat/completions or /v1/completions"
            raise BadRequest(
                f"model {name!r} is a{'n' if alias.mode == 'embedding' else ''} {alias.mode} model; call {where}",
                details=[{"field": "model", "message": "wrong endpoint for this model"}],
            )
        chain = [alias]
        for f in alias.fallbacks:
            fb = aliases.get(f)
            if fb is not None and fb.mode == mode and fb not in chain:
                chain.append(fb)
        return chain

    # --- limits ----------------------------------------------------------------------------------
    def _scopes(self, key: ApiKey) -> list[Scope]:
        scopes = []
        if key.limits:
            scopes.append(self._key_scope(key))
        lim: Limits = self._project_limits.load(key.project_id, lambda: self._load_limits(key.project_id))  # type: ignore[assignment]  # never None
        if not lim.empty:
            scopes.append(Scope("project", key.project_id, "project", lim))
        return scopes

    def _key_scope(self, key: ApiKey) -> Scope:
        """The key's scope, parsed once per cached key object (the auth cache hands out the same
        ``ApiKey`` until it reloads it, so a changed limit is seen with the key's next load)."""
        hit = self._key_scopes.get(key.id)
        if hit is not None and hit[0] is key and hit[1] == key.limits:
            return hit[2]
        scope = Scope("key", key.id, key.note or key.public_key, Limits.from_dict(key.limits))
        if len(self._key_scopes) >= 10_000:
            self._key_scopes.clear()
        self._key_scopes[key.id] = (key, dict(key.limits or {}), scope)
        return scope

    def _estimate(self, call: Call, budgeted: bool) -> tuple[int, float]:
        """(tokens for tpm, USD for budgets) to reserve for this request.

        The USD estimate is the most the request can cost on any deployment it can reach
        (every weighted deployment of every alias of the fallback chain): prompt tokens
        (characters / 4 + 8) plus the output bound (``max_tokens`` x ``n``; without it,
        :meth:`ModelPrice.output_bound` of ``gateway_budget_max_output``), at that deployment's price without cache
        discounts. Unpriced models are priced at ``gateway_budget_unpriced_*``. The tpm
        estimate assumes 512 output tokens when ``max_tokens`` is absent."""
        body = call.body
        if call.endpoint == "embeddings":
            x = body.get("input")
            n_in = sum(len(s) for s in x) // 4 if isinstance(x, list) and x and isinstance(x[0], str) else (
                len(x) // 4 if isinstance(x, str) else 512)
            call.est_in, call.max_out = n_in, 0
            n_out = 0
        else:
            src = body.get("messages") if "messages" in body else body.get("prompt", body.get("input"))
            n_in = _chars(src) // 4 + 8
            n = _choices(body)
            given = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
            call.est_in = n_in
            call.max_out = int(given) * n if isinstance(given, int) and given > 0 else None
            n_out = call.max_out if call.max_out is not None else 512 * n
        call.budgeted = budgeted
        if not budgeted:
            return n_in + n_out, 0.0
        table = self._prices(call.key.project_id)
        cost = max((self._dep_cost(call, d, table) for a in call.chain for d in a.deployments), default=0.0)
        return n_in + n_out, cost

    def _price(self, dep: Deployment, table: PriceTable) -> ModelPrice | None:
        return table.lookup(dep.model, dep.provider)

    def _unpriced_price(self) -> ModelPrice:
        s = self.settings
        k = (s.gateway_budget_unpriced_input, s.gateway_budget_unpriced_output)
        if self._unpriced is None or self._unpriced[0] != k:  # built once (a Decimal parse per request otherwise)
            self._unpriced = (k, ModelPrice(Decimal(repr(k[0])), Decimal(repr(k[1]))))
        return self._unpriced[1]

    def _dep_cost(self, call: Call, dep: Deployment, table: PriceTable) -> float:
        """The most this request can cost on ``dep`` (see :meth:`_estimate`)."""
        price = self._price(dep, table) or self._unpriced_price()
        n_out = call.max_out
        if n_out is None:
            n_out = price.output_bound(call.est_in, self.settings.gateway_budget_max_output) * _choices(call.body)
        return price.max_cost(call.est_in, n_out)

    def _before(self, call: Call, ticket: Any) -> Callable[[Deployment], Any] | None:
        """The router's hook: before a deployment is tried, top up the budget reservation when
        this deployment can cost more than what is reserved (prices change, fallbacks)."""
        if not call.budgeted:
            return None

        async def before(dep: Deployment) -> None:
            need = self._dep_cost(call, dep, self._prices(call.key.project_id))
            if need > ticket.est_cost * (1 + 1e-9):
                try:
                    await self.limiter.extend(ticket, est_cost=need)
                except TooManyRequests as e:
                    self.metrics.rejections.labels(_scope_of(e.message)).inc()
                    raise

        return before

    def _bind(self, call: Call) -> Callable[[Deployment], Awaitable[Deployment]]:
        """The router's bind hook: a provider with ``bind(dep, project_id)`` (the local provider, for
        ``registry:/`` models) picks what this request's deployment serves; the span records its model."""

        async def bind(dep: Deployment) -> Deployment:
            b = getattr(self.providers.get(dep.provider), "bind", None)
            return dep if b is None else await b(dep, call.key.project_id)

        return bind

    # --- the call ----------------------------------------------------------------------------------
    @staticmethod
    def check_role(key: ApiKey) -> None:
        """403 unless the key's role may call models (``GATEWAY_ACTION`` in ``podium.core.roles``)."""
        if key.role not in _GATEWAY_ROLES:
            raise Forbidden(f"a key with role {key.role!r} cannot call the gateway; use an admin, member or "
                            "gateway key (`podium keys create --role gateway`)")

    def prepare(self, key: ApiKey, endpoint: str, body: Any, headers: dict[str, str]) -> Call:
        """Check everything that needs no I/O; raises before any limit is taken."""
        self.check_role(key)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object", details=[{"field": None, "message": "not an object"}])
        check, _op, sop, mode = ENDPOINTS[endpoint]
        check(body)
        if body.get("stream") and sop is None:
            raise BadRequest("this endpoint does not stream", details=[{"field": "stream", "message": "unsupported"}])
        call = Call(key, endpoint, body, headers)
        skip_read, skip_write = cache_bypass(headers, body) if self.cache is not None else (True, True)
        call.options = wire.podium_options(headers, body)  # removes body["podium"]
        call.chain = self._chain(key, body["model"], mode, endpoint)
        call.trace_id = call.options.trace_id or _random_hex(16)
        call.span_id = _random_hex(8)
        # A registry:/NAME@ALIAS answer is not cached: the alias moves (canary, rollback) and a cached
        # answer of the old version would outlive the move.
        if self.cache is not None and not _moves(call.chain):
            call.cache_read, call.cache_write = not skip_read, not skip_write
            if call.cache_read or call.cache_write:
                call.cache_key = cache_key(endpoint, body, namespace=key.project_id)
        return call

    # --- guardrails ------------------------------------------------------------------------------
    async def _guard_for(self, call: Call) -> Guard | None:
        """The call's compiled policy (key > alias > project > config default); None: none."""
        pid = call.key.project_id
        project = self._project_guardrails.peek(pid)
        if project is MISSING:
            project = await self._project_guardrails.get_or_load(pid, lambda: self._load_guardrails(pid))
        assert project is None or isinstance(project, ProjectGuardrails)
        alias = call.chain[0].guardrails if call.chain else None
        name = self.guards.name_for(call.key.guardrails, alias, project or ProjectGuardrails())
        if name is None:
            return None
        return await self.guards.get(pid, name, project or ProjectGuardrails())

    async def _guard_input(self, call: Call, ticket: Any) -> None:
        """Resolve the policy and scan the request (the body sent upstream becomes the redacted
        one). On a block (or any error) the limits are released, the call recorded, and it raises."""
        try:
            call.guard = await self._guard_for(call)
            if call.guard is None:
                return
            started = datetime.now(UTC)
            try:
                decision, call.body = await scan_input(call.guard, call.endpoint, call.body)
            except ContentBlocked as e:
                blocked = _decision_of(e)
                if blocked is not None:
                    call.guarded.append((blocked, started))
                raise
            if decision is not None:
                call.guarded.append((decision, started))
                if decision.redactions:
                    call.restore = decision
        except BaseException as e:
            await self.limiter.release(ticket, tokens=0, cost=0.0)
            if isinstance(e, PodiumError):
                self._finish(call, None, e, 0, 0.0)
            raise

    async def _guard_output(self, call: Call, out: dict[str, Any]) -> dict[str, Any]:
        """The answer the caller gets: scanned, redacted, reversible redactions restored."""
        if call.guard is None or call.endpoint == "embeddings":
            return out
        started = datetime.now(UTC)
        try:
            decisions, final = await scan_output(call.guard, call.endpoint, out,
                                                 prompt_text(call.endpoint, call.body), call.restore,
                                                 context_documents(call.endpoint, call.body))
        except ContentBlocked as e:
            blocked = _decision_of(e)
            if blocked is not None:
                call.guarded.append((blocked, started))
            call.output_blocked = True
            raise
        call.guarded.extend((d, started) for d in decisions)
        return final

    async def call(self, call: Call) -> dict[str, Any]:
        """A non-streaming call; returns the OpenAI-shaped response."""
        log = self._log
        if log is not None and log.full:
            call.log_room = await log.wait_room()
        m = self.metrics
        ticket = await self._acquire(call)
        await self._guard_input(call, ticket)
        cached = await self._cached(call, ticket)
        if cached is not None:
            try:
                cached = await self._guard_output(call, cached)
            except PodiumError as e:
                self._finish(call, None, e, 0, 0.0)
                raise
            self._finish(call, cached, None, 0, 0.0)
            return cached
        tokens, cost = 0, 0.0
        m.in_flight.inc()
        try:
            _check, op, _sop, _mode = ENDPOINTS[call.endpoint]
            out = await self.router.call(call.chain, op, call.body, call.routed, before=self._before(call, ticket),
                                         bind=self._bind(call))
            tokens, cost = self._usage_cost(call, out.get("usage"))
        except PodiumError as e:
            self._finish(call, None, e, 0, 0.0)
            raise
        except asyncio.CancelledError:
            self._finish(call, None, ClientClosed("the client disconnected before the answer; the upstream "
                                                  "call was cancelled"), 0, 0.0)
            raise
        finally:
            m.in_flight.dec()
            await self.limiter.release(ticket, tokens=tokens, cost=cost)
        if call.cache_key is not None and call.cache_write:  # the upstream's answer: guarded again on a hit
            await self.cache.set(call.cache_key, out, self.settings.gateway_cache_ttl)  # type: ignore[union-attr]  # cache_key implies a cache
        try:
            final = await self._guard_output(call, out)
        except PodiumError as e:
            self._finish(call, out, e, tokens, cost)
            raise
        self._finish(call, final, None, tokens, cost)
        return final

    async def stream(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        """A streaming call: an async iterator of chunks. The first chunk is fetched (with
        failover) before this returns, so errors before any byte still raise here."""
        log = self._log
        if log is not None and log.full:
            call.log_room = await log.wait_room()
        m = self.metrics
        ticket = await self._acquire(call)
        await self._guard_input(call, ticket)
        cached = await self._cached(call, ticket)
        if cached is not None:
            try:
                cached = await self._guard_output(call, cached)  # a whole answer: a block is still a 400
            except PodiumError as e:
                self._finish(call, None, e, 0, 0.0)
                raise
            self._finish(call, cached, None, 0, 0.0)
            return _replay(wire.chunks_from_response(cached, chat=call.endpoint == "chat"))
        _check, _op, sop, _mode = ENDPOINTS[call.endpoint]
        body = call.body
        so = body.get("stream_options")
        if not isinstance(so, dict) or so.get("include_usage") is not True:
            # Always learn the usage; the route strips it for a caller that did not ask for it.
            body = {**body, "stream_options": {**(so if isinstance(so, dict) else {}), "include_usage": True}}
        m.in_flight.inc()
        try:
            first, rest = await self.router.stream(call.chain, sop, body, call.routed,  # type: ignore[arg-type]  # prepare refused stream=true where sop is None
                                                   before=self._before(call, ticket), bind=self._bind(call))
        except BaseException as e:
            m.in_flight.dec()
            await self.limiter.release(ticket, tokens=0, cost=0.0)
            if isinstance(e, PodiumError):
                self._finish(call, None, e, 0, 0.0)
            raise
        call.first_token = datetime.now(UTC)
        return self._relay(call, ticket, first, rest)

    async def _relay(self, call: Call, ticket: Any, first: dict[str, Any],
                     rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        acc = wire.StreamAccumulator(call.endpoint == "chat")
        error: PodiumError | None = None
        tokens, cost = 0, 0.0
        guarded = call.guard is not None
        gs = GuardedStream(call.guard, chat=call.endpoint == "chat", restore=call.restore,
                           prompt=prompt_text(call.endpoint, call.body) if guarded else None,
                           documents=context_documents(call.endpoint, call.body) if guarded else ())
        started = datetime.now(UTC)
        try:
            acc.add(first)
            if not gs.active:
                yield first
                async for chunk in rest:
                    acc.add(chunk)
                    yield chunk
            else:
                out_chunk = await asyncio.to_thread(gs.chunk, first) if gs.slow else gs.chunk(first)
                if out_chunk is not None:
                    yield out_chunk
                async for chunk in rest:
                    acc.add(chunk)
                    out_chunk = await asyncio.to_thread(gs.chunk, chunk) if gs.slow else gs.chunk(chunk)
                    if out_chunk is not None:
                        yield out_chunk
                for out_chunk in await asyncio.to_thread(gs.end) if gs.slow else gs.end():
                    yield out_chunk
        except PodiumError as e:
            error = e
            if isinstance(e, ContentBlocked):
                call.output_blocked = True
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = ClientClosed("the client disconnected before the stream ended; the upstream stream was closed")
            raise
        finally:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    pass
            self.metrics.in_flight.dec()
            call.guarded.extend((d, started) for d in gs.decisions())
            out = acc.response()
            usage = out.get("usage")
            if usage is None:  # the upstream sent no usage: count it ourselves
                await ensure_tokenizer()
                usage = _estimated_usage(call, acc.text)
                out["usage"] = usage
            call.usage = usage
            tokens, cost = self._usage_cost(call, usage)
            await self.limiter.release(ticket, tokens=tokens, cost=cost)
            if error is None and call.cache_key is not None and call.cache_write and not acc.tool_calls:
                try:
                    await self.cache.set(call.cache_key, out, self.settings.gateway_cache_ttl)  # type: ignore[union-attr]  # cache_key implies a cache
                except Exception:
                    logger.exception("cache write failed")
            self._finish(call, out, error, tokens, cost)

    async def _cached(self, call: Call, ticket: Any) -> dict[str, Any] | None:
        """The cached answer, if any. Limits are taken before the lookup: a hit is still a
        request (rpm, concurrency) and settles here at 0 tokens, $0."""
        if call.cache_key is None or not call.cache_read:
            return None
        try:
            cached = await self.cache.get(call.cache_key)  # type: ignore[union-attr]  # cache_key implies a cache
        except BaseException:
            await self.limiter.release(ticket, tokens=0, cost=0.0)
            raise
        if cached is None:
            self.metrics.cache.labels(call.alias, "miss").inc()
            return None
        call.cache_hit = True
        call.first_token = datetime.now(UTC)
        self.metrics.cache.labels(call.alias, "hit").inc()
        await self.limiter.release(ticket, tokens=0, cost=0.0)
        return cached  # the caller guards the answer and records the call

    async def _acquire(self, call: Call) -> Any:
        scopes = self._scopes(call.key)
        budgeted = any(sc.limits.budget_daily is not None or sc.limits.budget_monthly is not None
                       or sc.limits.budget_total is not None for sc in scopes)
        est_tokens, est_cost = self._estimate(call, budgeted)
        try:
            return await self.limiter.acquire(scopes, est_tokens=est_tokens, est_cost=est_cost)
        except TooManyRequests as e:
            self.metrics.rejections.labels(_scope_of(e.message)).inc()
            self._finish(call, None, e, 0, 0.0)
            raise

    def _usage_cost(self, call: Call, usage: Any) -> tuple[int, float]:
        if not isinstance(usage, dict):
            return 0, 0.0
        dep = call.routed.deployment
        if dep is None:
            return 0, 0.0
        n_in = int(usage.get("prompt_tokens") or 0)
        n_out = int(usage.get("completion_tokens") or 0)
        table = self._prices(call.key.project_id)
        if self._price(dep, table) is None:  # unpriced: budgets charge the fallback price
            charge = self._unpriced_price().max_cost(n_in, n_out)
            call.unpriced = charge > 0
            return n_in + n_out, charge
        cost = compute_cost(dep.model, usage, provider=dep.provider, table=table)
        call.cost = cost["total"] if cost else None
        return n_in + n_out, (cost or {}).get("total", 0.0)

    # --- recording ---------------------------------------------------------------------------------
    def _finish(self, call: Call, out: dict[str, Any] | None, error: PodiumError | None, tokens: int,
                cost: float) -> None:
        m = self.metrics
        alias = call.alias
        dep = call.routed.deployment
        dep_id = dep.id if dep else ("cache" if call.cache_hit else "none")
        key_label = call.key.public_key
        status = "ok" if error is None else str(wire.http_status(error))
        m.count_request(alias, dep_id, key_label, status)  # the key is a label only if opted in
        elapsed = time.perf_counter() - call.t0
        m.child(m.latency, alias).observe(elapsed)
        if call.first_token is not None and call.body.get("stream"):
            m.ttft.labels(alias).observe((call.first_token - call.start).total_seconds())
        if error is not None:
            m.count_error(alias, error)
        for a in call.routed.attempts[:-1] if call.routed.attempts else ():
            m.retries.labels(a.deployment).inc()
        if dep is not None and dep.alias != alias:
            m.fallbacks.labels(alias).inc()
        usage = (out or {}).get("usage") if out else None
        if isinstance(usage, dict) and not call.cache_hit:
            m.child(m.tokens, alias, "input").inc(usage.get("prompt_tokens") or 0)
            m.child(m.tokens, alias, "output").inc(usage.get("completion_tokens") or 0)
        if cost:
            m.count_spend(alias, key_label, cost)
            self._note_spend(call.key, cost)
        if isinstance(error, TooManyRequests):
            return  # refused by our own limits: counted above, not stored (a flood must not flood the store)
        log = self._log
        if not call.log_room and log is not None and log.full:  # waited in vain, and still no room
            log.drop(1 + sum(len(_guard_records(call, d, s)) for d, s in call.guarded), "full")
            for decision, _started in call.guarded:
                m.count_guardrail(alias, decision.kind, decision.action)
            return
        try:
            sink, pid = self._sink, call.key.project_id
            if not sink(pid, self._span(call, out, error, usage, cost, elapsed)) and self._log is None:
                m.log_dropped.labels("full").inc()  # a GatewayLog counts its own drops, by reason
            for decision, started in call.guarded:
                m.count_guardrail(alias, decision.kind, decision.action)
                for item in _guard_records(call, decision, started):
                    if not sink(pid, item) and self._log is None:
                        m.log_dropped.labels("full").inc()
        except Exception:  # logging must never fail the call
            logger.exception("could not record the gateway call")

    def _span(self, call: Call, out: dict[str, Any] | None, error: PodiumError | None, usage: Any,
              cost: float, elapsed: float) -> SpanIn:
        body = call.body
        dep = call.routed.deployment
        if call.endpoint == "chat":
            span_input: Any = body.get("messages")
            output: Any = ((out or {}).get("choices") or [{}])[0].get("message") if out else None
        elif call.endpoint == "completion":
            span_input = body.get("prompt")
            output = ((out or {}).get("choices") or [{}])[0].get("text") if out else None
        else:
            span_input = body.get("input")
            data = (out or {}).get("data") or []
            output = {"embeddings": len(data), "dimensions": wire.embedding_dimensions(data[0]) if data else 0}
        if call.output_blocked:  # the blocked answer is on the guardrail span (as the policy recorded it)
            output = None
        gw: dict[str, Any] = {
            "alias": call.alias,
            "deployment": dep.id if dep else None,
            "endpoint": call.api or call.endpoint,
            "stream": bool(body.get("stream")),
            "cache_hit": call.cache_hit,
            "retries": call.routed.retries,
            "fallback": bool(dep is not None and dep.alias != call.alias),
            "key": call.key.public_key,
        }
        if call.unpriced:  # no price for this model: the trace shows no cost, budgets were charged this
            gw["unpriced"] = True
            gw["budget_usd"] = cost
        if len(call.routed.attempts) > 1 or error is not None:
            gw["attempts"] = [
                {"deployment": a.deployment, "ok": a.ok, "status": a.status, "error": a.error, "ms": round(a.ms, 2)}
                for a in call.routed.attempts
            ]
        if call.guard is not None:
            gw["guardrails"] = call.guard.policy.name
        meta = {**(call.options.metadata or {}), "gateway": gw}
        u = None
        if isinstance(usage, dict):
            details = usage.get("prompt_tokens_details") or {}
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            u = _construct(
                UsageIn,
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                total_tokens=int(usage.get("total_tokens") or 0) or None,
                details={"cached_tokens": int(cached)} if cached else None,
            )
        end = datetime.now(UTC)
        return _construct(
            SpanIn,
            id=call.span_id,
            trace_id=call.trace_id,
            parent_id=call.options.parent_id,
            name=f"{call.api or call.endpoint} {call.alias}",
            kind=SpanKind.EMBEDDING if call.endpoint == "embeddings" else SpanKind.GENERATION,
            start_time=call.start,
            end_time=max(end, call.start),
            status=SpanStatus.ERROR if error else SpanStatus.OK,
            status_message=error.message[:10_000] if error else None,
            input=span_input,
            output=output,
            metadata=meta,
            attributes=None,
            model=(dep.model if dep else call.alias),
            provider=(dep.provider if dep else None),
            model_parameters={k: body[k] for k in _PARAMS if k in body} or None,
            usage=u,
            cost=_construct(CostIn, input=None, output=None, total=cost)
            if (u is not None or call.cache_hit) and not call.unpriced else None,
            completion_start_time=call.first_token,
            prompt_name=call.options.prompt_name,
            prompt_version=call.options.prompt_version,
            trace_name=None if call.options.trace_id else f"gateway {call.alias}",
            trace_metadata=None,
            user_id=call.options.user_id,
            session_id=call.options.session_id,
            tags=call.options.tags,
            release=None,
            environment=None,
        )

    # --- spend persistence ----------------------------------------------------------------------------
    def _note_spend(self, key: ApiKey, cost: float) -> None:
        day = int(time.time() // 86400)
        if self._periods[0] != day:  # formatted once a day, not per request
            now = datetime.now(UTC)
            self._periods = (day, (f"d:{now:%Y-%m-%d}", f"m:{now:%Y-%m}", "total"))
        periods = self._periods[1]
        for kind, sid in (("key", key.id), ("project", key.project_id)):
            for p in periods:
                k = (kind, sid, p)
                self._spend[k] = self._spend.get(k, 0.0) + cost

    async def _flush_spend(self) -> None:
        if not self._spend:
            return
        deltas, self._spend = self._spend, {}
        try:
            await asyncio.to_thread(self.store.gateway.add_spend, deltas)
        except Exception:
            logger.exception("could not persist gateway spend; will retry")
            for k, v in deltas.items():
                self._spend[k] = self._spend.get(k, 0.0) + v

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            await self._flush_spend()

    async def _seed_spend(self) -> None:
        now = datetime.now(UTC)
        day, month = f"d:{now:%Y-%m-%d}", f"m:{now:%Y-%m}"
        try:
            rows = await asyncio.to_thread(self.store.gateway.load_spend, (day, month, "total"))
        except Exception:
            logger.exception("could not load persisted gateway spend; budgets start from zero")
            return
        totals: dict[tuple[str, str], dict[str, float]] = {}
        for kind, sid, period, amount in rows:
            slot = totals.setdefault((kind, sid), {"daily": 0.0, "monthly": 0.0, "total": 0.0})
            slot["daily" if period == day else "monthly" if period == month else "total"] += amount
        for (kind, sid), v in totals.items():
            await self.limiter.add_spend(kind, sid, daily=v["daily"], monthly=v["monthly"], total=v["total"])

    async def spend(self, kind: str, sid: str) -> dict[str, Any]:
        return await self.limiter.usage(kind, sid)


_TEMPLATES: dict[type[Any], dict[str, Any] | None] = {}
_set = object.__setattr__


def _construct(cls: type[_M], **values: Any) -> _M:
    """``cls.model_construct(**values)`` (no validation; the gateway built the values) for the
    flat records the hot path logs, without pydantic's per-field alias walk: a copy of the
    model's defaults updated with ``values``. Models with aliases, default factories, extras or
    a post-init hook take ``model_construct``."""
    if cls not in _TEMPLATES:
        ok = (cls.model_config.get("extra") != "allow" and not cls.__pydantic_post_init__
              and not cls.__pydantic_root_model__ and not cls.__private_attributes__
              and all(f.alias is None and f.validation_alias is None and f.default_factory is None
                      for f in cls.model_fields.values()))
        _TEMPLATES[cls] = {
            n: None if f.is_required() else f.default for n, f in cls.model_fields.items()} if ok else None
    template = _TEMPLATES[cls]
    if template is None:
        return cls.model_construct(**values)
    data = template.copy()
    data.update(values)
    m = cls.__new__(cls)
    _set(m, "__dict__", data)
    _set(m, "__pydantic_fields_set__", set(values))
    _set(m, "__pydantic_extra__", None)
    _set(m, "__pydantic_private__", None)
    return m


class _RandomHex:
    """Random ids as hex (``_random_hex(16)``: a 32-digit trace id), from ``os.urandom`` read
    4 KiB at a time: one ``getrandom`` call per ~170 requests instead of two per request (each
    one ~30 µs of system time on a loaded machine). The same randomness as ``uuid4`` (all bits
    random); a forked child starts with an empty buffer, so it never repeats its parent's ids."""

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buf, self._pos = b"", 0
        self._lock = threading.Lock()

    def __call__(self, nbytes: int) -> str:
        with self._lock:
            pos = self._pos
            end = pos + nbytes
            if end > len(self._buf):
                self._buf, pos, end = os.urandom(4096), 0, nbytes
            self._pos = end
            return self._buf[pos:end].hex()


_random_hex = _RandomHex()


def _decision_of(e: BaseException) -> Decision | None:
    d = getattr(e, "decision", None)
    return d if isinstance(d, Decision) else None


def _observer() -> Callable[[Decision], None]:
    """The guardrails' own metrics (``podium_guardrail_*``: per policy, per scanner, latencies)."""
    from podium.guardrails import metrics

    return metrics.observe


async def _replay(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for c in chunks:
        yield c


def _guard_records(call: Call, decision: Decision, started: datetime) -> list[SpanIn | ScoreIn]:
    """A decision as a ``guardrail`` span under the call's generation span, and a score per rule
    that scored above 0 (``podium.guardrails.record``)."""
    f = span_fields(decision)
    span_id = _random_hex(8)
    end = started + timedelta(milliseconds=decision.latency_ms)
    span = _construct(
        SpanIn, id=span_id, trace_id=call.trace_id, parent_id=call.span_id, name=f["name"], kind=SpanKind.GUARDRAIL,
        start_time=started, end_time=end, status=SpanStatus.ERROR if f["status"] == "error" else SpanStatus.OK,
        status_message=f["status_message"], input=f["input"], output=f["output"], attributes=f["attributes"],
    )
    out: list[SpanIn | ScoreIn] = [span]
    for name, value in score_values(decision).items():
        if value <= 0:  # clean traffic leaves no rows of zeros: every rule's result is on the span
            continue
        out.append(_construct(
            ScoreIn, name=name, value=value, data_type=ScoreDataType.NUMERIC, trace_id=call.trace_id, span_id=span_id,
            source="guardrail", timestamp=end))
    return out


def _moves(chain: list[ModelAlias]) -> bool:
    return any(d.model.startswith("registry:/") for a in chain for d in a.deployments)


def _chars(v: Any) -> int:
    if isinstance(v, str):
        return len(v)
    if isinstance(v, list):
        return sum(_chars(x) for x in v)
    if isinstance(v, dict):
        return sum(_chars(x) for x in v.values())
    return 0


def _choices(body: dict[str, Any]) -> int:
    """The caller's ``n`` (answers per request) when it is a positive integer, else 1."""
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


_tokenizer_loaded = False


async def ensure_tokenizer() -> None:
    """Load the tokenizer in a worker thread the first time a count is needed. ``podium gateway``
    does not load it at start (~40 MiB and ~130 ms for the BPE table): with an upstream that
    reports usage, it is never needed. When the process froze its start-up heap out of the
    garbage collector's sight (``gc.freeze``), the table is frozen too once loaded."""
    global _tokenizer_loaded
    if _tokenizer_loaded:
        return
    from podium.core.tokens import tokenizer_name

    await asyncio.to_thread(tokenizer_name)
    if gc.get_freeze_count():
        gc.freeze()
    _tokenizer_loaded = True


def _estimated_usage(call: Call, text: str) -> wire.Usage:
    from podium.core.tokens import count_tokens

    src = call.body.get("messages") if call.endpoint == "chat" else call.body.get("prompt")
    n_in, n_out = count_tokens(src), count_tokens(text)
    return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}


def _scope_of(message: str) -> str:
    return "key" if message.startswith("key") else "project" if message.startswith("project") else "other"


def _default_providers(settings: Settings) -> dict[str, Provider]:
    """One instance per provider kind, from the ``register_providers`` plugin hook (the built-in
    openai/anthropic/gemini/local and any installed plugin's); the HTTP ones share pooled clients,
    the local one loads lazily."""
    from podium.plugins.manager import provider_factories

    return {name: factory(settings) for name, factory in provider_factories().items()}
