"""`podium prompts ...`: the prompt registry through the REST API (works against any server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.syntax import Syntax
from rich.table import Table

from podium.cli._common import api_call, api_client, console, err_console, print_json
from podium.core.prompts import prompt_from_file, prompt_to_file
from podium.errors import ValidationFailed

__all__ = ["prompts_app"]

prompts_app = typer.Typer(help="Version, label, compare, sync and run managed prompts.", no_args_is_help=True)

_API = "/api/v1/prompts"
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def _p(name: str, *rest: str) -> str:
    return "/".join([_API, name.strip("/"), *rest])


def _request(method: str, path: str, **kw: Any) -> httpx.Response:
    """Like api_call, but returns the response (callers handle 404/409 themselves)."""
    try:
        with api_client() as c:
            return c.request(method, path, **kw)
    except httpx.HTTPError as e:
        err_console.print(f"[red]cannot reach the server:[/] {e}. Is `podium up` running at PODIUM_BASE_URL?")
        raise typer.Exit(1)


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])
    except Exception:
        return r.text


def _parse_value(raw: str) -> Any:
    """``-v key=value``: JSON when it looks like JSON (lists for placeholders), else the string."""
    if raw[:1] in "[{" or raw in ("true", "false", "null") or re.fullmatch(r"-?\d+(\.\d+)?", raw):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            err_console.print(f"[red]{what} must look like NAME=VALUE:[/] {item!r}")
            raise typer.Exit(2)
        out[k] = _parse_value(v)
    return out


def _variables(var: list[str], vars_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if vars_file is not None:
        data = _load_file(vars_file)
        if not isinstance(data, dict):
            err_console.print(f"[red]{vars_file} must hold a mapping of variable names to values[/]")
            raise typer.Exit(2)
        values.update(data)
    values.update(_pairs(var, "--var"))
    return values


def _load_file(path: Path) -> Any:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        yaml = _yaml()
        return yaml.safe_load(text)
    return json.loads(text)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        err_console.print("[red]YAML needs PyYAML:[/] pip install pyyaml (or use --format json / .json files)")
        raise typer.Exit(2)
    return yaml


def _ref(version: int | None, label: str | None) -> str:
    if version is not None and label is not None:
        err_console.print("[red]pass --version or --label, not both[/]")
        raise typer.Exit(2)
    return f"versions/{version}" if version is not None else f"labels/{label or 'production'}"


def _fetch_version(name: str, version: int | None, label: str | None) -> dict[str, Any]:
    ref = _ref(version, label)
    data = api_call("GET", _p(name, *ref.split("/")))
    if ref.startswith("labels/"):
        main = data["version"]
        return next(v for v in data["versions"] if v["version"] == main)
    return data


def _targets(ts: list[dict[str, Any]]) -> str:
    if len(ts) == 1:
        return str(ts[0]["version"])
    total = sum(t["weight"] for t in ts) or 1
    return " / ".join(f"v{t['version']} {100 * t['weight'] / total:.0f}%" for t in ts)


# --- browsing --------------------------------------------------------------------------------------


@prompts_app.command("list")
def prompts_list(
    q: str = typer.Option(None, help="Substring of the name."),
    prefix: str = typer.Option(None, help="Folder, e.g. support/"),
    tag: str = typer.Option(None),
    label: str = typer.Option(None, help="Only prompts with this label."),
    limit: int = typer.Option(100, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Prompts with their latest version and labels."""
    params = {k: v for k, v in {"q": q, "prefix": prefix, "tag": tag, "label": label, "limit": limit}.items() if v}
    page = api_call("GET", _API, params=params)
    if as_json:
        print_json(page)
        return
    table = Table("name", "type", "latest", "labels", "tags", "updated")
    for p in page["data"]:
        labels = ", ".join(f"{lb}={_targets(x['targets'])}{'*' if x.get('protected') else ''}"
                           for lb, x in p["labels"].items() if lb != "latest")
        table.add_row(p["name"], p["type"], str(p["latest_version"]), labels, ", ".join(p["tags"]),
                      str(p["updated_at"])[:19].replace("T", " "))
    console.print(table)
    if page.get("next_cursor"):
        console.print("more prompts: narrow with --prefix/--q, or use the API's cursor")


