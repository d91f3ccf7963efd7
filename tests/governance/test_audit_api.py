"""The audit middleware and ``/api/v1/audit-events`` on a real server, on both databases."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx

from podium.server.audit_log import EXCLUDED_PATHS, excluded
from tests.conftest import LiveServer, make_project


def _events(server: LiveServer, **params: Any) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get("/api/v1/audit-events", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _prompt(c: httpx.Client, name: str = "qa") -> None:
    for text in ("v1: {{q}}", "v2: {{q}}"):
        assert c.post("/api/v1/prompts", json={"name": name, "prompt": text}).status_code == 201


def test_a_label_move_records_who_when_before_and_after(server: LiveServer) -> None:
    with server.client(headers={"user-agent": "release-bot/1.0"}) as c:
        _prompt(c)
        assert c.put("/api/v1/prompts/qa/labels/production", json={"version": 1}).status_code == 200
        assert c.put("/api/v1/prompts/qa/labels/production", json={"version": 2}).status_code == 200
    moves = _events(server, action="prompt.label", target_type="prompt", target_id="qa")
    assert [m["action"] for m in moves] == ["prompt.label.move", "prompt.label.move"]
    last = moves[0]
    assert last["actor"] == {"kind": "key", "id": server.keys.public_key, "name": None, "role": "admin"}
    assert last["before"] == {"targets": [{"version": 1, "weight": 1.0}]}
    assert last["after"] == {"targets": [{"version": 2, "weight": 1.0}]}
    assert last["before_digest"] and last["after_digest"] and last["before_digest"] != last["after_digest"]
    assert last["detail"]["label"] == "production" and last["detail"]["to_version"] == 2
    assert last["method"] == "PUT" and last["status"] == 200 and last["project_id"] == server.keys.project_id
    assert last["route"] == "/api/v1/prompts/{name:path}/labels/{label}"
    assert last["path"] == "/api/v1/prompts/qa/labels/production"
    assert last["ip"] == "127.0.0.1" and last["user_agent"] == "release-bot/1.0" and last["created_at"]
    assert moves[1]["before"] == {"targets": None}  # the first move created the label
    # the versions were recorded too, and the event is readable on its own
    assert len(_events(server, action="prompt.version.create")) == 2
    with server.client() as c:
        one = c.get(f"/api/v1/audit-events/{last['id']}").json()
        assert one == last
        assert c.get("/api/v1/audit-events/999999").status_code == 404


def test_a_ui_form_post_records_the_local_actor(server: LiveServer) -> None:
    with server.client() as c:
        _prompt(c)
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as ui:
        r = ui.post("/prompts/qa/labels/production", data={"version": "2", "comment": "ship it"},
                    follow_redirects=False)
        assert r.status_code == 303, r.text
        history = ui.get("/prompts/qa/history")  # click 1: the label history links to the audit log (click 2)
        assert history.status_code == 200 and 'data-testid="audit-link"' in history.text
        assert "/settings/audit?target_type=prompt&amp;target_id=qa&amp;action=prompt.label" in history.text
        page = ui.get("/settings/audit", params={"target_type": "prompt", "target_id": "qa", "action": "prompt.label"})
        assert page.status_code == 200 and "prompt.label.move" in page.text and "local" in page.text
    [ev] = _events(server, action="prompt.label.move")
    assert ev["actor"]["kind"] == "local" and ev["actor"]["role"] == "admin"
    assert ev["after"] == {"targets": [{"version": 2, "weight": 1.0}]} and ev["detail"]["comment"] == "ship it"
    assert ev["method"] == "POST" and ev["route"] == "/prompts/{name:path}/labels/{label}"
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as ui:
        detail = ui.get(f"/settings/audit/{ev['id']}")
        assert detail.status_code == 200 and 'data-testid="after"' in detail.text and "ship it" in detail.text


def test_excluded_data_paths_record_nothing(server: LiveServer) -> None:
    assert excluded("/api/v1/ingest") and excluded("/v1/chat/completions") and not excluded("/api/v1/scores/s1")
    span = {"type": "span", "body": {"trace_id": "t1", "id": "s1", "name": "x", "start_time": "2026-12-01T00:00:00Z",
                                     "end_time": "2026-12-01T00:00:01Z"}}
    with server.client() as c:
        c.post("/api/v1/ingest", json={"batch": [span]})
        c.post("/v1/traces", json={"resourceSpans": []})
        c.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
        c.post("/api/public/ingestion", json={"batch": []})
        c.post("/api/v1/scores", json={"trace_id": "t1", "name": "q", "value": 1})
        c.post("/api/v1/guard/scan", json={"text": "hello", "policy": "default"})
        c.post("/api/v1/feedback", json={"trace_id": "t1", "value": "up"})
    assert _events(server) == [], "data paths must not be audited"
    assert "/api/v1/feedback" in EXCLUDED_PATHS


def test_a_mutation_without_a_note_gets_a_generic_event(server: LiveServer) -> None:
    with server.client() as c:
        assert c.post("/api/v1/datasets", json={"name": "ds", "items": [{"input": "a"}]}).status_code == 201
    [ev] = _events(server)
    assert ev["action"] == "http.post" and ev["route"] == "/api/v1/datasets" and ev["target_type"] == "datasets"
    assert ev["status"] == 201 and ev["actor"]["id"] == server.keys.public_key


def test_refused_requests_are_recorded_with_their_actor_and_viewers_cannot_read(server: LiveServer) -> None:
    viewer = make_project.__globals__["ProjectKeys"](  # a viewer key of the same project
        server.keys.project_id, *_new_key(server, "viewer"))
    with server.client() as c:
        _prompt(c)
    with server.client(viewer) as v:
        assert v.put("/api/v1/prompts/qa/labels/production", json={"version": 1}).status_code == 403
        for path in ("/api/v1/audit-events", "/api/v1/audit-events/verify", "/api/v1/audit-events/export"):
            r = v.get(path)
            assert r.status_code == 403 and set(r.json()) == {"error"}, path
    with httpx.Client(base_url=server.url, timeout=30, auth=("pk-nobody", "sk-nobody")) as anon:
        assert anon.post("/api/v1/datasets", json={"name": "x"}).status_code == 401
    refused = [e for e in _events(server) if e["status"] == 403]
    assert [e["actor"]["id"] for e in refused] == [viewer.public_key]
    assert refused[0]["action"] == "http.put" and refused[0]["actor"]["role"] == "viewer"
    assert not [e for e in _events(server) if e["status"] == 401]  # nobody known: not recorded


def _new_key(server: LiveServer, role: str) -> tuple[str, str]:
    with server.client() as c:
        r = c.post("/api/v1/keys", json={"role": role, "note": "reader"})
    assert r.status_code == 201, r.text
    body = r.json()
    return body["public_key"], body["secret_key"]


def test_key_creation_is_noted_without_its_secret(server: LiveServer) -> None:
    public, secret = _new_key(server, "member")
    with server.client() as c:
        assert c.delete(f"/api/v1/keys/{public}").status_code == 200
    created, = _events(server, action="key.create")
    assert created["target_id"] == public and created["after"]["role"] == "member"
    assert secret not in json.dumps(created)
    revoked, = _events(server, action="key.revoke")
    assert revoked["after"]["revoked_at"]


def test_verify_export_and_pagination(server: LiveServer) -> None:
    with server.client() as c:
        _prompt(c)
        assert c.put("/api/v1/prompts/qa/labels/production", json={"version": 1}).status_code == 200
        v = c.get("/api/v1/audit-events/verify").json()
        assert v["ok"] and v["checked"] == 3 and v["head_seq"] == 3 and len(v["head_hash"]) == 64
        page1 = c.get("/api/v1/audit-events", params={"limit": 2}).json()
        page2 = c.get("/api/v1/audit-events", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
        assert [e["id"] for e in page1["data"] + page2["data"]] == [3, 2, 1] and page2["next_cursor"] is None
        jl = c.get("/api/v1/audit-events/export", params={"format": "jsonl"})
        assert jl.status_code == 200 and jl.headers["content-type"].startswith("application/jsonl")
        rows = [json.loads(line) for line in jl.text.splitlines()]
        assert [r["id"] for r in rows] == [1, 2, 3, 4] and rows[2]["after"] == {"targets": [{"version": 1, "weight": 1.0}]}
        assert rows[3]["action"] == "audit.export"  # recorded before the body streams: the export holds its own event
        cs = c.get("/api/v1/audit-events/export", params={"format": "csv", "action": "prompt.label"})
        assert cs.status_code == 200 and cs.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(cs.text)))
        assert [r["action"] for r in table] == ["prompt.label.move"] and table[0]["hash"] == rows[2]["hash"]
        assert c.get("/api/v1/audit-events/export", params={"format": "xml"}).status_code in (400, 422)
    exports = _events(server, action="audit.export")  # the exports themselves are audited
    assert len(exports) == 2 and exports[0]["detail"]["format"] == "csv" and exports[0]["method"] == "GET"
    with server.client() as c:
        assert c.get("/api/v1/audit-events/verify").json()["ok"]


def test_events_stay_in_their_project(server: LiveServer) -> None:
    other = make_project(server.store, "other-project")
    with server.client(other) as c:
        _prompt(c)
    assert _events(server) == []
    with server.client(other) as c:
        assert len(c.get("/api/v1/audit-events").json()["data"]) == 2
        assert c.get("/api/v1/audit-events/1").status_code == 200
    with server.client() as c:
        assert c.get("/api/v1/audit-events/1").status_code == 404
