"""Rotating the encryption key of provider secrets while the gateway serves.

Issue 16 item 6. A real server (SQLite and PostgreSQL) whose model aliases were declared
through the API under the old key; the key file gets a new primary (``podium secrets add-key``),
the running server picks it up without a restart, ``rotate_secrets`` re-encrypts the rows in
batches while calls keep flowing (rows not yet rotated and rows already rotated are both
called between batches), and afterwards the old key alone opens nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from podium.cli.main import app as cli
from podium.config import Settings
from podium.errors import ConfigurationError
from podium.gateway.secrets import SecretBox, key_id, parse_keys, rotate_secrets, sealed_values
from podium.server.app import create_app
from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hi"}]
N_ALIASES = 12


@pytest.fixture
def live(store: Any, project: ProjectKeys, podium_home: Path, db_url: str,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("PODIUM_DATABASE_URL", db_url)  # the CLI's store is the server's
    th = ServerThread(create_app(Settings(gateway_cache="off"), store=store)).start()
    yield LiveServer(th.url, store, project, th.server.config.app, th)
    th.stop()


def _declare(srv: LiveServer, upstream: FakeUpstream) -> None:
    with srv.client() as c:
        for i in range(N_ALIASES):
            r = c.put(f"/api/v1/gateway/models/team-{i:02d}", json={"deployments": [
                {"provider": "openai", "model": f"up-{i:02d}", "api_base": upstream.base_url,
                 "api_key": f"sk-provider-{i:02d}", "headers": {"x-tenant": f"tenant-{i:02d}"}}]})
            assert r.status_code == 201, r.text


def _call(srv: LiveServer, upstream: FakeUpstream, i: int) -> None:
    """One gateway call through alias ``i`` with the alias cache dropped first (so the stored
    secrets are decrypted again now), checking the provider got the right credentials."""
    srv.app.state.podium.gateway.invalidate()
    oai = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.keys.secret_key, max_retries=0)
    oai.chat.completions.create(model=f"team-{i:02d}", messages=MSG)
    sent = [r for r in upstream.requests if r["body"].get("model") == f"up-{i:02d}"][-1]["headers"]
    assert sent["authorization"] == f"Bearer sk-provider-{i:02d}" and sent["x-tenant"] == f"tenant-{i:02d}"


def test_rotation_keeps_the_gateway_serving_and_retires_the_old_key(live: LiveServer, upstream: FakeUpstream,
                                                                     podium_home: Path) -> None:
    srv = live
    _declare(srv, upstream)  # the server generated $PODIUM_HOME/secret.key: the old key
    old = parse_keys((podium_home / "secret.key").read_bytes())
    assert len(old) == 1
    values = list(sealed_values(srv.store))
    assert len(values) == 2 * N_ALIASES and all(SecretBox(old).opens(v) for _w, v in values)
    _call(srv, upstream, 0)

    # 1. A new primary in front of the old key, in the key file; no restart.
    new = Fernet.generate_key()
    r = CliRunner().invoke(cli, ["secrets", "add-key", "--key", new.decode()])
    assert r.exit_code == 0, r.output
    assert parse_keys((podium_home / "secret.key").read_bytes()) == [new, old[0]]
    assert srv.app.state.podium.gateway.box.key_ids == [key_id(new), key_id(old[0])]  # picked up
    _call(srv, upstream, 1)

    # 2. Rotate in batches of 5 while a caller keeps using every alias; between batches, call an
    # alias already rotated and one not yet rotated.
    stop = threading.Event()
    errors: list[BaseException] = []
    calls = [0]

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            try:
                _call(srv, upstream, i % N_ALIASES)
                calls[0] += 1
            except BaseException as e:  # any failure is the test's failure
                errors.append(e)
            i += 1

    seen: list[tuple[int, int]] = []

    def between(report: Any) -> None:
        box_new = SecretBox([new])
        state = [box_new.which_key(v) == 0 for _w, v in sealed_values(srv.store)]
        seen.append((sum(state), len(state)))
        for i in (0, N_ALIASES - 1):  # the first alias (rotated in batch 1) and the last (rotated last)
            _call(srv, upstream, i)

    t = threading.Thread(target=hammer)
    t.start()
    try:
        report = rotate_secrets(srv.store, SecretBox.from_settings(None, podium_home), batch_size=5,
                                on_batch=between)
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors[:3]
    assert calls[0] > 0
    assert report.batches == 3 and report.rows_rewritten == N_ALIASES and report.values == 2 * N_ALIASES
    assert report.failed == []
    assert seen[0][0] == 10 and seen[1][0] == 20, seen  # mixed tokens while it ran: 2 values a row

    # 3. Every stored secret is under the new key; the old key alone opens nothing.
    values = list(sealed_values(srv.store))
    assert len(values) == 2 * N_ALIASES
    for _w, v in values:
        assert SecretBox([new]).opens(v)
        with pytest.raises(ConfigurationError):
            SecretBox([old[0]]).decrypt(v)
    # A second rotation through the CLI has nothing left to do (and is recorded in the audit log).
    r = CliRunner().invoke(cli, ["secrets", "rotate", "--json"])
    assert r.exit_code == 0, r.output
    assert '"values": 0' in r.output
    rotations = [e for e in srv.store.audit.iter_events() if e.action == "secrets.rotate"]
    assert len(rotations) == 1 and rotations[0].actor_kind == "cli" and rotations[0].target_id == key_id(new)
    assert rotations[0].project_id is None and json.loads(rotations[0].detail or "{}")["keys"] == [key_id(new), key_id(old[0])]

    # 4. Drop the old key: the running server still serves, with the new key alone.
    r = CliRunner().invoke(cli, ["secrets", "drop-old"])
    assert r.exit_code == 0, r.output
    assert parse_keys((podium_home / "secret.key").read_bytes()) == [new]
    for i in range(N_ALIASES):
        _call(srv, upstream, i)


def test_drop_old_is_refused_while_a_secret_needs_the_old_key(live: LiveServer, upstream: FakeUpstream,
                                                                 podium_home: Path) -> None:
    _declare(live, upstream)
    assert CliRunner().invoke(cli, ["secrets", "add-key"]).exit_code == 0
    r = CliRunner().invoke(cli, ["secrets", "drop-old"])
    assert r.exit_code == 1 and "podium secrets rotate" in r.output
    assert len(parse_keys((podium_home / "secret.key").read_bytes())) == 2
    r = CliRunner().invoke(cli, ["secrets", "status", "--json"])
    assert r.exit_code == 0 and '"secrets": 24' in r.output, r.output


def test_a_ring_from_the_environment_decrypts_with_every_key_and_encrypts_with_the_first() -> None:
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    under_b = SecretBox(b).encrypt("sk-x")
    ring = SecretBox(f"{a},{b}")
    assert ring.decrypt(under_b) == "sk-x"
    assert ring.which_key(under_b) == 1 and ring.which_key(ring.encrypt("sk-y")) == 0
    assert SecretBox(a).decrypt(ring.rotate(under_b)) == "sk-x"
    with pytest.raises(ConfigurationError, match="key 2 of PODIUM_ENCRYPTION_KEY is not a valid Fernet key"):
        SecretBox(f"{a},nope")
    with pytest.raises(ConfigurationError, match="podium secrets rotate"):
        SecretBox(a).decrypt(SecretBox(b).encrypt("sk-z"))


# --- API keys: only their hashes are stored ----------------------------------------------------

def _database_text(store: Any, db_url: str) -> bytes:
    """Everything the database holds, as bytes: the SQLite files (with the WAL), or every row of
    every PostgreSQL table as text."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    from sqlalchemy import text

    from podium.store.tables import metadata

    out = []
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            out.extend(str(r[0]).encode() for r in conn.execute(text(f'SELECT CAST(t AS text) FROM "{table.name}" t')))
    return b"\n".join(out)


