"""The REST API on a real server: create, upload (JSON and multipart), list, search (traced as a
retrieval span), role checks; RAG answers through the gateway (fake upstream) with citations
resolved to documents, in one trace with the retrieval and generation spans; the UI pages."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ProjectKeys
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.gateway.openai_app import serve
from tests.rag.test_documents import tiny_pdf

DOCS = [
    {"name": "install.md", "text": "# Install\n\nRun pip install podium, then podium up.", "metadata": {"lang": "en"}},
    {"name": "paris.txt", "text": "Paris is the capital of France.", "metadata": {"lang": "en"}},
    {"name": "berlin.txt", "text": "Berlin ist die Hauptstadt Deutschlands.", "metadata": {"lang": "de"}},
]


def _trace(c: httpx.Client, trace_id: str, kinds: set[str], timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"/api/v1/traces/{trace_id}")
        if r.status_code == 200 and kinds <= {s["kind"] for s in r.json()["spans"]}:
            return r.json()  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} with spans {kinds} not stored")


def _seed(c: httpx.Client) -> None:
    r = c.post("/api/v1/collections", json={"name": "kb", "chunking": {"strategy": "sentence", "size": 64,
                                                                       "overlap": 0}})
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/collections/kb/documents", json={"documents": DOCS, "message": "seed"})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["added"]) == (1, 3)


@pytest.mark.one_db
def test_rest_round_trip_and_retrieval_span(server: LiveServer, tmp_path: Path) -> None:
    with server.client() as c:
        _seed(c)
        assert c.post("/api/v1/collections", json={"name": "kb"}).status_code == 409
        assert c.post("/api/v1/collections", json={"name": "bad name!"}).json()["error"]["code"]
        files = [("file", ("guide.pdf", tiny_pdf(["Podium traces LLM calls"]), "application/pdf")),
                 ("file", ("page.html", b"<h1>UI</h1><p>Open the web UI on port 8700.</p>", "text/html"))]
        r = c.post("/api/v1/collections/kb/documents", files=files,
                   data={"metadata": json.dumps({"lang": "en"}), "message": "upload"})
        assert r.status_code == 200, r.text
        assert (r.json()["version"], r.json()["added"], r.json()["document_count"]) == (2, 2, 5)
        got = c.get("/api/v1/collections/kb").json()
        assert (got["latest_version"], got["document_count"], got["dimensions"]) == (2, 5, 384)
        docs = c.get("/api/v1/collections/kb/documents").json()["data"]
        assert {d["id"]: d["kind"] for d in docs}["guide.pdf"] == "pdf"
        assert {d["id"]: d["metadata"] for d in docs}["page.html"] == {"lang": "en"}
        assert len(c.get("/api/v1/collections/kb/documents", params={"version": 1}).json()["data"]) == 3
        chunks = c.get("/api/v1/collections/kb/chunks", params={"document_id": "page.html"}).json()["data"]
        assert chunks[0]["id"] == "page.html#0" and "8700" in chunks[-1]["text"]
        assert [v["version"] for v in c.get("/api/v1/collections/kb/versions").json()["data"]] == [2, 1]
        assert [x["name"] for x in c.get("/api/v1/collections").json()["data"]] == ["kb"]

        r = c.post("/api/v1/collections/kb/search", json={"query": "capital city", "mode": "hybrid", "top_k": 2,
                                                          "filters": {"lang": "en"}})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["data"][0]["document_id"] == "paris.txt"
        assert all(h["document_id"] != "berlin.txt" for h in out["data"])
        assert out["context"].startswith("[1] (paris)\nParis is the capital of France.")
        tr = _trace(c, out["trace_id"], {"retrieval"})
        span = next(s for s in tr["spans"] if s["kind"] == "retrieval")
        assert span["input"]["query"] == "capital city" and span["input"]["filters"] == {"lang": "en"}
        assert span["output"][0]["id"] == out["data"][0]["id"]
        assert span["output"][0]["score"] == out["data"][0]["score"]
        assert span["metadata"]["collection"] == "kb"

        bad = c.post("/api/v1/collections/kb/search", json={"query": "x", "mode": "fuzzy"})
        assert bad.status_code == 400 and "vector, keyword or hybrid" in bad.json()["error"]["message"]
        assert c.post("/api/v1/collections/nope/search", json={"query": "x"}).status_code == 404
        assert c.post("/api/v1/collections/kb/documents", content=b"x",
                      headers={"content-type": "text/plain"}).status_code == 415
        assert c.delete("/api/v1/collections/kb").status_code == 204
        assert c.get("/api/v1/collections/kb").status_code == 404


@pytest.mark.one_db
def test_roles(server: LiveServer) -> None:
    from tests.conftest import make_project

    with server.client() as c:
        _seed(c)
    pid = server.keys.project_id
    keys = {}
    for role in ("viewer", "ingest"):
        k = server.store.projects.create_key(pid, role=role)
        keys[role] = ProjectKeys(pid, k.key.public_key, k.secret_key)
    with server.client(keys["viewer"]) as v:
        assert v.post("/api/v1/collections/kb/search", json={"query": "Paris"}).status_code == 200
        r = v.post("/api/v1/collections/kb/documents", json={"documents": DOCS})
        assert r.status_code == 403 and "role" in r.json()["error"]["message"]
        assert v.post("/api/v1/collections/kb/answer", json={"question": "x"}).status_code == 403
    with server.client(keys["ingest"]) as i:
        assert i.get("/api/v1/collections").status_code == 403
    other = make_project(server.store, "elsewhere")
    with server.client(other) as o:
        assert o.get("/api/v1/collections/kb").status_code == 404


@pytest.mark.one_db
def test_answer_with_citations_through_the_gateway(store: Any, project: ProjectKeys, upstream: FakeUpstream,
                                                   podium_home: Path) -> None:
    srv = serve(store, project, upstream, podium_home)
    try:
        _answer_checks(srv, upstream)
    finally:
        srv.thread.stop()


def _answer_checks(srv: LiveServer, upstream: FakeUpstream) -> None:
    upstream.script("fake-a", Reply("Paris is the capital of France [1]. See also [7]."))
    with srv.client() as c:
        _seed(c)
        r = c.post("/api/v1/collections/kb/answer", json={"question": "What is the capital of France?",
                                                          "model": "fake", "top_k": 2})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["answer"].startswith("Paris is the capital")
        assert out["citations"][0] == {"n": 1, "chunk_id": "paris.txt#0", "document_id": "paris.txt",
                                       "title": "paris", "source": "paris.txt", "heading": None,
                                       "score": out["chunks"][0]["score"]}
        assert out["citations"][1] == {"n": 7, "unknown": True}
        sent = upstream.bodies("fake-a")[-1]["messages"]
        assert "[1] (paris)\nParis is the capital of France." in sent[-1]["content"]
        assert "cite" in sent[0]["content"]
        tr = _trace(c, out["trace_id"], {"chain", "retrieval", "generation"})
        spans = {s["kind"]: s for s in tr["spans"]}
        root = spans["chain"]
        assert spans["retrieval"]["parent_id"] == root["id"] == spans["generation"]["parent_id"]
        assert root["output"]["citations"][0]["document_id"] == "paris.txt"

        # a prompt whose {{context}} is bound to the collection
        p = c.post("/api/v1/prompts", json={
            "name": "kb-qa", "type": "chat",
            "prompt": [{"role": "system", "content": "Use only:\n{{context}}"},
                       {"role": "user", "content": "{{question}}"}],
            "config": {"model": "fake", "retrieval": {"collection": "kb", "top_k": 1, "mode": "keyword"}},
            "labels": ["production"]})
        assert p.status_code in (200, 201), p.text
        upstream.script("fake-a", Reply("It is Berlin [1]."))
        r = c.post("/api/v1/collections/kb/answer", json={"question": "Hauptstadt Deutschlands",
                                                          "prompt": {"name": "kb-qa"}})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["retrieval"]["mode"] == "keyword" and len(out["chunks"]) == 1
        assert out["citations"][0]["document_id"] == "berlin.txt"
        assert out["prompt"] == {"name": "kb-qa", "version": 1}
        sent = upstream.bodies("fake-a")[-1]["messages"]
        assert sent[0]["content"].startswith("Use only:\n[1] (berlin)") and sent[1]["content"] == "Hauptstadt Deutschlands"
        wrong = c.post("/api/v1/collections/other/answer", json={"question": "x", "prompt": {"name": "kb-qa"}})
        assert wrong.status_code in (400, 404)


@pytest.mark.one_db
def test_ui_pages(server: LiveServer) -> None:
    with server.client() as c:
        _seed(c)
        page = c.get("/collections")
        assert page.status_code == 200 and 'data-collection="kb"' in page.text
        page = c.get("/collections/kb", params={"q": "capital of France", "mode": "vector"})
        assert page.status_code == 200
        assert 'data-chunk="paris.txt#0"' in page.text and 'data-document="berlin.txt"' in page.text
        trace_id = page.text.split('href="/traces/')[1].split('"')[0]
        span = next(s for s in _trace(c, trace_id, {"retrieval"})["spans"] if s["kind"] == "retrieval")
        assert span["input"]["query"] == "capital of France" and span["output"][0]["id"] == "paris.txt#0"
        r = c.post("/collections/kb/documents", data={"doc_name": "rome.txt", "text": "Rome is in Italy."},
                   follow_redirects=False)
        assert r.status_code == 303
        assert 'data-document="rome.txt"' in c.get("/collections/kb").text


@pytest.mark.one_db
def test_sdk_search_nests_the_retrieval_span_in_the_callers_trace(server: LiveServer) -> None:
    from podium.sdk.client import Podium

    with server.client() as c:
        _seed(c)
    client = Podium(base_url=server.url, public_key=server.keys.public_key, secret_key=server.keys.secret_key)
    try:
        assert [x["name"] for x in client.collections.list()] == ["kb"]
        out = client.collections.add_texts("kb", [{"name": "rome.txt", "text": "Rome is the capital of Italy."}])
        assert out["version"] == 2
        with client.span("my-rag-app") as root:
            res = client.collections.search("kb", "capital of Italy", top_k=1)
        assert res["data"][0]["document_id"] == "rome.txt"
        assert res["trace_id"] == root.trace_id
        client.flush()
        with server.client() as c:
            tr = _trace(c, root.trace_id, {"retrieval"})
        ret = next(s for s in tr["spans"] if s["kind"] == "retrieval")
        assert ret["parent_id"] == root.id
    finally:
        client.shutdown()
