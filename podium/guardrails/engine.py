"""The engine: runs a policy's scanners over a text and decides.

``Guard(policy).scan(text, kind="input")`` runs the rules in order. Each rule's scanner is
timed; its score against the rule's threshold gives pass or fail; an exception or a model
scanner past its time budget gives ``error`` / ``timeout``, which fail open (pass, counted)
or closed (block) as the rule or policy says, never silently. The strongest action of the
rules that fired wins (block > redact > flag > warn). Redactions replace the spans with
numbered placeholders (``<EMAIL_ADDRESS_1>``) and later rules see the redacted text;
``Decision.restore(answer)`` puts reversible originals back.

Streams: :class:`StreamGuard` scans an answer in windows as it arrives and releases a window
only once it has passed (docs/guardrails.md, "Streams").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from podium.guardrails.base import Context, Finding, Kind, Result, Scanner, Verdict
from podium.guardrails.policy import Policy, Rule, parse_policy
from podium.guardrails.registry import build

__all__ = ["Decision", "Guard", "Outcome", "StreamGuard"]

log = logging.getLogger("podium.guardrails")

DecisionAction = Literal["allow", "warn", "flag", "redact", "block"]
_RANK: dict[str, int] = {"allow": 0, "warn": 1, "flag": 2, "redact": 3, "block": 4}
_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="podium-guard")
    return _POOL


@dataclass(frozen=True, slots=True)
class Outcome:
    """One rule's result on one text."""

    rule: str  # the rule's name (its scanner type unless named)
    scanner: str
    kind: Kind
    verdict: Verdict
    score: float
    threshold: float
    action: str  # the rule's action; "none" when it passed
    latency_ms: float
    findings: tuple[Finding, ...] = ()
    detail: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        return self.action != "none"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "scanner": self.scanner, "kind": self.kind, "verdict": self.verdict,
                "score": round(self.score, 4), "threshold": self.threshold, "action": self.action,
                "latency_ms": round(self.latency_ms, 3), "findings": [f.to_dict() for f in self.findings],
                "detail": self.detail, "error": self.error, "metadata": self.metadata}


@dataclass(slots=True)
class Decision:
    """The policy's verdict on one text. ``text`` is what may go on (redacted where a rule
    redacted); ``action`` the strongest action taken; ``outcomes`` every rule's result."""

    policy: str
    kind: Kind
    action: DecisionAction
    text: str
    outcomes: list[Outcome]
    latency_ms: float
    redactions: dict[str, str] = field(default_factory=dict)  # placeholder -> original (reversible only)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def blocked_by(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.action == "block"), None)

    @property
    def fired(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.fired]

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict in ("error", "timeout")]

    def reason(self) -> str:
        """One line for an error message: which scanner fired and why."""
        o = self.blocked_by or (self.fired[0] if self.fired else None)
        if o is None:
            return "no guardrail fired"
        why = o.detail or (f"{o.verdict}: {o.error}" if o.error else f"score {o.score:.2f} >= {o.threshold}")
        return f"guardrail {o.rule!r} ({o.scanner}) {o.action}: {why}"

    def restore(self, text: str) -> str:
        """Put the reversible redactions' originals back into ``text`` (the model's answer)."""
        for placeholder, original in self.redactions.items():
            text = text.replace(placeholder, original)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "kind": self.kind, "action": self.action, "blocked": self.blocked,
                "text": self.text, "latency_ms": round(self.latency_ms, 3),
                "reason": None if self.action == "allow" else self.reason(),
                "outcomes": [o.to_dict() for o in self.outcomes]}


Observer = Callable[[Decision], None]


def _as_action(name: str) -> DecisionAction:
    for a in ("allow", "warn", "flag", "redact", "block"):
        if a == name:
            return a
    raise ValueError(f"not a decision action: {name!r}")


