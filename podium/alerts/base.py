"""The alert channel contract: an :class:`Alert` (what fired), a :class:`Channel` (where it goes)
and the :class:`Delivery` record of one send. ``Channel.send`` never raises into its caller: a
refused, unreachable or broken destination becomes a failed ``Delivery`` (and a log line), so an
alert evaluator can go on to its next channel. Retries with a doubling backoff cover 5xx, 429,
timeouts and refused connections; 4xx answers fail at once (retrying will not fix a bad key)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

__all__ = ["SEVERITIES", "STATUSES", "Alert", "Channel", "Delivery", "DeliveryError", "Severity", "Status",
           "resolve_secret"]

log = logging.getLogger("podium.alerts")

Severity = Literal["info", "warning", "critical"]
Status = Literal["firing", "resolved"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
STATUSES: tuple[Status, ...] = ("firing", "resolved")


def _parse_time(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


@dataclass
class Alert:
    """One alert notification: a rule's state change (``firing`` or ``resolved``) in a project.

    ``dedup_key`` ties a ``resolved`` to its ``firing`` (PagerDuty incidents, e-mail threads);
    left empty, :attr:`key` derives one from project, rule and labels."""

    rule: str
    project: str
    title: str
    severity: Severity = "warning"
    status: Status = "firing"
    summary: str = ""
    value: float | None = None
    threshold: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    url: str | None = None
    dedup_key: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")
        if self.status not in STATUSES:
            raise ValueError(f"alert status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        if not self.rule or not self.project or not self.title:
            raise ValueError("an alert needs a rule, a project and a title")
        self.started_at = _parse_time(self.started_at) or datetime.now(UTC)
        self.ended_at = _parse_time(self.ended_at)
        self.labels = {str(k): str(v) for k, v in (self.labels or {}).items()}

    @property
    def key(self) -> str:
        """The deduplication key: ``dedup_key``, else ``project/rule`` plus a hash of the labels."""
        if self.dedup_key:
            return self.dedup_key[:255]
        base = f"podium/{self.project}/{self.rule}"
        if self.labels:
            digest = hashlib.sha256(json.dumps(sorted(self.labels.items())).encode()).hexdigest()[:12]
            base += f"/{digest}"
        return base[:255]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["ended_at"] = self.ended_at.isoformat() if self.ended_at else None
        out["dedup_key"] = self.key
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Delivery:
    """What one ``send`` did: ``ok``, the destination's ``status`` (HTTP or SMTP code, when it
    answered), the ``error`` (secrets scrubbed), the time it took over all ``attempts``."""

    channel: str
    ok: bool
    status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeliveryError(Exception):
    """Raised by a channel's ``_deliver``; ``send`` turns it into a failed :class:`Delivery`."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def resolve_secret(value: str, field_name: str) -> str:
    """``env:NAME`` reads environment variable ``NAME`` (at build time); anything else is itself."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        got = os.environ.get(name)
        if not name or got is None:
            raise ValueError(f"{field_name} reads environment variable {name!r}, which is not set; "
                             f"export it, or give {field_name} directly")
        return got
    return value


class Channel:
    """An alert destination. Subclasses set ``name``, take their config as keyword parameters
    (calling ``super().__init__`` with the retry settings) and implement ``_deliver(alert)``,
    which returns the destination's status code or raises :class:`DeliveryError`.

    ``target`` is a description of the destination that is safe to log (no secrets); every
    string in ``_secrets`` is scrubbed from error messages."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, *, timeout_s: float = 10.0, retries: int = 2, backoff_s: float = 0.5) -> None:
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        if not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ValueError("retries must be an integer from 0 to 10")
        if not 0 <= backoff_s <= 60:
            raise ValueError("backoff_s must be from 0 to 60 seconds")
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.target = ""
        self._secrets: list[str] = []

    def _deliver(self, alert: Alert) -> int | None:
        raise NotImplementedError

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            if s:
                text = text.replace(s, "***")
        return text

    def send(self, alert: Alert) -> Delivery:
        """Deliver ``alert``, retrying transient failures; never raises (but for interrupts)."""
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                status = self._deliver(alert)
            except DeliveryError as e:
                err = e
            except Exception as e:  # a channel bug or an unexpected library error: still a Delivery
                err = DeliveryError(f"{type(e).__name__}: {e}")
            else:
                d = Delivery(self.name, True, status, None, (time.perf_counter() - t0) * 1000, attempt, self.target)
                log.info("alert %s (%s) sent via %s to %s in %.0f ms", alert.rule, alert.status, self.name,
                         self.target, d.latency_ms)
                return d
            if not err.retryable or attempt > self.retries:
                break
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        message = self._scrub(str(err))
        d = Delivery(self.name, False, err.status, message, (time.perf_counter() - t0) * 1000, attempt, self.target)
        log.warning("alert %s (%s) via %s to %s failed after %d attempt(s): %s", alert.rule, alert.status,
                    self.name, self.target, attempt, message)
        return d

    async def asend(self, alert: Alert) -> Delivery:
        """``send`` in a worker thread, for async callers."""
        return await asyncio.to_thread(self.send, alert)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} -> {self.target}>"
