"""Gateway rate limits and spend budgets, per virtual key and per project.

A request names the *scopes* it counts against (usually its key and its project), each
with its :class:`Limits`. :meth:`Limiter.acquire` checks every limit of every scope and
reserves the request's share in **one atomic step**: either everything is reserved or
nothing is, and :class:`podium.errors.TooManyRequests` names the first limit that
failed. :meth:`Limiter.release` settles the request once it is over (exactly once per
ticket; a second call is a no-op).

What is counted, per scope
--------------------------
``rpm`` / ``tpm``
    Requests and tokens over the last ``window`` seconds (60 by default), approximated
    with a *fixed window with interpolation* (a "sliding window counter"): the count of
    the current fixed window plus the previous window's count weighted by the part of
    it still inside the sliding window, ``prev * (1 - elapsed/window) + cur``. O(1)
    memory per scope and exact at window boundaries; between them it assumes the
    previous window's requests were spread evenly. ``tpm`` reserves the request's
    ``est_tokens`` at acquire and replaces the estimate by the actual count at release
    (in the window the reservation went into, when that window is still remembered).
    A request whose estimate alone is larger than ``tpm`` can never pass and says so.
``max_parallel``
    Requests in flight (acquired and not yet released).
``budget_daily`` / ``budget_monthly`` / ``budget_total`` (USD)
    ``spent + reserved + est_cost <= budget`` where ``spent`` is the settled spend of
    the period and ``reserved`` the estimates of requests in flight. Periods are UTC:
    the daily budget resets at 00:00 UTC, the monthly one at 00:00 UTC on the 1st, the
    total one never. So many concurrent requests overspend by at most what their actual
    costs exceed their estimates (zero when estimates are upper bounds).
    :meth:`Limiter.extend` raises a ticket's reservation mid-request (a fallback to a
    dearer deployment) with the same check, so a request never spends more than it holds.

Backends
--------
:class:`MemoryLimiter` (default) keeps the counters in the process. Check-and-reserve
runs without an ``await`` under a ``threading.Lock`` (uncontended on one event loop,
correct from several threads). A few microseconds per acquire+release.

:class:`RedisLimiter` shares them between processes: one Lua script (``EVALSHA``, one
round trip) checks and reserves across all scopes of a request, another settles it.
Time comes from Redis ``TIME`` inside the scripts, so every process uses one clock.
Requests in flight are leases (a sorted set of ticket ids scored by expiry, ``lease``
seconds, 10 min by default) pruned by the acquire script, so a process that dies
mid-request cannot hold a concurrency slot or a budget reservation for ever. Keys
(``prefix`` default ``podium:lim:``): ``{prefix}{kind}:{id}`` (hash of counters and
spend; no expiry, it holds the total spend), ``…:inf`` (leases), ``…:tk`` (each
lease's cost estimate). All keys of a request are touched by one script, so with Redis
Cluster give the prefix a hash tag (``podium:{lim}:``). If Redis cannot be reached,
acquire fails closed with 503 (budgets are money); release logs and drops the
settlement.

Errors
------
Every refusal is :class:`~podium.errors.TooManyRequests` whose message names the scope,
the limit and what to do, with ``retry_after`` in whole seconds: until enough of the
window slides out (rpm/tpm), 1 s (concurrency, or a budget blocked only by requests in
flight), until the period resets (daily/monthly budgets). Refusals that waiting cannot
fix (a total budget spent, a limit of 0, an estimate above ``tpm``) carry
``retry_after=NEVER_RETRY_AFTER`` (a day) and ``details[0]["retryable"] is False``: the
gateway should tell clients not to retry (OpenAI SDKs honour ``x-should-retry: false``).
``details[0]`` also names ``scope``, ``scope_id``, ``limit``, ``limit_value`` and ``used``.

Spend lives only here (and in traces): nothing hits the database per request. Seed it
at start-up from the persisted totals with :meth:`Limiter.add_spend`. The scopes of one
request must be distinct.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from podium.errors import ConfigurationError, ServiceUnavailable, TooManyRequests, ValidationFailed

__all__ = [
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "RedisLimiter",
    "Scope",
    "Ticket",
    "make_limiter",
]

logger = logging.getLogger(__name__)

_EPS = 1e-9  # float slack for money and interpolated counts
NEVER_RETRY_AFTER = 86400.0  # Retry-After for limits that do not reset by waiting (details say retryable=False)
_UTC = dt.UTC

_INT_FIELDS = ("rpm", "tpm", "max_parallel")
_MONEY_FIELDS = ("budget_daily", "budget_monthly", "budget_total")


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one key or project. ``None`` means unlimited; 0 means nothing is allowed."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_daily: float | None = None
    budget_monthly: float | None = None
    budget_total: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Limits:
        """Build from a JSON object (API payload, config file); raises ValidationFailed naming bad fields."""
        if not d:
            return _NO_LIMITS
        if not isinstance(d, Mapping):
            raise ValidationFailed(
                f"limits must be an object like {{\"rpm\": 60, \"budget_daily\": 5.0}}, got {type(d).__name__}"
            )
        allowed = _INT_FIELDS + _MONEY_FIELDS
        unknown = sorted(str(k) for k in d if k not in allowed)
        details: list[dict[str, str]] = [{"field": k, "error": "unknown limit"} for k in unknown]
        values: dict[str, Any] = {}
        for name in allowed:
            v = d.get(name)
            if v is None:
                continue
            ok = not isinstance(v, bool) and isinstance(v, int | float | Decimal) and math.isfinite(float(v))
            if ok and name in _INT_FIELDS and isinstance(v, float | Decimal):
                ok = v == int(v)
            if not ok or float(v) < 0:
                kind = "a whole number" if name in _INT_FIELDS else "an amount in USD"
                details.append({"field": name, "error": f"must be {kind} >= 0 or null, got {v!r}"})
                continue
            values[name] = int(v) if name in _INT_FIELDS else float(v)
        if details:
            parts = []
            if unknown:
                parts.append(f"unknown limit(s) {', '.join(repr(k) for k in unknown)}")
            bad = [x["field"] for x in details if x["error"] != "unknown limit"]
            if bad:
                parts.append(f"invalid value for {', '.join(bad)} (use non-negative numbers or null)")
            raise ValidationFailed(
                f"bad limits: {'; '.join(parts)}. Allowed: {', '.join(allowed)}", details=details
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def empty(self) -> bool:
        return (
            self.rpm is None
            and self.tpm is None
            and self.max_parallel is None
            and self.budget_daily is None
            and self.budget_monthly is None
            and self.budget_total is None
        )


_NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing a request counts against."""

    kind: str  # "key" | "project"
    id: str  # key id or project id: what the counters are stored under
    label: str  # human name used in messages (key name / project name)
    limits: Limits = _NO_LIMITS


