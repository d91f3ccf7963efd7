"""Annotation queues: creation from a filter and from ids, claiming with a lock (two annotators
never share an item; an expired lock is free), submitting writes a real score (source human)
validated against its score config, skip, progress, agreement (Cohen's and Fleiss' kappa on
worked examples from the literature) and to-dataset (idempotent). The store on each database,
then the REST API on a real server."""

from __future__ import annotations

import concurrent.futures as cf
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from podium.errors import Conflict, ValidationFailed
from podium.monitor.agreement import Rating, compute
from podium.store.repos.annotations import Target
from podium.store.repos.ingest import IngestBatch
from tests.conftest import LiveServer, make_project
from tests.store.test_store import span

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Q = "/api/v1/annotation-queues"


def seed(store: Any, pid: str, n: int = 6) -> list[str]:
    """``n`` traces t0..t{n-1}: even ones in prod, odd ones in dev; each with a root and a child span."""
    spans: list[Any] = []
    hints: list[Any] = []
    for k in range(n):
        tid = f"t{k}"
        st = T0 + timedelta(minutes=k)
        spans.append(span(pid, tid, "root", name="chat", start_time=st, end_time=st + timedelta(seconds=1),
                          latency_ms=1000.0, status="ok", input={"question": f"q{k}"}, output={"answer": f"a{k}"}))
        spans.append(span(pid, tid, "llm", parent_id="root", kind="generation", start_time=st,
                          end_time=st + timedelta(milliseconds=500), latency_ms=500.0, status="ok",
                          input=f"prompt {k}", output=f"completion {k}"))
        hints.append({"project_id": pid, "id": tid, "user_id": "u", "session_id": None, "release": None,
                      "environment": "prod" if k % 2 == 0 else "dev", "metadata": None, "name": None})
    store.ingest.write(IngestBatch(spans=spans, traces=hints))
    return [f"t{k}" for k in range(n)]


def configs(store: Any, pid: str) -> dict[str, dict[str, Any]]:
    from podium.store.repos.score_configs import ScoreConfigRepo

    repo = ScoreConfigRepo(store.engine)
    return {
        "correct": repo.create(pid, {"name": "correct", "data_type": "boolean"}),
        "tone": repo.create(pid, {"name": "tone", "data_type": "categorical", "categories": [
            {"label": "rude", "value": 0}, {"label": "neutral", "value": 1}, {"label": "kind", "value": 2}]}),
        "quality": repo.create(pid, {"name": "quality", "data_type": "numeric", "min_value": 1, "max_value": 5}),
    }


@pytest.fixture
def pid(store: Any) -> str:
    p = make_project(store, "annotate").project_id
    seed(store, p)
    return p


# --- store ---------------------------------------------------------------------------------------------


