"""`podium retention ...`, `podium legal-hold ...` and `podium subjects ...` (local admin: they open
the store directly and append their own audit events, actor ``cli:<OS user>``).
See docs/governance.md#retention and #data-subject-requests."""

from __future__ import annotations

import getpass
import sys
from typing import Any

import typer
from rich.table import Table

from podium.cli._common import console, err_console, open_store, print_json
from podium.config import Settings
from podium.errors import PodiumError
from podium.governance.actor import Actor
from podium.governance.retention import policy_view, run_retention, run_view
from podium.governance.subject_requests import delete_subject, export_subject, subject_overview
from podium.store import Store
from podium.store.repos.lifecycle import KINDS

__all__ = ["legal_hold_app", "retention_app", "subjects_app"]

retention_app = typer.Typer(help="Retention periods of a project, and running retention now.", no_args_is_help=True)
legal_hold_app = typer.Typer(help="A project's legal hold: nothing of it is deleted while on.", no_args_is_help=True)
subjects_app = typer.Typer(help="Data-subject requests: delete or export everything about a user id.",
                           no_args_is_help=True)

_PROJECT = typer.Option("default", "--project", help="Project name or id.")
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _actor() -> Actor:
    try:
        who = getpass.getuser()
    except Exception:  # no login name (containers)
        who = "unknown"
    return Actor("cli", who)


def _open(project: str) -> tuple[Settings, Store, str]:
    settings = Settings()
    store = open_store(settings)
    try:
        pid = store.projects.get_project(project).id
    except PodiumError as e:
        raise _fail(e) from None
    return settings, store, pid


def _fail(e: PodiumError) -> typer.Exit:
    err_console.print(f"[red]error:[/] {e.message}")
    return typer.Exit(1)


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table("table", "rows", title=title)
    for name, n in counts.items():
        table.add_row(name, str(n))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    return table


def _days(d: int | None) -> str:
    return "forever" if not d else f"{d} days"


def _show(view: dict[str, Any]) -> None:
    table = Table("kind", "own period", "effective")
    for k in KINDS:
        own = view["periods"][k]
        table.add_row(k, "inherit" if own is None else _days(own), _days(view["effective_days"][k]))
    console.print(table)
    hold = view["legal_hold"]
    console.print(f"legal hold: {'[bold red]on[/]' if hold['on'] else 'off'}"
                  + (f" ({hold['reason']})" if hold.get("reason") else ""))
    last = view.get("last_run")
    if last:
        console.print(f"last run: {last['started_at']} by {last['actor']}{' (dry run)' if last['dry_run'] else ''}:"
                      f" {last['total']} rows, {last['batches']} batches")


@retention_app.command("show")
def retention_show(project: str = _PROJECT, as_json: bool = _JSON) -> None:
    """Show PROJECT's retention periods, legal hold and last run."""
    settings, store, pid = _open(project)
    view = policy_view(store, settings, pid)
    if as_json:
        print_json(view)
        return
    _show(view)


@retention_app.command("set")
def retention_set(
    project: str = _PROJECT,
    traces: int = typer.Option(None, "--traces", min=0, help="Days to keep traces (0: forever)."),
    scores: int = typer.Option(None, "--scores", min=0, help="Days to keep scores (0: forever)."),
    gateway: int = typer.Option(None, "--gateway", min=0, help="Days to keep gateway request logs (0: forever)."),
    inherit: list[str] = typer.Option([], "--inherit", help="Kind (traces|scores|gateway) that follows "
                                      "PODIUM_RETENTION_DAYS again; repeatable."),
    as_json: bool = _JSON,
) -> None:
    """Set PROJECT's retention periods (kinds not named keep theirs)."""
    settings, store, pid = _open(project)
    periods: dict[str, int | None] = {k: v for k, v in (("traces", traces), ("scores", scores),
                                                        ("gateway", gateway)) if v is not None}
    for k in inherit:
        if k not in KINDS:
            err_console.print(f"[red]error:[/] --inherit takes one of {', '.join(KINDS)}, not {k!r}")
            raise typer.Exit(2)
        periods[k] = None
    if not periods:
        err_console.print("[red]error:[/] name a period: --traces DAYS, --scores DAYS, --gateway DAYS or --inherit KIND")
        raise typer.Exit(2)
    actor = _actor()
    before = store.lifecycle.policy(pid)
    store.lifecycle.set_periods(pid, periods, actor=actor.label())
    view = policy_view(store, settings, pid)
    store.audit.append(project_id=pid, actor=actor, action="retention.set", target_type="project", target_id=pid,
                       before={k: before.days(k) for k in KINDS}, after=view["periods"])
    if as_json:
        print_json(view)
        return
    _show(view)


