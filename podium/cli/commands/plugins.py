"""`podium plugins list`: the loaded plugins (built-ins and installed packages) and what each registered."""

from __future__ import annotations

import json

import typer

plugins_app = typer.Typer(help="Plugins: scorers, gateway providers and more from pip packages (docs/plugins.md).",
                          no_args_is_help=True)


@plugins_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the loaded plugins: name, version (or built-in), hooks implemented and what each registered."""
    from podium.plugins import list_plugins

    infos = list_plugins()
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    for i in infos:
        typer.echo(f"{i.name} {i.version}  ({i.module})")
        typer.echo(f"  hooks: {', '.join(i.hooks) or '-'}")
        for kind, names in i.registered.items():
            typer.echo(f"  {kind}: {', '.join(names)}")
