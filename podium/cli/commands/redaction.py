"""`podium redaction show|set|test`: the project's redaction rules, applied at ingestion before
anything is stored, through the REST API (an admin key; docs/governance.md#redaction)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from podium.cli._common import api_client, console, err_console, print_json

__all__ = ["redaction_app"]

redaction_app = typer.Typer(help="Redaction rules applied before storage (an admin key).", no_args_is_help=True)

_EXAMPLE = "rules:\n  - preset: credit_card\n  - path: metadata.password\nfail_closed: false"


def _call(method: str, path: str, **kw: Any) -> Any:
    """The REST call; on an error, the server's message and each detail (``rules[2].pattern: ...``), exit 1."""
    try:
        with api_client() as c:
            r = c.request(method, path, **kw)
    except httpx.HTTPError as e:
        err_console.print(f"[red]cannot reach the server:[/] {e}. Is `podium up` running at PODIUM_BASE_URL?")
        raise typer.Exit(1)
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            msg, details = err["message"], err.get("details") or []
        except Exception:
            msg, details = r.text, []
        err_console.print(f"[red]error {r.status_code}:[/] {msg}")
        for d in details[1:] if len(details) > 1 else []:
            if isinstance(d, dict):
                err_console.print(f"  {d.get('field') or '-'}: {d.get('message')}")
        raise typer.Exit(1)
    return r.json()


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        err_console.print(f"[red]cannot read {path}:[/] {e.strerror}")
        raise typer.Exit(2)
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as e:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        err_console.print(f"[red]{path} is not valid {kind}:[/] {e}")
        raise typer.Exit(2)


def _document(path: Path) -> dict[str, Any]:
    data = _read(path)
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        err_console.print(f"[red]{path}:[/] expected a rules document, e.g.\n{_EXAMPLE}")
        raise typer.Exit(2)
    return data


def _what(rule: dict[str, Any]) -> tuple[str, str]:
    for kind in ("preset", "path", "pattern", "scanner"):
        if kind in rule:
            extra = f" ({rule['engine']})" if kind == "scanner" and rule.get("engine") else ""
            return kind, f"{rule[kind]}{extra}"
    return "?", json.dumps(rule)


@redaction_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="The document as JSON (what `set` takes).")) -> None:
    """The project's rules, whether it is fail-closed, and who set them."""
    doc = _call("GET", "/api/v1/redaction-rules")
    if as_json:
        print_json({"rules": doc["rules"], "fail_closed": doc["fail_closed"]})
        return
    if not doc["rules"]:
        console.print("No redaction rules: items are stored as sent. Set some with `podium redaction set FILE.yaml` "
                      f"(presets: {', '.join(doc['presets'])}).")
        return
    table = Table("#", "kind", "rule", "replacement", "fields")
    for i, r in enumerate(doc["rules"]):
        kind, what = _what(r)
        table.add_row(str(i), kind, what, r.get("replacement") or "(default)", ", ".join(r.get("fields") or []) or
                      "all")
    console.print(table)
    mode = "fail-closed (items that cannot be redacted are rejected)" if doc["fail_closed"] else \
        "fail-open (a value a rule cannot redact is stored as the other rules left it, and counted)"
    console.print(f"Mode: {mode}. Set by {doc.get('updated_by') or '-'} at {str(doc.get('updated_at'))[:19]}.")
    for w in doc.get("warnings") or []:
        err_console.print(f"[yellow]warning:[/] {w}")


@redaction_app.command("set")
def set_rules(path: Path = typer.Argument(..., help="A YAML or JSON file: {rules: [...], fail_closed: false}.")
              ) -> None:
    """Replace the project's rules with the file's (validated by the server; errors name the rule)."""
    doc = _call("PUT", "/api/v1/redaction-rules", json=_document(path))
    n = len(doc["rules"])
    console.print(f"[green]Saved[/] {n} redaction rule{'s' if n != 1 else ''} "
                  f"({'fail-closed' if doc['fail_closed'] else 'fail-open'}); they apply to items ingested from now on.")
    for w in doc.get("warnings") or []:
        err_console.print(f"[yellow]warning:[/] {w}")


@redaction_app.command("test")
def test(
    sample: Path | None = typer.Argument(None, help='A JSON file keyed by stored field: {"input": ..., '
                                                    '"metadata": {...}}.'),
    text: str | None = typer.Option(None, "--text", help="Or a text, tried as a span's input."),
    rules: Path | None = typer.Option(None, "--rules", help="Try these rules (YAML/JSON) instead of the stored ones."),
) -> None:
    """Dry run: what a sample payload becomes (nothing is stored)."""
    if (sample is None) == (text is None):
        err_console.print("[red]give a sample file or --text[/] (e.g. podium redaction test --text 'card 4111 1111 "
                          "1111 1111')")
        raise typer.Exit(2)
    if text is not None:
        payload: dict[str, Any] = {"sample": {"input": text}}
    else:
        assert sample is not None
        payload = {"sample": _read(sample)}
    if not isinstance(payload["sample"], dict):
        err_console.print('[red]the sample is an object keyed by stored field, e.g. {"input": "...", "metadata": {}}')
        raise typer.Exit(2)
    if rules is not None:
        doc = _document(rules)
        payload["rules"] = doc.get("rules", [])
        if "fail_closed" in doc:
            payload["fail_closed"] = doc["fail_closed"]
    out = _call("POST", "/api/v1/redaction-rules/test", json=payload)
    if out["rejected"]:
        err_console.print(f"[red]rejected:[/] {out['rejected']}")
    else:
        print_json(out["redacted"])
    console.print(f"{out['changes']} value{'s' if out['changes'] != 1 else ''} redacted")
    for f in out["failures"]:
        err_console.print(f"[yellow]not redacted[/] by rules[{f['rule']}] in {f['field']}: {f['reason']}")
    if out["ignored_fields"]:
        err_console.print(f"[yellow]never read by redaction:[/] {', '.join(out['ignored_fields'])}")
    for w in out.get("warnings") or []:
        err_console.print(f"[yellow]warning:[/] {w}")
