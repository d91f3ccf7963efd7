"""The scorer contract, the :class:`Score` record and the registry of assertion types.

A *scorer* looks at one item of an evaluation and returns a :class:`Score`. An item is a
mapping (or any object with attributes) that may carry these fields::

    input  output  expected  context  metadata  trace

A scorer declares the fields it needs by parameter name; the runner passes only those and
reports :class:`~podium.evals.scorers.errors.MissingField` (naming the field) when an item
lacks a required one. A field whose value is ``None`` counts as absent.

Three ways to write one:

* a plain function, wrapped by :func:`as_scorer` or the :func:`scorer` decorator::

      def mentions_paris(output: str) -> bool:          # required: output
          return "paris" in output.lower()

      def close_enough(output, expected, metadata=None):  # optional: metadata
          return 1.0 - abs(float(output) - float(expected)) / 10

  It returns a :class:`Score`, a ``bool`` (value and pass flag), a number (value; the pass
  flag comes from ``threshold`` if one is set), a string (a categorical value) or a mapping
  ``{"value"|"score", "passed"|"pass", "explanation"|"reason", "metadata"}``.

* a :class:`Scorer` subclass that overrides :meth:`Scorer.compute` and, for speed,
  :meth:`Scorer.compute_batch` (embedding similarity embeds a whole batch in one call);

* a registered assertion type, built by :func:`get_scorer` (``get_scorer("contains", value="Paris")``)
  or from a promptfoo-like assertion mapping by :func:`scorer_from_assertion`
  (``{"type": "not-icontains", "value": "sorry", "weight": 2}``).

Every scorer has a ``name`` (the score's name), a ``weight`` (carried for the runner's weighted
aggregate), an optional ``threshold`` and ``invert`` (the ``not-`` prefix: the pass flag, and a
boolean value, are negated).

Running scorers: :meth:`Scorer.score` scores one item and raises on problems;
:meth:`Scorer.score_batch` scores many and puts the exception (``MissingField``,
``ScorerError``, ``JudgeError``) in a failing item's slot instead of a score, so one bad row
never stops a run. Configuration errors (bad parameters, a missing optional library) are raised
when the scorer is built.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar, Literal

from podium.errors import ConfigurationError
from podium.evals.scorers.errors import (
    MissingDependency,
    MissingField,
    ScorerConfigError,
    ScorerError,
    UnknownScorer,
)

__all__ = [
    "COMMON_PARAMS",
    "FIELDS",
    "FunctionScorer",
    "Score",
    "Scorer",
    "ScorerSpec",
    "as_scorer",
    "get_scorer",
    "references_of",
    "register_scorer",
    "require",
    "scorer",
    "scorer_from_assertion",
    "scorer_specs",
    "scorer_types",
    "text_of",
    "to_score",
]

FIELDS: tuple[str, ...] = ("input", "output", "expected", "context", "metadata", "trace")
"""The item fields a scorer may declare, by parameter name."""

ScoreValue = float | bool | str
Direction = Literal["higher", "lower"]


# --- the score record ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """What a scorer says about one item.

    ``value`` is a number (metrics, judge scores), a bool (checks) or a string (a category).
    ``passed`` is the pass/fail verdict, or ``None`` when the scorer only measures (a metric
    without a threshold). ``explanation`` says why, in words (judge reasoning, the failing
    regex, the first schema error). ``metadata`` holds details worth storing next to the score
    (sacrebleu's signature, the judge's raw score and prompt version, per-claim verdicts).
    """

    value: ScoreValue
    passed: bool | None = None
    explanation: str | None = None
    name: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def numeric(self) -> float | None:
        """The value as a float (``True`` is 1.0), or ``None`` for a categorical value."""
        if isinstance(self.value, bool):
            return 1.0 if self.value else 0.0
        if isinstance(self.value, int | float):
            return float(self.value)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "passed": self.passed,
            "explanation": self.explanation,
            "metadata": dict(self.metadata),
        }


def to_score(raw: Any, name: str = "") -> Score:
    """Normalise what a scorer returned into a :class:`Score` (see the module docstring)."""
    if type(raw).__module__ == "numpy" and hasattr(raw, "item"):
        raw = raw.item()  # numpy scalars (np.float32, np.bool_) as Python values
    if isinstance(raw, Score):
        return raw if raw.name or not name else replace(raw, name=name)
    if isinstance(raw, bool):
        return Score(value=raw, passed=raw, name=name)
    if isinstance(raw, int | float | Decimal):
        return Score(value=float(raw), name=name)
    if isinstance(raw, str):
        return Score(value=raw, name=name)
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"value", "score", "passed", "pass", "explanation", "reason", "metadata", "name"}
        if unknown:
            raise ScorerError(f"scorer {name!r} returned a mapping with unknown keys {sorted(unknown)}; "
                              "use value/score, passed/pass, explanation/reason, metadata", scorer=name)
        value = raw.get("value", raw.get("score"))
        if value is None:
            if "passed" in raw or "pass" in raw:
                value = bool(raw.get("passed", raw.get("pass")))
            else:
                raise ScorerError(f"scorer {name!r} returned a mapping without `value` or `score`", scorer=name)
        passed = raw.get("passed", raw.get("pass"))
        base = to_score(value, name)
        return Score(
            value=base.value,
            passed=base.passed if passed is None else bool(passed),
            explanation=raw.get("explanation", raw.get("reason")),
            name=str(raw.get("name") or name),
            metadata=dict(raw.get("metadata") or {}),
        )
    kind = "None" if raw is None else type(raw).__name__
    raise ScorerError(
        f"scorer {name!r} returned {kind}; return a Score, a bool, a number, a string or a mapping", scorer=name
    )


# --- item access -----------------------------------------------------------------------------


def _item_field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


_HINTS = {
    "expected": "add an expected output to the dataset row (or give the assertion a `value`)",
    "context": "add the retrieved context to the dataset row (a string or a list of passages)",
    "trace": "score items that come from a traced run",
}


def text_of(value: Any) -> str:
    """A field as text: strings as they are, mappings/lists as compact JSON, anything else str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def references_of(value: Any) -> list[str]:
    """One or several references (a list of strings means several acceptable answers)."""
    if isinstance(value, list | tuple):
        refs = [text_of(v) for v in value]
        if not refs:
            raise ScorerError("the expected output is an empty list: give at least one reference")
        return refs
    return [text_of(value)]


