"""`podium eval ...` (suites, experiments, comparisons) and `podium datasets ...`.

``podium eval run suite.yaml`` exits 0 when every gate passes, 1 when a gate fails, 2 when the
suite cannot run (a configuration error, with the file and line; no server; no keys).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column, Table

from podium.cli._common import (
    api_call,
    console,
    err_console,
    experiments_client,
    on_server,
    print_json,
)
from podium.config import Settings
from podium.errors import PodiumError

if TYPE_CHECKING:
    from podium.experiments.results import SuiteResult

__all__ = ["datasets_app", "eval_app"]

eval_app = typer.Typer(help="Run evaluation suites (CI gates), list and compare experiments.", no_args_is_help=True)
judges_app = typer.Typer(help="Judge prompts in the prompt registry.", no_args_is_help=True)
eval_app.add_typer(judges_app, name="judges")
datasets_app = typer.Typer(help="Versioned evaluation datasets.", no_args_is_help=True)

EXIT_PASS, EXIT_GATE_FAILED, EXIT_CONFIG = 0, 1, 2


def _fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _ci(m: dict[str, Any]) -> str:
    if m.get("low") is None:
        return ""
    return f"[{m['low']:.3f}, {m['high']:.3f}]"


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def print_summary(exp: dict[str, Any], title: str | None = None) -> None:
    s = exp.get("summary") or {}
    table = Table(title=title or exp.get("name"), title_justify="left")
    for col in ("metric", "mean", "95% CI", "n", "pass rate", "errors"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in ("pass_rate", "score"):
        m = s.get(key) or {}
        if m.get("mean") is not None:
            table.add_row(f"[bold]{key}[/]", _num(m["mean"]), _ci(m), _num(m.get("n")), "", "")
    for name, m in (s.get("scorers") or {}).items():
        table.add_row(name, _num(m.get("mean")), _ci(m), _num(m.get("n")), _num(m.get("pass_rate")),
                      str(m.get("errors") or ""))
    console.print(table)
    lat = s.get("latency_ms") or {}
    extra = f"items {s.get('items', 0)} · runs {s.get('runs', 0)} · task errors {s.get('errors', 0)}"
    if lat.get("p50") is not None:
        extra += f" · latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms"
    if (s.get("tokens") or {}).get("total_tokens"):
        extra += f" · {s['tokens']['total_tokens']} tokens"
    console.print(f"[dim]{extra} · experiment {exp.get('id')}[/]")


# --- podium eval run -----------------------------------------------------------------------------------------


@eval_app.command("run")
def eval_run(
    suite_path: Path = typer.Argument(..., help="The suite YAML (prompts, providers, tests, gates)."),
    output: list[Path] = typer.Option([], "--output", "-o", help="Write a report: results.json, results.yaml, "
                                                                 "junit.xml, results.csv or report.html (repeat "
                                                                 "for several; adds to the suite's outputPath)."),
    label: list[str] = typer.Option([], help="Label the experiments when every gate passes (e.g. main: the "
                                             "baseline later runs compare with)."),
    prompt: list[str] = typer.Option([], help="Replace the suite's prompts (text, or a file path); handy to "
                                              "check a prompt change against the gates."),
    repeat: int = typer.Option(None, min=1, help="Repetitions per test (overrides options.repeat)."),
    resume: str = typer.Option(None, help="Resume an interrupted run: its run id (printed when it stopped)."),
    local: bool = typer.Option(False, "--local", help="Run against an embedded server on this machine's store "
                                                      "instead of PODIUM_BASE_URL."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    executor: str = typer.Option(None, "--executor", help="local (threads here) or ray (Ray tasks on "
                                 "PODIUM_RAY_ADDRESS, else a private local Ray; docs/ray.md). Default: "
                                 "PODIUM_EXECUTOR."),
) -> None:
    """Run an evaluation suite; exit 0 when every gate passes, 1 when one fails, 2 on a configuration error."""
    try:
        from podium.experiments.report import REPORT_SUFFIXES, write_report
        from podium.experiments.runner import Interrupted
        from podium.experiments.suite import PromptSpec, SuiteError, load_suite, run_suite
    except ImportError as e:
        raise _fail(f"evaluation needs the eval extra ({e.name} is missing): pip install 'podium[eval,server]'")
    for out in output:
        if out.suffix.lower() not in REPORT_SUFFIXES:
            raise _fail(f"--output {out}: name the report .json, .yaml, .xml (JUnit), .csv or .html")
    try:
        suite = load_suite(suite_path)
    except SuiteError as e:
        raise _fail(e.message)
    if prompt:
        specs = []
        for i, p in enumerate(prompt):
            fp = Path(p)
            text = fp.read_text(encoding="utf-8") if len(p) < 1024 and fp.is_file() else p
            specs.append(PromptSpec(suite.prompts[i].label if i < len(suite.prompts) else f"prompt-{i + 1}", text))
        suite.prompts = specs
    settings = Settings()

    def go(base_url: str, public: str | None, secret: str | None) -> SuiteResult:
        if not secret:
            raise _fail("no API key: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY (`make up` prints them), or use "
                        "--local")
        with experiments_client(base_url, public, secret) as sdk:
            try:
                sdk.evals.request("GET", "/datasets", params={"limit": 1}, retries=1)
            except PodiumError as e:
                raise _fail(e.message)
            return run_suite(suite, sdk, base_url=base_url, api_key=secret, labels=label, resume=resume,
                             repeat=repeat, progress=progress and not as_json, executor=executor)

    try:
        result = on_server(settings, go, local=local, fail=_fail)
    except Interrupted as e:
        group = (e.experiment.get("run_group") or "")
        err_console.print(f"[yellow]interrupted[/]: finished items are recorded (experiment {e.experiment.get('id')})."
                          f" Resume with: podium eval run {suite_path} --resume {group}")
        raise typer.Exit(130)
    for out in [*output, *suite.output_paths]:
        fmt = write_report(result, out)
        err_console.print(f"wrote {fmt} report {out}")
    if as_json:
        from podium.experiments.report import render_json

        print(render_json(result), end="")
    else:
        for exp in result["experiments"]:
            print_summary(exp["experiment"], exp["variant"]["name"])
            for g in exp["gates"]:
                mark = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]–[/]"}[g["status"]]
                console.print(f"  {mark} {g['gate']}: {g['detail']}")
            if exp.get("fairness"):  # the per-group table of a fairness/BBQ suite (docs/fairness.md)
                from podium.experiments.fairness import render_table

                console.print(render_table(exp["fairness"]), highlight=False, markup=False, end="")
        verdict = "[bold green]PASSED[/]" if result["passed"] else "[bold red]FAILED[/]"
        console.print(f"{verdict} {result['suite']['name']} (run {result['run_group']}, "
                      f"{result['duration_s']:.1f} s)")
    raise typer.Exit(EXIT_PASS if result["passed"] else EXIT_GATE_FAILED)


# --- experiments --------------------------------------------------------------------------------------------


@eval_app.command("list")
def eval_list(
    name: str = typer.Option(None, help="Exact experiment name."),
    label: str = typer.Option(None),
    dataset: str = typer.Option(None),
    status: str = typer.Option(None, help="running | completed | failed | interrupted"),
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent experiments, newest first."""
    params = {k: v for k, v in {"name": name, "label": label, "dataset": dataset, "status": status,
                                "limit": limit}.items() if v is not None}
    page = api_call("GET", "/api/v1/experiments", params=params)
    if as_json:
        print_json(page)
        return
    table = Table("created", Column("id", no_wrap=True), "name", "dataset", "status", "items", "pass rate", "labels")
    for e in page["data"]:
        pr = ((e.get("summary") or {}).get("pass_rate") or {}).get("mean")
        ds = f"{e['dataset_name']}@{e['dataset_version']}" if e.get("dataset_name") else ""
        table.add_row(str(e["created_at"])[:19].replace("T", " "), e["id"], e["name"], ds, e["status"],
                      str(e["item_count"]), _num(pr), ", ".join(e.get("labels") or []))
    console.print(table)


