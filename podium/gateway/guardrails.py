"""Guardrails in the gateway: which policy a call runs under, and applying it to the request,
the answer and the stream (docs/guardrails.md, "In the gateway" and "Streams").

Which policy: the first that names one of the key's policy (``api_key.guardrails``), the
model alias's (``guardrails:`` on the alias), the project's default (``PUT
/api/v1/guardrails/default``) and the gateway config's default (``guardrails: default`` in
``gateway.yaml``); ``off`` at any level means no policy and stops the search. A name is
looked up in the project's policies, then the config file's, then the built-ins (``default``,
``strict``, ``monitor``). Each policy is compiled once into a :class:`~podium.guardrails.Guard`
and kept until its spec changes, so a warm request compiles nothing and runs no SQL.

What is scanned on input: the text of every message except the assistant's (system,
developer, user, tool: tool results are where indirect injection arrives), text parts of
multi-part content included; ``prompt`` for /v1/completions; ``input`` for /v1/embeddings
(and /v1/responses, which arrives here as chat messages). The pieces are joined with a
separator and scanned once, so a policy costs one pass however long the conversation; a
redaction is written back into the piece it came from.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from podium.errors import ConfigurationError, ContentBlocked, PodiumError, ValidationFailed
from podium.guardrails.engine import Decision, Guard, StreamGuard
from podium.guardrails.policy import BUILTIN_POLICIES, Policy, parse_policy

__all__ = [
    "OFF",
    "POLICY_NAME",
    "GuardedStream",
    "GuardrailBlocked",
    "GuardrailsSpec",
    "Guards",
    "ProjectGuardrails",
    "blocked_error",
    "input_pieces",
    "scan_input",
    "scan_output",
]

logger = logging.getLogger("podium.gateway")

#: The policy name that turns guardrails off at its level (key, alias, project).
OFF = "off"
#: What a policy name may look like (also the alias's and the key's ``guardrails`` field).
POLICY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_SEP = "\n\n\u241e\n\n"  # joins the pieces of a request; unlikely in text, so a redaction splits back
_SCANNED_ROLES = frozenset({"system", "developer", "user", "tool", "function"})
_TEXT_PARTS = frozenset({"text", "input_text"})


class GuardrailsSpec(BaseModel):
    """``guardrails:`` in gateway.yaml: a policy name (``guardrails: default``) or this."""

    model_config = ConfigDict(extra="forbid")
    default: Annotated[str, Field(pattern=POLICY_NAME, description="policy for every alias; off: none")] | None = None
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProjectGuardrails:
    """A project's guardrail settings as stored (``project.guardrails``)."""

    default: str | None = None
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProjectGuardrails:
        data = data or {}
        return cls(data.get("default"), dict(data.get("policies") or {}))


def check_policies(policies: dict[str, Any], *, where: str) -> dict[str, Policy]:
    """Parse named policies (their name is the key); a 400 naming the bad one otherwise."""
    import re

    out: dict[str, Policy] = {}
    for name, spec in policies.items():
        if not re.match(POLICY_NAME, name) or name == OFF:
            raise ValidationFailed(f"bad policy name {name!r}: letters, digits, . _ - (and not 'off')",
                                   details=[{"field": f"{where}.{name}", "message": "bad policy name"}])
        if name in BUILTIN_POLICIES:
            raise ValidationFailed(
                f"policy {name!r} is built in and cannot be redefined; give yours another name",
                details=[{"field": f"{where}.{name}", "message": "built-in policy name"}])
        if not isinstance(spec, dict):
            raise ValidationFailed(f"{where}.{name} must be a policy object (docs/guardrails.md, 'Policies')",
                                   details=[{"field": f"{where}.{name}", "message": "not an object"}])
        out[name] = parse_policy({**spec, "name": name}, where=f"{where}.{name}")
    return out


