"""The worker's online evaluation jobs: the producer and the evaluator (a queue consumer)."""

from __future__ import annotations

import asyncio
from typing import Any

from podium.config import Settings
from podium.monitor.jobs import Job
from podium.monitor.online.evaluator import OnlineEvaluator
from podium.monitor.online.judge import GatewayJudges
from podium.monitor.online.producer import KIND, OnlineEvalProducer
from podium.monitor.queue.base import JobQueue
from podium.store import Store

__all__ = ["LEASE_S", "online_jobs"]

#: Seconds a claimed batch stays leased by default (extended while judges run); a killed worker's
#: batch comes back after this. ``PODIUM_ONLINE_EVAL_LEASE_S`` sets it.
LEASE_S = 300.0


def online_jobs(store: Store, settings: Settings, gateway: Any, *, queue: JobQueue,
                worker_id: str | None = None) -> list[Job]:
    """Called by ``build_jobs`` on the gateway's event loop (kept for the judges' calls)."""
    from podium.monitor.worker import QueueConsumer  # the worker lists these jobs: import it late

    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    judges = (GatewayJudges(gateway, max_concurrency=settings.online_eval_judge_concurrency, loop=loop)
              if gateway is not None else None)
    executor = None
    if settings.executor == "ray":  # backfill batches' deterministic scorers as Ray tasks (docs/ray.md)
        from podium.executor import get_executor

        executor = get_executor("ray", address=settings.ray_address)
    evaluator = OnlineEvaluator(store, judges, judge_threads=max(8, settings.online_eval_judge_concurrency),
                                queue=queue, lease_s=settings.online_eval_lease_s, executor=executor)
    return [
        OnlineEvalProducer(store, queue),
        QueueConsumer(queue, KIND, evaluator.handle, name="online-eval", batch=settings.online_eval_batch,
                      lease_s=settings.online_eval_lease_s, worker_id=worker_id),
    ]
