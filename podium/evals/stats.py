"""Statistics behind evaluation results: bootstrap confidence intervals, paired comparisons of
two runs, a "no significant regression" decision, per-item diffs, and judge/human agreement.

Everything is plain numpy and seedable: ``seed`` is an int, a ``numpy.random.Generator`` or
``None`` (fresh entropy). With the same seed and data the results are identical.

Bootstrap (percentile method): draw ``n_resamples`` samples of size ``n`` with replacement,
take each sample's mean, and report the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
percentiles of those means (numpy's default linear interpolation). Resample indices are drawn
as ``rng.integers(0, n, size=(rows, n))`` in blocks of ``rows = max(1, 4_000_000 // n)`` to bound
memory; one block when ``n_resamples * n`` is at most 4 million. Percentile intervals are
known to be a little narrow for small ``n`` (under ~30 items); they are what most evaluation
tools report and are easy to explain.

Paired comparison: when two runs scored the same items, resample the per-item differences
``candidate - baseline`` (one index draw moves both runs), which removes the between-item
variance that an unpaired comparison would leave in.

Regression decision (:func:`check_regression`): the candidate regressed when the whole
confidence interval of ``candidate - baseline`` lies below ``-tolerance`` (below 0 when
``tolerance`` is 0), i.e. even the most favourable plausible difference is a loss; for a
lower-is-better metric (latency, cost, perplexity) the sign flips.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "Agreement",
    "DiffCI",
    "ItemDiffs",
    "MeanCI",
    "RegressionVerdict",
    "accuracy",
    "bootstrap_mean_ci",
    "check_regression",
    "classify_item_diffs",
    "cohen_kappa",
    "judge_agreement",
    "paired_bootstrap_diff",
    "rankdata",
    "spearman",
]

Seed = int | np.random.Generator | None
NanPolicy = Literal["raise", "omit"]
_BLOCK_CELLS = 4_000_000


# --- helpers ---------------------------------------------------------------------------------


def _value(v: Any) -> Any:
    """A Score's value, or the value itself."""
    return v.value if hasattr(v, "value") and hasattr(v, "passed") else v


