"""The attack-success rate's confidence interval: Wilson's score interval for a binomial
proportion. Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 and n
successes, which are the usual red-team results (Brown, Cai & DasGupta 2001 recommend it for
small n). ``podium.evals.stats`` bootstraps means; a rate of k in n needs no resampling."""

from __future__ import annotations

import math

__all__ = ["wilson"]

_Z = {0.90: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """``(low, high)`` of the Wilson score interval; ``(None, None)`` when ``n`` is 0."""
    if n <= 0:
        return None, None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    z = _Z.get(round(confidence, 2))
    if z is None:
        from statistics import NormalDist

        z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
