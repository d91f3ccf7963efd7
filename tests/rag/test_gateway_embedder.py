"""A collection whose embedder is a gateway embedding model (``gateway:fake-embed``, not the
bundled MiniLM) embeds its chunks and its queries through the gateway, against the real fake
OpenAI-protocol upstream (tests/gateway/fake_upstream.py: every vector is [0.1, 0.2, 0.3]), and
its searches work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ProjectKeys
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.openai_app import serve
from tests.rag.test_api import DOCS


@pytest.mark.one_db
def test_gateway_embedding_model_collection(store: Any, project: ProjectKeys, upstream: FakeUpstream,
                                            podium_home: Path) -> None:
    srv = serve(store, project, upstream, podium_home)
    try:
        with srv.client() as c:
            r = c.post("/api/v1/collections", json={"name": "gw", "embedder": "gateway:fake-embed",
                                                    "chunking": {"strategy": "sentence", "size": 64, "overlap": 0}})
            assert r.status_code == 201, r.text
            assert r.json()["embedder"] == "gateway:fake-embed"
            r = c.post("/api/v1/collections/gw/documents", json={"documents": DOCS})
            assert r.status_code == 200, r.text
            assert (r.json()["version"], r.json()["added"], r.json()["chunks_embedded"]) == (1, 3, 3)

            # the chunks went to the upstream's /v1/embeddings as the alias's model, title in front
            calls = [x for x in upstream.requests if x["path"] == "/v1/embeddings"]
            assert calls and all(x["body"]["model"] == "embed-1" for x in calls)
            sent = [t for x in calls for t in (x["body"]["input"] if isinstance(x["body"]["input"], list)
                                                else [x["body"]["input"]])]
            assert "paris\nParis is the capital of France." in sent
            assert len(sent) == 3
            got = c.get("/api/v1/collections/gw").json()
            assert (got["dimensions"], got["chunk_count"]) == (3, 3)  # the upstream's vector size, not 384

            # a vector search embeds the query through the gateway too (every vector is the same:
            # all three chunks tie at cosine 1)
            n = len(upstream.requests)
            r = c.post("/api/v1/collections/gw/search", json={"query": "capital of France", "mode": "vector",
                                                              "top_k": 3})
            assert r.status_code == 200, r.text
            hits = r.json()["data"]
            assert len(hits) == 3 and all(abs(h["scores"]["vector"] - 1.0) < 1e-5 for h in hits)
            q = [x for x in upstream.requests[n:] if x["path"] == "/v1/embeddings"]
            assert [x["body"]["input"] for x in q] in (["capital of France"], [["capital of France"]])

            # hybrid: the keyword list breaks the tie
            r = c.post("/api/v1/collections/gw/search", json={"query": "capital of France", "top_k": 2})
            assert r.status_code == 200, r.text
            assert r.json()["data"][0]["document_id"] == "paris.txt"
            assert r.json()["context"].startswith("[1] (paris)\nParis is the capital of France.")

            # an alias that is not an embedding model is refused with a message, nothing stored
            assert c.post("/api/v1/collections", json={"name": "bad", "embedder": "gateway:fake"}).status_code == 201
            r = c.post("/api/v1/collections/bad/documents", json={"documents": DOCS[:1]})
            assert r.status_code >= 400
            assert r.json()["error"]["message"]
            assert c.get("/api/v1/collections/bad").json()["latest_version"] == 0
    finally:
        srv.thread.stop()
