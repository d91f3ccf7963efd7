"""`podium deploy canary|list|status|rollback|promote|pause|resume|abort`: canary deployments of
registered model versions behind a gateway alias (docs/canary.md).

``canary --suite suite.yaml`` first runs the suite on both versions, here, through the gateway
(two temporary aliases the server declares with the alias's own provider settings), compares
the two experiments with the paired bootstrap that ``podium eval compare`` uses, and refuses to
start on a significant regression (exit 1, with the numbers); otherwise the comparison goes to
the server with the canary as its evidence. ``--wait`` follows the canary until it is promoted
(exit 0) or rolled back / aborted (exit 1), one plain line per change."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from podium.cli._common import api_call, cli_keys, console, err_console, experiments_client, print_json
from podium.config import Settings

__all__ = ["deploy_app"]

deploy_app = typer.Typer(help="Canary deployments: step a model version up behind a gateway alias, roll back on "
                              "a breach.", no_args_is_help=True)

_API = "/api/v1/canaries"
_DONE = ("promoted", "rolled_back", "aborted")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")


def parse_duration(text: str) -> int:
    """``90``, ``30s``, ``5m``, ``2h``, ``1d`` -> seconds."""
    m = _DURATION.match(text or "")
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration: write 90, 30s, 5m, 2h or 1d")
    return int(float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"])


def _when(v: Any) -> str:
    return str(v)[:16].replace("T", " ") if v else "-"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1%}"


def _steps(c: dict[str, Any]) -> str:
    out = []
    for i, s in enumerate(c["steps"]):
        mark = f"[{s}%]" if i == c["step_index"] and c["status"] in ("running", "paused", "pending") else f"{s}%"
        out.append(mark)
    return " > ".join(out)


def _summary(c: dict[str, Any]) -> str:
    w = c["weights"]
    return (f"{c['id']} {c['status']}: {c['model_name']} v{c['baseline_version']} {w['baseline']}% / "
            f"v{c['candidate_version']} {w['candidate']}% on {c['gateway_alias']}")


# --- the eval-suite gate ---------------------------------------------------------------------------


def suite_gate(path: Path, *, alias: str, model: str, baseline: str, candidate: str, confidence: float,
               tolerance: float, progress: bool) -> dict[str, Any]:
    """Run the suite on both versions and compare them; the evidence dict (``regressed``: the
    metrics that regressed significantly)."""
    try:
        from podium.experiments.suite import ProviderSpec, SuiteError, load_suite, run_suite
    except ImportError as e:
        err_console.print(f"[red]--suite needs the eval extra ({e.name} is missing):[/] pip install 'podium[eval]'")
        raise typer.Exit(2)

    try:
        suite = load_suite(path)
    except SuiteError as e:
        err_console.print(f"[red]{e.message}[/]")
        raise typer.Exit(2)
    settings = Settings()
    public, secret = cli_keys(settings)
    if not secret:
        err_console.print("[red]no API key:[/] set PODIUM_PUBLIC_KEY and PODIUM_SECRET_KEY")
        raise typer.Exit(2)
    base_url = settings.base_url.rstrip("/")
    targets = api_call("POST", f"{_API}/eval-targets", json={"gateway_alias": alias, "model": model,
                                                              "baseline": baseline, "candidate": candidate})
    try:
        config = next((dict(p.config) for p in suite.providers if p.type == "gateway"), {})
        suite.providers = [ProviderSpec(id=role, type="gateway", model=targets[role]["alias"], config=config)
                           for role in ("baseline", "candidate")]
        suite.gates = []  # the gate here is the paired comparison of the two versions
        with experiments_client(base_url, public, secret) as sdk:
            result = run_suite(suite, sdk, base_url=base_url, api_key=secret, progress=progress)
    except SuiteError as e:
        err_console.print(f"[red]{e.message}[/]")
        raise typer.Exit(2)
    finally:
        api_call("POST", f"{_API}/eval-targets", json={"gateway_alias": alias, "model": model,
                                                        "candidate": candidate, "remove": True})
    by_prompt: dict[str, dict[str, str]] = {}
    for exp in result["experiments"]:
        by_prompt.setdefault(exp["variant"]["prompt"], {})[exp["variant"]["provider"]] = exp["experiment"]["id"]
    comparisons, regressed = [], []
    for prompt, ids in by_prompt.items():
        data = api_call("GET", "/api/v1/experiments/compare", params=[
            ("baseline", ids["baseline"]), ("candidate", ids["candidate"]), ("confidence", confidence),
            ("tolerance", tolerance)])
        metrics = {}
        for name, m in data["candidates"][0]["metrics"].items():
            metrics[name] = {k: m.get(k) for k in ("baseline_mean", "candidate_mean", "diff", "low", "high",
                                                   "regressed", "improved")}
            if m.get("regressed"):
                regressed.append(f"{name} ({prompt}): {m.get('baseline_mean'):.3f} -> {m.get('candidate_mean'):.3f}, "
                                 f"diff {m['diff']:+.3f} ({confidence:.0%} CI {m['low']:+.3f} to {m['high']:+.3f})")
        comparisons.append({"prompt": prompt, "baseline_experiment": ids["baseline"],
                            "candidate_experiment": ids["candidate"], "metrics": metrics})
    return {"suite": result["suite"]["name"], "run_group": result["run_group"], "passed": not regressed,
            "regressed": regressed, "confidence": confidence, "tolerance": tolerance,
            "baseline": targets["baseline"]["version"], "candidate": targets["candidate"]["version"],
            "baseline_experiment": comparisons[0]["baseline_experiment"] if comparisons else None,
            "candidate_experiment": comparisons[0]["candidate_experiment"] if comparisons else None,
            "comparisons": comparisons}


def _print_suite(ev: dict[str, Any]) -> None:
    for comp in ev["comparisons"]:
        table = Table(Column("metric", no_wrap=True), "v" + str(ev["baseline"]), "v" + str(ev["candidate"]),
                      "diff", "CI", "verdict", title=escape(f"suite {ev['suite']} [{comp['prompt']}]"), title_justify="left")
        for name, m in comp["metrics"].items():
            ci = f"{m['low']:+.3f}..{m['high']:+.3f}" if m.get("low") is not None else "-"
            verdict = "[red]regressed[/]" if m.get("regressed") else "[green]improved[/]" if m.get("improved") \
                else "same"
            table.add_row(escape(name), _num(m.get("baseline_mean")), _num(m.get("candidate_mean")),
                          f"{m['diff']:+.3f}" if m.get("diff") is not None else "-", ci, verdict)
        console.print(table)


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):.3f}"


# --- commands ----------------------------------------------------------------------------------------


@deploy_app.command("canary")
def canary(
    alias: str = typer.Option(..., "--alias", help="The API-declared gateway alias to split."),
    model: str = typer.Option(..., "--model", help="The registered model."),
    candidate: str = typer.Option(..., "--candidate", help="Version number or registry alias (challenger)."),
    baseline: str = typer.Option("champion", "--baseline", help="Version number or registry alias."),
    steps: str = typer.Option("5,25,50,100", "--steps", help="Candidate traffic per step, ending at 100."),
    step_duration: str = typer.Option("5m", "--step-duration", help="Time per step (30s, 5m, 1h)."),
    min_requests: int = typer.Option(50, "--min-requests", min=1, help="Candidate requests a step needs."),
    suite: Path = typer.Option(None, "--suite", help="Run this eval suite on both versions first."),
    confidence: float = typer.Option(0.95, help="Confidence of the suite comparison's intervals."),
    tolerance: float = typer.Option(0.0, help="Loss accepted before a suite regression counts."),
    max_error_rate_increase: float = typer.Option(None, help="Allowed error-rate increase (0.05)."),
    max_p95_ratio: float = typer.Option(None, help="Allowed p95 latency ratio (1.5)."),
    max_score_drop: float = typer.Option(None, help="Allowed online-score drop (0.1)."),
    max_guardrail_rate_increase: float = typer.Option(None, help="Allowed guardrail rate increase (0.05)."),
    min_scored: int = typer.Option(None, min=1, help="Scored answers per online score before judging it (10)."),
    promote_alias: str = typer.Option("champion", help="Registry alias moved on promotion."),
    alert_rule: str = typer.Option(None, help="Alert rule a rollback raises (canary-rollbacks)."),
    wait: bool = typer.Option(False, "--wait", help="Follow it until promoted or rolled back."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Start a canary: gate on the eval suite, then step the candidate up on live gates."""
    try:
        step_list = [int(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(f"--steps {steps!r}: write percentages separated by commas, e.g. 5,25,50,100")
    evidence = None
    if suite is not None:
        evidence = suite_gate(suite, alias=alias, model=model, baseline=baseline, candidate=candidate,
                              confidence=confidence, tolerance=tolerance, progress=progress and not as_json)
        if not as_json:
            _print_suite(evidence)
        if evidence["regressed"]:
            err_console.print(f"[red]not started:[/] the candidate (v{evidence['candidate']}) regressed "
                              f"significantly on suite {escape(evidence['suite'])}:")
            for line in evidence["regressed"]:
                err_console.print(f"  {line}", markup=False)
            if as_json:
                print_json({"started": False, "suite": evidence})
            raise typer.Exit(1)
    gates = {k: v for k, v in {"max_error_rate_increase": max_error_rate_increase, "max_p95_ratio": max_p95_ratio,
                               "max_score_drop": max_score_drop,
                               "max_guardrail_rate_increase": max_guardrail_rate_increase,
                               "min_scored": min_scored}.items() if v is not None}
    body: dict[str, Any] = {"gateway_alias": alias, "model": model, "candidate": candidate, "baseline": baseline,
                            "steps": step_list, "step_duration_s": parse_duration(step_duration),
                            "min_requests": min_requests, "gates": gates, "promote_alias": promote_alias}
    if alert_rule:
        body["alert_rule"] = alert_rule
    if evidence is not None:
        body["suite"] = evidence
    c = api_call("POST", _API, json=body)
    if as_json and not wait:
        print_json(c)
        return
    if not as_json:
        console.print(f"started canary {c['id']}")
        console.print(_summary(c), markup=False)
    if wait:
        raise typer.Exit(_follow(c["id"], as_json=as_json))


def _follow(cid: str, *, as_json: bool, poll_s: float = 2.0) -> int:
    seen = 0
    last = ""
    while True:
        c = api_call("GET", f"{_API}/{cid}")
        for e in c["events"][seen:]:
            if not as_json:
                console.print(_event_line(e), markup=False, highlight=False)
        seen = len(c["events"])
        check = c.get("last_check") or {}
        line = f"{c['status']} {c['weights']['candidate']}% {check.get('verdict', '')}"
        if line != last and not as_json and c["status"] == "running" and check:
            cand = check.get("candidate") or {}
            console.print(f"  check: {check.get('verdict')}, candidate {cand.get('requests', 0)} requests, "
                          f"errors {_pct(cand.get('error_rate'))}")
        last = line
        if c["status"] in _DONE:
            if as_json:
                print_json(c)
            else:
                console.print(_summary(c) + (f" ({c['reason']})" if c.get("reason") else ""), markup=False)
            return 0 if c["status"] == "promoted" else 1
        time.sleep(poll_s)


def _event_line(e: dict[str, Any]) -> str:
    d = e.get("detail") or {}
    what = e["action"]
    extra = ""
    if what == "step":
        extra = f" {d.get('from')}% -> {d.get('to')}%"
    elif what in ("rollback", "promote", "abort") and d.get("reason"):
        extra = f": {d['reason']}"
    elif what == "check":
        extra = f" {d.get('verdict', '')}" + (f" ({d['hold']})" if d.get("hold") else "")
    elif what == "alert":
        extra = f" rule {d.get('rule')}"
    return f"{_when(e['created_at'])} {what}{extra} [{e.get('actor') or '-'}]"


@deploy_app.command("list")
def deploy_list(status: str = typer.Option(None, help="active, running, promoted, rolled_back, ..."),
                alias: str = typer.Option(None, "--alias", help="Only this gateway alias."),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Canaries, newest first."""
    params = {k: v for k, v in {"status": status, "gateway_alias": alias}.items() if v}
    data = api_call("GET", _API, params=params)["data"]
    if as_json:
        print_json(data)
        return
    table = Table(Column("id", no_wrap=True), "alias", "model", "versions", "status", "traffic",
                  Column("started", no_wrap=True))
    for c in data:
        table.add_row(c["id"], escape(c["gateway_alias"]), escape(c["model_name"]),
                      f"{c['baseline_version']}->{c['candidate_version']}", c["status"],
                      f"{c['weights']['candidate']}%", _when(c["created_at"]))
    console.print(table)


@deploy_app.command("status")
def deploy_status(canary_id: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A canary: steps, weights, the latest gate check (candidate vs baseline), its events."""
    c = api_call("GET", f"{_API}/{canary_id}")
    if as_json:
        print_json(c)
        return
    console.print(_summary(c), markup=False)
    console.print(f"steps: {_steps(c)}   step time: {c['step_duration_s']} s   min requests: {c['min_requests']}",
                  markup=False)
    if c.get("reason"):
        console.print(f"reason: {c['reason']}", markup=False)
    check = c.get("last_check")
    if check:
        console.print(f"latest check ({_when(check.get('at'))}): {check.get('verdict')}")
        table = Table(Column("gate", no_wrap=True), "baseline", "candidate", "limit", "ok")
        for r in check.get("rows") or []:
            table.add_row(escape(r["gate"]), _fmt(r["baseline"]), _fmt(r["candidate"]), escape(r["limit"]),
                          {True: "yes", False: "NO", None: "-"}[r.get("ok")])
        console.print(table)
    for e in c["events"]:
        console.print(_event_line(e), markup=False, highlight=False)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _action(canary_id: str, what: str, reason: str | None, as_json: bool) -> None:
    c = api_call("POST", f"{_API}/{canary_id}/{what}", json={"reason": reason} if reason else None)
    if as_json:
        print_json(c)
    else:
        console.print(_summary(c), markup=False)


@deploy_app.command("rollback")
def deploy_rollback(canary_id: str, reason: str = typer.Option(None, help="Why (kept in the audit trail)."),
                    as_json: bool = typer.Option(False, "--json")) -> None:
    """Roll back now: the gateway alias serves the baseline alone."""
    _action(canary_id, "rollback", reason, as_json)


@deploy_app.command("promote")
def deploy_promote(canary_id: str, reason: str = typer.Option(None, help="Why (kept in the audit trail)."),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Promote now: the registry alias moves to the candidate, which serves alone."""
    _action(canary_id, "promote", reason, as_json)


@deploy_app.command("pause")
def deploy_pause(canary_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Pause: no more steps or automatic rollback; the current split stays."""
    _action(canary_id, "pause", None, as_json)


@deploy_app.command("resume")
def deploy_resume(canary_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Resume a paused canary (the step's clock restarts)."""
    _action(canary_id, "resume", None, as_json)


@deploy_app.command("abort")
def deploy_abort(canary_id: str, reason: str = typer.Option(None, help="Why (kept in the audit trail)."),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Abort: the gateway alias goes back exactly as it was before the canary."""
    _action(canary_id, "abort", reason, as_json)
