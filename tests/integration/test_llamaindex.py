"""LlamaIndex traced with OpenInference (``openinference-instrumentation-llama-index``) against a
real Podium server.

``llama-index-llms-openai`` requires ``openai<3`` while the project's venv has openai 3, so the
LlamaIndex program (tests/integration/llamaindex_client.py, what a user runs) runs in its own
small venv, ``.venv/llamaindex``, built on first use: its own openai 2.x and the LlamaIndex
packages, everything else (numpy, OpenTelemetry, httpx, ...) read from the project's venv
through a ``.pth`` file placed after its own site-packages (~100 MB instead of ~300 MB).

The model call goes to Podium's gateway (an alias for the fake upstream) with the trace context
propagated, and to the fake upstream directly: either way the trace counts the call's usage once
although LlamaIndex's wrapper LLM spans (``predict``, ``chat``) report it too or get estimates.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import sysconfig
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.integration.test_openinference import (
    ANSWER,
    COMPLETION_TOKENS,
    COST,
    MODEL,
    PROMPT_TOKENS,
    by_model,
    wait_trace,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv" / "llamaindex"
SPECS = ["llama-index-core>=0.14,<0.15", "llama-index-llms-openai>=0.6,<0.9",
         "openinference-instrumentation-llama-index>=4,<5"]
CLIENT = Path(__file__).with_name("llamaindex_client.py")
QUESTION = "What is the capital of France?"
KINDS = {"CHAIN": "chain", "RETRIEVER": "retrieval", "EMBEDDING": "embedding", "LLM": "generation"}


@pytest.fixture(scope="session")
def li_python() -> str:
    """The venv's interpreter, built once (a file lock keeps parallel workers from racing)."""
    py = VENV / "bin" / "python"
    check = [str(py), "-c", "import openai, llama_index.llms.openai, openinference.instrumentation.llama_index; "
                            "assert openai.__version__.startswith('2.')"]
    VENV.parent.mkdir(exist_ok=True)
    with open(VENV.parent / "llamaindex.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
            return str(py)
        subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(VENV)], check=True)
        site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        # after the venv's own packages: its openai 2.x wins, the rest comes from the project's venv
        Path(site, "zz_podium_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--no-deps", "openai>=2.8,<3"], check=True, timeout=600)
        subprocess.run([*pip, *SPECS], check=True, timeout=600)
        subprocess.run(check, check=True)
    return str(py)


