"""The prompt REST API against a real server (uvicorn in a thread) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_project

pytestmark = pytest.mark.integration

CHAT = [
    {"role": "system", "content": "You are a {{tone}} assistant."},
    {"type": "placeholder", "name": "history"},
    {"role": "user", "content": "{{question}}"},
]


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code and len(body["error"]["message"]) > 20
    return body["error"]  # type: ignore[no-any-return]


def test_create_version_label_and_read(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/prompts", json={
            "name": "support/qa", "prompt": CHAT, "config": {"model": "local", "temperature": 0.2},
            "tags": ["support"], "labels": ["production"], "commit_message": "first cut"})
        assert r.status_code == 201, r.text
        v1 = r.json()
        assert v1["version"] == 1 and v1["type"] == "chat" and v1["variables"] == ["tone", "question"]
        assert v1["placeholders"] == ["history"] and v1["labels"] == ["latest", "production"]
        assert v1["created_by"] == server.keys.public_key and v1["created_at"].endswith("Z")
        r = c.post("/api/v1/prompts/support/qa/versions", json={"prompt": CHAT[:1] + CHAT[2:],
                                                                 "commit_message": "no history"})
        assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["tags"] == ["support"]
        summary = c.get("/api/v1/prompts/support/qa").json()
        assert summary["latest_version"] == 2 and summary["labels"]["production"]["version"] == 1
        assert summary["labels"]["latest"]["targets"] == [{"version": 2, "weight": 1.0}]
        listing = c.get("/api/v1/prompts", params={"prefix": "support/"}).json()
        assert [p["name"] for p in listing["data"]] == ["support/qa"] and listing["next_cursor"] is None
        assert c.get("/api/v1/prompts/support/qa/versions/latest").json()["version"] == 2
        assert [v["version"] for v in c.get("/api/v1/prompts/support/qa/versions").json()["data"]] == [2, 1]
        label = c.get("/api/v1/prompts/support/qa/labels/production").json()
        assert label["versions"][0]["prompt"] == CHAT and label["protected"] is False
        assert set(c.get("/api/v1/prompts/support/qa/labels").json()) == {"latest", "production"}
        # Move, split, roll back, read the audit trail.
        r = c.put("/api/v1/prompts/support/qa/labels/production", json={"version": 2, "comment": "ship it"})
        assert r.status_code == 200 and r.json()["version"] == 2
        r = c.post("/api/v1/prompts/support/qa/labels/production/rollback", json={"comment": "regression"})
        assert r.status_code == 200 and r.json()["version"] == 1
        hist = c.get("/api/v1/prompts/support/qa/labels/production/history").json()["data"]
        assert [(e["action"], e["from_version"], e["to_version"]) for e in hist] == [
            ("rollback", 2, 1), ("set", 1, 2), ("set", None, 1)]
        assert hist[0]["actor"] == server.keys.public_key and hist[0]["comment"] == "regression"
        assert len(c.get("/api/v1/prompts/support/qa/history").json()["data"]) == 3
        # Compile (no model call) and diff.
        out = c.post("/api/v1/prompts/support/qa/versions/1/compile",
                     json={"variables": {"tone": "calm", "question": "Why?", "history": []}}).json()
        assert out["compiled"] == [{"role": "system", "content": "You are a calm assistant."},
                                   {"role": "user", "content": "Why?"}]
        assert out["openai_kwargs"]["model"] == "local" and out["openai_kwargs"]["temperature"] == 0.2
        d = c.get("/api/v1/prompts/support/qa/diff", params={"from": "production", "to": "latest"}).json()
        assert d["from"]["version"] == 1 and d["to"]["version"] == 2 and d["changed"] == ["prompt", "config"]
        assert "-[placeholder: history]" in d["prompt"]
        # Tags, export, delete.
        assert c.patch("/api/v1/prompts/support/qa", json={"tags": ["a", "b"]}).json()["tags"] == ["a", "b"]
        exported = c.get("/api/v1/prompts/export").json()["data"]
        assert [(e["name"], e["version"]) for e in exported] == [("support/qa", 2)]
        assert exported[0]["label_targets"]["production"] == [{"version": 1, "weight": 1.0}]
        assert c.delete("/api/v1/prompts/support/qa").status_code == 204
        assert_error(c.get("/api/v1/prompts/support/qa"), 404, "not_found")


def test_ab_split_resolves_per_user(server: LiveServer) -> None:
    with server.client() as c:
        for text in ("A {{q}}", "B {{q}}"):
            assert c.post("/api/v1/prompts", json={"name": "ab", "prompt": text}).status_code == 201
        r = c.put("/api/v1/prompts/ab/labels/production",
                  json={"versions": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]})
        assert r.status_code == 200 and len(r.json()["versions"]) == 2
        got = {u: c.get("/api/v1/prompts/ab/resolve", params={"user_id": u}).json()["version"]
               for u in (f"user-{i}" for i in range(60))}
        assert set(got.values()) == {1, 2} and list(got.values()).count(1) > 40
        again = c.get("/api/v1/prompts/ab/resolve", params={"user_id": "user-7"}).json()
        assert again["version"] == got["user-7"] and again["resolved_by"]["ab"] is True
        assert c.get("/api/v1/prompts/ab/resolve", params={"version": "2"}).json()["version"] == 2
        assert_error(c.get("/api/v1/prompts/ab/resolve", params={"version": "2", "label": "x"}), 400, "bad_request")


def test_bad_input(server: LiveServer) -> None:
    with server.client() as c:
        c.post("/api/v1/prompts", json={"name": "qa", "prompt": "Answer {{question}} for {{user}}",
                                        "labels": ["production"]})
        # Invalid template: 400 with the position.
        err = assert_error(c.post("/api/v1/prompts", json={"name": "bad", "prompt": "Hi\n  {{ first name }}"}),
                           400, "validation_error")
        assert "line 2, column 6" in err["message"] and err["details"][0]["line"] == 2
        assert err["details"][0]["column"] == 6 and err["details"][0]["position"] == 8
        err = assert_error(c.post("/api/v1/prompts", json={"name": "bad", "template_format": "jinja2",
                                                           "prompt": "{% for x in y %}"}), 400, "validation_error")
        assert "line 1" in err["message"]
        # Missing variables: 400 naming every one.
        err = assert_error(c.post("/api/v1/prompts/qa/versions/1/compile", json={"variables": {}}), 400,
                           "validation_error")
        assert "missing variables: question, user" in err["message"]
        # Unknown version / label / prompt: 404 listing what exists.
        err = assert_error(c.get("/api/v1/prompts/qa/versions/5"), 404, "not_found")
        assert "versions are 1 to 1" in err["message"] and err["details"][0]["available"] == [1]
        err = assert_error(c.get("/api/v1/prompts/qa/labels/staging"), 404, "not_found")
        assert "latest, production" in err["message"] and err["details"][0]["available"] == ["latest", "production"]
        err = assert_error(c.get("/api/v1/prompts/qaa/labels/production"), 404, "not_found")
        assert "did you mean 'qa'" in err["message"]
        assert_error(c.get("/api/v1/prompts/qa/versions/one"), 400, "validation_error")
        # Too large: 413 with the limit.
        err = assert_error(c.post("/api/v1/prompts", json={"name": "big", "prompt": "x" * 1_200_000}), 413,
                           "payload_too_large")
        assert "1,000,000 bytes" in err["message"] and err["details"][0]["size_bytes"] > 1_200_000
        assert_error(c.get("/api/v1/prompts/big"), 404, "not_found")
        # Shapes.
        assert_error(c.post("/api/v1/prompts", content=b"[1]", headers={"content-type": "application/json"}), 400,
                     "bad_request")
        assert_error(c.post("/api/v1/prompts", content=b"{nope", headers={"content-type": "application/json"}), 400,
                     "bad_request")
        assert_error(c.post("/api/v1/prompts", json={"name": "x"}), 400, "validation_error")
        assert_error(c.post("/api/v1/prompts", json={"name": "a/versions", "prompt": "x"}), 400, "validation_error")
        assert_error(c.post("/api/v1/prompts/qa/versions", json={"name": "other", "prompt": "x"}), 400,
                     "validation_error")
        assert_error(c.put("/api/v1/prompts/qa/labels/production", json={"version": 9}), 404, "not_found")
        assert_error(c.put("/api/v1/prompts/qa/labels/production", json={"versions": [{"version": 1, "weight": -1}]}),
                     400, "validation_error")
        assert_error(c.put("/api/v1/prompts/qa/labels/latest", json={"version": 1}), 400, "validation_error")
        assert_error(c.post("/api/v1/prompts/qa/labels/production/rollback"), 409, "conflict")
        assert_error(c.get("/api/v1/prompts", params={"cursor": "garbage"}), 400, "bad_request")


def test_roles_and_protected_labels(server: LiveServer) -> None:
    member = server.store.projects.create_key(server.keys.project_id, role="member")
    viewer = server.store.projects.create_key(server.keys.project_id, role="viewer")
    ingest = server.store.projects.create_key(server.keys.project_id, role="ingest")
    auth = lambda k: (k.key.public_key, k.secret_key)  # noqa: E731
    with server.client() as admin:
        admin.post("/api/v1/prompts", json={"name": "qa", "prompt": "v1", "labels": ["production"]})
        admin.post("/api/v1/prompts", json={"name": "qa", "prompt": "v2"})
        assert admin.put("/api/v1/prompts/settings", json={"protected_labels": ["production"]}).json() == {
            "protected_labels": ["production"]}
    with httpx.Client(base_url=server.url, auth=auth(member)) as m:
        err = assert_error(m.put("/api/v1/prompts/qa/labels/production", json={"version": 2}), 403, "forbidden")
        assert "protected" in err["message"] and "admin" in err["message"]
        assert_error(m.post("/api/v1/prompts/qa/labels/production/rollback"), 403, "forbidden")
        assert_error(m.delete("/api/v1/prompts/qa/labels/production"), 403, "forbidden")
        assert_error(m.post("/api/v1/prompts", json={"name": "qa", "prompt": "v3", "labels": ["production"]}), 403,
                     "forbidden")
        assert m.post("/api/v1/prompts", json={"name": "qa", "prompt": "v3", "labels": ["staging"]}).status_code == 201
        assert_error(m.put("/api/v1/prompts/settings", json={"protected_labels": []}), 403, "forbidden")
        assert_error(m.delete("/api/v1/prompts/qa"), 403, "forbidden")
    with httpx.Client(base_url=server.url, auth=auth(viewer)) as v:
        assert v.get("/api/v1/prompts/qa/labels/production").status_code == 200
        assert_error(v.post("/api/v1/prompts", json={"name": "x", "prompt": "x"}), 403, "forbidden")
    with httpx.Client(base_url=server.url, auth=auth(ingest)) as i:  # apps fetch prompts with their tracing key
        assert i.get("/api/v1/prompts/qa/labels/production").json()["version"] == 1
        assert_error(i.put("/api/v1/prompts/qa/labels/staging", json={"version": 1}), 403, "forbidden")
    with server.client() as admin:
        assert admin.put("/api/v1/prompts/qa/labels/production", json={"version": 2}).json()["version"] == 2
    with httpx.Client(base_url=server.url) as anon:
        assert_error(anon.get("/api/v1/prompts"), 401, "unauthorized")
    other = make_project(server.store, "other")
    with server.client(other) as o:
        assert o.get("/api/v1/prompts").json()["data"] == []
        assert_error(o.get("/api/v1/prompts/qa"), 404, "not_found")


def test_concurrent_creation_over_http(server: LiveServer) -> None:
    versions: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def post(i: int) -> None:
        with server.client() as c:
            barrier.wait()
            for j in range(4):
                r = c.post("/api/v1/prompts", json={"name": "race", "prompt": f"{i}-{j}"})
                assert r.status_code == 201, r.text
                with lock:
                    versions.append(r.json()["version"])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sorted(versions) == list(range(1, 25))


def test_analytics_from_ingested_spans(server: LiveServer) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def span(tid: str, version: int, ms: int, tokens: int) -> dict[str, Any]:
        return {"type": "span", "body": {
            "id": "g", "trace_id": tid, "name": "answer", "kind": "generation", "model": "gpt-4o-mini",
            "start_time": t0.isoformat(), "end_time": (t0 + timedelta(milliseconds=ms)).isoformat(),
            "usage": {"input_tokens": tokens, "output_tokens": tokens}, "prompt_name": "qa",
            "prompt_version": version}}

    with server.client() as c:
        c.post("/api/v1/prompts", json={"name": "qa", "prompt": "one"})
        c.post("/api/v1/prompts", json={"name": "qa", "prompt": "two"})
        batch = [span(f"a{i}", 1, 100 * (i + 1), 100) for i in range(10)] + [span("b0", 2, 50, 1000)]
        batch.append({"type": "score", "body": {"id": "s1", "name": "helpful", "value": 0.25, "trace_id": "a0"}})
        assert c.post("/api/v1/ingest", json={"batch": batch}).status_code == 200
        data = c.get("/api/v1/prompts/qa/analytics").json()["data"]
        by_v = {r["version"]: r for r in data}
        assert by_v[1]["count"] == 10 and by_v[1]["latency_ms"]["p50"] == pytest.approx(500)
        assert by_v[1]["latency_ms"]["p95"] == pytest.approx(1000) and by_v[1]["total_tokens"] == 2000
        assert by_v[1]["cost"]["total"] > 0 and by_v[1]["scores"]["helpful"] == {"avg": 0.25, "count": 1}
        assert by_v[2]["count"] == 1 and by_v[2]["cost"]["total"] > by_v[1]["cost"]["avg"]
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert all(r["count"] == 0 for r in c.get("/api/v1/prompts/qa/analytics", params={"from": later}).json()["data"])
        assert_error(c.get("/api/v1/prompts/nope/analytics"), 404, "not_found")


def test_openapi_documents_the_prompt_api(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/api/v1/openapi.json").json()
    paths = spec["paths"]
    assert "/api/v1/prompts" in paths and "/api/v1/prompts/{name}/labels/{label}" in paths
    assert paths["/api/v1/prompts"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "prompt"]
    assert "/api/v1/prompts/{name}/versions/{version}/run" in paths