# --- the scorer base class -------------------------------------------------------------------


class Scorer:
    """Base class of every scorer.

    Subclasses call :meth:`_declare` in ``__init__`` to say which fields they need, and
    override :meth:`compute` (one item; receives the declared fields as keyword arguments,
    optional ones as ``None`` when absent) and optionally :meth:`compute_batch`.

    Class attributes: ``type`` (the registry name), ``direction`` (``"higher"`` or
    ``"lower"``: which way a ``threshold`` passes; ``None`` when thresholds make no sense),
    ``default_threshold``, and ``verdict`` (True when the scorer always decides pass/fail
    itself, as checks do, so ``not-`` works without a threshold).
    """

    type: ClassVar[str] = ""
    direction: ClassVar[Direction | None] = "higher"
    default_threshold: ClassVar[float | None] = None
    verdict: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str | None = None,
        threshold: float | None = None,
        weight: float = 1.0,
        invert: bool = False,
    ) -> None:
        base = name or self.type or type(self).__name__
        self.name: str = f"not-{base}" if invert and not name else base
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) or math.isnan(threshold):
                raise ScorerConfigError(f"{self.name}: `threshold` must be a number, got {threshold!r}")
            if self.direction is None:
                raise ScorerConfigError(f"{self.name}: this scorer decides pass/fail itself and takes no `threshold`")
        self.threshold: float | None = float(threshold) if threshold is not None else self.default_threshold
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0 or math.isnan(weight):
            raise ScorerConfigError(f"{self.name}: `weight` must be a number >= 0, got {weight!r}")
        self.weight = float(weight)
        self.invert = bool(invert)
        if self.invert and not self.verdict and self.threshold is None:
            raise ScorerConfigError(
                f"{self.name}: `not-` inverts a pass/fail verdict, but this scorer only measures; give it a `threshold`"
            )
        self.fields: tuple[str, ...] = ()
        self.required: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def _declare(self, required: Iterable[str] = (), optional: Iterable[str] = ()) -> None:
        req = tuple(required)
        opt = tuple(f for f in optional if f not in req)
        bad = [f for f in (*req, *opt) if f not in FIELDS]
        if bad:
            raise ScorerConfigError(f"{self.name}: unknown item field(s) {bad}; fields are {', '.join(FIELDS)}")
        self.fields = (*req, *opt)
        self.required = frozenset(req)

    # --- to override ---------------------------------------------------------------------

    def compute(self, *args: Any, **fields: Any) -> Any:
        """Score one item from its declared fields (passed by keyword; subclasses name the ones they
        take, which ``*args`` lets mypy accept); return anything :func:`to_score` accepts."""
        raise NotImplementedError

    def compute_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Score many items at once; each row holds the declared fields. Return one result per
        row, in order; a result may be an exception instance (that item's error).

        The default calls :meth:`compute` per row. Override it where batching pays.
        """
        out: list[Any] = []
        for row in rows:
            try:
                out.append(self.compute(**row))
            except Exception as e:
                out.append(self._as_item_error(e))
        return out

    # --- running -------------------------------------------------------------------------

    def fields_of(self, item: Any) -> dict[str, Any]:
        """The declared fields of ``item``; raises :class:`MissingField` for an absent required one."""
        row: dict[str, Any] = {}
        for f in self.fields:
            v = _item_field(item, f)
            if v is None and f in self.required:
                raise MissingField(f, self.name, hint=_HINTS.get(f, ""))
            row[f] = v
        return row

    def score(self, item: Any) -> Score:
        """Score one item (a mapping or an object with attributes); raises on any problem."""
        result = self._run([self.fields_of(item)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def __call__(self, **fields: Any) -> Score:
        """``scorer(output=..., expected=...)``: score one item given as keyword arguments."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise TypeError(f"unknown item field(s) {sorted(unknown)}; fields are {', '.join(FIELDS)}")
        return self.score(fields)

    def score_batch(self, items: Sequence[Any]) -> list[Score | MissingField | ScorerError]:
        """Score many items. A failing item gets its exception in its slot, not a score.

        Raises only configuration errors (:class:`ScorerConfigError`, :class:`MissingDependency`,
        a local model that is not installed), which would fail every item alike.
        """
        out: list[Any] = [None] * len(items)
        rows: list[dict[str, Any]] = []
        slots: list[int] = []
        for i, item in enumerate(items):
            try:
                rows.append(self.fields_of(item))
                slots.append(i)
            except MissingField as e:
                out[i] = e
        if rows:
            for i, result in zip(slots, self._run(rows), strict=True):
                out[i] = result
        return out

    def _run(self, rows: list[dict[str, Any]]) -> list[Score | MissingField | ScorerError]:
        try:
            raw = self.compute_batch(rows)
        except (ConfigurationError, ScorerConfigError):
            raise
        except Exception as e:
            # isolate the failing item(s); a single row is not computed twice (judge calls cost money)
            raw = [self._as_item_error(e)] if len(rows) == 1 else [self._compute_one(r) for r in rows]
        if len(raw) != len(rows):
            raise ScorerError(f"{self.name}: compute_batch returned {len(raw)} results for {len(rows)} items",
                              scorer=self.name)
        out: list[Score | MissingField | ScorerError] = []
        for r in raw:
            if isinstance(r, Exception):
                out.append(self._as_item_error(r))
                continue
            try:
                out.append(self._finish(r))
            except ScorerError as e:
                out.append(e)
        return out

    def _compute_one(self, row: Mapping[str, Any]) -> Any:
        try:
            return self.compute(**row)
        except Exception as e:
            return self._as_item_error(e)

    def _as_item_error(self, e: Exception) -> MissingField | ScorerError:
        if isinstance(e, ConfigurationError | ScorerConfigError):
            raise e
        if isinstance(e, MissingField | ScorerError):
            if isinstance(e, ScorerError) and not e.scorer:
                e.scorer = self.name
            return e
        err = ScorerError(f"scorer {self.name!r} failed: {type(e).__name__}: {e}", scorer=self.name)
        err.__cause__ = e
        return err

    def _finish(self, raw: Any) -> Score:
        s = to_score(raw, self.name)
        if s.name != self.name:
            s = replace(s, name=self.name)
        passed, explanation = s.passed, s.explanation
        if passed is None and isinstance(s.value, bool):
            passed = s.value  # a boolean value is its own verdict unless the scorer said otherwise
        num = s.numeric
        if passed is None and self.threshold is not None and num is not None and not isinstance(s.value, bool):
            if math.isnan(num):
                passed = False
            else:
                passed = num >= self.threshold if self.direction != "lower" else num <= self.threshold
            rel = (">=" if passed else "<") if self.direction != "lower" else ("<=" if passed else ">")
            verdict = f"{num:.4g} {rel} threshold {self.threshold:g}"
            explanation = f"{explanation} ({verdict})" if explanation else verdict
        value = s.value
        if self.invert:
            if passed is None:
                raise ScorerError(f"{self.name}: `not-` needs a pass/fail verdict, but the scorer gave none; "
                                  "give it a `threshold`", scorer=self.name)
            passed = not passed
            if isinstance(value, bool):
                value = not value
            explanation = f"inverted (not-): {explanation}" if explanation else "inverted (not-)"
        if passed is s.passed and value is s.value and explanation is s.explanation:
            return s
        return replace(s, value=value, passed=passed, explanation=explanation)


class FunctionScorer(Scorer):
    """A plain function as a scorer; its parameter names declare the fields it needs.

    Parameters named after a field are fields (required unless they have a default); other
    parameters must have defaults and are left alone; ``**kwargs`` receives every field the
    item has. If the function has a ``score_batch`` attribute (a callable taking a list of
    field mappings and returning one result per mapping), batches go through it.
    """

    direction: ClassVar[Direction | None] = "higher"

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        threshold: float | None = None,
        weight: float = 1.0,
        invert: bool = False,
        direction: Direction = "higher",
    ) -> None:
        if not callable(fn):
            raise ScorerConfigError(f"a scorer must be callable, got {type(fn).__name__}")
        if direction not in ("higher", "lower"):
            raise ScorerConfigError(f"`direction` must be 'higher' or 'lower', got {direction!r}")
        self.direction = direction  # type: ignore[misc]
        fname = name or getattr(fn, "__name__", None) or type(fn).__name__
        if fname == "<lambda>":
            fname = "lambda"
        self.fn = fn
        self._batch_fn: Callable[..., Any] | None = getattr(fn, "score_batch", None)
        # A function may decide pass/fail itself: `not-` is checked per item, not here.
        self.verdict = True  # type: ignore[misc]
        super().__init__(name=fname, threshold=threshold, weight=weight, invert=invert)
        required, optional, self._var_kw = _signature_fields(fn, fname)
        self._declare(required, optional)

    def fields_of(self, item: Any) -> dict[str, Any]:
        row = super().fields_of(item)
        if self._var_kw:
            for f in FIELDS:
                if f not in row:
                    v = _item_field(item, f)
                    if v is not None:
                        row[f] = v
        # absent optional fields are left out, so the function's own defaults apply
        return {k: v for k, v in row.items() if v is not None or k in self.required}

    def compute(self, **fields: Any) -> Any:
        return self.fn(**fields)

    def compute_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        if self._batch_fn is None:
            return super().compute_batch(rows)
        return list(self._batch_fn([dict(r) for r in rows]))


