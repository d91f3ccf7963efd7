"""`podium registry` against a real server: register (hash here, --copy under $PODIUM_HOME),
alias, rollback, history, lineage; the tables fit 80 columns as a real subprocess without a TTY."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer, run_cli_80

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


run_80 = run_cli_80


@pytest.mark.one_db
@pytest.mark.slow
def test_registry_cli(cli_env: LiveServer, tmp_path: Path, podium_home: Path) -> None:
    f = tmp_path / "adapter.safetensors"
    f.write_bytes(b"lora" * 10_000)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    out = run("registry", "register", "bot", "--artifact", str(f), "--kind", "adapter", "--base",
              "smollm2-135m-instruct", "--meta", "lr=2e-4")
    assert "bot@1" in out and digest in out
    out = run("registry", "register", "bot", "--artifact", str(f), "--copy", "--kind", "merged")
    assert "bot@2" in out
    copied = podium_home / "models" / "bot" / "2" / "adapter.safetensors"
    assert copied.read_bytes() == f.read_bytes()
    assert sorted(p.name for p in (podium_home / "models" / "bot").iterdir()) == ["2"]
    v2 = cli_env.store.models.get_version(cli_env.keys.project_id, "bot", 2)
    assert v2["artifact"]["uri"] == str(copied) and v2["artifact"]["sha256"] == digest
    run("registry", "register", "bot", "--artifact", "hf://org/bot", "--copy", code=2)
    run("registry", "alias", "bot", "champion", "1", "-m", "first")
    run("registry", "alias", "bot", "champion", "2", "-m", "better")
    assert "version 1" in run("registry", "rollback", "bot", "champion", "-m", "worse")
    assert run("registry", "resolve", "registry:/bot@champion").strip() == "bot@1"
    run("registry", "alias", "bot", "champion", "9", code=1)
    listing = run_80("registry", "list")
    assert "bot" in listing and "champion→1" in listing
    show = run_80("registry", "show", "bot")
    assert "adapter" in show and "champion" in show
    hist = run_80("registry", "history", "bot", "champion")
    assert "rollback" in hist and "worse" in hist
    lin = run_80("registry", "lineage", "bot@champion")
    assert "version" in lin and "0 traces" in lin
