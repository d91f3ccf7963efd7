"""Pure alert conditions: numbers in, "breached or not" out.

Three kinds:

- ``threshold``: the window's value compared with ``threshold`` (``op`` one of ``> >= < <=``).
- ``change``: the window's value against the same-length window ``baseline_offset_s`` earlier,
  as a relative change (``(now - before) / |before|``, 0.5 = +50%) or an absolute one
  (``now - before``), compared with ``threshold``.
- ``anomaly``: the z-score of the window's value against the previous ``anomaly_windows``
  windows, compared with ``threshold`` (``two_sided``: its absolute value).

An :class:`Outcome` with ``breached=None`` means "not enough data to say": the evaluator keeps
the rule's state as it is.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["KINDS", "OPS", "Outcome", "anomaly", "change", "compare", "threshold", "windows", "zscore"]

KINDS = ("threshold", "change", "anomaly")
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
#: Fewest earlier windows an anomaly needs before it can fire.
MIN_HISTORY = 3


@dataclass(frozen=True)
class Outcome:
    """``observed``: the watched value in the current window; ``value``: what was compared with
    the threshold (the value itself, its change, or its z-score); ``breached``: True / False, or
    None when there is not enough data."""

    breached: bool | None
    observed: float | None = None
    value: float | None = None
    baseline: float | None = None
    reason: str = ""
    error: str | None = None


def compare(value: float, op: str, limit: float) -> bool:
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, not {op!r}")
    return OPS[op](value, limit)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def threshold(observed: float | None, op: str, limit: float) -> Outcome:
    if observed is None or not math.isfinite(observed):
        return Outcome(None, observed, reason="no data in the window")
    hit = compare(observed, op, limit)
    return Outcome(hit, observed, observed, reason=f"value {_fmt(observed)} {op if hit else 'not ' + op} {_fmt(limit)}")


def change(observed: float | None, before: float | None, op: str, limit: float, mode: str = "relative") -> Outcome:
    if observed is None or before is None:
        return Outcome(None, observed, baseline=before, reason="no data in the current or the baseline window")
    if mode == "relative":
        if before == 0:
            return Outcome(None, observed, baseline=before, reason="the baseline is 0: a relative change is undefined")
        delta = (observed - before) / abs(before)
    elif mode == "absolute":
        delta = observed - before
    else:
        raise ValueError(f"change_mode must be relative or absolute, not {mode!r}")
    hit = compare(delta, op, limit)
    what = f"{delta:+.1%}" if mode == "relative" else f"{delta:+.6g}"
    return Outcome(hit, observed, delta, before,
                   reason=f"{_fmt(observed)} vs {_fmt(before)} before: change {what} {op if hit else 'not ' + op} "
                          f"{_fmt(limit)}")


def zscore(observed: float, history: Sequence[float]) -> float | None:
    """``(observed - mean) / stdev`` over ``history``; None with fewer than ``MIN_HISTORY`` values.
    A flat history gives 0 for the same value and +/-inf for any other."""
    if len(history) < MIN_HISTORY:
        return None
    mean = statistics.fmean(history)
    sd = statistics.pstdev(history)
    if sd == 0:
        return 0.0 if observed == mean else math.copysign(math.inf, observed - mean)
    return (observed - mean) / sd


def anomaly(observed: float | None, history: Sequence[float | None], op: str, limit: float,
            two_sided: bool = False) -> Outcome:
    past = [h for h in history if h is not None and math.isfinite(h)]
    if observed is None:
        return Outcome(None, observed, reason="no data in the window")
    z = zscore(observed, past)
    if z is None:
        return Outcome(None, observed, reason=f"{len(past)} earlier window(s) with data; an anomaly needs "
                                              f"{MIN_HISTORY}")
    cmp = abs(z) if two_sided else z
    hit = compare(cmp, op, limit)
    return Outcome(hit, observed, z, statistics.fmean(past),
                   reason=f"z-score {'|' + _fmt(z) + '|' if two_sided else _fmt(z)} {op if hit else 'not ' + op} "
                          f"{_fmt(limit)} (value {_fmt(observed)}, mean {_fmt(statistics.fmean(past))})")


def windows(kind: str, now: datetime, window_s: int, params: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    """The time windows a rule reads: the current one first, then its baseline(s)."""
    w = timedelta(seconds=window_s)
    out = [(now - w, now)]
    if kind == "change":
        off = timedelta(seconds=int(params.get("baseline_offset_s") or 86400))
        out.append((now - off - w, now - off))
    elif kind == "anomaly":
        for i in range(1, int(params.get("anomaly_windows") or 12) + 1):
            out.append((now - w * (i + 1), now - w * i))
    return out
