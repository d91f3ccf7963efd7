"""`podium collections create|add|list|search|ask`: knowledge collections through the REST API
(docs/rag.md). `add` uploads files or whole folders (txt, md, html, pdf) in one request: one new
version; unchanged files are skipped by the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from podium.cli._common import api_call, console, err_console, print_json
from podium.rag.documents import KINDS

__all__ = ["collections_app"]

collections_app = typer.Typer(help="Knowledge collections: load documents, search them, ask with citations.",
                              no_args_is_help=True)
BASE = "/api/v1/collections"
_MAX_FILES = 1000


def _path(name: str, suffix: str = "") -> str:
    return f"{BASE}/{quote(name, safe='')}{suffix}"


def _files(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(document id, file)`` for every txt/md/html/pdf file under the paths (ids relative to a folder)."""
    out: list[tuple[str, Path]] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if f.is_file() and f.suffix.lower() in KINDS and not any(s.startswith(".") for s in rel.parts):
                    out.append((rel.as_posix(), f))
        elif p.is_file():
            out.append((p.name, p))
        else:
            err_console.print(f"[red]{p} does not exist[/]; give files or folders of documents")
            raise typer.Exit(2)
    return out


@collections_app.command("create")
def create(name: str = typer.Argument(..., help="letters, digits, '.', '_', '-'"),
           description: str | None = typer.Option(None, "--description", "-d"),
           strategy: str = typer.Option("tokens", "--chunking", help="tokens | heading | sentence"),
           size: int = typer.Option(256, "--size", help="tokens per chunk"),
           overlap: int = typer.Option(32, "--overlap", help="tokens repeated between chunks"),
           embedder: str = typer.Option("local:minilm-l6-v2", "--embedder", help="local:minilm-l6-v2 | gateway:ALIAS"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Create an empty collection."""
    out = api_call("POST", BASE, json={"name": name, "description": description, "embedder": embedder,
                                       "chunking": {"strategy": strategy, "size": size, "overlap": overlap}})
    if as_json:
        print_json(out)
    else:
        console.print(f"created collection [bold]{name}[/] ({strategy}, {size}/{overlap} tokens, {embedder})")


@collections_app.command("add")
def add(name: str = typer.Argument(...), paths: list[Path] = typer.Argument(..., help="files or folders"),
        metadata: str | None = typer.Option(None, "--metadata", "-m", help="JSON object for every document"),
        replace: bool = typer.Option(False, "--replace", help="remove documents not in this upload"),
        message: str | None = typer.Option(None, "--message"),
        as_json: bool = typer.Option(False, "--json")) -> None:
    """Upload documents (txt, md, html, pdf; folders recursively) as one new version."""
    found = _files(paths)
    if not found:
        err_console.print(f"[red]no documents found[/] (looked for {', '.join(sorted(KINDS))})")
        raise typer.Exit(2)
    if len(found) > _MAX_FILES:
        err_console.print(f"[red]{len(found)} files[/]: upload at most {_MAX_FILES} at a time (split the folder)")
        raise typer.Exit(2)
    if metadata is not None:
        try:
            if not isinstance(json.loads(metadata), dict):
                raise ValueError
        except ValueError:
            err_console.print("[red]--metadata must be a JSON object[/], e.g. '{\"team\": \"docs\"}'")
            raise typer.Exit(2) from None
    files = [("file", (doc_id, f.read_bytes(), "application/octet-stream")) for doc_id, f in found]
    data: dict[str, Any] = {"replace": "true" if replace else "false"}
    if metadata:
        data["metadata"] = metadata
    if message:
        data["message"] = message
    out = api_call("POST", _path(name, "/documents"), files=files, data=data)
    if as_json:
        print_json(out)
        return
    if not out.get("changed"):
        console.print(f"nothing changed: {len(found)} documents already in {name} v{out['version']}")
        return
    console.print(f"{name} v{out['version']}: {out['added']} added, {out['updated']} updated, "
                  f"{out['removed']} removed, {out.get('unchanged', 0)} unchanged; "
                  f"{out['document_count']} documents, {out['chunk_count']} chunks")


@collections_app.command("list")
def list_(name: str | None = typer.Argument(None, help="a collection: list its documents"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """The project's collections, or one collection's documents."""
    if name is None:
        rows = api_call("GET", BASE)["data"]
        if as_json:
            print_json(rows)
            return
        t = Table("name", "version", "documents", "chunks", "chunking", "embedder")
        for r in rows:
            ch = r["chunking"]
            t.add_row(r["name"], str(r["latest_version"]), str(r["document_count"]), str(r["chunk_count"]),
                      f"{ch['strategy']} {ch['size']}/{ch['overlap']}", r["embedder"])
        console.print(t)
        return
    out = api_call("GET", _path(name, "/documents"), params={"limit": 1000})
    if as_json:
        print_json(out)
        return
    t = Table("document", "kind", "chunks", "chars", "since")
    for d in out["data"]:
        t.add_row(d["id"], d["kind"], str(d["chunk_count"]), str(d["chars"]), f"v{d['version']}")
    console.print(t)


@collections_app.command("search")
def search(name: str = typer.Argument(...), query: str = typer.Argument(...),
           mode: str = typer.Option("hybrid", "--mode", help="vector | keyword | hybrid"),
           top_k: int = typer.Option(5, "--top-k", "-k"),
           filters: str | None = typer.Option(None, "--filter", help='JSON, e.g. \'{"lang": "en"}\''),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Search a collection; prints the chunks with their scores."""
    body: dict[str, Any] = {"query": query, "mode": mode, "top_k": top_k}
    if filters:
        try:
            body["filters"] = json.loads(filters)
        except ValueError:
            err_console.print("[red]--filter must be JSON[/], e.g. '{\"lang\": \"en\"}'")
            raise typer.Exit(2) from None
    out = api_call("POST", _path(name, "/search"), json=body)
    if as_json:
        print_json(out)
        return
    for h in out["data"]:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in h["scores"].items())
        console.print(f"[bold]{h['rank']}.[/] {h['id']}  score {h['score']:.4f} ({parts})", markup=True)
        console.print("   " + " ".join(h["text"].split())[:300], markup=False, highlight=False)
    console.print(f"[dim]{out['mode']} search of {name} v{out['version']} in {out['timings_ms']['total']} ms; "
                  f"trace {out.get('trace_id')}[/]")


@collections_app.command("ask")
def ask(name: str = typer.Argument(...), question: str = typer.Argument(...),
        model: str | None = typer.Option(None, "--model", help="gateway model (default: the server's)"),
        prompt: str | None = typer.Option(None, "--prompt", help="a prompt whose {{context}} is filled"),
        top_k: int | None = typer.Option(None, "--top-k", "-k"),
        as_json: bool = typer.Option(False, "--json")) -> None:
    """Answer a question from the collection through the gateway, with citations."""
    body: dict[str, Any] = {"question": question, "model": model, "top_k": top_k}
    if prompt:
        body["prompt"] = {"name": prompt}
    out = api_call("POST", _path(name, "/answer"), json=body)
    if as_json:
        print_json(out)
        return
    console.print(out["answer"], markup=False, highlight=False)
    for c in out["citations"]:
        where = "(no such passage)" if c.get("unknown") else f"{c['chunk_id']} — {c.get('title') or c['document_id']}"
        console.print(f"  [{c['n']}] {where}", markup=False, highlight=False)
    console.print(f"[dim]{out['model']}, trace {out['trace_id']}[/]")
