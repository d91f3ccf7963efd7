"""`podium users ...`: people and their roles (local admin: opens the store directly, like `podium keys`)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.table import Table

from podium.cli._common import console, err_console, open_store, print_json
from podium.config import Settings
from podium.core.roles import USER_ROLES
from podium.errors import NotFound, PodiumError
from podium.governance import invitations, users
from podium.governance.audit import cli_actor
from podium.governance.passwords import hash_password

__all__ = ["users_app"]

users_app = typer.Typer(help="People: accounts, roles, invitations (local admin).", no_args_is_help=True)
_ROLE_HELP = " | ".join(USER_ROLES)


def _fail(e: PodiumError) -> typer.Exit:
    err_console.print(f"[red]error:[/] {e.message}")
    return typer.Exit(1)


def _password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@users_app.command("create")
def users_create(
    email: str,
    role: str = typer.Option("member", help=_ROLE_HELP),
    project: str = typer.Option("default", help="Project name or id."),
    name: str = typer.Option(None, help="Display name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a user with a password (prompted) and ROLE in PROJECT; the first one is usually the owner."""
    store = open_store(Settings())
    try:
        p = store.projects.get_project(project)
        user = users.create_user(store, email, password=_password(password_stdin), role=role, project_id=p.id,
                                 name=name)
        store.audit.append(project_id=p.id, actor=cli_actor(), action="user.create", target_type="user",
                           target_id=user.id, after={"email": user.email, "role": role})
    except PodiumError as e:
        raise _fail(e)
    if as_json:
        print_json({"id": user.id, "email": user.email, "project": p.name, "role": role})
        return
    console.print(f"created user [bold]{user.email}[/] ({user.id}), {role} of {p.name}")


@users_app.command("list")
def users_list(
    project: str = typer.Option(None, help="Only members of this project (name or id)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List users and their projects' roles."""
    store = open_store(Settings())
    try:
        pid = store.projects.get_project(project).id if project else None
    except PodiumError as e:
        raise _fail(e)
    rows: list[dict[str, Any]] = []
    for u in store.users.list_users():
        ms = store.users.memberships(u.id)
        if pid is not None and all(m.project_id != pid for m in ms):
            continue
        rows.append({"id": u.id, "email": u.email, "disabled": u.disabled_at is not None,
                     "sso": u.oidc_subject is not None,
                     "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
                     "projects": {m.project_name: m.role for m in ms}})
    if as_json:
        print_json(rows)
        return
    table = Table("email", "projects", "state", "last sign-in", "id")
    for r in rows:
        projects = ", ".join(f"{k}: {v}" for k, v in dict(r["projects"]).items())
        table.add_row(str(r["email"]), projects, "disabled" if r["disabled"] else "active",
                      str(r["last_login_at"] or "never"), str(r["id"]))
    console.print(table)


@users_app.command("invite")
def users_invite(
    email: str,
    role: str = typer.Option("member", help=_ROLE_HELP),
    project: str = typer.Option("default", help="Project name or id."),
    hours: int = typer.Option(None, help="Hours the link stays valid (default PODIUM_INVITATION_TTL_HOURS)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Invite EMAIL to PROJECT with ROLE: prints a one-time link (shown once)."""
    settings = Settings()
    store = open_store(settings)
    try:
        p = store.projects.get_project(project)
        inv, token = invitations.invite(store, p.id, email, role, invited_by=cli_actor().label(),
                                        ttl=timedelta(hours=hours or settings.invitation_ttl_hours), actor_role="owner")
        store.audit.append(project_id=p.id, actor=cli_actor(), action="user.invite", target_type="invitation",
                           target_id=inv.id, after={"email": inv.email, "role": inv.role})
    except PodiumError as e:
        raise _fail(e)
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    url = f"{base}/invite/{token}"
    if as_json:
        print_json({"id": inv.id, "email": inv.email, "role": inv.role, "expires_at": inv.expires_at.isoformat(),
                    "url": url})
        return
    console.print(f"invited [bold]{inv.email}[/] as {inv.role} of {p.name}; send this link (works once, expires "
                  f"{inv.expires_at:%Y-%m-%d %H:%M} UTC):\n  {url}")


@users_app.command("set-role")
def users_set_role(
    email: str,
    role: str = typer.Argument(..., help=_ROLE_HELP),
    project: str = typer.Option("default", help="Project name or id."),
) -> None:
    """Give EMAIL the role ROLE in PROJECT (adds them to it when they are not a member)."""
    store = open_store(Settings())
    try:
        p = store.projects.get_project(project)
        user = store.users.by_email(email)
        if user is None:
            raise NotFound(f"no user {email!r}; `podium users list` shows them")
        old = users.set_role(store, p.id, user.id, role, actor_role="owner", add=True)
        store.audit.append(project_id=p.id, actor=cli_actor(), action="member.role.change", target_type="user",
                           target_id=user.id, before={"role": old}, after={"role": role})
    except PodiumError as e:
        raise _fail(e)
    console.print(f"{user.email}: {old or 'not a member'} -> {role} in {p.name}")


@users_app.command("disable")
def users_disable(email: str, enable: bool = typer.Option(False, "--enable", help="Enable again instead.")) -> None:
    """Disable EMAIL's account (signs them out everywhere), or `--enable` it again."""
    store = open_store(Settings())
    try:
        user = store.users.by_email(email)
        if user is None:
            raise NotFound(f"no user {email!r}; `podium users list` shows them")
        store.users.update_user(user.id, disabled_at=None if enable else datetime.now(UTC))
        n = 0 if enable else store.users.revoke_user_sessions(user.id)
        store.audit.append(project_id=None, actor=cli_actor(), action="user.enable" if enable else "user.disable",
                           target_type="user", target_id=user.id, detail={"sessions_revoked": n})
    except PodiumError as e:
        raise _fail(e)
    console.print(f"{user.email}: {'enabled' if enable else f'disabled ({n} session(s) ended)'}")


@users_app.command("set-password")
def users_set_password(
    email: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Set EMAIL's password (prompted) and sign them out everywhere."""
    store = open_store(Settings())
    try:
        user = store.users.by_email(email)
        if user is None:
            raise NotFound(f"no user {email!r}; `podium users list` shows them")
        store.users.update_user(user.id, password_hash=hash_password(_password(password_stdin, "New password")))
        store.users.revoke_user_sessions(user.id)
        store.audit.append(project_id=None, actor=cli_actor(), action="user.password.set", target_type="user",
                           target_id=user.id)
    except PodiumError as e:
        raise _fail(e)
    console.print(f"{user.email}: password set; their sessions ended")
