"""`podium guard scan|scanners|policies`: guardrails in this process, no server needed.

``scan`` exits 0 when the text may go on (allow, warn, flag, redact) and 1 when the policy
blocks it, so it works as a check in scripts and CI; 2 is a usage or policy error.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from podium.cli._common import err_console, print_json

__all__ = ["guard_app"]

guard_app = typer.Typer(help="Guardrails: scan a text with a policy, list scanners and policies "
                             "(docs/guardrails.md).", no_args_is_help=True)


def _policy(value: str) -> Any:
    """A built-in policy name, or a YAML/JSON file."""
    from podium.guardrails.decorator import load_policy
    from podium.guardrails.policy import BUILTIN_POLICIES

    path = Path(value)
    if value in BUILTIN_POLICIES and not path.is_file():
        return value
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        return load_policy(path)
    return value  # an unknown name: the engine's error lists the built-in ones


def _prose(text: str) -> str:
    """Descriptions wrapped to 80 columns (prose only: names and paths are never wrapped)."""
    return textwrap.fill(text, width=80, initial_indent="  ", subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)


@guard_app.command("scan")
def scan_cmd(
    text: str = typer.Argument(None, help="The text to scan; '-' or nothing reads stdin."),
    policy: str = typer.Option("default", "--policy", "-p", help="A built-in policy name or a YAML/JSON file."),
    kind: str = typer.Option("input", "--kind", "-k", help="input (a prompt) or output (an answer)."),
    prompt: str = typer.Option(None, "--prompt", help="Output scans: the prompt the answer replies to."),
    documents: list[str] = typer.Option([], "--document", help="Output scans: a context passage (repeat)."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """Scan TEXT with a policy. Exit 0: allowed (possibly redacted or flagged); 1: blocked."""
    from podium.errors import PodiumError
    from podium.guardrails.decorator import guard

    if kind not in ("input", "output"):
        err_console.print(f"[red]--kind must be input or output, not {kind!r}[/]")
        raise typer.Exit(2)
    if text is None or text == "-":
        text = sys.stdin.read().removesuffix("\n")  # the newline echo and files end with
    try:
        d = guard.scan(text, _policy(policy), "output" if kind == "output" else "input", prompt=prompt,
                       documents=documents, record=False)
    except PodiumError as e:
        err_console.print(f"[red]error:[/] {escape(e.message)}", highlight=False)
        raise typer.Exit(2)
    except ImportError as e:
        err_console.print(f"[red]podium guard needs the server extra ({e.name} is missing):[/] "
                          "pip install 'podium\\[server]'")
        raise typer.Exit(2)
    if as_json:
        print_json(d.to_dict())
    else:
        typer.echo(f"{d.action}  policy {d.policy}, {d.kind}, {d.latency_ms:.1f} ms")
        for o in d.outcomes:
            cmp = ">=" if o.score >= o.threshold else "<"
            line = f"  {o.rule}: {o.verdict} {o.score:.2f} {cmp} {o.threshold:g}"
            if o.fired:
                line += f" -> {o.action}"
            typer.echo(f"{line} ({o.latency_ms:.1f} ms)")
            if o.detail:
                typer.echo(f"    {o.detail}")
            labels = sorted({f.label for f in o.findings})
            if labels:
                typer.echo(f"    found: {', '.join(labels)}")
        if d.action != "allow":
            typer.echo(f"reason: {d.reason()}")
        if d.action == "redact":
            typer.echo("text:")
            typer.echo(d.text)
    if d.blocked:
        raise typer.Exit(1)


@guard_app.command("scanners")
def scanners_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered scanners: name, where they run, the plugin that registered them."""
    from podium.guardrails.registry import scanner_specs

    rows: list[dict[str, Any]] = [
        {"name": s.name, "kinds": sorted(s.kinds), "plugin": s.plugin, "description": s.description}
        for s in sorted(scanner_specs().values(), key=lambda s: s.name)]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']}  ({'/'.join(r['kinds'])}; {r['plugin']})")
        if r["description"]:
            typer.echo(_prose(r["description"]))


@guard_app.command("policies")
def policies_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the built-in policies and their rules (project policies: GET /api/v1/guardrails/policies)."""
    from podium.guardrails.policy import BUILTIN_POLICIES

    if as_json:
        typer.echo(json.dumps([{"name": n, **p} for n, p in BUILTIN_POLICIES.items()], indent=2))
        return
    for name, p in BUILTIN_POLICIES.items():
        typer.echo(f"{name}  (on_error: {p.get('on_error', 'open')})")
        if p.get("description"):
            typer.echo(_prose(p["description"]))
        for kind in ("input", "output"):
            rules = ", ".join(f"{r['type']}:{r.get('action', 'block')}" for r in p.get(kind, []))
            typer.echo(f"  {kind}: {rules or '-'}")
