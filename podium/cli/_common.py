"""Helpers shared by CLI commands: settings, the store, output."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from podium.config import Settings

if TYPE_CHECKING:
    from podium.store import Store

__all__ = ["console", "err_console", "open_store", "print_json", "server_extra_missing"]

console = Console()
err_console = Console(stderr=True)


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
