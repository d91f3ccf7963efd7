"""`podium tune package`: a fine-tuned model made servable. Merge the LoRA adapter into its base
(or take an already merged folder), write it as an F16 GGUF, quantize it (Q8_0, Q4_K_M with
llama.cpp's quantizer) and register every file as a version of a registered model through the
REST API, with its lineage (training run, dataset version, base model) and metadata (quant,
size). The files are moved under ``$PODIUM_HOME/models/NAME/VERSION/`` (docs/registry.md)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import api_call, console, err_console, print_json
from podium.config import Settings

__all__ = ["package_cmd", "register_gguf"]

_ORDER = ("f16", "q8_0", "q4_k_m")


def _fail(msg: str, code: int = 2) -> typer.Exit:
    err_console.print(msg)
    return typer.Exit(code)


def _quants(spec: str) -> list[str]:
    qs = [q.strip().lower() for q in spec.split(",") if q.strip()]
    bad = [q for q in qs if q not in _ORDER]
    if not qs or bad:
        raise _fail(f"[red]--quant {spec!r}:[/] pick from {', '.join(_ORDER)} (comma-separated)")
    return list(dict.fromkeys(qs))


def register_gguf(name: str, path: Path, *, quant: str, base_model: str | None, run: str | None,
                  dataset: str | None, description: str | None = None,
                  metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register ``path`` (a GGUF under ``$PODIUM_HOME``) as a new version of ``name``: moved (not
    copied) under ``$PODIUM_HOME/models/NAME/VERSION/``, hashed, with its lineage and metadata."""
    from podium.cli.commands.registry import _post_version
    from podium.registry.registry import sha256_file

    staged = Settings().home_dir / "models" / name / f".tmp-{uuid.uuid4().hex}" / path.name
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.replace(staged)
    except OSError:  # another file system: copy
        shutil.copyfile(path, staged)
    digest, size = sha256_file(staged)
    meta = {"quant": quant, "size_bytes": size, "base_model": base_model, **(metadata or {})}
    body: dict[str, Any] = {
        "artifact": {"kind": "gguf", "uri": str(staged), "format": "gguf", "sha256": digest, "size": size},
        "base_model": base_model, "dataset": dataset, "training_run_id": run, "metadata": meta,
        "description": description or f"{quant.upper()} GGUF",
    }
    try:
        return _post_version(name, body, staged)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)


_BUNDLED = ("smollm2", "smollm2-135m-instruct", "local")


def _base_folder(base: str) -> str:
    """What ``ensure_base_model`` takes: ``smollm2``, a folder, or a registered merged version's folder
    (``registry:/NAME@N`` or ``NAME@N`` as a run records it)."""
    if base.lower() in _BUNDLED or Path(base).expanduser().exists():
        return base
    if "@" not in base:
        return base  # ensure_base_model says what is wrong with it
    v = api_call("GET", "/api/v1/registry/resolve", params={"ref": base})
    art = v.get("artifact") or {}
    uri = Path(str(art.get("uri") or "")).expanduser()
    if art.get("kind") != "merged" or not uri.exists():
        raise _fail(f"[red]base {base}:[/] {v['name']}@{v['version']} is not a merged model folder on this machine "
                    f"(kind {art.get('kind')}); pass --base smollm2 or a Hugging Face folder")
    return str(uri if uri.is_dir() else uri.parent)


def _from_run(run_id: str) -> dict[str, Any]:
    return dict(api_call("GET", f"/api/v1/training-runs/{quote(run_id, safe='')}"))


