"""Aggregates of an experiment and comparisons between experiments, with bootstrap CIs.

Both work on item results as plain mappings (the shape the store returns and the runner
produces)::

    {"item_id", "repetition", "scores": {name: {"value", "passed", "explanation", "error", ...}},
     "passed", "weighted_score", "error", "error_type", "latency_ms", "cost", "usage", "labels"}

The statistical unit is the dataset item: with repetitions, an item's value is the mean over
its repetitions (errors left out), and the spread across repetitions is reported separately
(``rep_std``: mean within-item standard deviation; ``flip_rate``: share of items whose pass
flag differs between repetitions). Intervals are percentile-bootstrap 95% CIs over items
(:mod:`podium.evals.stats`), seeded, so the same data always gives the same numbers.

Pseudo-metrics next to the scorers: ``pass_rate`` (share of items whose checks all passed),
``score`` (the weighted score: weight-averaged per-check results, promptfoo's), ``error_rate``,
``latency_p50``/``latency_p95`` (ms) and ``cost`` (USD, total).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from podium.evals import stats

__all__ = [
    "PSEUDO_METRICS",
    "compare_runs",
    "metric_values",
    "per_item",
    "summarize",
]

#: Metrics every experiment has besides its scorers.
PSEUDO_METRICS = ("pass_rate", "score", "error_rate", "latency_p50", "latency_p95", "cost")
#: Task errors (the item has no output); other error types come from scorers.
TASK_ERRORS = frozenset({"task_error", "timeout", "rate_limited", "upstream_error", "cancelled"})
SUMMARY_RESAMPLES = 2000
DECISION_RESAMPLES = 10_000


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs))


def per_item(items: Iterable[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """``item_id -> value`` of one scorer (or ``pass_rate``/``score``), averaged over repetitions."""
    acc: dict[str, list[float]] = defaultdict(list)
    for it in items:
        v = _item_metric(it, metric)
        if v is not None:
            acc[str(it["item_id"])].append(v)
    return {k: _mean(v) for k, v in acc.items()}


def _item_metric(it: Mapping[str, Any], metric: str) -> float | None:
    if metric == "pass_rate":
        return _num(it.get("passed"))
    if metric == "score":
        return _num(it.get("weighted_score"))
    if metric == "error_rate":
        return 1.0 if it.get("error_type") in TASK_ERRORS else 0.0
    s = (it.get("scores") or {}).get(metric)
    if not isinstance(s, Mapping) or s.get("error"):
        return None
    return _num(s.get("value"))


def metric_values(items: Iterable[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """Alias of :func:`per_item` (kept for readability at call sites)."""
    return per_item(items, metric)


def _ci(values: Sequence[float], *, confidence: float, n_resamples: int, seed: int) -> dict[str, Any]:
    if not values:
        return {"mean": None, "low": None, "high": None, "n": 0}
    if len(values) == 1:
        return {"mean": values[0], "low": values[0], "high": values[0], "n": 1}
    ci = stats.bootstrap_mean_ci(values, confidence=confidence, n_resamples=n_resamples, seed=seed)
    return {"mean": ci.mean, "low": ci.low, "high": ci.high, "n": ci.n}


def _rep_spread(items: Sequence[Mapping[str, Any]], metric: str) -> dict[str, Any]:
    groups: dict[str, list[float]] = defaultdict(list)
    for it in items:
        v = _item_metric(it, metric)
        if v is not None:
            groups[str(it["item_id"])].append(v)
    multi = [v for v in groups.values() if len(v) > 1]
    if not multi:
        return {}
    stds = [float(np.std(v, ddof=1)) for v in multi]
    flips = [len(set(v)) > 1 for v in multi]
    return {"rep_std": _mean(stds), "flip_rate": _mean([1.0 if f else 0.0 for f in flips]), "rep_items": len(multi)}


def _agreement(groups: Mapping[str, Sequence[Mapping[str, Any]]], name: str) -> dict[str, Any] | None:
    """Judge vs human labels (``labels[name]`` on the items) for one scorer, item by item."""
    judge: list[Any] = []
    human: list[Any] = []
    pairs: list[tuple[Any, list[Mapping[str, Any]]]] = []
    for reps in groups.values():
        labels = reps[0].get("labels") or {}
        if name not in labels or labels[name] is None:
            continue
        vals = [x["scores"][name] for x in reps
                if isinstance((x.get("scores") or {}).get(name), Mapping) and not x["scores"][name].get("error")]
        pairs.append((labels[name], vals))
    # Human ratings on a wider scale than 0..1 (a 1-5 rubric) are compared with the judge's raw scores.
    numeric = [h for h, _ in pairs if _num(h) is not None and not isinstance(h, bool)]
    use_raw = bool(numeric) and max(float(h) for h in numeric) > 1 and all(
        isinstance((v.get("metadata") or {}).get("raw_score"), int | float) for _, vals in pairs for v in vals)
    for h, vals in pairs:
        human.append(h)
        if not vals:
            judge.append(None)
        elif isinstance(h, bool):
            flags = [f for f in (v.get("passed") for v in vals) if f is not None]
            judge.append(sum(flags) / len(flags) >= 0.5 if flags else None)
        elif isinstance(h, str):
            judge.append(str(vals[0].get("value")))
        else:
            nums = [float(v["metadata"]["raw_score"]) for v in vals] if use_raw else [
                x for x in (_num(v.get("value")) for v in vals) if x is not None]
            judge.append(_mean(nums) if nums else None)
    if not human:
        return None
    try:
        a = stats.judge_agreement(judge, human)
    except ValueError as e:
        return {"n": 0, "error": str(e)}
    out = a.to_dict()
    for k in ("kappa", "spearman", "accuracy"):
        v = out.get(k)
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
    return out


def summarize(
    items: Sequence[Mapping[str, Any]],
    scorers: Sequence[Mapping[str, Any]] = (),
    *,
    confidence: float = 0.95,
    n_resamples: int = SUMMARY_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Aggregates of one experiment: per scorer mean with a bootstrap CI, pass rates, errors,
    spread over repetitions, judge/human agreement, latency, cost and tokens.

    ``scorers`` is the experiment's scorer list (``{"name", "type", "direction", "weight", ...}``);
    scorers found only in items (per-test assertions) are summarised too.
    """
    meta: dict[str, dict[str, Any]] = {}
    for s in scorers:
        meta[str(s["name"])] = dict(s)
    for it in items:
        for name, s in (it.get("scores") or {}).items():
            if name not in meta:
                m = {"name": name}
                if isinstance(s, Mapping):
                    for k in ("type", "direction", "weight"):
                        if s.get(k) is not None:
                            m[k] = s[k]
                meta[name] = m
    kw: dict[str, Any] = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    ids = list(dict.fromkeys(str(it["item_id"]) for it in items))
    task_errors = [it for it in items if it.get("error_type") in TASK_ERRORS]
    scorer_errors = [it for it in items if it.get("error") and it.get("error_type") not in TASK_ERRORS]
    out: dict[str, Any] = {
        "items": len(ids),
        "runs": len(items),
        "repetitions": max((int(it.get("repetition") or 0) for it in items), default=-1) + 1,
        "errors": len(task_errors),
        "scorer_errors": len(scorer_errors),
        "error_rate": len(task_errors) / len(items) if items else 0.0,
        "confidence": confidence,
    }
    pr = list(per_item(items, "pass_rate").values())
    out["pass_rate"] = {**_ci(pr, **kw), "passed": sum(1 for v in pr if v == 1.0), **_rep_spread(items, "pass_rate")}
    out["score"] = {**_ci(list(per_item(items, "score").values()), **kw), **_rep_spread(items, "score")}
    lat = [float(it["latency_ms"]) for it in items if _num(it.get("latency_ms")) is not None]
    out["latency_ms"] = {
        "p50": float(np.percentile(lat, 50)) if lat else None,
        "p95": float(np.percentile(lat, 95)) if lat else None,
        "mean": _mean(lat) if lat else None,
    }
    costs = [float(it["cost"]) for it in items if _num(it.get("cost")) is not None]
    out["cost"] = sum(costs) if costs else None
    tokens = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    for it in items:
        u = it.get("usage") or {}
        for k in tokens:
            v = u.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool):
                tokens[k] += int(v)
    out["tokens"] = tokens
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for it in items:
        groups[str(it["item_id"])].append(it)
    per: dict[str, Any] = {}
    for name, m in meta.items():
        values = per_item(items, name)
        errors = sum(1 for it in items
                     if isinstance((it.get("scores") or {}).get(name), Mapping) and it["scores"][name].get("error"))
        flags = [e.get("passed") for it in items
                 if isinstance(e := (it.get("scores") or {}).get(name), Mapping) and not e.get("error")]
        flags = [f for f in flags if f is not None]
        cats: dict[str, int] = {}
        for it in items:
            sc = (it.get("scores") or {}).get(name)
            if isinstance(sc, Mapping) and isinstance(sc.get("value"), str) and not sc.get("error"):
                cats[sc["value"]] = cats.get(sc["value"], 0) + 1
        entry: dict[str, Any] = {
            "type": m.get("type"), "direction": m.get("direction") or "higher", "weight": m.get("weight", 1.0),
            "errors": errors, **_ci(list(values.values()), **kw),
            "pass_rate": (sum(1 for f in flags if f) / len(flags)) if flags else None,
            **_rep_spread(items, name),
        }
        if cats:
            entry["categories"] = cats
        agreement = _agreement(groups, name)
        if agreement is not None:
            entry["agreement"] = agreement
        per[name] = entry
    out["scorers"] = per
    return out


