"""`podium registry list|show|register|alias|rollback|history|lineage|resolve`: the model
registry on a running server (docs/registry.md). ``register`` hashes a local artifact here
(streamed) and, with ``--copy``, copies it under ``$PODIUM_HOME/models/<name>/<version>/``;
nothing is downloaded."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, console, err_console, print_json
from podium.cli.commands.registry_compare import compare_cmd
from podium.config import Settings

__all__ = ["registry_app"]

registry_app = typer.Typer(help="The model registry: versions, aliases (champion, ...), rollback, lineage.",
                           no_args_is_help=True)

registry_app.command("compare")(compare_cmd)  # GGUF versions side by side (docs/registry.md)

_API = "/api/v1/registry"


def _m(name: str) -> str:
    return f"{_API}/models/{quote(name, safe='')}"


def _when(v: Any) -> str:
    return str(v)[:16].replace("T", " ") if v else "-"


def _size(n: Any) -> str:
    if n is None:
        return "-"
    f = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if f < 1024 or unit == "GB":
            return f"{f:.0f} {unit}" if unit == "B" else f"{f:.1f} {unit}"
        f /= 1024
    return str(n)


@registry_app.command("list")
def reg_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Registered models with their latest version and aliases."""
    data = api_call("GET", f"{_API}/models")["data"]
    if as_json:
        print_json(data)
        return
    table = Table(Column("model", no_wrap=True), "latest", "aliases", Column("updated", no_wrap=True))
    for m in data:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m["aliases"].items()))
        table.add_row(m["name"], str(m["latest_version"] or "-"), aliases or "-", _when(m["updated_at"]))
    console.print(table)


