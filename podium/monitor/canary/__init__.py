"""Canary deployments (issue 15 item 6): a gateway alias split between two versions of a
registered model, stepped 5% -> 25% -> 50% -> 100% while live gates pass (:mod:`.gates`), rolled
back with an alert on a breach, promoted at the end (:mod:`.controller`), checked by the worker's
:class:`~podium.monitor.canary.job.CanaryJob`. User docs: docs/canary.md."""

from __future__ import annotations

from podium.monitor.canary.controller import DEFAULT_STEPS, CanaryController, check_steps
from podium.monitor.canary.gates import Gates, judge, measure
from podium.monitor.canary.job import CanaryJob

__all__ = ["DEFAULT_STEPS", "CanaryController", "CanaryJob", "Gates", "check_steps", "judge", "measure"]
