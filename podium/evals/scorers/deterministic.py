"""Deterministic checks: equality, substrings, regex, JSON, length, latency, cost, custom Python.

Each check decides pass/fail itself (``value`` is a bool, or a measured number for
``length``, ``latency`` and ``cost``), so the ``not-`` prefix works without a threshold.
Where a check compares against a reference and no ``value`` is given, it uses the item's
``expected`` (and then declares that field).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from podium.evals.scorers.base import (
    FunctionScorer,
    MissingField,
    Score,
    Scorer,
    ScorerConfigError,
    require,
    text_of,
)
from podium.evals.scorers.script import PythonSnippet

__all__ = [
    "Contains",
    "ContainsAll",
    "ContainsAny",
    "ContainsJson",
    "Cost",
    "Equals",
    "IContains",
    "IContainsAll",
    "IContainsAny",
    "IsJson",
    "JsonSchema",
    "Latency",
    "Length",
    "Regex",
    "StartsWith",
    "extract_json",
    "load_callable",
    "python_scorer",
]


class _Check(Scorer):
    direction = None
    verdict = True

    def __init__(self, *, name: str | None, weight: float, invert: bool) -> None:
        super().__init__(name=name, weight=weight, invert=invert)


class Equals(_Check):
    """Output equals ``value`` (or the item's ``expected``). A mapping/list value compares as JSON."""

    type = "equals"

    def __init__(
        self,
        value: Any = None,
        *,
        ignore_case: bool = False,
        strip: bool = False,
        name: str | None = None,
        weight: float = 1.0,
        invert: bool = False,
    ) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        self.value = value
        self.ignore_case = ignore_case
        self.strip = strip
        self._declare(["output"] if value is not None else ["output", "expected"])

    def _norm(self, s: str) -> str:
        if self.strip:
            s = s.strip()
        return s.casefold() if self.ignore_case else s

    def compute(self, output: Any, expected: Any = None) -> Score:
        want = self.value if self.value is not None else expected
        if isinstance(want, Mapping | list):
            got = output
            if isinstance(output, str):
                try:
                    got = json.loads(output)
                except ValueError:
                    return Score(False, explanation="output is not JSON, so it cannot equal the expected structure")
            ok = got == want
            return Score(ok, explanation=None if ok else "output differs from the expected JSON")
        ok = self._norm(text_of(output)) == self._norm(text_of(want))
        return Score(ok, explanation=None if ok else f"expected {_short(text_of(want))!r}, got {_short(text_of(output))!r}")


def _short(s: str, n: int = 120) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _needles(value: Any, type_name: str, *, many: bool) -> list[str]:
    if value is None:
        return []
    if many:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",")]  # promptfoo accepts "a,b,c"
        elif isinstance(value, Sequence):
            items = [text_of(v) for v in value]
        else:
            raise ScorerConfigError(f"{type_name}: `value` must be a list of strings (or 'a,b,c')")
        items = [v for v in items if v != ""]
        if not items:
            raise ScorerConfigError(f"{type_name}: `value` must list at least one non-empty string")
        return items
    if isinstance(value, Mapping | list):
        raise ScorerConfigError(f"{type_name}: `value` must be a string; use {type_name}-any / -all for lists")
    return [text_of(value)]


class Contains(_Check):
    """Output contains ``value`` (or the item's ``expected``) as a substring."""

    type = "contains"
    ignore_case: ClassVar[bool] = False
    mode: ClassVar[str] = "one"  # one | any | all

    def __init__(self, value: Any = None, *, name: str | None = None, weight: float = 1.0, invert: bool = False) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        many = self.mode != "one"
        if value is None and many:
            raise ScorerConfigError(f"{self.type}: give `value`, the list of strings to look for")
        self.needles = _needles(value, self.type, many=many)
        self._declare(["output"] if self.needles else ["output", "expected"])

    def compute(self, output: Any, expected: Any = None) -> Score:
        needles = self.needles or _needles(expected, self.type, many=False)
        hay = text_of(output)
        if self.ignore_case:
            hay = hay.casefold()
            found = [n for n in needles if n.casefold() in hay]
        else:
            found = [n for n in needles if n in hay]
        missing = [n for n in needles if n not in found]
        ok = bool(found) if self.mode == "any" else not missing
        if ok:
            why = f"found {found[0]!r}" if self.mode != "all" else f"found all {len(needles)}"
        else:
            why = f"missing {missing[:5]!r}" if self.mode != "any" else f"none of {needles[:5]!r} found"
        return Score(ok, explanation=why)


