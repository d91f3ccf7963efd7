"""Data-subject requests: a deletion reaches every table that holds something about the user and
nothing else, its receipt counts what was there, a legal hold refuses it; the export holds what was
there; the API is for admins only and audits both."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from podium.config import Settings
from podium.governance.actor import Actor
from podium.governance.retention import LegalHold
from podium.governance.subject_requests import delete_subject, export_subject
from podium.store import tables as t
from tests.conftest import LiveServer, make_project
from tests.governance.lifecycle_seed import add_annotation, add_dataset_item, add_score, add_trace, count

ADMIN = Actor("cli", "dpo")


def _seed(store: Any, pid: str) -> None:
    add_trace(store, pid, "u1-a", age_days=3, spans=3, user="u1", scores=2, tags=("x", "y"))
    add_trace(store, pid, "u1-b", age_days=1, spans=1, user="u1")
    add_trace(store, pid, "u2-a", age_days=2, spans=2, user="u2")
    add_annotation(store, pid, "u1-a")
    add_annotation(store, pid, "u2-a")
    add_score(store, pid, "fb-u1-on-u2", age_days=1, trace_id="u2-a", metadata={"user_id": "u1"}, source="feedback")
    add_score(store, pid, "fb-u2", age_days=1, trace_id="u2-a", metadata={"user_id": "u2"}, source="feedback")
    add_dataset_item(store, pid, "u1-a", source_trace_id="u1-a")  # an export / annotation item
    add_dataset_item(store, pid, "named", source_trace_id=None, metadata={"user_id": "u1"}, experiment=False)
    add_dataset_item(store, pid, "u2-a", source_trace_id="u2-a")


EXPECTED = {"trace": 2, "span": 4, "score": 4, "trace_tag": 3, "annotation": 1, "annotation_item": 1,
            "dataset_item": 2, "experiment_item": 1}


def test_delete_reaches_every_table_and_the_receipt_counts_what_was_there(store: Any) -> None:
    p = make_project(store, "p")
    other = make_project(store, "other")
    _seed(store, p.project_id)
    _seed(store, other.project_id)
    before = store.lifecycle.subject_counts(p.project_id, "u1")
    assert before == {**dict.fromkeys(before, 0), **EXPECTED}

    receipt = delete_subject(store, Settings(), p.project_id, "u1", actor=ADMIN, batch=3)
    assert receipt.counts == before
    assert receipt.actor == "cli:dpo" and receipt.kind == "delete" and receipt.id
    assert "gateway_cache" in receipt.notes
    assert sum(store.lifecycle.subject_counts(p.project_id, "u1").values()) == 0
    # u2 keeps everything, including their trace that u1 gave feedback on (less that feedback)
    with store.engine.connect() as c:
        left = {r.id for r in c.execute(t.score.select().where(t.score.c.project_id == p.project_id))}
    assert left == {"u2-a-sc0", "fb-u2"}
    assert count(store, t.trace, p.project_id) == 1 and count(store, t.span, p.project_id) == 2
    assert count(store, t.dataset_item, p.project_id) == 1 and count(store, t.annotation, p.project_id) == 1
    # the other project is untouched
    assert store.lifecycle.subject_counts(other.project_id, "u1") == before
    # the receipt is stored, counts only
    (stored,) = store.lifecycle.requests(p.project_id, user_id="u1")
    assert stored.counts == receipt.counts and stored.id == receipt.id
    assert "secret" not in json.dumps(stored.as_dict())


def test_export_holds_what_was_there(store: Any) -> None:
    p = make_project(store, "p")
    _seed(store, p.project_id)
    doc = json.loads("".join(export_subject(store, p.project_id, "u1")))
    assert doc["user_id"] == "u1"
    assert [tr["id"] for tr in doc["traces"]] == ["u1-a", "u1-b"]
    first = doc["traces"][0]
    assert len(first["spans"]) == 3 and len(first["scores"]) == 2 and first["tags"] == ["x", "y"]
    assert first["spans"][0]["input"] == {"secret": "u1-0"}
    assert [s["id"] for s in doc["feedback"]] == ["fb-u1-on-u2"]
    assert sorted(i["id"] for i in doc["dataset_items"]) == ["named", "u1-a"]
    empty = json.loads("".join(export_subject(store, p.project_id, "nobody")))
    assert empty["traces"] == [] and empty["feedback"] == [] and empty["dataset_items"] == []


def test_legal_hold_refuses_deletion(store: Any) -> None:
    p = make_project(store, "p")
    _seed(store, p.project_id)
    store.lifecycle.set_legal_hold(p.project_id, True, reason="litigation", actor="t")
    with pytest.raises(LegalHold, match="legal hold \\(litigation\\)"):
        delete_subject(store, Settings(), p.project_id, "u1", actor=ADMIN)
    assert store.lifecycle.subject_counts(p.project_id, "u1") == {
        **store.lifecycle.subject_counts(p.project_id, "u1"), **EXPECTED}


def test_api_admin_only_audited_and_refused_under_hold(server: LiveServer) -> None:
    store = server.store
    pid = server.keys.project_id
    _seed(store, pid)
    member = store.projects.create_key(pid, role="member")
    with server.client() as admin, httpx.Client(
            base_url=server.url, auth=(member.key.public_key, member.secret_key), timeout=30) as m:
        for method, path in (("GET", "/api/v1/retention"), ("PUT", "/api/v1/retention"),
                             ("GET", "/api/v1/legal-hold"), ("PUT", "/api/v1/legal-hold"),
                             ("POST", "/api/v1/retention/run"), ("GET", "/api/v1/subjects/u1"),
                             ("DELETE", "/api/v1/subjects/u1"), ("GET", "/api/v1/subjects/u1/export")):
            r = m.request(method, path, json={} if method in ("PUT", "POST") else None)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "forbidden"

        r = admin.put("/api/v1/retention", json={"traces": 30, "gateway": 7})
        assert r.status_code == 200, r.text
        assert r.json()["periods"] == {"traces": 30, "scores": None, "gateway": 7}
        r = admin.post("/api/v1/retention/run", json={"dry_run": True})
        assert r.status_code == 200 and r.json()["dry_run"] is True and r.json()["total"] == 0

        assert admin.get("/api/v1/subjects/u1").json()["counts"] == {
            **admin.get("/api/v1/subjects/u1").json()["counts"], **EXPECTED}
        r = admin.get("/api/v1/subjects/u1/export")
        assert r.status_code == 200 and len(r.json()["traces"]) == 2

        assert admin.put("/api/v1/legal-hold", json={"on": True, "reason": "case 7"}).json()["on"] is True
        r = admin.delete("/api/v1/subjects/u1")
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "legal_hold" and "legal hold (case 7)" in err["message"]
        r = admin.post("/api/v1/retention/run", json={"dry_run": False})
        assert r.status_code == 409 and r.json()["error"]["code"] == "legal_hold"
        admin.put("/api/v1/legal-hold", json={"on": False})

        r = admin.delete("/api/v1/subjects/u1")
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert {k: v for k, v in receipt["counts"].items() if v} == EXPECTED
        assert receipt["total"] == sum(EXPECTED.values())
        assert admin.get("/api/v1/subjects").json()[0]["id"] == receipt["id"]

    actions = {e["action"] for e in store.audit.list_events(pid, limit=100).items}
    assert {"retention.set", "legal_hold.set", "subject.delete", "subject.export"} <= actions
    (ev,) = store.audit.list_events(pid, action="subject.delete").items
    assert ev["target_type"] == "user" and ev["target_id"] == "u1"
    assert ev["after"]["counts"] == receipt["counts"]
