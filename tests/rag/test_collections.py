"""Collections on both databases: versions, the index round trip, vector/keyword/hybrid search on a
tiny labelled set, metadata filters, and pgvector (or the message naming its package)."""

from __future__ import annotations

from typing import Any

import pytest

from podium.errors import ConfigurationError, Conflict, NotFound, ValidationFailed
from podium.evals.scorers import scorer_from_assertion
from podium.rag.documents import parse
from podium.rag.index import pgvector_status
from podium.rag.service import CollectionService, service_for
from podium.store.repos.collections import CollectionRepo
from tests.conftest import ProjectKeys

DOCS = {
    "install.md": "# Installing Podium\n\nRun `pip install podium` and then `podium up` to start the server on "
                  "port 8700.",
    "pricing.md": "# Pricing\n\nPodium is free and open source under the Apache 2.0 licence; there is no paid tier.",
    "postgres.md": "# Scaling out\n\nSet PODIUM_DATABASE_URL to a PostgreSQL URL and PODIUM_REDIS_URL to Redis to "
                   "run several server processes.",
    "bananas.txt": "Bananas are yellow fruit rich in potassium. Monkeys like to eat them.",
    "paris.txt": "Paris is the capital and largest city of France, on the river Seine.",
}
LABELLED = [  # (question, relevant document)
    ("How do I install it and start the server?", "install.md"),
    ("Does it cost money? What is the licence?", "pricing.md"),
    ("How to use PostgreSQL and Redis with several processes", "postgres.md"),
    ("Which fruit do monkeys eat?", "bananas.txt"),
    ("What is the capital of France?", "paris.txt"),
]


def _load(svc: CollectionService, pid: str, name: str = "kb") -> dict[str, Any]:
    svc.create(pid, name, chunking={"strategy": "heading", "size": 128, "overlap": 0})
    docs = [parse(n, t, metadata={"topic": "fruit" if n == "bananas.txt" else "product" if n.endswith(".md")
                                  else "geo", "year": 2020 + i}) for i, (n, t) in enumerate(DOCS.items())]
    return svc.add(pid, name, docs, message="first load")


@pytest.fixture
def svc(store: Any) -> CollectionService:
    return CollectionService(CollectionRepo(store.engine))


def test_versions_round_trip(svc: CollectionService, project: ProjectKeys) -> None:
    pid = project.project_id
    out = _load(svc, pid)
    assert (out["version"], out["added"], out["document_count"]) == (1, 5, 5)
    assert out["chunk_count"] >= 5 and out["chunks_embedded"] == out["chunk_count"]
    again = svc.add(pid, "kb", [parse("paris.txt", DOCS["paris.txt"], metadata={"topic": "geo", "year": 2024})])
    assert again["changed"] is False and again["version"] == 1  # same text and metadata: no version
    v2 = svc.add(pid, "kb", [parse("paris.txt", "Paris is in France. It has the Eiffel Tower.",
                                   metadata={"topic": "geo"})], delete_ids=["bananas.txt"], message="edit")
    assert (v2["version"], v2["updated"], v2["removed"], v2["document_count"]) == (2, 1, 1, 4)
    repo = svc.repo
    v, docs1 = repo.list_documents(pid, "kb", version=1)
    assert v == 1 and sorted(d["id"] for d in docs1) == sorted(DOCS)
    _, docs2 = repo.list_documents(pid, "kb")
    assert "bananas.txt" not in {d["id"] for d in docs2}
    _, chunks_v1 = repo.list_chunks(pid, "kb", document_id="paris.txt", version=1)
    _, chunks_v2 = repo.list_chunks(pid, "kb", document_id="paris.txt")
    assert "Seine" in chunks_v1[0]["text"] and "Eiffel" in chunks_v2[0]["text"]
    assert [x["version"] for x in repo.list_versions(pid, "kb")] == [2, 1]
    assert repo.list_versions(pid, "kb")[0]["message"] == "edit"
    # the index follows the new version: the removed document is gone, the edit is searchable
    r = svc.search(pid, "kb", "Eiffel Tower", mode="keyword", top_k=3)
    assert r.version == 2 and r.hits[0].document_id == "paris.txt"
    assert all(h.document_id != "bananas.txt" for h in svc.search(pid, "kb", "monkeys fruit", top_k=5).hits)
    rep = svc.add(pid, "kb", [parse("only.md", "# Only\n\nthe one left")], replace=True)
    assert rep["document_count"] == 1 and rep["removed"] == 4
    with pytest.raises(NotFound, match="versions 1 to 3"):
        repo.list_documents(pid, "kb", version=9)
    with pytest.raises(Conflict, match="already exists"):
        svc.create(pid, "kb")
    svc.delete(pid, "kb")
    with pytest.raises(NotFound, match=r"no collection named .kb."):
        svc.search(pid, "kb", "x")


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_labelled_set_ranks_the_relevant_document_first(svc: CollectionService, project: ProjectKeys,
                                                        mode: str) -> None:
    pid = project.project_id
    _load(svc, pid)
    mrr = scorer_from_assertion({"type": "mrr"})
    hits = scorer_from_assertion({"type": "hit-rate", "k": 1})
    scores, top1 = [], []
    for q, doc in LABELLED:
        out = svc.search(pid, "kb", q, mode=mode, top_k=3).to_dict()
        scores.append(mrr.score({"output": out, "expected": [doc]}).numeric)
        top1.append(hits.score({"output": out, "expected": [doc]}).numeric)
        assert all(h["scores"] for h in out["data"])  # each hit says which retriever found it
    floor = {"vector": 1.0, "keyword": 0.6, "hybrid": 1.0}[mode]  # keyword misses paraphrases ("cost money")
    assert sum(top1) / len(top1) >= floor, (mode, top1)
    assert sum(s or 0 for s in scores) / len(scores) >= floor * 0.9


