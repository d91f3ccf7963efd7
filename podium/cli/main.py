"""The `podium` command."""

from __future__ import annotations

import typer

from podium.cli.commands.projects import keys_app, projects_app
from podium.cli.commands.server import db_app, up
from podium.cli.commands.traces import traces_app

__all__ = ["app", "main"]

app = typer.Typer(
    help="Podium: self-hosted LLMOps. Start with `podium up`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("up")(up)
app.add_typer(db_app, name="db")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
app.add_typer(traces_app, name="traces")


def main() -> None:
    app()