def package_cmd(
    register: str = typer.Option(..., "--register", help="Registered model NAME to add the versions to."),
    adapter: Path = typer.Option(None, "--adapter", help="LoRA adapter folder (a run's adapter/)."),
    merged: Path = typer.Option(None, "--merged", help="An already merged Hugging Face folder (no --adapter), "
                                "or smollm2: the bundled base model itself."),
    base: str = typer.Option(None, "--base", help="Base model of the adapter: smollm2, a HF folder or "
                             "registry:/NAME@N (merged). Default: the run's, else smollm2."),
    quant: str = typer.Option("f16,q8_0,q4_k_m", "--quant", help="Files to register: f16, q8_0, q4_k_m."),
    run: str = typer.Option(None, "--run", help="Training run id (lineage; its adapter when no --adapter)."),
    dataset: str = typer.Option(None, "--dataset", help="Training data DATASET@VERSION (default: the run's)."),
    alias: str = typer.Option(None, "--alias", help="Point ALIAS (e.g. challenger) at the first --quant's version."),
    template: Path = typer.Option(None, "--template", help="GGUF to copy the tokenizer and metadata from "
                                  "(default: the bundled SmolLM2 GGUF)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge, convert to GGUF, quantize and register each file as a version of NAME."""
    from podium.errors import PodiumError
    from podium.inference.llama import default_model_path
    from podium.registry.registry import check_name, parse_dataset
    from podium.tune.extra import require_tune_extra

    quants = _quants(quant)
    try:
        require_tune_extra("podium tune package", ("torch", "transformers", "peft", "gguf"))
        check_name(register)
        if dataset:
            parse_dataset(dataset)
    except PodiumError as e:
        raise _fail(f"[red]{e.message}[/]") from None
    if adapter is not None and merged is not None:
        raise _fail("[red]pass --adapter or --merged, not both[/]")
    run_row: dict[str, Any] | None = _from_run(run) if run else None
    if adapter is None and merged is None:
        found = ((run_row or {}).get("artifacts") or {}).get("adapter")
        if not found:
            raise _fail("[red]nothing to package:[/] pass --adapter DIR (a run's adapter/ folder), --merged DIR, "
                        "or --run RUN_ID of a completed run")
        adapter = Path(found)
    if dataset is None and run_row and run_row.get("dataset"):
        ds = run_row["dataset"]
        dataset = f"{ds['name']}@{ds['version']}"
    base = base or (run_row or {}).get("base_model") or "smollm2"
    base_name = "smollm2-135m-instruct" if base.lower() == "smollm2" else base
    settings = Settings()
    tmpl = template or settings.local_model_path or default_model_path()
    say = err_console.print
    work = settings.home_dir / "packages" / f".tmp-{uuid.uuid4().hex[:12]}"
    rows: list[dict[str, Any]] = []
    try:
        from podium.tune.gguf import merge_adapter, quantize, to_gguf

        if adapter is not None:
            from podium.tune.base_model import ensure_base_model

            base_dir = ensure_base_model(settings, _base_folder(base))
            say(f"merging {adapter} into {base} ...")
            src = merge_adapter(base_dir, adapter, work / "merged")
        elif merged is not None and not merged.exists() and str(merged).lower() in _BUNDLED:
            from podium.tune.base_model import ensure_base_model

            src = ensure_base_model(settings)  # the base model as a version (a champion to canary against)
            base_name = "smollm2-135m-instruct"
        else:
            src = merged
        say("writing the F16 GGUF ...")
        files = {"f16": to_gguf(src, work / f"{register}-f16.gguf", template=tmpl)}
        for q in quants:
            if q != "f16":
                say(f"quantizing to {q.upper()} ...")
                files[q] = quantize(files["f16"], work / f"{register}-{q}.gguf", q)
        lineage = {"source": str(adapter or merged)}
        for q in quants:
            rows.append(register_gguf(register, files[q], quant=q, base_model=base_name, run=run, dataset=dataset,
                                      metadata=lineage))
    except PodiumError as e:
        raise _fail(f"[red]{e.message}[/]", 1) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if alias:
        first = rows[0]
        api_call("PUT", f"/api/v1/registry/models/{quote(register, safe='')}/aliases/{quote(alias, safe='')}",
                 json={"version": first["version"], "comment": f"podium tune package ({quants[0]})"})
        for r in rows:
            if r is first:
                r["aliases"] = sorted({*r.get("aliases", []), alias})
    if as_json:
        print_json(rows)
        return
    from podium.cli.commands.registry import _size

    table = Table(Column("version", no_wrap=True), "quant", "size", "aliases", Column("sha256", no_wrap=True))
    for r in rows:
        a = r["artifact"]
        table.add_row(f"{r['name']}@{r['version']}", r["metadata"].get("quant", "-"), _size(a.get("size")),
                      ", ".join(r.get("aliases") or []) or "-", (a.get("sha256") or "")[:12])
    console.print(table)
    console.print(f"serve: gateway model {{provider: local, model: registry:/{register}@N}}")
