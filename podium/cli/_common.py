"""Helpers shared by CLI commands: settings, the store, output."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import typer
from rich.console import Console

from podium.config import Settings, read_keys_file
from podium.errors import ConfigurationError

if TYPE_CHECKING:
    from podium.store import Store

__all__ = ["api_call", "api_client", "cli_keys", "console", "err_console", "experiments_client", "load_rules",
           "open_store", "print_json", "server_client", "server_extra_missing"]

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
    return Store.from_url(settings.resolved_database_url)


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
