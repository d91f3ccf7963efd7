"""The one result shape every explanation method returns (docs/explain.md).

``{method, target, segments: [{text, start, end, weight}], base_value?, seconds, evaluations}``:
``segments`` cover the explained text in order; ``start``/``end`` are character offsets into it
(for a chat, into the content of message ``message``); ``weight`` is how much the segment pushed
the explained number up (positive) or down (negative), in that number's units. ``base_value`` is
the number with everything masked (SHAP, LIME's intercept) when the method has one. Extra,
method-specific parts go in ``extra`` (occlusion's per-token log-probabilities of the response,
IG's convergence delta, ...)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METHODS", "Explanation", "Segment"]

METHODS: tuple[str, ...] = ("occlusion", "integrated-gradients", "shap", "lime")


def _num(x: float) -> float:
    """A JSON-safe float (NaN/inf become 0.0), rounded to 6 significant digits."""
    x = float(x)
    if not math.isfinite(x):
        return 0.0
    return float(f"{x:.6g}")


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of the explained text and its weight."""

    text: str
    start: int
    end: int
    weight: float
    message: int | None = None  # chats: the index of the message the offsets point into

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"text": self.text, "start": self.start, "end": self.end, "weight": _num(self.weight)}
        if self.message is not None:
            d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True)
class Explanation:
    method: str
    target: dict[str, Any]
    segments: list[Segment]
    seconds: float
    evaluations: int
    base_value: float | None = None
    value: float | None = None  # the explained number on the whole, unmasked input
    extra: dict[str, Any] = field(default_factory=dict)

    def top(self, n: int = 5) -> list[Segment]:
        """The ``n`` segments with the largest positive weight, largest first."""
        return sorted(self.segments, key=lambda s: s.weight, reverse=True)[:n]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "target": self.target,
                             "segments": [s.to_dict() for s in self.segments],
                             "seconds": round(self.seconds, 3), "evaluations": self.evaluations}
        if self.base_value is not None:
            d["base_value"] = _num(self.base_value)
        if self.value is not None:
            d["value"] = _num(self.value)
        if self.extra:
            d["extra"] = self.extra
        return d
