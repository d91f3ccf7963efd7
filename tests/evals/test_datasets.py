"""Datasets: file parsing, immutable versions in the store (SQLite and PostgreSQL), the REST API,
the SDK, and datasets made from production traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import podium
from podium.core.datasets import (
    Dataset,
    DatasetItem,
    content_hash,
    items_from_records,
    parse_dataset_file,
    parse_dataset_text,
)
from podium.errors import Conflict, NotFound, ValidationFailed
from tests.conftest import LiveServer, make_project

# --- parsing (pure) --------------------------------------------------------------------------------


def test_jsonl_items_get_stable_ids_from_their_content(tmp_path: Path) -> None:
    p = tmp_path / "qa.jsonl"
    p.write_text('{"input": {"q": "2+2"}, "expected": "4"}\n\n{"input": "hi", "expected_output": "hello", '
                 '"split": "test", "labels": {"factuality": 4}}\n{"id": "mine", "input": "x"}\n'
                 '{"input": {"q": "2+2"}, "expected": "4"}\n')
    items = parse_dataset_file(p)
    assert [i.expected for i in items] == ["4", "hello", None, "4"]
    assert items[1].split == "test" and items[1].labels == {"factuality": 4}
    assert items[2].id == "mine"
    assert items[0].id.startswith("i-") and items[3].id == items[0].id + "-2"   # a repeat
    assert [i.id for i in parse_dataset_file(p)] == [i.id for i in items]      # stable across parses


def test_csv_columns_become_input_variables(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("country,capital,expected,labels.quality,metadata\n"
                 'France,Paris,Paris,5,"{""source"": ""atlas""}"\nJapan,Tokyo,Tokyo,,\n')
    items = parse_dataset_file(p)
    assert items[0].input == {"country": "France", "capital": "Paris"}
    assert items[0].expected == "Paris" and items[0].labels == {"quality": 5}
    assert items[0].metadata == {"source": "atlas"}
    assert items[1].labels == {} and items[1].metadata == {}


def test_json_files_and_their_errors_name_the_line(tmp_path: Path) -> None:
    assert len(parse_dataset_text('{"items": [{"input": 1}, {"input": 2}]}', format="json")) == 2
    with pytest.raises(ValidationFailed, match=r"data\.jsonl line 2: not valid JSON"):
        parse_dataset_text('{"input": 1}\n{"input": \n', format="jsonl", source="data.jsonl")
    with pytest.raises(ValidationFailed, match="line 3"):
        parse_dataset_text('[\n {"input": 1},\n oops\n]', format="json")
    with pytest.raises(ValidationFailed, match="more cells than the header"):
        parse_dataset_text("a,b\n1,2,3\n", format="csv")
    with pytest.raises(ValidationFailed, match="cannot tell the file format"):
        parse_dataset_file(tmp_path / "x.txt")
    with pytest.raises(ValidationFailed, match="appears twice"):
        items_from_records([{"id": "a", "input": 1}, {"id": "a", "input": 2}])
    with pytest.raises(ValidationFailed, match="NaN"):
        items_from_records([{"input": float("nan")}])
    with pytest.raises(ValidationFailed, match="unknown field"):
        items_from_records([{"input": 1, "bogus": 2}], extra_to=None)


def test_content_hash_ignores_the_id_only() -> None:
    a = DatasetItem(id="a", input="x", expected="y")
    assert content_hash(a) == content_hash(DatasetItem(id="b", input="x", expected="y"))
    assert content_hash(a) != content_hash(DatasetItem(id="a", input="x", expected="z"))
    assert Dataset.from_records([{"input": 1, "split": "dev"}, {"input": 2}]).split("dev").items[0].input == 1


# --- the store: versions --------------------------------------------------------------------------------


def _items(*pairs: tuple[str, Any]) -> list[DatasetItem]:
    return [DatasetItem(id=i, input=v, expected=str(v)) for i, v in pairs]


def test_every_change_makes_an_immutable_version(store: Any) -> None:
    pid = make_project(store, "p").project_id
    repo = store.evals
    ds = repo.create_dataset(pid, "qa", description="golden", items=_items(("a", 1), ("b", 2)))
    assert ds["latest_version"] == 1 and ds["item_count"] == 2
    with pytest.raises(Conflict):
        repo.create_dataset(pid, "qa")
    # update b, add c: version 2
    r = repo.change_items(pid, "qa", upsert=_items(("b", 20), ("c", 3)), message="fix b")
    assert (r["version"], r["added"], r["updated"], r["unchanged"], r["item_count"]) == (2, 1, 1, 0, 3)
    # the same content again changes nothing and makes no version
    r = repo.change_items(pid, "qa", upsert=_items(("b", 20)))
    assert r["changed"] is False and r["version"] == 2
    # remove a: version 3
    r = repo.change_items(pid, "qa", delete_ids=["a"])
    assert (r["version"], r["removed"], r["item_count"]) == (3, 1, 2)
    with pytest.raises(NotFound, match="no current item"):
        repo.change_items(pid, "qa", delete_ids=["a"])
    # every version still reads as it was
    def snapshot(v: int) -> list[tuple[str, Any]]:
        return [(i["id"], i["input"]) for i in repo.list_items(pid, "qa", version=v)[1].items]

    assert snapshot(1) == [("a", 1), ("b", 2)]
    assert snapshot(2) == [("a", 1), ("b", 20), ("c", 3)]   # b keeps its place
    assert snapshot(3) == [("b", 20), ("c", 3)]
    assert repo.list_items(pid, "qa")[0] == 3
    # replace: the version holds exactly these
    r = repo.change_items(pid, "qa", upsert=_items(("c", 3), ("d", 4)), replace_all=True)
    assert (r["version"], r["added"], r["removed"], r["unchanged"]) == (4, 1, 1, 1)
    assert snapshot(4) == [("c", 3), ("d", 4)]
    versions = repo.list_versions(pid, "qa")
    assert [v["version"] for v in versions] == [4, 3, 2, 1] and versions[2]["message"] == "fix b"
    assert repo.get_item(pid, "qa", "b", version=2)["input"] == 20
    with pytest.raises(NotFound):
        repo.get_item(pid, "qa", "b", version=4)
    with pytest.raises(NotFound, match="versions 1 to 4"):
        repo.list_items(pid, "qa", version=9)
    # pages
    _, page = repo.list_items(pid, "qa", version=2, limit=2)
    assert len(page.items) == 2 and page.next_cursor
    rest = repo.list_items(pid, "qa", version=2, limit=2, cursor=page.next_cursor)[1]
    assert [i["id"] for i in rest.items] == ["c"] and rest.next_cursor is None


def test_datasets_are_scoped_by_project(store: Any) -> None:
    a, b = make_project(store, "a").project_id, make_project(store, "b").project_id
    store.evals.create_dataset(a, "qa", items=_items(("x", 1)))
    with pytest.raises(NotFound, match="no dataset 'qa'"):
        store.evals.list_items(b, "qa")
    store.evals.create_dataset(b, "qa")
    assert store.evals.get_dataset(b, "qa")["item_count"] == 0
    assert [d["name"] for d in store.evals.list_datasets(a).items] == ["qa"]


def test_concurrent_writers_get_distinct_versions(store: Any) -> None:
    import threading

    pid = make_project(store, "p").project_id
    store.evals.create_dataset(pid, "qa")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            store.evals.change_items(pid, "qa", upsert=_items((f"i{n}", n)))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.evals.get_dataset(pid, "qa")["latest_version"] == 9
    assert len(store.evals.list_items(pid, "qa")[1].items) == 8


# --- the API and the SDK -----------------------------------------------------------------------------------


def test_dataset_api(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/datasets", json={"name": "qa", "description": "golden", "items": [
            {"id": "q1", "input": {"question": "2+2?"}, "expected_output": "4"}]})
        assert r.status_code == 201, r.text
        assert r.json()["latest_version"] == 1
        assert c.post("/api/v1/datasets", json={"name": "qa"}).status_code == 409
        bad = c.post("/api/v1/datasets", json={"name": "bad name!"})
        assert bad.status_code == 400 and "invalid dataset name" in bad.json()["error"]["message"]
        bad = c.post("/api/v1/datasets/qa/items", json={"items": [{"input": 1, "nope": 2}]})
        assert bad.status_code == 400 and "unknown field" in bad.json()["error"]["message"]
        r = c.post("/api/v1/datasets/qa/items", json={"items": [{"id": "q2", "input": {"question": "3+3?"},
                                                                 "expected": "6"}], "message": "more"})
        assert r.json()["version"] == 2 and r.json()["added"] == 1
        # a JSONL file as the body
        r = c.post("/api/v1/datasets/qa/items", params={"message": "file"},
                   content='{"id": "q3", "input": {"question": "1+1?"}, "expected": "2"}\n',
                   headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200 and r.json()["version"] == 3, r.text
        # a CSV file, creating a new dataset
        r = c.post("/api/v1/datasets/caps/items", params={"create": "true"}, content="country,expected\nFrance,Paris\n",
                   headers={"content-type": "text/csv"})
        assert r.json()["version"] == 1
        items = c.get("/api/v1/datasets/caps/items").json()
        assert items["version"] == 1 and items["data"][0]["input"] == {"country": "France"}
        r = c.post("/api/v1/datasets/qa/items/delete", json={"ids": ["q1"]})
        assert r.json()["version"] == 4 and r.json()["item_count"] == 2
        assert [i["id"] for i in c.get("/api/v1/datasets/qa/items", params={"version": 3}).json()["data"]] == [
            "q1", "q2", "q3"]
        assert [i["id"] for i in c.get("/api/v1/datasets/qa/items").json()["data"]] == ["q2", "q3"]
        versions = c.get("/api/v1/datasets/qa/versions").json()["data"]
        assert [(v["version"], v["source"]["kind"]) for v in versions] == [
            (4, "api"), (3, "file"), (2, "api"), (1, "api")]
        assert c.get("/api/v1/datasets/qa/items/q1", params={"version": 1}).json()["expected"] == "4"
        assert c.get("/api/v1/datasets").json()["data"][1]["item_count"] == 2
        nf = c.get("/api/v1/datasets/qaa")
        assert nf.status_code == 404 and "did you mean 'qa'" in nf.json()["error"]["message"]
        assert c.patch("/api/v1/datasets/qa", json={"description": "new"}).json()["description"] == "new"
        assert c.delete("/api/v1/datasets/caps").status_code == 204
        assert c.get("/api/v1/datasets/caps").status_code == 404


def test_viewer_keys_read_but_cannot_write(server: LiveServer) -> None:
    k = server.store.projects.create_key(server.keys.project_id, role="viewer")
    with httpx.Client(base_url=server.url, auth=(k.key.public_key, k.secret_key)) as c:
        assert c.get("/api/v1/datasets").status_code == 200
        r = c.post("/api/v1/datasets", json={"name": "qa"})
        assert r.status_code == 403 and "cannot change datasets" in r.json()["error"]["message"]


def test_sdk_create_and_get(server: LiveServer, tmp_path: Path) -> None:
    podium.configure(base_url=server.url, public_key=server.keys.public_key, secret_key=server.keys.secret_key)
    try:
        ds = podium.create_dataset("qa", [{"input": "a", "expected": "A"}], description="d")
        assert (ds.name, ds.version, len(ds)) == ("qa", 1, 1)
        f = tmp_path / "more.jsonl"
        f.write_text(json.dumps({"input": "b", "expected": "B"}) + "\n")
        ds = podium.create_dataset("qa", f)   # exists: the file's items become the next version
        assert (ds.version, [i.input for i in ds]) == (2, ["a", "b"])
        ds = podium.create_dataset("qa", [{"input": "c"}], replace=True)
        assert (ds.version, [i.input for i in ds]) == (3, ["c"])
        assert [i.input for i in podium.get_dataset("qa", version=2)] == ["a", "b"]
        assert podium.get_client().evals.dataset_versions("qa")[0]["version"] == 3
    finally:
        podium.shutdown()


def test_dataset_from_production_traces(server: LiveServer) -> None:
    now = "2026-01-05T10:00:00Z"
    batch = []
    for i, user in enumerate(["alice", "alice", "bob"]):
        batch.append({"type": "span", "body": {"id": f"s{i}", "trace_id": f"t{i}", "name": "qa", "start_time": now,
                                               "end_time": now, "input": {"question": f"q{i}"}, "output": f"a{i}",
                                               "user_id": user, "tags": ["prod"]}})
    batch.append({"type": "span", "body": {"id": "s9", "trace_id": "t9", "name": "qa", "start_time": now,
                                           "user_id": "alice"}})  # no input: skipped
    with server.client() as c:
        assert c.post("/api/v1/ingest", json={"batch": batch}).status_code in (200, 207)
        r = c.post("/api/v1/datasets/prod-qa/from-traces",
                   json={"filter": {"user_id": "alice", "tags": ["prod"], "name": "qa"}, "split": "regression"})
        assert r.status_code == 200, r.text
        assert (r.json()["version"], r.json()["added"]) == (1, 2)
        items = c.get("/api/v1/datasets/prod-qa/items").json()["data"]
        assert {i["id"] for i in items} == {"t0", "t1"}
        first = next(i for i in items if i["id"] == "t0")
        assert first["input"] == {"question": "q0"} and first["expected"] == "a0"
        assert first["split"] == "regression" and first["source_trace_id"] == "t0"
        assert first["metadata"]["user_id"] == "alice" and first["metadata"]["tags"] == ["prod"]
        # again: nothing new, no new version; without expected output the items change
        r = c.post("/api/v1/datasets/prod-qa/from-traces", json={"filter": {"user_id": "alice", "tags": ["prod"]},
                                                                 "split": "regression"})
        assert r.json()["changed"] is False
        r = c.post("/api/v1/datasets/prod-qa/from-traces", json={"filter": {"user_id": "bob"}, "expected": None})
        assert r.json()["added"] == 1 and r.json()["version"] == 2
        bad = c.post("/api/v1/datasets/prod-qa/from-traces", json={"filter": {"colour": "red"}})
        assert bad.status_code == 400 and "unknown trace filter" in bad.json()["error"]["message"]



def test_concurrent_item_batches_of_one_experiment_count_every_item(store: Any) -> None:
    """Two writers of one experiment (the Langfuse SDK links run items in parallel) must not each
    count only their own rows: on PostgreSQL the experiment row is locked for the batch."""
    import threading

    pid = make_project(store, "race").project_id
    store.evals.create_experiment(pid, {"id": "exp-race", "name": "race"})
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait(5)
            for k in range(5):
                store.evals.add_items(pid, "exp-race", [{"item_id": f"w{n}-{k}", "repetition": 0, "position": k,
                                                          "output": "x", "error": "boom" if k == 0 else None}])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors
    exp = store.evals.get_experiment(pid, "exp-race")
    assert (exp["item_count"], exp["error_count"]) == (40, 8)


def test_csv_with_bare_carriage_returns_parses_or_gets_a_400() -> None:
    # Found by the schemathesis fuzz run: a bare \r in an unquoted cell was a 500 (csv.Error).
    assert [i.input for i in parse_dataset_text("input\rx\r", format="csv")] == ["x"]
    assert [i.input for i in parse_dataset_text('input\n"a\rb"\n', format="csv")] == ["a\rb"]
    assert [i.input for i in parse_dataset_text("a,b\r\n1,2\r\n", format="csv")] == [{"a": "1", "b": "2"}]