@eval_app.command("show")
def eval_show(
    experiment_id: str,
    items: bool = typer.Option(False, "--items", help="Also list the item results."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """An experiment's summary (means with 95% CIs), optionally its items."""
    exp = api_call("GET", f"/api/v1/experiments/{experiment_id}")
    rows = api_call("GET", f"/api/v1/experiments/{experiment_id}/items", params={"limit": 1000})["data"] if items else []
    if as_json:
        print_json({"experiment": exp, "items": rows} if items else exp)
        return
    print_summary(exp)
    if items:
        table = Table("item", "rep", "output", "passed", "error")
        for it in rows:
            out = it.get("output")
            text = out if isinstance(out, str) else json.dumps(out, default=str)
            table.add_row(it["item_id"], str(it["repetition"]), (text or "")[:80],
                          {True: "[green]yes[/]", False: "[red]no[/]"}.get(it.get("passed"), "–"),
                          (it.get("error") or "")[:80])
        console.print(table)


@eval_app.command("label")
def eval_label(experiment_id: str, labels: list[str] = typer.Argument(..., help="Labels to add, e.g. main"),
               remove: bool = typer.Option(False, "--remove", help="Remove these labels instead.")) -> None:
    """Add (or remove) labels; no_regression gates compare with the newest run carrying a label."""
    body = {"remove_labels" if remove else "add_labels": labels}
    exp = api_call("PATCH", f"/api/v1/experiments/{experiment_id}", json=body)
    console.print(f"{exp['id']}: labels {', '.join(exp['labels']) or '(none)'}")


@eval_app.command("compare")
def eval_compare(
    baseline: str = typer.Argument(..., help="The baseline experiment id."),
    candidates: list[str] = typer.Argument(..., help="One or more experiment ids to compare with it."),
    metric: list[str] = typer.Option([], help="Only these metrics (default: pass_rate, score, every shared scorer)."),
    confidence: float = typer.Option(0.95),
    tolerance: float = typer.Option(0.0, help="Loss accepted before a regression counts (metric units)."),
    show_items: int = typer.Option(5, "--items", help="Show this many improved and regressed items per metric."),
    fail_on_regression: bool = typer.Option(False, help="Exit 1 when any metric regressed significantly."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per-metric differences with paired-bootstrap CIs, and the items that improved or regressed."""
    params: list[tuple[str, Any]] = [("baseline", baseline), *(("candidate", c) for c in candidates),
                                     ("confidence", confidence), ("tolerance", tolerance)]
    if metric:
        params.append(("metrics", ",".join(metric)))
    data = api_call("GET", "/api/v1/experiments/compare", params=params)
    if as_json:
        print_json(data)
    regressed_any = False
    for cand in data["candidates"]:
        b, c = data["baseline"], cand["experiment"]
        if not as_json:
            table = Table(title=f"{c['name']} ({c['id']}) vs baseline {b['name']} ({b['id']})", title_justify="left")
            for col in ("metric", "baseline", "candidate", "diff", f"{confidence:.0%} CI", "improved", "regressed",
                        "same", "verdict"):
                table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
        for name, m in cand["metrics"].items():
            regressed_any |= bool(m.get("regressed"))
            if as_json:
                continue
            verdict = ("[red]regressed[/]" if m.get("regressed") else "[green]improved[/]" if m.get("improved")
                       else "no significant change")
            ci = f"{m['low']:+.3f} to {m['high']:+.3f}" if m.get("low") is not None else "–"
            items = m.get("items") or {}
            table.add_row(name, _num(m.get("baseline_mean")), _num(m.get("candidate_mean")),
                          f"{m['diff']:+.3f}" if m.get("diff") is not None else "–", ci,
                          str(items.get("improved", 0)), str(items.get("regressed", 0)), str(items.get("unchanged", 0)),
                          verdict)
        if not as_json:
            console.print(table)
            for name, m in cand["metrics"].items():
                for kind in ("regressed", "improved"):
                    rows = m.get(f"{kind}_items") or []
                    if rows and show_items:
                        shown = ", ".join(f"{r['item_id']} ({r['delta']:+.3g})" for r in rows[:show_items])
                        console.print(f"  {name} {kind}: {shown}" + (" ..." if len(rows) > show_items else ""))
    if fail_on_regression and regressed_any:
        raise typer.Exit(EXIT_GATE_FAILED)


@judges_app.command("push")
def judges_push(force: bool = typer.Option(False, help="Push even when the prompt exists (a new version).")) -> None:
    """Write the built-in judge templates to the prompt registry as podium/judge/<name> (label
    production), so they can be tuned and tracked like any prompt."""
    from podium.experiments.judges import builtin_prompt_bodies

    for body in builtin_prompt_bodies():
        from podium.cli._common import api_client

        with api_client() as c:
            exists = c.get(f"/api/v1/prompts/{body['name']}").status_code == 200
        if exists and not force:
            console.print(f"[dim]{body['name']} exists; kept (--force pushes a new version)[/]")
            continue
        v = api_call("POST", "/api/v1/prompts", json=body)
        console.print(f"{v['name']} v{v['version']} (production)")


# --- datasets -----------------------------------------------------------------------------------------------


def _items_file(path: Path, fmt: str | None) -> list[dict[str, Any]]:
    from podium.core.datasets import parse_dataset_file

    try:
        return [i.to_dict() for i in parse_dataset_file(path, format=fmt)]
    except PodiumError as e:
        raise _fail(e.message)


@datasets_app.command("list")
def datasets_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Datasets with their latest version and size."""
    page = api_call("GET", "/api/v1/datasets", params={"limit": 1000})
    if as_json:
        print_json(page)
        return
    table = Table("name", "version", "items", "updated", "description")
    for d in page["data"]:
        table.add_row(d["name"], str(d["latest_version"]), str(d["item_count"]), str(d["updated_at"])[:19],
                      d.get("description") or "")
    console.print(table)


@datasets_app.command("create")
def datasets_create(
    name: str,
    file: Path = typer.Argument(None, help="Items from a .jsonl, .csv or .json file (optional)."),
    description: str = typer.Option(None),
    message: str = typer.Option(None, "-m", "--message"),
    fmt: str = typer.Option(None, "--format", help="jsonl | csv | json (default: from the file name)"),
) -> None:
    """Create a dataset; its version 1 holds the file's items."""
    items = _items_file(file, fmt) if file else []
    d = api_call("POST", "/api/v1/datasets", json={"name": name, "description": description, "items": items,
                                                   "message": message})
    console.print(f"{d['name']} v{d['latest_version']}: {d['item_count']} items")


@datasets_app.command("add")
def datasets_add(
    name: str,
    file: Path,
    replace: bool = typer.Option(False, help="The new version holds exactly the file's items."),
    create: bool = typer.Option(False, help="Create the dataset when it does not exist."),
    message: str = typer.Option(None, "-m", "--message"),
    fmt: str = typer.Option(None, "--format", help="jsonl | csv | json (default: from the file name)"),
) -> None:
    """Add or update items from a file (by id); a new version when anything changed."""
    r = api_call("POST", f"/api/v1/datasets/{name}/items", json={
        "items": _items_file(file, fmt), "message": message, "replace": replace, "create": create})
    if r["changed"]:
        console.print(f"{name} v{r['version']}: +{r['added']} added, {r['updated']} updated, {r['removed']} removed "
                      f"({r['item_count']} items)")
    else:
        console.print(f"{name}: nothing changed (still v{r['version']})")


@datasets_app.command("show")
def datasets_show(
    name: str,
    version: int = typer.Option(None, min=1),
    split: str = typer.Option(None),
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Items of a version (default: the latest)."""
    params = {k: v for k, v in {"version": version, "split": split, "limit": limit}.items() if v is not None}
    page = api_call("GET", f"/api/v1/datasets/{name}/items", params=params)
    if as_json:
        print_json(page)
        return
    table = Table(title=f"{name} v{page['version']}", title_justify="left")
    for col in ("id", "input", "expected", "split"):
        table.add_column(col)
    for it in page["data"]:
        table.add_row(it["id"], json.dumps(it["input"], ensure_ascii=False)[:60],
                      json.dumps(it["expected"], ensure_ascii=False)[:40] if it["expected"] is not None else "",
                      it.get("split") or "")
    console.print(table)


@datasets_app.command("versions")
def datasets_versions(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every version with its changes."""
    versions = api_call("GET", f"/api/v1/datasets/{name}/versions")["data"]
    if as_json:
        print_json(versions)
        return
    table = Table("version", "items", "added", "updated", "removed", "source", "created", "message")
    for v in versions:
        table.add_row(str(v["version"]), str(v["item_count"]), str(v["added"]), str(v["updated"]), str(v["removed"]),
                      (v.get("source") or {}).get("kind", ""), str(v["created_at"])[:19], v.get("message") or "")
    console.print(table)


@datasets_app.command("export")
def datasets_export(name: str, version: int = typer.Option(None, min=1),
                    out: Path = typer.Option(None, "-o", "--output", help="JSONL file (default: stdout)")) -> None:
    """A version's items as JSONL (the format `create` and `add` read)."""
    rows: list[dict[str, Any]] = []
    cursor = None
    resolved = version
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if resolved is not None:
            params["version"] = resolved
        if cursor:
            params["cursor"] = cursor
        page = api_call("GET", f"/api/v1/datasets/{name}/items", params=params)
        resolved = page["version"]
        rows.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    lines = [json.dumps({k: v for k, v in r.items() if k != "valid_from" and v not in (None, {})},
                        ensure_ascii=False) for r in rows]
    text = "\n".join(lines) + ("\n" if lines else "")
    if out:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(rows)} items of {name} v{resolved} to {out}")
    else:
        print(text, end="")


@datasets_app.command("from-traces")
def datasets_from_traces(
    name: str,
    trace_name: str = typer.Option(None, "--name", help="Exact trace name."),
    user_id: str = typer.Option(None, "--user"),
    session_id: str = typer.Option(None, "--session"),
    tag: list[str] = typer.Option([], help="Repeat for several (all must match)."),
    since: str = typer.Option(None, "--from", help="ISO time"),
    until: str = typer.Option(None, "--to", help="ISO time"),
    score_name: str = typer.Option(None, help="Only traces with this score..."),
    min_score: float = typer.Option(None, help="...at least this value"),
    limit: int = typer.Option(1000, min=1, max=10_000),
    no_expected: bool = typer.Option(False, "--no-expected", help="Do not use the traces' outputs as expected."),
    split: str = typer.Option(None),
    message: str = typer.Option(None, "-m", "--message"),
) -> None:
    """Add production traces that match the filters as items (a new version)."""
    f = {k: v for k, v in {"name": trace_name, "user_id": user_id, "session_id": session_id, "tags": tag or None,
                           "from": since, "to": until, "score_name": score_name, "min_score": min_score}.items()
         if v is not None}
    r = api_call("POST", f"/api/v1/datasets/{name}/from-traces", json={
        "filter": f, "limit": limit, "expected": None if no_expected else "output", "split": split,
        "message": message})
    console.print(f"{name} v{r['version']}: {r['traces']} traces matched, +{r['added']} added, {r['updated']} "
                  f"updated, {r['skipped_without_input']} skipped (no input)")


@datasets_app.command("delete")
def datasets_delete(name: str, yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete a dataset and all its versions (experiments keep their copies)."""
    if not yes:
        typer.confirm(f"Delete dataset {name!r} and every version?", abort=True)
    api_call("DELETE", f"/api/v1/datasets/{name}")
    console.print(f"deleted {name}")


from podium.cli.commands.eval_sweep import sweep_cmd  # noqa: E402  (cost/quality sweeps, docs/sweeps-eval.md)

eval_app.command("sweep")(sweep_cmd)

from podium.cli.commands.eval_sweeps import sweeps_app  # noqa: E402  (recorded sweeps: decide, promote)

eval_app.add_typer(sweeps_app, name="sweeps")