def run_client(py: str, srv: LiveServer, base_url: str, api_key: str) -> dict[str, Any]:
    out = subprocess.run([py, str(CLIENT), srv.url, srv.keys.secret_key, base_url, api_key],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow  # a subprocess importing LlamaIndex (~5 s); builds .venv/llamaindex on first use (~15 s)
@pytest.mark.parametrize("via", ["upstream", "gateway"])
def test_llamaindex_query_engine(via: str, li_python: str, server: LiveServer, upstream: FakeUpstream) -> None:
    if via == "gateway":
        with server.client() as c:
            r = c.put(f"/api/v1/gateway/models/{MODEL}", json={
                "deployments": [{"provider": "openai", "model": MODEL, "api_base": upstream.base_url,
                                 "api_key": "k", "max_retries": 0}]})
            assert r.status_code in (200, 201), r.text
    upstream.script(MODEL, Reply(ANSWER, prompt_tokens=PROMPT_TOKENS))
    base_url, api_key = (server.url + "/v1", server.keys.secret_key) if via == "gateway" else (upstream.base_url, "k")
    out = run_client(li_python, server, base_url, api_key)
    assert out["answer"] == ANSWER
    (body,) = upstream.bodies(MODEL)
    prompt = json.dumps(body["messages"])  # the retrieved chunks (mock embeddings: both) and the question
    assert "Paris is the capital of France." in prompt and "Berlin is the capital of Germany." in prompt
    assert "Query: What is the capital of France?" in prompt

    sent = out["spans"]
    (trace_id,) = {s["trace_id"] for s in sent}
    n = len(sent) + (1 if via == "gateway" else 0)
    tr = wait_trace(server, trace_id, lambda t: t["span_count"] == n and t["total_tokens"] > 0)
    spans = {s["id"]: s for s in tr["spans"]}
    for s in sent:  # names, nesting and kinds arrive as sent
        got = spans.pop(s["id"])
        assert (got["name"], got["parent_id"]) == (s["name"], s["parent_id"])
        assert got["kind"] == KINDS[s["kind"]], (got["name"], got["kind"], s["kind"])
    by_name = {s["name"]: s for s in tr["spans"]}
    root = by_name["RetrieverQueryEngine.query"]
    assert root["parent_id"] is None
    assert (tr["name"], tr["input"], tr["output"]) == ("RetrieverQueryEngine.query", QUESTION, ANSWER)
    assert (tr["user_id"], tr["session_id"]) == ("user-li-1", "session-li-1")
    retrieve = by_name["VectorIndexRetriever.retrieve"]  # the documents, not output.value's reprs
    assert retrieve["input"] == QUESTION
    assert sorted(d["content"] for d in retrieve["output"]) == [
        "Berlin is the capital of Germany.", "Paris is the capital of France."]
    assert all(d["score"] == pytest.approx(1.0) and d["id"] for d in retrieve["output"])

    # the model call: LlamaIndex's own LLM span, wrapped by `predict` (which gets an estimate)
    chat, predict = by_name["OpenAI.chat"], by_name["OpenAI.predict"]
    assert chat["parent_id"] == predict["id"]
    assert chat["model"] == predict["model"] == MODEL and chat["provider"] == "openai"
    assert chat["input"][-1]["role"] == "user" and QUESTION in chat["input"][-1]["content"]
    assert chat["output"] == [{"role": "assistant", "content": ANSWER}]
    assert (chat["input_tokens"], chat["output_tokens"], chat["usage_estimated"]) == (10, 6, False)
    assert predict["usage_estimated"] is True and predict["usage_counted"] is False
    # the embedding of the question: estimated (MockEmbedding reports no usage), counted on the inner span
    emb, emb_wrapper = by_name["MockEmbedding._get_query_embedding"], by_name["MockEmbedding.get_query_embedding"]
    assert emb["parent_id"] == emb_wrapper["id"] and emb["model"] == "mock-embedding"
    assert emb["usage_estimated"] is True and emb["usage_counted"] is True and emb_wrapper["usage_counted"] is False

    call_tokens = PROMPT_TOKENS + COMPLETION_TOKENS
    if via == "gateway":
        (gw,) = spans.values()  # the only span not sent by the program
        assert gw["parent_id"] == chat["id"] and gw["kind"] == "generation"
        assert gw["metadata"]["gateway"]["alias"] == MODEL
        assert (gw["input_tokens"], gw["output_tokens"], gw["usage_counted"]) == (10, 6, True)
        assert chat["usage_counted"] is False  # the gateway's span is the call
        call = gw
    else:
        assert spans == {}
        assert chat["usage_counted"] is True
        call = chat
    # usage once per model call: the chat (10 + 6) and the query's embedding (estimated)
    assert (tr["input_tokens"], tr["output_tokens"]) == (PROMPT_TOKENS + emb["input_tokens"], COMPLETION_TOKENS)
    assert tr["total_tokens"] == call_tokens + emb["total_tokens"]
    assert Decimal(str(tr["total_cost"])) == pytest.approx(COST)  # the embedding model has no price
    assert Decimal(str(call["cost_total"])) == pytest.approx(COST)
    # one row per model; the index's embeddings (its own traces) are calls of mock-embedding too
    rows = {r[0]: r for r in by_model(server)}
    assert len(rows) == len(by_model(server)) == 2 and rows[MODEL] == (MODEL, 1, call_tokens)
    assert "mock-embedding" in rows


def test_documented_versions_are_the_tested_ones(li_python: str) -> None:
    """docs/integrations.md's table: the specs this venv is built from, and what it has."""
    from packaging.requirements import Requirement

    from tests.integration.test_openinference import documented_versions

    doc = documented_versions()
    for req in map(Requirement, SPECS):
        assert SpecifierSet(doc[req.name]) == req.specifier, req.name
    got = subprocess.run([li_python, "-c", "import importlib.metadata as m, json, sys; "
                          "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))",
                          *(Requirement(s).name for s in SPECS)], check=True, capture_output=True, text=True)
    for name, version in json.loads(got.stdout).items():
        assert version in SpecifierSet(doc[name]), (name, version)