def _signature_fields(fn: Callable[..., Any], name: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise ScorerConfigError(f"scorer {name!r}: cannot read its signature ({e})") from e
    required: list[str] = []
    optional: list[str] = []
    var_kw = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.name in FIELDS:
            if p.kind is p.POSITIONAL_ONLY:
                raise ScorerConfigError(f"scorer {name!r}: field parameter {p.name!r} must not be positional-only")
            (required if p.default is p.empty else optional).append(p.name)
        elif p.default is p.empty:
            raise ScorerConfigError(
                f"scorer {name!r}: parameter {p.name!r} is not an item field and has no default; "
                f"fields are {', '.join(FIELDS)}"
            )
    if not required and not optional and not var_kw:
        raise ScorerConfigError(f"scorer {name!r} declares no item field; name parameters after {', '.join(FIELDS)}")
    return tuple(required), tuple(optional), var_kw


def scorer(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    threshold: float | None = None,
    weight: float = 1.0,
    direction: Direction = "higher",
) -> Any:
    """Decorator: ``@scorer`` or ``@scorer(name=..., threshold=...)`` turns a function into a
    :class:`FunctionScorer` (calling it with fields as keywords returns a :class:`Score`)."""

    def wrap(f: Callable[..., Any]) -> FunctionScorer:
        return FunctionScorer(f, name=name, threshold=threshold, weight=weight, direction=direction)

    return wrap(fn) if fn is not None else wrap


def as_scorer(obj: Any) -> Scorer:
    """A :class:`Scorer` from a scorer, a function, a type name (``"bleu"``, ``"not-contains"``
    needs a value, so use a mapping) or an assertion mapping (``{"type": ..., "value": ...}``)."""
    if isinstance(obj, Scorer):
        return obj
    if isinstance(obj, str):
        return get_scorer(obj)
    if isinstance(obj, Mapping):
        return scorer_from_assertion(obj)
    if callable(obj):
        return FunctionScorer(obj)
    raise ScorerConfigError(f"cannot use {type(obj).__name__} as a scorer: give a function, a Scorer, "
                            "a type name or an assertion mapping")


# --- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorerSpec:
    """One registered assertion type: its factory and what it accepts."""

    type: str
    factory: Callable[..., Scorer]
    category: str
    description: str
    params: tuple[str, ...]  # every keyword the factory accepts (besides the common ones below)


COMMON_PARAMS = ("name", "threshold", "weight", "invert")
_REGISTRY: dict[str, ScorerSpec] = {}
_REGISTRY_LOCK = threading.Lock()


def _factory_params(factory: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword parameters of a factory. A class's ``__init__`` may take ``**kwargs`` if it
    forwards them to a base class whose ``__init__`` lists them: the parameters are read along
    the MRO, so subclasses add their own without copying the base's signature."""
    if isinstance(factory, type):
        fns = [vars(c)["__init__"] for c in factory.__mro__ if c is not object and "__init__" in vars(c)]
        skip = 1  # self
    else:
        fns, skip = [factory], 0
    names: list[str] = []
    for fn in fns:
        params = list(inspect.signature(fn).parameters.values())[skip:]
        names += [p.name for p in params
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return tuple(names)
    raise ValueError("scorer factories must list their parameters (**kwargs only when forwarded to a base "
                     "class whose __init__ lists them), so bad ones can be reported")


def register_scorer(
    type_name: str,
    factory: Callable[..., Scorer],
    *,
    category: str = "custom",
    description: str = "",
    replace_existing: bool = False,
) -> ScorerSpec:
    """Register an assertion type. ``factory(**params)`` builds the scorer (usually a
    :class:`Scorer` subclass); its keyword parameters are the type's parameters."""
    if not type_name or type_name.startswith("not-") or not all(c.isalnum() or c in "-_." for c in type_name):
        raise ValueError(f"bad scorer type name {type_name!r}: letters, digits, - _ . and no `not-` prefix")
    spec = ScorerSpec(type_name, factory, category, description or (inspect.getdoc(factory) or "").split("\n")[0],
                      _factory_params(factory))
    with _REGISTRY_LOCK:
        if type_name in _REGISTRY and not replace_existing:
            raise ValueError(f"scorer type {type_name!r} is already registered (pass replace_existing=True)")
        _REGISTRY[type_name] = spec
    return spec


_PLUGINS_LOADED = False


def _ensure_plugins() -> None:
    """Register the built-in and plugin types (the ``register_scorers`` hook) once, on first use."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    with _REGISTRY_LOCK:
        if _PLUGINS_LOADED:
            return
        _PLUGINS_LOADED = True
    from podium.plugins.manager import load_scorers

    try:
        # a type registered in code before first use keeps its registration
        load_scorers(lambda name, *a, replace_existing=False, **k:
                     None if name in _REGISTRY else register_scorer(name, *a, **k))
    except BaseException:
        _PLUGINS_LOADED = False
        raise


def scorer_types() -> list[str]:
    """The registered type names, sorted."""
    _ensure_plugins()
    return sorted(_REGISTRY)


def scorer_specs() -> list[ScorerSpec]:
    """The registered types with their factories and parameters, sorted by category then name."""
    _ensure_plugins()
    return sorted(_REGISTRY.values(), key=lambda s: (s.category, s.type))


def get_scorer(type_name: str, /, **params: Any) -> Scorer:
    """Build the scorer registered as ``type_name`` (``not-`` prefix: inverted) with ``params``.

    Raises :class:`UnknownScorer` (listing the known types) for an unknown type, and
    :class:`ScorerConfigError` (listing the accepted ones) for an unknown parameter.
    """
    if not isinstance(type_name, str) or not type_name:
        raise ScorerConfigError(f"scorer type must be a non-empty string, got {type_name!r}")
    base, invert = (type_name[4:], True) if type_name.startswith("not-") else (type_name, False)
    _ensure_plugins()
    spec = _REGISTRY.get(base)
    if spec is None:
        known = scorer_types()
        close = difflib.get_close_matches(base, known, n=1)
        raise UnknownScorer(type_name, known, suggestion=close[0] if close else None)
    if invert:
        if "invert" not in spec.params:
            raise ScorerConfigError(f"scorer type {base!r} cannot be inverted with `not-`")
        if params.get("invert"):
            raise ScorerConfigError(f"{type_name}: give either the `not-` prefix or invert=True, not both")
        params["invert"] = True
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise ScorerConfigError(
            f"scorer {type_name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(spec.params) or '(nothing)'}",
            details=[{"type": type_name, "unknown": unknown, "accepted": list(spec.params)}],
        )
    try:
        return spec.factory(**params)
    except (ScorerConfigError, MissingDependency, ConfigurationError):
        raise
    except TypeError as e:
        raise ScorerConfigError(f"scorer {type_name!r}: {e}") from e


def scorer_from_assertion(assertion: Mapping[str, Any]) -> Scorer:
    """Build a scorer from a promptfoo-like assertion mapping.

    Keys: ``type`` (required; ``not-`` prefix inverts), ``value``, ``threshold``, ``weight``,
    ``metric`` (the score's name), ``provider`` (the judge model alias, for judge types),
    ``config`` (a mapping of further parameters); any other key is passed as a parameter too
    (``min``, ``max``, ``flags`` ...). Templating ``value`` with test variables is the runner's job.
    """
    if not isinstance(assertion, Mapping):
        raise ScorerConfigError(f"an assertion must be a mapping with a `type`, got {type(assertion).__name__}")
    type_name = assertion.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise ScorerConfigError("an assertion needs a `type` (for example `contains`, `llm-rubric`)")
    params: dict[str, Any] = {}
    config = assertion.get("config")
    if config is not None:
        if not isinstance(config, Mapping):
            raise ScorerConfigError(f"{type_name}: `config` must be a mapping")
        params.update(config)
    for k, v in assertion.items():
        if k in ("type", "config"):
            continue
        if k == "metric":
            params["name"] = v
        elif k == "provider":
            params["model"] = v
        else:
            params[str(k).replace("-", "_")] = v
    return get_scorer(type_name, **params)


def require(module: str, *, scorer: str, package: str, requirement: str) -> Any:
    """Import an optional library for a scorer, or raise :class:`MissingDependency` with the pin."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(scorer, package, requirement) from e