@registry_app.command("show")
def reg_show(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A model's versions (newest first) and aliases."""
    model = api_call("GET", _m(name))
    versions = api_call("GET", f"{_m(name)}/versions")["data"]
    if as_json:
        print_json({**model, "versions": versions})
        return
    console.print(f"[bold]{model['name']}[/]  {model['description'] or ''}")
    table = Table("v", "kind", "size", "dataset", "status", "aliases", Column("created", no_wrap=True))
    for v in versions:
        ds = f"{v['dataset']['name']}@{v['dataset']['version']}" if v["dataset"] else "-"
        table.add_row(str(v["version"]), v["artifact"].get("kind") or "-", _size(v["artifact"].get("size")), ds,
                      v["status"], ", ".join(v["aliases"]) or "-", _when(v["created_at"]))
    console.print(table)


@registry_app.command("register")
def reg_register(
    name: str,
    artifact: str = typer.Option(..., "--artifact", help="A local file or a URI (s3://, hf://, file://)."),
    kind: str = typer.Option("merged", "--kind", help="adapter | merged | gguf | external"),
    fmt: str = typer.Option(None, "--format", help="Artifact format (default: from the file name)."),
    base: str = typer.Option(None, "--base", help="Base model: a model id or registry:/NAME@VERSION."),
    dataset: str = typer.Option(None, "--dataset", help="Training data: DATASET@VERSION."),
    run: str = typer.Option(None, "--run", help="Training run id."),
    evals: Path = typer.Option(None, "--evals", help="JSON file: [{suite, experiment_ids, metrics}]."),
    meta: list[str] = typer.Option([], "--meta", help="KEY=VALUE metadata (repeatable)."),
    description: str = typer.Option(None, "--description"),
    copy: bool = typer.Option(False, "--copy", help="Copy a local file under $PODIUM_HOME/models/NAME/VERSION/."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register a new version of NAME (created on first use)."""
    from podium.registry.registry import copy_hashed, sha256_file

    body: dict[str, Any] = {"artifact": {"kind": kind, "uri": artifact, "format": fmt}, "base_model": base,
                            "dataset": dataset, "training_run_id": run, "description": description,
                            "metadata": dict(m.split("=", 1) for m in meta if "=" in m)}
    if evals is not None:
        body["eval_results"] = json.loads(evals.read_text())
    staged: Path | None = None
    is_uri = "://" in artifact
    if copy and is_uri:
        err_console.print("[red]--copy works only for a local file[/] (a URI is recorded as is; nothing is downloaded)")
        raise typer.Exit(2)
    if not is_uri:
        src = Path(artifact).expanduser()
        if not src.is_file():
            err_console.print(f"[red]no such file:[/] {artifact} (a directory: archive it first)")
            raise typer.Exit(2)
        body["artifact"]["uri"] = str(src.resolve())
        if copy:
            root = Settings().home_dir / "models" / name
            staged = root / f".tmp-{uuid.uuid4().hex}" / src.name
            digest, size = copy_hashed(src, staged)
        else:
            digest, size = sha256_file(src)
        body["artifact"].update(sha256=digest, size=size)
    try:
        row = _post_version(name, body, staged)
    finally:
        if staged is not None:
            shutil.rmtree(staged.parent, ignore_errors=True)
    if as_json:
        print_json(row)
        return
    a = row["artifact"]
    console.print(f"registered [bold]{row['name']}@{row['version']}[/]  {a['kind']}  {_size(a.get('size'))}")
    console.print(f"  artifact: {a['uri']}")
    if a.get("sha256"):
        console.print(f"  sha256:   {a['sha256']}")


def _post_version(name: str, body: dict[str, Any], staged: Path | None) -> dict[str, Any]:
    if staged is None:
        return dict(api_call("POST", f"{_m(name)}/versions", json=body))
    from podium.cli._common import api_client

    for _ in range(5):  # the copy's folder is named for the version: claim the number, retry on a race
        with api_client() as c:
            r = c.get(_m(name))
            nxt = (r.json()["latest_version"] if r.status_code == 200 else 0) + 1
        final = staged.parent.parent / str(nxt) / staged.name
        body["artifact"]["uri"] = str(final)
        body["expected_version"] = nxt
        with api_client() as c:
            r = c.post(f"{_m(name)}/versions", json=body)
        if r.status_code == 201:
            final.parent.mkdir(parents=True, exist_ok=True)
            staged.replace(final)
            return dict(r.json())
        if r.status_code != 409:
            err_console.print(f"[red]error {r.status_code}:[/] {r.json().get('error', {}).get('message', r.text)}")
            raise typer.Exit(1)
    err_console.print("[red]could not claim a version number (too many concurrent registrations); retry[/]")
    raise typer.Exit(1)


@registry_app.command("alias")
def reg_alias(name: str, alias: str, version: int,
              comment: str = typer.Option(None, "--comment", "-m", help="Why (kept in the history).")) -> None:
    """Point ALIAS (champion, challenger, ...) of NAME at VERSION."""
    r = api_call("PUT", f"{_m(name)}/aliases/{quote(alias, safe='')}", json={"version": version, "comment": comment})
    console.print(f"{name}@{alias} → version {r['version']}")


@registry_app.command("rollback")
def reg_rollback(name: str, alias: str,
                 comment: str = typer.Option(None, "--comment", "-m", help="Why (kept in the history).")) -> None:
    """Move ALIAS back to where it pointed before its last move."""
    r = api_call("POST", f"{_m(name)}/aliases/{quote(alias, safe='')}/rollback", json={"comment": comment})
    console.print(f"{name}@{alias} rolled back → version {r['version']}")


@registry_app.command("history")
def reg_history(name: str, alias: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """ALIAS's moves, newest first."""
    data = api_call("GET", f"{_m(name)}/aliases/{quote(alias, safe='')}/history")["data"]
    if as_json:
        print_json(data)
        return
    table = Table(Column("when", no_wrap=True), "action", "from", "to", "by", "comment")
    for e in data:
        table.add_row(_when(e["created_at"]), e["action"], str(e["from_version"] or "-"),
                      str(e["to_version"] or "-"), (e["actor"] or "-")[:14], e["comment"] or "")
    console.print(table)


def _split(ref: str) -> tuple[str, int]:
    v = api_call("GET", f"{_API}/resolve", params={"ref": ref})
    return str(v["name"]), int(v["version"])


@registry_app.command("resolve")
def reg_resolve(ref: str) -> None:
    """The version REF points at (NAME@3, NAME@champion, registry:/NAME@champion)."""
    name, version = _split(ref)
    console.print(f"{name}@{version}")


@registry_app.command("lineage")
def reg_lineage(ref: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """REF's lineage: dataset -> run -> version -> deployments -> traces."""
    name, version = _split(ref)
    g = api_call("GET", f"{_m(name)}/versions/{version}/lineage")
    if as_json:
        print_json(g)
        return
    for n in g["nodes"]:
        extra = f"  ({n['link']})" if n.get("link") and n["kind"] == "traces" else ""
        console.print(f"  {n['kind']:<10} {n['label']}{extra}")
