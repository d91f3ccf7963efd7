"""The `podium` CLI: admin commands on a temp home, `podium up` as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import free_port

runner = CliRunner()


def run(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_db_projects_and_keys(podium_home: Path) -> None:
    head = sorted(p.name[:4] for p in (Path(__file__).parents[2] / "podium/store/migrations/versions").glob("0*.py"))[-1]
    assert head in run("db", "upgrade")
    assert run("db", "current").strip() == head
    out = json.loads(run("projects", "create", "shop", "--json"))
    assert out["project"]["name"] == "shop" and out["secret_key"].startswith("sk-pd-")
    again = runner.invoke(app, ["projects", "create", "shop"])
    assert again.exit_code == 1 and "already exists" in again.output
    names = [p["name"] for p in json.loads(run("projects", "list", "--json"))]
    assert names == ["shop"]
    key = json.loads(run("keys", "create", "--project", "shop", "--role", "ingest", "--note", "ci", "--json"))
    keys = json.loads(run("keys", "list", "--project", "shop", "--json"))
    assert {k["public_key"] for k in keys} == {out["public_key"], key["public_key"]}
    assert all("secret_key" not in k for k in keys)
    assert "revoked" in run("keys", "revoke", key["public_key"])
    listed = json.loads(run("keys", "list", "--project", "shop", "--json"))
    assert next(k for k in listed if k["public_key"] == key["public_key"])["revoked_at"]
    bad = runner.invoke(app, ["keys", "create", "--project", "nope"])
    assert bad.exit_code == 1 and "no project" in bad.output
    table = run("keys", "list", "--project", "shop")
    assert key["public_key"] in table


@pytest.mark.integration
def test_podium_up_bootstraps_and_serves(podium_home: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PODIUM_HOME": str(podium_home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "podium.cli", "up", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        keys = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (podium_home / "default-keys.env").read_text().splitlines()
            if line.startswith("export ")
        )
        assert oct((podium_home / "default-keys.env").stat().st_mode & 0o777) == "0o600"
        auth = (keys["PODIUM_PUBLIC_KEY"], keys["PODIUM_SECRET_KEY"])
        span = {"id": "s1", "trace_id": "t1", "name": "hello", "start_time": "2026-01-01T00:00:00Z",
                "end_time": "2026-01-01T00:00:01Z"}
        r = httpx.post(url + "/api/v1/ingest", json={"batch": [{"type": "span", "body": span}]}, auth=auth)
        assert r.status_code == 200, r.text
        # The CLI reads traces through the API, with the keys from the default keys file.
        cli_env = {**env, "PODIUM_BASE_URL": url}
        out = subprocess.run([sys.executable, "-m", "podium.cli", "traces", "list", "--json"], env=cli_env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert [t["id"] for t in json.loads(out.stdout)["data"]] == ["t1"]
        show = subprocess.run([sys.executable, "-m", "podium.cli", "traces", "show", "t1"], env=cli_env,
                              capture_output=True, text=True, timeout=60)
        assert show.returncode == 0 and "hello" in show.stdout, show.stderr
        table = subprocess.run([sys.executable, "-m", "podium.cli", "traces", "list"], env=cli_env,
                               capture_output=True, text=True, timeout=60)
        assert "t1" in table.stdout
        missing = subprocess.run([sys.executable, "-m", "podium.cli", "traces", "show", "nope"], env=cli_env,
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode == 1 and "no trace" in missing.stderr
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}" in out and keys["PODIUM_SECRET_KEY"] in out
    # Second start: no new project, the same keys are printed again from the file.
    proc2 = subprocess.Popen([sys.executable, "-m", "podium.cli", "up", "--port", str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            assert time.monotonic() < deadline
    finally:
        proc2.terminate()
        out2, _ = proc2.communicate(timeout=20)
    assert keys["PODIUM_PUBLIC_KEY"] in out2 and "from" in out2
