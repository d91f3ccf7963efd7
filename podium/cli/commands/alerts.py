"""`podium alerts list|history|create|mute|unmute|resolve|test|delete`: alert rules and their
history through the REST API (works against any server; docs/alerts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, console, err_console, load_rules, print_json

__all__ = ["alerts_app"]

alerts_app = typer.Typer(help="Alert rules and alert history on a running server.", no_args_is_help=True)

_STATE = {"firing": "[red]firing[/]", "ok": "[green]ok[/]"}


def _rule_path(rule: str, action: str = "") -> str:
    return f"/api/v1/alert-rules/{quote(rule, safe='')}" + (f"/{action}" if action else "")


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):.4g}"


def _when(v: Any) -> str:
    return str(v)[:19].replace("T", " ") if v else "-"


def _watch(r: dict[str, Any]) -> str:
    c = r["condition"]
    w = f"drift {c['drift']}.{c['statistic']}" if "drift" in c else f"{c.get('agg') or 'avg'}({c['metric']})"
    return f"{w} {r['op']} {r['threshold']:g}" + ("" if r["kind"] == "threshold" else f" [{r['kind']}]")


def _deliveries(ds: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['channel']} {'ok' if d['ok'] else 'FAILED'}" for d in ds) or "-"


@alerts_app.command("list")
def alerts_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The project's alert rules with their state (ids: --json)."""
    rules = api_call("GET", "/api/v1/alert-rules")["data"]
    if as_json:
        print_json(rules)
        return
    table = Table(Column("name", no_wrap=True), "state", "watches", "value", Column("muted until", no_wrap=True))
    for r in rules:
        state = _STATE.get(r["state"], r["state"]) + ("" if r["enabled"] else " (off)")
        table.add_row(r["name"], state, _watch(r), _num(r["last_value"]),
                      _when(r["muted_until"]) if r["muted_until"] else "")
    console.print(table)


@alerts_app.command("history")
def alerts_history(
    rule: str = typer.Option(None, help="A rule's name or id."),
    status: str = typer.Option(None, help="fired | resolved | renotified | suppressed | test | muted | unmuted | error"),
    since: str = typer.Option(None, help="ISO time with a zone, e.g. 2026-12-06T00:00:00Z"),
    limit: int = typer.Option(20, min=1, max=500),
    cursor: str = typer.Option(None, help="next_cursor from a previous page"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Alert history, newest first: what fired, resolved or was held back, and where it was sent."""
    params = {k: v for k, v in {"rule": rule, "status": status, "since": since, "limit": limit,
                                "cursor": cursor}.items() if v is not None}
    page = api_call("GET", "/api/v1/alerts", params=params)
    if as_json:
        print_json(page)
        return
    table = Table(Column("time", no_wrap=True), "rule", "status", "value", "sent")
    for e in page["data"]:
        table.add_row(_when(e["created_at"]), e["rule_name"], e["status"], _num(e["value"]),
                      _deliveries(e["deliveries"]))
    console.print(table)
    if page.get("next_cursor"):
        console.print(f"more: --cursor {page['next_cursor']}")


@alerts_app.command("create")
def alerts_create(path: Path = typer.Argument(..., help="rule.yaml / rule.json: one rule, a list, or rules: [...]"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Create the alert rules in a YAML or JSON file (see docs/alerts.md for the fields)."""
    made = [api_call("POST", "/api/v1/alert-rules", json=body) for body in load_rules(path)]
    if as_json:
        print_json(made)
        return
    for r in made:
        console.print(f"created alert rule [bold]{r['name']}[/] ({r['id']}): {_watch(r)}")


@alerts_app.command("mute")
def alerts_mute(rule: str,
                duration: str = typer.Option(None, "--for", help="How long: 90s, 30m, 1h, 2d, 1w."),
                until: str = typer.Option(None, "--until", help="ISO time with a zone.")) -> None:
    """Mute a rule: it is still evaluated and its history kept, but nothing is sent."""
    if (duration is None) == (until is None):
        err_console.print("[red]say how long:[/] --for 1h or --until 2026-12-31T09:00:00Z")
        raise typer.Exit(2)
    body = {"duration": duration} if duration is not None else {"until": until}
    r = api_call("POST", _rule_path(rule, "mute"), json=body)
    console.print(f"muted {r['name']} until {_when(r['muted_until'])} UTC")


@alerts_app.command("unmute")
def alerts_unmute(rule: str) -> None:
    """End a rule's mute (a firing it held back is sent at the next evaluation)."""
    r = api_call("POST", _rule_path(rule, "unmute"))
    console.print(f"unmuted {r['name']}")


@alerts_app.command("resolve")
def alerts_resolve(rule: str) -> None:
    """Resolve a firing rule now; its channels get the resolution."""
    out = api_call("POST", _rule_path(rule, "resolve"))
    console.print(f"resolved {out['rule']['name']}; sent: {_deliveries(out['deliveries'])}")


@alerts_app.command("test")
def alerts_test(rule: str) -> None:
    """Send a test alert through the rule's channels and show each delivery."""
    out = api_call("POST", _rule_path(rule, "test"))
    table = Table("channel", "ok", "status", "ms", "tries", "target", "error")
    for d in out["deliveries"]:
        table.add_row(d["channel"], "yes" if d["ok"] else "[red]no[/]", str(d["status"] or "-"),
                      f"{d['latency_ms']:.0f}", str(d["attempts"]), d["target"], d["error"] or "")
    console.print(table)
    if not all(d["ok"] for d in out["deliveries"]):
        raise typer.Exit(1)


@alerts_app.command("delete")
def alerts_delete(rule: str) -> None:
    """Delete a rule and its history."""
    api_call("DELETE", _rule_path(rule))
    console.print(f"deleted alert rule {rule}")
