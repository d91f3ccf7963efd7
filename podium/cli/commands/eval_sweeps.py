"""`podium eval sweeps list|show|decide|promote`: recorded evaluation sweeps on a running server
(docs/sweeps-eval.md). ``decide`` asks the server for one trial by a rule and prints the
evidence; ``promote`` turns a trial into a new prompt version (its config holds the trial's model
and parameters) and, with ``--label``, runs the sweep's suite against that version with the
suite's gates (as ``podium eval run`` does) and moves the label only when they pass (else exit 1).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Column, Table

from podium.cli._common import (
    api_call,
    api_client,
    cli_keys,
    console,
    err_console,
    experiments_client,
    print_json,
)
from podium.config import Settings
from podium.errors import PodiumError

__all__ = ["sweeps_app"]

sweeps_app = typer.Typer(help="Recorded eval sweeps: list, show the front, decide, promote a trial.",
                         no_args_is_help=True)

_API = "/api/v1/eval-sweeps"
RULES = ("cheapest_not_worse", "best_under_cost", "fastest_not_worse", "best_under_p95")
EXIT_GATE_FAILED, EXIT_CONFIG = 1, 2


def _fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    err_console.print(f"[red]error[/]: {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _num(v: Any, fmt: str = ".3g") -> str:
    if v is None:
        return "-"
    return format(float(v), fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _money(v: Any) -> str:
    return "-" if v is None else f"${float(v):,.4f}"


def config_text(config: dict[str, Any]) -> str:
    """A trial's configuration in one short line: ``model k=v ...`` (prompt version, params)."""
    parts = [str(config.get("model") or "?")]
    p = config.get("prompt")
    if isinstance(p, dict) and p.get("name"):
        parts.append(f"{p['name']}" + (f"/{p['version']}" if p.get("version") else ""))
    for k, v in sorted((config.get("params") or {}).items()):
        parts.append(f"{k}={_num(v) if isinstance(v, float) else v}")
    for k in ("system_variant", "few_shot", "context_size"):
        if config.get(k) is not None:
            parts.append(f"{k}={config[k]}")
    return " ".join(parts)