class IContains(Contains):
    """Like ``contains``, ignoring case (Unicode casefold)."""

    type = "icontains"
    ignore_case = True


class ContainsAny(Contains):
    """Output contains at least one of the strings in ``value``."""

    type = "contains-any"
    mode = "any"


class ContainsAll(Contains):
    """Output contains every string in ``value``."""

    type = "contains-all"
    mode = "all"


class IContainsAny(Contains):
    """Like ``contains-any``, ignoring case."""

    type = "icontains-any"
    mode = "any"
    ignore_case = True


class IContainsAll(Contains):
    """Like ``contains-all``, ignoring case."""

    type = "icontains-all"
    mode = "all"
    ignore_case = True


class StartsWith(_Check):
    """Output starts with ``value`` (or the item's ``expected``); leading whitespace is ignored if ``strip``."""

    type = "starts-with"

    def __init__(
        self, value: Any = None, *, strip: bool = False, name: str | None = None, weight: float = 1.0,
        invert: bool = False,
    ) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        self.value = None if value is None else _needles(value, self.type, many=False)[0]
        self.strip = strip
        self._declare(["output"] if self.value is not None else ["output", "expected"])

    def compute(self, output: Any, expected: Any = None) -> Score:
        prefix = self.value if self.value is not None else text_of(expected)
        text = text_of(output)
        if self.strip:
            text = text.lstrip()
        ok = text.startswith(prefix)
        return Score(ok, explanation=None if ok else f"output starts with {_short(text, 40)!r}, not {_short(prefix, 40)!r}")


_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


class Regex(_Check):
    """``re.search(value, output)`` finds a match. ``flags``: any of ``i m s x a``."""

    type = "regex"

    def __init__(
        self, value: str, *, flags: str = "", fullmatch: bool = False, name: str | None = None,
        weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        if not isinstance(value, str) or not value:
            raise ScorerConfigError("regex: `value` must be a non-empty regular expression")
        bad = set(flags) - set(_FLAGS)
        if bad:
            raise ScorerConfigError(f"regex: unknown flag(s) {sorted(bad)}; use any of {''.join(_FLAGS)}")
        f = 0
        for c in flags:
            f |= _FLAGS[c]
        try:
            self.pattern = re.compile(value, f)
        except re.error as e:
            raise ScorerConfigError(f"regex: {value!r} is not a valid regular expression: {e}") from e
        self.fullmatch = fullmatch
        self._declare(["output"])

    def compute(self, output: Any) -> Score:
        text = text_of(output)
        m = self.pattern.fullmatch(text) if self.fullmatch else self.pattern.search(text)
        if m is None:
            return Score(False, explanation=f"no match for /{self.pattern.pattern}/")
        return Score(True, explanation=f"matched {_short(m.group(0), 80)!r}")


# --- JSON ------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (in a ```json fence, or bare); raises ValueError."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for m in _FENCE.finditer(text):
        try:
            return json.loads(m.group(1))
        except ValueError:
            continue
    dec = json.JSONDecoder()
    for i, c in enumerate(text):
        if c in "{[":
            try:
                return dec.raw_decode(text, i)[0]
            except ValueError:
                continue
    raise ValueError("no JSON object or array found")


def _schema_validator(schema: Any, type_name: str) -> Any:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise ScorerConfigError(f"{type_name}: `value` is a string but not a JSON Schema document: {e}") from e
    if not isinstance(schema, Mapping | bool):
        raise ScorerConfigError(f"{type_name}: `value` must be a JSON Schema (a mapping)")
    jsonschema = require("jsonschema", scorer=type_name, package="jsonschema", requirement="jsonschema>=4.20,<5")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        raise ScorerConfigError(f"{type_name}: the schema is not valid {cls.__name__}: {e.message}") from e
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _schema_errors(validator: Any, doc: Any) -> str | None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(e.path), e.message))
    if not errors:
        return None
    first = errors[0]
    where = "/".join(str(p) for p in first.path) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"at {where}: {first.message}{more}"