class Guard:
    """A compiled policy: scanners built once, reused for every text. Thread-safe as long as
    the scanners are (the built-ins are)."""

    def __init__(self, policy: Policy | dict[str, Any] | str, *, llm: Callable[[str], str] | None = None,
                 observer: Observer | None = None) -> None:
        self.policy = parse_policy(policy)
        self.llm = llm
        self.observer = observer
        self._scanners: dict[tuple[str, int], Scanner] = {}
        for kind in ("input", "output"):
            for i, rule in enumerate(getattr(self.policy, kind)):
                self._scanners[(kind, i)] = build(rule.type, dict(rule.params), where=f"{kind}.{i}.params")

    def rules(self, kind: Kind) -> list[Rule]:
        return list(getattr(self.policy, kind))

    def warm(self) -> None:
        for s in self._scanners.values():
            s.warm()

    def slow(self, kind: Kind) -> bool:
        """Whether a ``kind`` rule runs a model-backed scanner (``cost == "slow"``): a caller on
        an event loop then runs :meth:`scan` (and :class:`StreamGuard`) in a worker thread."""
        return any(s.cost == "slow" for (k, _), s in self._scanners.items() if k == kind)

    def _ctx(self, kind: Kind, prompt: str | None, documents: Sequence[str], final: bool,
             metadata: dict[str, Any] | None) -> Context:
        return Context(kind=kind, prompt=prompt, documents=tuple(documents), final=final,
                       metadata=metadata or {}, llm=self.llm)

    # -- one rule ---------------------------------------------------------------------------

    def _judge(self, rule: Rule, scanner: Scanner, kind: Kind, res: Result | None, verdict: Verdict,
               error: str | None, ms: float) -> Outcome:
        if res is not None and verdict == "pass" and res.score >= rule.threshold:
            verdict = "fail"
        on_error = rule.on_error or self.policy.on_error
        action: str
        if verdict == "fail":
            action = rule.action
        elif verdict in ("error", "timeout"):
            action = "block" if on_error == "closed" else "none"
            log.warning("guardrail %s (%s) %s on %s text: %s; failing %s", rule.label, rule.type, verdict,
                        kind, error, on_error)
        else:
            action = "none"
        return Outcome(rule=rule.label, scanner=rule.type, kind=kind, verdict=verdict,
                       score=res.score if res else (1.0 if action == "block" else 0.0), threshold=rule.threshold,
                       action=action, latency_ms=ms, findings=tuple(res.findings) if res else (),
                       detail=(res.detail if res else None) if verdict != "error" else f"scanner error: {error}",
                       error=error, metadata=dict(res.metadata) if res else {})

    def _timeout(self, rule: Rule) -> float:
        return (rule.timeout_ms or self.policy.timeout_ms) / 1000

    def _run_sync(self, rule: Rule, scanner: Scanner, text: str, ctx: Context) -> Outcome:
        t0 = time.perf_counter()
        res: Result | None = None
        verdict: Verdict = "pass"
        error: str | None = None
        try:
            if scanner.cost == "slow":
                res = _pool().submit(scanner.scan, text, ctx).result(timeout=self._timeout(rule))
            else:
                res = scanner.scan(text, ctx)
        except concurrent.futures.TimeoutError:
            verdict, error = "timeout", f"ran past its {self._timeout(rule) * 1000:.0f} ms budget"
        except Exception as e:
            verdict, error = "error", f"{type(e).__name__}: {e}"
        return self._judge(rule, scanner, ctx.kind, res, verdict, error, (time.perf_counter() - t0) * 1000)

    async def _run_async(self, rule: Rule, scanner: Scanner, text: str, ctx: Context) -> Outcome:
        if scanner.cost != "slow":
            return self._run_sync(rule, scanner, text, ctx)
        t0 = time.perf_counter()
        res: Result | None = None
        verdict: Verdict = "pass"
        error: str | None = None
        try:
            fut = asyncio.get_running_loop().run_in_executor(_pool(), scanner.scan, text, ctx)
            res = await asyncio.wait_for(fut, self._timeout(rule))
        except TimeoutError:
            verdict, error = "timeout", f"ran past its {self._timeout(rule) * 1000:.0f} ms budget"
        except Exception as e:
            verdict, error = "error", f"{type(e).__name__}: {e}"
        return self._judge(rule, scanner, ctx.kind, res, verdict, error, (time.perf_counter() - t0) * 1000)

    # -- a whole text -----------------------------------------------------------------------

    def _apply(self, state: _State, rule: Rule, outcome: Outcome, res_text: str | None) -> bool:
        """Fold one outcome into the running decision; True to stop (fail fast on a block)."""
        state.outcomes.append(outcome)
        if _RANK[outcome.action if outcome.fired else "allow"] > _RANK[state.action]:
            state.action = _as_action(outcome.action)
        if outcome.action == "redact":
            if res_text is not None:
                state.text = res_text
            elif outcome.findings:
                state.text = state.redact(outcome.findings, reversible=rule.reversible)
        return outcome.action == "block" and self.policy.fail_fast

    def scan(self, text: str, kind: Kind = "input", *, prompt: str | None = None,
             documents: Sequence[str] = (), final: bool = True, metadata: dict[str, Any] | None = None,
             rules: Sequence[int] | None = None) -> Decision:
        """Run the policy's ``kind`` rules on ``text`` (in this thread; model scanners in a
        worker thread under their time budget)."""
        t0 = time.perf_counter()
        state = _State(text)
        for i, rule in enumerate(self.rules(kind)):
            if rules is not None and i not in rules:
                continue
            scanner = self._scanners[(kind, i)]
            ctx = self._ctx(kind, prompt, documents, final, metadata)
            outcome = self._run_sync(rule, scanner, state.text, ctx)
            if self._apply(state, rule, outcome, None):
                break
        return self._done(state, kind, t0)

    async def ascan(self, text: str, kind: Kind = "input", *, prompt: str | None = None,
                    documents: Sequence[str] = (), final: bool = True,
                    metadata: dict[str, Any] | None = None) -> Decision:
        """:meth:`scan` for the event loop: fast scanners inline, model scanners in a worker
        thread with their time budget enforced."""
        t0 = time.perf_counter()
        state = _State(text)
        for i, rule in enumerate(self.rules(kind)):
            scanner = self._scanners[(kind, i)]
            ctx = self._ctx(kind, prompt, documents, final, metadata)
            outcome = await self._run_async(rule, scanner, state.text, ctx)
            if self._apply(state, rule, outcome, None):
                break
        return self._done(state, kind, t0)

    def _done(self, state: _State, kind: Kind, t0: float) -> Decision:
        d = Decision(policy=self.policy.name, kind=kind, action=state.action, text=state.text,
                     outcomes=state.outcomes, latency_ms=(time.perf_counter() - t0) * 1000,
                     redactions=state.reversible)
        if self.observer is not None:
            try:
                self.observer(d)
            except Exception:  # an observer (metrics, logging) never breaks a scan
                log.exception("guardrail observer failed")
        return d

    def stream(self, *, prompt: str | None = None, documents: Sequence[str] = (),
               metadata: dict[str, Any] | None = None) -> StreamGuard:
        return StreamGuard(self, prompt=prompt, documents=documents, metadata=metadata)


