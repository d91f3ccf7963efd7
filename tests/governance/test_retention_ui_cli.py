"""The retention and data-subject pages (admin only, no inline script, the same audit notes) and
the `podium retention | legal-hold | subjects` commands."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from podium.store import tables as t
from tests.conftest import LiveServer, make_project
from tests.governance.lifecycle_seed import add_trace, count


def _client(server: LiveServer, secret: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {secret}"},
                        follow_redirects=False)


def test_ui_pages_set_periods_hold_dry_run_and_delete(server: LiveServer) -> None:
    pid = server.keys.project_id
    add_trace(server.store, pid, "u1-old", age_days=40, user="u1", spans=2)
    add_trace(server.store, pid, "u2-new", age_days=1, user="u2", spans=1)
    with _client(server, server.keys.secret_key) as c:
        r = c.get("/settings/retention")
        assert r.status_code == 200 and "Legal hold" in r.text and "<script>" not in r.text
        assert c.post("/settings/retention", data={"traces": "x"}).status_code == 400
        r = c.post("/settings/retention", data={"traces": "30", "scores": "", "gateway": "0"})
        assert r.status_code == 303 and r.headers["location"] == "/settings/retention?saved=periods"
        p = server.store.lifecycle.policy(pid)
        assert (p.traces_days, p.scores_days, p.gateway_days) == (30, None, 0)
        r = c.post("/settings/retention/dry-run", data={})
        assert r.status_code == 200 and 'data-testid="retention-dry-result"' in r.text
        assert count(server.store, t.trace, pid) == 2  # a dry run deletes nothing

        r = c.get("/settings/subjects?user_id=u1")
        assert r.status_code == 200 and 'data-testid="subject-counts"' in r.text
        assert c.post("/settings/subjects/delete", data={"user_id": "u1", "confirm": "nope"}).status_code == 400
        assert c.post("/settings/retention/hold", data={"on": "1", "reason": "audit 9"}).status_code == 303
        r = c.post("/settings/subjects/delete", data={"user_id": "u1", "confirm": "u1"})
        assert r.status_code == 409 and "legal hold (audit 9)" in r.text
        assert c.post("/settings/retention/hold", data={"on": "0"}).status_code == 303
        r = c.get("/settings/subjects/export?user_id=u1")
        assert r.status_code == 200 and [x["id"] for x in r.json()["traces"]] == ["u1-old"]
        r = c.post("/settings/subjects/delete", data={"user_id": "u1", "confirm": "u1"})
        assert r.status_code == 200 and 'data-testid="subject-receipt"' in r.text
        assert count(server.store, t.trace, pid) == 1
        assert 'data-testid="subject-receipts"' in c.get("/settings/subjects").text

    member = server.store.projects.create_key(pid, role="member")
    with _client(server, member.secret_key) as c:
        for path in ("/settings/retention", "/settings/subjects", "/settings/subjects/export?user_id=u2"):
            assert c.get(path).status_code == 403
        assert c.post("/settings/subjects/delete", data={"user_id": "u2", "confirm": "u2"}).status_code == 403
    actions = [e["action"] for e in server.store.audit.list_events(pid, limit=100).items]
    for a in ("retention.set", "legal_hold.set", "subject.export", "subject.delete"):
        assert a in actions


@pytest.mark.one_db
def test_cli_retention_legal_hold_and_subjects(store: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_DATABASE_URL", db_url)
    p = make_project(store, "default")
    add_trace(store, p.project_id, "old", age_days=40, user="u1")
    add_trace(store, p.project_id, "new", age_days=1, user="u2")
    run = CliRunner().invoke
    r = run(app, ["retention", "set", "--traces", "30"])
    assert r.exit_code == 0, r.output
    assert "30 days" in r.output
    r = run(app, ["retention", "run", "--dry-run", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["counts"]["trace"] == 1
    r = run(app, ["legal-hold", "on", "--reason", "case 1"])
    assert r.exit_code == 0
    r = run(app, ["retention", "run"])
    assert r.exit_code == 1 and "legal hold (case 1)" in r.output
    r = run(app, ["subjects", "delete", "u1", "--yes"])
    assert r.exit_code == 1 and "legal hold" in r.output
    assert run(app, ["legal-hold", "off"]).exit_code == 0
    r = run(app, ["subjects", "export", "u2"])
    assert r.exit_code == 0 and json.loads(r.output)["traces"][0]["id"] == "new"
    r = run(app, ["subjects", "delete", "u2", "--json"])
    assert r.exit_code == 0, r.output
    receipt = json.loads(r.output)
    assert receipt["counts"]["trace"] == 1 and receipt["actor"].startswith("cli:")
    r = run(app, ["retention", "run"])
    assert r.exit_code == 0 and "deleted in" in r.output
    assert count(store, t.trace, p.project_id) == 0
    actions = {e["action"] for e in store.audit.list_events(p.project_id, limit=100).items}
    assert {"retention.set", "legal_hold.set", "subject.export", "subject.delete", "retention.purge"} <= actions
