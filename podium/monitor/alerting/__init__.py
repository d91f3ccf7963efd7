"""Alert rules: pure conditions (:mod:`.conditions`), one rule's evaluation and state machine
(:mod:`.evaluator`) and the worker job that evaluates due rules and sends through the channels
of :mod:`podium.alerts` (:mod:`.job`). User docs: docs/alerts.md."""

from __future__ import annotations

from podium.monitor.alerting.conditions import KINDS, OPS, Outcome
from podium.monitor.alerting.evaluator import Decision, Source, StoreSource, decide, measure
from podium.monitor.alerting.job import Alerting, AlertJob

__all__ = ["KINDS", "OPS", "AlertJob", "Alerting", "Decision", "Outcome", "Source", "StoreSource", "decide",
           "measure"]
