"""What is "current": the span and the trace-level attributes, kept in contextvars.

asyncio tasks copy the context when they are created, so spans nest across ``await`` and
``asyncio.gather`` without help. Threads start with an empty context: run the target
with ``contextvars.copy_context().run(fn, ...)`` or wrap it with :func:`wrap_context`.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from podium.sdk.span import Span

__all__ = [
    "TraceAttributes",
    "current_attributes",
    "current_span",
    "get_current_span_id",
    "get_current_trace_id",
    "propagate_attributes",
    "wrap_context",
]

P = ParamSpec("P")
R = TypeVar("R")

CURRENT_SPAN: contextvars.ContextVar[Span | None] = contextvars.ContextVar(
    "podium_current_span", default=None
)
CURRENT_ATTRIBUTES: contextvars.ContextVar[TraceAttributes | None] = contextvars.ContextVar(
    "podium_trace_attributes", default=None
)


class TraceAttributes:
    """Trace-level hints that every span created inside :func:`propagate_attributes` carries."""

    __slots__ = ("environment", "metadata", "release", "session_id", "tags", "trace_name", "user_id")

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
        trace_name: str | None = None,
        release: str | None = None,
        environment: str | None = None,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.tags = tags
        self.metadata = metadata
        self.trace_name = trace_name
        self.release = release
        self.environment = environment

    def merged(
        self,
        *,
        user_id: str | None,
        session_id: str | None,
        tags: Iterable[str] | None,
        metadata: Mapping[str, Any] | None,
        trace_name: str | None,
        release: str | None,
        environment: str | None,
    ) -> TraceAttributes:
        """A new set where given values override, tags add up and metadata merges."""
        all_tags = self.tags
        if tags is not None:
            extra = tuple(str(t) for t in ([tags] if isinstance(tags, str) else tags))
            all_tags = tuple(dict.fromkeys(self.tags + extra))
        merged_meta = self.metadata
        if metadata:
            merged_meta = {**self.metadata, **metadata} if self.metadata else dict(metadata)
        return TraceAttributes(
            user_id=_text(user_id) or self.user_id,
            session_id=_text(session_id) or self.session_id,
            tags=all_tags,
            metadata=merged_meta,
            trace_name=_text(trace_name) or self.trace_name,
            release=_text(release) or self.release,
            environment=_text(environment) or self.environment,
        )


_EMPTY = TraceAttributes()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class propagate_attributes:  # lower-case: used like a function, `with propagate_attributes(...)`
    """Attach trace-level attributes to every span created inside the block.

    ::

        with podium.propagate_attributes(user_id="u1", session_id="s1", tags=["beta"]):
            answer(question)          # its spans, and their children, carry user and session

    Nested blocks override ``user_id``/``session_id``/``trace_name``/``release``/
    ``environment``, add ``tags`` and merge ``metadata`` (sent as the span's
    ``trace_metadata``). Spans that already exist are not changed.
    """

    __slots__ = ("_attrs", "_token")

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        trace_name: str | None = None,
        release: str | None = None,
        environment: str | None = None,
    ) -> None:
        base = CURRENT_ATTRIBUTES.get() or _EMPTY
        self._attrs = base.merged(
            user_id=user_id,
            session_id=session_id,
            tags=tags,
            metadata=metadata,
            trace_name=trace_name,
            release=release,
            environment=environment,
        )
        self._token: contextvars.Token[TraceAttributes | None] | None = None

    def __enter__(self) -> None:
        self._token = CURRENT_ATTRIBUTES.set(self._attrs)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            reset_var(CURRENT_ATTRIBUTES, self._token)
            self._token = None

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def reset_var(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    """Reset ``var``; if the token belongs to another context (a generator resumed
    elsewhere), restore the old value instead of raising."""
    try:
        var.reset(token)
    except ValueError:
        old = token.old_value
        var.set(None if old is contextvars.Token.MISSING else old)


def current_span() -> Span | None:
    """The innermost active span in this context, or None."""
    return CURRENT_SPAN.get()


def current_attributes() -> TraceAttributes | None:
    return CURRENT_ATTRIBUTES.get()


def get_current_trace_id() -> str | None:
    """The trace id of the current span, or None outside any span."""
    span = CURRENT_SPAN.get()
    return None if span is None else span.trace_id


def get_current_span_id() -> str | None:
    """The id of the current span, or None outside any span."""
    span = CURRENT_SPAN.get()
    return None if span is None else span.id


def wrap_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the current context (current span and attributes).

    Use it to hand work to threads so their spans nest under the caller's::

        pool.submit(podium.wrap_context(work), item)
        threading.Thread(target=podium.wrap_context(work)).start()

    Each call runs in its own copy of the captured context, so one wrapped function may
    run in several threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return run_in_context
