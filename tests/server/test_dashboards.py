"""Metric queries and dashboards over the API: query by POST and GET, the catalog, dashboards
CRUD and copies of the defaults, errors in the pinned shape, role checks. A real server on each
database (run with --db all)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from podium.store.repos.ingest import IngestBatch
from tests.conftest import LiveServer, ProjectKeys
from tests.store.test_metrics import END, T0, seed

Q = "/api/v1/metrics/query"
D = "/api/v1/dashboards"


def _key(server: LiveServer, role: str) -> ProjectKeys:
    k = server.store.projects.create_key(server.keys.project_id, role=role)
    return ProjectKeys(server.keys.project_id, k.key.public_key, k.secret_key)


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def test_metric_query(server: LiveServer) -> None:
    seed(server.store, server.keys.project_id)
    rng = {"start": T0.isoformat(), "end": END.isoformat()}
    with server.client() as c:
        r = c.post(Q, json={"metric": "traces", "agg": "count", "interval": 3600, **rng})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["buckets"] == [int(T0.timestamp()), int(T0.timestamp()) + 3600]
        assert body["series"] == [{"key": "all", "values": [3, 2], "total": 5, "n": 5}]
        assert body["metric"] == "traces" and body["interval"] == 3600
        r = c.get(Q, params={"metric": "cost", "agg": "sum", "dimension": "model", "interval": 3600,
                             "filters": '{"environment": "prod"}', **rng})
        assert r.status_code == 200, r.text
        got = {s["key"]: round(s["total"], 6) for s in r.json()["series"]}
        assert got == {"gpt-a": 0.08, "gpt-b": 0.1}  # t3 (dev) left out
        # The interval is picked from the range when not given: 2 h -> 60 s buckets.
        r = c.post(Q, json={"metric": "latency", "agg": "p95", **rng})
        assert r.json()["interval"] == 60 and len(r.json()["buckets"]) == 120
        cat = c.get("/api/v1/metrics/catalog").json()
        assert "latency" in [m["metric"] for m in cat["metrics"]] and "model" in cat["dimensions"]

        # Errors name the valid values, in the pinned shape.
        e = _error(c.post(Q, json={"metric": "nope", **rng}), 400, "bad_request")
        assert "valid metrics: traces" in e["message"]
        e = _error(c.post(Q, json={"metric": "traces", "agg": "p95", **rng}), 400)
        assert "takes agg count, sum" in e["message"]
        e = _error(c.post(Q, json={"metric": "traces", "agg": "count", "dimension": "colour", **rng}), 400)
        assert "valid dimensions" in e["message"]
        e = _error(c.post(Q, json={"metric": "traces", "agg": "count", "filters": {"colour": "x"}, **rng}), 400)
        assert "valid filters" in e["message"]
        _error(c.get(Q, params={"metric": "traces", "agg": "count", "filters": "[1"}), 400)
        _error(c.post(Q, json={"metric": "traces", "agg": "count", "start": END.isoformat(),
                               "end": T0.isoformat()}), 400)
        e = _error(c.post(Q, json={"metric": "traces", "agg": "count", "interval": 1, **rng}), 400)
        _error(c.post(Q, json={"metric": "traces", "extra": 1}), 400, "validation_error")
        _error(c.post(Q, json={"metric": "traces", "agg": "count", "start": "0001-01-01T00:00:00Z"}), 400)


def test_dashboards_crud_and_defaults(server: LiveServer) -> None:
    pid = server.keys.project_id
    seed(server.store, pid)
    server.store.ingest.write(IngestBatch(scores=[{
        "project_id": pid, "id": "recent", "trace_id": "t1", "span_id": None, "session_id": None,
        "name": "quality", "data_type": "numeric", "value": 0.5, "string_value": None, "source": "api",
        "comment": None, "metadata": None, "timestamp": datetime.now(UTC)}]))
    with server.client() as c:
        listed = c.get(D).json()
        names = [d["name"] for d in listed["defaults"]]
        assert names == ["Latency", "Cost", "Tokens", "Errors", "Scores", "Guardrails", "Users"]
        assert listed["data"] == []
        # Every default dashboard's every chart runs.
        for d in listed["defaults"]:
            r = c.get(f"{D}/{d['id']}/data", params={"start": T0.isoformat(), "end": END.isoformat()})
            assert r.status_code == 200, (d["id"], r.text)
            assert len(r.json()["charts"]) == d["chart_count"]
        # The Scores dashboard has a chart per score name the project uses.
        scores = c.get(f"{D}/default-scores").json()
        assert "quality: average by prompt version" in [ch["title"] for ch in scores["charts"]]
        lat = c.get(f"{D}/default-latency/data", params={"start": T0.isoformat(), "end": END.isoformat(),
                                                          "interval": 3600}).json()
        p95_model = next(ch for ch in lat["charts"] if ch["title"] == "p95 by model")
        assert {s["key"]: s["total"] for s in p95_model["series"]} == {"gpt-a": 300.0, "gpt-b": 400.0}

        # Copy a default, then edit the copy.
        r = c.post(D, json={"name": "My latency", "copy_from": "default-latency"})
        assert r.status_code == 201, r.text
        mine = r.json()
        assert mine["default"] is False and len(mine["charts"]) == len(lat["charts"])
        charts = [*mine["charts"][:1], {"title": "Errors by user", "metric": "errors", "agg": "count",
                                        "dimension": "user_id", "chart_type": "bar", "top": 3}]
        r = c.patch(f"{D}/{mine['id']}", json={"name": "Mine", "charts": charts})
        assert r.status_code == 200, r.text
        assert [ch["title"] for ch in r.json()["charts"]] == ["p95 trace latency", "Errors by user"]
        assert c.get(f"{D}/{mine['id']}").json()["name"] == "Mine"
        assert [d["name"] for d in c.get(D).json()["data"]] == ["Mine"]
        _error(c.post(D, json={"name": "Mine"}), 409, "conflict")
        e = _error(c.post(D, json={"name": "Bad", "charts": [{"metric": "latency", "agg": "rate"}]}), 400)
        assert e["message"].startswith("chart 1:")
        e = _error(c.patch(f"{D}/default-latency", json={"name": "x"}), 400)
        assert "copy_from" in e["message"]
        _error(c.get(f"{D}/nope"), 404, "not_found")
        _error(c.get(f"{D}/default-nope"), 404, "not_found")
        _error(c.post(D, json={"name": "X", "copy_from": "nope"}), 404)
        assert c.delete(f"{D}/{mine['id']}").status_code == 204
        _error(c.delete(f"{D}/{mine['id']}"), 404)


def test_roles(server: LiveServer) -> None:
    viewer, ingest, member = _key(server, "viewer"), _key(server, "ingest"), _key(server, "member")
    with server.client(viewer) as c:
        assert c.get(D).status_code == 200
        assert c.post(Q, json={"metric": "traces", "agg": "count"}).status_code == 200
        _error(c.post(D, json={"name": "v"}), 403, "forbidden")
    with server.client(ingest) as c:
        _error(c.get(D), 403)
        _error(c.post(Q, json={"metric": "traces", "agg": "count"}), 403)
    with server.client(member) as c:
        r = c.post(D, json={"name": "m", "charts": [{"metric": "traces", "agg": "count", "chart_type": "number"}]})
        assert r.status_code == 201, r.text
        assert c.delete(f"{D}/{r.json()['id']}").status_code == 204
    with httpx.Client(base_url=server.url) as anon:
        _error(anon.get(D), 401)


def test_hostile_queries_get_4xx_never_500(server: LiveServer) -> None:
    seed(server.store, server.keys.project_id)
    bodies: list[dict[str, Any]] = [
        {"metric": "traces", "agg": "count", "filters": {"tags": [""]}},
        {"metric": "traces", "agg": "count", "filters": {"tags": ["x"] * 21}},
        {"metric": "traces", "agg": "count", "filters": {"min_cost": 1e299, "max_latency_ms": -1e299}},
        {"metric": "traces", "agg": "count", "filters": {"name": "x\u0000y"}},
        {"metric": "traces", "agg": "count", "filters": {"q": "%_\\'\""}},
        {"metric": "score:" + "x" * 257},
        {"metric": "guardrail:'; DROP TABLE trace; --", "agg": "rate", "dimension": "rule"},
        {"metric": "score:\"$.a\"", "agg": "p99", "dimension": "score"},
        {"metric": "latency", "agg": "p50", "start": "1970-01-02T00:00:00Z", "end": "2499-12-31T00:00:00Z"},
        {"metric": "latency", "agg": "p50", "interval": 2592000, "range_s": 34560000},
        {"metric": "latency", "agg": "p50", "start": "2026-01-01T00:00:00", "end": "2026-01-01T00:00:01"},
        {"metric": "traces", "agg": "count", "dimension": "tag", "top": 50},
    ]
    with server.client() as c:
        for body in bodies:
            r = c.post(Q, json=body)
            assert r.status_code < 500, (body, r.text)
            if r.status_code >= 400:
                _error(r, r.status_code)
        # The quoted guardrail name is just a name: no rows, no error.
        r = c.post(Q, json={"metric": "guardrail:'; DROP TABLE trace; --", "agg": "rate", "start": T0.isoformat(),
                            "end": END.isoformat()})
        assert r.status_code == 200 and r.json()["series"] == []
        assert c.post(Q, json={"metric": "traces", "agg": "count", "start": T0.isoformat(),
                               "end": END.isoformat()}).json()["series"][0]["total"] == 5
