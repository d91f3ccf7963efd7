"""The model registry on SQLite and PostgreSQL (--db all): numbered immutable versions,
references, aliases with history and rollback, artifacts copied with their sha256, lineage
(dataset version -> version -> deployments -> traces served), cross-project isolation, and the
REST API (errors in the pinned shape, role checks) on a real server."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.core.datasets import DatasetItem
from podium.errors import BadRequest, Conflict, NotFound, ValidationFailed
from podium.registry.lineage import lineage
from podium.registry.registry import ModelRegistry, parse_ref
from podium.store.repos.ingest import IngestBatch
from tests.conftest import LiveServer, ProjectKeys, make_project
from tests.store.test_store import span

API = "/api/v1/registry/models"


def _rows(*rows: dict[str, Any]) -> Any:
    """Span rows for IngestBatch (the test helper builds plain dicts)."""
    return list(rows)


def _reg(store: Any, home: Path) -> ModelRegistry:
    return ModelRegistry(store, home)


def _file(tmp_path: Path, name: str = "adapter.safetensors", data: bytes = b"weights" * 1000) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_reference_parsing() -> None:
    assert parse_ref("m@3").version == 3
    assert parse_ref("registry:/m@champion").alias == "champion"
    assert parse_ref("m").alias == "latest"
    assert parse_ref("m@latest").alias == "latest"
    assert str(parse_ref("registry:/m.v2_x@7")) == "m.v2_x@7"
    for bad in ("", "@3", "m@", "m@0", "a/b@1", "m@Champion", "m@x y"):
        with pytest.raises(BadRequest) as e:
            parse_ref(bad)
        assert "NAME@VERSION" in e.value.message or "alias" in e.value.message or "versions start" in e.value.message


def test_versions_are_numbered_and_immutable(store: Any, project: ProjectKeys, tmp_path: Path) -> None:
    reg = _reg(store, tmp_path / "home")
    pid = project.project_id
    f = _file(tmp_path)
    v1 = reg.register(pid, "support-bot", artifact=str(f), kind="adapter", base_model="smollm2-135m-instruct",
                      actor="alice")
    v2 = reg.register(pid, "support-bot", artifact="hf://org/model", kind="external")
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["artifact"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert v1["artifact"]["size"] == f.stat().st_size and v1["artifact"]["format"] == "safetensors"
    assert v1["artifact"]["copied"] is False and v2["artifact"]["sha256"] is None
    assert store.models.get_model(pid, "support-bot")["latest_version"] == 2
    # PATCH touches only description / metadata / status
    p = store.models.update_version(pid, "support-bot", 1, {"description": "first", "artifact": {"uri": "x"},
                                                            "base_model": "other", "status": "archived"})
    assert p["description"] == "first" and p["status"] == "archived"
    assert p["artifact"] == v1["artifact"] and p["base_model"] == "smollm2-135m-instruct"
    # an archived version cannot take an alias
    with pytest.raises(Conflict, match="archived"):
        reg.set_alias(pid, "support-bot", "champion", 1)
    with pytest.raises(NotFound, match="versions: 1 to 2"):
        store.models.get_version(pid, "support-bot", 9)
    with pytest.raises(ValidationFailed):
        reg.register(pid, "bad/name", artifact="hf://x")
    with pytest.raises(BadRequest, match="not a file"):
        reg.register(pid, "support-bot", artifact=str(tmp_path / "missing.bin"))
    with pytest.raises(BadRequest, match="sha256 mismatch"):
        reg.register(pid, "support-bot", artifact=str(f), sha256="0" * 64)
    assert store.models.get_model(pid, "support-bot")["latest_version"] == 2  # failures numbered nothing
    with pytest.raises(Conflict):
        store.models.create_model(pid, "support-bot")


def test_copy_streams_under_home_with_sha(store: Any, project: ProjectKeys, tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = _reg(store, home)
    data = bytes(range(256)) * 20_000  # 5 MB: several chunks
    f = _file(tmp_path, "model.gguf", data)
    v = reg.register(project.project_id, "tiny", artifact=str(f), kind="gguf", copy=True)
    dst = home / "models" / "tiny" / "1" / "model.gguf"
    assert dst.read_bytes() == data
    assert v["artifact"]["uri"] == str(dst) and v["artifact"]["copied"] is True
    assert v["artifact"]["sha256"] == hashlib.sha256(data).hexdigest() and v["artifact"]["format"] == "gguf"
    assert [p.name for p in (home / "models" / "tiny").iterdir()] == ["1"]  # no temp folder left
    with pytest.raises(BadRequest, match="only for a local file"):
        reg.register(project.project_id, "tiny", artifact="s3://b/k", copy=True)


def test_aliases_move_with_history_and_rollback(store: Any, project: ProjectKeys, tmp_path: Path) -> None:
    reg = _reg(store, tmp_path / "home")
    pid = project.project_id
    for _ in range(3):
        reg.register(pid, "m", artifact="hf://org/m")
    reg.set_alias(pid, "m", "champion", 1, actor="a", comment="first")
    reg.set_alias(pid, "m", "champion", 2, actor="b", comment="better")
    reg.set_alias(pid, "m", "champion", 3, actor="c")
    reg.set_alias(pid, "m", "challenger", 3)
    assert reg.resolve(pid, "registry:/m@champion")["version"] == 3
    assert reg.resolve(pid, "m@latest")["version"] == 3
    assert reg.resolve(pid, "m@1")["version"] == 1
    assert store.models.get_version(pid, "m", 3)["aliases"] == ["challenger", "champion"]
    assert store.models.rollback_alias(pid, "m", "champion", actor="ops", comment="regressed")["version"] == 2
    assert store.models.rollback_alias(pid, "m", "champion")["version"] == 1
    with pytest.raises(Conflict, match="did not exist before"):
        store.models.rollback_alias(pid, "m", "champion")
    hist = store.models.alias_history(pid, "m", "champion")
    assert [(h["action"], h["from_version"], h["to_version"]) for h in hist] == [
        ("rollback", 2, 1), ("rollback", 3, 2), ("set", 2, 3), ("set", 1, 2), ("set", None, 1)]
    assert hist[1]["actor"] == "ops" and hist[1]["comment"] == "regressed"
    with pytest.raises(ValidationFailed, match="reserved"):
        reg.set_alias(pid, "m", "latest", 1)
    with pytest.raises(NotFound, match="no alias 'prod'"):
        reg.resolve(pid, "m@prod")
    with pytest.raises(NotFound, match="no version 7"):
        reg.set_alias(pid, "m", "champion", 7)
    store.models.delete_alias(pid, "m", "challenger")
    assert "challenger" not in store.models.get_model(pid, "m")["aliases"]


def test_lineage_dataset_deployment_and_traces(store: Any, project: ProjectKeys, tmp_path: Path) -> None:
    reg = _reg(store, tmp_path / "home")
    pid = project.project_id
    store.evals.create_dataset(pid, "sft", items=[DatasetItem(id="a", input="hi", expected="hello")])
    with pytest.raises(NotFound, match="no version 4"):
        reg.register(pid, "m", artifact="hf://o/m", dataset="sft@4")
    reg.register(pid, "m", artifact="hf://o/m", dataset="sft@1", training_run_id="run-1",
                 eval_results=[{"suite": "smoke", "experiment_ids": ["e1"], "metrics": {"exact": 0.5}}])
    reg.register(pid, "m", artifact="hf://o/m2", base_model="registry:/m@1")
    reg.set_alias(pid, "m", "champion", 1)
    store.gateway.put_model(pid, "support", {"deployments": [
        {"provider": "local", "model": "registry:/m@champion", "weight": 9},
        {"provider": "local", "model": "registry:/m@2", "weight": 1}]})
    store.ingest.write(IngestBatch(spans=_rows(span(pid, "t1", "s1", model="m@1"), span(pid, "t1", "s2", model="m@1"),
                                          span(pid, "t2", "s3", model="registry:/m@1"),
                                          span(pid, "t3", "s4", model="m@2"))))
    deps = [{"alias": "support", "provider": "local", "model": d["model"], "weight": d["weight"], "source": "api"}
            for d in store.gateway.list_models(pid)[0]["spec"]["deployments"]]
    g = lineage(reg, pid, "m", 1, deps)
    kinds = [n["kind"] for n in g["nodes"]]
    assert kinds == ["dataset", "run", "version", "deployment", "traces"]
    assert g["nodes"][0]["exists"] is True and g["nodes"][0]["item_count"] == 1
    dep = g["nodes"][3]
    assert dep["ref"] == "registry:/m@champion" and dep["weight"] == 9
    tr = g["nodes"][4]
    assert (tr["spans"], tr["traces"]) == (3, 2) and tr["link"] == "/traces?model=m%401"
    g2 = lineage(reg, pid, "m", 2, deps)
    assert [n["kind"] for n in g2["nodes"]] == ["base", "version", "deployment", "traces"]
    assert g2["nodes"][0]["link"] == "/registry/m/versions/1" and g2["nodes"][3]["spans"] == 1
    # moving champion moves the deployment in the lineage
    reg.set_alias(pid, "m", "champion", 2)
    assert [n["kind"] for n in lineage(reg, pid, "m", 1, deps)["nodes"]] == ["dataset", "run", "version", "traces"]


def test_projects_are_isolated(store: Any, project: ProjectKeys, tmp_path: Path) -> None:
    reg = _reg(store, tmp_path / "home")
    other = make_project(store, "other")
    reg.register(project.project_id, "m", artifact="hf://o/m")
    reg.set_alias(project.project_id, "m", "champion", 1)
    assert store.models.list_models(other.project_id) == []
    with pytest.raises(NotFound):
        reg.resolve(other.project_id, "m@champion")
    v = reg.register(other.project_id, "m", artifact="hf://o/other")
    assert v["version"] == 1 and v["aliases"] == []
    assert store.models.get_version(project.project_id, "m", 1)["artifact"]["uri"] == "hf://o/m"


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def test_api(server: LiveServer, tmp_path: Path) -> None:
    pid = server.keys.project_id
    sha = "ab" * 32
    with server.client() as c:
        r = c.post(f"{API}/bot/versions", json={"artifact": {"kind": "gguf", "uri": "/models/bot.Q4_K_M.gguf",
                                                             "sha256": sha, "size": 123},
                                                "eval_results": [{"suite": "s", "metrics": {"acc": 0.9}}]})
        assert r.status_code == 201, r.text
        assert r.json()["version"] == 1 and r.json()["artifact"]["sha256"] == sha
        assert c.post(f"{API}/bot/versions", json={"artifact": {"uri": "hf://o/b"}}).json()["version"] == 2
        _error(c.post(f"{API}/bot/versions", json={"artifact": {"uri": "/x", "sha256": "zz"}}), 400,
               "validation_error")
        _error(c.post(f"{API}/bot/versions", json={"artifact": {"uri": "/x"}, "copy": True}), 400, "validation_error")
        e = _error(c.post(f"{API}/bot/versions", json={"artifact": {"uri": "hf://o/b"}, "dataset": "nope@1"}),
                   404, "not_found")
        assert "no version 1" in e["message"]
        assert c.put(f"{API}/bot/aliases/champion", json={"version": 1, "comment": "go"}).json()["version"] == 1
        assert c.put(f"{API}/bot/aliases/champion", json={"version": 2}).json()["version"] == 2
        hist = c.get(f"{API}/bot/aliases/champion/history").json()["data"]
        assert [h["to_version"] for h in hist] == [2, 1] and hist[1]["comment"] == "go"
        assert c.post(f"{API}/bot/aliases/champion/rollback").json()["version"] == 1
        assert c.get("/api/v1/registry/resolve", params={"ref": "registry:/bot@champion"}).json()["version"] == 1
        p = c.patch(f"{API}/bot/versions/2", json={"description": "d", "status": "archived"})
        assert p.json()["status"] == "archived"
        _error(c.patch(f"{API}/bot/versions/2", json={"artifact": {"uri": "x"}}), 400, "validation_error")
        _error(c.patch(f"{API}/bot/versions/2", json={"base_model": "x"}), 400, "validation_error")
        _error(c.get(f"{API}/nope"), 404, "not_found")
        _error(c.post(f"{API}/bot/aliases/nope/rollback"), 404, "not_found")
        lin = c.get(f"{API}/bot/versions/1/lineage").json()
        assert [n["kind"] for n in lin["nodes"]] == ["version", "traces"]
        assert c.get(API).json()["data"][0]["aliases"] == {"champion": 1}
        assert c.post(API, json={"name": "empty", "tags": ["x"]}).status_code == 201
        _error(c.post(API, json={"name": "empty"}), 409, "conflict")
        _error(c.post(API, json={"name": "a/b"}), 400, "validation_error")
    # read keys read, cannot write
    k = server.store.projects.create_key(pid, role="viewer")
    viewer = ProjectKeys(pid, k.key.public_key, k.secret_key)
    with server.client(viewer) as c:
        assert c.get(f"{API}/bot/versions").status_code == 200
        _error(c.put(f"{API}/bot/aliases/champion", json={"version": 2}), 403, "forbidden")
    # another project sees nothing
    other = make_project(server.store, "other")
    with server.client(other) as c:
        _error(c.get(f"{API}/bot"), 404, "not_found")
        assert c.get(API).json()["data"] == []


def test_concurrent_registrations_get_distinct_numbers(store: Any, project: ProjectKeys, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    reg = _reg(store, tmp_path / "home")
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda i: reg.register(project.project_id, "race", artifact=f"hf://o/{i}")["version"],
                            range(12)))
    assert sorted(got) == list(range(1, 13))
    assert store.models.get_model(project.project_id, "race")["latest_version"] == 12
    with pytest.raises(Conflict, match="would get version 13, not 3"):
        reg.register(project.project_id, "race", artifact="hf://o/x", expected_version=3)
