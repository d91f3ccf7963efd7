"""Model prices and the cost of a generation, in USD.

Pure standard library (``decimal``, ``json``, ``importlib.resources``): safe to import from
the light SDK install. The built-in table is ``podium/core/prices.json`` (package data); it
is read lazily, once, the first time :meth:`PriceTable.default` is called.

Matching a model name to a price (:meth:`PriceTable.lookup`), first hit wins:

1. a per-project override with exactly that name (case-insensitive);
2. a zero-cost provider (``local``, ``ollama``, ...): price 0;
3. an exact entry or alias, then the name normalized: a path prefix dropped
   (``openai/``, ``models/``, ``meta-llama/``), a cloud vendor prefix dropped
   (``anthropic.``, ``us.anthropic.``), then version suffixes dropped one at a time
   (``-2024-08-06``, ``-20241022``, ``-0613``, ``-001``, ``-latest``, ``@001``, ``-v1:0``);
   ``claude-3.5-sonnet`` is also tried as ``claude-3-5-sonnet``;
4. the longest known name that the model name starts with, followed by ``-``, ``_``, ``:``,
   ``@`` or ``/`` (``gpt-4o-mini-search-preview`` -> ``gpt-4o-mini``). A known name followed
   by a version number is not a match (``claude-opus-4-9`` is not ``claude-opus-4``: minor
   versions are priced differently); a size is (``gemma3-1b`` -> ``gemma3``).

Usage follows OpenTelemetry GenAI semantics: ``input_tokens`` counts every prompt token,
cached ones included; ``details`` may say how many were cache reads (``cached_tokens``,
``cache_read_input_tokens``) or cache writes (``cache_creation_tokens``,
``cache_creation_input_tokens``). Those are priced at the model's cache rates when it has
them (else at the input rate). When the cache counts exceed ``input_tokens`` they are taken
as reported *beside* it (Anthropic's own API convention) and added. Langfuse's keys
(``input_cached_tokens``, ``input_cache_read``, ``input_cache_creation[_5m|_1h]``) are always
beside ``input``, as in Langfuse.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

__all__ = ["ModelPrice", "PriceTable", "compute_cost"]

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


def _to_decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not a boolean")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite")
        d = Decimal(repr(value))  # 0.1 -> Decimal("0.1"), not the binary expansion
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what} is not a number: {value!r}")
    else:
        raise ValueError(f"{what} must be a number, got {type(value).__name__}")
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return d


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1M tokens. Numbers given as int/float/str are converted to ``Decimal``.

    ``cached_input_per_million``: cache reads (None: priced as input).
    ``cache_write_per_million``: cache creation, e.g. Anthropic (None: priced as input).
    ``tiers``: ``((above_input_tokens, ModelPrice), ...)``, the price that applies when the
    whole prompt is larger than the threshold (long-context pricing), highest threshold wins.
    ``model``: the table entry this price came from (set by lookups; not part of equality).
    ``context_window`` / ``max_output``: the model's context window and largest answer in
    tokens, where known (prices.json ``context`` and ``max_output``); the gateway uses them
    to bound what a budget reserves for a request without ``max_tokens``. Not part of equality.
    """

    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    cache_write_per_million: Decimal | None = None
    tiers: tuple[tuple[int, ModelPrice], ...] = ()
    model: str | None = field(default=None, compare=False)
    context_window: int | None = field(default=None, compare=False)
    max_output: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "input_per_million", _to_decimal(self.input_per_million, "input_per_million"))
        s(self, "output_per_million", _to_decimal(self.output_per_million, "output_per_million"))
        for name in ("cached_input_per_million", "cache_write_per_million"):
            v = getattr(self, name)
            if v is not None:
                s(self, name, _to_decimal(v, name))
        tiers = []
        for threshold, price in self.tiers:
            if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
                raise ValueError(f"tier threshold must be an int >= 0, got {threshold!r}")
            if not isinstance(price, ModelPrice):
                raise ValueError("tier price must be a ModelPrice")
            tiers.append((threshold, price))
        s(self, "tiers", tuple(sorted(tiers, key=lambda t: t[0])))
        for name in ("context_window", "max_output"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a whole number of tokens >= 1, got {v!r}")

    @classmethod
    def zero(cls, model: str | None = None) -> ModelPrice:
        return cls(_ZERO, _ZERO, _ZERO, _ZERO, model=model)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, model: str | None = None) -> ModelPrice:
        """Build from the prices.json shape (``input``, ``output``, ``cached_input``,
        ``cache_write``, ``tiers``) or the attribute names (``input_per_million``, ...)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a price must be an object, got {type(data).__name__}")

        def pick(*names: str) -> Any:
            for n in names:
                if data.get(n) is not None:
                    return data[n]
            return None

        inp = pick("input", "input_per_million")
        out = pick("output", "output_per_million")
        if inp is None:
            raise ValueError(f"price for {model or 'model'} has no input price")
        tiers = []
        for t in data.get("tiers") or ():
            if not isinstance(t, Mapping) or "above_input_tokens" not in t:
                raise ValueError(f"each tier of {model or 'model'} needs above_input_tokens")
            tiers.append((t["above_input_tokens"], cls.from_dict(t, model=model)))
        return cls(
            input_per_million=inp,
            output_per_million=out if out is not None else _ZERO,
            cached_input_per_million=pick("cached_input", "cached_input_per_million"),
            cache_write_per_million=pick("cache_write", "cache_write_per_million"),
            tiers=tuple(tiers),
            model=model,
            context_window=pick("context", "context_window"),
            max_output=pick("max_output"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The prices.json shape, numbers as strings (exact)."""
        out: dict[str, Any] = {"input": str(self.input_per_million), "output": str(self.output_per_million)}
        if self.cached_input_per_million is not None:
            out["cached_input"] = str(self.cached_input_per_million)
        if self.cache_write_per_million is not None:
            out["cache_write"] = str(self.cache_write_per_million)
        if self.tiers:
            out["tiers"] = [{"above_input_tokens": n, **p.to_dict()} for n, p in self.tiers]
        if self.context_window is not None:
            out["context"] = self.context_window
        if self.max_output is not None:
            out["max_output"] = self.max_output
        return out

    def output_bound(self, prompt_tokens: int, cap: int) -> int:
        """The most output tokens a request of ``prompt_tokens`` can get when it sets no
        ``max_tokens``: ``cap``, lowered to the model's ``max_output`` and to its context
        window minus the prompt where those are known (at least 1)."""
        n = cap
        if self.max_output is not None:
            n = min(n, self.max_output)
        if self.context_window is not None:
            n = min(n, self.context_window - prompt_tokens)
        return max(1, n)

    def max_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for this many tokens with no cache discount: an upper bound of what they can
        cost (cache reads are never dearer than input; cache writes are priced as input here)."""
        p = self.for_prompt(input_tokens)
        rate_in = max(p.input_per_million, p.cache_write_per_million or _ZERO)
        return float((input_tokens * rate_in + output_tokens * p.output_per_million) / _MILLION)

    def for_prompt(self, prompt_tokens: int) -> ModelPrice:
        """The price that applies to a prompt of this many tokens (long-context tiers)."""
        chosen = self
        for threshold, price in self.tiers:
            if prompt_tokens > threshold:
                chosen = price
        return chosen


# --- name normalization ------------------------------------------------------------------

_SEPARATORS = "-_:@/"
_VENDOR_DOT = re.compile(
    r"^(?:(?:us|eu|apac|global|us-gov|jp|au)\.)?"
    r"(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai|qwen|google)\."
)
_SUFFIXES = (
    re.compile(r"@[^@]*$"),  # vertex: claude-3-5-sonnet@20240620, gemini-1.5-pro@001
    re.compile(r":\d+$"),  # bedrock: ...-v1:0
    re.compile(r"-v\d+$"),  # bedrock / vertex: -v1, -v2
    re.compile(r"-latest$"),
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # openai: -2024-08-06
    re.compile(r"-\d{8}$"),  # anthropic: -20241022
    re.compile(r"-\d{4}$"),  # openai -0613, mistral -2411
    re.compile(r"-\d{3}$"),  # google -001
)
_SIZE = re.compile(r"\d+(?:\.\d+)?[bmk](?:$|[-_:@/.])")  # 135m, 1.7b, 32k
_DOTTED_VERSION = re.compile(r"(\d)\.(\d)")


def _strip_suffixes(name: str) -> Iterator[str]:
    while True:
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name = stripped
                yield name
                break
        else:
            return


def _candidates(name: str) -> list[str]:
    """``name`` (lower-cased) and its normalized forms, least to most normalized."""
    out = [name]
    base = name.rsplit("/", 1)[-1]
    base = _VENDOR_DOT.sub("", base) or base
    bases = [base]
    if base.startswith("claude") and _DOTTED_VERSION.search(base):
        bases.append(_DOTTED_VERSION.sub(r"\1-\2", base))
    for b in bases:
        out.append(b)
        out.extend(_strip_suffixes(b))
    return list(dict.fromkeys(out))


def _prefix_ok(rest: str) -> bool:
    """May a known name be followed by ``rest`` and still be the same priced model?"""
    if not rest:
        return True
    if rest[0] not in _SEPARATORS:
        return False
    if rest[0] in "-_" and len(rest) > 1 and rest[1].isdigit():
        return bool(_SIZE.match(rest[1:]))  # a size (-1b), not a version (-9, -3.1)
    return True


class PriceTable:
    """Model prices, looked up by the name a span reports.

    Build one with :meth:`default` (the bundled prices.json), :meth:`from_dict` or the
    constructor; :meth:`with_overrides` layers per-project prices on top. Tables are
    immutable; lookups are memoized per table.
    """

    __slots__ = ("_base", "_cache", "_overrides", "_prices", "_zero_providers", "updated")

    _default: PriceTable | None = None
    _default_lock = threading.Lock()
    _CACHE_MAX = 4096

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        *,
        updated: str | None = None,
        zero_cost_providers: Iterable[str] = ("local",),
        overrides: Mapping[str, ModelPrice | Mapping[str, Any]] | None = None,
    ) -> None:
        self._base: dict[str, ModelPrice] = {}
        for name, price in prices.items():
            key = name.strip().lower()
            self._base[key] = price if price.model else replace(price, model=key)
        self._overrides: dict[str, ModelPrice] = {}
        for name, given in (overrides or {}).items():
            key = name.strip().lower()
            if not key:
                raise ValueError("an override needs a model name")
            typed = given if isinstance(given, ModelPrice) else ModelPrice.from_dict(given, model=key)
            self._overrides[key] = replace(typed, model=key)
        self._prices: dict[str, ModelPrice] = {**self._base, **self._overrides}
        self._zero_providers = frozenset(p.strip().lower() for p in zero_cost_providers)
        self.updated = updated
        self._cache: dict[tuple[str, str | None], ModelPrice | None] = {}

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def default(cls) -> PriceTable:
        """The bundled table (``podium/core/prices.json``), loaded on first use and cached."""
        table = cls._default
        if table is None:
            with cls._default_lock:
                if cls._default is None:
                    text = resources.files("podium.core").joinpath("prices.json").read_text(encoding="utf-8")
                    cls._default = cls.from_json(text)
                table = cls._default
        return table

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        return cls.from_dict(json.loads(text, parse_float=Decimal))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build from the prices.json shape: ``{"updated", "zero_cost_providers",
        "providers": {name: {"source", "models": {model: {input, output, ...}}}}}``."""
        prices: dict[str, ModelPrice] = {}
        origin: dict[str, str] = {}
        providers = data.get("providers")
        if not isinstance(providers, Mapping):
            raise ValueError("a price table needs a 'providers' object")
        for provider, block in providers.items():
            models = block.get("models") if isinstance(block, Mapping) else None
            if not isinstance(models, Mapping):
                raise ValueError(f"provider {provider!r} needs a 'models' object")
            for model, entry in models.items():
                price = ModelPrice.from_dict(entry, model=model.lower())
                aliases = entry.get("aliases") or []
                for name in (model, *aliases):
                    key = name.strip().lower()
                    if key in prices:
                        raise ValueError(f"{key!r} is listed twice ({origin[key]} and {provider})")
                    prices[key] = price
                    origin[key] = provider
        return cls(
            prices,
            updated=data.get("updated"),
            zero_cost_providers=data.get("zero_cost_providers") or ("local",),
        )

    def with_overrides(self, overrides: Mapping[str, ModelPrice | Mapping[str, Any]]) -> PriceTable:
        """A new table where these prices (exact model names, case-insensitive) win.

        An override is found first for its exact name, even for a zero-cost provider; it
        also takes part in normalized and prefix matching like any other entry (so an
        override of ``gpt-4o`` prices ``gpt-4o-2024-08-06`` too, unless the built-in table
        lists that dated name itself). Values may be ``ModelPrice`` or prices.json-shaped dicts.
        """
        merged: dict[str, Any] = dict(self._overrides)
        merged.update({k.strip().lower(): v for k, v in overrides.items()})
        return PriceTable(
            self._base, updated=self.updated, zero_cost_providers=self._zero_providers, overrides=merged
        )

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and model.strip().lower() in self._prices

    def models(self) -> list[str]:
        """Every exact name (entries and aliases) the table knows."""
        return sorted(self._prices)

    def lookup(self, model: str | None, provider: str | None = None) -> ModelPrice | None:
        """The price for ``model`` (see the module docstring for the rules), or None.

        The returned price's ``model`` says which entry matched.
        """
        name = (model or "").strip().lower()
        prov = (provider or "").strip().lower() or None
        key = (name, prov)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._lookup(name, prov)
        if len(self._cache) >= self._CACHE_MAX:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _lookup(self, name: str, prov: str | None) -> ModelPrice | None:
        if name:
            for key in (name, f"{prov}/{name}" if prov else None):
                if key and key in self._overrides:
                    return self._overrides[key]
        if prov in self._zero_providers:
            return ModelPrice.zero(model=name or None)
        if not name:
            return None
        candidates = _candidates(name)
        for c in candidates:
            if prov and f"{prov}/{c}" in self._prices:
                return self._prices[f"{prov}/{c}"]
            if c in self._prices:
                return self._prices[c]
        best: str | None = None
        for c in candidates:
            for i, ch in enumerate(c):
                known = ch in _SEPARATORS and c[:i] in self._prices and _prefix_ok(c[i:])
                if known and (best is None or i > len(best)):
                    best = c[:i]
        return self._prices[best] if best is not None else None


