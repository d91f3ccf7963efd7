"""The shapes of experiment and suite results: what the runner records per item, what a suite
run returns, and what the reports (``report.py``) and ``podium eval run`` read.

TypedDicts, so they stay the plain JSON-ready dicts the recorders send to the server
(``POST /api/v1/experiments/{id}/items``) and the reports dump; mypy checks them where built.
The experiment record itself is the server's (``dict[str, Any]``, docs/api.md).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "DatasetRef",
    "GateVerdict",
    "ItemResult",
    "ScoreEntry",
    "SuiteInfo",
    "SuiteResult",
    "VariantInfo",
    "VariantResult",
]


class ScoreEntry(TypedDict):
    """One scorer's verdict on one item (``ItemResult.scores[name]``): a value, or an error."""

    type: str
    direction: str
    weight: float
    value: Any  # a finite number (or a JSON value a scorer returned); None on error
    passed: bool | None
    error: NotRequired[str]
    error_type: NotRequired[str]
    explanation: NotRequired[str | None]
    metadata: NotRequired[dict[str, Any]]


class ItemResult(TypedDict):
    """One (item, repetition) of a run, as recorded."""

    item_id: str
    repetition: int
    position: int
    input: Any
    expected: Any
    context: Any
    metadata: dict[str, Any] | None
    labels: dict[str, Any] | None
    output: Any
    error: str | None
    error_type: str | None
    trace_id: str | None
    latency_ms: float | None
    cost: Any
    usage: Any
    scores: dict[str, ScoreEntry]
    passed: bool | None
    weighted_score: float | None
    attempts: int


class GateVerdict(TypedDict):
    """One gate's verdict (``suite.evaluate_gates``); the keys after ``detail`` depend on the kind."""

    gate: str
    kind: str
    status: Literal["passed", "failed", "skipped"]
    detail: str
    metric: NotRequired[str]
    value: NotRequired[float | None]
    min: NotRequired[float | None]
    max: NotRequired[float | None]
    stat: NotRequired[str]
    baseline: NotRequired[str | None]
    comparison: NotRequired[dict[str, Any]]


class VariantInfo(TypedDict):
    name: str
    prompt: str
    provider: str
    prompt_text: Any


class VariantResult(TypedDict):
    """One variant (prompt × provider) of a suite run: its experiment, items and gates."""

    variant: VariantInfo
    experiment: dict[str, Any]
    items: list[ItemResult]
    gates: list[GateVerdict]
    passed: bool
    fairness: NotRequired[dict[str, Any]]  # the per-group report of a fairness/BBQ suite (docs/fairness.md)


class SuiteInfo(TypedDict):
    name: str
    path: str | None
    description: str | None
    gates: list[str]


class DatasetRef(TypedDict):
    name: str | None
    version: int | None


class SuiteResult(TypedDict):
    """What ``run_suite`` returns and every report is written from."""

    suite: SuiteInfo
    run_group: str
    server: str
    dataset: DatasetRef
    passed: bool
    started_at: str
    ended_at: str
    duration_s: float
    experiments: list[VariantResult]
