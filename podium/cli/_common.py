"""Helpers shared by CLI commands: settings, the store, output."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import typer
from rich.console import Console

from podium.config import Settings, read_keys_file
from podium.errors import ConfigurationError, PodiumError

if TYPE_CHECKING:
    from podium.store import Store

__all__ = ["api_call", "api_client", "cli_keys", "console", "embedded_server", "err_console", "experiments_client",
           "load_rules", "on_server", "open_store", "print_json", "server_client", "server_extra_missing"]

T = TypeVar("T")

# soft_wrap: a line longer than the terminal is left for the terminal to wrap, never broken
# by rich, so paths, ids, keys and URLs stay copyable (and tests pass at COLUMNS=80 or no TTY).
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def server_extra_missing(exc: ImportError) -> typer.Exit:
    err_console.print(
        f"[red]This command needs the server extra ({exc.name} is missing):[/] pip install 'podium\\[server]'"
    )
    return typer.Exit(2)


def open_store(settings: Settings) -> Store:
    try:
        from podium.store import Store
    except ImportError as e:
        raise server_extra_missing(e)
    return Store.from_url(settings.resolved_database_url, columnar_url=settings.resolved_clickhouse_url)


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def cli_keys(settings: Settings) -> tuple[str | None, str | None]:
    """``(public, secret)``: the environment's keys, else the default keys file `podium up` wrote."""
    public, secret = settings.public_key, settings.secret_key
    if not secret:
        keys = read_keys_file(settings.default_keys_file)
        public, secret = keys.get("PODIUM_PUBLIC_KEY"), keys.get("PODIUM_SECRET_KEY")
    return public, secret


@contextlib.contextmanager
def experiments_client(base_url: str, public: str | None, secret: str | None) -> Iterator[Any]:
    """A ``podium.Podium`` for running suites and experiments against the server at ``base_url``,
    shut down on exit. Judge scorers (llm-rubric & co) call the gateway with the environment's
    ``PODIUM_BASE_URL`` and keys, so those are set to the same server."""
    import podium

    os.environ["PODIUM_BASE_URL"] = base_url
    if secret:
        os.environ["PODIUM_SECRET_KEY"] = secret
    if public:
        os.environ["PODIUM_PUBLIC_KEY"] = public
    sdk = podium.Podium(base_url=base_url, public_key=public, secret_key=secret, flush_interval=0.2)
    try:
        yield sdk
    finally:
        sdk.shutdown(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def embedded_server(settings: Settings) -> Iterator[tuple[str, str | None, str]]:
    """A Podium server in this process (the store at PODIUM_DATABASE_URL or $PODIUM_HOME) on a
    free 127.0.0.1 port, for ``--local``: ``(base_url, public_key, secret_key)``."""
    try:
        import uvicorn

        from podium.server.app import create_app
        from podium.server.bootstrap import ensure_default_project
        from podium.store import Store
    except ImportError as e:
        raise server_extra_missing(e)
    store = Store.from_url(settings.resolved_database_url, columnar_url=settings.resolved_clickhouse_url)
    default = ensure_default_project(store, settings)
    public, secret = default.public_key, default.secret_key
    if not secret:
        project = store.projects.list_projects()[0]
        new = store.projects.create_key(project.id, role="member", note="podium eval --local")
        public, secret = new.key.public_key, new.secret_key
    app = create_app(settings, store=store)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True, name="podium-embedded")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigurationError("the embedded server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", public, secret
    finally:
        server.should_exit = True
        thread.join(15)
        store.close()


def on_server(settings: Settings, go: Callable[[str, str | None, str | None], T], *, local: bool,
              fail: Callable[[str], typer.Exit]) -> T:
    """``go(base_url, public_key, secret_key)`` against an embedded server on this machine's store
    (``--local``, :func:`embedded_server`) or the server at PODIUM_BASE_URL with :func:`cli_keys`.
    A configuration error (a suite's too) raises ``fail(message)``, any other Podium error
    ``fail("code: message")``; what ``go`` raises otherwise (``typer.Exit``, interrupts) passes."""
    try:
        if local:
            with embedded_server(settings) as (url, pk, sk):
                return go(url, pk, sk)
        public, secret = cli_keys(settings)
        return go(settings.base_url.rstrip("/"), public, secret)
    except ConfigurationError as e:
        raise fail(e.message) from None
    except PodiumError as e:
        raise fail(f"{e.code}: {e.message}") from None


def server_client(settings: Settings | None = None, *, timeout: float | httpx.Timeout = 30) -> httpx.Client:
    """A client for the running server, with the key from the environment or the default keys
    file; ``ConfigurationError`` when there is no key (``api_client`` turns that into exit 2)."""
    s = settings or Settings()
    public, secret = cli_keys(s)
    if not secret:
        raise ConfigurationError("no API key: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY (`make up` prints them) "
                                 "or keep them in the default keys file")
    auth = httpx.BasicAuth(public, secret) if public else None
    headers = {} if public else {"Authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=s.base_url, auth=auth, headers=headers, timeout=timeout)


def api_client(settings: Settings | None = None) -> httpx.Client:
    """:func:`server_client` for a command: no key is exit 2 with the fix."""
    try:
        return server_client(settings)
    except ConfigurationError as e:
        err_console.print(f"[red]{e.message}[/]")
        raise typer.Exit(2)


def api_call(method: str, path: str, **kw: Any) -> Any:
    """Call the REST API; print the server's error message and exit 1 on failure."""
    try:
        with api_client() as c:
            r = c.request(method, path, **kw)
    except httpx.HTTPError as e:
        err_console.print(f"[red]cannot reach the server:[/] {e}. Is `podium up` running at PODIUM_BASE_URL?")
        raise typer.Exit(1)
    if r.status_code >= 400:
        try:
            msg = r.json()["error"]["message"]
        except Exception:
            msg = r.text
        err_console.print(f"[red]error {r.status_code}:[/] {msg}")
        raise typer.Exit(1)
    return r.json() if r.content else None


def load_rules(path: Path) -> list[dict[str, Any]]:
    """The rules in a YAML or JSON file: one rule (a mapping), a list of them, or ``{rules: [...]}``
    (``podium alerts create``, ``podium evaluators create``); a clear message and exit 2 otherwise."""
    try:
        text = path.read_text()
    except OSError as e:
        err_console.print(f"[red]cannot read {path}:[/] {e.strerror}")
        raise typer.Exit(2)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:
        err_console.print(f"[red]{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}:[/] {e}")
        raise typer.Exit(2)
    if isinstance(data, dict) and isinstance(data.get("rules"), list):
        data = data["rules"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(x, dict) for x in items):
        err_console.print(f"[red]{path}:[/] expected a rule (a mapping), a list of rules or {{rules: [...]}}")
        raise typer.Exit(2)
    return items
