"""The contract between the worker and the periodic jobs it runs.

A job is anything with a ``name``, an ``interval_s`` and a ``run_once()`` that does one
bounded round of work (claim a batch, evaluate rules, compute drift) and returns how many
things it handled. The worker (:mod:`podium.monitor.worker`) calls ``run_once`` again at once
when the last round did something and after ``interval_s`` when it did nothing, catches and
logs whatever a round raises, and stops between rounds. Jobs must be safe to run in several
worker processes at once (the job queue or a lease makes them so).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Job"]


@runtime_checkable
class Job(Protocol):
    name: str
    interval_s: float

    def run_once(self) -> int:
        """One bounded round of work; the number of things handled (0: idle)."""
        ...