# --- cost --------------------------------------------------------------------------------

_INPUT_KEYS = ("input_tokens", "prompt_tokens", "input")
_OUTPUT_KEYS = ("output_tokens", "completion_tokens", "output")
# part of input_tokens (OpenAI, OpenTelemetry GenAI, OpenInference; Podium's own names)
_CACHE_READ_KEYS = ("cached_tokens", "cache_read_input_tokens", "cache_read_tokens")
_CACHE_WRITE_KEYS = ("cache_creation_tokens", "cache_creation_input_tokens", "cache_write_tokens")
# Langfuse usage_details: every key is its own bucket, never part of "input"
_LF_READ_KEYS = ("input_cached_tokens", "input_cache_read")
_LF_WRITE_KEYS = ("input_cache_creation", "input_cache_creation_5m", "input_cache_creation_1h")


def _as_mapping(usage: Any) -> Mapping[str, Any] | None:
    if usage is None or isinstance(usage, Mapping):
        return usage
    dump = getattr(usage, "model_dump", None)  # a pydantic UsageIn, without importing it
    if callable(dump):
        dumped: Mapping[str, Any] = dump()
        return dumped
    return None


def _count(source: Mapping[str, Any] | None, keys: tuple[str, ...]) -> int | None:
    if not source:
        return None
    for k in keys:
        v = source.get(k)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            return max(v, 0)
        if isinstance(v, float) and math.isfinite(v):
            return max(int(v), 0)
    return None


