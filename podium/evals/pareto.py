"""Pareto fronts of multi-objective results: dominance, the non-dominated set and the exact
hypervolume for two or three objectives.

Each point is a sequence of objective values; ``senses`` says per objective whether larger
(``"max"``) or smaller (``"min"``) is better. A point dominates another when it is at least as
good on every objective and strictly better on at least one. Equal points do not dominate each
other, so duplicates are all on the front.

Hypervolume: the volume of the region that the front dominates and that is bounded by the
``reference`` point (which must be worse than the interesting points on every objective; points
not strictly better than the reference on every objective add nothing). Two objectives: a sweep
over the sorted front; three: slices along the third objective, each slice an exact 2-D
hypervolume. Exact, O(n^2 log n) for three objectives, fine for the few thousand points a sweep
makes. Plain Python (numpy-free) so the server and the SDK import it cheaply.

The objectives of an evaluation sweep trial, in this order: ``score`` (max), ``cost_per_1k``
(min), ``p95_ms`` (min): see :data:`SWEEP_OBJECTIVES`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from podium.errors import ValidationFailed

__all__ = [
    "SWEEP_OBJECTIVES",
    "SWEEP_SENSES",
    "Sense",
    "dominates",
    "hypervolume",
    "pareto_front",
]

Sense = Literal["max", "min"]

SWEEP_OBJECTIVES: tuple[str, ...] = ("score", "cost_per_1k", "p95_ms")
SWEEP_SENSES: tuple[Sense, ...] = ("max", "min", "min")


def _check(point: Sequence[float], senses: Sequence[Sense]) -> None:
    if len(point) != len(senses):
        raise ValidationFailed(
            f"a point has {len(point)} objective values but {len(senses)} senses were given; "
            "give one sense ('max' or 'min') per objective"
        )
    for s in senses:
        if s not in ("max", "min"):
            raise ValidationFailed(f"unknown objective sense {s!r}; use 'max' or 'min'")


def _as_min(point: Sequence[float], senses: Sequence[Sense]) -> tuple[float, ...]:
    """The point with every objective turned into minimise-this."""
    return tuple(-float(v) if s == "max" else float(v) for v, s in zip(point, senses, strict=True))


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[Sense]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and strictly better somewhere."""
    _check(a, senses)
    _check(b, senses)
    ma, mb = _as_min(a, senses), _as_min(b, senses)
    return all(x <= y for x, y in zip(ma, mb, strict=True)) and any(
        x < y for x, y in zip(ma, mb, strict=True)
    )


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[Sense]) -> list[int]:
    """Indices (ascending) of the points no other point dominates. NaN values count as worst."""
    for p in points:
        _check(p, senses)
    conv = [
        tuple(math.inf if math.isnan(v) else v for v in _as_min(p, senses)) for p in points
    ]
    order = sorted(range(len(conv)), key=lambda i: conv[i])
    front: list[int] = []
    for i in order:
        ci = conv[i]
        dominated = False
        for j in front:
            cj = conv[j]
            if all(x <= y for x, y in zip(cj, ci, strict=True)) and cj != ci:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front)


def _hv2(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Exact 2-D hypervolume of minimisation points against ``ref``."""
    pts = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    volume = 0.0
    best_y = ref[1]
    for x, y in pts:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


def hypervolume(
    points: Sequence[Sequence[float]], senses: Sequence[Sense], reference: Sequence[float]
) -> float:
    """Exact hypervolume dominated by ``points`` up to ``reference`` (2 or 3 objectives).

    ``reference`` is in the objectives' own units (e.g. score 0.0, cost 10.0, p95 5000.0).
    """
    _check(reference, senses)
    if len(senses) not in (2, 3):
        raise ValidationFailed(
            f"hypervolume is exact for 2 or 3 objectives, got {len(senses)}; drop objectives"
        )
    ref = _as_min(reference, senses)
    conv: list[tuple[float, ...]] = []
    for p in points:
        _check(p, senses)
        c = _as_min(p, senses)
        if any(math.isnan(v) for v in c):
            continue
        if all(v < r for v, r in zip(c, ref, strict=True)):
            conv.append(c)
    if not conv:
        return 0.0
    if len(senses) == 2:
        return _hv2([(c[0], c[1]) for c in conv], (ref[0], ref[1]))
    # three objectives: slice along z; between consecutive z levels the dominated 2-D area is
    # that of every point whose z is at or below the slice's lower bound.
    conv.sort(key=lambda c: c[2])
    volume = 0.0
    active: list[tuple[float, float]] = []
    for k, c in enumerate(conv):
        active.append((c[0], c[1]))
        z_next = conv[k + 1][2] if k + 1 < len(conv) else ref[2]
        depth = z_next - c[2]
        if depth > 0:
            volume += _hv2(active, (ref[0], ref[1])) * depth
    return volume