class IsJson(_Check):
    """The whole output parses as JSON; with a ``value`` (a JSON Schema) it must also validate."""

    type = "is-json"

    def __init__(self, value: Any = None, *, name: str | None = None, weight: float = 1.0, invert: bool = False) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        self.validator = _schema_validator(value, self.type) if value is not None else None
        self._declare(["output"])

    def _parse(self, output: Any) -> Any:
        if not isinstance(output, str):
            return output  # a structured output is JSON already
        return json.loads(output)

    def compute(self, output: Any) -> Score:
        try:
            doc = self._parse(output)
        except ValueError as e:
            return Score(False, explanation=f"not JSON: {e}")
        if self.validator is not None:
            err = _schema_errors(self.validator, doc)
            if err:
                return Score(False, explanation=f"JSON does not match the schema {err}")
        return Score(True)


class ContainsJson(IsJson):
    """The output contains a JSON object or array (bare or in a ```json fence); optional schema."""

    type = "contains-json"

    def _parse(self, output: Any) -> Any:
        if not isinstance(output, str):
            return output
        return extract_json(output)


class JsonSchema(IsJson):
    """The output is JSON that validates against the JSON Schema in ``value`` (jsonschema library)."""

    type = "json-schema"

    def __init__(self, value: Any, *, name: str | None = None, weight: float = 1.0, invert: bool = False) -> None:
        if value is None:
            raise ScorerConfigError("json-schema: give the schema as `value`")
        super().__init__(value, name=name, weight=weight, invert=invert)


# --- length, latency, cost -------------------------------------------------------------------