def test_api_keys_and_provider_keys_never_reach_the_database_in_clear(live: LiveServer, upstream: FakeUpstream,
                                                                       db_url: str) -> None:
    with live.client() as c:
        made = c.post("/api/v1/keys", json={"role": "viewer", "note": "grep me"})
        assert made.status_code == 201, made.text
        api_secret = made.json()["secret_key"]
        r = c.put("/api/v1/gateway/models/grep", json={"deployments": [
            {"provider": "openai", "model": "m", "api_base": upstream.base_url,
             "api_key": "sk-provider-grep-0123456789", "headers": {"x-api-key": "hdr-secret-0123456789"}}]})
        assert r.status_code == 201, r.text
    cli_key = live.store.projects.create_key(live.keys.project_id, role="member")
    with live.client() as c:  # the keys work (their hashes are what is stored)
        assert c.get("/api/v1/project", headers={"authorization": f"Bearer {api_secret}"}).status_code == 200
    dump = _database_text(live.store, db_url)
    assert b"grep me" in dump  # the dump does hold the rows
    for secret in (api_secret, cli_key.secret_key, live.keys.secret_key, "sk-provider-grep-0123456789",
                   "hdr-secret-0123456789"):
        assert secret.encode() not in dump, secret[:8]
    import hashlib

    assert hashlib.sha256(api_secret.encode()).hexdigest().encode() in dump