def test_create_from_filter_and_ids(store: Any, pid: str) -> None:
    cfg = configs(store, pid)
    repo = store.annotations
    with pytest.raises(ValidationFailed, match="at least one score config"):
        repo.create_queue(pid, name="none", score_config_ids=[])
    with pytest.raises(ValidationFailed, match="does not exist"):
        repo.create_queue(pid, name="bad", score_config_ids=["nope"])
    q = repo.create_queue(pid, name="prod", score_config_ids=[cfg["correct"]["id"]])
    got = repo.add_from_filter(pid, q["id"], {"environment": "prod"}, limit=2)
    assert got == {"added": 2, "existing": 0, "matched": 2}
    # Newest first: t4 then t2; the filter is recorded on the queue.
    assert [i["trace_id"] for i in repo.list_items(pid, q["id"])] == ["t4", "t2"]
    assert repo.get_queue(pid, q["id"])["source"] == {"kind": "filter", "filter": {"environment": "prod"}, "limit": 2}
    assert repo.add_from_filter(pid, q["id"], {"environment": "prod"}, limit=10)["added"] == 1  # t0; t4, t2 kept
    with pytest.raises(ValidationFailed, match="unknown filter"):
        repo.add_from_filter(pid, q["id"], {"colour": "red"})
    with pytest.raises(ValidationFailed, match="with a zone"):
        repo.add_from_filter(pid, q["id"], {"start_after": "2026-01-01T00:00:00"})

    q2 = repo.create_queue(pid, name="ids", score_config_ids=[cfg["correct"]["id"], cfg["tone"]["id"]])
    got = repo.add_items(pid, q2["id"], [Target("t1"), Target("t1", "llm"), Target("t1")])
    assert got == {"added": 2, "existing": 0}
    assert repo.add_items(pid, q2["id"], [Target("t1")]) == {"added": 0, "existing": 1}
    items = repo.list_items(pid, q2["id"])
    assert [(i["trace_id"], i["span_id"], i["status"]) for i in items] == [("t1", None, "pending"),
                                                                             ("t1", "llm", "pending")]
    from podium.errors import NotFound

    with pytest.raises(NotFound, match="no trace"):
        repo.add_items(pid, q2["id"], [Target("missing")])
    with pytest.raises(NotFound, match="no span"):
        repo.add_items(pid, q2["id"], [Target("t1", "nope")])
    # Another project sees none of it.
    other = make_project(store, "other").project_id
    assert repo.list_queues(other) == []
    with pytest.raises(NotFound):
        repo.get_queue(other, q2["id"])


