"""The statistical tests of a drift run, through evidently (the ``monitor`` extra).

- Embeddings: evidently's domain-classifier method (``ModelDriftMethod``: an SGD logistic
  classifier trained on half of reference + current, its ROC AUC on the other half). AUC 0.5
  means the windows cannot be told apart. The p-value is the probability that a classifier
  which cannot tell them apart scores that AUC or more on a test half of that size: the
  Mann-Whitney null distribution of the AUC (normal approximation), the analytic form of
  evidently's random-classifier bootstrap.
- Numbers (lengths, scores): evidently's two-sample Kolmogorov-Smirnov test (p-value) and its
  normed Wasserstein distance (effect size: the shift in reference standard deviations).
- Categories (languages, topic clusters): a two-sample chi-square test of homogeneity
  (scipy; p-value) and evidently's PSI (effect size).

Nothing here imports evidently until a test runs; :func:`require` says how to install it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from podium.errors import ServiceUnavailable

__all__ = ["INSTALL_HINT", "Outcome", "categorical_drift", "embedding_drift", "numeric_drift", "require"]

INSTALL_HINT = "pip install 'podium[monitor]'"


def require() -> None:
    """Raise a 503 that names the install command unless evidently can be imported."""
    try:
        import evidently  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise ServiceUnavailable(
            f"drift monitors need the monitor extra (evidently, scikit-learn): run `{INSTALL_HINT}` "
            "where the server and the worker run, then restart them") from None


@dataclass
class Outcome:
    """One feature's test: ``statistic`` (AUC, Wasserstein, PSI...), ``p_value`` and the verdict."""

    feature: str
    test: str
    statistic: float
    p_value: float
    drifted: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "test": self.test, "statistic": _num(self.statistic),
                "p_value": _num(self.p_value), "drifted": self.drifted, **self.extra}


def _num(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def _auc_p_value(auc: float, n_pos: int, n_neg: int) -> float:
    """P(AUC >= auc) for a classifier that cannot tell the classes apart (Mann-Whitney null,
    normal approximation with continuity correction)."""
    from scipy.stats import norm

    if n_pos < 1 or n_neg < 1:
        return 1.0
    u = auc * n_pos * n_neg
    mu = n_pos * n_neg / 2.0
    sd = math.sqrt(n_pos * n_neg * (n_pos + n_neg + 1) / 12.0)
    return float(norm.sf((u - mu - 0.5) / sd))


def embedding_drift(feature: str, reference: np.ndarray, current: np.ndarray, *, alpha: float,
                    min_auc: float) -> Outcome:
    """Domain-classifier drift of two embedding matrices (rows: texts)."""
    require()
    import pandas as pd
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

    ref = pd.DataFrame(np.asarray(reference, dtype=np.float64))
    cur = pd.DataFrame(np.asarray(current, dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auc, _, _ = model(threshold=min_auc)(cur, ref)
    auc = float(auc)
    # evidently's split: half of the rows for testing, classes in proportion
    n_test = (len(ref) + len(cur)) // 2
    n_ref_test = round(n_test * len(ref) / (len(ref) + len(cur)))
    p = _auc_p_value(auc, n_ref_test, n_test - n_ref_test)
    return Outcome(feature, "domain classifier ROC AUC", auc, p, bool(p < alpha and auc >= min_auc),
                   {"threshold_auc": min_auc})


def numeric_drift(feature: str, reference: Sequence[float], current: Sequence[float], *,
                  alpha: float) -> Outcome:
    """KS p-value and the normed Wasserstein distance of two samples of numbers."""
    require()
    import pandas as pd
    from evidently.legacy.calculations.stattests import ks_stat_test, wasserstein_stat_test
    from evidently.legacy.core import ColumnType

    ref, cur = pd.Series(list(reference), dtype=float), pd.Series(list(current), dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ks = ks_stat_test(ref, cur, ColumnType.Numerical, alpha)
        wd = wasserstein_stat_test(ref, cur, ColumnType.Numerical, None)
    p = float(ks.drift_score) if math.isfinite(float(ks.drift_score)) else 1.0
    return Outcome(feature, "Kolmogorov-Smirnov", float(wd.drift_score), p, bool(p < alpha),
                   {"statistic_name": "wasserstein_normed", "reference_mean": _num(float(ref.mean())),
                    "current_mean": _num(float(cur.mean()))})


def categorical_drift(feature: str, reference: Sequence[str], current: Sequence[str], *,
                      alpha: float) -> Outcome:
    """Chi-square p-value and PSI of two samples of labels; the top shares of each."""
    require()
    import pandas as pd
    from evidently.legacy.calculations.stattests import psi_stat_test
    from evidently.legacy.core import ColumnType
    from scipy.stats import chi2_contingency

    ref, cur = pd.Series(list(reference), dtype=object), pd.Series(list(current), dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psi = psi_stat_test(ref, cur, ColumnType.Categorical, None)
    # Two-sample chi-square (homogeneity) on the counts, labels seen fewer than 5 times in both
    # windows together pooled as one. Not evidently's ``chisquare``: that one is a goodness-of-fit
    # test that takes the reference shares as exact, which ignores the reference's own sampling
    # noise and fires on most unshifted windows of equal size (bench/drift_detection.py).
    counts: dict[str, list[int]] = {}
    for i, labels in enumerate((reference, current)):
        for x in labels:
            counts.setdefault(x, [0, 0])[i] += 1
    table: list[list[int]] = []
    pooled = [0, 0]
    for c in counts.values():
        if c[0] + c[1] >= 5:
            table.append(c)
        else:
            pooled = [pooled[0] + c[0], pooled[1] + c[1]]
    if sum(pooled):
        table.append(pooled)
    table = [c for c in table if c[0] + c[1] > 0]
    if len(table) < 2 or not reference or not current:
        p = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(chi2_contingency(np.array(table).T, correction=False)[1])
        if not math.isfinite(p):
            p = 1.0
    return Outcome(feature, "chi-square", float(psi.drift_score), p, bool(p < alpha),
                   {"statistic_name": "psi", "reference_shares": _shares(reference),
                    "current_shares": _shares(current)})


def _shares(labels: Sequence[str], top: int = 8) -> dict[str, float]:
    counts: dict[str, int] = {}
    for x in labels:
        counts[x] = counts.get(x, 0) + 1
    n = max(len(labels), 1)
    return {k: round(v / n, 4) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:top]}
