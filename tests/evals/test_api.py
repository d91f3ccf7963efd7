"""The experiments REST API: recording, validation, summaries, labels, comparisons (SQLite and
PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_project


def result(item_id: str, value: float, *, rep: int = 0, trace: str | None = None, passed: bool | None = None,
           error: str | None = None) -> dict[str, Any]:
    scores = {"acc": {"value": value, "passed": passed, "type": "python", "direction": "higher", "weight": 1.0}}
    if error:
        scores = {"acc": {"value": None, "error": error, "error_type": "missing_field"}}
    return {"item_id": item_id, "repetition": rep, "position": int(item_id[1:]), "input": {"q": item_id},
            "output": "x", "scores": scores, "passed": passed, "weighted_score": value if not error else None,
            "trace_id": trace, "latency_ms": 10.0, "error": f"scorer 'acc': {error}" if error else None,
            "error_type": "missing_field" if error else None}


def record(c: httpx.Client, name: str, values: list[float], **extra: Any) -> str:
    r = c.post("/api/v1/experiments", json={"name": name, "scorers": [{"name": "acc", "direction": "higher"}],
                                            **extra})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    rows = [result(f"i{k}", v, passed=v >= 0.5) for k, v in enumerate(values)]
    assert c.post(f"/api/v1/experiments/{eid}/items", json={"items": rows}).status_code == 200
    done = c.post(f"/api/v1/experiments/{eid}/finish", json={}).json()
    assert done["status"] == "completed"
    return eid


def test_record_summarise_and_compare(server: LiveServer) -> None:
    with server.client() as c:
        base = record(c, "qa", [1.0] * 30, labels=["main"])
        worse = record(c, "qa", [1.0] * 10 + [0.0] * 20)
        same = record(c, "qa", [1.0] * 29 + [0.0])
        exp = c.get(f"/api/v1/experiments/{worse}").json()
        s = exp["summary"]["scorers"]["acc"]
        assert s["mean"] == pytest.approx(1 / 3) and s["low"] < 1 / 3 < s["high"] and s["n"] == 30
        assert exp["summary"]["pass_rate"]["mean"] == pytest.approx(1 / 3)
        r = c.get("/api/v1/experiments/compare", params=[("baseline", base), ("candidate", worse),
                                                          ("candidate", same)])
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["baseline"]["id"] == base and [x["experiment"]["id"] for x in data["candidates"]] == [worse, same]
        acc = data["candidates"][0]["metrics"]["acc"]
        assert acc["regressed"] is True and acc["diff"] == pytest.approx(-2 / 3) and acc["high"] < 0
        assert acc["items"] == {"improved": 0, "regressed": 20, "unchanged": 10, "missing": 0}
        assert len(acc["regressed_items"]) == 20 and acc["regressed_items"][0] == {"item_id": "i10", "delta": -1.0}
        one_off = data["candidates"][1]["metrics"]["acc"]
        assert one_off["regressed"] is False and one_off["items"]["regressed"] == 1   # one item: not significant
        only = c.get("/api/v1/experiments/compare", params={"baseline": base, "candidate": worse,
                                                            "metrics": "pass_rate", "tolerance": 0.9}).json()
        assert list(only["candidates"][0]["metrics"]) == ["pass_rate"]
        assert only["candidates"][0]["metrics"]["pass_rate"]["regressed"] is False   # within the tolerance
        # labels: the newest completed run with a label is the baseline
        latest = c.get("/api/v1/experiments", params={"label": "main", "status": "completed", "limit": 1}).json()
        assert latest["data"][0]["id"] == base
        r = c.patch(f"/api/v1/experiments/{same}", json={"add_labels": ["main", "v2"]})
        assert r.json()["labels"] == ["main", "v2"]
        assert c.get("/api/v1/experiments", params={"label": "main", "limit": 1}).json()["data"][0]["id"] == same
        assert c.patch(f"/api/v1/experiments/{same}", json={"remove_labels": ["v2"]}).json()["labels"] == ["main"]
        page = c.get("/api/v1/experiments", params={"name": "qa", "limit": 2}).json()
        assert len(page["data"]) == 2 and page["next_cursor"]
        rest = c.get("/api/v1/experiments", params={"name": "qa", "limit": 2, "cursor": page["next_cursor"]}).json()
        assert [e["id"] for e in rest["data"]] == [base]


def test_items_are_idempotent_and_resumable(server: LiveServer) -> None:
    with server.client() as c:
        eid = c.post("/api/v1/experiments", json={"name": "x"}).json()["id"]
        rows = [result("i0", 1.0, trace="t0"), result("i1", 0.0, trace="t1"),
                result("i2", 0.0, error="needs `expected`")]
        for _ in range(2):   # a retried batch replaces, never duplicates
            assert c.post(f"/api/v1/experiments/{eid}/items", json={"items": rows}).json() == {
                "item_count": 3, "error_count": 1}
        rows[1]["error_type"] = "task_error"
        c.post(f"/api/v1/experiments/{eid}/items", json={"items": [rows[1]]})
        assert c.get(f"/api/v1/experiments/{eid}/done").json()["data"] == [["i0", 0], ["i1", 0], ["i2", 0]]
        keys = c.get(f"/api/v1/experiments/{eid}/done", params={"retry": "task_error,timeout"}).json()["data"]
        assert keys == [["i0", 0], ["i2", 0]]
        items = c.get(f"/api/v1/experiments/{eid}/items", params={"errored": "true"}).json()["data"]
        assert [i["item_id"] for i in items] == ["i2"] and items[0]["scores"]["acc"]["error_type"] == "missing_field"
        # scores with a trace are in the score table, with the experiment in their metadata
        scores = c.get("/api/v1/scores", params={"trace_id": "t0"}).json()["data"]
        assert len(scores) == 1 and scores[0]["source"] == "eval" and scores[0]["name"] == "acc"
        assert scores[0]["metadata"]["experiment_id"] == eid and scores[0]["value"] == 1.0
        assert c.get("/api/v1/scores", params={"source": "eval"}).json()["data"].__len__() == 2
        assert c.delete(f"/api/v1/experiments/{eid}").status_code == 204
        assert c.get(f"/api/v1/experiments/{eid}").status_code == 404


def test_bad_experiment_input(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/experiments", json={"name": "x", "dataset_name": "nope"})
        assert r.status_code == 404 and "no dataset 'nope'" in r.json()["error"]["message"]
        r = c.post("/api/v1/experiments", json={"name": "x", "colour": 1})
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "colour"
        eid = c.post("/api/v1/experiments", json={"name": "x", "id": "mine-1"}).json()["id"]
        assert eid == "mine-1"
        assert c.post("/api/v1/experiments", json={"name": "x", "id": "mine-1"}).status_code == 409
        bad = result("i0", 1.0)
        bad["trace_id"] = "bad id!"
        r = c.post(f"/api/v1/experiments/{eid}/items", json={"items": [bad]})
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "items[0].trace_id"
        r = c.post(f"/api/v1/experiments/{eid}/items", content=b'{"items": [{"item_id": "a", "latency_ms": NaN}]}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 400 and "NaN" in r.json()["error"]["message"]
        r = c.post(f"/api/v1/experiments/{eid}/finish", json={"status": "running"})
        assert r.status_code == 400
        r = c.get("/api/v1/experiments/compare", params={"baseline": eid, "candidate": "missing"})
        assert r.status_code == 404
        r = c.post("/api/v1/experiments/missing/items", json={"items": []})
        assert r.status_code == 404


def test_experiments_are_scoped_by_project(server: LiveServer) -> None:
    other = make_project(server.store, "other")
    with server.client() as c:
        eid = record(c, "qa", [1.0, 0.0])
    with server.client(other) as c:
        assert c.get(f"/api/v1/experiments/{eid}").status_code == 404
        assert c.get("/api/v1/experiments").json()["data"] == []
    viewer = server.store.projects.create_key(server.keys.project_id, role="viewer")
    with httpx.Client(base_url=server.url, auth=(viewer.key.public_key, viewer.secret_key)) as c:
        assert c.get(f"/api/v1/experiments/{eid}").status_code == 200
        assert c.post("/api/v1/experiments", json={"name": "x"}).status_code == 403


def test_openapi_lists_the_eval_endpoints(server: LiveServer) -> None:
    with server.client() as c:
        paths = c.get("/api/v1/openapi.json").json()["paths"]
    for p in ("/api/v1/datasets", "/api/v1/datasets/{name}/items", "/api/v1/datasets/{name}/from-traces",
              "/api/v1/experiments", "/api/v1/experiments/compare", "/api/v1/experiments/{experiment_id}/finish"):
        assert p in paths, p
