"""Login rate limits: failed sign-ins per account and per client address.

After ``per_account`` failures for one email, or ``per_ip`` failures from one address, within
``window`` seconds, sign-ins for that email (or from that address) are refused with 429 and a
``Retry-After`` until the window has passed; a success clears the account's count. Counted in the
process (a sliding window), or in Redis when ``PODIUM_REDIS_URL`` is set (a fixed window shared
by every server process; when Redis is unreachable the process's own count applies).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from typing import Any

from podium.errors import TooManyRequests

__all__ = ["LoginLimiter"]

logger = logging.getLogger("podium.governance")
_MAX_KEYS = 100_000


class LoginLimiter:
    def __init__(self, *, per_account: int, per_ip: int, window: float, redis_url: str | None = None,
                 clock: Any = time.monotonic) -> None:
        self.per_account = per_account
        self.per_ip = per_ip
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._redis: Any = None
        if redis_url:
            import redis  # the server extra's client; only loaded when Redis is configured

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)

    @staticmethod
    def _keys(email: str, ip: str | None) -> list[tuple[str, str]]:
        out = [("account", "acct:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32])]
        if ip:
            out.append(("address", "ip:" + ip))
        return out

    def _limit(self, kind: str) -> int:
        return self.per_account if kind == "account" else self.per_ip

    def check(self, email: str, ip: str | None) -> None:
        """Raise 429 (with ``retry_after``) when this email or this address failed too often lately."""
        for kind, key in self._keys(email, ip):
            count, retry = self._count(key)
            if count >= self._limit(kind):
                raise TooManyRequests(
                    f"too many failed sign-ins for this {kind}; wait {math.ceil(retry)} s and try again, or reset "
                    "the password with `podium users set-password`",
                    retry_after=max(1.0, retry))

    def failed(self, email: str, ip: str | None) -> None:
        for _kind, key in self._keys(email, ip):
            self._add(key)

    def succeeded(self, email: str) -> None:
        key = self._keys(email, None)[0][1]
        if self._redis is not None:
            try:
                self._redis.delete("podium:login:" + key)
            except Exception:
                logger.warning("login limits: Redis unreachable, counting in this process", exc_info=True)
        with self._lock:
            self._hits.pop(key, None)

    # --- storage ----------------------------------------------------------------------------
    def _count(self, key: str) -> tuple[int, float]:
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.get("podium:login:" + key)
                pipe.pttl("podium:login:" + key)
                raw, ttl = pipe.execute()
                return int(raw or 0), max(0.0, (ttl or 0) / 1000)
            except Exception:
                logger.warning("login limits: Redis unreachable, counting in this process", exc_info=True)
        now = self._clock()
        with self._lock:
            q = self._hits.get(key)
            if not q:
                return 0, 0.0
            while q and q[0] <= now - self.window:
                q.popleft()
            return len(q), (q[0] + self.window - now) if q else 0.0

    def _add(self, key: str) -> None:
        if self._redis is not None:
            try:
                pipe = self._redis.pipeline()
                pipe.incr("podium:login:" + key)
                pipe.expire("podium:login:" + key, math.ceil(self.window), nx=True)
                pipe.execute()
                return
            except Exception:
                logger.warning("login limits: Redis unreachable, counting in this process", exc_info=True)
        now = self._clock()
        with self._lock:
            q = self._hits.setdefault(key, deque())
            self._hits.move_to_end(key)
            q.append(now)
            while len(q) > max(self.per_account, self.per_ip):
                q.popleft()
            while len(self._hits) > _MAX_KEYS:
                self._hits.popitem(last=False)
