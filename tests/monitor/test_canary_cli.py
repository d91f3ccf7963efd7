"""`podium deploy` against a real server and gateway (the fake OpenAI upstream): the eval-suite
gate refuses a candidate that regresses (exit 1, the numbers), starts one that does not (the
comparison sent as evidence), then list / status / pause / resume / rollback; the tables fit 80
columns as a real subprocess without a TTY."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer, run_cli_80
from tests.gateway.fake_upstream import FakeUpstream, Reply

runner = CliRunner()

SUITE = """\
description: canary-smoke
prompts: ["Greet {{name}}"]
providers: [support]
tests:
""" + "".join(f"  - {{vars: {{name: n{i}}}, assert: [{{type: icontains, value: hello}}]}}\n" for i in range(6))


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


@pytest.mark.one_db
def test_deploy_cli_suite_gate_and_actions(cli_env: LiveServer, upstream: FakeUpstream, tmp_path: Path) -> None:
    with cli_env.client() as c:
        for _ in range(3):
            assert c.post("/api/v1/registry/models/bot/versions",
                          json={"artifact": {"kind": "external", "uri": "hf://o/m"}}).status_code == 201
        c.put("/api/v1/registry/models/bot/aliases/champion", json={"version": 1})
        r = c.put("/api/v1/gateway/models/support", json={"deployments": [
            {"provider": "openai", "model": "registry:/bot@champion", "api_base": upstream.base_url,
             "api_key": "sk-up", "max_retries": 0}]})
        assert r.status_code == 201, r.text
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    upstream.respond("registry:/bot@2", lambda body: Reply("no idea"))  # v2 fails every assertion
    r = runner.invoke(app, ["deploy", "canary", "--alias", "support", "--model", "bot", "--candidate", "2",
                            "--suite", str(suite), "--no-progress"])
    assert r.exit_code == 1, r.output
    assert "not started" in r.output and "regressed significantly" in r.output and "pass_rate" in r.output
    with cli_env.client() as c:
        assert c.get("/api/v1/canaries").json()["data"] == []
        names = {a["name"] for a in c.get("/api/v1/gateway/models").json()["data"]}
        assert names & {"support--canary-baseline", "support--canary-candidate"} == set()  # cleaned up
    # v3 answers as well as v1: the suite passes, the canary starts with the evidence
    out = run("deploy", "canary", "--alias", "support", "--model", "bot", "--candidate", "3", "--suite", str(suite),
              "--step-duration", "10m", "--min-requests", "20", "--max-error-rate-increase", "0.02", "--no-progress")
    assert "started canary" in out and "v1 95% / v3 5% on support" in out
    with cli_env.client() as c:
        can = c.get("/api/v1/canaries").json()["data"][0]
    cid = can["id"]
    assert can["suite"]["passed"] is True and can["suite"]["regressed"] == []
    assert can["step_duration_s"] == 600 and can["gates"]["max_error_rate_increase"] == 0.02
    out = run("deploy", "list")
    assert cid in out and "running" in out
    out = run_cli_80("deploy", "status", cid)
    assert f"start [{can['actor']}]" in out  # the actor, not swallowed as markup
    assert "[5%] > 25% > 50% > 100%" in out and "start" in out
    run("deploy", "pause", cid)
    run("deploy", "resume", cid)
    out = run("deploy", "rollback", cid, "--reason", "manual test")
    assert "rolled_back" in out
    out = run("deploy", "status", cid)
    assert "manual test" in out and "rollback" in out
    r = runner.invoke(app, ["deploy", "promote", cid])
    assert r.exit_code == 1 and "rolled_back" in r.output
    r = runner.invoke(app, ["deploy", "canary", "--alias", "support", "--model", "bot", "--candidate", "3",
                            "--steps", "5,50"])
    assert r.exit_code == 1 and "ending at 100" in r.output
    # --wait follows a canary to its end (promoted by hand from another client meanwhile)
    with cli_env.client() as c:
        started = c.post("/api/v1/canaries", json={"gateway_alias": "support", "model": "bot", "candidate": 3})
        cid2 = started.json()["id"]
        c.post(f"/api/v1/canaries/{cid2}/promote")
    from podium.cli.commands.deploy import _follow

    assert _follow(cid2, as_json=False, poll_s=0.1) == 0
    assert httpx.get(cli_env.url + "/healthz").status_code in (200, 404)
