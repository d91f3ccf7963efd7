"""Suites: parsing with line numbers, every configuration error, gates, reports, and the exit
codes of `podium eval run` against a real server whose gateway model is a scripted fake."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import podium
from podium.cli.main import app
from podium.experiments.report import render_html, render_junit, write_report
from podium.experiments.suite import Gate, SuiteError, evaluate_gates, load_suite
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply

GOOD = """\
description: Capitals
prompts:
  - "Capital of {{country}}?"
providers:
  - id: fake
    config: {temperature: 0}
defaultTest:
  assert:
    - type: icontains
      value: "{{capital}}"
tests:
  - vars: {country: France, capital: Paris}
  - vars: {country: Japan, capital: Tokyo}
    assert:
      - {type: not-icontains, value: sorry, weight: 2}
  - description: Italy
    vars: {country: Italy, capital: Rome}
options: {maxConcurrency: 1}
gates:
  - {metric: pass_rate, min: 0.6}
  - no_regression: {label: main}
"""


def errors_of(text: str, tmp_path: Path) -> SuiteError:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    return e.value


# --- parsing ---------------------------------------------------------------------------------------------


def test_a_suite_parses_into_variants_tests_and_gates(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("country,capital,__expected\nSpain,Madrid,icontains: Madrid\nPeru,Lima,Lima\n")
    (tmp_path / "p.txt").write_text("Name the capital of {{country}}.")
    text = GOOD.replace('  - "Capital of {{country}}?"', '  - "Capital of {{country}}?"\n  - file://p.txt') \
        .replace("    vars: {country: Italy, capital: Rome}", "    vars: {country: Italy, capital: Rome}\n  - file://t.csv")
    (tmp_path / "suite.yaml").write_text(text)
    s = load_suite(tmp_path / "suite.yaml")
    assert s.name == "Capitals" and [v.name for v in s.variants] == ["Capitals [prompt-1 · fake]", "Capitals [p · fake]"]
    assert [t.item.input["country"] for t in s.tests] == ["France", "Japan", "Italy", "Spain", "Peru"]
    assert s.tests[2].item.metadata == {"description": "Italy"}
    japan = s.scorers_for(s.tests[1].item)
    assert [(x.name, x.weight) for x in japan] == [("icontains", 1.0), ("not-icontains", 2.0)]
    assert japan[0](output="It is Tokyo").passed is True              # the value was templated
    peru = s.scorers_for(s.tests[4].item)
    assert [x.type for x in peru] == ["icontains", "equals"]            # CSV __expected: "type: value" or a value
    assert [g.title for g in s.gates] == ["pass_rate >= 0.6", "no significant regression vs label 'main'"]
    assert s.tests[0].item.id == load_suite(tmp_path / "suite.yaml").tests[0].item.id   # stable ids


@pytest.mark.parametrize(("text", "line", "message"), [
    ("prompts: ['x']\ntests:\n  - vars: {a: 1\n", 4, "malformed YAML"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\n    assert:\n      - type: icontain\n        value: x\n", 5,
     "unknown scorer type 'icontain'. Did you mean 'icontains'? Known types: answer-relevance, bleu"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\n    assert:\n      - {type: rouge-l, treshold: 0.3}\n", 5,
     "does not take 'treshold'; it accepts: value"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\n    asert: []\n", 4, "unknown test key 'asert'"),
    ("promts: ['x']\ntests: []\n", 1, "unknown key 'promts'"),
    ("prompts: ['Hi {{name}}']\ntests:\n  - vars: {nme: 1}\n", 3, "uses {{name}}, which this test's vars do not set"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\n    assert:\n      - {type: icontains, value: '{{b}}'}\n", 5,
     "uses {{b}}, which this test's vars do not set; it sets: a"),
    ("prompts: ['x']\nprompts: ['y']\ntests: []\n", 2, "duplicate key 'prompts' (first on line 1)"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\ngates:\n  - {metric: pass_rate}\n", 5, "needs `min` or `max`"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\ngates:\n  - no_regression: {label: a, run: b}\n", 5, "exactly one"),
    ("prompts: ['x']\ntests:\n  - vars: {a: 1}\noptions: {repeat: 0}\n", 4, "options.repeat"),
    ("prompts: ['x']\n", 1, "the suite has no tests"),
    ("prompts: ['{{#x}}']\ntests:\n  - vars: {a: 1}\n", 1, ""),
])
def test_configuration_errors_point_at_the_line(text: str, line: int, message: str, tmp_path: Path) -> None:
    e = errors_of(text, tmp_path)
    assert e.line == line, e.message
    assert message in e.message and e.message.startswith(f"{tmp_path / 'suite.yaml'}:{line}: ")


# --- gates ----------------------------------------------------------------------------------------------


SUMMARY: dict[str, Any] = {
    "pass_rate": {"mean": 0.8, "low": 0.6, "high": 1.0}, "score": {"mean": 0.9, "low": 0.8, "high": 1.0},
    "error_rate": 0.0, "latency_ms": {"p50": 100.0, "p95": 900.0}, "cost": 0.01,
    "scorers": {"rouge-l": {"mean": 0.55, "low": 0.41, "high": 0.7}},
}


def test_threshold_gates() -> None:
    gates = [Gate("threshold", metric="pass_rate", min=0.75), Gate("threshold", metric="rouge-l", min=0.5, stat="low"),
             Gate("threshold", metric="latency_p95", max=1000), Gate("threshold", metric="nope", min=1)]
    v = evaluate_gates(gates, SUMMARY)
    assert [x["status"] for x in v] == ["passed", "failed", "passed", "failed"]
    assert v[1]["value"] == 0.41 and "no metric 'nope'" in v[3]["detail"] and "rouge-l" in v[3]["detail"]


def test_regression_gates_skip_without_a_baseline_unless_required() -> None:
    g = Gate("no_regression", baseline_label="main")
    assert evaluate_gates([g], SUMMARY, compare=lambda _g: (None, "no baseline yet"))[0]["status"] == "skipped"
    g.required = True
    assert evaluate_gates([g], SUMMARY, compare=lambda _g: (None, "no baseline yet"))[0]["status"] == "failed"
    cmp = {"metrics": {"score": {"regressed": True, "improved": False, "reason": "CI below 0"},
                       "rouge-l": {"regressed": False, "improved": True, "reason": ""}}}
    v = evaluate_gates([g], SUMMARY, compare=lambda _g: (cmp, "exp1"))[0]
    assert v["status"] == "failed" and v["detail"] == "regressed: score: CI below 0"


# --- reports ---------------------------------------------------------------------------------------------


def _result(passed: bool = True) -> dict[str, Any]:
    items = [
        {"item_id": "a", "repetition": 0, "input": {"q": "<b>x</b>"}, "output": "see https://example.com",
         "scores": {"icontains": {"value": True, "passed": True, "explanation": "found 'x'"}}, "passed": True,
         "latency_ms": 120.0, "metadata": {"description": "first"}},
        {"item_id": "b", "repetition": 0, "input": {"q": "y"}, "output": "nope",
         "scores": {"icontains": {"value": False, "passed": False, "explanation": "missing ['y']"}},
         "passed": False, "latency_ms": 80.0, "error": None},
        {"item_id": "c", "repetition": 0, "input": {"q": "z"}, "output": None, "scores": {}, "passed": False,
         "error": "ValueError: boom", "error_type": "task_error"},
    ]
    exp = {"id": "e1", "name": "Caps", "created_at": "2026-01-01T00:00:00Z",
           "summary": {**SUMMARY, "items": 3, "repetitions": 1, "errors": 1}}
    gates = [{"gate": "pass_rate >= 0.9", "kind": "threshold", "status": "passed" if passed else "failed",
              "detail": "pass_rate mean = 0.8"},
             {"gate": "no significant regression vs label 'main'", "kind": "no_regression", "status": "skipped",
              "detail": "no baseline"}]
    return {"suite": {"name": "Caps", "path": "s.yaml"}, "run_group": "run-1", "dataset": {"name": "suite-Caps",
            "version": 2}, "passed": passed, "duration_s": 1.5, "started_at": "2026-01-01T00:00:00Z",
            "experiments": [{"variant": {"name": "Caps", "prompt": "p1", "provider": "local", "prompt_text": "Hi"},
                             "experiment": exp, "items": items, "gates": gates, "passed": passed}]}


def test_junit_report() -> None:
    root = ET.fromstring(render_junit(_result(passed=False)))
    assert root.get("tests") == "5" and root.get("failures") == "2" and root.get("errors") == "1"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "Caps"
    cases = suite.findall("testcase")
    assert cases[0].get("name") == "first [a]" and cases[0].find("failure") is None
    assert cases[1].find("failure").get("message") == "icontains: failed: missing ['y']"  # type: ignore[union-attr]
    assert cases[2].find("error").get("type") == "task_error"  # type: ignore[union-attr]
    assert cases[3].find("failure") is not None and cases[4].find("skipped") is not None   # the gates


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    page = render_html(_result())
    assert page.startswith("<!doctype html>") and "<svg" in page and "<style>" in page
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import", page, re.I)
    assert "&lt;b&gt;x&lt;/b&gt;" in page                                 # user text is escaped
    assert re.findall(r"https?://", page) == ["https://"]                  # only the item's own (escaped) text
    assert write_report(_result(), tmp_path / "r.html") == "html"
    assert json.loads((tmp_path / "out" / "r.json").read_text() if write_report(
        _result(), tmp_path / "out" / "r.json") else "")["passed"] is True
    with pytest.raises(ValueError, match="name the report"):
        write_report(_result(), tmp_path / "r.txt")


# --- the CLI against a live server ---------------------------------------------------------------------------


@pytest.fixture
def env(server: LiveServer, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    with server.client() as c:
        r = c.put("/api/v1/gateway/models/fake", json={
            "deployments": [{"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "k"}]})
        assert r.status_code in (200, 201), r.text
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    yield server
    podium.shutdown(timeout=2)


def run_cli(*args: str) -> Any:
    r = CliRunner().invoke(app, ["eval", "run", *args, "--no-progress"], catch_exceptions=False)
    r.flat = " ".join(r.output.split())  # rich wraps lines at the terminal width
    return r


def test_exit_codes_pass_fail_and_configuration_error(env: LiveServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(GOOD)
    good = [Reply("Paris"), Reply("Tokyo"), Reply("Rome")]
    upstream.script("fake-a", *good)
    r = run_cli(str(suite), "--label", "main", "-o", str(tmp_path / "r.json"), "-o", str(tmp_path / "j.xml"),
                "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 0, r.output
    assert "PASSED Capitals" in r.flat and "no completed experiment named 'Capitals' has label 'main'" in r.flat
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] and data["experiments"][0]["experiment"]["labels"] == ["main"]
    assert data["dataset"] == {"name": "suite-Capitals", "version": 1}
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "0"
    assert (tmp_path / "r.html").read_text().count("PASSED") >= 2
    # a worse model: two of three answers miss -> the threshold and the regression gate both fail
    upstream.script("fake-a", Reply("Paris"), Reply("I am sorry"), Reply("no idea"))
    r = run_cli(str(suite), "-o", str(tmp_path / "bad.json"))
    assert r.exit_code == 1, r.output
    bad = json.loads((tmp_path / "bad.json").read_text())
    gates = bad["experiments"][0]["gates"]
    assert [g["status"] for g in gates] == ["failed", "failed"]
    assert gates[1]["comparison"]["baseline"]["id"] == data["experiments"][0]["experiment"]["id"]
    assert "FAILED Capitals" in r.flat
    # the tests did not change: both runs used dataset version 1
    assert bad["dataset"]["version"] == 1
    # configuration error: exit 2, with the line
    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD.replace("type: icontains", "type: icontain"))
    r = run_cli(str(broken))
    assert r.exit_code == 2 and f"{broken}:9: unknown scorer type 'icontain'" in r.output.replace("\n", "")
    assert "Known types:" in r.flat


def test_prompt_override_and_no_server(env: LiveServer, upstream: FakeUpstream, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(GOOD)
    upstream.script("fake-a", Reply("Paris"), Reply("Tokyo"), Reply("Rome"))
    r = run_cli(str(suite), "--prompt", "Tell me about {{country}}.")
    assert r.exit_code == 0, r.output
    assert upstream.bodies("fake-a")[0]["messages"][0]["content"] == "Tell me about France."
    monkeypatch.setenv("PODIUM_BASE_URL", "http://127.0.0.1:9")
    r = run_cli(str(suite))
    assert r.exit_code == 2 and "cannot reach the Podium server" in r.flat


def test_local_mode_runs_an_embedded_server_with_a_python_provider(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("PODIUM_BASE_URL", "PODIUM_PUBLIC_KEY", "PODIUM_SECRET_KEY"):
        monkeypatch.setenv(k, "unused")   # restored after the test (the command sets them for judges)
    monkeypatch.delenv("PODIUM_SECRET_KEY")
    (tmp_path / "app.py").write_text("def answer(prompt, vars):\n"
                                     "    return vars['capital'] if vars['country'] != 'Peru' else prompt\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("description: Local mode\nprompts: ['Capital of {{country}}?']\n"
                     "providers: [{id: mine, type: python, function: app.py:answer}]\n"
                     "defaultTest: {assert: [{type: equals, value: '{{capital}}'}]}\n"
                     "tests:\n  - vars: {country: France, capital: Paris}\n  - vars: {country: Peru, capital: Lima}\n"
                     "gates: [{metric: pass_rate, min: 0.5}]\n")
    r = run_cli(str(suite), "--local", "-o", str(tmp_path / "r.json"))
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "r.json").read_text())
    items = data["experiments"][0]["items"]
    assert [i["output"] for i in items] == ["Paris", "Capital of Peru?"] and data["passed"]
    # it was recorded in this machine's store ($PODIUM_HOME)
    from podium.config import Settings
    from podium.store import Store

    store = Store.from_url(Settings().resolved_database_url)
    try:
        pid = store.projects.list_projects()[0].id
        assert store.evals.get_experiment(pid, data["experiments"][0]["experiment"]["id"])["status"] == "completed"
    finally:
        store.close()
