"""`podium traces list|show`: read through the REST API (works against any server)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Column, Table
from rich.tree import Tree

from podium.cli._common import api_call, console, print_json

__all__ = ["traces_app"]

traces_app = typer.Typer(help="Query traces on a running server.", no_args_is_help=True)


def _get(path: str, params: dict[str, Any]) -> Any:
    return api_call("GET", path, params={k: v for k, v in params.items() if v is not None and v != []})


def _fmt_cost(v: Any) -> str:
    return f"${float(v):.6f}" if v else ""


@traces_app.command("list")
def traces_list(
    name: str = typer.Option(None, help="Exact trace name."),
    q: str = typer.Option(None, help="Substring of the trace name."),
    user_id: str = typer.Option(None, "--user"),
    session_id: str = typer.Option(None, "--session"),
    tag: list[str] = typer.Option([], help="Repeat for several tags (all must match)."),
    status: str = typer.Option(None, help="ok | error"),
    model: str = typer.Option(None),
    since: str = typer.Option(None, "--from", help="ISO time: start_time >= FROM"),
    until: str = typer.Option(None, "--to", help="ISO time: start_time < TO"),
    sort: str = typer.Option("start_time", help="start_time | latency_ms | total_cost | total_tokens"),
    limit: int = typer.Option(20, min=1, max=1000),
    cursor: str = typer.Option(None, help="next_cursor from a previous --json page"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List recent traces, newest first."""
    page = _get(
        "/api/v1/traces",
        {
            "name": name, "q": q, "user_id": user_id, "session_id": session_id, "tag": tag, "status": status,
            "model": model, "from": since, "to": until, "sort": sort, "limit": limit, "cursor": cursor,
        },
    )
    if as_json:
        print_json(page)
        return
    table = Table(
        "start", Column("id", no_wrap=True, min_width=12), "name", "user", "session", "spans", "latency", "tokens",
        "cost", "status",
    )
    for t in page["data"]:
        table.add_row(
            t["start_time"][:19].replace("T", " "),
            t["id"],
            t["name"] or "",
            t["user_id"] or "",
            t["session_id"] or "",
            str(t["span_count"]),
            f"{t['latency_ms']:.0f} ms",
            str(t["total_tokens"] or ""),
            _fmt_cost(t["total_cost"]),
            "[red]error[/]" if t["status"] == "error" else "ok",
        )
    console.print(table)
    if page.get("next_cursor"):
        console.print(f"more: --cursor {page['next_cursor']}")


@traces_app.command("show")
def traces_show(trace_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one trace as a span tree."""
    t = _get(f"/api/v1/traces/{trace_id}", {})
    if as_json:
        print_json(t)
        return
    head = f"[bold]{t['name'] or t['id']}[/]  {t['latency_ms']:.0f} ms"
    if t["total_tokens"]:
        head += f"  {t['total_tokens']} tokens"
    if t["total_cost"]:
        head += f"  {_fmt_cost(t['total_cost'])}"
    if t["user_id"] or t["session_id"]:
        head += f"  user={t['user_id'] or '-'} session={t['session_id'] or '-'}"
    tree = Tree(head)
    nodes: dict[str, Tree] = {}
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["id"] for s in t["spans"]}
    for s in t["spans"]:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children.setdefault(parent, []).append(s)

    def add(parent_node: Tree, parent_id: str | None) -> None:
        for s in children.get(parent_id, []):
            label = f"[cyan]{s['kind']}[/] {s['name']}"
            if s["latency_ms"] is not None:
                label += f"  {s['latency_ms']:.1f} ms"
            if s["model"]:
                label += f"  [magenta]{s['model']}[/]"
            if s["total_tokens"]:
                label += f"  {s['total_tokens']} tok"
            if s["status"] == "error":
                label += f"  [red]error: {s['status_message'] or ''}[/]"
            nodes[s["id"]] = parent_node.add(label)
            add(nodes[s["id"]], s["id"])

    add(tree, None)
    console.print(tree)
    for sc in t["scores"]:
        console.print(f"  score {sc['name']} = {sc['value']} ({sc['source']}){'  ' + sc['comment'] if sc['comment'] else ''}")
    if t.get("spans_next_cursor"):
        console.print(f"(first {len(t['spans'])} spans shown; use --json and the spans API for the rest)")
