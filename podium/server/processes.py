"""Several server processes on one address: ``podium up --workers N`` (PODIUM_SERVER_WORKERS).

The parent binds the listening socket once, then forks N children; each child opens its own
store (no migrations: the parent ran them), builds the app and serves the shared socket with
uvicorn, so the kernel spreads connections over the processes. Each child has its own ingest
writer, so request parsing and validation run on every core.

- PostgreSQL: the writers are independent (upserts are idempotent, the COPY staging table is
  per connection).
- SQLite: one writer at a time across processes. The ingest writers take an exclusive
  ``flock`` on ``<database file>-ingest.lock`` around each transaction, so a waiting writer
  wakes as soon as the other commits (SQLite's own busy handler polls with sleeps of up to
  100 ms); every other write still waits through ``busy_timeout``.
- OTLP/gRPC and the embedded background worker (``PODIUM_WORKER_EMBEDDED``) run in child 0
  only (one port, one receiver; the same jobs as with one process).

The parent forwards SIGINT/SIGTERM to the children as SIGTERM (each drains its ingest queue
before exiting: an acknowledged item is stored), waits for them, and starts a new child in
place of one that died unexpectedly (giving up, and stopping the others, after
``MAX_QUICK_DEATHS`` deaths within ``QUICK_DEATH_S`` of their start in a row).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podium.config import Settings

__all__ = ["MAX_QUICK_DEATHS", "bind_socket", "ingest_lock_path", "serve_processes"]

logger = logging.getLogger(__name__)

MAX_QUICK_DEATHS = 3
QUICK_DEATH_S = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that the forked children inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def ingest_lock_path(database_url: str) -> str | None:
    """``<file>-ingest.lock`` for a SQLite file database, else None (nothing to serialize)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return f"{url.database}-ingest.lock"


def _child(settings: Settings, index: int, sock: socket.socket) -> None:
    import uvicorn

    from podium.server.app import create_app
    from podium.store import Store

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # uvicorn installs its own while serving
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if index > 0:  # one embedded background worker, as with one process (more: `podium worker`)
        settings = settings.model_copy(update={"worker_embedded": False})
    url = settings.resolved_database_url
    store = Store.from_url(url, migrate=False, columnar_url=settings.resolved_clickhouse_url)
    lock = ingest_lock_path(url)
    if lock is not None and hasattr(store.ingest, "process_lock"):
        store.ingest.process_lock = lock
    app = create_app(settings, store=store, freeze_gc=True, otlp_grpc=index == 0)
    config = uvicorn.Config(app, access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def serve_processes(settings: Settings, workers: int) -> int:
    """Serve with ``workers`` forked processes until SIGINT/SIGTERM; the exit status."""
    sock = bind_socket(settings.host, settings.port)
    children: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
    stopping = False

    def spawn(index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns into the parent's code
            code = 0
            try:
                _child(settings, index, sock)
            except BaseException:
                logger.exception("server process %d failed", index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = (index, time.monotonic())

    def stop(_sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)  # SIGTERM: a second SIGINT would make uvicorn skip the drain
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    quick_deaths = 0
    status = 0
    try:
        for i in range(workers):
            spawn(i)
        while children:
            try:
                pid, wstatus = os.wait()
            except ChildProcessError:
                break
            entry = children.pop(pid, None)
            if entry is None or stopping:
                continue
            index, started = entry
            code = os.waitstatus_to_exitcode(wstatus)
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH_S else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                logger.error(
                    "server process %d exited (%s) %d times in a row right after starting; stopping",
                    index,
                    code,
                    quick_deaths,
                )
                status = 1
                stop(signal.SIGTERM, None)
                continue
            logger.warning("server process %d (pid %d) exited (%s); starting a new one", index, pid, code)
            spawn(index)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        sock.close()
    return status
