"""The `word-count-between` scorer."""

from __future__ import annotations

from typing import Any

from podium.evals.scorers import Score, Scorer, ScorerConfigError
from podium.evals.scorers.base import text_of


class WordCountBetween(Scorer):
    """The output has between ``min`` and ``max`` words (inclusive)."""

    type = "word-count-between"
    direction = None
    verdict = True

    def __init__(self, *, min: int = 0, max: int, name: str | None = None, weight: float = 1.0,
                 invert: bool = False) -> None:
        super().__init__(name=name, weight=weight, invert=invert)
        if not 0 <= min <= max:
            raise ScorerConfigError(f"word-count-between: need 0 <= min <= max, got min={min!r}, max={max!r}")
        self.min, self.max = min, max
        self._declare(["output"])

    def compute(self, output: Any) -> Score:
        n = len(text_of(output).split())
        ok = self.min <= n <= self.max
        return Score(float(n), passed=ok, explanation=f"{n} words{'' if ok else ', not'} in {self.min}..{self.max}")