def test_hybrid_fuses_both_rankings(svc: CollectionService, project: ProjectKeys) -> None:
    pid = project.project_id
    _load(svc, pid)
    r = svc.search(pid, "kb", "PODIUM_REDIS_URL processes", mode="hybrid", top_k=5)
    top = r.hits[0]
    assert top.document_id == "postgres.md"
    assert set(top.scores) == {"vector", "keyword"}
    assert top.score == pytest.approx(2 / 61, abs=1e-6)  # rank 1 in both lists: 1/(60+1) twice
    assert [h.rank for h in r.hits] == list(range(1, len(r.hits) + 1))


def test_metadata_filters(svc: CollectionService, project: ProjectKeys) -> None:
    pid = project.project_id
    _load(svc, pid)
    for mode in ("vector", "keyword", "hybrid"):
        r = svc.search(pid, "kb", "capital of France fruit", mode=mode, top_k=5, filters={"topic": "fruit"})
        assert [h.document_id for h in r.hits] == ["bananas.txt"], mode
    r = svc.search(pid, "kb", "server", mode="vector", top_k=10, filters={"year": {"gte": 2022}})
    assert {h.document_id for h in r.hits} <= {"postgres.md", "bananas.txt", "paris.txt"}
    r = svc.search(pid, "kb", "server", mode="vector", top_k=10, filters={"topic": ["geo", "fruit"]})
    assert {h.document_id for h in r.hits} == {"bananas.txt", "paris.txt"}
    with pytest.raises(ValidationFailed, match="operator"):
        svc.search(pid, "kb", "x", filters={"year": {"between": 1}})
    with pytest.raises(ValidationFailed, match="mode"):
        svc.search(pid, "kb", "x", mode="semantic")


def test_collections_are_scoped_by_project(store: Any, project: ProjectKeys) -> None:
    from tests.conftest import make_project

    svc = service_for(store)
    _load(svc, project.project_id)
    other = make_project(store, "other")
    with pytest.raises(NotFound):
        svc.search(other.project_id, "kb", "France")
    _load(svc, other.project_id)
    assert len(svc.search(other.project_id, "kb", "France", mode="keyword").hits) >= 1


def test_pgvector_or_a_message_naming_the_package(store: Any, project: ProjectKeys) -> None:
    pid = project.project_id
    svc = CollectionService(CollectionRepo(store.engine), backend="pgvector")
    _load(svc, pid)
    st = pgvector_status(store.engine)
    if store.dialect != "postgresql":
        with pytest.raises(ConfigurationError, match="needs PostgreSQL"):
            svc.search(pid, "kb", "capital of France", mode="vector")
    elif not st["available"]:
        with pytest.raises(ConfigurationError, match="postgresql-15-pgvector"):
            svc.search(pid, "kb", "capital of France", mode="vector")
    else:
        flat = CollectionService(svc.repo)
        for q, doc in LABELLED:
            a = svc.search(pid, "kb", q, mode="vector", top_k=3)
            b = flat.search(pid, "kb", q, mode="vector", top_k=3)
            assert a.hits[0].document_id == doc == b.hits[0].document_id
            assert a.hits[0].score == pytest.approx(b.hits[0].score, abs=1e-4)
        # a new version is synced before the next search
        svc.add(pid, "kb", [parse("paris.txt", "Lyon is a city in France known for food.")])
        assert svc.search(pid, "kb", "Lyon food", mode="vector", top_k=1).hits[0].text.startswith("Lyon")
        with store.engine.begin() as c:  # the run-time table is not in tables.py: leave the schema as migrated
            c.exec_driver_sql("DROP TABLE IF EXISTS rag_vec_384")
