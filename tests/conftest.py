"""Shared fixtures: a fresh PODIUM_HOME per test, the store on SQLite and PostgreSQL, a real server.

``--db sqlite`` (default), ``--db postgresql`` or ``--db all``: every test that uses the
``store`` fixture (directly or through ``server``) runs once per selected backend.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported anywhere
# The CI case: no TTY, 80 columns. CLI output must not depend on the terminal (paths never wrapped).
os.environ["COLUMNS"] = "80"

PG_URL = os.environ.get("PODIUM_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default="sqlite", choices=["sqlite", "postgresql", "all"], help="store backends")


# The modules holding the suite's longest tests (`--durations`), longest first: collected first, so
# that `-n 2` starts them at once instead of ending on one of them while the other worker idles (tune/ and
# ui/ come last alphabetically). Whole modules move, keeping module fixtures to one setup per worker; every
# other test keeps its place. A name that no longer exists is simply not matched.
HEAVY_FIRST = (
    "tests/server/test_schemathesis.py",
    "tests/tune/test_improve_loop.py",
    "tests/tune/test_gguf_cli.py",
    "tests/tune/test_gguf.py",
    "tests/store/test_columnar_metrics.py",
    "tests/tune/test_trainer.py",
    "tests/scale/test_ray_executor.py",
    "tests/tune/test_sweep_cli.py",
    "tests/explain/test_gradients.py",
    "tests/rag/test_attribution.py",
    "tests/scale/test_processes.py",
    "tests/server/test_crash.py",
    "tests/server/test_workers.py",
    "tests/tune/test_tune_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: the rest keep order


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        opt = metafunc.config.getoption("--db")
        backends = ["sqlite", "postgresql"] if opt == "all" else [opt]
        if metafunc.definition.get_closest_marker("one_db"):
            backends = backends[:1]  # browser and CLI tests: the data paths they drive run on both elsewhere
        metafunc.parametrize("db_backend", backends)


@pytest.fixture(autouse=True)
def podium_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in list(os.environ):
        if k.startswith("PODIUM_") or k.startswith("OTEL_"):
            monkeypatch.delenv(k, raising=False)
    home = tmp_path / "podium-home"
    monkeypatch.setenv("PODIUM_HOME", str(home))
    return home


# --- store ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from podium.store.engine import make_engine
    from podium.store.migrate import upgrade

    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """One migrated schema per test worker; tables are emptied between tests (``pg_empty``)."""
    from sqlalchemy import text

    from podium.store.engine import make_engine
    from podium.store.migrate import upgrade

    schema = f"podium_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    eng = make_engine(url)
    upgrade(eng)
    eng.dispose()
    yield url
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if db_backend == "sqlite":
        tpl: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "podium.db"
        shutil.copy(tpl, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_schema_url")
    request.getfixturevalue("pg_empty")()
    return url


@pytest.fixture(scope="session")
def pg_empty(pg_schema_url: str) -> Iterator[Callable[[], None]]:
    """Empties every table of the worker's schema. One EXISTS query finds the tables a test wrote to, then
    ``DELETE FROM`` each, children first. The same end state as the ``TRUNCATE ... CASCADE`` of every table
    this replaced (sequences are not reset by either), without its cost: TRUNCATE makes new files for every
    table it reaches, and CASCADE from ``projects`` reaches most of them (~0.1-1.2 s a test, against ~3 ms)."""
    from sqlalchemy import exc, text

    from podium.store.engine import make_engine
    from podium.store.tables import metadata

    names = [t.name for t in metadata.sorted_tables]  # parents before children
    probe = text(" UNION ALL ".join(f"SELECT '{n}' WHERE EXISTS (SELECT 1 FROM \"{n}\")" for n in names))
    eng = make_engine(pg_schema_url)

    def empty() -> None:
        try:
            with eng.begin() as c:
                full = {r[0] for r in c.execute(probe)}
                for n in reversed(names):
                    if n in full:
                        c.execute(text(f'DELETE FROM "{n}"'))
        except exc.IntegrityError:  # a reference cycle the order above cannot satisfy
            with eng.begin() as c:
                c.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " CASCADE"))

    yield empty
    eng.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    from podium.store import Store

    s = Store.from_url(db_url, migrate=False)
    yield s
    s.close()


@dataclass
class ProjectKeys:
    project_id: str
    public_key: str
    secret_key: str

    def basic(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.public_key, self.secret_key)


def make_project(store: Any, name: str, role: str = "admin") -> ProjectKeys:
    p = store.projects.create_project(name)
    k = store.projects.create_key(p.id, role=role)
    return ProjectKeys(p.id, k.key.public_key, k.secret_key)


@pytest.fixture
def project(store: Any) -> ProjectKeys:
    return make_project(store, "test-project")


# --- a real server --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def _prompt_server_class() -> type:
    """``uvicorn.Server`` that stops when asked instead of at its next 0.1 s tick, and whose shutdown
    waits for open connections and running request tasks by polling every 5 ms instead of sleeping a
    fixed 0.1 s first and then polling every 0.1 s. The same shutdown sequence (stop accepting, close
    connections, wait for them and for request tasks, then the app's lifespan shutdown); ~0.15 s less
    per server stopped, and the suite stops ~800 of them."""
    import asyncio

    import uvicorn

    class PromptServer(uvicorn.Server):
        _wake: asyncio.Event | None = None
        _loop: asyncio.AbstractEventLoop | None = None

        def wake(self) -> None:
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None and not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)

        async def main_loop(self) -> None:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864000
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.1)  # uvicorn: asyncio.sleep(0.1)
                except TimeoutError:
                    pass
                should_exit = await self.on_tick(counter)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()
            await asyncio.sleep(0)
            while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
                await asyncio.sleep(0.005)
            for server in self.servers:
                await server.wait_closed()
            if not self.force_exit:
                await self.lifespan.shutdown()

    return PromptServer


class ServerThread:
    """uvicorn serving create_app() in a background thread on a free port."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="on")
        self.server = _prompt_server_class()(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.wake()
        self.thread.join(15)


@dataclass
class LiveServer:
    url: str
    store: Any
    keys: ProjectKeys
    app: Any
    thread: ServerThread

    def client(self, keys: ProjectKeys | None = None, **kw: Any) -> httpx.Client:
        k = keys or self.keys
        return httpx.Client(base_url=self.url, auth=k.basic(), timeout=30, **kw)


@pytest.fixture
def server(store: Any, project: ProjectKeys) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    settings = Settings()
    app = create_app(settings, store=store)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th)
    th.stop()


# --- a fake model upstream (a real HTTP server speaking OpenAI's protocol) ------------------------------


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[Any]:
    from tests.gateway.fake_upstream import FakeUpstream

    up = FakeUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def upstream(upstream_server: Any) -> Any:
    """The module's fake upstream, with its scripts and records reset for this test."""
    upstream_server.reset()
    return upstream_server


# --- the CLI against a live server ----------------------------------------------------------


@pytest.fixture
def cli_env(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """``server``, with the CLI's environment pointing at it (PODIUM_BASE_URL and the keys)."""
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    return server


def run_cli_80(*args: str, long_ok: str | None = None) -> str:
    """``podium ARGS`` as a subprocess, stdout a pipe (no TTY) at COLUMNS=80: exit 0 and no line
    wider than 80 (except lines starting with ``long_ok``: one copyable token, never broken)."""
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    p = subprocess.run([sys.executable, "-m", "podium.cli", *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    too_wide = [line for line in p.stdout.splitlines()
                if len(line) > 80 and not (long_ok and line.startswith(long_ok))]
    assert not too_wide, too_wide
    return p.stdout


# --- small helpers the integration tests share --------------------------------------------------


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """``probe()``'s first truthy value, polling every ``every`` s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver (a real local HTTP server): its URL and the JSON bodies it was sent."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    finally:
        srv.shutdown()
        srv.server_close()
