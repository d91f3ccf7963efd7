"""Gateway response cache: identical requests in one project get the stored answer.

Key
---
:func:`cache_key` hashes (SHA-256) the endpoint, the namespace (the project id, so
projects never share entries) and the canonical JSON of the request body (keys sorted,
no whitespace, top-level integral floats written as ints so ``"temperature": 1`` and
``1.0`` match) **without** the fields that do not change the answer:

``stream``, ``stream_options``
    A streamed and a non-streamed request get the same completion; the gateway stores
    the assembled response and replays it in the requested form.
``user``, ``metadata``, ``store``
    Attribution and bookkeeping for the provider; they do not change the output.
``podium``
    Podium's own extra field (cache control, tags, trace ids).

Everything else counts, including ``model`` (the alias the caller named), ``n``,
``seed``, ``temperature``, ``tools``, ``response_format`` and every message.

Bypass
------
:func:`cache_bypass` reads the request's ``Cache-Control`` header and ``podium`` field:
``no-cache`` (or ``max-age=0``) skips the lookup but stores the fresh answer,
``no-store`` skips both, ``{"podium": {"cache": false}}`` skips both. :func:`cache_ttl`
reads a per-request lifetime from ``{"podium": {"cache": {"ttl": 60}}}`` or the
``X-Podium-Cache-TTL`` header.

Backends
--------
:class:`MemoryCache` is an in-process LRU with a TTL per entry (O(1) get and set).
:class:`RedisCache` stores JSON under ``{prefix}{key}`` with a Redis expiry; when Redis
fails it logs once and behaves as a miss (get → None, set → nothing), and stops trying
for a few seconds, so the cache never fails or slows a request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from podium.errors import ConfigurationError, ValidationFailed

__all__ = [
    "IGNORED_FIELDS",
    "CacheStats",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "cache_bypass",
    "cache_key",
    "cache_ttl",
    "make_cache",
]

logger = logging.getLogger(__name__)

IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "podium"})

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode


def cache_key(endpoint: str, body: Mapping[str, Any], *, namespace: str) -> str:
    """``{namespace}:{sha256 hex}`` of the request without the fields in :data:`IGNORED_FIELDS`."""
    norm: dict[str, Any] = {}
    for k, v in body.items():
        if k in IGNORED_FIELDS:
            continue
        if type(v) is float and v.is_integer():
            v = int(v)
        norm[k] = v
    h = hashlib.sha256()
    h.update(namespace.encode())
    h.update(b"\x00")
    h.update(endpoint.encode())
    h.update(b"\x00")
    h.update(_dumps(norm).encode())
    return f"{namespace}:{h.hexdigest()}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is None:
        v = headers.get(name.title())
        if v is None and not hasattr(headers, "getlist"):  # plain dicts with other spellings
            for k, val in headers.items():
                if k.lower() == name:
                    return val
    return v


def _podium_cache(body: Mapping[str, Any]) -> Any:
    extra = body.get("podium")
    if extra is None:
        return None
    if not isinstance(extra, Mapping):
        raise ValidationFailed('"podium" must be an object, e.g. {"podium": {"cache": false}}',
                               details=[{"field": "podium", "error": "must be an object"}])
    c = extra.get("cache")
    if c is None or isinstance(c, bool | Mapping):
        return c
    raise ValidationFailed('"podium.cache" must be true, false or {"ttl": seconds}',
                           details=[{"field": "podium.cache", "error": f"got {c!r}"}])


def cache_bypass(headers: Mapping[str, str], body: Mapping[str, Any]) -> tuple[bool, bool]:
    """(skip_read, skip_write) for this request."""
    skip_read = skip_write = False
    cc = _header(headers, "cache-control")
    if cc:
        for part in cc.lower().split(","):
            d = part.strip()
            if d == "no-store":
                skip_read = skip_write = True
            elif d == "no-cache" or d.replace(" ", "") == "max-age=0":
                skip_read = True
    c = _podium_cache(body)
    if c is False:
        skip_read = skip_write = True
    return skip_read, skip_write


def cache_ttl(headers: Mapping[str, str], body: Mapping[str, Any]) -> float | None:
    """Per-request lifetime in seconds, or None for the configured default."""
    c = _podium_cache(body)
    raw: Any = None
    where = ""
    if isinstance(c, Mapping) and c.get("ttl") is not None:
        raw, where = c["ttl"], "podium.cache.ttl"
    else:
        h = _header(headers, "x-podium-cache-ttl")
        if h is not None:
            raw, where = h, "X-Podium-Cache-TTL"
    if raw is None:
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        ttl = float(raw)
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ValidationFailed(f"{where} must be a number of seconds > 0, got {raw!r}",
                               details=[{"field": where, "error": "must be > 0"}])
    return ttl


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    sets: int = 0
    evictions: int = 0
    errors: int = 0


@runtime_checkable
class ResponseCache(Protocol):
    stats: CacheStats

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    """In-process LRU with a TTL per entry. Values are stored as JSON, so callers may mutate what they get."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ConfigurationError(
                f"gateway cache needs room for at least 1 entry (PODIUM_GATEWAY_CACHE_MAX_ENTRIES={max_entries}); "
                "use PODIUM_GATEWAY_CACHE=off to turn it off"
            )
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._data)

    async def get(self, key: str) -> dict[str, Any] | None:
        now = self._clock()
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.stats.misses += 1
                return None
            if item[0] <= now:
                del self._data[key]
                self.stats.misses += 1
                return None
            self._data.move_to_end(key)
            self.stats.hits += 1
            raw = item[1]
        value: dict[str, Any] = json.loads(raw)
        return value

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        if ttl <= 0:
            return
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        expires = self._clock() + ttl
        with self._lock:
            self._data[key] = (expires, raw)
            self._data.move_to_end(key)
            self.stats.sets += 1
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
                self.stats.evictions += 1

    async def aclose(self) -> None:
        self._data.clear()


