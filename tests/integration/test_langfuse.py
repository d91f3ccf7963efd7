"""The real Langfuse Python SDK, both current majors, against a real Podium server.

v3 is installed in the project's venv (the `dev` extra); v5 goes into its own venv, built once
under ``.venv/langfuse-v5`` (git-ignored; pip's cache makes rebuilds quick). Each runs
tests/integration/langfuse_client.py in a subprocess -- what a user's program does -- and the
test checks what arrived through Podium's own REST API.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.server.routes.langfuse import ENDPOINTS
from tests.conftest import LiveServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("langfuse_client.py")
V5_VENV = ROOT / ".venv" / "langfuse-v5"
V5_SPEC = "langfuse>=5.2,<6"


def _v5_python() -> str:
    """The interpreter of a venv with Langfuse v5, built on first use (cached in .venv/langfuse-v5;
    a file lock keeps parallel test workers from building it twice)."""
    py = V5_VENV / "bin" / "python"
    check = [str(py), "-c", "import importlib.metadata as m; assert m.version('langfuse').startswith('5.')"]
    V5_VENV.parent.mkdir(exist_ok=True)
    with open(V5_VENV.parent / "langfuse-v5.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
            return str(py)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(V5_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", V5_SPEC], check=True,
                       timeout=600)
        subprocess.run(check, check=True)
    return str(py)


@pytest.fixture(scope="session")
def v5_python() -> str:
    return _v5_python()


def _run_client(python: str, server: LiveServer, tag: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "OTEL_"))}
    env.update(LANGFUSE_PUBLIC_KEY=server.keys.public_key, LANGFUSE_SECRET_KEY=server.keys.secret_key,
               LANGFUSE_HOST=server.url, TAG=tag, LANGFUSE_FLUSH_INTERVAL="0.2")
    p = subprocess.run([python, str(CLIENT)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    # The SDK logs its own failures (a refused score, an unparsable answer) without raising.
    problems = [ln for ln in p.stderr.splitlines() if re.search(r"error|failed|exception", ln, re.I)
                and "Returning fallback prompt for 'missing-" not in ln]  # the one expected 404
    assert not problems, "\n".join(problems[:20])
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _wait(fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _check(server: LiveServer, out: dict[str, Any], tag: str) -> None:
    major = out["major"]
    assert out["auth_check"] is True
    c = server.client()

    # --- the trace: names, nesting, user/session, metadata decoded once, input/output
    def trace() -> dict[str, Any]:
        r = c.get(f"/api/v1/traces/{out['trace_id']}")
        assert r.status_code == 200, r.text
        tr = r.json()
        assert tr["span_count"] == 3 and {s["name"] for s in tr["spans"]} == {"qa-pipeline", "retrieve", "llm-call"}
        assert len(tr["scores"]) == 2
        return tr

    tr = _wait(trace)
    spans = {s["name"]: s for s in tr["spans"]}
    root, ret, llm = spans["qa-pipeline"], spans["retrieve"], spans["llm-call"]
    assert tr["name"] == "qa-pipeline"
    assert root["parent_id"] is None and ret["parent_id"] == root["id"] and llm["parent_id"] == root["id"]
    assert llm["kind"] == "generation" and llm["model"] == "gpt-4o-mini"
    assert (tr["user_id"], tr["session_id"]) == ("user-7", f"sess-{tag}")
    assert tr["metadata"]["feature"] == "qa"  # not "\"qa\"" (v5 JSON-encodes every value)
    assert ret["metadata"]["step"] == "retrieval" and ret["metadata"]["k"] == 2
    # usage counted once (the generation only), cost as sent
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (12, 3, 15)
    assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == (12, 3, 15)
    assert Decimal(str(tr["total_cost"])) == Decimal("0.0018")
    assert llm["output"] == "Paris"
    if major == 3:  # update_current_trace(input=, output=) wins over the root function's arguments
        assert tr["input"] == {"question": "What is the capital of France?"}
        assert tr["output"] == {"answer": "Paris"}
    else:  # v5 has no trace-level input/output: the root observation's
        assert tr["input"]["args"][0] == "What is the capital of France?"
        assert tr["output"] == "Paris"
    assert root["input"]["args"][1] == "do-not-show"  # the root span keeps its own arguments

    # --- scores
    scores = {s["name"]: s for s in tr["scores"]}
    assert scores["correctness"]["value"] == 0.9 and scores["correctness"]["comment"] == "checked by hand"
    assert scores["correctness"]["data_type"] == "numeric"
    assert scores["verdict"]["value"] == "good" and scores["verdict"]["data_type"] == "categorical"

    # --- prompts: production is v1; latest is v2; the chat prompt compiles; a missing one falls back
    assert out["prompt"] == {"version": 1, "compiled": "Answer the capital of France briefly.",
                             "config": {"model": "gpt-4o-mini", "temperature": 0}}
    assert out["prompt_latest_version"] == 2
    assert out["chat"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi?"}]
    assert out["fallback"] == "fallback text"
    assert c.get(f"/api/v1/prompts/team/qa-{tag}/labels/production").json()["version"] == 1
    assert c.get(f"/api/v1/prompts/team/qa-{tag}/labels/staging").json()["version"] == 2  # update_prompt()

    # --- datasets and the experiment: items stored; every item's trace has its evaluator score
    assert out["dataset_items"] == ["France", "Italy"]
    ds = c.get(f"/api/v1/datasets/capitals-{tag}").json()
    assert ds["item_count"] == 2 and ds["description"] == "capital cities"
    items = c.get(f"/api/v1/datasets/capitals-{tag}/items").json()["data"]
    assert sorted(i["expected"] for i in items) == ["Paris", "Rome"]
    assert all(i["metadata"] == {"region": "EU"} for i in items)
    results = {country: (output, value, trace_id) for country, output, value, trace_id in out["experiment"]}
    assert {k: v[:2] for k, v in results.items()} == {"France": ("Paris", 1.0), "Italy": ("Milan", 0.0)}

    def exp_scores() -> None:
        for country, (_, value, trace_id) in results.items():
            got = c.get("/api/v1/scores", params={"trace_id": trace_id, "name": "exact"}).json()["data"]
            assert [s["value"] for s in got] == [value], country

    _wait(exp_scores)
    if major == 3:  # v3 links each item to the run (dataset-run-items): a Podium experiment
        exps = c.get("/api/v1/experiments", params={"dataset": f"capitals-{tag}"}).json()["data"]
        assert [e["name"] for e in exps] == [f"run-{tag}"] and exps[0]["item_count"] == 2
        run = c.get(f"/api/public/datasets/capitals-{tag}/runs/run-{tag}").json()
        assert sorted(i["traceId"] for i in run["datasetRunItems"]) == sorted(r[2] for r in results.values())


@pytest.mark.slow  # ~10 s: importing the SDK alone takes seconds
def test_langfuse_v3(server: LiveServer) -> None:
    tag = uuid.uuid4().hex[:8]
    out = _run_client(sys.executable, server, tag)
    assert out["major"] == 3
    _check(server, out, tag)


@pytest.mark.slow  # also builds .venv/langfuse-v5 on first use (~20 s)
def test_langfuse_v5(server: LiveServer, v5_python: str) -> None:
    tag = uuid.uuid4().hex[:8]
    out = _run_client(v5_python, server, tag)
    assert out["major"] == 5
    _check(server, out, tag)


# --- the compatibility table and error shapes ---------------------------------------------------------------


def _doc_table() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "integrations.md").read_text()
    section = text.split("<!-- langfuse-endpoints -->")[1].split("<!-- /langfuse-endpoints -->")[0]
    return [(m[1], m[2]) for m in re.finditer(r"^\| `(GET|POST|PATCH|DELETE) (/api/public/\S+)` \|", section, re.M)]


def test_docs_table_lists_every_endpoint(server: LiveServer) -> None:
    table = _doc_table()
    assert sorted(table) == sorted(ENDPOINTS)
    c = server.client()
    for method, path in table:
        url = re.sub(r"\{[a-z_]+(:path)?\}", "x", path)
        r = c.request(method, url, json={} if method in ("POST", "PATCH") else None)
        assert r.status_code < 500, (method, path, r.text)
        assert "no route" not in r.text, (method, path, r.text)  # served here, whatever the answer
        if r.status_code >= 400:
            assert isinstance(r.json()["message"], str), (method, path, r.text)  # Langfuse's error shape


def test_errors_in_langfuse_shape(server: LiveServer) -> None:
    c = server.client()
    r = c.get("/api/public/v2/prompts/nope")
    assert r.status_code == 404 and "nope" in r.json()["message"]
    r = httpx.get(server.url + "/api/public/projects", auth=("pk-pd-x", "sk-pd-wrong"))
    assert r.status_code == 401 and "API key" in r.json()["message"]
    r = c.post("/api/public/scores", json={"name": "x", "value": 1, "datasetRunId": "r1"})
    assert r.status_code == 400 and "traceId" in r.json()["message"]
    r = c.post("/api/public/ingestion", json={"batch": [
        {"id": "e1", "type": "span-create", "timestamp": "2026-01-01T00:00:00Z", "body": {"id": "s1"}},
        {"id": "e2", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
         "body": {"id": "sc1", "traceId": "t1", "name": "n", "value": 1}},
    ]})
    assert r.status_code == 207
    assert r.json()["successes"] == [{"id": "e2", "status": 201}]
    assert r.json()["errors"][0]["id"] == "e1" and "OTLP" in r.json()["errors"][0]["message"]
    assert c.get("/api/public/health").json()["status"] == "OK"


def test_answers_parse_as_the_sdk_models(server: LiveServer) -> None:
    """Each endpoint's answer parses with the Langfuse SDK's own response models (v3 here; v5's
    models are exercised by test_langfuse_v5), and the less used calls behave."""
    from langfuse import api as m
    from langfuse.api.core.pydantic_utilities import pydantic_v1

    def prompt(data: Any) -> Any:  # a union: parsed the way the SDK parses it
        return pydantic_v1.parse_obj_as(m.Prompt, data)

    c = server.client()
    ok = lambda r, code=200: (r.status_code == code) or pytest.fail(f"{r.status_code}: {r.text}")  # noqa: E731
    m.HealthResponse.parse_obj(c.get("/api/public/health").json())
    assert m.Projects.parse_obj(c.get("/api/public/projects").json()).data[0].id == server.keys.project_id

    # prompts: create, list, move a label
    r = c.post("/api/public/v2/prompts", json={"name": "p1", "type": "chat", "labels": ["production"], "prompt": [
        {"type": "chatmessage", "role": "system", "content": "Be {{tone}}."}, {"type": "placeholder", "name": "history"}]})
    ok(r)
    chat = prompt(r.json())
    assert chat.version == 1 and chat.prompt[1].name == "history"
    ok(c.post("/api/public/v2/prompts", json={"name": "p1", "type": "chat", "prompt": [{"role": "user", "content": "x"}]}))
    lst = m.PromptMetaListResponse.parse_obj(c.get("/api/public/v2/prompts", params={"limit": 1}).json())
    assert lst.data[0].name == "p1" and lst.data[0].versions == [1, 2] and lst.meta.total_items == 1
    r = c.patch("/api/public/v2/prompts/p1/versions/2", json={"newLabels": ["production"]})
    ok(r)
    assert "production" in prompt(r.json()).labels

    # scores: v5's list form (one bad item: 207 with counts), get, delete
    r = c.post("/api/public/scores", json=[{"name": "a", "value": 1, "traceId": "t1"},
                                            {"name": "b", "value": "x", "dataType": "NUMERIC", "traceId": "t1"}])
    assert r.status_code == 207 and r.json()["accepted"] == 1 and r.json()["rejected"] == 1
    assert "score 1" in r.json()["errors"][0]["message"]
    r = c.post("/api/public/scores", json={"id": "s-1", "name": "ok", "value": 1, "dataType": "BOOLEAN", "traceId": "t1"})
    ok(r)
    assert r.json() == {"id": "s-1"}
    got = c.get("/api/public/scores/s-1").json()
    assert (got["dataType"], got["value"], got["traceId"]) == ("BOOLEAN", 1.0, "t1")
    ok(c.delete("/api/public/scores/s-1"), 204)
    assert c.get("/api/public/scores/s-1").status_code == 404

    # datasets, items, runs
    ok(c.post("/api/public/v2/datasets", json={"name": "d1", "metadata": "free text"}))
    r = c.post("/api/public/v2/datasets", json={"name": "d1", "description": "updated"})  # an upsert, as in Langfuse
    assert m.Dataset.parse_obj(r.json()).description == "updated"
    assert m.PaginatedDatasets.parse_obj(c.get("/api/public/v2/datasets").json()).data[0].name == "d1"
    r = c.post("/api/public/dataset-items", json={"datasetName": "d1", "id": "i1", "input": "q1", "expectedOutput": "a1",
                                                  "metadata": 7, "sourceObservationId": "o1"})
    item = m.DatasetItem.parse_obj(r.json())
    assert (item.id, item.metadata, item.source_observation_id, item.dataset_name) == ("i1", 7, "o1", "d1")
    ok(c.post("/api/public/dataset-items", json={"datasetName": "d1", "id": "i2", "input": "q2"}))
    page = m.PaginatedDatasetItems.parse_obj(c.get("/api/public/dataset-items",
                                                   params={"datasetName": "d1", "limit": 1, "page": 2}).json())
    assert [i.id for i in page.data] == ["i2"] and page.meta.total_pages == 2
    assert m.DatasetItem.parse_obj(c.get("/api/public/dataset-items/i1").json()).input == "q1"
    r = c.post("/api/public/dataset-run-items", json={"runName": "r1", "datasetItemId": "i1", "traceId": "t1",
                                                      "observationId": "o9", "runDescription": "first"})
    run_item = m.DatasetRunItem.parse_obj(r.json())
    assert (run_item.dataset_run_name, run_item.trace_id, run_item.observation_id) == ("r1", "t1", "o9")
    run = m.DatasetRunWithItems.parse_obj(c.get("/api/public/datasets/d1/runs/r1").json())
    assert run.description == "first" and [i.dataset_item_id for i in run.dataset_run_items] == ["i1"]
    assert m.PaginatedDatasetRuns.parse_obj(c.get("/api/public/datasets/d1/runs").json()).data[0].name == "r1"
    items = m.PaginatedDatasetRunItems.parse_obj(
        c.get("/api/public/dataset-run-items", params={"datasetId": "d1", "runName": "r1"}).json())
    assert [i.trace_id for i in items.data] == ["t1"]
    m.DeleteDatasetItemResponse.parse_obj(c.delete("/api/public/dataset-items/i2").json())
    archived = c.post("/api/public/dataset-items", json={"datasetName": "d1", "id": "i1", "status": "ARCHIVED"})
    assert archived.json()["status"] == "ARCHIVED"
    assert c.get("/api/v1/datasets/d1").json()["item_count"] == 0
    assert c.get("/api/public/dataset-items/i1").status_code == 404
    ok(c.delete("/api/public/datasets/d1/runs/r1"))
    assert c.get("/api/public/datasets/d1/runs/r1").status_code == 404
