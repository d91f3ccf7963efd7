"""Regression tests for defects found in review: odd input never loses valid data or breaks reads."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.server.test_api import T0, assert_error, iso, span_item


def post(c: httpx.Client, batch: list[dict[str, Any]]) -> httpx.Response:
    return c.post("/api/v1/ingest", json={"batch": batch})


def test_cost_sort_pages_through_float_sums(server: LiveServer) -> None:
    batch = []
    for i in range(6):
        batch += [span_item(f"tr{i}", "a", kind="generation", cost={"total": 0.1}),
                  span_item(f"tr{i}", "b", parent="a", kind="generation", cost={"total": 0.2})]
    with server.client() as c:
        assert post(c, batch).status_code == 200
        for order in ("asc", "desc"):
            seen, cursor = [], None
            for _ in range(10):
                page = c.get("/api/v1/traces", params={"sort": "total_cost", "order": order, "limit": 2,
                                                       **({"cursor": cursor} if cursor else {})}).json()
                seen += [t["id"] for t in page["data"]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            assert sorted(seen) == [f"tr{i}" for i in range(6)], order


def test_values_the_database_cannot_hold_are_rejected_per_item(server: LiveServer) -> None:
    with server.client() as c:
        r = post(c, [
            span_item("good", "ok"),
            span_item("bad1", "x", usage={"input_tokens": 10**20}),
            span_item("bad2", "x", cost={"total": 1e11}),
            span_item("bad3", "x", prompt_version=2**40),
        ])
        assert r.status_code == 207
        assert [e["index"] for e in r.json()["errors"]] == [1, 2, 3]
        assert c.get("/api/v1/traces/good").status_code == 200
        # NaN / Infinity are not JSON: a clear 400, nothing half-stored.
        raw = b'{"batch": [{"type": "span", "body": {"id": "n", "trace_id": "n", "name": "n", ' \
              b'"start_time": "2026-01-01T00:00:00Z", "cost": {"total": Infinity}}}]}'
        e = assert_error(c.post("/api/v1/ingest", content=raw, headers={"content-type": "application/json"}), 400)
        assert "Infinity" in e["message"]
        assert c.get("/api/v1/traces").status_code == 200
        # NUL characters are stored as U+FFFD on every backend instead of failing on PostgreSQL.
        assert post(c, [span_item("nul", "s", input="a\u0000b", user_id="u\u0000")]).status_code == 200
        assert c.get("/api/v1/traces/nul/spans/s").json()["input"] == "a\ufffdb"
        # Times outside the representable range are a per-item error, not a 500.
        r = post(c, [{"type": "span", "body": {"id": "y", "trace_id": "y", "name": "y",
                                               "start_time": "0001-01-01T00:00:00+01:00"}}, span_item("z", "z")])
        assert r.status_code == 207 and r.json()["errors"][0]["index"] == 0
        assert_error(c.get("/api/v1/traces", params={"from": "0001-01-01T00:00:00+14:00"}), 400)


def test_a_value_only_the_database_refuses_does_not_sink_the_batch(server: LiveServer) -> None:
    # Validation cannot know every database limit; the writer retries item by item.
    from podium.core.records import SpanIn
    from podium.server.convert import BatchBuilder

    original = BatchBuilder.add_span

    def poisoned(self: BatchBuilder, s: SpanIn) -> None:
        original(self, s)
        if s.id == "poison":
            self.batch.spans[-1]["name"] = "x" * 5000  # over VARCHAR(1000) on PostgreSQL; SQLite stores it
            self.batch.spans[-1]["prompt_version"] = 2**40  # integer overflow on PostgreSQL
            self.batch.spans[-1]["input_tokens"] = 10**20  # overflow on SQLite

    BatchBuilder.add_span = poisoned  # type: ignore[method-assign]
    try:
        with server.client() as c:
            r = post(c, [span_item("t", "fine"), span_item("t", "poison", parent="fine")])
            assert r.status_code == 207, r.text
            assert [e["index"] for e in r.json()["errors"]] == [1]
            assert "database refused" in r.json()["errors"][0]["message"]
            assert [s["id"] for s in c.get("/api/v1/traces/t").json()["spans"]] == ["fine"]
    finally:
        BatchBuilder.add_span = original  # type: ignore[method-assign]


def test_partial_writes_never_erase(server: LiveServer) -> None:
    with server.client() as c:
        post(c, [span_item("t", "root", input={"q": "hi"}, output="root-out")])
        post(c, [{"type": "trace", "body": {"id": "t", "output": "final"}}])
        tr = c.get("/api/v1/traces/t").json()
        assert (tr["input"], tr["output"]) == ({"q": "hi"}, "final")
        # A start write with a kind, then an end write without one: the kind stays.
        body = {"id": "g", "trace_id": "k", "name": "llm", "kind": "generation", "start_time": iso(T0)}
        post(c, [{"type": "span", "body": body}])
        post(c, [{"type": "span", "body": {"id": "g", "trace_id": "k", "name": "llm", "start_time": iso(T0),
                                           "end_time": iso(T0), "status": "ok"}}])
        assert c.get("/api/v1/traces/k/spans/g").json()["kind"] == "generation"
        # End then start in one batch: "unset" does not win.
        r = post(c, [span_item("u", "s", status="ok"),
                     {"type": "span", "body": {"id": "s", "trace_id": "u", "name": "s", "start_time": iso(T0)}}])
        assert r.status_code == 200
        assert c.get("/api/v1/traces/u/spans/s").json()["status"] == "ok"
        # Real usage replaces an estimate.
        post(c, [span_item("e", "g", kind="generation", model="gpt-4o", input="hello", output="hi")])
        post(c, [span_item("e", "g", kind="generation", model="gpt-4o", usage={"input_tokens": 1000})])
        s = c.get("/api/v1/traces/e/spans/g").json()
        assert s["usage_estimated"] is False and s["input_tokens"] == 1000
        # Two scores with one id in one batch: the last one wins whole.
        post(c, [{"type": "score", "body": {"id": "sc", "name": "a", "value": 1, "trace_id": "t", "comment": "x"}},
                 {"type": "score", "body": {"id": "sc", "name": "b", "value": 2, "trace_id": "t"}}])
        sc = c.get("/api/v1/scores").json()["data"]
        assert [(x["name"], x["value"], x["comment"]) for x in sc] == [("b", 2, None)]


def test_malformed_cursors_and_odd_queries_are_400(server: LiveServer) -> None:
    def cur(vals: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(vals).encode()).decode().rstrip("=")

    with server.client() as c:
        post(c, [span_item("t", "a", session_id="s", user_id="u")])
        for bad in ([{"t": "nope"}, "x"], [{"a": 1}, "x"], [{"d": "zz"}, "x"], ["abc", "x"], [1, 2, 3]):
            assert_error(c.get("/api/v1/traces", params={"cursor": cur(bad)}), 400)
        assert_error(c.get("/api/v1/traces", params={"cursor": cur([10**30, "x"]), "sort": "span_count"}), 400)
        assert_error(c.get("/api/v1/sessions", params={"cursor": cur([1, 2, 3])}), 400)
        assert_error(c.get("/api/v1/traces", params=[("tag", f"t{i}") for i in range(60)]), 400)
        deep = b'{"batch": [{"type": "span", "body": {"input": ' + b"[" * 5000 + b"]" * 5000 + b"}}]}"
        assert_error(c.post("/api/v1/ingest", content=deep, headers={"content-type": "application/json"}), 400)


def test_multi_member_gzip(server: LiveServer) -> None:
    raw = json.dumps({"batch": [span_item("gz", "a")]}).encode()
    body = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=body, headers={"content-type": "application/json",
                                                             "content-encoding": "gzip"})
        assert r.status_code == 200, r.text


@pytest.mark.integration
def test_multiprocessing_children_deliver_their_spans(server: LiveServer) -> None:
    import multiprocessing as mp

    import podium

    podium.configure(base_url=server.url, public_key=server.keys.public_key,
                     secret_key=server.keys.secret_key, flush_interval=0.05)
    try:
        with podium.span("parent"):
            pass
        podium.flush()
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=_child_work, args=(i,)) for i in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    finally:
        podium.shutdown()
    with server.client() as c:
        names = sorted(t["name"] for t in c.get("/api/v1/traces").json()["data"])
    assert names == ["child-0", "child-1", "parent"]


def _child_work(i: int) -> None:
    import podium

    with podium.span(f"child-{i}"):
        pass


def test_items_of_the_wrong_json_types_are_per_item_400s(server: LiveServer) -> None:
    """Lists and objects where ids, types and names go (a fuzzer found `"type": ["span"]` crashing the
    batch with a 500): each such item is refused with the item shape, the valid one beside them stored."""
    batch: list[dict[str, Any]] = [
        {"type": ["span"], "body": {}},
        {"type": {"span": 1}, "body": {"id": "x"}},
        {"type": "score", "body": {"name": "x", "trace_id": ["t"], "value": 1}},
        {"type": "score", "body": {"id": ["a"], "name": "x", "trace_id": "t", "value": 1}},
        {"type": "span", "body": {"id": ["a"], "trace_id": "t", "name": "x"}},
        {"type": "trace", "body": {"id": "a", "tags": [[1], {"a": 1}]}},
        span_item("ok-trace", "ok-span"),
    ]
    with server.client() as c:
        r = post(c, batch)
        assert r.status_code == 207, r.text
        body = r.json()
        assert [e["index"] for e in body["errors"]] == [0, 1, 2, 3, 4, 5]
        assert all(e["status"] == 400 and e["message"] for e in body["errors"])
        assert body["errors"][0]["message"].startswith('each item is {"type": "span"|"trace"|"score"')
        assert body["successes"] == [{"index": 6, "id": "ok-span"}]
