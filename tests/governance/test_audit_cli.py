"""``podium audit list|verify|export`` and the CLI commands that write the database directly."""

from __future__ import annotations

import csv
import getpass
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from podium.cli.main import app
from podium.config import Settings
from podium.store import Store

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, (r.output, r.exception)
    return r.output


@pytest.mark.one_db
def test_cli_writes_are_audited_and_the_chain_verifies(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("PODIUM_DATABASE_URL", db_url)
    created = json.loads(run("projects", "create", "acme", "--json"))
    key = json.loads(run("keys", "create", "--project", "acme", "--role", "viewer", "--json"))
    run("keys", "revoke", key["public_key"])
    rows = json.loads(run("audit", "list", "--json"))
    assert [r["action"] for r in rows] == ["key.revoke", "key.create", "project.create"]
    user = getpass.getuser()
    assert {(r["actor"]["kind"], r["actor"]["id"]) for r in rows} == {("cli", user)}
    assert rows[2]["project_id"] == created["project"]["id"] and rows[1]["target_id"] == key["public_key"]
    assert key["secret_key"] not in json.dumps(rows)
    assert "key.create" in run("audit", "list", "--action", "key", "--project", "acme")

    out = run("audit", "verify")
    assert "intact: 3 events" in out and "head: event 3" in out
    dest = tmp_path / "audit.csv"
    run("audit", "export", "--format", "csv", "--output", str(dest))
    table = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert [r["action"] for r in table] == ["project.create", "key.create", "key.revoke", "audit.export"]
    lines = run("audit", "export", "--action", "key.create").splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["key.create"]
    assert run("audit", "export", "--format", "xml", code=2) is not None

    s = Store.from_url(Settings().resolved_database_url, migrate=False)
    try:
        with s.engine.begin() as c:
            c.execute(text("UPDATE audit_event SET target_id = 'forged' WHERE seq = 2"))
    finally:
        s.close()
    bad = runner.invoke(app, ["audit", "verify", "--json"])
    assert bad.exit_code == 1
    result = json.loads(bad.output)
    assert result["ok"] is False and result["broken_event"] == 2 and result["head_seq"] == 5
