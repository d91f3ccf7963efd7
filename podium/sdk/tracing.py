"""The tracing surface: ``@observe``, ``span()``, and the current-span/trace helpers.

Everything here goes through the default client (:func:`podium.get_client`), resolved
at call time, so ``@observe`` can decorate functions at import time before the client
is configured. No function here raises into user code; exceptions raised by the user's
own function pass through unchanged (the span records them).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast, overload

from podium.errors import ConfigurationError
from podium.sdk.client import Podium, current_default, get_client, shutdown_default
from podium.sdk.context import CURRENT_SPAN, reset_var
from podium.sdk.exporter import FlushResult
from podium.sdk.span import KINDS, NOOP_SPAN, KindLike, Span, StatusLike, check_kind, snapshot

__all__ = [
    "create_score",
    "feedback",
    "flush",
    "observe",
    "shutdown",
    "span",
    "update_current_span",
    "update_current_trace",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_SKIPPED_FIRST = ("self", "cls")


@overload
def observe(func: F, /) -> F: ...


@overload
def observe(
    func: None = None,
    /,
    *,
    name: str | None = None,
    as_type: KindLike | str = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    as_type: KindLike | str = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> F | Callable[[F], F]:
    """Trace every call of the decorated function as a span.

    Works on plain functions, ``async def`` functions, generators and async generators
    (the span lasts until the generator finishes; its output is the yielded items,
    joined into one string when they are all strings)::

        @podium.observe                       # or @podium.observe(name="rag", as_type="chain")
        def answer(question: str) -> str: ...

    The input is a dict of the arguments by parameter name (``self``/``cls`` left out),
    the output the return value. An exception marks the span ``error`` and propagates
    unchanged. An unknown ``as_type`` raises ConfigurationError at decoration time.
    """
    kind = check_kind(as_type)
    if kind is None:
        raise ConfigurationError(f"observe(as_type={as_type!r}): use one of {', '.join(sorted(KINDS))}")

    def decorate(fn: F) -> F:
        return cast(
            F,
            _wrap(fn, name or str(getattr(fn, "__name__", "function")), kind, capture_input, capture_output),
        )

    if func is not None:
        return decorate(func)
    return decorate


def _binder(fn: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """A fast ``args, kwargs -> {parameter: value}`` for ``fn`` (no ``inspect.bind``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return lambda args, kwargs: {"args": list(args), **kwargs} if args else dict(kwargs)
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
    skip = positional[0] if positional and positional[0] in _SKIPPED_FIRST else None
    count = len(positional)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = dict(zip(positional, map(snapshot, args), strict=False))
        if var_positional is not None and len(args) > count:
            bound[var_positional] = args[count:]
        for key, value in kwargs.items():
            bound[key] = snapshot(value)
        if skip is not None:
            bound.pop(skip, None)
        return bound

    return bind


def _begin(name: str, kind: str) -> Span | None:
    """Start a span for a decorated call; None when tracing is off. Never raises."""
    try:
        client = get_client()
        if not client.enabled:
            return None
        return client.start_span(name, kind=kind)
    except Exception:
        logger.debug("Podium: could not start span %r", name, exc_info=True)
        return None


def _finish(span: Span, exc: BaseException | None, output: Any, capture: bool) -> None:
    """Record the outcome and end the span. Never raises."""
    try:
        if exc is not None:
            span.set_error(exc)
        elif capture and output is not None and span.output is None and span.sampled:
            span.output = snapshot(output)
        span.end()
    except Exception:
        logger.debug("Podium: could not end span %r", span.name, exc_info=True)


def _joined(items: list[Any] | None) -> Any:
    if not items:
        return None
    if all(type(i) is str for i in items):
        return "".join(items)
    return items


def _wrap(fn: Callable[..., Any], name: str, kind: str, capture_input: bool, capture_output: bool) -> Any:
    bind = _binder(fn) if capture_input else None

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span | None:
        span = _begin(name, kind)
        if span is not None and bind is not None and span.sampled:
            try:
                span.input = bind(args, kwargs)
            except Exception:
                logger.debug("Podium: could not capture the arguments of %r", name, exc_info=True)
        return span

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            span = begin(args, kwargs)
            if span is None:
                return fn(*args, **kwargs)
            try:
                agen = fn(*args, **kwargs)
            except BaseException as exc:
                _finish(span, exc, None, False)
                raise
            return _traced_async_generator(agen, span, capture_output)

        return async_gen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            span = begin(args, kwargs)
            if span is None:
                return fn(*args, **kwargs)
            ctx = contextvars.copy_context()
            ctx.run(CURRENT_SPAN.set, span)
            try:
                gen = ctx.run(fn, *args, **kwargs)
            except BaseException as exc:
                _finish(span, exc, None, False)
                raise
            return _traced_generator(gen, span, ctx, capture_output)

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            span = begin(args, kwargs)
            if span is None:
                return await fn(*args, **kwargs)
            token = CURRENT_SPAN.set(span)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                reset_var(CURRENT_SPAN, token)
                _finish(span, exc, None, False)
                raise
            reset_var(CURRENT_SPAN, token)
            _finish(span, None, result, capture_output)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = begin(args, kwargs)
        if span is None:
            return fn(*args, **kwargs)
        token = CURRENT_SPAN.set(span)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            CURRENT_SPAN.reset(token)
            _finish(span, exc, None, False)
            raise
        CURRENT_SPAN.reset(token)
        _finish(span, None, result, capture_output)
        return result

    return wrapper


def _traced_generator(
    gen: Generator[Any, Any, Any], span: Span, ctx: contextvars.Context, capture: bool
) -> Generator[Any, Any, Any]:
    """Drive ``gen`` inside ``ctx`` (where ``span`` is current), passing ``send``/``throw``/
    ``close`` through, and end the span when it finishes, fails or is closed."""
    items: list[Any] | None = [] if capture and span.sampled else None
    op: Callable[[Any], Any] = gen.send
    arg: Any = None
    try:
        while True:
            try:
                item = ctx.run(op, arg)
            except StopIteration as stop:
                result = stop.value
                break
            if items is not None:
                items.append(item)
            try:
                arg = yield item
            except GeneratorExit:
                ctx.run(gen.close)
                _finish(span, None, _joined(items), capture)
                raise
            except BaseException as exc:
                op, arg = gen.throw, exc
            else:
                op = gen.send
    except GeneratorExit:
        raise
    except BaseException as exc:
        _finish(span, exc, None, False)
        raise
    _finish(span, None, _joined(items), capture)
    return result


async def _traced_async_generator(
    agen: AsyncGenerator[Any, Any], span: Span, capture: bool
) -> AsyncGenerator[Any, Any]:
    """The async twin of :func:`_traced_generator`: ``span`` is current while ``agen`` runs."""
    items: list[Any] | None = [] if capture and span.sampled else None
    op: Callable[[Any], Any] = agen.asend
    arg: Any = None
    try:
        while True:
            token = CURRENT_SPAN.set(span)
            try:
                item = await op(arg)
            except StopAsyncIteration:
                break
            finally:
                reset_var(CURRENT_SPAN, token)
            if items is not None:
                items.append(item)
            try:
                arg = yield item
            except GeneratorExit:
                await agen.aclose()
                _finish(span, None, _joined(items), capture)
                raise
            except BaseException as exc:
                op, arg = agen.athrow, exc
            else:
                op = agen.asend
    except GeneratorExit:
        raise
    except BaseException as exc:
        _finish(span, exc, None, False)
        raise
    _finish(span, None, _joined(items), capture)


# --- module-level helpers over the default client ---------------------------------------


def span(
    name: str,
    *,
    kind: KindLike | str = "span",
    input: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Span:
    """A span as a context manager, child of the current span::

        with podium.span("retrieve", kind="retrieval", input=query) as s:
            docs = search(query)
            s.update(output=docs)

    Without ``with``, call ``s.end()`` yourself (the span is then not current). When
    tracing is disabled this returns a no-op span whose methods all work.
    """
    try:
        return get_client().span(name, kind=kind, input=input, metadata=metadata)
    except Exception:
        logger.debug("Podium: span(%r) failed", name, exc_info=True)
        return NOOP_SPAN


def update_current_span(
    *,
    name: str | None = None,
    input: Any = None,
    output: Any = None,
    metadata: Mapping[str, Any] | None = None,
    kind: KindLike | None = None,
    status: StatusLike | None = None,
    status_message: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | Any = None,
    cost: Mapping[str, float] | None = None,
    completion_start_time: datetime | int | None = None,
    prompt_name: str | None = None,
    prompt_version: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """:meth:`Span.update` on the current span; does nothing outside any span."""
    current = CURRENT_SPAN.get()
    if current is None:
        logger.debug("Podium: update_current_span() outside any span ignored")
        return
    try:
        current.update(
            name=name,
            input=input,
            output=output,
            metadata=metadata,
            kind=kind,
            status=status,
            status_message=status_message,
            model=model,
            provider=provider,
            model_parameters=model_parameters,
            usage=usage,
            cost=cost,
            completion_start_time=completion_start_time,
            prompt_name=prompt_name,
            prompt_version=prompt_version,
            attributes=attributes,
        )
    except Exception:
        logger.debug("Podium: update_current_span failed", exc_info=True)


def update_current_trace(
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
    """Send trace-level fields for the current trace (a ``trace`` item)."""
    try:
        client = _client_of_current()
        client.update_current_trace(
            name=name,
            user_id=user_id,
            session_id=session_id,
            tags=tags,
            metadata=metadata,
            input=input,
            output=output,
            release=release,
            environment=environment,
        )
    except Exception:
        logger.debug("Podium: update_current_trace failed", exc_info=True)


def create_score(
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
    """Score a trace, a span of it, or a session (see :meth:`Podium.create_score`)."""
    try:
        return get_client().create_score(
            name,
            value,
            trace_id=trace_id,
            span_id=span_id,
            session_id=session_id,
            data_type=data_type,
            comment=comment,
            metadata=metadata,
            id=id,
        )
    except Exception:
        logger.debug("Podium: create_score failed", exc_info=True)
        return None


def feedback(
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
    """Record an end user's feedback (thumbs up/down, a rating) on a trace (see :meth:`Podium.feedback`)."""
    try:
        return get_client().feedback(
            trace_id,
            value,
            name=name,
            comment=comment,
            span_id=span_id,
            session_id=session_id,
            user_id=user_id,
            metadata=metadata,
        )
    except Exception:
        logger.debug("Podium: feedback failed", exc_info=True)
        return None


def flush(timeout: float | None = 30.0) -> FlushResult:
    """Send what the default client queued; returns its cumulative counters."""
    current = current_default()
    if current is None:
        return FlushResult(0, 0, 0, 0)
    return current.flush(timeout)


def shutdown(timeout: float | None = 10.0) -> FlushResult:
    """Flush and stop the default client; the next use builds a fresh one from the env."""
    try:
        return shutdown_default(timeout)
    except Exception:
        logger.warning("Podium: shutdown failed", exc_info=True)
        return FlushResult(0, 0, 0, 0)


def _client_of_current() -> Podium:
    current = CURRENT_SPAN.get()
    if current is not None and current._client is not None:
        return current._client
    return get_client()