@retention_app.command("run")
def retention_run(
    project: str = _PROJECT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
    as_json: bool = _JSON,
) -> None:
    """Run retention on PROJECT now (in batches), or count what it would delete."""
    settings, store, pid = _open(project)
    try:
        run = run_retention(store, settings, pid, actor=_actor(), dry_run=dry_run)
    except PodiumError as e:
        raise _fail(e) from None
    view = run_view(run)
    if as_json:
        print_json(view)
        return
    title = "would be deleted (dry run)" if dry_run else f"deleted in {run.batches} batches"
    console.print(_counts_table(title, run.counts))
    if not dry_run and run.max_tx_ms is not None:
        console.print(f"longest transaction: {run.max_tx_ms:.0f} ms")


def _hold(project: str, on: bool, reason: str | None, as_json: bool) -> None:
    _, store, pid = _open(project)
    actor = _actor()
    before = store.lifecycle.policy(pid)
    p = store.lifecycle.set_legal_hold(pid, on, reason=reason, actor=actor.label())
    after = {"on": p.legal_hold, "reason": p.legal_hold_reason}
    store.audit.append(project_id=pid, actor=actor, action="legal_hold.set", target_type="project", target_id=pid,
                       before={"on": before.legal_hold, "reason": before.legal_hold_reason}, after=after)
    if as_json:
        print_json(after)
        return
    console.print(f"legal hold {'on' if on else 'off'} for project {project}" + (f" ({reason})" if reason else ""))


@legal_hold_app.command("on")
def legal_hold_on(project: str = _PROJECT, reason: str = typer.Option(None, "--reason", help="Why (shown in refusals)."),
                  as_json: bool = _JSON) -> None:
    """Put PROJECT under a legal hold: retention and data-subject deletions stop."""
    _hold(project, True, reason, as_json)


@legal_hold_app.command("off")
def legal_hold_off(project: str = _PROJECT, as_json: bool = _JSON) -> None:
    """Lift PROJECT's legal hold."""
    _hold(project, False, None, as_json)


@legal_hold_app.command("show")
def legal_hold_show(project: str = _PROJECT, as_json: bool = _JSON) -> None:
    """Show PROJECT's legal hold."""
    _, store, pid = _open(project)
    p = store.lifecycle.policy(pid)
    if as_json:
        print_json({"on": p.legal_hold, "reason": p.legal_hold_reason})
        return
    console.print(f"legal hold: {'on' if p.legal_hold else 'off'}" + (f" ({p.legal_hold_reason})"
                                                                      if p.legal_hold_reason else ""))


@subjects_app.command("show")
def subjects_show(user_id: str, project: str = _PROJECT, as_json: bool = _JSON) -> None:
    """What PROJECT holds about USER_ID (rows per table) and the past requests about them."""
    _, store, pid = _open(project)
    view = subject_overview(store, pid, user_id)
    if as_json:
        print_json(view)
        return
    console.print(_counts_table(f"about {user_id}", view["counts"]))


@subjects_app.command("delete")
def subjects_delete(
    user_id: str, project: str = _PROJECT,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = _JSON,
) -> None:
    """Delete everything about USER_ID in PROJECT and print the receipt."""
    settings, store, pid = _open(project)
    if not yes and not as_json:
        n = sum(store.lifecycle.subject_counts(pid, user_id).values())
        typer.confirm(f"delete {n} rows about {user_id!r} in project {project}?", abort=True)
    actor = _actor()
    try:
        receipt = delete_subject(store, settings, pid, user_id, actor=actor)
    except PodiumError as e:
        raise _fail(e) from None
    out = receipt.as_dict()
    store.audit.append(project_id=pid, actor=actor, action="subject.delete", target_type="user", target_id=user_id,
                       after=out)
    if as_json:
        print_json(out)
        return
    console.print(_counts_table(f"receipt {receipt.id}: deleted about {user_id}", receipt.counts))
    console.print(f"at {out['created_at']} by {receipt.actor}")
    for what, why in receipt.notes.items():
        console.print(f"[dim]{what}: {why}[/]")


@subjects_app.command("export")
def subjects_export(user_id: str, project: str = _PROJECT) -> None:
    """Write everything about USER_ID in PROJECT to stdout as JSON (`> out.json`)."""
    _, store, pid = _open(project)
    store.audit.append(project_id=pid, actor=_actor(), action="subject.export", target_type="user",
                       target_id=user_id)
    for chunk in export_subject(store, pid, user_id):
        sys.stdout.write(chunk)
    sys.stdout.write("\n")
    sys.stdout.flush()
