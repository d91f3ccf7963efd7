"""The scanner contract: what a guardrail scanner receives and returns.

A scanner looks at one text (a prompt or a model's answer) and says how risky it is: a score in
[0, 1] (1 = certainly bad) and the spans it found. It does not decide what happens: the policy
(``podium.guardrails.policy``) sets the threshold and the action, and the engine
(``podium.guardrails.engine``) applies them, times the scanner and turns errors into verdicts.

Write one by subclassing :class:`Scanner` and registering its class through the plugin hook
``register_guardrails`` (docs/guardrails.md)::

    class NoPirates(Scanner):
        name = "no-pirates"
        kinds = frozenset({"input", "output"})

        def __init__(self, words: list[str] = ["arr"]):
            self.words = words

        def scan(self, text, ctx):
            found = [Finding(m.start(), m.end(), "pirate", m.group()) for w in self.words
                     for m in re.finditer(re.escape(w), text)]
            return Result(score=1.0 if found else 0.0, findings=found)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = ["ACTIONS", "KINDS", "Action", "Context", "Finding", "Kind", "Result", "Scanner", "Verdict"]

Kind = Literal["input", "output"]
KINDS: tuple[Kind, ...] = ("input", "output")
Action = Literal["block", "redact", "flag", "warn"]
ACTIONS: tuple[Action, ...] = ("block", "redact", "flag", "warn")
Verdict = Literal["pass", "fail", "error", "timeout"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a scanner found: ``text[start:end]``, what it is (``label``: ``EMAIL_ADDRESS``,
    ``aws_access_key``, ``ignore-previous``) and, when the scanner has one, its own score."""

    start: int
    end: int
    label: str
    text: str = ""
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label, "text": self.text,
                "score": self.score}


@dataclass(frozen=True, slots=True)
class Result:
    """What :meth:`Scanner.scan` returns. ``score`` is the risk in [0, 1]; the policy's
    threshold (default 0.5) turns it into pass/fail. ``detail`` says why, in words.
    ``replacement`` lets a scanner that rewrites text (a normaliser, a redactor that knows
    better than span replacement) hand back its own sanitised text."""

    score: float
    findings: Sequence[Finding] = ()
    detail: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    replacement: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a scanner may know besides the text.

    ``kind``: "input" (a prompt, before the model) or "output" (an answer, after it).
    ``prompt``: for output scanners, the prompt the answer replies to.
    ``documents``: the context the answer must be grounded in (retrieved passages, the
    system prompt's reference text). ``final``: False while scanning a stream window (more
    text follows), True for the whole text. ``llm``: a ``complete(prompt) -> str`` callable
    for scanners that ask a model (the judge stage), or None where none is configured.
    """

    kind: Kind = "input"
    prompt: str | None = None
    documents: Sequence[str] = ()
    final: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    llm: Callable[[str], str] | None = None


class Scanner:
    """Base class of every scanner. ``name`` is the type name in policies; ``kinds`` says
    where it may run; ``cost`` is "fast" (pure Python, microseconds to a few ms: runs inline,
    even on the gateway's event loop) or "slow" (a model: runs in a worker thread under the
    rule's time budget). Constructor keyword parameters are the scanner's ``params`` in a policy."""

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[Kind]] = frozenset(KINDS)
    cost: ClassVar[Literal["fast", "slow"]] = "fast"
    description: ClassVar[str] = ""

    def scan(self, text: str, ctx: Context) -> Result:
        raise NotImplementedError

    def warm(self) -> None:
        """Load models or compile patterns ahead of the first request (optional)."""
