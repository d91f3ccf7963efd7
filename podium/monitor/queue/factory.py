"""The queue the settings ask for: ``make_queue(settings, store)``."""

from __future__ import annotations

from podium.config import Settings
from podium.errors import ConfigurationError
from podium.monitor.queue.base import JobQueue
from podium.store import Store

__all__ = ["make_queue"]


def make_queue(settings: Settings, store: Store) -> JobQueue:
    """``PODIUM_QUEUE=database`` (default): the store's ``monitor_job`` table; ``redis``: streams
    at ``PODIUM_REDIS_URL`` (a clear error when it is not set)."""
    if settings.queue == "redis":
        if not settings.redis_url:
            raise ConfigurationError("PODIUM_QUEUE=redis needs PODIUM_REDIS_URL (e.g. redis://127.0.0.1:6379/0); "
                             "set it, or use PODIUM_QUEUE=database")
        from podium.monitor.queue.redis import RedisQueue

        return RedisQueue.from_url(settings.redis_url)
    return store.jobs
