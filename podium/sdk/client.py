"""The Podium client: resolved settings, one exporter, and the process-wide default.

Precedence for every setting: explicit argument > environment (``PODIUM_*``, read when a
client is built, never at import) > default. ``get_client()`` builds the default client
lazily on first use; ``configure()`` replaces it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from podium.config import Settings
from podium.core.records import ScoreIn
from podium.errors import ConfigurationError
from podium.sdk.context import CURRENT_ATTRIBUTES, CURRENT_SPAN
from podium.sdk.exporter import BatchExporter, Exportable, FlushResult
from podium.sdk.ids import is_sampled, new_span_id, new_trace_id, sample_bound
from podium.sdk.serialize import DEFAULT_MAX_CHARS, Encoder
from podium.sdk.span import KINDS, NOOP_SPAN, KindLike, ScoreRecord, Span, TraceUpdate, check_kind, snapshot

if TYPE_CHECKING:
    from podium.sdk.evals import EvalClient
    from podium.sdk.prompts import PromptClient

__all__ = ["Podium", "configure", "current_default", "get_client", "shutdown_default"]

logger = logging.getLogger(__name__)

_SETTING_ARGS = (
    "base_url",
    "public_key",
    "secret_key",
    "sample_rate",
    "flush_at",
    "flush_interval",
    "max_queue_size",
    "timeout",
    "max_retries",
)


class Podium:
    """A tracing client: where spans, traces and scores go, and how.

    Most code uses the module-level functions (``podium.observe``, ``podium.span``, ...),
    which go through the default client (:func:`get_client`). Build one yourself to send
    to another server or project, or to inject an ``httpx.Client`` in tests::

        client = podium.Podium(public_key="pk-...", secret_key="sk-...", sample_rate=0.1)
        with client.span("job") as s: ...

    Invalid explicit or environment settings raise :class:`podium.errors.ConfigurationError`
    here, never later on the tracing path. Without keys the client works but drops what it
    records (counted in ``flush().dropped``, one WARNING).
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        public_key: str | None = None,
        secret_key: str | None = None,
        enabled: bool | None = None,
        sample_rate: float | None = None,
        flush_at: int | None = None,
        flush_interval: float | None = None,
        max_queue_size: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_backoff: float = 0.5,
        max_field_chars: int = DEFAULT_MAX_CHARS,
        mask: Callable[[Any], Any] | None = None,
        http_client: httpx.Client | None = None,
        settings: Settings | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "base_url": base_url,
            "public_key": public_key,
            "secret_key": secret_key,
            "tracing_enabled": enabled,
            "sample_rate": sample_rate,
            "flush_at": flush_at,
            "flush_interval": flush_interval,
            "max_queue_size": max_queue_size,
            "timeout": timeout,
            "max_retries": max_retries,
        }
        self.settings = _resolve_settings(settings, {k: v for k, v in given.items() if v is not None})
        s = self.settings
        _check(
            s,
            retry_backoff=retry_backoff,
            max_field_chars=max_field_chars,
            mask=mask,
            http_client=http_client,
        )
        self.enabled: bool = s.tracing_enabled
        self.base_url = s.base_url.rstrip("/")
        self._http_client = http_client
        self._prompts: PromptClient | None = None
        self._evals: EvalClient | None = None
        self._sample_bound = sample_bound(s.sample_rate)
        auth = (s.public_key, s.secret_key) if s.public_key and s.secret_key else None
        self._exporter = BatchExporter(
            endpoint=f"{self.base_url}/api/v1/ingest",
            auth=auth,
            encoder=Encoder(max_chars=max_field_chars, mask=mask),
            http_client=http_client,
            timeout=s.timeout,
            flush_at=s.flush_at,
            flush_interval=s.flush_interval,
            max_queue_size=s.max_queue_size,
            max_retries=s.max_retries,
            retry_backoff=retry_backoff,
        )

    def __repr__(self) -> str:
        return f"<Podium base_url={self.base_url!r} enabled={self.enabled}>"

    @property
    def prompts(self) -> PromptClient:
        """The prompt registry client (cached ``get``, ``create``, ``set_label``, ``rollback``).
        It works whether or not tracing is enabled."""
        pc = self._prompts
        if pc is None:
            from podium.sdk.prompts import PromptClient

            with _prompts_lock:
                if self._prompts is None:
                    s = self.settings
                    self._prompts = PromptClient(base_url=self.base_url, public_key=s.public_key,
                                                 secret_key=s.secret_key, timeout=s.timeout,
                                                 http_client=self._http_client)
                pc = self._prompts
        return pc

    @property
    def evals(self) -> EvalClient:
        """Datasets and experiments on the server (``podium.sdk.evals.EvalClient``)."""
        ec = self._evals
        if ec is None:
            from podium.sdk.evals import EvalClient

            with _prompts_lock:
                if self._evals is None:
                    s = self.settings
                    self._evals = EvalClient(base_url=self.base_url, public_key=s.public_key,
                                             secret_key=s.secret_key, timeout=max(s.timeout, 30.0),
                                             http_client=self._http_client)
                ec = self._evals
        return ec

    @property
    def collections(self) -> Any:
        """Knowledge collections on the server (``podium.sdk.collections.CollectionClient``: create,
        add_texts, add_files, search, answer); shares the ``evals`` transport."""
        from podium.sdk.collections import CollectionClient

        return CollectionClient(self.evals)

    # --- spans ---------------------------------------------------------------------------

    def start_span(
        self,
        name: str,
        *,
        kind: KindLike | str = "span",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Span:
        """A new span, child of the current one (a new trace when there is none). It is
        not made current: use it in ``with`` for that, or call ``end()`` yourself."""
        if not self.enabled:
            return NOOP_SPAN
        parent = CURRENT_SPAN.get()
        if parent is None:
            trace_id = new_trace_id()
            sampled = is_sampled(trace_id, self._sample_bound)
            parent_id = None
        else:
            trace_id = parent.trace_id
            sampled = parent.sampled
            parent_id = parent.id
        checked = kind if kind.__class__ is str and kind in KINDS else check_kind(kind)
        if checked is None:
            logger.warning("Podium: unknown span kind %r, using 'span'", kind)
            checked = "span"
        return Span(
            self,
            new_span_id(),
            trace_id,
            parent_id,
            sampled,
            name if name.__class__ is str else str(name),
            checked,
            CURRENT_ATTRIBUTES.get(),
            snapshot(input) if sampled else None,
            metadata if sampled else None,
        )

    def span(
        self,
        name: str,
        *,
        kind: KindLike | str = "span",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Span:
        """``with client.span("retrieve", kind="retrieval", input=q) as s: ...``"""
        try:
            return self.start_span(name, kind=kind, input=input, metadata=metadata)
        except Exception:
            logger.debug("Podium: could not start span %r", name, exc_info=True)
            return NOOP_SPAN

    def update_current_trace(
        self,
        *,
        name: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        input: Any = None,
        output: Any = None,
        release: str | None = None,
        environment: str | None = None,
    ) -> None:
        """Send trace-level fields (a ``TraceIn`` item) for the current trace."""
        try:
            current = CURRENT_SPAN.get()
            if current is None or not self.enabled:
                logger.debug("Podium: update_current_trace() outside any span ignored")
                return
            if not current.sampled:
                return
            fields = {
                "name": name,
                "user_id": user_id,
                "session_id": session_id,
                "tags": list(tags) if tags is not None and not isinstance(tags, str) else tags,
                "metadata": metadata,
                "input": snapshot(input),
                "output": snapshot(output),
                "release": release,
                "environment": environment,
            }
            self._export(TraceUpdate(current.trace_id, {k: v for k, v in fields.items() if v is not None}))
        except Exception:
            logger.debug("Podium: update_current_trace failed", exc_info=True)

    # --- scores --------------------------------------------------------------------------

    def create_score(
        self,
        name: str,
        value: float | bool | str,
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        session_id: str | None = None,
        data_type: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> str | None:
        """Queue a score for a trace (optionally one span of it) or a session.

        Returns the score's id (generated when not given, so retries are idempotent), or
        None when the score is invalid (a WARNING says why) or tracing is disabled.
        """
        if not self.enabled:
            return None
        try:
            score = ScoreIn(
                id=id or new_trace_id(),
                name=name,
                value=value,
                data_type=data_type,  # type: ignore[arg-type]  # ScoreIn validates it
                trace_id=trace_id,
                span_id=span_id,
                session_id=session_id,
                source="sdk",
                comment=comment,
                timestamp=datetime.now(UTC),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'score'}: {e['msg']}" for e in exc.errors()
            )
            logger.warning("Podium: score %r not sent: %s", name, problems)
            return None
        except Exception:
            logger.debug("Podium: create_score failed", exc_info=True)
            return None
        self._export(ScoreRecord(score.model_dump(mode="json", exclude_none=True), metadata))
        return score.id

    def feedback(
        self,
        trace_id: str,
        value: float | bool | str,
        *,
        name: str = "user-feedback",
        comment: str | None = None,
        span_id: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Record an end user's feedback on a trace: a score with source ``feedback``.

        ``value`` is a number, a boolean, or ``"up"``/``"down"`` (stored as true/false, 1/0);
        ``user_id`` goes into the score's metadata. Queued and sent like every score (drops are
        counted); returns the score's id, or None when invalid (a WARNING says why). Never raises.
        Browsers and mobile apps send the same thing to ``POST /api/v1/feedback`` with the
        public key alone (docs/feedback.md)."""
        if not self.enabled:
            return None
        try:
            if isinstance(value, str):
                if value not in ("up", "down"):
                    logger.warning("Podium: feedback %r not sent: value must be a number, a boolean, "
                                   "'up' or 'down', got %r", name, value[:100])
                    return None
                value = value == "up"
            meta = dict(metadata or {})
            if user_id is not None:
                meta["user_id"] = user_id
            score = ScoreIn(
                id=new_trace_id(),
                name=name,
                value=value,
                trace_id=trace_id,
                span_id=span_id,
                session_id=session_id,
                source="feedback",
                comment=comment,
                timestamp=datetime.now(UTC),
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'feedback'}: {e['msg']}" for e in exc.errors()
            )
            logger.warning("Podium: feedback %r not sent: %s", name, problems)
            return None
        except Exception:
            logger.debug("Podium: feedback failed", exc_info=True)
            return None
        self._export(ScoreRecord(score.model_dump(mode="json", exclude_none=True), meta or None))
        return score.id

    # --- delivery ------------------------------------------------------------------------

    def _export(self, item: Exportable) -> None:
        try:
            self._exporter.enqueue(item)
        except Exception:  # pragma: no cover - enqueue does not raise; belt and braces
            logger.debug("Podium: enqueue failed", exc_info=True)

    def counters(self) -> FlushResult:
        """The delivery counters now, without waiting."""
        return self._exporter.counters()

    def flush(self, timeout: float | None = 30.0) -> FlushResult:
        """Block until everything queued before this call is sent or given up (at most
        ``timeout`` seconds; None waits as long as retries last). Never raises."""
        try:
            return self._exporter.flush(timeout)
        except Exception:
            logger.warning("Podium: flush failed", exc_info=True)
            return self._exporter.counters()

    def shutdown(self, timeout: float | None = 10.0) -> FlushResult:
        """Flush, then stop the worker thread. Called at exit automatically."""
        prompts, self._prompts = self._prompts, None
        if prompts is not None:
            prompts.close()
        evals, self._evals = self._evals, None
        if evals is not None:
            evals.close()
        try:
            return self._exporter.shutdown(timeout)
        except Exception:
            logger.warning("Podium: shutdown failed", exc_info=True)
            return self._exporter.counters()


def _resolve_settings(settings: Settings | None, given: dict[str, Any]) -> Settings:
    try:
        if settings is None:
            return Settings(**given)
        if not given:
            return settings
        return type(settings)(**{**settings.model_dump(), **given})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"Invalid Podium SDK settings: {problems}. Fix the argument or the PODIUM_* environment variable."
        ) from None


def _check(
    s: Settings,
    *,
    retry_backoff: float,
    max_field_chars: int,
    mask: Callable[[Any], Any] | None,
    http_client: httpx.Client | None,
) -> None:
    problems: list[str] = []
    if not s.base_url.startswith(("http://", "https://")):
        problems.append(f"base_url {s.base_url!r} must start with http:// or https:// (PODIUM_BASE_URL)")
    if s.flush_at < 1:
        problems.append(f"flush_at must be at least 1, got {s.flush_at} (PODIUM_FLUSH_AT)")
    if not s.flush_interval > 0:
        problems.append(f"flush_interval must be > 0 seconds, got {s.flush_interval} (PODIUM_FLUSH_INTERVAL)")
    if s.max_queue_size < 1:
        problems.append(f"max_queue_size must be at least 1, got {s.max_queue_size} (PODIUM_MAX_QUEUE_SIZE)")
    if not s.timeout > 0:
        problems.append(f"timeout must be > 0 seconds, got {s.timeout} (PODIUM_TIMEOUT)")
    if s.max_retries < 0:
        problems.append(f"max_retries must be >= 0, got {s.max_retries} (PODIUM_MAX_RETRIES)")
    if not retry_backoff >= 0:
        problems.append(f"retry_backoff must be >= 0 seconds, got {retry_backoff}")
    if max_field_chars < 100:
        problems.append(f"max_field_chars must be at least 100, got {max_field_chars}")
    if mask is not None and not callable(mask):
        problems.append("mask must be a callable taking and returning a JSON value")
    if http_client is not None and not isinstance(http_client, httpx.Client):
        problems.append("http_client must be an httpx.Client (not an AsyncClient)")
    if problems:
        raise ConfigurationError("Invalid Podium SDK settings: " + "; ".join(problems) + ".")


# --- the process-wide default client -----------------------------------------------------

_default: Podium | None = None
_default_lock = threading.Lock()
_prompts_lock = threading.Lock()


def get_client() -> Podium:
    """The default client, built from the environment on first use.

    Never raises: if the environment is invalid it logs an ERROR and returns a disabled
    client, so a bad ``PODIUM_*`` variable cannot break the application.
    """
    client = _default
    if client is not None:
        return client
    return _create_default()


def current_default() -> Podium | None:
    """The default client if one was built, without building it."""
    return _default


def _create_default() -> Podium:
    global _default
    with _default_lock:
        if _default is None:
            try:
                _default = Podium()
            except ConfigurationError as exc:
                logger.error("Podium tracing is disabled: %s", exc.message)
                _default = Podium(settings=Settings.model_construct(tracing_enabled=False))
        return _default


def configure(**kwargs: Any) -> Podium:
    """Replace the default client with ``Podium(**kwargs)`` (same arguments) and shut the
    old one down (flushing what it queued). Raises ConfigurationError on invalid settings."""
    global _default
    client = Podium(**kwargs)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.shutdown()
    return client


def shutdown_default(timeout: float | None = 10.0) -> FlushResult:
    """Shut the default client down; the next use builds a new one from the environment."""
    global _default
    with _default_lock:
        old, _default = _default, None
    if old is None:
        return FlushResult(0, 0, 0, 0)
    return old.shutdown(timeout)
