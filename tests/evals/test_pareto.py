"""Pareto fronts, dominance and exact hypervolume against hand-computed values."""

from __future__ import annotations

import itertools
import random

import pytest

from podium.errors import ValidationFailed
from podium.evals.pareto import SWEEP_SENSES, dominates, hypervolume, pareto_front


def test_dominates_respects_senses() -> None:
    assert dominates([0.9, 1.0, 100], [0.8, 1.0, 100], SWEEP_SENSES)
    assert dominates([0.8, 0.5, 100], [0.8, 1.0, 100], SWEEP_SENSES)
    assert not dominates([0.8, 1.0, 100], [0.8, 1.0, 100], SWEEP_SENSES)  # equal: no
    assert not dominates([0.9, 2.0, 100], [0.8, 1.0, 100], SWEEP_SENSES)  # a trade-off
    assert dominates([1, 1], [2, 2], ["min", "min"])
    assert not dominates([2, 2], [1, 1], ["min", "min"])


def test_dominates_rejects_mismatched_lengths_and_senses() -> None:
    with pytest.raises(ValidationFailed, match="one sense"):
        dominates([1, 2], [1, 2, 3], ["min", "min"])
    with pytest.raises(ValidationFailed, match="'max' or 'min'"):
        dominates([1], [2], ["up"])  # type: ignore[list-item]


def test_pareto_front_two_objectives() -> None:
    # (score max, cost min)
    pts = [[0.9, 10.0], [0.8, 5.0], [0.7, 6.0], [0.9, 12.0], [0.5, 1.0], [0.8, 5.0]]
    # 0.7@6 is dominated by 0.8@5; 0.9@12 by 0.9@10; the duplicates 0.8@5 both stay
    assert pareto_front(pts, ["max", "min"]) == [0, 1, 4, 5]
    assert pareto_front([], ["max", "min"]) == []


def test_pareto_front_matches_brute_force_three_objectives() -> None:
    rng = random.Random(7)
    pts = [[rng.random(), rng.random() * 10, rng.random() * 1000] for _ in range(60)]
    brute = [
        i
        for i, p in enumerate(pts)
        if not any(dominates(q, p, SWEEP_SENSES) for j, q in enumerate(pts) if j != i)
    ]
    assert pareto_front(pts, SWEEP_SENSES) == brute


def test_nan_counts_as_worst() -> None:
    assert pareto_front([[float("nan"), 1.0], [0.5, 1.0]], ["max", "min"]) == [1]


def test_hypervolume_two_objectives_hand_computed() -> None:
    # minimise both, reference (4, 4): points (1,3), (2,2), (3,1) -> staircase area 3+2+1 = 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], ["min", "min"], [4, 4]) == pytest.approx(6.0)
    # a dominated point and a point outside the reference add nothing
    assert hypervolume(
        [[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], ["min", "min"], [4, 4]
    ) == pytest.approx(6.0)
    # max score, min cost: score 0.8 cost 2 with reference score 0 cost 10 -> 0.8 * 8
    assert hypervolume([[0.8, 2.0]], ["max", "min"], [0.0, 10.0]) == pytest.approx(6.4)
    assert hypervolume([], ["min", "min"], [1, 1]) == 0.0


def test_hypervolume_three_objectives_hand_computed() -> None:
    # one box 1x2x3
    assert hypervolume([[0, 0, 0]], ["min"] * 3, [1, 2, 3]) == pytest.approx(6.0)
    # two boxes from (0,0,1) and (1,1,0) with reference (2,2,2):
    # box A = 2*2*1 = 4, box B = 1*1*2 = 2, overlap = 1*1*1 = 1 -> 5
    assert hypervolume([[0, 0, 1], [1, 1, 0]], ["min"] * 3, [2, 2, 2]) == pytest.approx(5.0)
    # the sweep objectives' own senses: score 1.0 (ref 0), cost 1 (ref 3), p95 100 (ref 300)
    assert hypervolume([[1.0, 1.0, 100.0]], SWEEP_SENSES, [0.0, 3.0, 300.0]) == pytest.approx(
        1.0 * 2.0 * 200.0
    )


def test_hypervolume_three_objectives_matches_grid_count() -> None:
    """Against a brute-force count of unit cells on an integer lattice."""
    rng = random.Random(3)
    pts = [[rng.randint(0, 5), rng.randint(0, 5), rng.randint(0, 5)] for _ in range(12)]
    ref = [6, 6, 6]
    cells = sum(
        1
        for x, y, z in itertools.product(range(6), repeat=3)
        if any(p[0] <= x and p[1] <= y and p[2] <= z for p in pts)
    )
    assert hypervolume(pts, ["min"] * 3, ref) == pytest.approx(float(cells))


def test_hypervolume_rejects_other_dimensions() -> None:
    with pytest.raises(ValidationFailed, match="2 or 3"):
        hypervolume([[1]], ["min"], [2])
