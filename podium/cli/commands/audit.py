"""``podium audit list|verify|export``: the audit log, read from the database directly (local admin).

``verify`` walks the whole hash chain and exits 1 naming the first broken event; it prints the
head hash so an operator can keep it elsewhere (docs/governance.md#audit-log).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from podium.cli._common import console, err_console, open_store, print_json
from podium.config import Settings
from podium.errors import PodiumError
from podium.governance.audit import EXPORT_FORMATS, cli_actor, export_lines, verify
from podium.store import Store

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The audit log: list events, verify the hash chain, export (local admin).",
                        no_args_is_help=True)

_PROJECT = typer.Option(None, "--project", help="Project name or id (default: every project).")
_ACTOR = typer.Option(None, "--actor", help="An actor's id or name (public key, email, OS user, local).")
_ACTION = typer.Option(None, "--action", help="An action or a dotted prefix, e.g. prompt.label.")
_TTYPE = typer.Option(None, "--target-type", help="e.g. prompt, key, gateway_model.")
_TID = typer.Option(None, "--target-id", help="e.g. a prompt's name.")
_SINCE = typer.Option(None, "--since", help="ISO 8601 time: events at or after it.")
_UNTIL = typer.Option(None, "--until", help="ISO 8601 time: events before it.")


def _time(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        err_console.print(f"[red]error:[/] {flag} {value!r} is not an ISO 8601 time (e.g. 2026-12-01T00:00:00Z)")
        raise typer.Exit(2) from None


def _project_id(store: Store, project: str | None) -> str | None:
    if project is None:
        return None
    try:
        return store.projects.get_project(project).id
    except PodiumError as e:
        err_console.print(f"[red]error:[/] {e.message}")
        raise typer.Exit(1) from None


@audit_app.command("list")
def audit_list(
    project: str = _PROJECT, actor: str = _ACTOR, action: str = _ACTION, target_type: str = _TTYPE,
    target_id: str = _TID, since: str = _SINCE, until: str = _UNTIL,
    limit: int = typer.Option(50, min=1, max=1000, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Audit events, newest first."""
    store = open_store(Settings())
    page = store.audit.list_events(_project_id(store, project), actor=actor, action=action, target_type=target_type,
                                   target_id=target_id, since=_time(since, "--since"), until=_time(until, "--until"),
                                   limit=limit)
    if as_json:
        print_json(page.items)
        return
    table = Table("id", "when", "who", "action", "target", "status")
    for e in page.items:
        who = e["actor"]["kind"] + ":" + (e["actor"]["name"] or e["actor"]["id"])
        target = f"{e['target_type'] or ''} {e['target_id'] or ''}".strip()
        table.add_row(str(e["id"]), e["created_at"].isoformat(timespec="seconds"), who, e["action"], target,
                      str(e["status"] or ""))
    console.print(table)


@audit_app.command("verify")
def audit_verify(as_json: bool = typer.Option(False, "--json")) -> None:
    """Walk the hash chain; exit 1 naming the first broken event. Prints the head hash: keep it
    elsewhere (a ticket, a log) to detect a chain rewritten from the start."""
    store = open_store(Settings())
    result = verify(store.audit.iter_events(), store.audit.head())
    if as_json:
        print_json(result.to_dict())
    elif result.ok:
        console.print(f"audit log intact: {result.checked} events")
        console.print(f"head: event {result.head_seq} {result.head_hash}")
    else:
        err_console.print(f"[red]audit log broken at event {result.broken_seq}:[/] {result.reason}")
        err_console.print(f"head: event {result.head_seq} {result.head_hash}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file (default: standard output)."),
    project: str = _PROJECT, actor: str = _ACTOR, action: str = _ACTION, target_type: str = _TTYPE,
    target_id: str = _TID, since: str = _SINCE, until: str = _UNTIL,
) -> None:
    """Export events, oldest first, as JSON Lines or CSV (the export itself is recorded)."""
    if fmt not in EXPORT_FORMATS:
        err_console.print(f"[red]error:[/] --format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
        raise typer.Exit(2)
    store = open_store(Settings())
    pid = _project_id(store, project)
    filters: dict[str, Any] = {"actor": actor, "action": action, "target_type": target_type,
                               "target_id": target_id, "since": _time(since, "--since"), "until": _time(until, "--until")}
    store.audit.append(project_id=pid, actor=cli_actor(), action="audit.export", target_type="audit_log",
                       target_id=pid, detail={"format": fmt, "output": str(output) if output else "stdout",
                                              "filters": {k: str(v) for k, v in filters.items() if v is not None}})
    lines = export_lines(store.audit.iter_events(pid, **filters), fmt)
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    n = -1 if fmt == "csv" else 0
    with output.open("w", encoding="utf-8", newline="") as f:
        for line in lines:
            f.write(line)
            n += 1
    err_console.print(f"wrote {n} events to {output}")
