"""`podium alerts` against a real server: create from YAML, list, mute/unmute, test, resolve and
history; the tables fit 80 columns when run as a real subprocess without a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from podium.monitor.alerting import AlertJob
from tests.conftest import LiveServer, run_cli_80
from tests.monitor.test_alert_rules import ingest

runner = CliRunner()




@pytest.fixture(autouse=True)
def no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_WORKER_EMBEDDED", "false")  # the test runs the alert job itself


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


def run_80(*args: str) -> str:
    return run_cli_80(*args, long_ok="more: --cursor")  # a cursor is one copyable token


@pytest.mark.one_db
def test_alerts_cli(cli_env: LiveServer, webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    url, got = webhook
    spec = tmp_path / "rules.yaml"
    spec.write_text(f"""\
rules:
  - name: error-rate-high
    severity: critical
    description: more than a fifth of the traces fail
    condition: {{metric: error_rate, agg: rate}}
    op: ">"
    threshold: 0.2
    window_s: 300
    cooldown_s: 0
    channels:
      - type: webhook
        params: {{url: "{url}"}}
  - name: p95-latency-doubled
    condition: {{metric: latency, agg: p95, filters: {{environment: production}}}}
    kind: change
    threshold: 1.0
    baseline_offset_s: 86400
""")
    out = run("alerts", "create", str(spec))
    assert "created alert rule error-rate-high" in out and "p95-latency-doubled" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncondition: {metric: nope}\nthreshold: 1\n")
    assert "unknown metric 'nope'" in run("alerts", "create", str(bad), code=1)
    listed = run_80("alerts", "list")
    assert "error-rate-high" in listed and "p95-latency-doubled" in listed and "ok" in listed
    assert "rate(error_rate) > 0.2" in listed

    with cli_env.client() as c:
        ingest(c, ok=1, errors=3)
    AlertJob(cli_env.store, base_url=cli_env.url).run_once()
    assert len(got) == 1
    assert "firing" in run_80("alerts", "list")

    muted = run_80("alerts", "mute", "error-rate-high", "--for", "1h")
    assert muted.startswith("muted error-rate-high until")
    assert "say how long" in run("alerts", "mute", "error-rate-high", code=2)
    assert "unmuted" in run("alerts", "unmute", "error-rate-high")
    tested = run("alerts", "test", "error-rate-high")
    assert "webhook" in tested and "yes" in tested and len(got) == 2
    assert "resolved error-rate-high; sent: webhook ok" in run("alerts", "resolve", "error-rate-high")
    assert "not firing" in run("alerts", "resolve", "error-rate-high", code=1)
    hist = run_80("alerts", "history", "--rule", "error-rate-high")
    for status in ("fired", "resolved", "test", "muted", "unmuted"):
        assert status in hist
    assert "webhook ok" in hist
    assert "more: --cursor" in run_80("alerts", "history", "--limit", "2")
    js = run("alerts", "history", "--json", "--limit", "1")
    assert "\"status\": \"resolved\"" in js, js
    assert "deleted" in run("alerts", "delete", "p95-latency-doubled")
    assert "no alert rule" in run("alerts", "delete", "p95-latency-doubled", code=1)
