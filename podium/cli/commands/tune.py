"""`podium tune export`: production traces as SFT, DPO or KTO training data (through the REST
API; see docs/training-data.md). Other `tune` subcommands (fine-tuning runs) come later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from podium.cli._common import api_call, console, err_console, print_json
from podium.tune.export import write_jsonl

__all__ = ["tune_app"]

tune_app = typer.Typer(help="Training data and fine-tuning from production traces.", no_args_is_help=True)

_NUMERIC = {"min_latency_ms", "max_latency_ms", "min_cost", "max_cost", "min_score", "max_score"}


def _filters(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        k = k.strip().replace("-", "_")
        if not sep or not k:
            err_console.print(f"[red]--filter {p!r}:[/] write KEY=VALUE, e.g. --filter name=chat --filter tag=prod")
            raise typer.Exit(2)
        if k in ("tag", "tags"):
            out.setdefault("tags", []).append(v)
        elif k in _NUMERIC:
            try:
                out[k] = float(v)
            except ValueError:
                err_console.print(f"[red]--filter {k}:[/] {v!r} is not a number")
                raise typer.Exit(2)
        else:
            out[k] = v
    return out


@tune_app.command("export")
def export_cmd(
    fmt: str = typer.Option(..., "--format", help="sft | dpo | kto"),
    dataset: str = typer.Option(None, "--dataset", help="Save as this dataset (new version when changed)."),
    filters: list[str] = typer.Option([], "--filter", help="Trace filter KEY=VALUE (name, tag, user_id, "
                                      "environment, release, model, status, from, to...). Repeatable."),
    where: str = typer.Option(None, "--where", help="SFT keeps / KTO labels desirable: 'user-feedback=1'."),
    rank_by: str = typer.Option(None, "--rank-by", help="DPO: the score ranking responses to one input."),
    min_margin: float = typer.Option(0.0, "--min-margin", min=0.0, help="DPO: least chosen-rejected gap."),
    span_kind: str = typer.Option(None, "--span-kind", help="Export spans of this kind, not traces."),
    span_name: str = typer.Option(None, "--span-name", help="Export spans of this name, not traces."),
    redact: bool = typer.Option(False, "--redact", help="Replace PII and secrets in the records."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1, help="Drop longer records."),
    validation: float = typer.Option(0.1, "--validation", min=0.0, max=0.99, help="Validation share."),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="Keep exact duplicates."),
    out: Path = typer.Option(None, "--out", help="Also write DIR/train.jsonl and DIR/validation.jsonl."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Statistics and a sample; save nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Export traces as training data, saved as a versioned dataset."""
    if dataset is None and not dry_run:
        err_console.print("[red]name a dataset:[/] --dataset NAME (or --dry-run to only look)")
        raise typer.Exit(2)
    body: dict[str, Any] = {
        "format": fmt, "dataset": dataset, "filter": _filters(filters), "where": where, "rank_by": rank_by,
        "min_margin": min_margin, "span_kind": span_kind, "span_name": span_name, "redact": redact,
        "max_tokens": max_tokens, "validation_ratio": validation, "dedup": not no_dedup, "dry_run": dry_run,
        "records": out is not None,
    }
    res = api_call("POST", "/api/v1/training-data/export", json={k: v for k, v in body.items() if v is not None})
    paths = write_jsonl(res.pop("records_by_split"), out) if out is not None else []
    if as_json:
        print_json(res)
        return
    ds = res.get("dataset")
    head = f"{res['records']} {fmt.upper()} records from {res['traces']} traces"
    if ds:
        head += f" -> dataset {ds['name']} v{ds['version']}" + ("" if ds["changed"] else " (unchanged)")
    elif dry_run:
        head += " (dry run: nothing saved)"
    console.print(head)
    console.print(f"train {res['splits']['train']}, validation {res['splits']['validation']}")
    if res["dropped"]:
        console.print("dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(res["dropped"].items())))
    if res["token_stats"]:
        table = Table("tokens", "count", "min", "p50", "p95", "max")
        for name, s in res["token_stats"].items():
            table.add_row(name, *(str(s[k]) for k in ("count", "min", "p50", "p95", "max")))
        console.print(table)
    for p in paths:
        console.print(f"wrote {p}")