def compute_cost(
    model: str | None,
    usage: Mapping[str, Any] | Any | None,
    *,
    provider: str | None = None,
    table: PriceTable | None = None,
) -> dict[str, float] | None:
    """``{"input", "output", "total"}`` in USD for ``usage`` on ``model``, or None.

    ``usage`` is a UsageIn-shaped dict (``input_tokens``, ``output_tokens``, ``details``;
    OpenAI's ``prompt_tokens``/``completion_tokens`` are accepted too) or a UsageIn. None is
    returned when usage is missing or has neither input nor output tokens, or when the model
    has no price. Arithmetic is Decimal; the result is floats. ``table`` defaults to
    :meth:`PriceTable.default`.
    """
    data = _as_mapping(usage)
    if not data:
        return None
    n_in = _count(data, _INPUT_KEYS)
    n_out = _count(data, _OUTPUT_KEYS)
    if n_in is None and n_out is None:
        return None
    price = (table or PriceTable.default()).lookup(model, provider)
    if price is None:
        return None
    details = data.get("details")
    details = details if isinstance(details, Mapping) else None
    cache_read = _count(details, _CACHE_READ_KEYS) or _count(data, _CACHE_READ_KEYS) or 0
    cache_write = _count(details, _CACHE_WRITE_KEYS) or _count(data, _CACHE_WRITE_KEYS) or 0
    n_in = n_in or 0
    n_out = n_out or 0
    # cache counts larger than input_tokens were reported beside it (Anthropic's own API)
    uncached = n_in if cache_read + cache_write > n_in else n_in - cache_read - cache_write
    cache_read += _count(details, _LF_READ_KEYS) or 0
    lf_write = _count(details, _LF_WRITE_KEYS[:1])  # the total, else its 5m + 1h parts
    cache_write += (
        lf_write if lf_write is not None else sum(_count(details, (k,)) or 0 for k in _LF_WRITE_KEYS[1:])
    )
    p = price.for_prompt(uncached + cache_read + cache_write)
    read_rate = p.cached_input_per_million if p.cached_input_per_million is not None else p.input_per_million
    write_rate = p.cache_write_per_million if p.cache_write_per_million is not None else p.input_per_million
    cost_in = (uncached * p.input_per_million + cache_read * read_rate + cache_write * write_rate) / _MILLION
    cost_out = n_out * p.output_per_million / _MILLION
    return {"input": float(cost_in), "output": float(cost_out), "total": float(cost_in + cost_out)}
