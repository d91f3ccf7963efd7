"""BatchExporter: a bounded queue and one daemon worker that sends batches to
``POST {base_url}/api/v1/ingest``.

Life of an item::

    caller thread                      worker thread (started on first enqueue)
    ─────────────                      ───────────────────────────────────────
    enqueue(span) ── put_nowait ──►  queue ──► batch (flush_at items or flush_interval s)
      full? drop + count + WARN                  └─► serialize + mask (here, not on the caller)
                                                 └─► POST; retry 429/5xx/network with backoff;
                                                     split on 413; count sent / failed

Delivery semantics (``FlushResult`` counters are cumulative):

- ``sent``: acknowledged by the server (200/207 successes).
- ``dropped``: never queued: the queue was full, the client has no keys, or it was
  already shut down.
- ``failed``: queued but given up: rejected items of a 207, a 400/401/403/404/422 batch,
  a single item still too large after 413 splits, retries exhausted on 429/5xx/network
  errors, or still queued when ``shutdown`` ran out of time.
- ``pending``: queued or in flight right now.

Items carry client-generated ids and the server upserts by id, so a retried batch never
creates duplicates. Memory stays bounded when the server is down: the queue holds at most
``max_queue_size`` items and the worker one batch.
"""

from __future__ import annotations

import atexit
import email.utils
import json
import logging
import os
import queue
import random
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic
from typing import Any, Protocol

import httpx

from podium.sdk.serialize import Encoder

__all__ = ["BatchExporter", "Exportable", "FlushResult", "parse_retry_after"]

logger = logging.getLogger(__name__)

WARNING_INTERVAL = 10.0  # seconds between two WARNINGs about the same kind of data loss
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 60.0
FATAL_STATUSES = frozenset({400, 401, 403, 404, 422})


class Exportable(Protocol):
    def to_item(self, enc: Encoder) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class FlushResult:
    """Cumulative delivery counters of one client (see the module docstring)."""

    sent: int
    dropped: int
    failed: int
    pending: int


class _FlushMarker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (fractions accepted)
    or an HTTP date. Capped at 60 s; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX)


def _server_message(response: httpx.Response) -> str:
    """The message of the pinned error shape ``{"error": {"code", "message", "details"}}``."""
    try:
        data = response.json()
    except Exception:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        message = f"{err.get('code', 'error')}: {err.get('message', '')}"
        details = err.get("details")
        if isinstance(details, list) and details:
            message += f" ({details[0]})"
        return message[:500]
    return (response.text or response.reason_phrase)[:500]