@dataclass(slots=True, eq=False)
class Ticket:
    """What :meth:`Limiter.acquire` hands out; give it back to :meth:`Limiter.release`."""

    id: str
    scopes: tuple[Scope, ...]
    est_tokens: int
    est_cost: float
    window: int  # index of the rpm/tpm window the reservation went into
    released: bool = False
    _states: list[Any] = field(default_factory=list, repr=False)  # MemoryLimiter's per-scope counters


@runtime_checkable
class Limiter(Protocol):
    async def acquire(self, scopes: Sequence[Scope], *, est_tokens: int, est_cost: float) -> Ticket: ...

    async def release(self, ticket: Ticket, *, tokens: int, cost: float) -> None: ...

    async def extend(self, ticket: Ticket, *, est_cost: float) -> None: ...

    async def usage(self, scope_kind: str, scope_id: str) -> dict[str, Any]: ...

    async def add_spend(
        self, scope_kind: str, scope_id: str, *, daily: float = 0.0, monthly: float = 0.0, total: float = 0.0,
        replace: bool = False,
    ) -> None: ...

    async def aclose(self) -> None: ...


# --- shared arithmetic -------------------------------------------------------------------


def _period_keys(now: float) -> tuple[int, int]:
    """(yyyymmdd, yyyymm) of the UTC day and month containing ``now``."""
    d = dt.datetime.fromtimestamp(now, _UTC)
    return d.year * 10000 + d.month * 100 + d.day, d.year * 100 + d.month


def _seconds_to_next_day(now: float) -> float:
    return (math.floor(now / 86400) + 1) * 86400 - now


def _seconds_to_next_month(now: float) -> float:
    d = dt.datetime.fromtimestamp(now, _UTC)
    nxt = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=_UTC)
    return nxt.timestamp() - now


def _day_str(key: int) -> str:
    return f"{key // 10000:04d}-{key // 100 % 100:02d}-{key % 100:02d}"


def _month_str(key: int) -> str:
    return f"{key // 100:04d}-{key % 100:02d}"


def _window_wait(prev: float, cur: float, need: float, limit: float, f: float, window: float) -> float | None:
    """Seconds until ``prev*(1-f) + cur + need <= limit`` as time passes; None when never."""
    room = limit - need
    if room < -_EPS:
        return None
    if cur <= room + _EPS:  # the previous window's share has to fade enough
        if prev <= 0:
            return 0.0
        f_need = 1.0 - (room - cur) / prev
        return max(0.0, f_need - f) * window
    g = 1.0 - room / cur  # cur becomes the previous window; wait into the next one
    return (1.0 - f) * window + g * window


def _retry(seconds: float) -> float:
    return float(max(1, math.ceil(seconds - 1e-6)))


def _usd(x: float) -> str:
    if x == 0 or abs(x) >= 0.01:
        return f"${x:,.2f}"
    return f"${x:.6f}".rstrip("0")