class Length(Scorer):
    """Output length within ``min``..``max`` (inclusive), counted in ``unit``: chars or words."""

    type = "length"
    direction = None
    verdict = True

    def __init__(
        self, *, min: int | None = None, max: int | None = None, unit: str = "chars",
        name: str | None = None, weight: float = 1.0, invert: bool = False,
    ) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        if min is None and max is None:
            raise ScorerConfigError("length: give `min`, `max` or both")
        for k, v in (("min", min), ("max", max)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ScorerConfigError(f"length: `{k}` must be a whole number >= 0, got {v!r}")
        if min is not None and max is not None and min > max:
            raise ScorerConfigError(f"length: `min` ({min}) is above `max` ({max})")
        if unit not in ("chars", "words"):
            raise ScorerConfigError(f"length: `unit` must be 'chars' or 'words', got {unit!r}")
        self.min, self.max, self.unit = min, max, unit
        self._declare(["output"])

    def compute(self, output: Any) -> Score:
        text = text_of(output)
        n = len(text) if self.unit == "chars" else len(text.split())
        ok = (self.min is None or n >= self.min) and (self.max is None or n <= self.max)
        lo = "" if self.min is None else f"{self.min} <= "
        hi = "" if self.max is None else f" <= {self.max}"
        return Score(float(n), passed=ok, explanation=f"{n} {self.unit}{'' if ok else ', not'} within {lo}n{hi}")


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int | float | Decimal):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _time(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def latency_ms_of(metadata: Any, trace: Any) -> float | None:
    """Latency in ms: ``metadata.latency_ms``, else the trace's ``latency_ms`` / ``duration_ms``,
    else its ``end_time - start_time``."""
    for src, keys in ((metadata, ("latency_ms",)), (trace, ("latency_ms", "duration_ms"))):
        for k in keys:
            n = _number(_get(src, k))
            if n is not None:
                return n
    start, end = _time(_get(trace, "start_time")), _time(_get(trace, "end_time"))
    if start is not None and end is not None:
        return (end - start).total_seconds() * 1000.0
    return None


def cost_of(metadata: Any, trace: Any) -> float | None:
    """Cost in USD: ``metadata.cost`` (or ``cost_usd``), else the trace's ``total_cost`` (or ``cost``,
    a number or a mapping with ``total``)."""
    for src, keys in ((metadata, ("cost", "cost_usd")), (trace, ("total_cost", "cost"))):
        for k in keys:
            v = _get(src, k)
            n = _number(v) if not isinstance(v, Mapping) else _number(v.get("total"))
            if n is not None:
                return n
    return None


class _Budget(Scorer):
    direction = "lower"
    verdict = True
    unit: ClassVar[str] = ""

    def __init__(
        self, *, threshold: float | None = None, name: str | None = None, weight: float = 1.0, invert: bool = False
    ) -> None:
        if threshold is None:
            raise ScorerConfigError(f"{self.type}: give `threshold`, the maximum allowed ({self.unit})")
        super().__init__(name=name, threshold=threshold, weight=weight, invert=invert)
        self._declare([], ["metadata", "trace"])

    def measure(self, metadata: Any, trace: Any) -> float | None:
        raise NotImplementedError

    def compute(self, metadata: Any = None, trace: Any = None) -> Any:
        v = self.measure(metadata, trace)
        if v is None:
            raise MissingField(self.field_hint, self.name, hint="record it in the item's metadata, or score traced items")
        return v

    field_hint: ClassVar[str] = ""


class Latency(_Budget):
    """Latency at most ``threshold`` milliseconds (from metadata.latency_ms or the trace)."""

    type = "latency"
    unit = "ms"
    field_hint = "metadata.latency_ms (or trace)"

    def measure(self, metadata: Any, trace: Any) -> float | None:
        return latency_ms_of(metadata, trace)


class Cost(_Budget):
    """Cost at most ``threshold`` USD (from metadata.cost or the trace's total_cost)."""

    type = "cost"
    unit = "USD"
    field_hint = "metadata.cost (or trace)"

    def measure(self, metadata: Any, trace: Any) -> float | None:
        return cost_of(metadata, trace)


# --- custom Python ---------------------------------------------------------------------------


def load_callable(ref: str) -> Callable[..., Any]:
    """``"package.module:function"`` or ``"path/to/file.py:function"`` to the function."""
    if not isinstance(ref, str) or ":" not in ref:
        raise ScorerConfigError(f"python: {ref!r} is not 'module:function' or 'file.py:function'")
    mod_ref, _, attr = ref.rpartition(":")
    if not mod_ref or not attr:
        raise ScorerConfigError(f"python: {ref!r} is not 'module:function' or 'file.py:function'")
    try:
        if mod_ref.endswith(".py"):
            path = Path(mod_ref).expanduser().resolve()
            if not path.is_file():
                raise ScorerConfigError(f"python: no file {path}")
            mod_name = f"_podium_scorer_{abs(hash(str(path)))}"
            module = sys.modules.get(mod_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise ScorerConfigError(f"python: cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[mod_name] = module
        else:
            module = importlib.import_module(mod_ref)
    except ScorerConfigError:
        raise
    except Exception as e:
        raise ScorerConfigError(f"python: cannot import {mod_ref!r}: {type(e).__name__}: {e}") from e
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ScorerConfigError(f"python: {mod_ref!r} has no attribute {attr!r}")
    if not callable(obj):
        raise ScorerConfigError(f"python: {ref!r} is not callable")
    return obj


_CALLABLE_REF = re.compile(r"^[\w./\\~-]+:[A-Za-z_][\w.]*$")


def python_scorer(
    value: Any,
    *,
    threshold: float | None = None,
    direction: str = "higher",
    name: str | None = None,
    weight: float = 1.0,
    invert: bool = False,
) -> Scorer:
    """A custom Python scorer: ``value`` is a callable or ``"module:function"`` / ``"file.py:function"``;
    any other string is promptfoo's inline form (see :mod:`podium.evals.scorers.script`).

    The function declares its fields by parameter name and returns a Score, bool, number,
    string or mapping (see :mod:`podium.evals.scorers.base`).
    """
    if isinstance(value, str) and not _CALLABLE_REF.match(value.strip()):
        # promptfoo's inline form: an expression, a function body, or file://x.py[:name]
        return PythonSnippet(value, threshold=threshold, name=name, weight=weight, invert=invert)
    fn = value if callable(value) else load_callable(value)
    if direction not in ("higher", "lower"):
        raise ScorerConfigError(f"python: `direction` must be 'higher' or 'lower', got {direction!r}")
    return FunctionScorer(fn, name=name, threshold=threshold, weight=weight, invert=invert,
                          direction=direction)  # type: ignore[arg-type]

