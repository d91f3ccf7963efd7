"""`podium registry compare NAME@1 NAME@2 ...`: registered GGUF versions side by side (size,
quantization, tokens/s through the gateway, perplexity of a fixed text, and with ``--suite`` the
eval suite's pass rate with each version as the model). The figures come from
:mod:`podium.registry.compare`; the suite runs through :mod:`podium.experiments` like
``podium eval run`` (docs/registry.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, console, err_console, experiments_client, print_json
from podium.config import Settings

__all__ = ["compare_cmd", "suite_pass_rate"]


def _fail(msg: str, code: int = 2) -> typer.Exit:
    err_console.print(msg)
    return typer.Exit(code)


def suite_pass_rate(suite_path: Path, model: str, *, base_url: str, public: str | None, secret: str) -> float | None:
    """The pass rate of the suite with every provider replaced by ``model`` (its first provider's config kept)."""
    from podium.experiments.suite import ProviderSpec, load_suite, run_suite

    suite = load_suite(suite_path)
    first = suite.providers[0]
    suite.providers = [ProviderSpec(id=model.removeprefix("registry:/"), type="gateway", model=model,
                                    config=dict(first.config))]
    suite.gates = []  # only the pass rate is wanted here
    suite.output_paths = []
    with experiments_client(base_url, public, secret) as sdk:
        result = run_suite(suite, sdk, base_url=base_url, api_key=secret, progress=False)
    exp = result["experiments"][0]["experiment"]
    pr = ((exp.get("summary") or {}).get("pass_rate") or {}).get("mean")
    return None if pr is None else float(pr)


def compare_cmd(
    refs: list[str] = typer.Argument(..., help="Versions to compare: NAME@1 NAME@2 (or NAME@ALIAS)."),
    suite: Path = typer.Option(None, "--suite", help="An eval suite (YAML): its pass rate per version."),
    text: Path = typer.Option(None, "--text", help="The text perplexity is measured on (default: a fixed "
                                                   "paragraph)."),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1, help="Tokens per timed request."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Size, quantization, tokens/s through the gateway, perplexity and suite pass rate per version."""
    from podium.errors import PodiumError
    from podium.registry.compare import (
        DEFAULT_TEXT,
        VersionFigures,
        gateway_tokens_per_s,
        perplexity_of,
        quant_of,
    )
    from podium.registry.serving import gguf_path

    settings = Settings()
    secret = settings.secret_key
    if not secret:
        raise _fail("no API key: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY (`make up` prints them)")
    base_url = settings.base_url.rstrip("/")
    sample = text.read_text(encoding="utf-8") if text is not None else DEFAULT_TEXT
    rows: list[VersionFigures] = []
    for ref in refs:
        v = api_call("GET", "/api/v1/registry/resolve", params={"ref": ref})
        name = f"{v['name']}@{v['version']}"
        try:
            path = gguf_path(v)
        except PodiumError as e:
            raise _fail(f"[red]{ref}:[/] {e.message}") from None
        fig = VersionFigures(ref=name, quant=quant_of(v), size_bytes=(v.get("artifact") or {}).get("size"))
        err_console.print(f"{name}: tokens/s through the gateway ...")
        try:
            fig.tokens_per_s, tokens, seconds = gateway_tokens_per_s(base_url, secret, f"registry:/{name}",
                                                                     max_tokens=max_tokens)
        except RuntimeError as e:
            raise _fail(f"[red]{e}[/]", 1) from None
        fig.extra.update(tokens=tokens, seconds=round(seconds, 3))
        err_console.print(f"{name}: perplexity ...")
        fig.perplexity = perplexity_of(path, sample, threads=settings.local_threads)
        if suite is not None:
            err_console.print(f"{name}: eval suite {suite} ...")
            fig.pass_rate = suite_pass_rate(suite, f"registry:/{name}", base_url=base_url,
                                            public=settings.public_key, secret=secret)
        rows.append(fig)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    from podium.cli.commands.registry import _size

    table = Table(Column("version", no_wrap=True), "quant", "size", "tok/s", "perplexity",
                  *(["pass rate"] if suite is not None else []))
    for r in rows:
        cells: list[Any] = [r.ref, r.quant or "-", _size(r.size_bytes),
                            f"{r.tokens_per_s:.1f}" if r.tokens_per_s is not None else "-",
                            f"{r.perplexity:.2f}" if r.perplexity is not None else "-"]
        if suite is not None:
            cells.append(f"{r.pass_rate:.0%}" if r.pass_rate is not None else "-")
        table.add_row(*cells)
    console.print(table)
