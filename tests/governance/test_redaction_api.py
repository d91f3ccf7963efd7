"""Redaction rules over the API, the CLI and the UI against a real server, on each database:
validation errors in the pinned shape naming the rule, admin only, the dry run, the cache dropped
on change, the audit note, fail-open (stored, counted, a warning without the value) and
fail-closed (the item rejected with a per-item error, the batch's other items stored)."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from podium.governance.actor import Actor, notes_of, set_actor
from tests.conftest import LiveServer, ProjectKeys

RULES = "/api/v1/redaction-rules"
EMAIL = "ana.secret@example.org"
CARD = "4111 1111 1111 1111"


def _key(server: LiveServer, role: str) -> ProjectKeys:
    k = server.store.projects.create_key(server.keys.project_id, role=role)
    return ProjectKeys(server.keys.project_id, k.key.public_key, k.secret_key)


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return body["error"]


def _span(tid: str, sid: str, text: str, **kw: Any) -> dict[str, Any]:
    return {"type": "span", "body": {"trace_id": tid, "id": sid, "name": "llm", "kind": "generation",
                                     "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
                                     "input": text, **kw}}


def _stored_inputs(server: LiveServer, tid: str, n: int) -> dict[str, Any]:
    with server.client() as c:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = c.get(f"/api/v1/traces/{tid}")
            if r.status_code == 200 and len(r.json()["spans"]) >= n:
                return {s["id"]: s["input"] for s in r.json()["spans"]}
            time.sleep(0.05)
    raise AssertionError(f"trace {tid} did not get {n} spans")


def test_get_put_validate_and_roles(server: LiveServer) -> None:
    with server.client() as c:
        r = c.get(RULES)
        assert r.status_code == 200 and r.json()["rules"] == [] and r.json()["fail_closed"] is False
        assert "credit_card" in r.json()["presets"]
        bad = c.put(RULES, json={"rules": [{"preset": "email"}, {"pattern": "(", "replacement": 5}]})
        err = _error(bad, 400, "validation_error")
        assert err["message"].startswith("invalid redaction rules: rules[1].pattern: not a valid regular expression")
        assert {d["field"] for d in err["details"]} == {"rules[1].pattern", "rules[1].replacement"}
        _error(c.put(RULES, json={"rules": [], "colour": 1}), 400, "validation_error")
        doc = {"rules": [{"preset": "credit_card"}, {"path": "metadata.password"}], "fail_closed": True}
        r = c.put(RULES, json=doc)
        assert r.status_code == 200, r.text
        got = c.get(RULES).json()
        assert got["rules"] == doc["rules"] and got["fail_closed"] is True
        assert got["updated_by"].startswith("key:") and got["updated_at"]
    for role in ("member", "viewer"):
        with server.client(_key(server, role)) as c:
            _error(c.get(RULES), 403, "forbidden")
            _error(c.put(RULES, json={"rules": []}), 403, "forbidden")
            _error(c.post(RULES + "/test", json={"sample": {}}), 403, "forbidden")


def test_dry_run_with_stored_or_given_rules(server: LiveServer) -> None:
    with server.client() as c:
        c.put(RULES, json={"rules": [{"preset": "email"}]})
        r = c.post(RULES + "/test", json={"sample": {"input": f"to {EMAIL}", "trace_id": "x"}})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["redacted"] == {"input": "to [REDACTED:email]", "trace_id": "x"} and out["changes"] == 1
        assert out["ignored_fields"] == ["trace_id"]
        r = c.post(RULES + "/test", json={"sample": {"metadata": {"card": CARD}},
                                          "rules": [{"preset": "credit_card", "max_chars": 5}], "fail_closed": True})
        assert r.json()["redacted"] is None and "rules[0] (preset credit_card)" in r.json()["rejected"]
        err = _error(c.post(RULES + "/test", json={"sample": {}, "rules": [{"preset": "x"}]}), 400, "validation_error")
        assert err["details"][0]["field"] == "rules[0].preset"
        assert c.get(RULES).json()["rules"] == [{"preset": "email"}]  # the dry run stored nothing


def test_rules_apply_at_once_after_a_change(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        assert c.post("/api/v1/ingest", json={"batch": [_span(tid, "a", f"mail {EMAIL}")]}).status_code == 200
        c.put(RULES, json={"rules": [{"preset": "email"}]})
        assert c.post("/api/v1/ingest", json={"batch": [_span(tid, "b", f"mail {EMAIL}")]}).status_code == 200
        c.put(RULES, json={"rules": []})
        assert c.post("/api/v1/ingest", json={"batch": [_span(tid, "c", f"mail {EMAIL}")]}).status_code == 200
    assert _stored_inputs(server, tid, 3) == {"a": f"mail {EMAIL}", "b": "mail [REDACTED:email]", "c": f"mail {EMAIL}"}


def test_fail_open_stores_counts_and_warns_without_the_value(server: LiveServer,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="podium")
    tid = uuid.uuid4().hex
    with server.client() as c:
        c.put(RULES, json={"rules": [{"preset": "email", "max_chars": 40}, {"preset": "credit_card"}]})
        long = f"{EMAIL} {CARD} " + "x" * 40
        r = c.post("/api/v1/ingest", json={"batch": [_span(tid, "short", f"hi {EMAIL}"), _span(tid, "long", long)]})
        assert r.status_code == 200 and r.json()["errors"] == [], r.text
        health = c.get("/api/v1/health").json()["ingest"]["redaction"]
    stored = _stored_inputs(server, tid, 2)
    assert stored["short"] == "hi [REDACTED:email]"
    assert stored["long"] == f"{EMAIL} [REDACTED:card] " + "x" * 40  # the failing rule skipped, the other ran
    assert health["failures"] >= 1 and health["rejected_items"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "podium.redaction"]
    assert any("rules[0] could not redact a value of input" in w for w in warnings), warnings
    assert not any(EMAIL in r.getMessage() or CARD in r.getMessage() for r in caplog.records)


def test_fail_closed_rejects_the_item_and_keeps_the_others(server: LiveServer,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="podium")
    tid = uuid.uuid4().hex
    with server.client() as c:
        c.put(RULES, json={"rules": [{"preset": "email", "max_chars": 40}], "fail_closed": True})
        r = c.post("/api/v1/ingest", json={"batch": [
            _span(tid, "short", f"hi {EMAIL}"), _span(tid, "long", EMAIL + " " + "x" * 60),
            {"type": "score", "body": {"id": "sc", "trace_id": tid, "name": "q", "value": 1,
                                       "comment": "y" * 50}},
        ]})
        assert r.status_code == 207, r.text
        errors = r.json()["errors"]
        assert [(e["index"], e["status"]) for e in errors] == [(1, 400), (2, 400)]
        assert errors[0]["message"].startswith("could not redact input: rules[0] (preset email) skips values over "
                                               "max_chars 40")
        assert "fail-closed" in errors[0]["message"] and EMAIL not in errors[0]["message"]
        assert [s["index"] for s in r.json()["successes"]] == [0]
        assert c.get("/api/v1/health").json()["ingest"]["redaction"]["rejected_items"] == 2
        # OTLP/HTTP JSON: the span is counted as rejected in the OTLP response
        otlp = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [{
            "traceId": tid, "spanId": "00000000000000aa", "name": "x", "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": "1767225601000000000",
            "attributes": [{"key": "note", "value": {"stringValue": "z" * 60}}]}]}]}]}
        r = c.post("/v1/traces", json=otlp)
        assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == "1", r.text
    assert _stored_inputs(server, tid, 1) == {"short": "hi [REDACTED:email]"}
    assert not any(EMAIL in r.getMessage() for r in caplog.records)


def test_save_rules_notes_the_change_for_the_audit_log(server: LiveServer) -> None:
    from podium.server.routes.redaction import save_rules

    st = server.app.state.podium
    state = SimpleNamespace()
    set_actor(state, Actor("cli", "ops"))
    save_rules(st, state, server.keys.project_id, {"rules": [{"preset": "email"}]})
    save_rules(st, state, server.keys.project_id, {"rules": [{"preset": "iban"}], "fail_closed": True})
    notes = notes_of(state)
    assert [n.action for n in notes] == ["redaction.rules.set", "redaction.rules.set"]
    assert notes[1].before == {"rules": [{"preset": "email"}], "fail_closed": False}
    assert notes[1].after == {"rules": [{"preset": "iban"}], "fail_closed": True}
    assert notes[1].target_id == server.keys.project_id and notes[1].project_id == server.keys.project_id
    assert server.store.redaction.get(server.keys.project_id)["updated_by"] == "cli:ops"


def _cli(*args: str, code: int = 0) -> str:
    from typer.testing import CliRunner

    from podium.cli.main import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


@pytest.mark.one_db
def test_cli_show_set_test(cli_env: LiveServer, tmp_path: Path) -> None:
    assert "No redaction rules" in _cli("redaction", "show")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - preset: email\n  - pattern: '('\n  - preset: nope\n")
    out = _cli("redaction", "set", str(bad), code=1)
    assert "rules[1].pattern" in out and "rules[2].preset: unknown preset" in out
    good = tmp_path / "rules.yaml"
    good.write_text("fail_closed: true\nrules:\n  - preset: credit_card\n  - path: metadata.password\n"
                    "    replacement: '[REDACTED:password]'\n")
    assert "Saved 2 redaction rules (fail-closed)" in _cli("redaction", "set", str(good))
    out = _cli("redaction", "show")
    assert "credit_card" in out and "metadata.password" in out and "fail-closed" in out
    assert '"fail_closed": true' in _cli("redaction", "show", "--json")
    out = _cli("redaction", "test", "--text", f"card {CARD}")
    assert "card [REDACTED:card]" in out and CARD not in out
    sample = tmp_path / "sample.json"
    sample.write_text('{"metadata": {"password": "hunter2"}, "user_id": "u1"}')
    out = _cli("redaction", "test", str(sample))
    assert '"[REDACTED:password]"' in out and "never read by redaction: user_id" in out
    _cli("redaction", "test", code=2)


def test_ui_page_saves_validates_and_tries(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {server.keys.secret_key}"},
                      follow_redirects=False) as c:
        r = c.get("/settings/redaction")
        assert r.status_code == 200 and "Redaction before storage" in r.text and "<script>" not in r.text
        r = c.post("/settings/redaction", data={"rules": "rules:\n  - pattern: '('\n"})
        assert r.status_code == 400 and "rules[0].pattern" in r.text
        r = c.post("/settings/redaction", data={"rules": "rules:\n  - preset: email\n", "fail_closed": "on"})
        assert r.status_code == 303 and r.headers["location"] == "/settings/redaction?saved=1"
        assert server.store.redaction.get(server.keys.project_id)["fail_closed"] is True
        r = c.post("/settings/redaction/test", data={"rules": "rules:\n  - preset: email\n",
                                                     "sample": f"mail {EMAIL}"})
        assert r.status_code == 200 and "mail [REDACTED:email]" in r.text
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {_key(server, 'member').secret_key}"}) as c:
        assert c.get("/settings/redaction").status_code == 403
