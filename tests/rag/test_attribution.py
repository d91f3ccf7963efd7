"""Context attribution (podium.rag.attribution, POST/GET /api/v1/traces/{id}/attributions).

The pieces on their own (what tracers record, locating and ablating sources), then both methods on
the real local model (SmolLM2, one thread) with a fact planted in one chunk, then the API on a
live server: a trace recorded as Podium's RAG answer records it, errors in the pinned shape, roles.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podium.errors import BadRequest, ConfigurationError, ValidationFailed
from podium.inference import LocalChatModel
from podium.rag.answer import default_messages
from podium.rag.attribution import (
    Source,
    ablate,
    context_cite,
    leave_one_out,
    locate,
    normalise_messages,
    response_text,
    response_value,
    sources_from_retrieval,
    split_sentences,
)
from tests.conftest import LiveServer, ProjectKeys, make_project

FILLER = [
    "The office cat is named Biscuit and sleeps on the printer.",
    "Quarterly reports are due on the fifth working day of each month.",
    "The cafeteria serves lentil soup every Thursday.",
]
# (question, planted chunk, answer that quotes it)
CASES = [
    ("In which city was Zorvian Bank founded?",
     "Zorvian Bank was founded in 1887 in the port city of Valdoria.",
     "Zorvian Bank was founded in Valdoria."),
    ("What colour is the Kelmar lighthouse?",
     "The Kelmar lighthouse is painted bright purple with white stripes.",
     "The Kelmar lighthouse is painted bright purple."),
    ("Who invented the quillophone?",
     "The quillophone was invented by Marta Ostrevik, a clockmaker.",
     "Marta Ostrevik invented the quillophone."),
]


def _context(chunks: list[str]) -> str:
    return "\n\n".join(f"[{i}] {c}" for i, c in enumerate(chunks, start=1))


def _case(n: int, at: int) -> tuple[list[dict[str, str]], list[Source], str]:
    q, planted, answer = CASES[n]
    chunks = [*FILLER[:at], planted, *FILLER[at:]]
    return default_messages(_context(chunks), q), [Source(f"c{i}", c) for i, c in enumerate(chunks)], answer


@pytest.fixture(scope="module")
def model() -> Iterator[LocalChatModel]:
    m = LocalChatModel(n_threads=1)
    yield m
    m.close()


# --- no model ------------------------------------------------------------------------------------


def test_sources_from_what_tracers_record() -> None:
    ours = [{"id": "a.md#0", "document_id": "a.md", "title": "a", "text": "Alpha.", "score": 0.5}]
    assert sources_from_retrieval(ours) == [Source("a.md#0", "Alpha.", "a")]
    openinference = [{"document": {"id": "d1", "content": "Beta.", "score": 0.2, "metadata": {"title": "B"}}},
                     {"document": {"content": "Gamma."}}]
    assert sources_from_retrieval(openinference) == [Source("d1", "Beta.", "B"), Source("#2", "Gamma.")]
    langchain = {"documents": [{"page_content": "Delta.", "metadata": {"source": "d.txt"}}]}
    assert sources_from_retrieval(langchain) == [Source("d.txt", "Delta.")]
    assert sources_from_retrieval(["Eps.", "", 3]) == [Source("#1", "Eps.")]
    assert sources_from_retrieval(None) == []


def test_messages_and_responses_from_what_tracers_record() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]
    assert normalise_messages(parts) == [{"role": "user", "content": "Hi there"}]
    oi = [{"message": {"role": "system", "content": "S"}}, {"message": {"role": "user", "content": "U"}}]
    assert normalise_messages(oi) == [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    with pytest.raises(ValidationFailed, match="no chat messages"):
        normalise_messages({"foo": 1})
    assert response_text({"role": "assistant", "content": "A."}) == "A."
    assert response_text([{"message": {"role": "assistant", "content": "B."}}]) == "B."
    assert response_text({"choices": [{"message": {"role": "assistant", "content": "C."}}]}) == "C."
    assert response_text("D.") == "D."


def test_locate_and_ablate_remove_exactly_the_source_text() -> None:
    msgs, sources, _ = _case(0, 1)
    units = locate(msgs, sources)
    assert [u.source for u in units] == [0, 1, 2, 3] and all(u.message == 1 for u in units)
    cut = ablate(msgs, units, [True, False, True, True])
    assert sources[1].text not in cut[1]["content"] and all(s.text in cut[1]["content"] for s in sources[::2])
    assert cut[0] == msgs[0] and cut[1]["content"].count("[2] \n") == 1  # only the text goes, the label stays
    sents = locate([{"role": "user", "content": "x. One fact. Two facts! y"}], [Source("s", "One fact. Two facts!")],
                   level="sentence")
    assert [u.text for u in sents] == ["One fact.", "Two facts!"]
    assert split_sentences("A b. C d?  E") == [(0, 4), (5, 9), (11, 12)]
    with pytest.raises(ValidationFailed, match="not found verbatim") as e:
        locate(msgs, [*sources, Source("gone", "This text is in no message.")])
    assert e.value.details[0]["ids"] == ["gone"]


def test_response_value_is_the_logit_of_the_response_probability() -> None:
    assert response_value([-0.6931471805599453]) == pytest.approx(0.0, abs=1e-9)  # p = 0.5
    assert response_value([-10.0, -5.0]) == pytest.approx(-15.0, abs=1e-5)  # tiny p: log p
    assert response_value([0.0]) > 20  # p rounds to 1: large, finite


def test_context_cite_without_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    msgs, sources, answer = _case(0, 0)
    with pytest.raises(ConfigurationError, match=r"pip install 'podium\[explain\]'"):
        context_cite(object(), msgs, answer, sources)  # type: ignore[arg-type]  # never called


def test_budget_and_parameter_checks() -> None:
    msgs, sources, answer = _case(0, 0)
    with pytest.raises(BadRequest, match="num_ablations"):
        context_cite(object(), msgs, answer, sources, num_ablations=2)  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="max_passes"):
        leave_one_out(object(), msgs, answer, sources, max_passes=1)  # type: ignore[arg-type]


# --- the real local model ------------------------------------------------------------------------


@pytest.mark.one_db
@pytest.mark.parametrize(("case", "at"), [(0, 1), (1, 3), (2, 0)])
def test_both_methods_find_the_planted_chunk(model: LocalChatModel, case: int, at: int) -> None:
    msgs, sources, answer = _case(case, at)
    loo = leave_one_out(model, msgs, answer, sources)
    assert loo.top_source() == at, loo.to_dict()
    assert loo.passes == 1 + len(sources) and not loo.truncated
    cc = context_cite(model, msgs, answer, sources, level="chunk", num_ablations=16, seed=1)
    assert cc.top_source() == at, cc.to_dict()
    d = cc.to_dict()
    assert d["top_chunk"] == f"c{at}" and d["chunks"][0]["rank"] == 1 and cc.passes == 17
    assert d["fit"]["r2"] is not None and d["fit"]["r2"] > 0.5, d["fit"]


@pytest.mark.one_db
def test_sentence_level_points_at_the_planted_sentence(model: LocalChatModel) -> None:
    q, planted, answer = CASES[0]
    chunks = [FILLER[0] + " " + FILLER[1], "Its vaults are old. " + planted, FILLER[2]]
    msgs = default_messages(_context(chunks), q)
    res = leave_one_out(model, msgs, answer, [Source(f"c{i}", c) for i, c in enumerate(chunks)], level="sentence")
    d = res.to_dict()
    assert d["top_chunk"] == "c1" and d["chunks"][0]["sentences"][0]["text"] == planted, d
    assert res.passes == 1 + 5


@pytest.mark.one_db
def test_a_budget_cuts_leave_one_out_and_says_so(model: LocalChatModel) -> None:
    msgs, sources, answer = _case(0, 1)
    res = leave_one_out(model, msgs, answer, sources, max_passes=3)
    assert res.passes == 3 and res.truncated and res.weights.count(None) == 2


# --- the API ---------------------------------------------------------------------------------------


def _client(server: LiveServer, keys: ProjectKeys | None = None) -> httpx.Client:
    """A client that waits for the model (an attribution runs seconds to minutes on a busy CPU)."""
    return httpx.Client(base_url=server.url, auth=(keys or server.keys).basic(), timeout=600)


def _ingest_rag_trace(c: httpx.Client, trace_id: str, *, case: int = 0, at: int = 1,
                      retrieval: bool = True, generation: bool = True, prompt_chunks: bool = True) -> None:
    """A trace as POST /api/v1/collections/{name}/answer records it: chain > retrieval + generation."""
    q, planted, answer = CASES[case]
    chunks = [*FILLER[:at], planted, *FILLER[at:]]
    hits = [{"id": f"doc{i}.txt#0", "document_id": f"doc{i}.txt", "title": f"doc{i}", "text": t, "score": 0.5}
            for i, t in enumerate(chunks)]
    msgs = default_messages(_context(chunks if prompt_chunks else FILLER), q)
    batch: list[dict[str, Any]] = [{"type": "span", "body": {
        "id": f"{trace_id}-root", "trace_id": trace_id, "name": "rag kb", "kind": "chain",
        "start_time": "2026-12-01T10:00:00Z", "end_time": "2026-12-01T10:00:03Z", "input": {"question": q}}}]
    if retrieval:
        batch.append({"type": "span", "body": {
            "id": f"{trace_id}-ret", "trace_id": trace_id, "parent_id": f"{trace_id}-root", "name": "retrieve kb",
            "kind": "retrieval", "start_time": "2026-12-01T10:00:00Z", "end_time": "2026-12-01T10:00:01Z",
            "input": {"query": q}, "output": hits}})
    if generation:
        batch.append({"type": "span", "body": {
            "id": f"{trace_id}-gen", "trace_id": trace_id, "parent_id": f"{trace_id}-root", "name": "chat local",
            "kind": "generation", "model": "local", "start_time": "2026-12-01T10:00:01Z",
            "end_time": "2026-12-01T10:00:03Z", "input": msgs, "output": {"role": "assistant", "content": answer}}})
    r = c.post("/api/v1/ingest", json={"batch": batch})
    assert r.status_code in (200, 207), r.text
    want = 1 + retrieval + generation
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = c.get(f"/api/v1/traces/{trace_id}")
        if got.status_code == 200 and len(got.json()["spans"]) == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} not stored")


def test_api_attributes_a_rag_answer_and_lists_it(server: LiveServer) -> None:
    with _client(server) as c:
        _ingest_rag_trace(c, "attr-ok", at=2)
        r = c.post("/api/v1/traces/attr-ok/attributions", json={"method": "leave-one-out"})
        assert r.status_code == 201, r.text
        out = r.json()
        assert (out["method"], out["level"], out["span_id"], out["retrieval_span_id"]) == (
            "leave-one-out", "chunk", "attr-ok-gen", "attr-ok-ret")
        assert out["top_chunk"] == "doc2.txt#0" and out["passes"] == 5 and out["seconds"] > 0
        chunks = out["result"]["chunks"]
        assert chunks[0]["id"] == "doc2.txt#0" and chunks[0]["title"] == "doc2" and len(chunks) == 4
        assert out["result"]["generation_model"] == "local" and out["model"]
        r = c.post("/api/v1/traces/attr-ok/attributions",
                   json={"method": "context-cite", "ablations": 8, "level": "chunk", "seed": 3})
        assert r.status_code == 201, r.text
        cc = r.json()
        assert cc["passes"] == 9 and cc["result"]["fit"]["ablations"] == 8
        listed = c.get("/api/v1/traces/attr-ok/attributions").json()["data"]
        assert [a["id"] for a in listed] == [cc["id"], out["id"]]
        assert listed[1]["result"] == out["result"]
        audit = c.get("/api/v1/audit-events", params={"limit": 500}).json()["data"]
        posts = [e for e in audit if e["path"] == "/api/v1/traces/attr-ok/attributions"]
        assert [(e["method"], e["status"]) for e in posts] == [("POST", 201), ("POST", 201)], posts


def test_api_errors_say_what_is_missing(server: LiveServer) -> None:
    with _client(server) as c:
        _ingest_rag_trace(c, "attr-noret", retrieval=False)
        _ingest_rag_trace(c, "attr-nogen", generation=False)
        _ingest_rag_trace(c, "attr-moved", prompt_chunks=False)
        cases = [
            ("attr-noret", {}, 400, "no retrieval span"),
            ("attr-nogen", {}, 400, "no generation span"),
            ("attr-moved", {"method": "leave-one-out"}, 400, "not found verbatim"),
            ("attr-ok-missing", {}, 404, "no trace"),
            ("attr-noret", {"span_id": "nope"}, 404, "no span 'nope'"),
            ("attr-nogen", {"method": "shapley"}, 400, ""),
            ("attr-nogen", {"ablations": 4}, 400, ""),
        ]
        for trace_id, body, status, words in cases:
            r = c.post(f"/api/v1/traces/{trace_id}/attributions", json=body)
            assert r.status_code == status, (trace_id, body, r.text)
            err = r.json()["error"]
            assert set(err) >= {"code", "message"} and words in err["message"], (trace_id, err)
        assert c.get("/api/v1/traces/attr-none/attributions").status_code == 404
        assert c.get("/api/v1/traces/attr-noret/attributions").json() == {"data": []}


@pytest.mark.one_db
def test_api_refuses_a_context_longer_than_the_model_window(server: LiveServer) -> None:
    with _client(server) as c:
        q, planted, answer = CASES[0]
        chunks = [planted, "filler words " * 1500]
        batch = [
            {"type": "span", "body": {"id": "long-ret", "trace_id": "attr-long", "name": "r", "kind": "retrieval",
                                      "start_time": "2026-12-01T10:00:00Z", "output": [{"text": t} for t in chunks]}},
            {"type": "span", "body": {"id": "long-gen", "trace_id": "attr-long", "name": "g", "kind": "generation",
                                      "start_time": "2026-12-01T10:00:01Z",
                                      "input": default_messages(_context(chunks), q), "output": answer}}]
        assert c.post("/api/v1/ingest", json={"batch": batch}).status_code in (200, 207)
        deadline = time.monotonic() + 15
        while c.get("/api/v1/traces/attr-long").status_code != 200 or \
                len(c.get("/api/v1/traces/attr-long").json()["spans"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = c.post("/api/v1/traces/attr-long/attributions", json={"method": "leave-one-out"})
        assert r.status_code == 400 and "context window" in r.json()["error"]["message"], r.text


@pytest.mark.one_db
def test_roles_viewer_reads_member_computes(server: LiveServer) -> None:
    pid = server.keys.project_id
    keys = {}
    for role in ("viewer", "member", "ingest"):
        k = server.store.projects.create_key(pid, role=role)
        keys[role] = ProjectKeys(pid, k.key.public_key, k.secret_key)
    with server.client() as c:
        _ingest_rag_trace(c, "attr-roles", at=0)
    with server.client(keys["viewer"]) as c:
        assert c.get("/api/v1/traces/attr-roles/attributions").status_code == 200
        r = c.post("/api/v1/traces/attr-roles/attributions", json={"method": "leave-one-out"})
        assert r.status_code == 403 and "role" in r.json()["error"]["message"]
    with server.client(keys["ingest"]) as c:
        assert c.post("/api/v1/traces/attr-roles/attributions", json={}).status_code == 403
        assert c.get("/api/v1/traces/attr-roles/attributions").status_code == 403
    with _client(server, keys["member"]) as c:
        r = c.post("/api/v1/traces/attr-roles/attributions", json={"method": "leave-one-out", "max_passes": 2})
        assert r.status_code == 201 and r.json()["result"]["truncated"] is True, r.text
    other = make_project(server.store, "elsewhere")
    with server.client(other) as c:
        assert c.get("/api/v1/traces/attr-roles/attributions").status_code == 404
        assert c.post("/api/v1/traces/attr-roles/attributions", json={}).status_code == 404