class _State:
    __slots__ = ("action", "counters", "outcomes", "reversible", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.action: DecisionAction = "allow"
        self.outcomes: list[Outcome] = []
        self.reversible: dict[str, str] = {}
        self.counters: dict[str, int] = {}

    def redact(self, findings: Sequence[Finding], *, reversible: bool) -> str:
        """Replace the findings' spans (merged where they overlap) with numbered placeholders."""
        spans = sorted((f for f in findings if 0 <= f.start < f.end <= len(self.text)), key=lambda f: f.start)
        merged: list[Finding] = []
        for f in spans:
            if merged and f.start < merged[-1].end:
                last = merged[-1]
                if f.end > last.end:
                    merged[-1] = Finding(last.start, f.end, last.label, self.text[last.start:f.end], last.score)
                continue
            merged.append(f)
        out: list[str] = []
        pos = 0
        for f in merged:
            original = self.text[f.start:f.end]
            label = "".join(c if c.isalnum() else "_" for c in f.label.upper()) or "REDACTED"
            self.counters[label] = self.counters.get(label, 0) + 1
            placeholder = f"<{label}_{self.counters[label]}>"
            if reversible:
                self.reversible[placeholder] = original
            out.append(self.text[pos:f.start])
            out.append(placeholder)
            pos = f.end
        out.append(self.text[pos:])
        return "".join(out)


class StreamGuard:
    """Scans a streamed answer in windows of ``policy.stream_window`` characters.

    ``feed(delta)`` returns the text that may be released now (possibly ""), and ``finish()``
    the rest. Text is released only after the window holding it passed; each scan also sees
    the previous window, so a match that straddles the boundary is caught. When a rule blocks,
    ``decision`` is set and nothing more is released: the caller ends the stream with an error.
    At most one window of text that a later scan would block has been released (the part of a
    match that lay in an already released window)."""

    def __init__(self, guard: Guard, *, prompt: str | None = None, documents: Sequence[str] = (),
                 metadata: dict[str, Any] | None = None) -> None:
        self.guard = guard
        self.window = guard.policy.stream_window
        self.prompt = prompt
        self.documents = tuple(documents)
        self.metadata = metadata
        self.released = ""  # text already sent to the client
        self.pending = ""  # text held back until its window is scanned
        self.decision: Decision | None = None  # the blocking decision, once one blocks
        self.decisions: list[Decision] = []
        self.scanned_ms = 0.0

    @property
    def blocked(self) -> bool:
        return self.decision is not None

    def _check(self, final: bool) -> str:
        tail = self.released[-self.window:]
        view = tail + self.pending
        d = self.guard.scan(view, "output", prompt=self.prompt, documents=self.documents, final=final,
                            metadata=self.metadata)
        self.decisions.append(d)
        self.scanned_ms += d.latency_ms
        if d.blocked:
            self.decision = d
            self.pending = ""
            return ""
        out = self.pending
        if d.action == "redact" and d.text.startswith(tail):
            out = d.text[len(tail):]
        elif d.action == "redact":
            out = d.text[len(view) - len(self.pending):] if len(d.text) >= len(self.pending) else d.text
        self.released += out
        self.pending = ""
        return out

    def feed(self, delta: str) -> str:
        if self.blocked:
            return ""
        self.pending += delta
        if len(self.pending) < self.window:
            return ""
        return self._check(final=False)

    def finish(self) -> str:
        """Scan what is left and the whole answer (for rules that need all of it: JSON schema,
        groundedness). Returns the last text to release."""
        if self.blocked:
            return ""
        out = self._check(final=False) if self.pending else ""
        if self.blocked:
            return ""
        whole = self.guard.scan(self.released, "output", prompt=self.prompt, documents=self.documents,
                                final=True, metadata=self.metadata)
        self.decisions.append(whole)
        self.scanned_ms += whole.latency_ms
        if whole.blocked:
            self.decision = whole
        return out

    def summary(self) -> Decision:
        """One decision for the whole stream (the blocking one, else the strongest)."""
        if self.decision is not None:
            return self.decision
        if not self.decisions:
            return Decision(self.guard.policy.name, "output", "allow", self.released, [], 0.0)
        best = max(self.decisions, key=lambda d: _RANK[d.action])
        outcomes = [o for d in self.decisions for o in d.outcomes if o.fired] or best.outcomes
        return Decision(best.policy, "output", best.action, self.released, outcomes, self.scanned_ms)