def _human(seconds: float) -> str:
    s = math.ceil(seconds)
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{h // 24} days"


def _per(window: float) -> str:
    return "min" if window == 60 else f"{window:g} s"


def _who(scope: Scope) -> str:
    return f"{scope.kind} '{scope.label or scope.id}'"


def _rate_error(
    scope: Scope, which: str, limit: int, prev: float, cur: float, need: float, f: float, window: float
) -> TooManyRequests:
    unit = "requests" if which == "rpm" else "tokens"
    used = prev * (1.0 - f) + cur
    wait = _window_wait(prev, cur, need, limit, f, window)
    details = [{"scope": scope.kind, "scope_id": scope.id, "limit": which, "limit_value": limit,
                "used": round(used, 3), "requested": need, "retryable": wait is not None}]
    if wait is None:
        if limit == 0:
            msg = f"{_who(scope)} allows 0 {unit}/{_per(window)}; raise its {which} limit to use it"
        else:
            msg = (f"{_who(scope)} allows {limit} {unit}/{_per(window)} but this request needs ~{need:g} "
                   f"{unit}; lower max_tokens or shorten the input, or raise the limit")
        return TooManyRequests(msg, retry_after=NEVER_RETRY_AFTER, details=details)
    ra = _retry(wait)
    if which == "rpm":
        msg = f"{_who(scope)} is over its limit of {limit} requests/{_per(window)}; retry after {ra:g} s"
    else:
        msg = (f"{_who(scope)} is over its limit of {limit} tokens/{_per(window)} (~{used:.0f} used, this "
               f"request needs ~{need:g}); retry after {ra:g} s")
    return TooManyRequests(msg, retry_after=ra, details=details)


def _parallel_error(scope: Scope, limit: int, in_flight: int) -> TooManyRequests:
    details = [{"scope": scope.kind, "scope_id": scope.id, "limit": "max_parallel", "limit_value": limit,
                "used": in_flight, "retryable": limit > 0}]
    if limit == 0:
        return TooManyRequests(f"{_who(scope)} allows 0 concurrent requests; raise its max_parallel limit",
                               retry_after=NEVER_RETRY_AFTER, details=details)
    return TooManyRequests(
        f"{_who(scope)} has {in_flight} requests in flight, its limit of {limit} concurrent requests; "
        "retry after 1 s", retry_after=1.0, details=details)


_PERIOD_TEXT = {"budget_daily": "per day", "budget_monthly": "per month", "budget_total": "in total"}


def _budget_error(
    scope: Scope, which: str, budget: float, spent: float, reserved: float, est: float, now: float
) -> TooManyRequests:
    reset: float | None
    if which == "budget_daily":
        reset = secs = _seconds_to_next_day(now)
        when = f"resets at 00:00 UTC (in {_human(secs)})"
    elif which == "budget_monthly":
        reset = secs = _seconds_to_next_month(now)
        when = f"resets on the 1st at 00:00 UTC (in {_human(secs)})"
    else:
        reset = None
        when = "a total budget does not reset"
    head = f"{_who(scope)} budget of {_usd(budget)} {_PERIOD_TEXT[which]}"
    fix = "raise the budget" if reset is not None else "raise it to continue"
    retryable = True
    if spent >= budget - _EPS:
        msg = f"{head} is spent ({_usd(spent)} used); {when} or {fix}"
        retry_after = reset
    elif spent + est > budget + _EPS:
        msg = (f"{head} has {_usd(budget - spent)} left, less than this request's estimated {_usd(est)}; "
               f"{when} or {fix}")
        retry_after = reset
    else:  # only the reservations of requests in flight are in the way: they settle soon
        msg = (f"{head} would be exceeded: {_usd(spent)} used + {_usd(reserved)} reserved by requests in flight "
               f"+ {_usd(est)} estimated for this request; retry after 1 s or raise the budget")
        retry_after = 1.0
    if retry_after is None:
        retryable = False
        retry_after = NEVER_RETRY_AFTER
    details = [{"scope": scope.kind, "scope_id": scope.id, "limit": which, "limit_value": budget,
                "used": round(spent, 6), "reserved": round(reserved, 6), "requested": est,
                "retryable": retryable}]
    return TooManyRequests(msg, retry_after=_retry(retry_after), details=details)


def _usage_dict(
    kind: str, sid: str, window: float, used_r: float, used_t: float, in_flight: int, reserved: float,
    day: int, ds: float, month: int, ms: float, ts: float,
) -> dict[str, Any]:
    return {
        "scope": {"kind": kind, "id": sid},
        "window_s": window,
        "rpm": round(used_r, 3),
        "tpm": round(used_t, 3),
        "in_flight": in_flight,
        "reserved_usd": round(reserved, 9),
        "spend": {
            "daily": {"period": _day_str(day), "usd": round(ds, 9)},
            "monthly": {"period": _month_str(month), "usd": round(ms, 9)},
            "total": {"period": None, "usd": round(ts, 9)},
        },
    }


# --- in-process ----------------------------------------------------------------------------


class _State:
    """Counters of one scope (MemoryLimiter)."""

    __slots__ = ("day", "ds", "inflight", "month", "ms", "rc", "reserved", "rp", "tc", "tp", "ts", "w")

    def __init__(self) -> None:
        self.w = 0  # window index of rc/tc
        self.rc = 0  # requests in window w
        self.rp = 0  # requests in window w-1
        self.tc = 0  # tokens in window w
        self.tp = 0  # tokens in window w-1
        self.inflight = 0
        self.reserved = 0.0
        self.day = 0
        self.ds = 0.0
        self.month = 0
        self.ms = 0.0
        self.ts = 0.0


class MemoryLimiter:
    """Limits and budgets kept in this process. ``clock`` returns Unix seconds (UTC)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, window: float = 60.0) -> None:
        if window <= 0:
            raise ConfigurationError("limiter window must be > 0 seconds (60 for per-minute limits)")
        self._clock = clock
        self.window = float(window)
        self._states: dict[tuple[str, str], _State] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._day_start = self._day_end = 0.0
        self._day = self._month = 0

    def _roll_periods(self, now: float) -> None:
        self._day, self._month = _period_keys(now)
        self._day_start = math.floor(now / 86400) * 86400.0
        self._day_end = self._day_start + 86400.0

    def _state(self, kind: str, sid: str) -> _State:
        st = self._states.get((kind, sid))
        if st is None:
            st = self._states[(kind, sid)] = _State()
        return st

    def _normalise(self, st: _State, w: int) -> None:
        if st.w != w:
            if st.w == w - 1:
                st.rp, st.tp = st.rc, st.tc
            else:
                st.rp = st.tp = 0
            st.rc = st.tc = 0
            st.w = w
        if st.day != self._day:
            st.day, st.ds = self._day, 0.0
        if st.month != self._month:
            st.month, st.ms = self._month, 0.0

    async def acquire(self, scopes: Sequence[Scope], *, est_tokens: int, est_cost: float) -> Ticket:
        return self.acquire_nowait(scopes, est_tokens=est_tokens, est_cost=est_cost)

    def acquire_nowait(self, scopes: Sequence[Scope], *, est_tokens: int, est_cost: float) -> Ticket:
        """Synchronous :meth:`acquire` (the in-process backend never waits)."""
        now = self._clock()
        W = self.window
        x = now / W
        w = math.floor(x)
        f = x - w
        states: list[_State] = []
        with self._lock:
            if now >= self._day_end or now < self._day_start:
                self._roll_periods(now)
            for sc in scopes:
                st = self._states.get((sc.kind, sc.id))
                if st is None:
                    st = self._states[(sc.kind, sc.id)] = _State()
                self._normalise(st, w)
                lim = sc.limits
                if lim.rpm is not None and st.rp * (1.0 - f) + st.rc + 1 > lim.rpm + _EPS:
                    raise _rate_error(sc, "rpm", lim.rpm, st.rp, st.rc, 1, f, W)
                if lim.tpm is not None:
                    used = st.tp * (1.0 - f) + st.tc
                    if used + est_tokens > lim.tpm + _EPS or used >= lim.tpm:
                        raise _rate_error(sc, "tpm", lim.tpm, st.tp, st.tc, est_tokens, f, W)
                if lim.max_parallel is not None and st.inflight >= lim.max_parallel:
                    raise _parallel_error(sc, lim.max_parallel, st.inflight)
                # a budget is over when it is spent, or when this request's estimate does not fit
                # next to what is spent and what requests in flight have reserved
                res = st.reserved + est_cost
                b = lim.budget_daily
                if b is not None and (st.ds >= b - _EPS or st.ds + res > b + _EPS):
                    raise _budget_error(sc, "budget_daily", b, st.ds, st.reserved, est_cost, now)
                b = lim.budget_monthly
                if b is not None and (st.ms >= b - _EPS or st.ms + res > b + _EPS):
                    raise _budget_error(sc, "budget_monthly", b, st.ms, st.reserved, est_cost, now)
                b = lim.budget_total
                if b is not None and (st.ts >= b - _EPS or st.ts + res > b + _EPS):
                    raise _budget_error(sc, "budget_total", b, st.ts, st.reserved, est_cost, now)
                states.append(st)
            for st in states:
                st.rc += 1
                st.tc += est_tokens
                st.inflight += 1
                st.reserved += est_cost
        return Ticket(str(next(self._seq)), tuple(scopes), est_tokens, est_cost, w, False, states)

    async def release(self, ticket: Ticket, *, tokens: int, cost: float) -> None:
        self.release_nowait(ticket, tokens=tokens, cost=cost)

    async def extend(self, ticket: Ticket, *, est_cost: float) -> None:
        self.extend_nowait(ticket, est_cost=est_cost)

    def extend_nowait(self, ticket: Ticket, *, est_cost: float) -> None:
        """Synchronous :meth:`extend`: raise the ticket's cost reservation to ``est_cost``.

        Every budget of every scope must still hold ``spent + reserved by others + est_cost``;
        otherwise nothing changes and the budget's TooManyRequests is raised. A lower
        ``est_cost`` than the ticket holds, or a released ticket, changes nothing."""
        extra = est_cost - ticket.est_cost
        if extra <= 0 or ticket.released:
            return
        now = self._clock()
        w = math.floor(now / self.window)
        with self._lock:
            if ticket.released:
                return
            if now >= self._day_end or now < self._day_start:
                self._roll_periods(now)
            for sc, st in zip(ticket.scopes, ticket._states, strict=True):
                self._normalise(st, w)
                lim = sc.limits
                others = max(0.0, st.reserved - ticket.est_cost)
                for which, spent in (("budget_daily", st.ds), ("budget_monthly", st.ms), ("budget_total", st.ts)):
                    b = getattr(lim, which)
                    if b is not None and (spent >= b - _EPS or spent + others + est_cost > b + _EPS):
                        raise _budget_error(sc, which, b, spent, others, est_cost, now)
            for st in ticket._states:
                st.reserved += extra
            ticket.est_cost = est_cost

    def release_nowait(self, ticket: Ticket, *, tokens: int, cost: float) -> None:
        """Synchronous :meth:`release`."""
        now = self._clock()
        delta = tokens - ticket.est_tokens
        tw = ticket.window
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            if now >= self._day_end or now < self._day_start:
                self._roll_periods(now)
            for st in ticket._states:
                st.inflight -= 1
                if st.inflight <= 0:
                    st.inflight = 0
                    st.reserved = 0.0  # also clears float drift
                else:
                    st.reserved -= ticket.est_cost
                if delta:
                    if st.w == tw:
                        st.tc = max(0, st.tc + delta)
                    elif st.w == tw + 1:
                        st.tp = max(0, st.tp + delta)
                if cost:
                    if st.day != self._day:
                        st.day, st.ds = self._day, 0.0
                    if st.month != self._month:
                        st.month, st.ms = self._month, 0.0
                    st.ds += cost
                    st.ms += cost
                    st.ts += cost

    async def usage(self, scope_kind: str, scope_id: str) -> dict[str, Any]:
        now = self._clock()
        x = now / self.window
        w = math.floor(x)
        f = x - w
        with self._lock:
            if now >= self._day_end or now < self._day_start:
                self._roll_periods(now)
            st = self._state(scope_kind, scope_id)
            self._normalise(st, w)
            return _usage_dict(scope_kind, scope_id, self.window, st.rp * (1 - f) + st.rc,
                               st.tp * (1 - f) + st.tc, st.inflight, st.reserved,
                               st.day, st.ds, st.month, st.ms, st.ts)

    async def add_spend(
        self, scope_kind: str, scope_id: str, *, daily: float = 0.0, monthly: float = 0.0, total: float = 0.0,
        replace: bool = False,
    ) -> None:
        """Add (or with ``replace=True`` set) the spend of the current day, month and in total."""
        now = self._clock()
        with self._lock:
            if now >= self._day_end or now < self._day_start:
                self._roll_periods(now)
            st = self._state(scope_kind, scope_id)
            self._normalise(st, math.floor(now / self.window))
            if replace:
                st.ds, st.ms, st.ts = float(daily), float(monthly), float(total)
            else:
                st.ds += float(daily)
                st.ms += float(monthly)
                st.ts += float(total)

    async def aclose(self) -> None:
        return None


# --- Redis -----------------------------------------------------------------------------------

_LUA_PERIODS = """
local function periods(now)
  local z = math.floor(now / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y * 10000 + m * 100 + d, y * 100 + m
end
local function words(s)
  local t = {}
  for x in string.gmatch(s, '[^ ]+') do t[#t + 1] = x end
  return t
end
local function clock(offset)
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(offset)
end
"""

# Few arguments on purpose: encoding them is most of the client's cost.
# KEYS: per scope i: hash, leases zset, lease-estimates hash.
# ARGV[1]: "tid est_tokens est_cost lease_s window_s offset"; ARGV[1 + i]: "rpm tpm par bd bm bt" of
# scope i ('-' = none). Returns {1, window, now} or {0, scope_index, limit, a, b, c, now} (numbers as strings).
_LUA_ACQUIRE = _LUA_PERIODS + """
local hd = words(ARGV[1])
local tid, est_cs = hd[1], hd[3]
local now = clock(hd[6])
local W = tonumber(hd[5])
local w = math.floor(now / W)
local f = now / W - w
local day, month = periods(now)
local est_t = tonumber(hd[2])
local est_c = tonumber(est_cs)
local now_ms = math.floor(now * 1000)
local lease_ms = math.floor(tonumber(hd[4]) * 1000)
local n = #KEYS / 3
local EPS = 1e-9
local st = {}
for i = 1, n do
  local h, inf, tk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local l = words(ARGV[1 + i])
  local rpm, tpm, par = tonumber(l[1]), tonumber(l[2]), tonumber(l[3])
  local bd, bm, bt = tonumber(l[4]), tonumber(l[5]), tonumber(l[6])
  local v = redis.call('HMGET', h, 'w', 'rc', 'rp', 'tc', 'tp', 'res', 'dk', 'ds', 'mk', 'ms', 'ts')
  local sw = tonumber(v[1])
  local rc, rp, tc, tp = tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0, tonumber(v[5]) or 0
  if sw ~= w then
    if sw == w - 1 then rp = rc; tp = tc else rp = 0; tp = 0 end
    rc = 0; tc = 0
  end
  local res = tonumber(v[6]) or 0
  local ds, ms = 0, 0
  if tonumber(v[7]) == day then ds = tonumber(v[8]) or 0 end
  if tonumber(v[9]) == month then ms = tonumber(v[10]) or 0 end
  local ts = tonumber(v[11]) or 0
  -- leases of requests whose process died (or that outlived the lease) give their share back
  local expired = redis.call('ZRANGEBYSCORE', inf, '-inf', now_ms, 'LIMIT', 0, 500)
  if #expired > 0 then
    local ests = redis.call('HMGET', tk, unpack(expired))
    for j = 1, #expired do res = res - (tonumber(ests[j]) or 0) end
    redis.call('HDEL', tk, unpack(expired))
    redis.call('ZREM', inf, unpack(expired))
    redis.call('HSET', h, 'res', res)
  end
  local nin = redis.call('ZCARD', inf)
  if nin == 0 and res ~= 0 then res = 0; redis.call('HSET', h, 'res', 0) end
  if rpm and rp * (1 - f) + rc + 1 > rpm + EPS then
    return {0, i, 'rpm', tostring(rp), tostring(rc), '0', tostring(now)}
  end
  if tpm then
    local used = tp * (1 - f) + tc
    if used + est_t > tpm + EPS or used >= tpm then
      return {0, i, 'tpm', tostring(tp), tostring(tc), '0', tostring(now)}
    end
  end
  if par and nin >= par then return {0, i, 'max_parallel', tostring(nin), '0', '0', tostring(now)} end
  if bd and ((ds >= bd - EPS) or (ds + res + est_c > bd + EPS)) then
    return {0, i, 'budget_daily', tostring(ds), tostring(res), '0', tostring(now)}
  end
  if bm and ((ms >= bm - EPS) or (ms + res + est_c > bm + EPS)) then
    return {0, i, 'budget_monthly', tostring(ms), tostring(res), '0', tostring(now)}
  end
  if bt and ((ts >= bt - EPS) or (ts + res + est_c > bt + EPS)) then
    return {0, i, 'budget_total', tostring(ts), tostring(res), '0', tostring(now)}
  end
  st[i] = {rc, rp, tc, tp, tonumber(v[7]) ~= day, tonumber(v[9]) ~= month}
end
for i = 1, n do
  local h, inf, tk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local s = st[i]
  redis.call('HSET', h, 'w', w, 'rc', s[1] + 1, 'rp', s[2], 'tc', s[3] + est_t, 'tp', s[4])
  if s[5] then redis.call('HSET', h, 'dk', day, 'ds', 0) end
  if s[6] then redis.call('HSET', h, 'mk', month, 'ms', 0) end
  if est_c ~= 0 then redis.call('HINCRBYFLOAT', h, 'res', est_cs) end
  redis.call('ZADD', inf, now_ms + lease_ms, tid)
  redis.call('HSET', tk, tid, est_cs)
  redis.call('PEXPIRE', inf, lease_ms + 60000)
  redis.call('PEXPIRE', tk, lease_ms + 60000)
end
return {1, w, tostring(now)}
"""

# KEYS as for acquire. ARGV[1]: "tid token_delta -est_cost cost ticket_window offset".
_LUA_RELEASE = _LUA_PERIODS + """
local a = words(ARGV[1])
local now = clock(a[6])
local day, month = periods(now)
local tid, neg_est, cost_s = a[1], a[3], a[4]
local delta = tonumber(a[2])
local cost = tonumber(cost_s)
local tw = tonumber(a[5])
for i = 1, #KEYS / 3 do
  local h, inf, tk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('HDEL', tk, tid) == 1 then
    redis.call('ZREM', inf, tid)
    if redis.call('ZCARD', inf) == 0 then
      redis.call('HSET', h, 'res', 0)
    elseif tonumber(neg_est) ~= 0 then
      redis.call('HINCRBYFLOAT', h, 'res', neg_est)
    end
  end
  if delta ~= 0 then
    local v = redis.call('HMGET', h, 'w', 'tc', 'tp')
    local sw = tonumber(v[1])
    if sw == tw then
      redis.call('HSET', h, 'tc', math.max(0, (tonumber(v[2]) or 0) + delta))
    elseif sw == tw + 1 then
      redis.call('HSET', h, 'tp', math.max(0, (tonumber(v[3]) or 0) + delta))
    end
  end
  if cost ~= 0 then
    local v = redis.call('HMGET', h, 'dk', 'mk')
    if tonumber(v[1]) == day then redis.call('HINCRBYFLOAT', h, 'ds', cost_s)
    else redis.call('HSET', h, 'dk', day, 'ds', cost_s) end
    if tonumber(v[2]) == month then redis.call('HINCRBYFLOAT', h, 'ms', cost_s)
    else redis.call('HSET', h, 'mk', month, 'ms', cost_s) end
    redis.call('HINCRBYFLOAT', h, 'ts', cost_s)
  end
end
return 1
"""

# KEYS as for acquire. ARGV[1]: "tid new_est lease_s offset"; ARGV[1 + i]: "bd bm bt" of scope i ('-' = none).
# Raises the lease's estimate to new_est when every budget still holds it (a lease that expired is taken
# again). Returns {1} or {0, scope_index, limit, spent, reserved_by_others, now}.
_LUA_EXTEND = _LUA_PERIODS + """
local hd = words(ARGV[1])
local tid, new_s = hd[1], hd[2]
local new = tonumber(new_s)
local now = clock(hd[4])
local day, month = periods(now)
local now_ms = math.floor(now * 1000)
local lease_ms = math.floor(tonumber(hd[3]) * 1000)
local EPS = 1e-9
local n = #KEYS / 3
local own = {}
for i = 1, n do
  local h, tk = KEYS[3 * i - 2], KEYS[3 * i]
  local l = words(ARGV[1 + i])
  local bd, bm, bt = tonumber(l[1]), tonumber(l[2]), tonumber(l[3])
  local v = redis.call('HMGET', h, 'res', 'dk', 'ds', 'mk', 'ms', 'ts')
  local res = tonumber(v[1]) or 0
  local ds, ms = 0, 0
  if tonumber(v[2]) == day then ds = tonumber(v[3]) or 0 end
  if tonumber(v[4]) == month then ms = tonumber(v[5]) or 0 end
  local ts = tonumber(v[6]) or 0
  local mine = redis.call('HGET', tk, tid)
  own[i] = mine and tonumber(mine) or false
  local others = math.max(0, res - (own[i] or 0))
  if bd and ((ds >= bd - EPS) or (ds + others + new > bd + EPS)) then
    return {0, i, 'budget_daily', tostring(ds), tostring(others), tostring(now)}
  end
  if bm and ((ms >= bm - EPS) or (ms + others + new > bm + EPS)) then
    return {0, i, 'budget_monthly', tostring(ms), tostring(others), tostring(now)}
  end
  if bt and ((ts >= bt - EPS) or (ts + others + new > bt + EPS)) then
    return {0, i, 'budget_total', tostring(ts), tostring(others), tostring(now)}
  end
end
for i = 1, n do
  local h, inf, tk = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if own[i] then
    redis.call('HINCRBYFLOAT', h, 'res', tostring(new - own[i]))
  else
    redis.call('HINCRBYFLOAT', h, 'res', new_s)
    redis.call('ZADD', inf, now_ms + lease_ms, tid)
    redis.call('PEXPIRE', inf, lease_ms + 60000)
    redis.call('PEXPIRE', tk, lease_ms + 60000)
  end
  redis.call('HSET', tk, tid, new_s)
end
return {1}
"""

# KEYS: hash, leases. ARGV: offset. Read-only.
_LUA_USAGE = _LUA_PERIODS + """
local now = clock(ARGV[1])
local day, month = periods(now)
local v = redis.call('HMGET', KEYS[1], 'w', 'rc', 'rp', 'tc', 'tp', 'res', 'dk', 'ds', 'mk', 'ms', 'ts')
local nin = redis.call('ZCOUNT', KEYS[2], '(' .. math.floor(now * 1000), '+inf')
for j = 1, 11 do v[j] = v[j] or false end
return {tostring(now), day, month, nin, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]}
"""

# KEYS: hash. ARGV: daily, monthly, total, replace (0/1), offset.
_LUA_ADD_SPEND = _LUA_PERIODS + """
local now = clock(ARGV[5])
local day, month = periods(now)
local h = KEYS[1]
local v = redis.call('HMGET', h, 'dk', 'mk')
if tonumber(v[1]) ~= day then redis.call('HSET', h, 'dk', day, 'ds', 0) end
if tonumber(v[2]) ~= month then redis.call('HSET', h, 'mk', month, 'ms', 0) end
if ARGV[4] == '1' then
  redis.call('HSET', h, 'ds', ARGV[1], 'ms', ARGV[2], 'ts', ARGV[3])
else
  redis.call('HINCRBYFLOAT', h, 'ds', ARGV[1])
  redis.call('HINCRBYFLOAT', h, 'ms', ARGV[2])
  redis.call('HINCRBYFLOAT', h, 'ts', ARGV[3])
end
return 1
"""


def _arg(v: float | None) -> str:
    return "-" if v is None else repr(v)


def _num(v: Any) -> float:
    return float(v) if v not in (None, False, b"", "") else 0.0


class RedisLimiter:
    """Limits and budgets shared by every process using the same Redis and ``prefix``.

    ``window`` (seconds) and ``clock_offset`` (seconds added to Redis ``TIME``) exist for
    tests; leave them alone in production. ``lease`` bounds how long a request counts as
    in flight when its process dies before releasing it.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "podium:lim:",
        lease: float = 600.0,
        window: float = 60.0,
        clock_offset: float = 0.0,
        max_connections: int = 64,
        socket_timeout: float = 5.0,
    ) -> None:
        import redis.asyncio as aioredis

        if window <= 0 or lease <= 0:
            raise ConfigurationError("limiter window and lease must be > 0 seconds")
        self.url = url
        self.prefix = prefix
        self.lease = float(lease)
        self.window = float(window)
        self.clock_offset = float(clock_offset)
        self._redis = aioredis.Redis.from_url(
            url, decode_responses=True, max_connections=max_connections,
            socket_timeout=socket_timeout, socket_connect_timeout=min(socket_timeout, 2.0),
        )
        self._acquire = self._redis.register_script(_LUA_ACQUIRE)
        self._release = self._redis.register_script(_LUA_RELEASE)
        self._extend = self._redis.register_script(_LUA_EXTEND)
        self._usage = self._redis.register_script(_LUA_USAGE)
        self._add_spend = self._redis.register_script(_LUA_ADD_SPEND)
        self._tag = os.urandom(5).hex()
        self._seq = itertools.count(1)
        self._release_failures = 0

    def _keys(self, scopes: Sequence[Scope]) -> list[str]:
        keys: list[str] = []
        p = self.prefix
        for sc in scopes:
            base = f"{p}{sc.kind}:{sc.id}"
            keys += (base, base + ":inf", base + ":tk")
        return keys

    def _unavailable(self, exc: BaseException) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"rate limiter store at {self._safe_url()} is unreachable ({type(exc).__name__}: {exc}); "
            "check that Redis is running and PODIUM_REDIS_URL is right"
        )

    def _safe_url(self) -> str:
        url = self.url
        if "@" in url:  # hide credentials
            scheme, _, rest = url.partition("://")
            url = f"{scheme}://***@{rest.rpartition('@')[2]}"
        return url

    async def acquire(self, scopes: Sequence[Scope], *, est_tokens: int, est_cost: float) -> Ticket:
        from redis.exceptions import RedisError

        tid = f"{self._tag}.{os.getpid()}.{next(self._seq)}"
        args = [f"{tid} {int(est_tokens)} {float(est_cost)!r} {self.lease!r} {self.window!r} {self.clock_offset!r}"]
        for sc in scopes:
            lim = sc.limits
            args.append(f"{_arg(lim.rpm)} {_arg(lim.tpm)} {_arg(lim.max_parallel)} {_arg(lim.budget_daily)} "
                        f"{_arg(lim.budget_monthly)} {_arg(lim.budget_total)}")
        try:
            r = await self._acquire(keys=self._keys(scopes), args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if r[0] == 1:
            return Ticket(tid, tuple(scopes), int(est_tokens), float(est_cost), int(r[1]))
        sc = scopes[int(r[1]) - 1]
        which, a, b, now = r[2], float(r[3]), float(r[4]), float(r[6])
        lim = sc.limits
        W = self.window
        f = now / W - math.floor(now / W)
        if which == "rpm":
            raise _rate_error(sc, "rpm", lim.rpm or 0, a, b, 1, f, W)
        if which == "tpm":
            raise _rate_error(sc, "tpm", lim.tpm or 0, a, b, est_tokens, f, W)
        if which == "max_parallel":
            raise _parallel_error(sc, lim.max_parallel or 0, int(a))
        raise _budget_error(sc, which, getattr(lim, which), a, b, float(est_cost), now)

    async def release(self, ticket: Ticket, *, tokens: int, cost: float) -> None:
        from redis.exceptions import RedisError

        if ticket.released:
            return
        ticket.released = True
        args = [f"{ticket.id} {int(tokens) - ticket.est_tokens} {-ticket.est_cost!r} {float(cost)!r} "
                f"{ticket.window} {self.clock_offset!r}"]
        try:
            await self._release(keys=self._keys(ticket.scopes), args=args)
        except (RedisError, OSError) as exc:
            self._release_failures += 1
            log = logger.warning if self._release_failures == 1 or self._release_failures % 1000 == 0 else logger.debug
            log("could not settle a gateway request with the rate limiter at %s (%s: %s); its spend ($%s) is "
                "not counted, its concurrency slot frees when its lease ends (%d failures so far)",
                self._safe_url(), type(exc).__name__, exc, cost, self._release_failures)

    async def extend(self, ticket: Ticket, *, est_cost: float) -> None:
        """Raise the ticket's cost reservation to ``est_cost`` (see :meth:`MemoryLimiter.extend_nowait`).
        Fails closed (503) when Redis cannot be reached."""
        from redis.exceptions import RedisError

        if est_cost <= ticket.est_cost or ticket.released:
            return
        args = [f"{ticket.id} {float(est_cost)!r} {self.lease!r} {self.clock_offset!r}"]
        for sc in ticket.scopes:
            lim = sc.limits
            args.append(f"{_arg(lim.budget_daily)} {_arg(lim.budget_monthly)} {_arg(lim.budget_total)}")
        try:
            r = await self._extend(keys=self._keys(ticket.scopes), args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if r[0] != 1:
            sc = ticket.scopes[int(r[1]) - 1]
            which = r[2]
            raise _budget_error(sc, which, getattr(sc.limits, which), float(r[3]), float(r[4]), float(est_cost),
                                float(r[5]))
        ticket.est_cost = float(est_cost)

    async def usage(self, scope_kind: str, scope_id: str) -> dict[str, Any]:
        from redis.exceptions import RedisError

        base = f"{self.prefix}{scope_kind}:{scope_id}"
        try:
            r = await self._usage(keys=[base, base + ":inf"], args=[repr(self.clock_offset)])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        now, day, month, nin = float(r[0]), int(r[1]), int(r[2]), int(r[3])
        sw, rc, rp, tc, tp, res, dk, ds, mk, ms, ts = r[4:15]
        W = self.window
        w = math.floor(now / W)
        f = now / W - w
        rc, rp, tc, tp = _num(rc), _num(rp), _num(tc), _num(tp)
        sw_i = int(_num(sw)) if sw else None
        if sw_i != w:
            if sw_i == w - 1:
                rp, tp = rc, tc
            else:
                rp = tp = 0.0
            rc = tc = 0.0
        ds_f = _num(ds) if dk and int(dk) == day else 0.0
        ms_f = _num(ms) if mk and int(mk) == month else 0.0
        return _usage_dict(scope_kind, scope_id, W, rp * (1 - f) + rc, tp * (1 - f) + tc, nin,
                           _num(res) if nin else 0.0, day, ds_f, month, ms_f, _num(ts))

    async def add_spend(
        self, scope_kind: str, scope_id: str, *, daily: float = 0.0, monthly: float = 0.0, total: float = 0.0,
        replace: bool = False,
    ) -> None:
        """Add (or with ``replace=True`` set) the spend of the current day, month and in total.

        Every process sharing Redis sees the same counters: seed them once (or with
        ``replace=True``, which is safe to repeat), not once per process with adds.
        """
        from redis.exceptions import RedisError

        try:
            await self._add_spend(
                keys=[f"{self.prefix}{scope_kind}:{scope_id}"],
                args=[repr(float(daily)), repr(float(monthly)), repr(float(total)), "1" if replace else "0",
                      repr(self.clock_offset)],
            )
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_limiter(redis_url: str | None, *, prefix: str = "podium:lim:", lease: float = 600.0) -> Limiter:
    """The Redis limiter when ``redis_url`` is set (PODIUM_REDIS_URL), else the in-process one."""
    if redis_url:
        return RedisLimiter(redis_url, prefix=prefix, lease=lease)
    return MemoryLimiter()