class RedisCache:
    """Responses as JSON strings in Redis with an expiry; shared by every gateway process."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "podium:cache:",
        timeout: float = 1.0,
        retry_interval: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        self.retry_interval = retry_interval
        self._redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout,
            max_connections=max_connections,
        )
        self._down_until = 0.0
        self._warned = False
        self.stats = CacheStats()

    def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        self._down_until = time.monotonic() + self.retry_interval
        if not self._warned:
            self._warned = True
            logger.warning(
                "gateway response cache at %s failed (%s: %s); serving without the cache until it is back "
                "(check Redis and PODIUM_REDIS_URL, or set PODIUM_GATEWAY_CACHE=memory)",
                _safe_url(self.url), type(exc).__name__, exc,
            )
        else:
            logger.debug("gateway response cache error: %s: %s", type(exc).__name__, exc)

    def _recovered(self) -> None:
        if self._warned:
            self._warned = False
            logger.warning("gateway response cache at %s is back", _safe_url(self.url))

    async def get(self, key: str) -> dict[str, Any] | None:
        if self._down_until and time.monotonic() < self._down_until:
            self.stats.misses += 1
            return None
        try:
            raw = await self._redis.get(self.prefix + key)
        except Exception as exc:  # never fail a request because of the cache
            self._failed(exc)
            self.stats.misses += 1
            return None
        if self._down_until:
            self._down_until = 0.0
            self._recovered()
        if raw is None:
            self.stats.misses += 1
            return None
        try:
            value: dict[str, Any] = json.loads(raw)
        except ValueError:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        if ttl <= 0 or (self._down_until and time.monotonic() < self._down_until):
            return
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        try:
            await self._redis.set(self.prefix + key, raw, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._failed(exc)
            return
        if self._down_until:
            self._down_until = 0.0
            self._recovered()
        self.stats.sets += 1

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        except Exception:  # closing a pool to a dead server must not raise either
            pass


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def make_cache(kind: str, *, redis_url: str | None, max_entries: int) -> ResponseCache | None:
    """Build the cache PODIUM_GATEWAY_CACHE asks for: ``memory``, ``redis`` or ``off`` (None)."""
    k = (kind or "").strip().lower()
    if k in ("off", "none", "false", "0", "disabled"):
        return None
    if k == "memory":
        return MemoryCache(max_entries)
    if k == "redis":
        if not redis_url:
            raise ConfigurationError(
                "PODIUM_GATEWAY_CACHE=redis needs PODIUM_REDIS_URL (e.g. redis://127.0.0.1:6379/0); "
                "set it, or use PODIUM_GATEWAY_CACHE=memory for an in-process cache"
            )
        return RedisCache(redis_url)
    raise ConfigurationError(f"PODIUM_GATEWAY_CACHE={kind!r} is not a cache kind; use memory, redis or off")