@sweeps_app.command("list")
def sweeps_list(limit: int = typer.Option(20, min=1, max=1000),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Recent eval sweeps, newest first."""
    page = api_call("GET", _API, params={"limit": limit})
    if as_json:
        print_json(page)
        return
    table = Table(Column("id", no_wrap=True), "name", "suite", "status", "trials", "spent")
    for s in page["data"]:
        table.add_row(s["id"], s["name"], (s.get("suite") or {}).get("name", ""), s["status"],
                      str(s.get("trial_count", "")), _money(s.get("spent_usd")))
    console.print(table)


@sweeps_app.command("show")
def sweeps_show(sweep_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A sweep's trials: score, cost per 1,000 items, p95; the front marked *, dominated ones -."""
    s = api_call("GET", f"{_API}/{quote(sweep_id, safe='')}")
    if as_json:
        print_json(s)
        return
    budget = f" of {_money(s['budget_usd'])}" if s.get("budget_usd") is not None else ""
    console.print(f"[bold]{s['name']}[/] ({s['id']}): {s['status']}, suite {s['suite'].get('name')}, "
                  f"spent {_money(s['spent_usd'])}{budget}", highlight=False)
    table = Table(Column("#", justify="right"), "", Column("configuration", overflow="fold"), "score",
                  "$/1k", "p95 ms", "status")
    for t in s["trials"]:
        m = t.get("metrics") or {}
        mark = "*" if t.get("front") else ("-" if t.get("dominated") else "")
        table.add_row(str(t["number"]), mark, config_text(t["config"]), _num(m.get("score_mean")),
                      _num(m.get("cost_per_1k"), ".4g"), _num(m.get("p95_ms"), ".0f"), t["status"])
    console.print(table)
    console.print(f"front (*): trials {', '.join(map(str, s['front'])) or '(none yet)'}; - marks dominated ones")


def print_decision(d: dict[str, Any]) -> None:
    """The chosen trial and the evidence, in 80 columns."""
    tr, ev = d["trial"], d["evidence"]
    m = tr.get("metrics") or {}
    console.print(f"[bold]trial {tr['number']}[/]: {config_text(tr['config'])}", highlight=False)
    console.print(f"  {d['metric']} {_num(m.get('score_mean') if d['metric'] == 'score' else m.get('pass_rate'))}"
                  f", {_money(m.get('cost_per_1k'))} per 1,000 calls, p95 {_num(m.get('p95_ms'), '.0f')} ms",
                  highlight=False)
    best = ev["best"]
    console.print(f"best: trial {best['number']} ({d['metric']} {_num(best.get(d['metric']))}, "
                  f"{_money(best.get('cost_per_1k'))} per 1,000)", highlight=False)
    table = Table(Column("trial", justify="right"), Column("diff", justify="right"), "CI",
                  "significantly worse", title=f"vs the best, paired bootstrap, {d['confidence']:.0%}")
    for c in ev["compared"]:
        ci = c.get("ci")
        sig = {True: "yes", False: "no", None: "not paired"}[c.get("significant")]
        table.add_row(str(c["trial"]), _num(c.get("diff"), "+.3f"),
                      f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci and ci[0] is not None else "-", sig)
    console.print(table)
    console.print(textwrap.fill(ev["reason"], 79), highlight=False)


@sweeps_app.command("decide")
def sweeps_decide(
    sweep_id: str,
    rule: str = typer.Option("cheapest_not_worse", help="cheapest_not_worse | best_under_cost | "
                                                        "fastest_not_worse | best_under_p95"),
    max_cost_per_1k: float = typer.Option(None, "--max-cost-per-1k", help="USD per 1,000 calls (best_under_cost)."),
    max_p95_ms: float = typer.Option(None, "--max-p95-ms", help="Milliseconds (best_under_p95)."),
    metric: str = typer.Option("score", help="score | pass_rate"),
    confidence: float = typer.Option(0.95, min=0.5, max=0.999),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pick one trial by a rule; prints it with the paired-bootstrap evidence."""
    if rule not in RULES:
        raise _fail(f"--rule must be one of {', '.join(RULES)}")
    body: dict[str, Any] = {"rule": rule, "metric": metric, "confidence": confidence}
    if max_cost_per_1k is not None:
        body["max_cost_per_1k"] = max_cost_per_1k
    if max_p95_ms is not None:
        body["max_p95_ms"] = max_p95_ms
    d = api_call("POST", f"{_API}/{quote(sweep_id, safe='')}/decide", json=body)
    if as_json:
        print_json(d)
        return
    print_decision(d)


def with_system(template: Any, system: str) -> list[dict[str, Any]]:
    """The prompt with ``system`` as its system message, as a sweep's trial sent it: a text prompt
    becomes ``[system, user]``; a chat prompt's own system messages are replaced."""
    if isinstance(template, str):
        return [{"role": "system", "content": system}, {"role": "user", "content": template}]
    rest = [m for m in template if not (isinstance(m, dict) and m.get("role") == "system")]
    return [{"role": "system", "content": system}, *rest]


def with_examples(template: Any, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt with a trial's few-shot turns (user/assistant pairs) after its system messages and
    before its own turns, as the trial sent them: a text prompt becomes ``[examples..., user]``."""
    msgs = [{"role": "user", "content": template}] if isinstance(template, str) else [dict(m) for m in template]
    head = [m for m in msgs if m.get("role") == "system"]
    body = [m for m in msgs if m.get("role") != "system"]
    turns = [{"role": str(m["role"]), "content": str(m["content"])} for m in examples
             if isinstance(m, dict) and m.get("role") in ("user", "assistant") and "content" in m]
    return [*head, *turns, *body]


def _base_version(name: str, trial_prompt: Any) -> dict[str, Any] | None:
    """The version the new one starts from: the trial's own version of this prompt, else the
    latest; None when the prompt does not exist yet."""
    q = quote(name, safe="/")
    if isinstance(trial_prompt, dict) and trial_prompt.get("name") == name and trial_prompt.get("version"):
        return dict(api_call("GET", f"/api/v1/prompts/{q}/versions/{int(trial_prompt['version'])}"))
    with api_client() as c:
        r = c.get(f"/api/v1/prompts/{q}")
    if r.status_code == 404:
        return None
    info = api_call("GET", f"/api/v1/prompts/{q}")
    return dict(api_call("GET", f"/api/v1/prompts/{q}/versions/{int(info['latest_version'])}"))


def _suite_prompt(path: Path) -> dict[str, Any] | None:
    """The suite's prompt as a new prompt's first version, when the suite has exactly one inline
    prompt (not a ``prompts:/`` reference)."""
    try:
        from podium.experiments.suite import SuiteError, load_suite
    except ImportError:
        return None
    try:
        suite = load_suite(path)
    except SuiteError as e:
        raise _fail(e.message) from None
    if len(suite.prompts) != 1 or (isinstance(suite.prompts[0].prompt, str)
                                   and suite.prompts[0].prompt.startswith("prompts:/")):
        return None
    p = suite.prompts[0]
    return {"prompt": p.prompt, "type": "chat" if isinstance(p.prompt, list) else "text",
            "template_format": p.template_format, "config": {}}


def _suite_provider_config(path: Path) -> dict[str, Any]:
    """The inference parameters of the suite's first provider (what a sweep's trials start from)."""
    try:
        from podium.experiments.suite import SuiteError, load_suite
    except ImportError:
        return {}
    try:
        suite = load_suite(path)
    except SuiteError as e:
        raise _fail(e.message) from None
    return dict(suite.providers[0].config) if suite.providers else {}


def _run_gates(suite_path: Path, name: str, version: int, model: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the suite against ``prompts:/NAME/VERSION`` on the trial's model and parameters, with
    the suite's gates; returns the suite result."""
    try:
        from podium.experiments.suite import PromptSpec, ProviderSpec, SuiteError, load_suite, run_suite
    except ImportError as e:
        raise _fail(f"promotion runs the suite: it needs the eval extra ({e.name} is missing): "
                    "pip install 'podium[eval]'") from None
    try:
        suite = load_suite(suite_path)
    except SuiteError as e:
        raise _fail(e.message) from None
    suite.prompts = [PromptSpec(f"{name}-v{version}", f"prompts:/{name}/{version}")]
    suite.providers = [ProviderSpec(id=model, type="gateway", model=model, config=dict(params))]
    settings = Settings()
    base_url = settings.base_url.rstrip("/")
    public, secret = cli_keys(settings)
    if not secret:
        raise _fail("no API key: set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY (`make up` prints them)")
    try:
        with experiments_client(base_url, public, secret) as sdk:
            return dict(run_suite(suite, sdk, base_url=base_url, api_key=secret, progress=False))
    except SuiteError as e:
        raise _fail(e.message) from None
    except PodiumError as e:
        raise _fail(f"{e.code}: {e.message}") from None


@sweeps_app.command("promote")
def sweeps_promote(
    sweep_id: str,
    trial: int = typer.Option(..., "--trial", min=0, help="The trial number (`podium eval sweeps show`)."),
    prompt: str = typer.Option(..., "--prompt", help="The prompt that gets the new version."),
    label: str = typer.Option(None, help="Move this label (e.g. production) to the new version once the suite's "
                                         "gates pass on it."),
    suite_file: Path = typer.Option(None, "--suite", help="The suite to gate with (default: the sweep's)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Make a trial a new prompt version; with --label, gate it with the suite and move the label."""
    s = api_call("GET", f"{_API}/{quote(sweep_id, safe='')}")
    tr = next((t for t in s["trials"] if t["number"] == trial), None)
    if tr is None:
        raise _fail(f"sweep {sweep_id} has no trial {trial}; `podium eval sweeps show {sweep_id}` lists them")
    config = tr["config"]
    model, params = str(config["model"]), dict(config.get("params") or {})
    path = suite_file or (Path(s["suite"]["path"]) if s["suite"].get("path") else None)
    if label and (path is None or not path.is_file()):
        raise _fail(f"--label needs the suite to gate with: {path or 'the sweep records no suite path'} is not a "
                    "file; pass --suite FILE")
    base = _base_version(prompt, config.get("prompt")) or (_suite_prompt(path) if path and path.is_file() else None)
    if base is None:
        raise _fail(f"no prompt {prompt!r} and no single inline prompt in the suite to start it from: create it "
                    "first (`podium prompts create`) so the new version has a template to carry the trial's "
                    "configuration")
    if path is not None and path.is_file():
        # a trial is the suite's first provider with the trial's overrides: carry the rest (temperature, ...)
        params = {**_suite_provider_config(path), **params}
    examples = config.get("examples") or []
    if config.get("few_shot") and not examples:
        raise _fail(f"trial {trial} prepends {config['few_shot']} examples from the suite's dataset (few_shot) but "
                    "the sweep does not record them (it ran before sweeps recorded their examples): rerun the sweep, "
                    "or promote a trial without few-shot examples")
    new_config = {k: v for k, v in (base.get("config") or {}).items()
                  if k not in ("model", "context_size", *params)}
    new_config.update(model=model, **params)
    if config.get("context_size") is not None:  # the retrieval top-k / context tokens the trial kept
        new_config["context_size"] = config["context_size"]
    template, ptype = base["prompt"], base.get("type")
    variant = config.get("system_variant")
    if variant:
        text = ((s.get("space") or {}).get("system") or {}).get(variant)
        if not isinstance(text, str):
            raise _fail(f"sweep {sweep_id} does not record the text of system variant {variant!r}")
        template, ptype = with_system(template, text), "chat"
    if examples:
        template, ptype = with_examples(template, examples), "chat"
    body = {"prompt": template, "type": ptype, "template_format": base.get("template_format"),
            "config": new_config,
            "commit_message": f"eval sweep {s['id']} trial {trial}: {config_text(config)}"[:500]}
    ver = api_call("POST", f"/api/v1/prompts/{quote(prompt, safe='/')}/versions",
                   json={k: v for k, v in body.items() if v is not None})
    version = int(ver["version"])
    out: dict[str, Any] = {"prompt": prompt, "version": version, "config": new_config, "label": None,
                           "gates": None, "passed": None}
    if not as_json:
        console.print(f"created {prompt} v{version}: {config_text(config)}", highlight=False)
    if label and path is not None:  # --label without a suite file was refused above
        result = _run_gates(path, prompt, version, model, params)
        gates = [g for e in result["experiments"] for g in e["gates"]]
        out.update(gates=[{k: g.get(k) for k in ("gate", "status", "detail")} for g in gates],
                   passed=bool(result["passed"]), experiments=[e["experiment"]["id"] for e in result["experiments"]])
        if result["passed"]:
            api_call("PUT", f"/api/v1/prompts/{quote(prompt, safe='/')}/labels/{quote(label, safe='')}",
                     json={"version": version, "comment": f"eval sweep {s['id']} trial {trial}; gates passed"})
            out["label"] = label
        if not as_json:
            for g in gates:
                mark = {"passed": "[green]ok[/]", "failed": "[red]FAILED[/]", "skipped": "[yellow]skipped[/]"}
                console.print(f"  {mark.get(g['status'], g['status'])} {g['gate']}: {g['detail']}", highlight=False)
            if result["passed"]:
                console.print(f"gates passed: {label} -> {prompt} v{version}", highlight=False)
            else:
                console.print(f"[red]gates failed[/]: {label} stays where it was ({prompt} v{version} is kept, "
                              "unlabelled)", highlight=False)
    if as_json:
        print(json.dumps(out, default=str))
    if label and not out["passed"]:
        raise typer.Exit(EXIT_GATE_FAILED)
