"""`podium evaluators list|create|backfill|stats`: online evaluation rules through the REST API
(works against any server; docs/online-evaluation.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, console, err_console, load_rules, print_json

__all__ = ["evaluators_app"]

evaluators_app = typer.Typer(help="Online evaluation rules (judge production traces) on a running server.",
                             no_args_is_help=True)

RULES = "/api/v1/evaluation-rules"


def _scorers(r: dict[str, Any]) -> str:
    out = []
    for s in r["scorers"]:
        name = s.get("type") or f"guardrail:{s.get('guardrail')}"
        out.append(name + (f" ({s['model']})" if s.get("model") else ""))
    return ", ".join(out)


def _find(rule: str) -> dict[str, Any]:
    """A rule by name or id."""
    for r in api_call("GET", RULES)["data"]:
        if rule in (r["id"], r["name"]):
            return dict(r)
    err_console.print(f"[red]no evaluation rule named {rule!r}[/]; `podium evaluators list` shows them")
    raise typer.Exit(1)


@evaluators_app.command("list")
def evaluators_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The project's rules with what they did (evaluated, backlog, failures, judge cost)."""
    rules = api_call("GET", RULES)["data"]
    stats = {r["id"]: api_call("GET", f"{RULES}/{quote(r['id'], safe='')}/stats") for r in rules}
    if as_json:
        print_json([{**r, "stats": {k: v for k, v in stats[r["id"]].items() if k != "series"}} for r in rules])
        return
    table = Table(Column("name", no_wrap=True), "on", "sample", "scorers", "evaluated", "/min", "backlog",
                  "failures", "judge $")
    for r in rules:
        s = stats[r["id"]]
        table.add_row(r["name"], "yes" if r["enabled"] else "no", f"{r['sample_rate']:.0%}", _scorers(r),
                      str(s["evaluated"]), f"{s['evaluated_per_min']:.1f}", str(s["backlog"]), str(s["failures"]),
                      f"{s['judge_cost']:.4f}")
    console.print(table)


@evaluators_app.command("create")
def evaluators_create(path: Path = typer.Argument(..., help="rule.yaml / rule.json: one rule, a list, or rules: [...]"),
                      as_json: bool = typer.Option(False, "--json")) -> None:
    """Create the rules in a YAML or JSON file (fields: docs/online-evaluation.md)."""
    made = [api_call("POST", RULES, json=body) for body in load_rules(path)]
    if as_json:
        print_json(made)
        return
    for r in made:
        console.print(f"created evaluator [bold]{r['name']}[/] ({r['id']}): {_scorers(r)}")


def _time(value: str, option: str) -> str:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        err_console.print(f"[red]{option}:[/] give a date or time such as 2026-03-01 or 2026-03-01T12:00:00Z")
        raise typer.Exit(2)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


@evaluators_app.command("backfill")
def evaluators_backfill(
    rule: str = typer.Argument(..., help="The rule's name or id."),
    start: str = typer.Option(..., help="From (ISO date or time, UTC unless it says otherwise)."),
    end: str = typer.Option(..., help="To, exclusive."),
    limit: int = typer.Option(100_000, min=1, max=1_000_000, help="At most this many traces."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Queue the rule's matching traces that started in [start, end) for evaluation."""
    r = _find(rule)
    got = api_call("POST", f"{RULES}/{quote(r['id'], safe='')}/backfill",
                   json={"start": _time(start, "--start"), "end": _time(end, "--end"), "limit": limit})
    if as_json:
        print_json(got)
        return
    console.print(f"{got['matched']} traces in range, {got['enqueued']} queued for [bold]{r['name']}[/]")


@evaluators_app.command("stats")
def evaluators_stats(rule: str = typer.Argument(..., help="The rule's name or id.")) -> None:
    """One rule's counters: matched, evaluated, failures, backlog, lag, throughput, judge cost."""
    r = _find(rule)
    print_json(api_call("GET", f"{RULES}/{quote(r['id'], safe='')}/stats"))
