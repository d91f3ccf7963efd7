"""Statistics with known seeds and independent references: a straightforward bootstrap written
out by hand, the normal approximation, Wikipedia's kappa examples, hand-computed weighted kappa,
and Spearman values computed with scipy.stats.spearmanr (scipy 1.17.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from podium.evals import Score
from podium.evals.stats import (
    accuracy,
    bootstrap_mean_ci,
    check_regression,
    classify_item_diffs,
    cohen_kappa,
    judge_agreement,
    paired_bootstrap_diff,
    rankdata,
    spearman,
)


def _reference_bootstrap(values: list[float], n_resamples: int, seed: int, confidence: float) -> tuple[float, float]:
    """The textbook percentile bootstrap, spelled out: the same documented index draws, then
    plain Python means, a sort, and linear interpolation between order statistics."""
    rng = np.random.default_rng(seed)
    n = len(values)
    idx = rng.integers(0, n, size=(n_resamples, n))
    means = sorted(sum(values[j] for j in row) / n for row in idx.tolist())

    def pct(q: float) -> float:
        pos = (len(means) - 1) * q
        lo = math.floor(pos)
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    alpha = 1 - confidence
    return pct(alpha / 2), pct(1 - alpha / 2)


def test_bootstrap_mean_ci_matches_a_straightforward_reference() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.6, 0.2, size=60).round(3).tolist()
    ci = bootstrap_mean_ci(values, n_resamples=2000, seed=42)
    lo, hi = _reference_bootstrap(values, 2000, 42, 0.95)
    assert ci.mean == pytest.approx(sum(values) / len(values), abs=1e-12)
    assert (ci.low, ci.high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert ci.low < ci.mean < ci.high and (ci.n, ci.n_resamples, ci.confidence) == (60, 2000, 0.95)
    ci90 = bootstrap_mean_ci(values, n_resamples=2000, seed=42, confidence=0.9)
    lo90, hi90 = _reference_bootstrap(values, 2000, 42, 0.9)
    assert (ci90.low, ci90.high) == (pytest.approx(lo90, abs=1e-12), pytest.approx(hi90, abs=1e-12))
    assert ci.low < ci90.low and ci90.high < ci.high


def test_bootstrap_is_reproducible_and_seedable() -> None:
    values = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    a = bootstrap_mean_ci(values, n_resamples=500, seed=7)
    assert a == bootstrap_mean_ci(values, n_resamples=500, seed=7)
    assert a == bootstrap_mean_ci(values, n_resamples=500, seed=np.random.default_rng(7))
    cont = [0.11, 0.52, 0.33, 0.94, 0.25, 0.67, 0.78, 0.49]
    assert bootstrap_mean_ci(cont, n_resamples=500, seed=7) != bootstrap_mean_ci(cont, n_resamples=500, seed=8)
    assert bootstrap_mean_ci([True, False], n_resamples=10, seed=1).mean == 0.5  # bools count as 1/0
    assert bootstrap_mean_ci([Score(0.5), Score(1.0)], n_resamples=10, seed=1).mean == 0.75  # Scores too


def test_bootstrap_in_blocks_agrees_with_the_normal_approximation() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1, size=2000)  # 2000 x 5000 draws: several blocks
    ci = bootstrap_mean_ci(values, n_resamples=5000, seed=11)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert ci.low == pytest.approx(values.mean() - 1.96 * se, abs=0.1 * se)
    assert ci.high == pytest.approx(values.mean() + 1.96 * se, abs=0.1 * se)


def test_bootstrap_edge_cases_and_bad_input() -> None:
    one = bootstrap_mean_ci([0.7], n_resamples=100, seed=0)
    assert (one.mean, one.low, one.high) == (0.7, 0.7, 0.7)
    same = bootstrap_mean_ci([0.3] * 20, n_resamples=100, seed=0)
    assert same.low == pytest.approx(0.3) and same.high == pytest.approx(0.3)
    with pytest.raises(ValueError, match="1 missing/NaN"):
        bootstrap_mean_ci([1.0, None, 0.5])
    assert bootstrap_mean_ci([1.0, None, float("nan"), 0.5], nan_policy="omit", seed=0).n == 2
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([1.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean_ci([1.0], n_resamples=0)
    with pytest.raises(ValueError, match="not a number"):
        bootstrap_mean_ci(["high"])


def test_paired_bootstrap_is_the_bootstrap_of_per_item_differences() -> None:
    rng = np.random.default_rng(1)
    baseline = rng.uniform(0.3, 0.9, size=50)
    candidate = baseline + rng.normal(-0.03, 0.02, size=50)
    d = paired_bootstrap_diff(candidate.tolist(), baseline.tolist(), n_resamples=3000, seed=5)
    diffs = (candidate - baseline).tolist()
    lo, hi = _reference_bootstrap(diffs, 3000, 5, 0.95)
    assert d.diff == pytest.approx(sum(diffs) / 50, abs=1e-12)
    assert (d.low, d.high) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert d.candidate_mean == pytest.approx(candidate.mean()) and d.baseline_mean == pytest.approx(baseline.mean())
    assert d.high < 0 and d.prob_below_zero > 0.99
    # pairing removes between-item variance: far narrower than the CI of either run
    single = bootstrap_mean_ci(baseline, n_resamples=3000, seed=5)
    assert (d.high - d.low) < (single.high - single.low) / 3


def test_paired_runs_as_mappings_and_missing_pairs() -> None:
    cand = {"a": 1.0, "b": 0.5, "c": None, "d": 0.0}
    base = {"a": 0.5, "b": 0.5, "c": 1.0, "e": 1.0}
    with pytest.raises(ValueError, match="missing/NaN"):
        paired_bootstrap_diff(cand, base)
    d = paired_bootstrap_diff(cand, base, nan_policy="omit", seed=0, n_resamples=200)
    assert d.n == 2 and d.diff == pytest.approx(0.25)  # pairs a and b only
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_diff([1, 2], [1])
    with pytest.raises(ValueError, match="both as mappings"):
        paired_bootstrap_diff({"a": 1}, [1])


def test_regression_gate() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0.4, 0.9, size=200)
    worse = base - 0.05 + rng.normal(0, 0.02, size=200)
    v = check_regression(worse, base, seed=0)
    assert v.regressed and not v.improved and v.diff.high < 0
    assert "a significant regression" in v.reason and "95% CI" in v.reason
    # the same loss inside a tolerance of 0.1 is accepted
    assert not check_regression(worse, base, tolerance=0.1, seed=0).regressed
    # noise around zero: no significant regression
    same = base + rng.normal(0, 0.05, size=200)
    ok = check_regression(same, base, seed=0)
    assert not ok.regressed and ok.diff.low < 0 < ok.diff.high and "no significant regression" in ok.reason
    identical = check_regression(base, base, seed=0)
    assert not identical.regressed and identical.diff.low == identical.diff.high == 0.0
    better = check_regression(base + 0.05, base, seed=0)
    assert better.improved and not better.regressed
    # lower is better (latency): slower is a regression, faster is not
    lat = rng.uniform(100, 200, size=100)
    assert check_regression(lat + 30, lat, higher_is_better=False, seed=0).regressed
    assert not check_regression(lat - 30, lat, higher_is_better=False, seed=0).regressed
    assert check_regression(lat - 30, lat, higher_is_better=False, seed=0).improved
    with pytest.raises(ValueError, match="tolerance"):
        check_regression([1.0], [1.0], tolerance=-0.1)


def test_per_item_diff_classification() -> None:
    cand = [0.9, 0.5, 0.52, 0.1, True]
    base = [0.5, 0.5, 0.5, 0.6, False]
    diffs = classify_item_diffs(cand, base, threshold=0.05)
    assert (diffs.improved, diffs.regressed, diffs.unchanged) == ([0, 4], [3], [1, 2])
    assert diffs.counts == {"improved": 2, "regressed": 1, "unchanged": 2, "missing": 0}
    assert diffs.deltas[3] == pytest.approx(-0.5) and diffs.label(2) == "unchanged"
    strict = classify_item_diffs(cand, base)  # threshold 0: any change counts
    assert strict.improved == [0, 2, 4]
    lower = classify_item_diffs([120, 80, 100], [100, 100, 100], threshold=5, higher_is_better=False)
    assert (lower.improved, lower.regressed, lower.unchanged) == ([1], [0], [2])
    keyed = classify_item_diffs({"q1": 1.0, "q2": None, "q3": 0.2}, {"q1": 0.0, "q2": 1.0, "q4": 1.0})
    assert keyed.improved == ["q1"] and sorted(keyed.missing) == ["q2", "q3", "q4"]


def _wiki(yy: int, yn: int, ny: int, nn: int) -> tuple[list[str], list[str]]:
    a = ["yes"] * (yy + yn) + ["no"] * (ny + nn)
    b = ["yes"] * yy + ["no"] * yn + ["yes"] * ny + ["no"] * nn
    return a, b


def test_cohen_kappa_wikipedia_examples() -> None:
    # Wikipedia "Cohen's kappa", simple example: 50 grant proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no:
    # p_o = 0.7, p_e = 0.5, kappa = 0.4
    assert cohen_kappa(*_wiki(20, 5, 10, 15)) == pytest.approx(0.4)
    # "same percentages but different numbers": p_o = 0.60 in both, kappa 0.1304 and 0.2593
    assert cohen_kappa(*_wiki(45, 15, 25, 15)) == pytest.approx(0.06 / 0.46)
    assert cohen_kappa(*_wiki(25, 35, 5, 35)) == pytest.approx(0.14 / 0.54)
    a, b = _wiki(20, 5, 10, 15)
    assert cohen_kappa([x == "yes" for x in a], [x == "yes" for x in b]) == pytest.approx(0.4)  # booleans
    assert accuracy(a, b) == pytest.approx(0.7)


def test_weighted_kappa_by_hand() -> None:
    # a = [1, 1, 2, 3], b = [1, 2, 2, 1]; observed O has ones at (1,1) (1,2) (2,2) (3,1);
    # expected E = outer([2,1,1], [2,2,0]) / 4.
    # unweighted: p_o = 0.5, p_e = (1 + 0.5 + 0) / 4 = 0.375 -> 0.2
    # linear |i-j|: sum wO = 1 + 2 = 3, sum wE = 1 + 0.5 + 1 + 0.5 = 3 -> 0.0
    # quadratic (i-j)^2: sum wO = 1 + 4 = 5, sum wE = 1 + 0.5 + 2 + 0.5 = 4 -> -0.25
    a, b = [1, 1, 2, 3], [1, 2, 2, 1]
    assert cohen_kappa(a, b) == pytest.approx(0.2)
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(0.0)
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(-0.25)
    # unused categories change weighted kappa (positions), so the scale can be given
    assert cohen_kappa(a, b, labels=[1, 2, 3, 4, 5]) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="not in `labels`"):
        cohen_kappa(a, b, labels=[1, 2])
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))  # chance agreement 1: undefined
    assert cohen_kappa(["x", "y"], ["x", "y"]) == 1.0


def test_spearman_against_scipy_values() -> None:
    assert rankdata([1, 2, 2, 3, 4, 4, 4, 5, 6, 7]).tolist() == [1.0, 2.5, 2.5, 4.0, 6.0, 6.0, 6.0, 8.0, 9.0, 10.0]
    # scipy.stats.spearmanr(...).statistic
    assert spearman([1, 2, 2, 3, 4, 4, 4, 5, 6, 7], [2, 1, 3, 3, 5, 4, 6, 5, 7, 7]) == pytest.approx(
        0.9223780407186633, abs=1e-12)
    assert spearman([0.1, 0.4, 0.35, 0.8, 0.75, 0.2, 0.9, 0.05], [1, 3, 2, 5, 4, 1, 5, 2]) == pytest.approx(
        0.8849947770681915, abs=1e-12)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_judge_agreement_picks_the_measure_and_drops_missing() -> None:
    cat = judge_agreement([True, False, None, True], [True, False, True, False])
    assert (cat.kind, cat.n, cat.dropped, cat.accuracy, cat.spearman) == ("categorical", 3, 1, 2 / 3, None)
    assert cat.kappa == pytest.approx(cohen_kappa([True, False, True], [True, False, False]))
    num = judge_agreement([Score(0.9), Score(0.2), Score(0.5), float("nan")], [5, 1, 3, 4])
    assert (num.kind, num.n, num.dropped, num.kappa) == ("numeric", 3, 1, None)
    assert num.spearman == pytest.approx(1.0) and num.accuracy == 0.0
    near = judge_agreement([4, 2, 5], [5, 2, 5], tolerance=1)
    assert near.accuracy == 1.0
    assert judge_agreement(["good", "bad"], ["good", "good"]).to_dict()["accuracy"] == 0.5
    with pytest.raises(ValueError, match="different numbers of items"):
        judge_agreement([1, 2], [1])
    with pytest.raises(ValueError, match="no item has both"):
        judge_agreement([None], [1])
