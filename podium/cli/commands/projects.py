"""`podium projects ...` and `podium keys ...` (local admin: they open the store directly)."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Column, Table

from podium.cli._common import console, err_console, open_store, print_json
from podium.config import Settings
from podium.errors import PodiumError
from podium.governance.audit import cli_actor

__all__ = ["keys_app", "projects_app"]

projects_app = typer.Typer(help="Projects (local admin).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (local admin).", no_args_is_help=True)


def _fail(e: PodiumError) -> typer.Exit:
    err_console.print(f"[red]error:[/] {e.message}")
    return typer.Exit(1)


@projects_app.command("create")
def projects_create(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Create project NAME with an admin key pair (the secret is shown once)."""
    store = open_store(Settings())
    try:
        p = store.projects.create_project(name)
        k = store.projects.create_key(p.id, role="admin", note="created with the project")
        store.audit.append(project_id=p.id, actor=cli_actor(), action="project.create", target_type="project",
                           target_id=p.id, after={"project": asdict(p), "admin_key": k.key.public_key})
    except PodiumError as e:
        raise _fail(e)
    if as_json:
        print_json({"project": asdict(p), "public_key": k.key.public_key, "secret_key": k.secret_key})
        return
    console.print(f"created project [bold]{p.name}[/] ({p.id})")
    console.print(f"  PODIUM_PUBLIC_KEY={k.key.public_key}\n  PODIUM_SECRET_KEY={k.secret_key}")
    console.print("  (the secret is not stored; keep it now)")


@projects_app.command("list")
def projects_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List projects."""
    ps = open_store(Settings()).projects.list_projects()
    if as_json:
        print_json([asdict(p) for p in ps])
        return
    table = Table("name", "id", "created")
    for p in ps:
        table.add_row(p.name, p.id, p.created_at.isoformat(timespec="seconds"))
    console.print(table)


@keys_app.command("create")
def keys_create(
    project: str = typer.Option("default", help="Project name or id."),
    role: str = typer.Option("member", help="admin | member | ingest | viewer | gateway (calls the model gateway only)"),
    note: str = typer.Option(None, help="What the key is for."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key pair for PROJECT (the secret is shown once)."""
    store = open_store(Settings())
    try:
        p = store.projects.get_project(project)
        k = store.projects.create_key(p.id, role=role, note=note)
        store.audit.append(project_id=p.id, actor=cli_actor(), action="key.create", target_type="key",
                           target_id=k.key.public_key, after=asdict(k.key))
    except PodiumError as e:
        raise _fail(e)
    if as_json:
        print_json({**asdict(k.key), "secret_key": k.secret_key})
        return
    console.print(f"PODIUM_PUBLIC_KEY={k.key.public_key}\nPODIUM_SECRET_KEY={k.secret_key}")


@keys_app.command("list")
def keys_list(
    project: str = typer.Option("default", help="Project name or id."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List PROJECT's keys (secrets are never shown again)."""
    store = open_store(Settings())
    try:
        ks = store.projects.list_keys(store.projects.get_project(project).id)
    except PodiumError as e:
        raise _fail(e)
    if as_json:
        print_json([asdict(k) for k in ks])
        return
    table = Table(Column("public key", no_wrap=True, min_width=30), "secret", "role", "note", "created", "revoked")
    for k in ks:
        table.add_row(
            k.public_key,
            k.secret_hint,
            k.role,
            k.note or "",
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(public_key: str) -> None:
    """Revoke the key with PUBLIC_KEY (running servers refuse it within a second)."""
    store = open_store(Settings())
    try:
        k = store.projects.revoke_key(None, public_key)
        store.audit.append(project_id=k.project_id, actor=cli_actor(), action="key.revoke", target_type="key",
                           target_id=k.public_key, after=asdict(k))
    except PodiumError as e:
        raise _fail(e)
    console.print(f"revoked {k.public_key}")