def _floats(values: Iterable[Any], what: str) -> np.ndarray:
    out = []
    for v in values:
        v = _value(v)
        if v is None:
            out.append(np.nan)
        elif isinstance(v, bool | np.bool_):
            out.append(1.0 if v else 0.0)
        elif isinstance(v, int | float | np.integer | np.floating):
            out.append(float(v))
        else:
            try:
                out.append(float(v))  # Decimal, numeric strings
            except (TypeError, ValueError):
                raise ValueError(f"{what}: {v!r} is not a number") from None
    return np.asarray(out, dtype=np.float64)


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _bootstrap_means(x: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    rows = max(1, _BLOCK_CELLS // n)
    means = np.empty(n_resamples, dtype=np.float64)
    for lo in range(0, n_resamples, rows):
        k = min(rows, n_resamples - lo)
        idx = rng.integers(0, n, size=(k, n))
        means[lo:lo + k] = x[idx].mean(axis=1)
    return means


def _interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    lo, hi = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


# --- bootstrap CIs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanCI:
    """A mean and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n,
                "confidence": self.confidence, "n_resamples": self.n_resamples}


def _clean(x: np.ndarray, nan_policy: NanPolicy, what: str) -> np.ndarray:
    bad = np.isnan(x)
    if bad.any():
        if nan_policy == "raise":
            raise ValueError(f"{what}: {int(bad.sum())} missing/NaN value(s); drop them or pass nan_policy='omit'")
        if nan_policy != "omit":
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
        x = x[~bad]
    if len(x) == 0:
        raise ValueError(f"{what}: no values")
    return x


def bootstrap_mean_ci(
    values: Iterable[Any],
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: Seed = None,
    nan_policy: NanPolicy = "raise",
) -> MeanCI:
    """Mean of ``values`` (numbers, bools as 0/1, or Scores) with a percentile-bootstrap CI."""
    _check(confidence, n_resamples)
    x = _clean(_floats(values, "values"), nan_policy, "values")
    means = _bootstrap_means(x, n_resamples, _rng(seed))
    lo, hi = _interval(means, confidence)
    return MeanCI(float(x.mean()), lo, hi, len(x), confidence, n_resamples)


@dataclass(frozen=True)
class DiffCI:
    """``candidate - baseline`` over paired items: mean difference and its bootstrap CI.

    ``prob_below_zero`` is the share of bootstrap means below 0 (a one-sided bootstrap
    p-value for "the candidate is worse", for a higher-is-better metric).
    """

    diff: float
    low: float
    high: float
    candidate_mean: float
    baseline_mean: float
    n: int
    confidence: float
    n_resamples: int
    prob_below_zero: float

    def to_dict(self) -> dict[str, Any]:
        return {"diff": self.diff, "low": self.low, "high": self.high, "candidate_mean": self.candidate_mean,
                "baseline_mean": self.baseline_mean, "n": self.n, "confidence": self.confidence,
                "n_resamples": self.n_resamples, "prob_below_zero": self.prob_below_zero}


def _pairs(candidate: Any, baseline: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(candidate, Mapping) != isinstance(baseline, Mapping):
        raise ValueError("give both runs as sequences aligned by item, or both as mappings item id -> score")
    if isinstance(candidate, Mapping):
        keys = [k for k in candidate if k in baseline]
        return (_floats([candidate[k] for k in keys], "candidate"), _floats([baseline[k] for k in keys], "baseline"))
    c, b = _floats(candidate, "candidate"), _floats(baseline, "baseline")
    if len(c) != len(b):
        raise ValueError(f"paired runs need the same items: candidate has {len(c)} scores, baseline {len(b)}")
    return c, b


def paired_bootstrap_diff(
    candidate: Sequence[Any] | Mapping[Any, Any],
    baseline: Sequence[Any] | Mapping[Any, Any],
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: Seed = None,
    nan_policy: NanPolicy = "raise",
) -> DiffCI:
    """Paired bootstrap CI of ``mean(candidate - baseline)``.

    Runs are sequences aligned by item, or mappings ``item id -> score`` (only ids in both
    count). With ``nan_policy="omit"``, pairs where either side is missing/NaN are dropped.
    """
    _check(confidence, n_resamples)
    c, b = _pairs(candidate, baseline)
    bad = np.isnan(c) | np.isnan(b)
    if bad.any():
        if nan_policy == "raise":
            raise ValueError(f"{int(bad.sum())} pair(s) have a missing/NaN score; pass nan_policy='omit' to drop them")
        if nan_policy != "omit":
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
        c, b = c[~bad], b[~bad]
    if len(c) == 0:
        raise ValueError("no paired scores to compare")
    d = c - b
    means = _bootstrap_means(d, n_resamples, _rng(seed))
    lo, hi = _interval(means, confidence)
    return DiffCI(float(d.mean()), lo, hi, float(c.mean()), float(b.mean()), len(d), confidence, n_resamples,
                  float((means < 0).mean()))


@dataclass(frozen=True)
class RegressionVerdict:
    """Did the candidate regress against the baseline, significantly?"""

    regressed: bool
    improved: bool  # significantly better: the whole CI beyond +tolerance
    diff: DiffCI
    tolerance: float
    higher_is_better: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"regressed": self.regressed, "improved": self.improved, "tolerance": self.tolerance,
                "higher_is_better": self.higher_is_better, "reason": self.reason, "diff": self.diff.to_dict()}


def check_regression(
    candidate: Sequence[Any] | Mapping[Any, Any],
    baseline: Sequence[Any] | Mapping[Any, Any],
    *,
    tolerance: float = 0.0,
    higher_is_better: bool = True,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: Seed = None,
    nan_policy: NanPolicy = "raise",
) -> RegressionVerdict:
    """The "no statistically significant regression" gate.

    Regressed when the CI of ``candidate - baseline`` lies entirely below ``-tolerance`` (for a
    lower-is-better metric: entirely above ``+tolerance``). ``tolerance`` (>= 0, in the
    metric's units) is the loss you accept; 0 means any significant loss fails.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    d = paired_bootstrap_diff(candidate, baseline, confidence=confidence, n_resamples=n_resamples, seed=seed,
                              nan_policy=nan_policy)
    if higher_is_better:
        regressed, improved = d.high < -tolerance, d.low > tolerance
    else:
        regressed, improved = d.low > tolerance, d.high < -tolerance
    pct = f"{confidence:.0%}"
    ci = f"candidate - baseline = {d.diff:+.4g} ({pct} CI {d.low:+.4g} to {d.high:+.4g}, n={d.n})"
    bound = "0" if tolerance == 0 else (f"{-tolerance:+.4g}" if higher_is_better else f"{tolerance:+.4g}")
    side = "below" if higher_is_better else "above"
    if regressed:
        reason = f"{ci}: the whole interval is {side} {bound}, a significant regression"
    elif improved:
        reason = f"{ci}: a significant improvement"
    else:
        reason = f"{ci}: not entirely {side} {bound}, no significant regression"
    return RegressionVerdict(bool(regressed), bool(improved), d, float(tolerance), higher_is_better, reason)


# --- per-item diffs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemDiffs:
    """Items classified by their score change. Keys are item ids (mappings) or indices (sequences).

    ``missing`` holds items where either run has no score (an error, or the item is in one run
    only).
    """

    improved: list[Hashable] = field(default_factory=list)
    regressed: list[Hashable] = field(default_factory=list)
    unchanged: list[Hashable] = field(default_factory=list)
    missing: list[Hashable] = field(default_factory=list)
    deltas: dict[Hashable, float] = field(default_factory=dict)

    def label(self, key: Hashable) -> str:
        for name in ("improved", "regressed", "unchanged", "missing"):
            if key in getattr(self, name):
                return name
        raise KeyError(key)

    @property
    def counts(self) -> dict[str, int]:
        return {"improved": len(self.improved), "regressed": len(self.regressed),
                "unchanged": len(self.unchanged), "missing": len(self.missing)}


def classify_item_diffs(
    candidate: Sequence[Any] | Mapping[Any, Any],
    baseline: Sequence[Any] | Mapping[Any, Any],
    *,
    threshold: float = 0.0,
    higher_is_better: bool = True,
) -> ItemDiffs:
    """Per item: improved if the score moved the good way by more than ``threshold``, regressed if
    it moved the bad way by more than ``threshold``, else unchanged (bools count as 1/0)."""
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    if isinstance(candidate, Mapping) != isinstance(baseline, Mapping):
        raise ValueError("give both runs as sequences aligned by item, or both as mappings item id -> score")
    if isinstance(candidate, Mapping) and isinstance(baseline, Mapping):  # both or neither (checked above)
        keys: list[Hashable] = list(dict.fromkeys([*candidate, *baseline]))
        c = _floats([candidate.get(k) for k in keys], "candidate")
        b = _floats([baseline.get(k) for k in keys], "baseline")
    else:
        c, b = _floats(candidate, "candidate"), _floats(baseline, "baseline")
        if len(c) != len(b):
            raise ValueError(f"runs need the same items: candidate has {len(c)} scores, baseline {len(b)}")
        keys = list(range(len(c)))
    out = ItemDiffs()
    sign = 1.0 if higher_is_better else -1.0
    for k, cv, bv in zip(keys, c.tolist(), b.tolist(), strict=True):
        if cv != cv or bv != bv:  # NaN
            out.missing.append(k)
            continue
        delta = cv - bv
        out.deltas[k] = delta
        gain = sign * delta
        if gain > threshold:
            out.improved.append(k)
        elif gain < -threshold:
            out.regressed.append(k)
        else:
            out.unchanged.append(k)
    return out


# --- agreement -------------------------------------------------------------------------------


def _aligned(a: Sequence[Any], b: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    a, b = [_value(x) for x in a], [_value(x) for x in b]
    if len(a) != len(b):
        raise ValueError(f"the two raters scored different numbers of items ({len(a)} and {len(b)})")
    if not a:
        raise ValueError("no items to compare")
    return a, b


def accuracy(a: Sequence[Any], b: Sequence[Any], *, tolerance: float = 0.0) -> float:
    """Share of items where the two raters agree (numbers: within ``tolerance``)."""
    a, b = _aligned(a, b)
    hits = 0
    for x, y in zip(a, b, strict=True):
        if tolerance and _is_number(x) and _is_number(y):
            hits += abs(float(x) - float(y)) <= tolerance
        else:
            hits += x == y
    return hits / len(a)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def cohen_kappa(
    a: Sequence[Any],
    b: Sequence[Any],
    *,
    weights: Literal["linear", "quadratic"] | None = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa between two raters' categorical labels: (p_o - p_e) / (1 - p_e).

    ``weights="linear"|"quadratic"`` gives weighted kappa for ordinal labels; disagreement
    weights use the labels' positions in ``labels`` (default: the sorted labels seen), as
    scikit-learn does. NaN when chance agreement is 1 (both raters used one same label only).
    """
    a, b = _aligned(a, b)
    if labels is None:
        seen = list(dict.fromkeys([*a, *b]))
        try:
            cats = sorted(seen)
        except TypeError:
            cats = seen
    else:
        cats = list(labels)
        extra = {x for x in (*a, *b) if x not in cats}
        if extra:
            raise ValueError(f"labels {sorted(map(repr, extra))} are not in `labels`")
    index = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    obs = np.zeros((k, k), dtype=np.float64)
    for x, y in zip(a, b, strict=True):
        obs[index[x], index[y]] += 1
    n = obs.sum()
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / n
    if weights is None:
        w = 1.0 - np.eye(k)
    elif weights in ("linear", "quadratic"):
        pos = np.arange(k, dtype=np.float64)
        dist = np.abs(pos[:, None] - pos[None, :])
        w = dist if weights == "linear" else dist**2
    else:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    denom = float((w * expected).sum())
    if denom == 0.0:
        return float("nan")
    return 1.0 - float((w * obs).sum()) / denom


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank (scipy.stats.rankdata's default)."""
    arr = np.asarray(x, dtype=np.float64)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(len(arr), dtype=np.float64)
    sorted_vals = arr[order]
    i = 0
    n = len(arr)
    while i < n:
        j = i
        while j + 1 < n and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN if either side is constant."""
    a, b = _aligned(a, b)
    x, y = rankdata(_floats(a, "a")), rankdata(_floats(b, "b"))
    if len(x) < 2:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    if den == 0.0:
        return float("nan")
    return float((x * y).sum() / den)


@dataclass(frozen=True)
class Agreement:
    """How well a judge agrees with human labels on the same items."""

    n: int
    kind: str  # categorical | numeric
    accuracy: float
    kappa: float | None  # categorical: Cohen's kappa
    spearman: float | None  # numeric: Spearman's rho
    dropped: int = 0  # items without both a judge score and a human label

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "kind": self.kind, "accuracy": self.accuracy, "kappa": self.kappa,
                "spearman": self.spearman, "dropped": self.dropped}


def judge_agreement(
    judge: Sequence[Any],
    human: Sequence[Any],
    *,
    kind: Literal["auto", "categorical", "numeric"] = "auto",
    tolerance: float = 0.0,
) -> Agreement:
    """Agreement of judge scores with human labels, item by item (same order).

    ``categorical`` (bools, strings: pass/fail, labels): accuracy and Cohen's kappa.
    ``numeric`` (ratings): Spearman's rho, and accuracy (equal within ``tolerance``). ``auto``
    picks categorical when every value is a bool or a string. Items where either side is
    missing (None/NaN: a judge error, an unlabelled item) are dropped and counted. Compare on
    one scale: judge scores are normalised to 0..1, their raw scale is in
    ``Score.metadata["raw_score"]`` (Spearman is unaffected, accuracy is not).
    """
    j, h = _aligned(judge, human)
    keep = [i for i in range(len(j)) if not _missing(j[i]) and not _missing(h[i])]
    dropped = len(j) - len(keep)
    j, h = [j[i] for i in keep], [h[i] for i in keep]
    if not j:
        raise ValueError("no item has both a judge score and a human label")
    if kind == "auto":
        kind = "categorical" if all(isinstance(v, bool | str) for v in (*j, *h)) else "numeric"
    if kind == "categorical":
        return Agreement(len(j), kind, accuracy(j, h), cohen_kappa(j, h), None, dropped)
    if kind == "numeric":
        return Agreement(len(j), kind, accuracy(j, h, tolerance=tolerance), None, spearman(j, h), dropped)
    raise ValueError(f"kind must be auto, categorical or numeric, got {kind!r}")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)
