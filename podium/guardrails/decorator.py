"""``podium.guard``: guardrails in your own code, in-process (no server needed).

    decision = podium.guard.scan(text, policy="default", kind="input")
    decision.blocked, decision.text, decision.reason()

    @podium.observe()
    @podium.guard(policy="default")            # scans the first str argument, then the answer
    def answer(question: str) -> str: ...

``scan`` returns the :class:`~podium.guardrails.engine.Decision` and never raises for what a
scanner did (a scanner that fails follows the policy's ``on_error``: open or closed). The
decorator raises :class:`GuardBlocked` (a :class:`podium.errors.ContentBlocked`) when the policy
blocks the input (the function is not called) or the return value, or returns
``blocked_message`` with ``on_block="return"``; a redaction hands the function the redacted
text and returns the redacted answer (reversible input redactions are put back into it); a
generator's ``str`` chunks are scanned in windows as they stream (``StreamGuard``).

Recording: inside a trace (``@podium.observe``, ``podium.span``) each decision becomes a child
span of kind ``guardrail`` with one score per rule, in the shape of
:mod:`podium.guardrails.record`; outside any trace nothing is recorded. Recording never raises.

A policy is a built-in name (``default``, ``strict``, ``monitor``), a dict in the policy format,
a :class:`~podium.guardrails.policy.Policy`, or a path (``pathlib.Path``) to a YAML/JSON file.
Project policies stored on a server are used through ``POST /api/v1/guard/scan``, not here.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from podium.errors import ConfigurationError, ContentBlocked, ValidationFailed
from podium.guardrails.base import KINDS, Kind
from podium.guardrails.engine import Decision, Guard
from podium.guardrails.policy import Policy, parse_policy
from podium.guardrails.record import score_values, span_fields
from podium.sdk.context import CURRENT_SPAN
from podium.sdk.ids import new_trace_id
from podium.sdk.serialize import iso_from_ns
from podium.sdk.span import ScoreRecord

__all__ = ["AppGuard", "GuardBlocked", "PolicyLike", "blocked", "guard", "load_policy", "record_decision"]

log = logging.getLogger("podium.guardrails")

F = TypeVar("F", bound=Callable[..., Any])
PolicyLike = str | dict[str, Any] | Policy | os.PathLike[str]
OnBlock = Literal["raise", "return"]

#: What a guarded function returns instead of raising, with ``on_block="return"``.
BLOCKED_MESSAGE = "Sorry, I can't help with that request."
_MAX_COMPILED = 64


class GuardBlocked(ContentBlocked):
    """A guardrail blocked a guarded function's input or answer; ``decision`` says why."""

    def __init__(self, message: str, *, decision: Decision, details: list[Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.decision = decision


def blocked(decision: Decision, what: str) -> GuardBlocked:
    """The error for a blocked ``what`` (``"input"`` or ``"output"``)."""
    o = decision.blocked_by
    return GuardBlocked(
        f"the {'answer' if what == 'output' else 'input'} was blocked by guardrail policy {decision.policy!r}: "
        f"{decision.reason()}. Change the text, or the policy (docs/guardrails.md)",
        decision=decision,
        details=[{"field": what, "message": decision.reason(), "policy": decision.policy,
                  "rule": o.rule if o else None, "scanner": o.scanner if o else None}])


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """A policy from a YAML or JSON file (a missing or unreadable file is a ConfigurationError
    naming it; a bad policy a 400 naming the field)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigurationError(f"cannot read guardrail policy file {str(p)!r}: {e.strerror or e}") from e
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ImportError as e:
        raise ConfigurationError("reading a YAML policy needs pyyaml: pip install 'podium[server]'") from e
    except Exception as e:
        raise ValidationFailed(f"guardrail policy file {str(p)!r} is not valid YAML/JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValidationFailed(f"guardrail policy file {str(p)!r} must hold one policy object "
                               "(name, input, output: docs/guardrails.md, 'Policies')")
    data.setdefault("name", p.stem)
    return parse_policy(data, where=p.name)


def _key(policy: PolicyLike) -> str:
    if isinstance(policy, str):
        return "name:" + policy
    if isinstance(policy, Policy):
        return "policy:" + policy.model_dump_json()
    if isinstance(policy, os.PathLike):
        p = Path(policy)
        try:
            mtime = p.stat().st_mtime_ns
        except OSError:
            mtime = 0
        return f"file:{p.resolve()}:{mtime}"
    return "spec:" + json.dumps(policy, sort_keys=True, default=str)


def _check_kind(kind: str) -> Kind:
    for k in KINDS:
        if k == kind:
            return k
    raise ValidationFailed(f"kind must be 'input' (a prompt) or 'output' (an answer), not {kind!r}",
                           details=[{"field": "kind", "message": "not input or output"}])


# --- recording ---------------------------------------------------------------------------------


def record_decision(decision: Decision, started_ns: int) -> None:
    """Record ``decision`` as a ``guardrail`` span (started at ``started_ns``) under the current
    span, with one score per rule; nothing outside a trace. Never raises."""
    try:
        parent = CURRENT_SPAN.get()
        client = parent._client if parent is not None else None
        if parent is None or client is None or not parent.sampled or not client.enabled:
            return
        f = span_fields(decision)
        span = client.start_span(f["name"], kind="guardrail", input=f["input"])
        span.start_ns = started_ns
        span.update(output=f["output"], status=f["status"], status_message=f["status_message"],
                    attributes=f["attributes"])
        span.end()
        at = iso_from_ns(span.end_ns)
        for name, value in score_values(decision).items():
            # A ScoreIn body built here rather than through create_score, which stamps source="sdk"
            # (guardrail scores say where they came from, as the gateway's do) and validates each
            # score with pydantic (~30 us; these values are valid by construction: a rule label
            # and a float in [0, 1]). The server validates it on ingest like any score.
            client._export(ScoreRecord({"id": new_trace_id(), "name": name, "value": value, "data_type": "numeric",
                                        "trace_id": span.trace_id, "span_id": span.id, "source": "guardrail",
                                        "timestamp": at}, None))
    except Exception:
        log.debug("Podium: could not record a guardrail decision", exc_info=True)


# --- the SDK object ----------------------------------------------------------------------------


class AppGuard:
    """The type of ``podium.guard``: :meth:`scan` and, called, the decorator."""

    def __init__(self) -> None:
        self._compiled: dict[str, Guard] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "<podium.guard: .scan(text, policy=...), @podium.guard(policy=...)>"

    def compile(self, policy: PolicyLike = "default") -> Guard:
        """The compiled :class:`Guard` for ``policy`` (kept, so a policy compiles once)."""
        key = _key(policy)
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        try:
            g = Guard(load_policy(policy) if isinstance(policy, os.PathLike) else policy)
        except ImportError as e:
            if (e.name or "").startswith("podium"):
                raise
            raise ConfigurationError(
                f"podium.guard needs the server extra ({e.name} is missing): pip install 'podium[server]'") from e
        with self._lock:
            if len(self._compiled) >= _MAX_COMPILED:
                self._compiled.clear()
            return self._compiled.setdefault(key, g)

    def scan(self, text: str, policy: PolicyLike = "default", kind: Kind = "input", *, prompt: str | None = None,
             documents: Sequence[str] = (), record: bool = True) -> Decision:
        """Run ``policy``'s ``kind`` rules on ``text``, in this process. Returns the decision
        (check ``.blocked``; ``.text`` is the text to use: redacted where a rule redacted).
        A bad policy or kind raises ValidationFailed; a scanner's failure never does."""
        k = _check_kind(kind)
        g = self.compile(policy)
        t0 = time.time_ns()
        d = g.scan(text, k, prompt=prompt, documents=documents)
        if record:
            record_decision(d, t0)
        return d

    async def ascan(self, text: str, policy: PolicyLike = "default", kind: Kind = "input", *,
                    prompt: str | None = None, documents: Sequence[str] = (), record: bool = True) -> Decision:
        """:meth:`scan` for async code (model scanners run in a worker thread)."""
        k = _check_kind(kind)
        g = self.compile(policy)
        t0 = time.time_ns()
        d = await g.ascan(text, k, prompt=prompt, documents=documents)
        if record:
            record_decision(d, t0)
        return d

    def __call__(self, policy: PolicyLike | Callable[..., Any] = "default", *, input: bool = True, output: bool = True,
                 arg: str | None = None, on_block: OnBlock = "raise",
                 blocked_message: str | Callable[[Decision], Any] = BLOCKED_MESSAGE,
                 record: bool = True) -> Callable[[F], F]:
        """``@podium.guard(policy="default")``: scan the function's input (the first ``str``
        argument, or the one named ``arg``) before it runs and its ``str`` return value after.

        ``on_block="raise"`` (default) raises :class:`GuardBlocked`; ``"return"`` returns
        ``blocked_message`` (or ``blocked_message(decision)``) instead. Works on plain and
        ``async def`` functions, and on generators of ``str`` chunks (the answer is scanned in
        windows as it streams: ``policy.stream_window``; a block ends the stream). Bare
        ``@podium.guard`` uses the ``default`` policy. A bad policy, kind or ``arg`` raises at
        decoration time."""
        if on_block not in ("raise", "return"):
            raise ConfigurationError(f"podium.guard(on_block={on_block!r}): use 'raise' or 'return'")
        if callable(policy) and not isinstance(policy, str | dict | Policy | os.PathLike):
            # Bare ``@podium.guard`` (no parentheses): the default policy on this function.
            fn = policy
            return cast(Callable[[F], F], self("default", input=input, output=output, arg=arg, on_block=on_block,
                                               blocked_message=blocked_message, record=record)(fn))
        compiled = self.compile(policy)
        return functools.partial(_decorate, compiled, input=input, output=output, arg=arg, on_block=on_block,
                                 message=blocked_message, record=record)


def _decorate(g: Guard, fn: F, *, input: bool, output: bool, arg: str | None, on_block: OnBlock,
              message: str | Callable[[Decision], Any], record: bool) -> F:
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if arg is not None and (sig is None or arg not in sig.parameters):
        raise ConfigurationError(f"podium.guard(arg={arg!r}): {getattr(fn, '__name__', fn)!r} has no parameter "
                                 f"named {arg!r}")
    scan_in = input and bool(g.policy.input)
    scan_out = output and bool(g.policy.output)

    def pick(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[inspect.BoundArguments | None, str | None]:
        if sig is None:
            return None, None
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError:
            return None, None  # the call itself is wrong: let the function raise its own TypeError
        if arg is not None:
            return bound, arg if isinstance(bound.arguments.get(arg), str) else None
        for name, value in bound.arguments.items():
            if isinstance(value, str) and sig.parameters[name].kind not in (
                    inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                return bound, name
        return bound, None

    def refuse(d: Decision, what: str) -> Any:
        if on_block == "raise":
            raise blocked(d, what)
        msg = message(d) if callable(message) else message
        if inspect.isasyncgenfunction(fn):
            async def one() -> Any:
                yield msg
            return one()
        return iter([msg]) if inspect.isgeneratorfunction(fn) else msg

    def refuse_stream(d: Decision) -> str:
        """A streamed answer was blocked: raise, or the message to end the stream with."""
        if on_block == "raise":
            raise blocked(d, "output")
        return str(message(d) if callable(message) else message)

    def failed(e: Exception, what: str) -> None:
        """The engine itself failed (not a scanner: those are verdicts): open, or closed per policy."""
        log.warning("podium.guard: scanning the %s failed: %s: %s; failing %s", what, type(e).__name__, e,
                    g.policy.on_error)
        if g.policy.on_error == "closed":
            raise ContentBlocked(f"the {what} could not be checked by guardrail policy {g.policy.name!r} "
                                 f"({type(e).__name__}: {e}) and the policy fails closed") from e

    def checked(text: str, what: Kind, prompt: str | None) -> Decision | None:
        t0 = time.time_ns()
        try:
            d = g.scan(text, what, prompt=prompt)
        except Exception as e:
            failed(e, what)
            return None
        if record:
            record_decision(d, t0)
        return d

    async def achecked(text: str, what: Kind, prompt: str | None) -> Decision | None:
        t0 = time.time_ns()
        try:
            d = await g.ascan(text, what, prompt=prompt)
        except Exception as e:
            failed(e, what)
            return None
        if record:
            record_decision(d, t0)
        return d

    def after_input(d: Decision, bound: inspect.BoundArguments, name: str,
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if d.text == bound.arguments[name]:
            return args, kwargs
        bound.arguments[name] = d.text
        return bound.args, bound.kwargs

    def finish(result: Any, out: Decision | None, inp: Decision | None) -> Any:
        if out is not None:
            result = out.text
        if isinstance(result, str) and inp is not None and inp.redactions:
            result = inp.restore(result)
        return result

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            inp: Decision | None = None
            prompt: str | None = None
            if scan_in:
                bound, name = pick(args, kwargs)
                if bound is not None and name is not None:
                    inp = await achecked(bound.arguments[name], "input", None)
                    if inp is not None and inp.blocked:
                        return refuse(inp, "input")
                    if inp is not None:
                        prompt = inp.text
                        args, kwargs = after_input(inp, bound, name, args, kwargs)
            result = await fn(*args, **kwargs)
            out: Decision | None = None
            if scan_out and isinstance(result, str):
                out = await achecked(result, "output", prompt)
                if out is not None and out.blocked:
                    return refuse(out, "output")
            return finish(result, out, inp)

        return cast(F, async_wrapper)

    is_gen = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        inp: Decision | None = None
        prompt: str | None = None
        if scan_in:
            bound, name = pick(args, kwargs)
            if bound is not None and name is not None:
                inp = checked(bound.arguments[name], "input", None)
                if inp is not None and inp.blocked:
                    return refuse(inp, "input")
                if inp is not None:
                    prompt = inp.text
                    args, kwargs = after_input(inp, bound, name, args, kwargs)
        result = fn(*args, **kwargs)
        if is_gen:
            if not scan_out and (inp is None or not inp.redactions):
                return result
            stream = _Stream(g if scan_out else None, prompt, inp, record)
            if inspect.isasyncgen(result):
                return stream.aiter(result, refuse_stream)
            return stream.iter(result, refuse_stream)
        out: Decision | None = None
        if scan_out and isinstance(result, str):
            out = checked(result, "output", prompt)
            if out is not None and out.blocked:
                return refuse(out, "output")
        return finish(result, out, inp)

    return cast(F, wrapper)


class _Restorer:
    """Puts reversible input redactions back into streamed text, holding back a trailing ``<...``
    that may be the start of a placeholder split across chunks."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.longest = max(map(len, decision.redactions), default=0)
        self.tail = ""

    def feed(self, text: str) -> str:
        text = self.tail + text
        i = text.rfind("<")
        if i != -1 and ">" not in text[i:] and len(text) - i < self.longest:
            self.tail, text = text[i:], text[:i]
        else:
            self.tail = ""
        return self.decision.restore(text)

    def finish(self) -> str:
        out, self.tail = self.decision.restore(self.tail), ""
        return out


class _Stream:
    """A guarded generator's answer: ``str`` items go through a :class:`StreamGuard` (text is
    released only after its window passed; other items pass as they are), reversible input
    redactions are put back, and the whole answer's decision is recorded once at the end."""

    def __init__(self, g: Guard | None, prompt: str | None, inp: Decision | None, record: bool) -> None:
        self.sg = g.stream(prompt=prompt) if g is not None else None
        self.restorer = _Restorer(inp) if inp is not None and inp.redactions else None
        self.record = record
        self.t0 = time.time_ns()

    def _out(self, text: str) -> str:
        return self.restorer.feed(text) if self.restorer is not None and text else text

    def _feed(self, item: str) -> str:
        return self._out(self.sg.feed(item) if self.sg is not None else item)

    def _end(self) -> tuple[str, Decision | None]:
        """The last text to release, and the blocking decision (None: not blocked)."""
        out = ""
        if self.sg is not None and not self.sg.blocked:
            out = self._out(self.sg.finish())
        if self.sg is not None and self.record:
            record_decision(self.sg.summary(), self.t0)
        if self.sg is not None and self.sg.blocked:
            return "", self.sg.decision
        if self.restorer is not None:
            out += self.restorer.finish()
        return out, None

    def _step(self, item: Any) -> list[Any] | None:
        """What to yield for one item of the answer (``[]``: nothing yet); None once the guard blocked."""
        if not isinstance(item, str):
            return [item]
        out = self._feed(item)
        if self.sg is not None and self.sg.blocked:
            return None
        return [out] if out else []

    def _last(self, refuse: Callable[[Decision], str]) -> list[str]:
        """What to yield after the last item: the held-back text, or the refusal when blocked."""
        out, stop = self._end()
        if stop is not None:
            return [refuse(stop)]
        return [out] if out else []

    def iter(self, items: Iterator[Any], refuse: Callable[[Decision], str]) -> Iterator[Any]:
        try:
            for item in items:
                step = self._step(item)
                if step is None:
                    break
                yield from step
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        yield from self._last(refuse)

    async def aiter(self, items: AsyncIterator[Any], refuse: Callable[[Decision], str]) -> AsyncIterator[Any]:
        try:
            async for item in items:
                step = self._step(item)
                if step is None:
                    break
                for out in step:
                    yield out
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        for out in self._last(refuse):
            yield out


#: ``podium.guard`` (``podium/__init__.py`` loads it on first use).
guard = AppGuard()
