"""A key revoked with the CLI (which writes the database directly) is refused by a running
server within a second, on the REST API and the gateway alike (issue 10 item 10)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from podium.cli.main import app as cli
from tests.conftest import LiveServer, make_project

pytestmark = pytest.mark.integration


def _status(srv: LiveServer, secret: str) -> tuple[int, int]:
    h = {"authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=srv.url, timeout=10, headers=h) as c:
        return c.get("/api/v1/traces").status_code, c.get("/v1/models").status_code


def test_cli_revocation_takes_effect_within_a_second(server: LiveServer, db_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    victim = make_project(server.store, "victim-project")
    other = make_project(server.store, "other-project")
    # Both keys are in the server's auth cache (which keeps a key for 5 s).
    assert _status(server, victim.secret_key) == (200, 200)
    assert _status(server, other.secret_key) == (200, 200)
    monkeypatch.setenv("PODIUM_DATABASE_URL", db_url)
    r = CliRunner().invoke(cli, ["keys", "revoke", victim.public_key])
    assert r.exit_code == 0, r.output
    revoked_at = time.monotonic()
    while _status(server, victim.secret_key) != (401, 401):
        assert time.monotonic() - revoked_at < 1.0, "the revoked key was still accepted after 1 s"
        time.sleep(0.05)
    assert time.monotonic() - revoked_at < 1.0
    assert _status(server, other.secret_key) == (200, 200)  # the others keep working


def test_revocation_marker_moves_on_every_revocation(store: Any) -> None:
    a, b = make_project(store, "a"), make_project(store, "b")
    m0 = store.projects.revocation_marker()
    assert m0 == (0, None)
    store.projects.revoke_key(None, a.public_key)
    m1 = store.projects.revocation_marker()
    store.projects.revoke_key(None, b.public_key)
    m2 = store.projects.revocation_marker()
    assert m1[0] == 1 and m2[0] == 2 and m1 != m2