class Guards:
    """Resolves the policy of a call and keeps each policy compiled.

    ``config_default`` / ``config_policies`` come from gateway.yaml (already checked);
    project policies are passed in per call (read from the gateway's TTL cache)."""

    def __init__(self, config_default: str | None, config_policies: dict[str, Policy],
                 observer: Callable[[Decision], None] | None = None) -> None:
        self.config_default = config_default
        self.config_policies = config_policies
        self.observer = observer
        self._compiled: dict[tuple[str, str], tuple[Any, Guard]] = {}
        self._lock = threading.Lock()  # one compile at a time: concurrent first calls share it

    def name_for(self, key_policy: str | None, alias_policy: str | None, project: ProjectGuardrails) -> str | None:
        """The policy name of a call (None: no guardrails): key > alias > project > config."""
        for name in (key_policy, alias_policy, project.default, self.config_default):
            if name:
                return None if name == OFF else name
        return None

    def _spec(self, project_id: str, name: str, project: ProjectGuardrails) -> tuple[tuple[str, str], Any]:
        if name in project.policies:
            return (project_id, name), project.policies[name]
        if name in self.config_policies:
            return ("", name), self.config_policies[name]
        if name in BUILTIN_POLICIES:
            return ("", name), name
        known = sorted({*project.policies, *self.config_policies, *BUILTIN_POLICIES})
        raise ConfigurationError(
            f"guardrail policy {name!r} is not defined; define it (PUT /api/v1/guardrails/policies/{name} or "
            f"guardrails.policies in gateway.yaml) or use one of {', '.join(known)}")

    def cached(self, project_id: str, name: str, project: ProjectGuardrails) -> Guard | None:
        """The compiled guard when it is current (the hot path: two dict lookups)."""
        slot, spec = self._spec(project_id, name, project)
        hit = self._compiled.get(slot)
        return hit[1] if hit is not None and hit[0] == spec else None

    def compile(self, project_id: str, name: str, project: ProjectGuardrails) -> Guard:
        """Build (and warm) the guard of ``name``; call it off the event loop: warming may load
        a model. Raises ConfigurationError when the policy no longer validates."""
        slot, spec = self._spec(project_id, name, project)
        with self._lock:
            hit = self.cached(project_id, name, project)
            if hit is not None:
                return hit
            try:
                guard = Guard(spec if isinstance(spec, str | Policy) else {**spec, "name": name},
                              observer=self.observer)
            except PodiumError as e:
                raise ConfigurationError(f"guardrail policy {name!r} cannot be used: {e.message}") from e
            guard.warm()
            self._compiled[slot] = (spec, guard)
            return guard

    async def get(self, project_id: str, name: str, project: ProjectGuardrails) -> Guard:
        hit = self.cached(project_id, name, project)
        if hit is not None:
            return hit
        return await asyncio.to_thread(self.compile, project_id, name, project)

    def invalidate(self, project_id: str | None = None) -> None:
        if project_id is None:
            self._compiled.clear()
        else:
            for slot in [s for s in self._compiled if s[0] == project_id]:
                self._compiled.pop(slot, None)


