"""The REST API against a real server (uvicorn in a thread) on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerThread, make_project

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def span_item(trace_id: str, sid: str, *, parent: str | None = None, ms: int = 0, dur: int = 100, **kw: Any) -> dict[str, Any]:
    body = {
        "id": sid,
        "trace_id": trace_id,
        "parent_id": parent,
        "name": kw.pop("name", sid),
        "start_time": iso(T0 + timedelta(milliseconds=ms)),
        "end_time": iso(T0 + timedelta(milliseconds=ms + dur)),
        **kw,
    }
    return {"type": "span", "body": body}


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and len(body["error"]["message"]) > 10
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_ingest_then_query_a_trace_tree(server: LiveServer) -> None:
    batch = [
        span_item("tr1", "root", name="answer-question", dur=900, user_id="alice", session_id="chat-1",
                  tags=["prod", "qa"], input={"question": "why?"}, output="because", status="ok"),
        span_item("tr1", "ret", parent="root", ms=10, dur=50, kind="retrieval", output=["doc1", "doc2"]),
        span_item("tr1", "llm", parent="root", ms=100, dur=700, kind="generation", model="gpt-4o-mini",
                  usage={"input_tokens": 1000, "output_tokens": 200},
                  completion_start_time=iso(T0 + timedelta(milliseconds=250)),
                  input=[{"role": "user", "content": "why?"}], output={"role": "assistant", "content": "because"}),
    ]
    with server.client() as c:
        r = c.post("/api/v1/ingest", json={"batch": batch})
        assert r.status_code == 200, r.text
        assert [s["id"] for s in r.json()["successes"]] == ["root", "ret", "llm"] and r.json()["errors"] == []
        page = c.get("/api/v1/traces").json()
        assert [t["id"] for t in page["data"]] == ["tr1"]
        t = page["data"][0]
        assert t["name"] == "answer-question" and t["user_id"] == "alice" and t["session_id"] == "chat-1"
        assert t["tags"] == ["prod", "qa"] and t["span_count"] == 3 and t["total_tokens"] == 1200
        assert t["latency_ms"] == pytest.approx(900) and t["status"] == "ok"
        # gpt-4o-mini is priced from the table: cost is positive and equals the span's cost.
        assert t["total_cost"] > 0
        detail = c.get("/api/v1/traces/tr1").json()
        spans = {s["id"]: s for s in detail["spans"]}
        assert spans["llm"]["parent_id"] == "root" and spans["llm"]["kind"] == "generation"
        assert spans["llm"]["time_to_first_token_ms"] == pytest.approx(150)
        assert float(spans["llm"]["cost_total"]) == pytest.approx(t["total_cost"])
        assert detail["input"] == {"question": "why?"} and detail["output"] == "because"
        roots = c.get("/api/v1/traces/tr1/spans", params={"roots": True}).json()["data"]
        assert [(s["id"], s["child_count"]) for s in roots] == [("root", 2)]
        kids = c.get("/api/v1/traces/tr1/spans", params={"parent_id": "root", "include_io": False}).json()["data"]
        assert [s["id"] for s in kids] == ["ret", "llm"] and kids[0]["output"] is None
        one = c.get("/api/v1/traces/tr1/spans/llm").json()
        assert one["output"] == {"role": "assistant", "content": "because"}
        assert c.get("/api/v1/sessions").json()["data"][0]["id"] == "chat-1"
        assert c.get("/api/v1/users").json()["data"][0]["id"] == "alice"
        assert c.get("/api/v1/traces", params={"tag": ["prod", "qa"], "model": "gpt-4o-mini"}).json()["data"]
        assert not c.get("/api/v1/traces", params={"tag": "nope"}).json()["data"]


def test_partial_batch_stores_valid_items_and_reports_each_error(server: LiveServer) -> None:
    batch = [
        span_item("t", "good1"),
        {"type": "span", "body": {"id": "bad id!", "trace_id": "t", "name": "x", "start_time": iso(T0)}},
        span_item("t", "good2"),
        {"type": "span", "body": {"id": "late", "trace_id": "t", "name": "x", "start_time": iso(T0),
                                  "end_time": iso(T0 - timedelta(seconds=1))}},
        {"type": "span", "body": {"id": "x1", "trace_id": "t", "name": "x", "start_time": iso(T0), "colour": "red"}},
        {"type": "widget", "body": {}},
        "not an object",
        {"type": "score", "body": {"name": "q", "value": 1}},
        {"type": "score", "body": {"id": "sc1", "name": "q", "value": 0.5, "trace_id": "t"}},
    ]
    with server.client() as c:
        r = c.post("/api/v1/ingest", json={"batch": batch})
        assert r.status_code == 207
        body = r.json()
        assert [s["index"] for s in body["successes"]] == [0, 2, 8]
        errs = {e["index"]: e for e in body["errors"]}
        assert set(errs) == {1, 3, 4, 5, 6, 7}
        assert "ids are 1-128 characters" in errs[1]["message"]
        assert "before start_time" in errs[3]["message"]
        assert "colour" in errs[4]["message"] and "Extra inputs" in errs[4]["message"]
        assert "trace_id" in errs[7]["message"]
        assert all(e["status"] == 400 for e in body["errors"])
        tr = c.get("/api/v1/traces/t").json()
        assert {s["id"] for s in tr["spans"]} == {"good1", "good2"}
        assert [s["id"] for s in tr["scores"]] == ["sc1"]


def test_retried_batch_is_idempotent(server: LiveServer) -> None:
    batch = [span_item("t", f"s{i}", parent=None if i == 0 else "s0") for i in range(20)]
    batch.append({"type": "score", "body": {"id": "score-1", "name": "q", "value": 1, "trace_id": "t"}})
    with server.client() as c:
        for _ in range(3):
            assert c.post("/api/v1/ingest", json={"batch": batch}).status_code == 200
        tr = c.get("/api/v1/traces/t").json()
        assert tr["span_count"] == 20 and len(tr["spans"]) == 20 and len(tr["scores"]) == 1


def test_bad_requests_get_the_pinned_error_shape(server: LiveServer) -> None:
    with server.client() as c:
        e = assert_error(c.post("/api/v1/ingest", content=b"{not json", headers={"content-type": "application/json"}),
                         400, "bad_request")
        assert "not valid JSON" in e["message"]
        e = assert_error(c.post("/api/v1/ingest", content=b"a=1", headers={"content-type": "text/plain"}),
                         415, "unsupported_media_type")
        assert "application/json" in e["message"]
        assert_error(c.post("/api/v1/ingest", json=[1, 2]), 400, "validation_error")
        e = assert_error(c.post("/api/v1/ingest", json={"batch": [], "extra": 1}), 400, "validation_error")
        assert "extra" in e["message"]
        big = b'{"batch": [' + b" " * (21 * 1024 * 1024) + b"]}"
        e = assert_error(c.post("/api/v1/ingest", content=big, headers={"content-type": "application/json"}),
                         413, "payload_too_large")
        assert str(20 * 1024 * 1024) in e["message"]
        assert_error(c.get("/api/v1/traces/does-not-exist"), 404, "not_found")
        assert_error(c.get("/api/v1/nope"), 404, "not_found")
        assert_error(c.delete("/api/v1/traces"), 405)
        e = assert_error(c.get("/api/v1/traces", params={"limit": 0}), 400, "validation_error")
        assert e["details"][0]["field"] == "query.limit"
        assert_error(c.get("/api/v1/traces", params={"cursor": "%%%"}), 400)
        assert_error(c.get("/api/v1/traces", params={"sort": "colour"}), 400)


def test_gzip_bodies_are_accepted(server: LiveServer) -> None:
    raw = json.dumps({"batch": [span_item("gz", "a")]}).encode()
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=gzip.compress(raw),
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert_error(c.post("/api/v1/ingest", content=b"not gzip",
                            headers={"content-type": "application/json", "content-encoding": "gzip"}), 400)


def test_auth_missing_wrong_revoked_and_bearer(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as anon:
        e = assert_error(anon.get("/api/v1/traces"), 401, "unauthorized")
        assert "Authorization" in e["message"]
        assert_error(anon.get("/api/v1/traces", auth=(server.keys.public_key, "sk-pd-wrong")), 401)
        assert_error(anon.get("/api/v1/traces", headers={"authorization": "Token abc"}), 401)
        assert_error(anon.get("/api/v1/traces", headers={"authorization": "Basic !!!"}), 401)
        ok = anon.get("/api/v1/traces", headers={"authorization": f"Bearer {server.keys.secret_key}"})
        assert ok.status_code == 200
        assert anon.get("/api/v1/health").json()["status"] == "ok"
    with server.client() as c:
        new = c.post("/api/v1/keys", json={"role": "ingest", "note": "ci"}).json()
        assert new["secret_key"].startswith("sk-pd-") and new["role"] == "ingest"
        listed = c.get("/api/v1/keys").json()
        assert {k["public_key"] for k in listed} >= {new["public_key"]}
        assert all("secret_key" not in k for k in listed)
    ingest_only = httpx.Client(base_url=server.url, auth=(new["public_key"], new["secret_key"]))
    with ingest_only:
        assert ingest_only.post("/api/v1/ingest", json={"batch": [span_item("k", "a")]}).status_code == 200
        assert_error(ingest_only.get("/api/v1/traces"), 403, "forbidden")
        with server.client() as c:
            assert c.delete(f"/api/v1/keys/{new['public_key']}").json()["revoked_at"]
        assert_error(ingest_only.post("/api/v1/ingest", json={"batch": [span_item("k", "b")]}), 401)


def test_a_key_of_project_a_never_reads_or_writes_project_b(server: LiveServer) -> None:
    b = make_project(server.store, "project-b")
    with server.client() as a_client, server.client(b) as b_client:
        assert b_client.post("/api/v1/ingest", json={"batch": [span_item("b-trace", "s", input="B secret")]}).status_code == 200
        assert_error(a_client.get("/api/v1/traces/b-trace"), 404)
        assert_error(a_client.get("/api/v1/traces/b-trace/spans"), 404)
        assert_error(a_client.get("/api/v1/traces/b-trace/spans/s"), 404)
        assert a_client.get("/api/v1/traces").json()["data"] == []
        assert a_client.get("/api/v1/scores", params={"trace_id": "b-trace"}).json()["data"] == []
        # A writes with B's trace id: lands in A, B's trace is untouched.
        a_client.post("/api/v1/ingest", json={"batch": [span_item("b-trace", "s", input="A overwrite?")]})
        a_client.post("/api/v1/scores", json={"name": "x", "value": 1, "trace_id": "b-trace"})
        assert b_client.get("/api/v1/traces/b-trace/spans/s").json()["input"] == "B secret"
        assert b_client.get("/api/v1/scores").json()["data"] == []
        assert b_client.get("/api/v1/project").json()["name"] == "project-b"
        # A cannot revoke B's keys.
        assert_error(a_client.delete(f"/api/v1/keys/{b.public_key}"), 404)


def test_scores_create_list_and_filter_traces(server: LiveServer) -> None:
    with server.client() as c:
        c.post("/api/v1/ingest", json={"batch": [span_item("t1", "a"), span_item("t2", "a")]})
        r = c.post("/api/v1/scores", json={"name": "helpful", "value": True, "trace_id": "t1", "comment": "👍"})
        assert r.status_code == 201
        c.post("/api/v1/scores", json={"name": "rating", "value": 4, "trace_id": "t2", "span_id": "a"})
        c.post("/api/v1/scores", json={"name": "topic", "value": "billing", "session_id": "s9"})
        assert_error(c.post("/api/v1/scores", json={"name": "bad", "value": "x", "data_type": "numeric", "trace_id": "t"}), 400)
        scores = c.get("/api/v1/scores").json()["data"]
        by_name = {s["name"]: s for s in scores}
        assert by_name["helpful"]["value"] is True and by_name["helpful"]["data_type"] == "boolean"
        assert by_name["rating"]["value"] == 4 and by_name["topic"]["value"] == "billing"
        assert [t["id"] for t in c.get("/api/v1/traces", params={"score_name": "rating", "min_score": 3}).json()["data"]] == ["t2"]
        assert c.get("/api/v1/scores", params={"data_type": "categorical"}).json()["data"][0]["session_id"] == "s9"


def test_price_override_changes_cost(server: LiveServer) -> None:
    with server.client() as c:
        r = c.put("/api/v1/prices/my-model", json={"input_per_million": 2, "output_per_million": 10})
        assert r.status_code == 200, r.text
        c.post("/api/v1/ingest", json={"batch": [span_item("t", "g", kind="generation", model="my-model",
                                                           usage={"input_tokens": 1_000_000, "output_tokens": 100_000})]})
        assert c.get("/api/v1/traces/t").json()["total_cost"] == pytest.approx(3.0)
        assert [p["model"] for p in c.get("/api/v1/prices").json()] == ["my-model"]
        assert c.delete("/api/v1/prices/my-model").status_code == 204
        assert_error(c.delete("/api/v1/prices/my-model"), 404)


def test_tokens_are_counted_when_usage_is_missing(server: LiveServer) -> None:
    with server.client() as c:
        c.post("/api/v1/ingest", json={"batch": [span_item("t", "g", kind="generation", model="gpt-4o",
                                                           input="hello world", output="hi there friend")]})
        s = c.get("/api/v1/traces/t/spans/g").json()
        assert s["usage_estimated"] is True and s["input_tokens"] > 0 and s["output_tokens"] > 0
        assert float(s["cost_total"]) > 0


def test_openapi_is_served(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/api/v1/openapi.json").json()
    for path in ("/api/v1/ingest", "/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/v1/scores",
                 "/api/v1/sessions", "/api/v1/users", "/v1/traces"):
        assert path in spec["paths"], path


class _BlockedRepo:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.writes = 0

    def write(self, batch: Any) -> None:
        self.gate.wait(10)
        self.writes += 1


def test_back_pressure_is_an_explicit_429(store: Any, project: Any) -> None:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.server.ingest import Ingester

    repo = _BlockedRepo()
    ing = Ingester(repo, max_items=5)  # type: ignore[arg-type]
    th = ServerThread(create_app(Settings(), store=store, ingester=ing)).start()
    try:
        results: list[int] = []

        def post() -> None:
            with httpx.Client(base_url=th.url, auth=project.basic(), timeout=30) as c:
                results.append(c.post("/api/v1/ingest", json={"batch": [span_item("t", f"s{i}") for i in range(4)]}).status_code)

        first = threading.Thread(target=post)
        first.start()
        import time

        deadline = time.monotonic() + 5
        while ing.pending == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with httpx.Client(base_url=th.url, auth=project.basic()) as c:
            r = c.post("/api/v1/ingest", json={"batch": [span_item("t", f"x{i}") for i in range(4)]})
        e = assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1 and "Nothing from this request was stored" in e["message"]
        repo.gate.set()
        first.join(10)
        assert results == [200] and repo.writes == 1
    finally:
        repo.gate.set()
        th.stop()