def metric_of(summary: Mapping[str, Any], metric: str, stat: str = "mean") -> float | None:
    """One number from a summary: a scorer's or a pseudo-metric's ``mean``/``low``/``high``."""
    if metric in ("pass_rate", "score"):
        return summary.get(metric, {}).get(stat)
    if metric == "error_rate":
        return summary.get("error_rate")
    if metric == "latency_p50":
        return (summary.get("latency_ms") or {}).get("p50")
    if metric == "latency_p95":
        return (summary.get("latency_ms") or {}).get("p95")
    if metric == "cost":
        return summary.get("cost")
    s = (summary.get("scorers") or {}).get(metric)
    return s.get(stat) if s else None


def compare_runs(
    baseline: Sequence[Mapping[str, Any]],
    candidate: Sequence[Mapping[str, Any]],
    *,
    scorers: Sequence[Mapping[str, Any]] = (),
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    tolerance: float = 0.0,
    n_resamples: int = DECISION_RESAMPLES,
    seed: int = 0,
    max_items: int = 100,
) -> dict[str, Any]:
    """Compare a candidate experiment's items with a baseline's, item by item (paired).

    Per metric (every scorer both share, plus ``pass_rate`` and ``score`` unless ``metrics``
    names them): both means, the paired-bootstrap CI of ``candidate - baseline``, whether it is
    a significant regression or improvement (whole CI beyond ``tolerance``; direction-aware),
    and the items that improved, regressed or stayed the same (``items``: counts;
    ``improved_items``/``regressed_items``: ids and deltas, largest change first, at most
    ``max_items`` each).
    """
    direction = {str(s["name"]): s.get("direction") or "higher" for s in scorers}
    for rows in (baseline, candidate):
        for it in rows:
            for name, s in (it.get("scores") or {}).items():
                if isinstance(s, Mapping) and s.get("direction") and name not in direction:
                    direction[name] = s["direction"]
    names_b = {n for it in baseline for n in (it.get("scores") or {})}
    names_c = {n for it in candidate for n in (it.get("scores") or {})}
    wanted = list(metrics) if metrics is not None else ["pass_rate", "score", *sorted(names_b & names_c)]
    out: dict[str, Any] = {}
    for m in wanted:
        b, c = per_item(baseline, m), per_item(candidate, m)
        higher = direction.get(m, "higher") != "lower"
        common = [k for k in c if k in b]
        entry: dict[str, Any] = {
            "direction": "higher" if higher else "lower",
            "baseline_mean": _mean(list(b.values())) if b else None,
            "candidate_mean": _mean(list(c.values())) if c else None,
            "n": len(common),
        }
        if not common:
            entry.update(diff=None, low=None, high=None, regressed=False, improved=False,
                         reason="no item has a value in both runs")
        else:
            v = stats.check_regression({k: c[k] for k in common}, {k: b[k] for k in common}, tolerance=tolerance,
                                       higher_is_better=higher, confidence=confidence, n_resamples=n_resamples,
                                       seed=seed)
            entry.update(diff=v.diff.diff, low=v.diff.low, high=v.diff.high,
                         prob_below_zero=v.diff.prob_below_zero, regressed=v.regressed, improved=v.improved,
                         reason=v.reason)
        d = stats.classify_item_diffs(c, b, higher_is_better=higher)
        entry["items"] = d.counts

        def top(keys: list[Any], d: stats.ItemDiffs = d) -> list[dict[str, Any]]:
            ranked = sorted(keys, key=lambda k: -abs(d.deltas.get(k, 0.0)))[:max_items]
            return [{"item_id": k, "delta": d.deltas.get(k)} for k in ranked]

        entry["improved_items"] = top(d.improved)
        entry["regressed_items"] = top(d.regressed)
        out[m] = entry
    return {"metrics": out, "confidence": confidence, "tolerance": tolerance,
            "items": {"baseline": len({it["item_id"] for it in baseline}),
                      "candidate": len({it["item_id"] for it in candidate})}}
