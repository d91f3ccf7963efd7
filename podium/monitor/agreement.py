"""Inter-annotator agreement for annotation queues: Cohen's kappa for two annotators, Fleiss'
kappa for more, raw percent agreement, and how many items each figure rests on.

The kappas come from statsmodels (``statsmodels.stats.inter_rater``: ``cohens_kappa``,
``fleiss_kappa``), installed with ``pip install 'podium[monitor]'``; without it
:func:`compute` raises :class:`~podium.errors.ServiceUnavailable` saying so.

Which statistic (per score config of a queue):

- **Cohen's kappa** when the items rated at least twice were all rated by the same two people
  (their first rating of each item is compared). Categorical and boolean values are compared as
  nominal categories (unweighted).
- **Fleiss' kappa** otherwise (three or more people, or different pairs on different items):
  ``m`` is the most common number of ratings per item (at least 2); items with at least ``m``
  ratings take their first ``m`` (in the order submitted), items with fewer are left out.
- **Numeric** values are binned into ``NUMERIC_BINS`` equal-width bins over the config's range
  (the observed range where the config has no bounds). With two annotators the kappa is
  *quadratically weighted* over the bins (near misses count partly, as for ordinal ratings);
  Fleiss' kappa on the bins is unweighted.
- ``percent_agreement`` is the raw share of agreeing rating pairs: for two annotators the share
  of items they gave the same value (the same bin, for numbers); for more, Fleiss' mean pairwise
  agreement P-bar.

Kappa is undefined when every rating is the same value (chance agreement is 1): it is then
``None`` with a note, while percent agreement is 100.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from podium.errors import ServiceUnavailable, ValidationFailed
from podium.store import Store
from podium.store.repos.score_configs import ScoreConfigRepo

__all__ = ["INSTALL_HINT", "NUMERIC_BINS", "Rating", "available", "compute", "for_queue"]

NUMERIC_BINS = 5
INSTALL_HINT = "pip install 'podium[monitor]'"


@dataclass(frozen=True)
class Rating:
    item: str
    annotator: str
    value: Hashable  # a category label, a bool, or a number (numeric configs)


def available() -> bool:
    """Whether statsmodels (the kappa implementation) is installed."""
    try:
        importlib.import_module("statsmodels.stats.inter_rater")
    except ImportError:
        return False
    return True


def _lib() -> Any:
    try:
        inter_rater = importlib.import_module("statsmodels.stats.inter_rater")
    except ImportError:
        raise ServiceUnavailable(f"inter-annotator agreement needs statsmodels: run `{INSTALL_HINT}` "
                                 "and restart the server") from None
    return inter_rater


def _bins(values: list[float], lo: float | None, hi: float | None) -> list[int]:
    lo = min(values) if lo is None else lo
    hi = max(values) if hi is None else hi
    if hi <= lo:
        return [0 for _ in values]
    width = (hi - lo) / NUMERIC_BINS
    return [min(NUMERIC_BINS - 1, max(0, int((v - lo) // width))) for v in values]


def _kappa(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def compute(ratings: Sequence[Rating], data_type: str, *, min_value: float | None = None,
            max_value: float | None = None) -> dict[str, Any]:
    """Agreement over ``ratings`` (several per item): see the module docstring for the rules.

    Returns ``method`` (``cohen``, ``cohen_quadratic`` or ``fleiss``; ``None`` with too little
    data), ``kappa``, ``percent_agreement`` (0-100), ``items`` (how many items it rests on),
    ``annotators`` and ``ratings_per_item``, and a ``note`` when a figure is missing."""
    by_item: dict[str, list[Rating]] = {}
    for r in ratings:
        seen = by_item.setdefault(r.item, [])
        if all(x.annotator != r.annotator for x in seen):  # one rating per person per item
            seen.append(r)
    multi = {k: v for k, v in by_item.items() if len(v) >= 2}
    empty: dict[str, Any] = {"method": None, "kappa": None, "percent_agreement": None, "items": 0,
                             "annotators": len({r.annotator for r in ratings}), "ratings_per_item": None,
                             "note": "no item has two or more reviews yet"}
    if not multi:
        return empty
    if data_type == "numeric":
        flat = [(k, i, _num(r.value)) for k, rs in multi.items() for i, r in enumerate(rs)]
        binned = _bins([v for _, _, v in flat], min_value, max_value)
        multi = {k: list(rs) for k, rs in multi.items()}
        for (k, i, _), bin_ in zip(flat, binned, strict=True):
            r = multi[k][i]
            multi[k][i] = Rating(r.item, r.annotator, bin_)
    people = {r.annotator for rs in multi.values() for r in rs}
    ir = _lib()
    if len(people) == 2:
        first, second = sorted(people)
        pairs = [({r.annotator: r.value for r in rs}[first], {r.annotator: r.value for r in rs}[second])
                 for rs in multi.values()]
        cats = sorted({v for p in pairs for v in p}, key=_order)
        weighted = data_type == "numeric"
        if weighted:  # every bin, so the weights follow the distance between bins
            cats = list(range(NUMERIC_BINS))
        index = {c: n for n, c in enumerate(cats)}
        table = [[0] * len(cats) for _ in cats]
        for x, y in pairs:
            table[index[x]][index[y]] += 1
        agree = sum(table[n][n] for n in range(len(cats))) / len(pairs)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 0/0 when every rating is the same: reported as None
            kappa = _kappa(ir.cohens_kappa(table, wt="quadratic" if weighted else None, return_results=False))
        return {"method": "cohen_quadratic" if weighted else "cohen", "kappa": kappa,
                "percent_agreement": round(100 * agree, 2), "items": len(pairs), "annotators": 2,
                "ratings_per_item": 2,
                "note": None if kappa is not None else "every rating is the same value: kappa is undefined"}
    counts: dict[int, int] = {}
    for rs in multi.values():
        counts[len(rs)] = counts.get(len(rs), 0) + 1
    m = max(counts, key=lambda n: (counts[n], n))
    used = [rs[:m] for rs in multi.values() if len(rs) >= m]
    cats = sorted({r.value for rs in used for r in rs}, key=_order)
    index = {c: n for n, c in enumerate(cats)}
    table = [[0] * len(cats) for _ in used]
    for row, rs in zip(table, used, strict=True):
        for r in rs:
            row[index[r.value]] += 1
    p_bar = sum((sum(n * n for n in row) - m) / (m * (m - 1)) for row in table) / len(table)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = _kappa(ir.fleiss_kappa(table, method="fleiss")) if len(cats) >= 2 else None
    return {"method": "fleiss", "kappa": kappa, "percent_agreement": round(100 * p_bar, 2), "items": len(used),
            "annotators": len(people), "ratings_per_item": m,
            "note": None if kappa is not None else "every rating is the same value: kappa is undefined"}


def _num(v: Hashable) -> float:
    if isinstance(v, bool | int | float):
        return float(v)
    raise ValidationFailed(f"a numeric rating must be a number, not {v!r}")


def _order(v: Hashable) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (0, v)
    if isinstance(v, int | float):
        return (1, v)
    return (2, str(v))


def for_queue(store: Store, project_id: str, queue_id: str) -> list[dict[str, Any]]:
    """Agreement for each of the queue's score configs (503 naming the install command without
    statsmodels)."""
    _lib()
    queue = store.annotations.get_queue(project_id, queue_id)
    configs: Mapping[str, dict[str, Any]] = {c["id"]: c for c in ScoreConfigRepo(store.engine).list(project_id)}
    anns = store.annotations.annotations(project_id, queue_id)
    out = []
    for cid in queue["score_config_ids"]:
        c = configs.get(cid)
        if c is None:
            continue
        dt = c["data_type"]
        rows = [Rating(a["item_id"], a["annotator"], _value(a, dt)) for a in anns if a["score_config_id"] == cid]
        res = compute(rows, dt, min_value=c.get("min_value"), max_value=c.get("max_value"))
        out.append({"score_config_id": cid, "name": c["name"], "data_type": dt, **res})
    return out


def _value(a: Mapping[str, Any], data_type: str) -> Hashable:
    if data_type == "categorical":
        return str(a["label"])
    if data_type == "boolean":
        return bool(a["value"])
    return float(a["value"])
