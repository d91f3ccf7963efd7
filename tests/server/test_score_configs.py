"""Score configs: CRUD over the API, validation of scores against them at ingestion (POST
/api/v1/scores, the batch ingest, feedback, Langfuse ingestion), archiving, cache invalidation and
role checks. A real server on each database."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.conftest import LiveServer, ProjectKeys

CFG = "/api/v1/score-configs"


def _key(server: LiveServer, role: str) -> ProjectKeys:
    k = server.store.projects.create_key(server.keys.project_id, role=role)
    return ProjectKeys(server.keys.project_id, k.key.public_key, k.secret_key)


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def _scores(server: LiveServer, trace_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    with server.client() as c:
        while True:
            data = c.get("/api/v1/scores", params={"trace_id": trace_id}).json()["data"]
            if len(data) >= n or time.monotonic() > deadline:
                return sorted(data, key=lambda s: s["name"])
            time.sleep(0.05)


def _configs(c: httpx.Client) -> dict[str, dict[str, Any]]:
    out = {}
    for body in (
        {"name": "accuracy", "data_type": "numeric", "min_value": 0, "max_value": 1, "description": "share right"},
        {"name": "helpful", "data_type": "boolean"},
        {"name": "tone", "data_type": "categorical",
         "categories": [{"label": "rude", "value": 0}, {"label": "neutral", "value": 1}, {"label": "kind", "value": 2}]},
    ):
        r = c.post(CFG, json=body)
        assert r.status_code == 201, r.text
        out[body["name"]] = r.json()
    return out


def test_crud_and_config_errors(server: LiveServer) -> None:
    with server.client() as c:
        made = _configs(c)
        acc = made["accuracy"]
        assert acc["data_type"] == "numeric" and acc["min_value"] == 0 and acc["max_value"] == 1
        assert acc["archived"] is False and acc["description"] == "share right"
        assert [x["name"] for x in c.get(CFG).json()["data"]] == ["accuracy", "helpful", "tone"]
        got = c.get(f"{CFG}/{made['tone']['id']}").json()
        assert got["categories"] == [{"label": "rude", "value": 0}, {"label": "neutral", "value": 1},
                                     {"label": "kind", "value": 2}]
        r = c.patch(f"{CFG}/{acc['id']}", json={"max_value": 10, "description": "out of ten"})
        assert r.status_code == 200 and r.json()["max_value"] == 10 and r.json()["min_value"] == 0
        r = c.patch(f"{CFG}/{made['helpful']['id']}", json={"archived": True})
        assert r.json()["archived"] is True
        assert [x["name"] for x in c.get(CFG, params={"include_archived": "false"}).json()["data"]] == [
            "accuracy", "tone"]
        # The pinned error shape, with a fix in each message.
        e = _error(c.post(CFG, json={"name": "accuracy", "data_type": "boolean"}), 409, "conflict")
        assert "already exists" in e["message"]
        e = _error(c.post(CFG, json={"name": "x", "data_type": "numeric", "min_value": 5, "max_value": 1}),
                   400, "validation_error")
        assert "swap" in e["message"]
        e = _error(c.post(CFG, json={"name": "y", "data_type": "categorical"}), 400, "validation_error")
        assert "needs categories" in e["message"]
        e = _error(c.post(CFG, json={"name": "z", "data_type": "categorical",
                                     "categories": [{"label": "a", "value": 1}, {"label": "a", "value": 2}]}),
                   400, "validation_error")
        assert "unique" in e["message"]
        e = _error(c.post(CFG, json={"name": "w", "data_type": "boolean", "min_value": 0}), 400, "validation_error")
        assert "numeric configs" in e["message"]
        r = c.post(CFG, json={"name": "v", "data_type": "text"})
        assert r.status_code in (400, 422) and set(r.json()) == {"error"}
        _error(c.get(f"{CFG}/nope"), 404, "not_found")
        _error(c.patch(f"{CFG}/nope", json={"archived": True}), 404, "not_found")
        _error(c.patch(f"{CFG}/{acc['id']}", json={"name": "tone"}), 409, "conflict")


def test_post_scores_validated_against_configs(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        made = _configs(c)

        def post(name: str, value: Any, **kw: Any) -> httpx.Response:
            return c.post("/api/v1/scores", json={"name": name, "value": value, "trace_id": tid, **kw})

        e = _error(post("accuracy", 1.5), 400, "validation_error")
        assert "'accuracy'" in e["message"] and "[0, 1]" in e["message"], e
        e = _error(post("accuracy", "high"), 400, "validation_error")
        assert "numeric" in e["message"]
        e = _error(post("helpful", 0.5), 400, "validation_error")
        assert "'helpful'" in e["message"] and "true or false" in e["message"]
        e = _error(post("tone", "angry"), 400, "validation_error")
        assert "'rude' (0)" in e["message"] and "'kind' (2)" in e["message"], e
        e = _error(post("tone", 7), 400, "validation_error")
        assert "not a category" in e["message"]
        e = _error(post("other", 1, config_id="no-such-config"), 400, "validation_error")
        assert "does not exist" in e["message"]
        e = _error(post("other", 1, config_id=made["accuracy"]["id"]), 400, "validation_error")
        assert "send name 'accuracy'" in e["message"]
        assert post("accuracy", 0.75, id="s-acc").status_code == 201
        assert post("helpful", True, id="s-help").status_code == 201
        assert post("tone", "kind", id="s-tone").status_code == 201
        assert post("unconfigured", 42.0, id="s-free").status_code == 201  # no config: anything goes
    got = {s["name"]: s for s in _scores(server, tid, 4)}
    assert len(got) == 4
    assert got["accuracy"]["value"] == 0.75 and got["accuracy"]["data_type"] == "numeric"
    assert got["helpful"]["value"] is True and got["helpful"]["data_type"] == "boolean"
    assert got["tone"]["value"] == "kind" and got["tone"]["data_type"] == "categorical"
    assert got["unconfigured"]["value"] == 42.0
    # A categorical score under a config keeps its label and the category's number.
    from sqlalchemy import select

    from podium.store import tables as t

    with server.store.engine.connect() as conn:
        row = conn.execute(select(t.score.c.value, t.score.c.string_value).where(
            t.score.c.project_id == server.keys.project_id, t.score.c.id == "s-tone")).one()
    assert (row.value, row.string_value) == (2.0, "kind")


def test_category_by_number_and_config_id(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        made = _configs(c)
        r = c.post("/api/v1/scores", json={"name": "tone", "value": 1, "trace_id": tid,
                                           "config_id": made["tone"]["id"]})
        assert r.status_code == 201, r.text
    (s,) = _scores(server, tid, 1)
    assert s["value"] == "neutral" and s["data_type"] == "categorical"


def test_batch_ingest_stores_valid_items_and_reports_invalid_ones(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        _configs(c)
        batch = [
            {"type": "score", "body": {"id": "b0", "name": "accuracy", "value": 0.5, "trace_id": tid}},
            {"type": "score", "body": {"id": "b1", "name": "accuracy", "value": -1, "trace_id": tid}},
            {"type": "score", "body": {"id": "b2", "name": "helpful", "value": False, "trace_id": tid}},
            {"type": "score", "body": {"id": "b3", "name": "helpful", "value": "maybe", "trace_id": tid}},
            {"type": "score", "body": {"id": "b4", "name": "tone", "value": "rude", "trace_id": tid}},
            {"type": "score", "body": {"id": "b5", "name": "tone", "value": "sarcastic", "trace_id": tid}},
            {"type": "trace", "body": {"id": tid, "name": "t"}},
        ]
        r = c.post("/api/v1/ingest", json={"batch": batch})
        assert r.status_code == 207, r.text
        body = r.json()
        assert [s["index"] for s in body["successes"]] == [0, 2, 4, 6]
        errs = {e["index"]: e for e in body["errors"]}
        assert sorted(errs) == [1, 3, 5]
        assert all(e["status"] == 400 for e in errs.values())
        assert errs[1]["id"] == "b1" and "outside score config 'accuracy'" in errs[1]["message"]
        assert "'helpful' is boolean" in errs[3]["message"]
        assert "'sarcastic' is not a category of score config 'tone'" in errs[5]["message"]
    assert sorted(s["id"] for s in _scores(server, tid, 3)) == ["b0", "b2", "b4"]


def test_feedback_and_langfuse_ingestion_are_validated(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        made = _configs(c)
        r = c.post("/api/public/ingestion", json={"batch": [
            {"id": "e1", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
             "body": {"id": "l1", "name": "accuracy", "value": 3, "traceId": tid}},
            {"id": "e2", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
             "body": {"id": "l2", "name": "x", "value": "neutral", "traceId": tid, "configId": made["tone"]["id"],
                      "dataType": "CATEGORICAL"}},
            {"id": "e3", "type": "score-create", "timestamp": "2026-01-01T00:00:00Z",
             "body": {"id": "l3", "name": "tone", "value": "neutral", "traceId": tid,
                      "configId": made["tone"]["id"], "dataType": "CATEGORICAL"}},
        ]})
        assert r.status_code == 207, r.text
        assert [s["id"] for s in r.json()["successes"]] == ["e3"]
        assert {e["id"] for e in r.json()["errors"]} == {"e1", "e2"}
        c.post(CFG, json={"name": "thumbs", "data_type": "numeric", "min_value": 0, "max_value": 1})
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        hdr = {"x-podium-public-key": server.keys.public_key}
        r = anon.post("/api/v1/feedback", headers=hdr, json={"trace_id": tid, "name": "thumbs", "value": 5})
        e = _error(r, 400, "validation_error")
        assert "score config 'thumbs'" in e["message"]
        r = anon.post("/api/v1/feedback", headers=hdr, json={"trace_id": tid, "name": "thumbs", "value": 1})
        assert r.status_code == 202, r.text
    assert {s["name"] for s in _scores(server, tid, 2)} == {"tone", "thumbs"}


def test_archive_and_changes_take_effect_at_once(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        made = _configs(c)

        def post(value: Any) -> int:
            r = c.post("/api/v1/scores", json={"name": "accuracy", "value": value, "trace_id": tid})
            return r.status_code

        assert post(5) == 400  # the config is now cached
        c.patch(f"{CFG}/{made['accuracy']['id']}", json={"max_value": 10})
        assert post(5) == 201  # the widened range applies to the very next score
        assert post(11) == 400
        c.patch(f"{CFG}/{made['accuracy']['id']}", json={"archived": True})
        assert post(11) == 201  # archived: the name no longer validates
        r = c.post("/api/v1/scores", json={"name": "accuracy", "value": 11, "trace_id": tid,
                                           "config_id": made["accuracy"]["id"]})
        assert "archived" in _error(r, 400, "validation_error")["message"]
        c.patch(f"{CFG}/{made['accuracy']['id']}", json={"archived": False})
        assert post(11) == 400
        c.post(CFG, json={"name": "fresh", "data_type": "boolean"})
        r = c.post("/api/v1/scores", json={"name": "fresh", "value": 3, "trace_id": tid})
        assert r.status_code == 400  # a new config applies at once too


def test_roles(server: LiveServer) -> None:
    with server.client() as c:
        made = _configs(c)
    cid = made["accuracy"]["id"]
    for role in ("member", "ingest", "viewer", "gateway"):
        with server.client(_key(server, role)) as c:
            _error(c.post(CFG, json={"name": f"n-{role}", "data_type": "boolean"}), 403, "forbidden")
            _error(c.patch(f"{CFG}/{cid}", json={"archived": True}), 403, "forbidden")
            r = c.get(CFG)
            if role in ("member", "viewer"):
                assert r.status_code == 200 and len(r.json()["data"]) == 3
                assert c.get(f"{CFG}/{cid}").status_code == 200
            else:
                _error(r, 403, "forbidden")
    with server.client() as c:
        assert c.get(f"{CFG}/{cid}").json()["archived"] is False


def test_configs_are_per_project(server: LiveServer) -> None:
    from tests.conftest import make_project

    other = make_project(server.store, "other-project")
    with server.client() as c:
        made = _configs(c)
    with server.client(other) as c:
        assert c.get(CFG).json()["data"] == []
        _error(c.get(f"{CFG}/{made['accuracy']['id']}"), 404, "not_found")
        r = c.post("/api/v1/scores", json={"name": "accuracy", "value": 7, "trace_id": "t1"})
        assert r.status_code == 201


def test_langfuse_score_configs(server: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with server.client() as c:
        r = c.post("/api/public/score-configs", json={
            "name": "quality", "dataType": "CATEGORICAL",
            "categories": [{"label": "bad", "value": 0}, {"label": "good", "value": 1}]})
        assert r.status_code == 200, r.text
        cfg = r.json()
        assert cfg["dataType"] == "CATEGORICAL" and cfg["isArchived"] is False
        assert c.get(f"/api/public/score-configs/{cfg['id']}").json()["name"] == "quality"
        listed = c.get("/api/public/score-configs").json()
        assert [x["id"] for x in listed["data"]] == [cfg["id"]] and listed["meta"]["totalItems"] == 1
        r = c.post("/api/public/score-configs", json={"name": "n", "dataType": "TEXT"})
        assert r.status_code == 400 and "dataType" in r.json()["message"]
        # The new config applies at once to Langfuse score writes.
        r = c.post("/api/public/scores", json={"name": "quality", "value": "meh", "traceId": tid,
                                               "dataType": "CATEGORICAL"})
        assert r.status_code == 400 and "'quality'" in r.json()["message"], r.text
        r = c.post("/api/public/scores", json={"name": "quality", "value": "good", "traceId": tid,
                                               "dataType": "CATEGORICAL", "configId": cfg["id"]})
        assert r.status_code == 200, r.text
    with server.client(_key(server, "member")) as c:
        r = c.post("/api/public/score-configs", json={"name": "m", "dataType": "BOOLEAN"})
        assert r.status_code == 403
    (s,) = _scores(server, tid, 1)
    assert s["value"] == "good"