class GuardrailBlocked(ContentBlocked):
    """ContentBlocked with the decision that blocked (for the trace)."""

    def __init__(self, message: str, *, decision: Decision, details: list[Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.decision = decision


def blocked_error(decision: Decision, where: str) -> GuardrailBlocked:
    """The error a caller gets for a blocked prompt (``where``: the request field) or answer
    (``where="output"``)."""
    what = "the model's answer" if where == "output" else "the request"
    return GuardrailBlocked(
        f"{what} was blocked by guardrail policy {decision.policy!r}: {decision.reason()}. "
        "Change the text, or ask an admin to change the policy (docs/guardrails.md)", decision=decision,
        details=[{"field": where, "message": decision.reason(), "policy": decision.policy,
                  "rule": decision.blocked_by.rule if decision.blocked_by else None,
                  "scanner": decision.blocked_by.scanner if decision.blocked_by else None}])


# --- input ------------------------------------------------------------------------------------

Path = tuple[Any, ...]


def input_pieces(endpoint: str, body: dict[str, Any]) -> list[tuple[Path, str]]:
    """The texts of a request that input scanners see, with where each sits in ``body``."""
    out: list[tuple[Path, str]] = []
    if endpoint == "chat":
        for i, m in enumerate(body.get("messages") or ()):
            if not isinstance(m, dict) or m.get("role") not in _SCANNED_ROLES:
                continue
            c = m.get("content")
            if isinstance(c, str):
                out.append((("messages", i, "content"), c))
            elif isinstance(c, list):
                for j, part in enumerate(c):
                    if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                        out.append((("messages", i, "content", j, "text"), part["text"]))
    else:
        name = "prompt" if endpoint == "completion" else "input"
        v = body.get(name)
        if isinstance(v, str):
            out.append(((name,), v))
        elif isinstance(v, list):
            out.extend(((name, i), s) for i, s in enumerate(v) if isinstance(s, str))
    return [(p, t) for p, t in out if t]


def _field(endpoint: str) -> str:
    return "messages" if endpoint == "chat" else "prompt" if endpoint == "completion" else "input"


def _write(body: dict[str, Any], path: Path, text: str) -> None:
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = text


async def scan_input(guard: Guard, endpoint: str, body: dict[str, Any]) -> tuple[Decision | None, dict[str, Any]]:
    """Scan a request; returns (decision, the body to send upstream). Raises ContentBlocked."""
    pieces = input_pieces(endpoint, body)
    if not pieces or not guard.policy.input:
        return None, body
    joined = _SEP.join(t for _, t in pieces)
    d = await guard.ascan(joined, "input")
    if d.blocked:
        raise blocked_error(d, _field(endpoint))
    if d.text == joined:
        return d, body
    texts = d.text.split(_SEP)
    if len(texts) != len(pieces):  # a redaction ran across a separator: redact piece by piece
        texts = []
        for _, t in pieces:
            one = await guard.ascan(t, "input")
            texts.append(one.text)
            d.redactions.update(one.redactions)
    out = copy.deepcopy(body)
    for (path, _), text in zip(pieces, texts, strict=True):
        _write(out, path, text)
    return d, out


def prompt_text(endpoint: str, body: dict[str, Any]) -> str | None:
    """The last user text (what output scanners get as ``ctx.prompt``)."""
    pieces = input_pieces(endpoint, body)
    if endpoint == "chat":
        msgs = body.get("messages") or []
        users = [t for p, t in pieces if msgs[p[1]].get("role") == "user"]
        return users[-1] if users else None
    return pieces[-1][1] if pieces else None


def context_documents(endpoint: str, body: dict[str, Any]) -> list[str]:
    """What output scanners get as ``ctx.documents`` (the context an answer must be grounded
    in): the text of the system/developer and tool messages of a chat request (the retrieved
    passages and tool results a RAG app puts there); nothing for other endpoints."""
    if endpoint != "chat":
        return []
    docs: list[str] = []
    for m in body.get("messages") or ():
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "tool"):
            continue
        c = m.get("content")
        if isinstance(c, str) and c:
            docs.append(c)
        elif isinstance(c, list):
            docs.extend(part["text"] for part in c if isinstance(part, dict) and isinstance(part.get("text"), str)
                        and part["text"])
    return docs


# --- output -----------------------------------------------------------------------------------

async def scan_output(guard: Guard, endpoint: str, out: dict[str, Any], prompt: str | None,
                      restore: Decision | None, documents: Sequence[str] = ()) -> tuple[list[Decision], dict[str, Any]]:
    """Scan each choice of an answer; returns the decisions and the answer to send (redacted,
    reversible input redactions restored). Raises ContentBlocked."""
    decisions: list[Decision] = []
    result = out
    choices = out.get("choices") or []
    for i, ch in enumerate(choices):
        if not isinstance(ch, dict):
            continue
        chat = endpoint == "chat"
        text = (ch.get("message") or {}).get("content") if chat else ch.get("text")
        if not isinstance(text, str) or not text:
            continue
        new = text
        if guard.policy.output:
            d = await guard.ascan(text, "output", prompt=prompt, documents=documents)
            decisions.append(d)
            if d.blocked:
                raise blocked_error(d, "output")
            new = d.text
        if restore is not None and restore.redactions:
            new = restore.restore(new)
        if new != text:
            if result is out:
                result = {**out, "choices": list(choices)}
            if chat:
                result["choices"][i] = {**ch, "message": {**ch["message"], "content": new}}
            else:
                result["choices"][i] = {**ch, "text": new}
    return decisions, result


class _Restorer:
    """Puts reversible placeholders back into streamed text, holding back a suffix that may be
    the start of a placeholder split across chunks."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.hold = ""
        self.longest = max(len(p) for p in decision.redactions)

    def feed(self, text: str, final: bool = False) -> str:
        text = self.hold + text
        self.hold = ""
        if not final:
            cut = text.rfind("<")
            if cut != -1 and ">" not in text[cut:] and len(text) - cut < self.longest:
                text, self.hold = text[:cut], text[cut:]
        return self.decision.restore(text)


class GuardedStream:
    """Filters a stream's chunks through one :class:`StreamGuard` per choice: text goes out
    only once its window passed; a block raises ContentBlocked (the route ends the stream
    with an error event and no ``[DONE]``)."""

    def __init__(self, guard: Guard | None, *, chat: bool, prompt: str | None, restore: Decision | None,
                 documents: Sequence[str] = ()) -> None:
        self.guard = guard if guard is not None and guard.policy.output else None
        # A model-backed output scanner would block the event loop: the caller runs chunk() in a thread.
        self.slow = self.guard is not None and self.guard.slow("output")
        self.chat = chat
        self.prompt = prompt
        self.documents = tuple(documents)
        self.restore = restore if restore is not None and restore.redactions else None
        self.guards: dict[int, StreamGuard] = {}
        self.restorers: dict[int, _Restorer] = {}
        self.finished: set[int] = set()
        self.template: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.guard is not None or self.restore is not None

    def decisions(self) -> list[Decision]:
        return [g.summary() for _, g in sorted(self.guards.items())]

    def _pass(self, idx: int, text: str, final: bool) -> str:
        if self.guard is not None:
            sg = self.guards.get(idx)
            if sg is None:
                sg = self.guards[idx] = self.guard.stream(prompt=self.prompt, documents=self.documents)
            out = sg.feed(text) if text else ""
            if final:
                out += sg.finish()
            if sg.blocked:
                assert sg.decision is not None
                raise blocked_error(sg.decision, "output")
            text = out
        if self.restore is not None:
            r = self.restorers.get(idx)
            if r is None:
                r = self.restorers[idx] = _Restorer(self.restore)
            text = r.feed(text, final)
        return text

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to send for an upstream ``chunk`` (None: nothing to send yet)."""
        if self.template is None:
            self.template = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
        choices = chunk.get("choices")
        if not choices:
            return chunk
        new_choices = []
        keep = "usage" in chunk and chunk["usage"] is not None
        for ch in choices:
            idx = ch.get("index", 0)
            final = bool(ch.get("finish_reason"))
            if self.chat:
                delta = ch.get("delta") or {}
                content = delta.get("content")
                out = self._pass(idx, content if isinstance(content, str) else "", final)
                if final:
                    self.finished.add(idx)
                new_delta = {**delta, "content": out} if ("content" in delta or out) else delta
                if out or final or any(k != "content" for k in new_delta):
                    keep = True
                new_choices.append({**ch, "delta": new_delta})
            else:
                raw = ch.get("text")
                out = self._pass(idx, raw if isinstance(raw, str) else "", final)
                if final:
                    self.finished.add(idx)
                if out or final:
                    keep = True
                new_choices.append({**ch, "text": out})
        return {**chunk, "choices": new_choices} if keep else None

    def end(self) -> list[dict[str, Any]]:
        """Chunks with the text still held back of choices the upstream did not finish."""
        out = []
        for idx in sorted(set(self.guards) | set(self.restorers)):
            if idx in self.finished:
                continue
            self.finished.add(idx)
            text = self._pass(idx, "", True)
            if text:
                base = {**(self.template or {})}
                if self.chat:
                    out.append({**base, "choices": [{"index": idx, "delta": {"content": text}, "finish_reason": None}]})
                else:
                    out.append({**base, "choices": [{"index": idx, "text": text, "finish_reason": None,
                                                     "logprobs": None}]})
        return out