def test_two_annotators_get_different_items_and_locks_expire(store: Any, pid: str) -> None:
    cfg = configs(store, pid)
    repo = store.annotations
    q = repo.create_queue(pid, name="lock", score_config_ids=[cfg["correct"]["id"]], lock_seconds=60)
    repo.add_items(pid, q["id"], [Target(f"t{k}") for k in range(3)])
    a = repo.claim_next(pid, q["id"], "alice")
    b = repo.claim_next(pid, q["id"], "bob")
    assert a is not None and b is not None and a["id"] != b["id"]
    assert a["assigned_to"] == "alice" and a["status"] == "in_progress"
    # Asking again returns the item one already holds.
    assert repo.claim_next(pid, q["id"], "alice")["id"] == a["id"]
    # Someone else cannot annotate or skip an item alice holds.
    with pytest.raises(Conflict, match="being reviewed by 'alice'"):
        repo.submit(pid, q["id"], a["id"], "bob", {"correct": True})
    # After the lock expires the item is free again: carol, asking later, gets alice's item.
    later = datetime.now(UTC) + timedelta(seconds=61)
    c = repo.claim_next(pid, q["id"], "carol", now=later)
    assert c is not None and c["id"] in (a["id"], b["id"])
    assert repo.claim_next(pid, q["id"], "dave", now=later)["id"] != c["id"]
    # A claim that expired before any review counts as pending again (and shows no holder).
    from sqlalchemy import update

    from podium.store import tables as t

    with store.engine.begin() as conn:
        conn.execute(update(t.annotation_item).values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    assert repo.progress(pid, q["id"])["pending"] == 3
    assert {(i["status"], i["assigned_to"]) for i in repo.list_items(pid, q["id"], status="pending")} == {
        ("pending", None)}


def test_concurrent_claims_never_share(store: Any, pid: str) -> None:
    cfg = configs(store, pid)
    repo = store.annotations
    q = repo.create_queue(pid, name="race", score_config_ids=[cfg["correct"]["id"]])
    repo.add_items(pid, q["id"], [Target(f"t{k}") for k in range(6)])
    with cf.ThreadPoolExecutor(6) as ex:
        got = list(ex.map(lambda n: repo.claim_next(pid, q["id"], f"ann{n}"), range(6)))
    ids = [g["id"] for g in got if g is not None]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert repo.claim_next(pid, q["id"], "late") is None


def test_submit_writes_a_human_score_and_validates(store: Any, pid: str) -> None:
    cfg = configs(store, pid)
    repo = store.annotations
    q = repo.create_queue(pid, name="s", score_config_ids=[cfg["tone"]["id"], cfg["quality"]["id"]])
    repo.add_items(pid, q["id"], [Target("t0"), Target("t1", "llm")])
    item = repo.claim_next(pid, q["id"], "alice")
    assert item is not None
    with pytest.raises(ValidationFailed, match="not a category of score config 'tone'; allowed: 'rude'"):
        repo.submit(pid, q["id"], item["id"], "alice", {"tone": "great"})
    with pytest.raises(ValidationFailed, match=r"outside score config 'quality''s range \[1, 5\]"):
        repo.submit(pid, q["id"], item["id"], "alice", {"quality": 9})
    with pytest.raises(ValidationFailed, match="does not score 'correct'"):
        repo.submit(pid, q["id"], item["id"], "alice", {"correct": True})
    done = repo.submit(pid, q["id"], item["id"], "alice", {cfg["tone"]["id"]: "kind", "quality": 4},
                       comment="good")
    assert done["status"] == "done" and done["review_count"] == 1 and done["assigned_to"] is None
    from podium.store.repos.scores import ScoreFilter

    scores = store.scores.list_scores(pid, ScoreFilter(trace_id="t0")).items
    by = {s["name"]: s for s in scores}
    assert by["tone"]["source"] == "human" and by["tone"]["value"] == "kind" and by["tone"]["data_type"] == "categorical"
    assert by["quality"]["value"] == 4 and by["quality"]["comment"] == "good"
    assert by["quality"]["metadata"]["annotator"] == "alice"
    # Submitting again replaces the annotation and the score (no duplicates).
    repo.submit(pid, q["id"], item["id"], "alice", {"quality": 2})
    scores = store.scores.list_scores(pid, ScoreFilter(trace_id="t0", name="quality")).items
    assert [s["value"] for s in scores] == [2]
    # A span item scores the span.
    nxt = repo.claim_next(pid, q["id"], "alice")
    assert nxt is not None and nxt["span_id"] == "llm"
    repo.submit(pid, q["id"], nxt["id"], "alice", {"tone": "rude"})
    s = store.scores.list_scores(pid, ScoreFilter(trace_id="t1", name="tone")).items
    assert s[0]["span_id"] == "llm"
    assert repo.claim_next(pid, q["id"], "alice") is None
    # To a dataset: the span's input and output for the span item.
    repo.to_dataset(pid, q["id"], "mixed")
    items = {i["source_trace_id"]: i for i in store.evals.list_items(pid, "mixed")[1].items}
    assert items["t1"]["input"] == "prompt 1" and items["t1"]["expected"] == "completion 1"
    assert items["t0"]["input"] == {"question": "q0"} and items["t0"]["labels"] == {"tone": "kind", "quality": 2.0}


def test_reviews_per_item_skip_and_progress(store: Any, pid: str) -> None:
    cfg = configs(store, pid)
    repo = store.annotations
    q = repo.create_queue(pid, name="p", score_config_ids=[cfg["correct"]["id"]], reviews_per_item=2)
    repo.add_items(pid, q["id"], [Target(f"t{k}") for k in range(3)])
    a = repo.claim_next(pid, q["id"], "alice")
    assert a is not None
    repo.submit(pid, q["id"], a["id"], "alice", {"correct": True})
    assert repo.get_item(pid, q["id"], a["id"])["status"] == "in_progress"
    # Alice never gets her own item again; bob gets it (first in order) for its second review.
    a2 = repo.claim_next(pid, q["id"], "alice")
    assert a2 is not None and a2["id"] != a["id"]
    b = repo.claim_next(pid, q["id"], "bob")
    assert b is not None and b["id"] == a["id"]
    repo.submit(pid, q["id"], b["id"], "bob", {"correct": False})
    assert repo.get_item(pid, q["id"], a["id"])["status"] == "done"
    with pytest.raises(Conflict, match="already has its 2 review"):
        repo.submit(pid, q["id"], a["id"], "carol", {"correct": True})
    skipped = repo.skip(pid, q["id"], a2["id"], "alice")
    assert skipped["status"] == "skipped"
    p = repo.progress(pid, q["id"])
    assert (p["total"], p["done"], p["skipped"], p["pending"], p["reviews"]) == (3, 1, 1, 1, 2)
    assert p["reviews_wanted"] == 4 and p["percent_complete"] == pytest.approx(66.7)
    assert [(x["annotator"], x["reviewed"]) for x in p["annotators"]] == [("alice", 1), ("bob", 1)]
    assert repo.history(pid, q["id"], "alice") == [a["id"]]


# --- agreement ----------------------------------------------------------------------------------------


def _pairs(table: list[tuple[Any, Any, int]]) -> list[Rating]:
    rows, n = [], 0
    for x, y, count in table:
        for _ in range(count):
            rows += [Rating(str(n), "A", x), Rating(str(n), "B", y)]
            n += 1
    return rows


def test_cohens_kappa_on_wikipedias_example() -> None:
    # Wikipedia, "Cohen's kappa", worked example: 50 grant proposals, two readers.
    res = compute(_pairs([("yes", "yes", 20), ("yes", "no", 5), ("no", "yes", 10), ("no", "no", 15)]), "categorical")
    assert res["method"] == "cohen" and res["items"] == 50 and res["annotators"] == 2
    assert res["percent_agreement"] == 70.0
    assert res["kappa"] == pytest.approx(0.4)
    # Booleans are the same computation.
    res = compute(_pairs([(True, True, 20), (True, False, 5), (False, True, 10), (False, False, 15)]), "boolean")
    assert res["kappa"] == pytest.approx(0.4)


def test_fleiss_kappa_on_wikipedias_example() -> None:
    # Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories: kappa 0.210, P-bar 0.378.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    rows = []
    for i, counts in enumerate(table):
        r = 0
        for cat, c in enumerate(counts):
            for _ in range(c):
                rows.append(Rating(f"s{i}", f"rater{r}", f"c{cat + 1}"))
                r += 1
    res = compute(rows, "categorical")
    assert res["method"] == "fleiss" and res["items"] == 10 and res["ratings_per_item"] == 14
    assert res["kappa"] == pytest.approx(0.210, abs=5e-4)
    assert res["percent_agreement"] == pytest.approx(37.8, abs=0.05)


def test_numeric_weighted_and_degenerate_cases() -> None:
    # Perfect agreement on numbers: weighted kappa 1.
    rows = [Rating(str(i), p, float(v)) for i, v in enumerate([1, 2, 3, 4, 5, 1, 5]) for p in ("A", "B")]
    res = compute(rows, "numeric", min_value=1, max_value=5)
    assert res["method"] == "cohen_quadratic" and res["kappa"] == pytest.approx(1.0)
    # Near misses count partly (quadratic weights): higher than the unweighted kappa of the same bins.
    near = [Rating(str(i), "A", float(a)) for i, (a, _) in enumerate(zip([1, 2, 3, 4, 5], [2, 3, 4, 5, 5], strict=True))]
    near += [Rating(str(i), "B", float(b)) for i, (_, b) in enumerate(zip([1, 2, 3, 4, 5], [2, 3, 4, 5, 5], strict=True))]
    w = compute(near, "numeric", min_value=1, max_value=5)
    assert w["kappa"] is not None and w["kappa"] > 0.5 and w["percent_agreement"] == 20.0
    # All the same value: kappa undefined, agreement 100.
    same = compute(_pairs([("kind", "kind", 4)]), "categorical")
    assert same["kappa"] is None and same["percent_agreement"] == 100.0 and "undefined" in same["note"]
    assert compute([Rating("x", "A", "kind")], "categorical")["method"] is None


def test_queue_agreement_and_to_dataset(store: Any, pid: str) -> None:
    from podium.monitor.agreement import for_queue

    cfg = configs(store, pid)
    repo = store.annotations
    q = repo.create_queue(pid, name="agree", score_config_ids=[cfg["correct"]["id"]], reviews_per_item=2)
    repo.add_items(pid, q["id"], [Target(f"t{k}") for k in range(4)])
    # alice and bob agree on 3 of 4 items.
    for who, vals in (("alice", [True, True, False, False]), ("bob", [True, True, False, True])):
        for _ in range(4):
            it = repo.claim_next(pid, q["id"], who)
            assert it is not None
            repo.submit(pid, q["id"], it["id"], who, {"correct": vals[int(it["trace_id"][1:])]},
                        comment="fine" if who == "bob" else None)
    [ag] = for_queue(store, pid, q["id"])
    assert ag["name"] == "correct" and ag["method"] == "cohen" and ag["items"] == 4
    assert ag["percent_agreement"] == 75.0 and ag["kappa"] == pytest.approx(0.5)

    first = repo.to_dataset(pid, q["id"], "reviewed")
    assert first["added"] == 4 and first["items"] == 4 and first["version"] == 1
    items = store.evals.list_items(pid, "reviewed")[1].items
    by_trace = {i["source_trace_id"]: i for i in items}
    assert by_trace["t0"]["input"] == {"question": "q0"} and by_trace["t0"]["expected"] == {"answer": "a0"}
    assert by_trace["t3"]["labels"] == {"correct": False}  # a tie: the first given (alice's)
    assert by_trace["t0"]["metadata"]["annotators"] == ["alice", "bob"]
    # Idempotent: the same call adds nothing and makes no new version.
    again = repo.to_dataset(pid, q["id"], "reviewed")
    assert again["added"] == 0 and again["changed"] is False and again["version"] == 1
    # The consensus as the expected output instead.
    ann = repo.to_dataset(pid, q["id"], "labels", expected="annotation")
    assert ann["added"] == 4
    items = store.evals.list_items(pid, "labels")[1].items
    assert {i["source_trace_id"]: i["expected"] for i in items}["t1"] == {"correct": True}


# --- REST ---------------------------------------------------------------------------------------------


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def test_rest_walkthrough(server: LiveServer) -> None:
    pid = server.keys.project_id
    seed(server.store, pid)
    with server.client() as c:
        tone = c.post("/api/v1/score-configs", json={"name": "tone", "data_type": "categorical", "categories": [
            {"label": "rude", "value": 0}, {"label": "kind", "value": 1}]}).json()
        ok = c.post("/api/v1/score-configs", json={"name": "ok", "data_type": "boolean"}).json()
        e = _error(c.post(Q, json={"name": "x", "score_config_ids": []}), 400, "validation_error")
        r = c.post(Q, json={"name": "prod", "score_config_ids": [tone["id"], ok["id"]],
                            "filter": {"environment": "prod"}, "limit": 10, "reviews_per_item": 2})
        assert r.status_code == 201, r.text
        q = r.json()
        assert q["added"]["added"] == 3 and q["counts"]["pending"] == 3
        r = c.post(Q, json={"name": "ids", "score_config_ids": [ok["id"]], "items": [{"trace_id": "t1"}]})
        assert r.status_code == 201 and r.json()["counts"]["total"] == 1
        _error(c.post(Q, json={"name": "ids", "score_config_ids": [ok["id"]]}), 409, "conflict")
        e = _error(c.post(Q, json={"name": "gone", "score_config_ids": [ok["id"]], "items": [{"trace_id": "zz"}]}),
                   404, "not_found")
        assert "no trace" in e["message"] and "gone" not in [x["name"] for x in c.get(Q).json()["data"]]
        assert sorted(x["name"] for x in c.get(Q).json()["data"]) == ["ids", "prod"]

        qid = q["id"]
        a = c.post(f"{Q}/{qid}/next", json={"annotator": "alice"}).json()["item"]
        b = c.post(f"{Q}/{qid}/next", json={"annotator": "bob"}).json()["item"]
        assert a["id"] != b["id"]
        # No body: the annotator is the key's public key.
        mine = c.post(f"{Q}/{qid}/next").json()["item"]
        assert mine["assigned_to"] == server.keys.public_key and mine["id"] not in (a["id"], b["id"])
        assert c.post(f"{Q}/{qid}/items/{mine['id']}/release").json()["status"] == "pending"
        # A bad value: 400 in the pinned shape, naming what the config allows.
        e = _error(c.post(f"{Q}/{qid}/items/{a['id']}/annotations",
                          json={"annotator": "alice", "values": {"tone": "meh"}}), 400, "validation_error")
        assert "'rude' (0), 'kind' (1)" in e["message"]
        e = _error(c.post(f"{Q}/{qid}/items/{a['id']}/annotations",
                          json={"annotator": "bob", "values": {"tone": "kind"}}), 409, "conflict")
        r = c.post(f"{Q}/{qid}/items/{a['id']}/annotations",
                   json={"annotator": "alice", "values": {"tone": "kind", "ok": True}, "comment": "polite"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "in_progress" and len(r.json()["score_ids"]) == 2
        scores = c.get("/api/v1/scores", params={"trace_id": a["trace_id"], "source": "human"}).json()["data"]
        assert sorted((s["name"], s["value"]) for s in scores) == [("ok", True), ("tone", "kind")]
        r = c.post(f"{Q}/{qid}/items/{b['id']}/skip", json={"annotator": "bob"})
        assert r.json()["status"] == "skipped"
        p = c.get(f"{Q}/{qid}/progress").json()
        assert (p["total"], p["skipped"], p["in_progress"], p["reviews"]) == (3, 1, 1, 1)
        ag = c.get(f"{Q}/{qid}/agreement").json()["data"]
        assert [x["name"] for x in ag] == ["tone", "ok"] and ag[0]["method"] is None
        e = _error(c.post(f"{Q}/{qid}/to-dataset", json={"dataset": "golden"}), 400, "bad_request")
        assert "no done items" in e["message"]
        r = c.post(f"{Q}/{qid}/to-dataset", json={"dataset": "golden", "only": "reviewed"})
        assert r.status_code == 200 and r.json()["added"] == 1, r.text
        assert c.post(f"{Q}/{qid}/to-dataset", json={"dataset": "golden", "only": "reviewed"}).json()["added"] == 0
        items = c.get("/api/v1/datasets/golden/items").json()["data"]
        assert [i["source_trace_id"] for i in items] == [a["trace_id"]]
        _error(c.get(f"{Q}/nope/progress"), 404, "not_found")
        assert c.delete(f"{Q}/{qid}").status_code == 204
        _error(c.get(f"{Q}/{qid}"), 404, "not_found")

    # Roles: a viewer reads but cannot annotate or change queues.
    k = server.store.projects.create_key(pid, role="viewer")
    from tests.conftest import ProjectKeys

    viewer = ProjectKeys(pid, k.key.public_key, k.secret_key)
    with server.client(viewer) as c:
        assert c.get(Q).status_code == 200
        _error(c.post(Q, json={"name": "v", "score_config_ids": [ok["id"]]}), 403, "forbidden")


def test_agreement_without_statsmodels_names_the_install(store: Any, pid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from podium.errors import ServiceUnavailable
    from podium.monitor import agreement

    cfg = configs(store, pid)
    q = store.annotations.create_queue(pid, name="nolib", score_config_ids=[cfg["correct"]["id"]])
    monkeypatch.setitem(sys.modules, "statsmodels.stats.inter_rater", None)  # import fails as when missing
    assert agreement.available() is False
    with pytest.raises(ServiceUnavailable, match=r"pip install 'podium\[monitor\]'"):
        agreement.for_queue(store, pid, q["id"])
