"""``podium users create|list|invite|set-role|disable|set-password``: they write the database directly."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from podium.config import Settings
from podium.governance.login_limits import LoginLimiter
from podium.governance.passwords import verify_password
from podium.governance.users import password_login
from podium.store import Store

runner = CliRunner()
PW = "correct horse battery staple"


def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
    r = runner.invoke(app, list(args), input=stdin)
    assert r.exit_code == code, (r.output, r.exception)
    return r.output


@pytest.mark.one_db
def test_users_commands(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_DATABASE_URL", db_url)
    run("projects", "create", "default")
    made = json.loads(run("users", "create", "Ana@Example.com", "--role", "owner", "--password-stdin", "--json",
                          stdin=PW + "\n"))
    assert made["email"] == "ana@example.com" and made["role"] == "owner"
    # Prompted twice (with confirmation) when not from stdin.
    run("users", "create", "bo@example.com", "--role", "member", stdin=f"{PW}\n{PW}\n")
    assert "at least 10" in run("users", "create", "cy@example.com", "--password-stdin", stdin="short\n", code=1)
    assert "already exists" in run("users", "create", "bo@example.com", "--password-stdin", stdin=PW + "\n", code=1)
    rows = {r["email"]: r for r in json.loads(run("users", "list", "--json"))}
    assert rows["ana@example.com"]["projects"] == {"default": "owner"}
    assert rows["bo@example.com"]["projects"] == {"default": "member"}
    inv = json.loads(run("users", "invite", "dee@example.com", "--role", "viewer", "--json"))
    assert "/invite/" in inv["url"] and inv["role"] == "viewer"
    assert "member -> admin" in run("users", "set-role", "bo@example.com", "admin")
    assert "last owner" in run("users", "set-role", "ana@example.com", "viewer", code=1)
    assert "disabled" in run("users", "disable", "bo@example.com")
    run("users", "set-password", "ana@example.com", "--password-stdin", stdin="a brand new passphrase\n")
    s = Store.from_url(Settings().resolved_database_url, migrate=False)
    try:
        ana = s.users.by_email("ana@example.com")
        assert ana is not None and verify_password(ana.password_hash, "a brand new passphrase")
        bo = s.users.by_email("bo@example.com")
        assert bo is not None and bo.disabled_at is not None
        with pytest.raises(Exception, match="wrong email or password"):  # disabled: same answer as a wrong password
            password_login(s, LoginLimiter(per_account=9, per_ip=9, window=60), "bo@example.com", PW, None)
        actions = [r["action"] for r in json.loads(run("audit", "list", "--json"))]
        for a in ("user.create", "user.invite", "member.role.change", "user.disable", "user.password.set"):
            assert a in actions, (a, actions)
    finally:
        s.close()
    run("users", "disable", "bo@example.com", "--enable")