class BatchExporter:
    """Bounded queue + daemon worker. Thread-safe; never raises from ``enqueue``."""

    def __init__(
        self,
        *,
        endpoint: str,
        auth: tuple[str, str] | None,
        encoder: Encoder,
        http_client: httpx.Client | None = None,
        timeout: float = 10.0,
        flush_at: int = 512,
        flush_interval: float = 1.0,
        max_queue_size: int = 100_000,
        max_retries: int = 5,
        retry_backoff: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self._auth = auth
        self._basic_auth = httpx.BasicAuth(*auth) if auth is not None else None
        self._encoder = encoder
        self._timeout = timeout
        self._flush_at = flush_at
        self._flush_interval = flush_interval
        self._max_queue_size = max_queue_size
        self._max_retries = max_retries
        self._retry_backoff = retry_backoff
        self._owns_http = http_client is None
        self._http = http_client
        self._closed = False
        self._atexit_registered = False
        self._init_runtime()

    def _init_runtime(self) -> None:
        """Everything a forked child must not share with its parent."""
        self._queue: queue.Queue[Any] = queue.Queue(self._max_queue_size)
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._closing = threading.Event()
        self._wake = threading.Event()  # "a full batch (or a flush) is waiting": ends the interval early
        self._thread: threading.Thread | None = None
        self._inflight = 0
        self._sent = 0
        self._failed = 0
        self._dropped = 0
        self._warned: dict[str, float] = {}
        self._unwarned: dict[str, int] = {}

    # --- caller side (hot path) ----------------------------------------------------------

    def enqueue(self, item: Exportable) -> None:
        if self._thread is None and not self._start():
            self._drop("unsendable")
            return
        q = self._queue
        try:
            q.put_nowait(item)
        except queue.Full:
            self._drop("queue_full")
            return
        if len(q.queue) >= self._flush_at:
            self._wake.set()

    def counters(self) -> FlushResult:
        return FlushResult(
            sent=self._sent,
            dropped=self._dropped,
            failed=self._failed,
            pending=self._queue.qsize() + self._inflight,
        )

    def flush(self, timeout: float | None = 30.0) -> FlushResult:
        """Wait until every item queued before this call is sent or given up, or until
        ``timeout`` seconds pass (None: no limit). Returns the counters."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wait_for_marker(thread, None if timeout is None else monotonic() + timeout)
        return self.counters()

    def shutdown(self, timeout: float | None = 10.0) -> FlushResult:
        """Flush (up to ``timeout``), stop the worker and close the HTTP client it owns.
        Items still queued after the timeout count as failed; later items as dropped."""
        with self._lock:
            if self._closed:
                return self.counters()
            self._closed = True
        if self._atexit_registered:
            atexit.unregister(self._atexit)
            self._atexit_registered = False
        deadline = None if timeout is None else monotonic() + timeout
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wait_for_marker(thread, deadline)
            self._closing.set()  # abandon retries still going on
            try:
                self._queue.put(_STOP, timeout=_remaining(deadline, floor=0.5))
            except queue.Full:
                pass
            self._wake.set()
            thread.join(_remaining(deadline, floor=1.0))
        self._thread = None
        self._discard_queued()
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None
        return self.counters()

    # --- internals -----------------------------------------------------------------------

    def _start(self) -> bool:
        with self._lock:
            if self._thread is not None:
                return True
            if self._closed or self._auth is None:
                return False
            thread = threading.Thread(target=self._run, name="podium-exporter", daemon=True)
            thread.start()
            self._thread = thread
            if not self._atexit_registered:
                atexit.register(self._atexit)
                self._atexit_registered = True
            _track_for_fork(self)
            return True

    def _atexit(self) -> None:
        result = self.shutdown(timeout=5.0)
        if result.pending:
            logger.warning("Podium: %d items were still unsent at exit", result.pending)

    def _wait_for_marker(self, thread: threading.Thread, deadline: float | None) -> None:
        marker = _FlushMarker()
        try:
            self._queue.put(marker, timeout=_remaining(deadline))
        except queue.Full:
            return
        self._wake.set()
        while thread.is_alive():
            wait = _remaining(deadline)
            if marker.done.wait(0.25 if wait is None else min(wait, 0.25)):
                return
            if deadline is not None and monotonic() >= deadline:
                return

    def _discard_queued(self) -> None:
        lost = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and not isinstance(item, _FlushMarker):
                lost += 1
        if lost:
            self._failed += lost
            self._warn("shutdown", f"{lost} items were still queued at shutdown and are lost")

    def _drop(self, reason: str) -> None:
        with self._count_lock:
            self._dropped += 1
        if reason in self._warned and reason != "queue_full" and not self._closed:
            return  # "no keys" is said once; do not pay for logging on every span
        if reason == "queue_full":
            self._warn(
                reason,
                f"the SDK queue is full (max_queue_size={self._max_queue_size}) and items are being "
                f"dropped ({self._dropped} in all). The server at {self.endpoint} may be down or "
                "too slow: check it, or raise PODIUM_MAX_QUEUE_SIZE.",
            )
        elif self._closed:
            self._warn("closed", "a span or score was recorded after shutdown() and is dropped")
        else:
            self._warn(
                reason,
                "tracing has no keys, so spans and scores are dropped: set PODIUM_PUBLIC_KEY and "
                "PODIUM_SECRET_KEY (`podium up` prints them) or pass public_key=/secret_key= "
                "to podium.configure().",
                once=True,
            )

    def _warn(self, key: str, message: str, *, once: bool = False) -> None:
        """WARNING at most once per WARNING_INTERVAL per key (``once``: per exporter)."""
        now = monotonic()
        with self._count_lock:
            last = self._warned.get(key)
            due = last is None or (not once and now - last >= WARNING_INTERVAL)
            if due:
                self._warned[key] = now
                repeats = self._unwarned.pop(key, 0)
            else:
                self._unwarned[key] = self._unwarned.get(key, 0) + 1
        if due:
            suffix = f" ({repeats} similar messages suppressed)" if repeats else ""
            logger.warning("Podium: %s%s", message, suffix)
        else:
            logger.debug("Podium: %s", message)

    # --- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        q = self._queue
        while True:
            batch, markers, stop = self._collect(q)
            if batch:
                self._inflight = len(batch)
                try:
                    self._send(batch)
                except Exception as exc:  # a bug of ours: count, log, keep the worker alive
                    self._failed += len(batch)
                    logger.warning(
                        "Podium: exporter error, %d items lost: %r", len(batch), exc, exc_info=True
                    )
                finally:
                    self._inflight = 0
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _collect(self, q: queue.Queue[Any]) -> tuple[list[Exportable], list[_FlushMarker], bool]:
        """Wait for the next batch: ``flush_at`` items, ``flush_interval`` seconds after the
        first one, or a flush/stop marker. Producers do not wake the worker per item: it
        sleeps on ``_wake``, which they set only once a full batch is queued."""
        batch: list[Exportable] = []
        markers: list[_FlushMarker] = []
        item = q.get()  # idle: block without waking up
        deadline = monotonic() + self._flush_interval
        while True:
            if item is _STOP:
                return batch, markers, True
            if isinstance(item, _FlushMarker):
                markers.append(item)
                return batch, markers, False
            batch.append(item)
            if len(batch) >= self._flush_at:
                return batch, markers, False
            item = self._next(q, deadline)
            if item is None:
                return batch, markers, False

    def _next(self, q: queue.Queue[Any], deadline: float) -> Any:
        while True:
            try:
                return q.get_nowait()
            except queue.Empty:
                pass
            wait = deadline - monotonic()
            if wait <= 0:
                return None
            self._wake.wait(wait)
            self._wake.clear()

    def _send(self, batch: list[Exportable]) -> None:
        encoded: list[str] = []
        for item in batch:
            try:
                encoded.append(
                    json.dumps(
                        item.to_item(self._encoder),
                        ensure_ascii=False,
                        separators=(",", ":"),
                        allow_nan=False,
                    )
                )
            except Exception as exc:
                self._failed += 1
                self._warn("encode", f"an item could not be encoded and is lost: {exc!r}")
        if encoded:
            self._deliver(encoded)

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout)
        return self._http

    def _deliver(self, items: list[str]) -> None:
        payload = ('{"batch":[' + ",".join(items) + "]}").encode()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._client().post(
                    self.endpoint,
                    content=payload,
                    headers={"Content-Type": "application/json"},
                    auth=self._basic_auth if self._basic_auth is not None else httpx.USE_CLIENT_DEFAULT,
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except Exception as exc:
                self._give_up(len(items), f"unexpected {type(exc).__name__}: {exc}")
                return
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self._account(len(items), response)
                    return
                if status == 413:
                    if len(items) == 1:
                        self._give_up(1, "an item is larger than the server accepts (413); it is lost")
                        return
                    half = len(items) // 2
                    logger.debug("Podium: 413 for %d items, splitting", len(items))
                    self._deliver(items[:half])
                    self._deliver(items[half:])
                    return
                if status != 429 and status < 500:
                    hint = ""
                    if status in (401, 403):
                        hint = " Check PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY."
                    elif status == 404:
                        hint = f" Check PODIUM_BASE_URL (posted to {self.endpoint})."
                    self._give_up(len(items), f"HTTP {status} {_server_message(response)}.{hint}")
                    return
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                reason = f"HTTP {status} {_server_message(response)}"
            if attempt >= self._max_retries or self._closing.is_set():
                self._give_up(len(items), f"gave up after {attempt + 1} attempts, last: {reason}")
                return
            if retry_after is not None:
                # Up to 20% later than asked: clients refused in the same burst do not all come back
                # in the same instant (the server's Retry-After is whole seconds).
                delay = retry_after * (1.0 + random.random() / 5)
            else:
                delay = min(BACKOFF_MAX, self._retry_backoff * 2**attempt) * (0.5 + random.random() / 2)
            attempt += 1
            logger.debug("Podium: %s; retry %d in %.2fs", reason, attempt, delay)
            self._closing.wait(delay)

    def _account(self, n: int, response: httpx.Response) -> None:
        try:
            data = response.json()
        except Exception:
            data = None
        errors = data.get("errors") if isinstance(data, dict) else None
        rejected: set[int] = set()
        first: Any = None
        if isinstance(errors, list):
            for err in errors:
                index = err.get("index") if isinstance(err, dict) else None
                if isinstance(index, int) and 0 <= index < n:
                    rejected.add(index)
                    first = first if first is not None else err
        self._sent += n - len(rejected)
        if rejected:
            self._failed += len(rejected)
            message = first.get("message") if isinstance(first, dict) else first
            self._warn(
                "rejected",
                f"the server rejected {len(rejected)} of {n} items ({self._failed} failed in all); "
                f"first: {message}",
            )

    def _give_up(self, n: int, reason: str) -> None:
        self._failed += n
        self._warn("failed", f"{n} items could not be delivered ({self._failed} failed in all): {reason}")

    def _reinit_after_fork(self) -> None:
        """In a forked child: fresh queue, locks, thread and counters; the parent's items
        stay with the parent. An HTTP client we own is replaced (its sockets belong to
        the parent); one passed in by the caller is kept."""
        self._init_runtime()
        if self._owns_http:
            self._http = None


def _remaining(deadline: float | None, floor: float = 0.0) -> float | None:
    if deadline is None:
        return None
    return max(deadline - monotonic(), floor)


_EXPORTERS: weakref.WeakSet[BatchExporter] = weakref.WeakSet()
_fork_hook_registered = False


def _track_for_fork(exporter: BatchExporter) -> None:
    global _fork_hook_registered
    _EXPORTERS.add(exporter)
    try:
        from multiprocessing import util

        util.register_after_fork(exporter, _flush_at_process_exit)
    except Exception:  # pragma: no cover - never let tracking fail
        logger.debug("could not register the multiprocessing flush", exc_info=True)
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True


def _after_fork_in_child() -> None:
    for exporter in list(_EXPORTERS):
        exporter._reinit_after_fork()



def _flush_at_process_exit(exporter: BatchExporter) -> None:
    """multiprocessing children end with os._exit(), which skips atexit. multiprocessing clears
    its finalizers in a new child and then runs its after-fork hooks: register the flush there."""
    from multiprocessing import util

    util.Finalize(exporter, exporter.shutdown, kwargs={"timeout": 5.0}, exitpriority=100)
