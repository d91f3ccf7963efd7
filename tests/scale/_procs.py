"""Real Podium processes for the scale tests: ``podium up``, ``podium gateway`` and ``podium
worker`` started as subprocesses on free ports, sharing one PostgreSQL schema and one Redis.

    cluster = Cluster(tmp_path, db_url=..., redis_url=..., gateway_config=...)
    a, b = cluster.start("server"), cluster.start("server")
    g = cluster.start("gateway")
    cluster.wait_ready()              # every started process answers (health, or /metrics for workers)
    ...
    cluster.stop()                    # SIGTERM, then SIGKILL after a grace period

Each process logs to ``<tmp>/<name>.log`` (shown when it dies or does not start). Nothing here
mocks Podium: the processes are the CLI entry points a deployment runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["PG_URL", "REDIS_URL", "Cluster", "Proc", "free_port", "fresh_pg_schema", "tail"]

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("PODIUM_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


class fresh_pg_schema:
    """A new, EMPTY PostgreSQL schema (not migrated: the processes migrate it, all at once) and
    its URL; dropped on exit."""

    def __init__(self) -> None:
        self.schema = f"podium_scale_{uuid.uuid4().hex[:10]}"
        self.url = f"{PG_URL}?options=-csearch_path%3D{self.schema}"
        self._admin: Any = None

    def __enter__(self) -> str:
        from sqlalchemy import text

        from podium.store.engine import make_engine

        self._admin = make_engine(PG_URL)
        try:
            with self._admin.begin() as c:
                c.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        except Exception as exc:  # environment problem: say how to fix it
            raise RuntimeError(f"PostgreSQL is not usable at {PG_URL} ({exc}); start it or set "
                               "PODIUM_TEST_PG_URL") from exc
        return self.url

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import text

        with self._admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self._admin.dispose()


@dataclass
class Proc:
    name: str
    kind: str  # server | gateway | worker
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def probe(self) -> bool:
        """Answers: the health route (server, gateway) or the metrics port (worker)."""
        path = "/metrics" if self.kind == "worker" else "/api/v1/health"
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush (a crash)."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM (a clean stop: queued writes are flushed), SIGKILL after ``timeout``."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait(10)
        return int(self.popen.returncode)


@dataclass
class Cluster:
    """Podium processes sharing one database and one Redis (see the module docstring)."""

    tmp: Path
    db_url: str
    redis_url: str
    gateway_config: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        from cryptography.fernet import Fernet

        # Every process sharing a database needs the same encryption key (docs/deploy.md).
        self.encryption_key = Fernet.generate_key().decode()

    def base_env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "OTEL_"))}
        env.update({
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "PODIUM_HOME": str(self.tmp / name),
            "PODIUM_DATABASE_URL": self.db_url,
            "PODIUM_REDIS_URL": self.redis_url,
            "PODIUM_ENCRYPTION_KEY": self.encryption_key,
            "PODIUM_WORKER_EMBEDDED": "false",  # the workers are their own processes
            "PODIUM_OTLP_GRPC_PORT": "0",  # several servers on one host: no fixed gRPC port
            "PODIUM_GATEWAY_CACHE": "off",  # every request reaches the limits and the upstream
            "PODIUM_LOCAL_THREADS": "1",
            "ORT_DISABLE_TELEMETRY": "1",
        })
        if self.gateway_config is not None:
            env["PODIUM_GATEWAY_CONFIG"] = str(self.gateway_config)
        env.update(self.env)
        return env

    def start(self, kind: str, *, env: dict[str, str] | None = None) -> Proc:
        """Start ``podium up`` (kind ``server``), ``podium gateway`` or ``podium worker``; returns at
        once (see :meth:`wait_ready`)."""
        n = sum(1 for p in self.procs if p.kind == kind) + 1
        name = f"{kind}-{n}"
        port = free_port()
        args = {
            "server": ["up", "--host", "127.0.0.1", "--port", str(port)],
            "gateway": ["gateway", "--host", "127.0.0.1", "--port", str(port)],
            "worker": ["worker", "--metrics-port", str(port)],
        }[kind]
        log = self.tmp / f"{name}.log"
        (self.tmp / name).mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            popen = subprocess.Popen([sys.executable, "-m", "podium.cli", *args], cwd=ROOT,
                                     env={**self.base_env(name), **(env or {})},
                                     stdout=fh, stderr=subprocess.STDOUT)
        p = Proc(name, kind, popen, port, log)
        self.procs.append(p)
        return p

    def wait_ready(self, procs: list[Proc] | None = None, timeout: float = 60.0) -> None:
        """Wait until every process (default: all started) answers; fail with its log if one dies."""
        waiting = list(procs if procs is not None else self.procs)
        deadline = time.monotonic() + timeout
        while waiting:
            for p in list(waiting):
                if not p.alive():
                    raise AssertionError(f"{p.name} exited with {p.popen.returncode}:\n{tail(p.log)}")
                if p.probe():
                    waiting.remove(p)
            if not waiting:
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{tail(p.log)}" for p in waiting)
                raise AssertionError(f"not ready after {timeout}s: {[p.name for p in waiting]}\n{logs}")
            time.sleep(0.2)

    def of(self, kind: str) -> list[Proc]:
        return [p for p in self.procs if p.kind == kind and p.alive()]

    def stop(self) -> None:
        for p in self.procs:
            if p.alive():
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.popen.wait(20)
            except subprocess.TimeoutExpired:
                p.popen.send_signal(signal.SIGKILL)
                p.popen.wait(10)
