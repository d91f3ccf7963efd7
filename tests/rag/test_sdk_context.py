"""The SDK compiles a prompt bound to a collection (``config.retrieval``) with ``{{context}}``
filled from the collection: a search through the server's API (the server's numbered-passage
format), traced as a ``retrieval`` span in the caller's trace (docs/rag.md, docs/sdk.md)."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer
from tests.rag.test_api import _seed, _trace

BOUND = {
    "name": "kb-qa", "type": "chat",
    "prompt": [{"role": "system", "content": "Use only:\n{{context}}"}, {"role": "user", "content": "{{question}}"}],
    "config": {"model": "fake", "temperature": 0,
               "retrieval": {"collection": "kb", "top_k": 2, "mode": "hybrid", "filters": {"lang": "en"}}},
    "labels": ["production"],
}


@pytest.mark.one_db
def test_compile_fills_context_from_the_bound_collection(server: LiveServer) -> None:
    from podium.core.prompts import MissingVariablesError, Prompt
    from podium.sdk.client import Podium
    from podium.sdk.prompts import BoundPrompt

    with server.client() as c:
        _seed(c)
        assert c.post("/api/v1/prompts", json=BOUND).status_code in (200, 201)
        assert c.post("/api/v1/prompts", json={"name": "plain", "prompt": "Say {{x}}",
                                               "labels": ["production"]}).status_code in (200, 201)
        # what the server's own search gives for these settings: the context must be exactly this
        want = c.post("/api/v1/collections/kb/search", json={"query": "capital of France", "mode": "hybrid",
                                                              "top_k": 2, "filters": {"lang": "en"},
                                                              "trace": False}).json()
    assert want["context"].startswith("[1] (paris)\nParis is the capital of France.")

    client = Podium(base_url=server.url, public_key=server.keys.public_key, secret_key=server.keys.secret_key)
    try:
        assert type(client.prompts.get("plain")) is Prompt  # unbound versions stay plain prompts
        p = client.prompts.get("kb-qa")
        assert isinstance(p, BoundPrompt)
        assert p.retrieval["collection"] == "kb" and p.query_variable == "question"

        with client.span("my-rag-app") as root:
            msgs = p.compile(question="capital of France")
        assert msgs[0] == {"role": "system", "content": "Use only:\n" + want["context"]}
        assert msgs[1] == {"role": "user", "content": "capital of France"}
        assert "berlin" not in msgs[0]["content"]  # the config's filter applied

        # openai_kwargs goes through compile: context filled, config parameters kept
        kw = p.openai_kwargs(question="capital of France")
        assert kw["model"] == "fake" and kw["messages"][0]["content"] == msgs[0]["content"]

        # the search is a retrieval span in the caller's trace, under the current span
        client.flush()
        with server.client() as c:
            tr = _trace(c, root.trace_id, {"retrieval"})
        ret = next(s for s in tr["spans"] if s["kind"] == "retrieval")
        assert ret["parent_id"] == root.id
        assert ret["input"] == {"query": "capital of France", "mode": "hybrid", "top_k": 2, "filters": {"lang": "en"}}
        assert ret["output"][0]["document_id"] == "paris.txt"

        # retrieve() gives the hits for citations; context= skips the search
        hits = p.retrieve(question="capital of France")
        assert [h["id"] for h in hits["data"]] == [h["id"] for h in want["data"]]
        assert p.compile(question="anything", context="given")[0]["content"] == "Use only:\ngiven"

        # without the question there is nothing to search for: every missing variable is named
        with pytest.raises(MissingVariablesError) as e:
            p.compile()
        assert {"context", "question"} <= set(e.value.missing)

        # a version fetched by number is bound too (and cached versions keep the binding)
        assert isinstance(client.prompts.get("kb-qa", version=1), BoundPrompt)
        assert client.prompts.get("kb-qa", version=1).compile(question="capital of France")[0] == msgs[0]
    finally:
        client.shutdown()
