"""How many task calls an experiment runs at once: AIMD concurrency with 429 back-off.

Additive increase, multiplicative decrease (TCP's congestion control, as LLM clients use it
against rate limits):

* every success adds ``increase / limit`` to the limit (about +1 per window of calls), up to
  ``max_concurrency``;
* a 429 (rate limited) multiplies it by ``decrease`` (halves it), down to ``min_concurrency``,
  and pauses new starts until ``Retry-After`` (or an exponential back-off) has passed. Only
  the first 429 of a window counts: calls started before the last decrease were started
  under the old limit, so their 429s say nothing new.

``rpm`` optionally spaces starts evenly (at most ``rpm`` a minute) on top of that.
The limiter is used by one coordinating thread; it is not thread-safe and need not be.
"""

from __future__ import annotations

import math
import random

__all__ = ["AimdLimiter"]


class AimdLimiter:
    def __init__(
        self,
        max_concurrency: int = 8,
        *,
        min_concurrency: int = 1,
        rpm: float | None = None,
        increase: float = 1.0,
        decrease: float = 0.5,
        base_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if not 1 <= min_concurrency <= max_concurrency:
            raise ValueError("min_concurrency must be between 1 and max_concurrency")
        if rpm is not None and not rpm > 0:
            raise ValueError(f"rpm must be > 0, got {rpm}")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.limit = float(max_concurrency)
        self.rpm = rpm
        self.increase = increase
        self.decrease = decrease
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.epoch = 0  # bumped by every decrease
        self.throttled_count = 0
        self._pause_until = 0.0
        self._next_start = 0.0
        self._streak = 0  # 429s in a row without a success (grows the back-off)

    @property
    def allowed(self) -> int:
        """Calls that may be in flight now."""
        return max(self.min_concurrency, math.floor(self.limit))

    def ready_in(self, now: float) -> float:
        """Seconds before another call may start (0: now)."""
        return max(0.0, self._pause_until - now, self._next_start - now)

    def started(self, now: float) -> int:
        """Record a start; returns the epoch the call belongs to (pass it to :meth:`throttled`)."""
        if self.rpm is not None:
            self._next_start = max(now, self._next_start) + 60.0 / self.rpm
        return self.epoch

    def success(self) -> None:
        self._streak = 0
        self.limit = min(float(self.max_concurrency), self.limit + self.increase / max(1.0, self.limit))

    def throttled(self, now: float, *, epoch: int, retry_after: float | None = None) -> float:
        """A call got a 429: decrease once per window and pause. Returns the pause in seconds."""
        self.throttled_count += 1
        self._streak += 1
        if epoch == self.epoch:
            self.limit = max(float(self.min_concurrency), self.limit * self.decrease)
            self.epoch += 1
        if retry_after is not None and retry_after >= 0:
            wait = min(float(retry_after), self.max_backoff)
        else:
            wait = min(self.max_backoff, self.base_backoff * 2 ** min(self._streak - 1, 10))
            wait *= random.uniform(0.5, 1.0)
        self._pause_until = max(self._pause_until, now + wait)
        return wait