@prompts_app.command("show")
def prompts_show(
    name: str,
    version: int = typer.Option(None, "--version", "-V", help="A version number."),
    label: str = typer.Option(None, "--label", "-l", help="A label (default: production)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One version: template, variables, config, labels."""
    v = _fetch_version(name, version, label)
    if as_json:
        print_json(v)
        return
    console.print(f"[bold]{v['name']}[/] v{v['version']} ({v['type']}, {v['template_format']})  "
                  f"labels: {', '.join(v['labels']) or '-'}  tags: {', '.join(v['tags']) or '-'}")
    console.print(f"created {str(v['created_at'])[:19]} by {v['created_by'] or '?'}"
                  + (f": {v['commit_message']}" if v.get("commit_message") else ""))
    console.print(f"variables: {', '.join(v['variables']) or '-'}"
                  + (f"   placeholders: {', '.join(v['placeholders'])}" if v["placeholders"] else ""))
    if v["type"] == "text":
        console.print(v["prompt"], markup=False, highlight=False)
    else:
        for m in v["prompt"]:
            if m.get("type") == "placeholder":
                console.print(f"[dim]<placeholder {m['name']}>[/]")
            else:
                console.print(f"[bold cyan]{m['role']}:[/]", end=" ")
                console.print(m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content")),
                              markup=False, highlight=False)
    if v["config"]:
        console.print(Syntax(json.dumps(v["config"], indent=2), "json"))


@prompts_app.command("versions")
def prompts_versions(name: str, limit: int = typer.Option(50, min=1, max=1000),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """Versions of a prompt, newest first."""
    page = api_call("GET", _p(name, "versions"), params={"limit": limit})
    if as_json:
        print_json(page)
        return
    table = Table("version", "labels", "created", "by", "message", "variables")
    for v in page["data"]:
        table.add_row(str(v["version"]), ", ".join(v["labels"]), str(v["created_at"])[:19].replace("T", " "),
                      v["created_by"] or "", (v["commit_message"] or "")[:60], ", ".join(v["variables"]))
    console.print(table)


# --- creating -------------------------------------------------------------------------------------------


@prompts_app.command("create")
def prompts_create(
    name: str = typer.Argument(..., help="e.g. qa or support/triage"),
    text: str = typer.Argument(None, help="The template (a text prompt); or use --file."),
    file: Path = typer.Option(None, "--file", "-f", exists=True, dir_okay=False,
                              help=".txt: a text prompt; .json/.yaml: a list of chat messages, or a prompt file"),
    chat: bool = typer.Option(False, help="TEXT is the user message of a chat prompt."),
    system: str = typer.Option(None, help="With --chat: a system message before it."),
    config: str = typer.Option(None, help="Config as JSON, e.g. '{\"model\": \"local\", \"temperature\": 0.2}'"),
    tag: list[str] = typer.Option([], help="Tags (replace the prompt's tags); repeat for several."),
    label: list[str] = typer.Option([], help="Labels to move to the new version; repeat for several."),
    message: str = typer.Option(None, "--message", "-m", help="Commit message."),
    jinja: bool = typer.Option(False, help="Jinja2 template (sandboxed) instead of {{var}} mustache."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a prompt, or the next version of an existing one."""
    body: dict[str, Any] = {"name": name}
    if (text is None) == (file is None):
        err_console.print("[red]give the template as TEXT or --file (one of them)[/]")
        raise typer.Exit(2)
    if file is not None and file.suffix in _FILE_SUFFIXES:
        data = _load_file(file)
        if isinstance(data, dict):
            try:
                f = prompt_from_file({**data, "name": name}, source=str(file))
            except ValidationFailed as e:
                err_console.print(f"[red]{e.message}[/]")
                raise typer.Exit(1)
            body.update({k: f[k] for k in ("type", "template_format", "prompt", "config", "tags")})
        else:
            body["prompt"] = data
    else:
        content = file.read_text() if file is not None else text
        body["prompt"] = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": content}] if chat else content
    if config:
        try:
            body["config"] = json.loads(config)
        except ValueError as e:
            err_console.print(f"[red]--config is not valid JSON:[/] {e}")
            raise typer.Exit(2)
    if tag:
        body["tags"] = tag
    if label:
        body["labels"] = label
    if message:
        body["commit_message"] = message
    if jinja:
        body["template_format"] = "jinja2"
    v = api_call("POST", _API, json=body)
    if as_json:
        print_json(v)
        return
    console.print(f"created [bold]{v['name']}[/] v{v['version']}  labels: {', '.join(v['labels'])}  "
                  f"variables: {', '.join(v['variables']) or '-'}")


# --- labels -------------------------------------------------------------------------------------------------


def _parse_targets(versions: list[str]) -> dict[str, Any]:
    if len(versions) == 1 and ":" not in versions[0]:
        if not versions[0].isdigit():
            err_console.print(f"[red]not a version number:[/] {versions[0]!r}")
            raise typer.Exit(2)
        return {"version": int(versions[0])}
    out = []
    for item in versions:
        v, _, w = item.partition(":")
        try:
            out.append({"version": int(v), "weight": float(w) if w else 1.0})
        except ValueError:
            err_console.print(f"[red]write a split as VERSION:WEIGHT, e.g. 3:90 4:10[/] (got {item!r})")
            raise typer.Exit(2)
    return {"versions": out}


@prompts_app.command("label")
def prompts_label(
    name: str,
    label: str,
    versions: list[str] = typer.Argument(..., help="A version, or an A/B split: 3:90 4:10"),
    comment: str = typer.Option(None, "--comment", "-c"),
) -> None:
    """Point LABEL at a version (or split it between versions); recorded in the history."""
    body = _parse_targets(versions)
    if comment:
        body["comment"] = comment
    out = api_call("PUT", _p(name, "labels", label), json=body)
    console.print(f"{name}: {label} -> {_targets(out['targets'])}")


@prompts_app.command("unlabel")
def prompts_unlabel(name: str, label: str) -> None:
    """Remove a label (recorded in the history; rollback restores it)."""
    api_call("DELETE", _p(name, "labels", label))
    console.print(f"{name}: removed {label}")


@prompts_app.command("rollback")
def prompts_rollback(
    name: str,
    label: str = typer.Option("production", "--label", "-l", help="The label to move back."),
    comment: str = typer.Option(None, "--comment", "-c"),
) -> None:
    """Move a label back to where it pointed before its last move (again: further back)."""
    out = api_call("POST", _p(name, "labels", label, "rollback"), json={"comment": comment} if comment else None)
    console.print(f"{name}: {label} rolled back to {_targets(out['targets'])}")


@prompts_app.command("history")
def prompts_history(
    name: str,
    label: str = typer.Option(None, "--label", "-l", help="Only this label."),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Label moves: who (key), when, from which version to which."""
    path = _p(name, "labels", label, "history") if label else _p(name, "history")
    page = api_call("GET", path, params={"limit": limit})
    if as_json:
        print_json(page)
        return
    table = Table("when", "label", "action", "from", "to", "by", "comment")
    for e in page["data"]:
        table.add_row(str(e["created_at"])[:19].replace("T", " "), e["label"], e["action"],
                      _targets(e["from_targets"]) if e["from_targets"] else "-",
                      _targets(e["to_targets"]) if e["to_targets"] else "-", e["actor"] or "", e["comment"] or "")
    console.print(table)


@prompts_app.command("protect")
def prompts_protect(labels: list[str] = typer.Argument(..., help="Labels only admin keys may move.")) -> None:
    """Protect labels (admin key): only admin keys may move, remove or roll them back."""
    current = api_call("GET", f"{_API}/settings")["protected_labels"]
    out = api_call("PUT", f"{_API}/settings", json={"protected_labels": sorted({*current, *labels})})
    console.print(f"protected labels: {', '.join(out['protected_labels']) or '-'}")


@prompts_app.command("unprotect")
def prompts_unprotect(labels: list[str] = typer.Argument(...)) -> None:
    """Stop protecting labels (admin key)."""
    current = api_call("GET", f"{_API}/settings")["protected_labels"]
    out = api_call("PUT", f"{_API}/settings", json={"protected_labels": [x for x in current if x not in labels]})
    console.print(f"protected labels: {', '.join(out['protected_labels']) or '-'}")


# --- comparing and analytics -----------------------------------------------------------------------------


@prompts_app.command("diff")
def prompts_diff(
    name: str,
    a: str = typer.Argument(..., help="Version number or label."),
    b: str = typer.Argument("latest", help="Version number or label."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Unified diff of two versions (template and config)."""
    d = api_call("GET", _p(name, "diff"), params={"from": a, "to": b})
    if as_json:
        print_json(d)
        return
    if d["identical"]:
        console.print(f"v{d['from']['version']} and v{d['to']['version']} are identical")
        return
    for part in ("prompt", "config"):
        if d[part]:
            console.print(Syntax(d[part], "diff", word_wrap=True))


@prompts_app.command("analytics")
def prompts_analytics(
    name: str,
    since: str = typer.Option(None, "--from", help="ISO time: spans from"),
    until: str = typer.Option(None, "--to", help="ISO time: spans before"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per version: calls, errors, latency p50/p95, tokens, cost, average scores."""
    params = {k: v for k, v in {"from": since, "to": until}.items() if v}
    data = api_call("GET", _p(name, "analytics"), params=params)
    if as_json:
        print_json(data)
        return
    table = Table("version", "labels", "calls", "errors", "p50 ms", "p95 ms", "tokens", "cost", "scores")

    def ms(v: Any) -> str:
        return f"{v:.0f}" if v is not None else "-"

    for r in data["data"]:
        scores = ", ".join(f"{k}={s['avg']:.2f} (n={s['count']})" for k, s in r["scores"].items()
                           if s["avg"] is not None)
        table.add_row("none" if r["version"] is None else str(r["version"]), ", ".join(r["labels"]), str(r["count"]),
                      str(r["errors"]), ms(r["latency_ms"]["p50"]), ms(r["latency_ms"]["p95"]), str(r["total_tokens"]),
                      f"${r['cost']['total']:.6f}", scores)
    console.print(table)


# --- running ------------------------------------------------------------------------------------------------


@prompts_app.command("compile")
def prompts_compile(
    name: str,
    version: int = typer.Option(None, "--version", "-V"),
    label: str = typer.Option(None, "--label", "-l"),
    var: list[str] = typer.Option([], "--var", "-v", help="NAME=VALUE (JSON values for placeholders)"),
    vars_file: Path = typer.Option(None, "--vars-file", exists=True, help="JSON/YAML mapping of variables"),
) -> None:
    """Print a version compiled with variables (nothing is called)."""
    v = _fetch_version(name, version, label)
    out = api_call("POST", _p(name, "versions", str(v["version"]), "compile"),
                   json={"variables": _variables(var, vars_file)})
    if out["type"] == "text":
        console.print(out["compiled"], markup=False, highlight=False)
    else:
        print_json(out["compiled"])


@prompts_app.command("run")
def prompts_run(
    name: str,
    version: int = typer.Option(None, "--version", "-V"),
    label: str = typer.Option(None, "--label", "-l"),
    var: list[str] = typer.Option([], "--var", "-v", help="NAME=VALUE (JSON values for placeholders)"),
    vars_file: Path = typer.Option(None, "--vars-file", exists=True),
    model: str = typer.Option(None, help="Gateway model alias (default: the config's model, else local)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Override a config parameter: max_tokens=50"),
    no_cache: bool = typer.Option(False, "--no-cache", help="Skip the gateway's response cache."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Playground: run a version through the gateway; prints output, tokens, cost, latency (traced)."""
    v = _fetch_version(name, version, label)
    body = {"variables": _variables(var, vars_file), "params": _pairs(param, "--param"), "cache": not no_cache}
    if model:
        body["model"] = model
    out = api_call("POST", _p(name, "versions", str(v["version"]), "run"), json=body, timeout=300)
    if as_json:
        print_json(out)
        return
    console.print(out["output"] or "", markup=False, highlight=False)
    u = out.get("usage") or {}
    cost = f"${out['cost']:.6f}" if out.get("cost") is not None else "n/a"
    err_console.print(f"[dim]{name} v{v['version']} on {out['model']}: {u.get('prompt_tokens', '?')} in / "
                      f"{u.get('completion_tokens', '?')} out tokens, {cost}, {out['latency_ms']:.0f} ms"
                      f"{' (cached)' if out['cache_hit'] else ''}, trace {out['trace_id']}[/]")


@prompts_app.command("delete")
def prompts_delete(name: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a prompt with every version, label and its history (admin key)."""
    if not yes and not typer.confirm(f"delete prompt {name!r} and all its versions?"):
        raise typer.Exit(1)
    api_call("DELETE", _p(name))
    console.print(f"deleted {name}")


# --- files: pull / push ---------------------------------------------------------------------------------------


def _file_path(root: Path, name: str, fmt: str) -> Path:
    *folders, last = name.split("/")
    return root.joinpath(*folders) / f"{last}.{fmt}"


def _dump(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    yaml = _yaml()

    class _Dumper(yaml.SafeDumper):  # type: ignore[name-defined]
        pass

    def _str(dumper: Any, s: str) -> Any:  # multi-line templates as readable | blocks
        style = "|" if "\n" in s else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


@prompts_app.command("pull")
def prompts_pull(
    directory: Path = typer.Argument(..., help="Folder to write one file per prompt into."),
    prefix: str = typer.Option(None, help="Only prompts in this folder, e.g. support/"),
    fmt: str = typer.Option("yaml", "--format", help="yaml | json"),
) -> None:
    """Write every prompt's latest version to DIRECTORY/<name>.yaml (folders for '/'). Each file
    records the version it came from, so `push` can tell whether the server moved on."""
    if fmt not in ("yaml", "json"):
        err_console.print("[red]--format is yaml or json[/]")
        raise typer.Exit(2)
    data = api_call("GET", f"{_API}/export", params={"prefix": prefix} if prefix else None)["data"]
    for v in data:
        labels = {lb: (ts[0]["version"] if len(ts) == 1 else ts) for lb, ts in v.get("label_targets", {}).items()}
        path = _file_path(directory, v["name"], fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        for other in _FILE_SUFFIXES:  # one file per prompt, whatever the format
            twin = path.with_suffix(other)
            if twin != path and twin.exists():
                twin.unlink()
        path.write_text(_dump(prompt_to_file(v, labels=labels), fmt))
        console.print(f"pulled {v['name']} v{v['version']} -> {path}")
    console.print(f"{len(data)} prompt(s) in {directory}")


def _set_file_version(path: Path, version: int) -> None:
    """Record the version a file now matches, keeping the rest of the file (comments too)."""
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        data["version"] = version
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    new, n = re.subn(r"(?m)^version:[^\n]*$", f"version: {version}", text, count=1)
    if n == 0:
        new, n = re.subn(r"(?m)^(name:[^\n]*)$", rf"\1\nversion: {version}", text, count=1)
    path.write_text(new)


def _same(f: dict[str, Any], v: dict[str, Any]) -> bool:
    return all(f[k] == v[k] for k in ("type", "template_format", "prompt")) and (f["config"] or {}) == (
        v["config"] or {})


@prompts_app.command("push")
def prompts_push(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Folder of prompt files."),
    force: bool = typer.Option(False, "--force", help="Create versions even where the server moved on."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would happen."),
    message: str = typer.Option("podium prompts push", "--message", "-m", help="Commit message of new versions."),
) -> None:
    """Create a new version for every file whose content differs from the version it was
    pulled from. Refuses (exit 1) a file whose prompt has a newer version on the server than
    the file's `version` (someone else changed it: pull and merge first), unless --force."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in _FILE_SUFFIXES and p.is_file())
    conflicts = 0
    for path in files:
        try:
            f = prompt_from_file(_load_file(path), source=str(path))
        except (ValidationFailed, ValueError) as e:
            err_console.print(f"[red]{path}: {getattr(e, 'message', e)}[/]")
            conflicts += 1
            continue
        name = f["name"]
        r = _request("GET", _p(name))
        body = {k: f[k] for k in ("type", "template_format", "prompt", "config", "tags")}
        body["name"], body["commit_message"] = name, message
        if r.status_code == 404:
            action = "create (new prompt)"
            body["base_version"] = 0
        elif r.status_code >= 400:
            err_console.print(f"[red]{name}: error {r.status_code}: {_message(r)}[/]")
            raise typer.Exit(1)
        else:
            summary = r.json()
            latest = summary["latest_version"]
            base = f["version"]
            known = api_call("GET", _p(name, "versions", str(base))) if base and base <= latest else None
            if known is not None and _same(f, known):
                if sorted(f["tags"]) != sorted(summary["tags"]):
                    if not dry_run:
                        api_call("PATCH", _p(name), json={"tags": f["tags"]})
                    console.print(f"{name}: tags updated")
                elif base < latest:
                    console.print(f"{name}: unchanged (the server has v{latest}; pull to update the file)")
                else:
                    console.print(f"{name}: unchanged (v{latest})")
                continue
            if base != latest and not force:
                conflicts += 1
                err_console.print(
                    f"[red]{name}: conflict[/] - the server is at v{latest} but {path} was pulled from "
                    f"{'v' + str(base) if base else 'no version'}; pull, merge your change, and push again "
                    "(or --force to create a new version from the file anyway)")
                continue
            action = f"create v{latest + 1}" + (" (forced)" if base != latest else "")
            if base == latest:
                body["base_version"] = latest
        if dry_run:
            console.print(f"{name}: would {action}")
            continue
        r = _request("POST", _API, json=body)
        if r.status_code == 409:
            conflicts += 1
            err_console.print(f"[red]{name}: conflict[/] - {_message(r)}")
            continue
        if r.status_code >= 400:
            err_console.print(f"[red]{name}: error {r.status_code}:[/] {_message(r)}")
            raise typer.Exit(1)
        created = r.json()
        _set_file_version(path, created["version"])
        console.print(f"{name}: created v{created['version']}")
    if conflicts:
        err_console.print(f"[red]{conflicts} file(s) not pushed[/]")
        raise typer.Exit(1)
