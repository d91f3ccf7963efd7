"""`podium explain scanner|scorer|local`: explanations in this process, no server needed
(docs/explain.md).

* ``podium explain scanner prompt-injection "TEXT" --method shap|lime``: which words drove a
  guardrail scanner's score;
* ``podium explain scorer '{"type": "icontains", "value": "paris"}' "TEXT" --method shap|lime``:
  which words drove a scorer's value (the text is the item's ``--field``, default output);
* ``podium explain local "QUESTION" --response "ANSWER" --method occlusion|integrated-gradients``:
  which parts of the prompt made the local model's answer likely.

Prints the segments by weight (a table), or the explanation as JSON with ``--json``. Exit 2 on a
usage error or a missing library (the message names the command that installs it).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from podium.cli._common import console, err_console, print_json

__all__ = ["explain_app"]

explain_app = typer.Typer(help="Explain a scanner's or scorer's score, or the local model's answer "
                               "(SHAP, LIME, occlusion, integrated gradients; docs/explain.md).",
                          no_args_is_help=True)


def _run(target: dict[str, Any], method: str, as_json: bool, top: int, **kw: Any) -> None:
    from podium.errors import PodiumError
    from podium.explain import explain

    try:
        result = explain(target, method, **kw).to_dict()
    except PodiumError as e:
        err_console.print(f"[red]{escape(e.message)}[/]")
        raise typer.Exit(2) from None
    if as_json:
        print_json(result)
        return
    head = [f"{result['method']}", f"{result['evaluations']} evaluations", f"{result['seconds']} s"]
    if "value" in result:
        head.insert(1, f"value {result['value']:.4g}")
    if "base_value" in result:
        head.insert(2, f"base {result['base_value']:.4g}")
    console.print(" · ".join(head))
    table = Table("weight", "segment", "where")
    for s in sorted(result["segments"], key=lambda s: -abs(s["weight"]))[:top]:
        where = f"{s['start']}-{s['end']}" if "message" not in s else f"message {s['message']}: {s['start']}-{s['end']}"
        table.add_row(f"{s['weight']:+.4g}", escape(s["text"]), where)
    console.print(table)
    tokens = (result.get("extra") or {}).get("response_tokens")
    if result["method"] == "occlusion" and tokens:
        low = ", ".join(f"{tokens[i]['text']!r} ({tokens[i]['logprob']})" for i in result["extra"]["least_likely"])
        console.print(f"least likely response tokens: {escape(low)}")


_METHOD = typer.Option("shap", "--method", "-m", help="shap or lime.")
_MAX = typer.Option(None, "--max-evaluations", help="The most classifier calls (default 300).")
_JSON = typer.Option(False, "--json", help="Print the explanation as JSON.")
_TOP = typer.Option(15, "--top", help="Rows in the table (largest |weight| first).")


@explain_app.command("scanner")
def scanner_cmd(
    name: str = typer.Argument(..., help="A guardrail scanner type (podium guard scanners lists them)."),
    text: str = typer.Argument(..., help="The text to explain."),
    method: str = _METHOD,
    kind: str = typer.Option("input", "--kind", "-k", help="Scan the text as input (a prompt) or output."),
    params: str = typer.Option(None, "--params", help="The scanner's params as JSON, as in a policy."),
    max_evaluations: int = _MAX,
    as_json: bool = _JSON,
    top: int = _TOP,
) -> None:
    """Which words of TEXT drove scanner NAME's risk score."""
    try:
        p = json.loads(params) if params else {}
    except ValueError:
        err_console.print("[red]--params must be JSON, e.g. '{\"judge\": false}'[/]")
        raise typer.Exit(2) from None
    _run({"kind": "scanner", "name": name, "params": p, "scan_kind": kind}, method, as_json, top, text=text,
         max_evaluations=max_evaluations)


@explain_app.command("scorer")
def scorer_cmd(
    config: str = typer.Argument(..., help='The scorer config as JSON, e.g. \'{"type": "icontains", "value": "x"}\'.'),
    text: str = typer.Argument(..., help="The text to explain (the item's --field)."),
    method: str = _METHOD,
    field: str = typer.Option("output", "--field", help="Which item field the text is: output, input, ..."),
    fields: str = typer.Option(None, "--fields", help="The item's other fields as JSON, e.g. '{\"expected\": \"x\"}'."),
    max_evaluations: int = _MAX,
    as_json: bool = _JSON,
    top: int = _TOP,
) -> None:
    """Which words of TEXT drove a scorer's numeric value."""
    try:
        cfg = json.loads(config)
        item = json.loads(fields) if fields else {}
    except ValueError:
        err_console.print("[red]the scorer config and --fields must be JSON[/]")
        raise typer.Exit(2) from None
    _run({"kind": "scorer", "config": cfg, "fields": {**item, field: text}, "field": field}, method, as_json, top,
         text=text, max_evaluations=max_evaluations)


@explain_app.command("local")
def local_cmd(
    question: str = typer.Argument(..., help="The user message."),
    response: str = typer.Option(..., "--response", "-r", help="The answer to explain."),
    system: str = typer.Option(None, "--system", help="A system message before the question."),
    method: str = typer.Option("occlusion", "--method", "-m", help="occlusion or integrated-gradients."),
    granularity: str = typer.Option("sentence", "--granularity", "-g", help="Occlusion: word, sentence or message."),
    max_evaluations: int = typer.Option(None, "--max-evaluations", help="Occlusion: the most model passes (64)."),
    n_steps: int = typer.Option(None, "--steps", help="Integrated gradients: steps per response token (8)."),
    as_json: bool = _JSON,
    top: int = _TOP,
) -> None:
    """Which parts of the prompt made the local model's RESPONSE to QUESTION likely."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    _run({"kind": "local-model", "messages": messages, "response": response}, method, as_json, top,
         max_evaluations=max_evaluations, granularity=granularity, n_steps=n_steps)
