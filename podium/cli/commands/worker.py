"""`podium worker`: run the background jobs (online evaluation, drift, alerts) outside the server.

Scaled setups run the server without its embedded worker and as many of these as needed; they
share the job queue (``PODIUM_QUEUE``), so no job is done twice and a killed worker loses
nothing (its leases run out and another worker takes the jobs)::

    PODIUM_WORKER_EMBEDDED=0 podium up
    podium worker            # x N, on this machine or others sharing the database (and Redis)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from podium.cli._common import console, open_store, server_extra_missing
from podium.config import Settings

if TYPE_CHECKING:
    from podium.gateway.service import Gateway
    from podium.store import Store

__all__ = ["worker"]

logger = logging.getLogger("podium.worker")
T = TypeVar("T")


class _Runtime:
    """What the jobs need besides the store: an event loop in a thread, and on it the gateway
    (judge calls) with the ingest writer behind it (the gateway logs its calls as traces)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        from podium.gateway.service import Gateway
        from podium.server.auth import Authenticator
        from podium.server.gateway_log import GatewayLog
        from podium.server.ingest import Ingester
        from podium.server.state import AppState

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="podium-worker-loop", daemon=True)
        self.ingester = Ingester.from_settings(store.ingest, settings)
        state = AppState(settings=settings, store=store, ingester=self.ingester, auth=Authenticator(store))
        self.gateway_log = GatewayLog(self.ingester, state.prices_for)
        self.gateway: Gateway = Gateway(settings, store, sink=self.gateway_log.record, log_room=self.gateway_log,
                                       prices=state.prices_for, prices_async=state.aprices_for)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the loop (so it may keep ``asyncio.get_running_loop()``) and return its result."""
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(60)

    def start(self) -> None:
        self._thread.start()
        self.ingester.start()

        async def start() -> None:
            self.gateway_log.start()
            await self.gateway.start()

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(60)

    def stop(self) -> None:
        async def stop() -> None:
            await self.gateway.aclose()
            await self.gateway_log.stop()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        except Exception:
            logger.exception("closing the gateway")
        self.ingester.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def worker(
    once: bool = typer.Option(False, "--once", help="Run every job until it has nothing left to do, then exit."),
    metrics_port: int = typer.Option(
        0, "--metrics-port", help="Serve Prometheus metrics (podium_queue_*, podium_worker_*) on this port; 0: off."
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address the metrics port binds to."),
) -> None:
    """Run the background jobs (online evaluation, drift, alerts) until SIGTERM / Ctrl-C.

    Start the server with PODIUM_WORKER_EMBEDDED=0 and run as many workers as needed: they share
    the job queue (PODIUM_QUEUE: database or redis), each job is done once, and the jobs of a
    worker that dies come back to the others when their lease runs out."""
    settings = Settings()
    try:
        from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

        from podium._logging import setup_logging
        from podium.monitor.alerting import metrics as alert_metrics
        from podium.monitor.canary import metrics as canary_metrics
        from podium.monitor.online import metrics as online_eval_metrics
        from podium.monitor.queue.factory import make_queue
        from podium.monitor.queue.metrics import QueueCollector
        from podium.monitor.worker import Worker, build_jobs, default_worker_id
    except ImportError as e:
        raise server_extra_missing(e)
    setup_logging(settings.log_format)
    store = open_store(settings)
    runtime = _Runtime(settings, store)
    http: Any = None
    try:
        queue = make_queue(settings, store)
        runtime.start()
        worker_id = default_worker_id()
        jobs = runtime.call(lambda: build_jobs(store, settings, runtime.gateway, queue=queue, worker_id=worker_id))
        w = Worker(jobs, worker_id=worker_id)
        logger.info("worker %s: queue %s, database %s, jobs: %s", worker_id, settings.queue,
                    store.engine.url.render_as_string(), ", ".join(j.name for j in jobs) or "none")
        if metrics_port:
            registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=registry)
            collector = QueueCollector(queue)
            collector.worker = w
            registry.register(collector)
            online_eval_metrics.register(registry)  # the jobs' own series: podium_online_eval_*, podium_alert_*
            alert_metrics.register(registry)
            canary_metrics.register(registry)
            http = start_http_server(metrics_port, addr=metrics_host, registry=registry)
            logger.info("metrics on http://%s:%d/metrics", metrics_host, metrics_port)
        if once:
            done = w.drain()
            summary = ", ".join(f"{k}: {v}" for k, v in done.items()) or "no jobs"
            console.print(f"drained ({summary}); queue backlog now {queue.stats().backlog}")
        else:
            w.run_forever()
    finally:
        if isinstance(http, tuple):  # prometheus-client >= 0.17 returns (server, thread)
            http[0].shutdown()
        runtime.stop()
        store.close()
    logger.info("worker stopped")
