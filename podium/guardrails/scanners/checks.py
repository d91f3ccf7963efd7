"""Format checks on a text: ``json-schema``, ``regex`` and ``length``.

All three are pass/fail: score 1.0 when the check fails, 0.0 when it passes, the reason in
``detail``. Checks that need the whole answer (a JSON document, a pattern the answer must
match, any length limit) return 0.0 while ``ctx.final`` is False (a stream window: more text
follows); the whole answer is checked when the stream ends. ``regex`` in ``deny`` mode checks
windows too, and reports its matches as findings so ``action: redact`` can replace them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from podium.errors import ConfigurationError
from podium.guardrails.base import Context, Finding, Result, Scanner

__all__ = ["JsonSchema", "Length", "Regex"]

_WAIT = "not checked: waits for the whole answer"
_FENCE = re.compile(r"^\s*```[\w+-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def _validator_class() -> Any:
    try:
        import jsonschema
    except ImportError as e:
        raise ConfigurationError("the json-schema scanner needs jsonschema: run `pip install 'podium[eval]'`") from e
    return jsonschema


class JsonSchema(Scanner):
    """The answer must be JSON (optionally inside one Markdown code fence) valid against
    ``schema`` (any JSON Schema draft jsonschema knows; ``$schema`` picks it, else 2020-12).
    Without ``schema`` the answer only has to parse."""

    name = "json-schema"
    kinds = frozenset({"input", "output"})
    description = "The answer is JSON valid against a JSON Schema"

    def __init__(self, schema: Mapping[str, Any] | None = None, allow_fence: bool = True) -> None:
        self.schema = dict(schema) if schema is not None else None
        self.allow_fence = allow_fence
        self._validator: Any = None
        if self.schema is not None:
            js = _validator_class()
            cls = js.validators.validator_for(self.schema, default=js.Draft202012Validator)
            try:
                cls.check_schema(self.schema)
            except js.SchemaError as e:
                raise ValueError(f"schema is not a valid JSON Schema: {e.message} (at {_path(e.path)})") from e
            self._validator = cls(self.schema)

    def scan(self, text: str, ctx: Context) -> Result:
        if not ctx.final:
            return Result(score=0.0, detail=_WAIT)
        body = text
        fenced = self.allow_fence and _FENCE.match(text)
        if fenced:
            body = fenced.group(1)
        try:
            value = json.loads(body)
        except json.JSONDecodeError as e:
            return Result(score=1.0, detail=f"not JSON: {e.msg} at line {e.lineno} column {e.colno}",
                          metadata={"error": "parse"})
        if self._validator is None:
            return Result(score=0.0, metadata={"fenced": bool(fenced)})
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if not errors:
            return Result(score=0.0, metadata={"fenced": bool(fenced)})
        msgs = [f"{_path(e.path)}: {e.message}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return Result(score=1.0, detail="does not match the schema: " + "; ".join(msgs) + more,
                      metadata={"error": "schema", "errors": msgs})


def _path(path: Sequence[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


class Regex(Scanner):
    """Regular expressions. ``mode: deny`` (default): fails when any pattern matches, with a
    finding per match (label: the pattern's name). ``mode: require``: fails unless every
    pattern matches somewhere in the whole answer. ``patterns`` is a list or ``{name: pattern}``.

    Patterns are Python ``re`` syntax, compiled once; ``ignore_case`` adds ``re.IGNORECASE``.
    Avoid nested quantifiers (``(a+)+``): ``re`` has no time limit, and this scanner runs inline."""

    name = "regex"
    kinds = frozenset({"input", "output"})
    description = "Patterns the text must not (deny) or must (require) match"

    def __init__(self, patterns: Mapping[str, str] | Sequence[str], mode: Literal["deny", "require"] = "deny",
                 ignore_case: bool = False, label: str | None = None) -> None:
        if mode not in ("deny", "require"):
            raise ValueError(f"mode must be deny or require, not {mode!r}")
        if isinstance(patterns, str):
            patterns = [patterns]
        named = list(patterns.items()) if isinstance(patterns, Mapping) else [(label or "regex", p) for p in patterns]
        if not named:
            raise ValueError("give at least one pattern")
        flags = re.IGNORECASE if ignore_case else 0
        self.mode = mode
        self.patterns: list[tuple[str, re.Pattern[str]]] = []
        for name, p in named:
            try:
                self.patterns.append((str(name), re.compile(p, flags)))
            except (re.error, TypeError) as e:
                raise ValueError(f"pattern {name!r} ({p!r}) does not compile: {e}") from e

    def scan(self, text: str, ctx: Context) -> Result:
        if self.mode == "require":
            if not ctx.final:
                return Result(score=0.0, detail=_WAIT)
            missing = [f"{n} /{p.pattern}/" for n, p in self.patterns if p.search(text) is None]
            if missing:
                return Result(score=1.0, detail=f"does not match required pattern {', '.join(missing)}",
                              metadata={"missing": missing})
            return Result(score=0.0)
        findings = [Finding(m.start(), m.end(), name, m.group(), 1.0)
                    for name, p in self.patterns for m in p.finditer(text) if m.end() > m.start()]
        if not findings:
            return Result(score=0.0)
        names = list(dict.fromkeys(f.label for f in findings))
        return Result(score=1.0, findings=sorted(findings, key=lambda f: f.start),
                      detail=f"matches {', '.join(names)}", metadata={"matched": names})


class Length(Scanner):
    """Length limits in characters, words and tokens (``min_``/``max_`` of each). Tokens are
    counted by :func:`podium.core.tokens.count_tokens` (cl100k_base where tiktoken is installed,
    else its documented estimate). Fails (1.0) when any limit is broken; checked on the whole
    text only (score 0 on stream windows)."""

    name = "length"
    kinds = frozenset({"input", "output"})
    description = "Length limits in characters, words or tokens"

    def __init__(self, max_chars: int | None = None, min_chars: int | None = None,
                 max_words: int | None = None, min_words: int | None = None,
                 max_tokens: int | None = None, min_tokens: int | None = None, model: str | None = None) -> None:
        self.limits = {"chars": (min_chars, max_chars), "words": (min_words, max_words),
                       "tokens": (min_tokens, max_tokens)}
        if all(lo is None and hi is None for lo, hi in self.limits.values()):
            raise ValueError("give at least one limit: max_chars, min_chars, max_words, min_words, max_tokens, "
                             "min_tokens")
        for unit, (lo, hi) in self.limits.items():
            for v in (lo, hi):
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                    raise ValueError(f"{unit} limits must be whole numbers >= 0, not {v!r}")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"min_{unit} ({lo}) is above max_{unit} ({hi})")
        self.model = model

    def warm(self) -> None:
        if self.limits["tokens"] != (None, None):
            from podium.core.tokens import tokenizer_name

            tokenizer_name()  # loads the encoding (~0.4 s) now rather than on the first request

    def _count(self, unit: str, text: str) -> int:
        if unit == "chars":
            return len(text)
        if unit == "words":
            return len(text.split())
        from podium.core.tokens import count_tokens

        return count_tokens(text, model=self.model)

    def scan(self, text: str, ctx: Context) -> Result:
        if not ctx.final:
            return Result(score=0.0, detail=_WAIT)
        counts: dict[str, int] = {}
        broken: list[str] = []
        for unit, (lo, hi) in self.limits.items():
            if lo is None and hi is None:
                continue
            n = counts[unit] = self._count(unit, text)
            if hi is not None and n > hi:
                broken.append(f"{n} {unit} > max_{unit} {hi}")
            if lo is not None and n < lo:
                broken.append(f"{n} {unit} < min_{unit} {lo}")
        return Result(score=1.0 if broken else 0.0, detail="; ".join(broken) or None, metadata=counts)
