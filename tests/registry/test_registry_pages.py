"""The registry's pages over HTTP on a real server: the list with aliases, a model's page with
versions, aliases and history, the Move / Roll back forms, and a version's page with its
artifact, eval results and lineage chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from podium.core.datasets import DatasetItem
from podium.registry.registry import ModelRegistry
from podium.store.repos.ingest import IngestBatch
from tests.conftest import LiveServer, ProjectKeys
from tests.store.test_store import span


def _rows(*rows: dict[str, Any]) -> Any:
    return list(rows)


def _ui(server: LiveServer, keys: ProjectKeys | None = None) -> httpx.Client:
    k = keys or server.keys
    return httpx.Client(base_url=server.url, timeout=30, auth=k.basic(),
                        headers={"host": "podium.example", "accept": "text/html"})


def test_registry_pages(server: LiveServer, tmp_path: Path) -> None:
    st, pid = server.store, server.keys.project_id
    reg = ModelRegistry(st, tmp_path)
    st.evals.create_dataset(pid, "sft", items=[DatasetItem(id="a", input="q", expected="a")])
    reg.register(pid, "bot", artifact="hf://o/bot-1", kind="adapter", dataset="sft@1", training_run_id="run-7",
                 eval_results=[{"suite": "smoke", "experiment_ids": ["exp-1"], "metrics": {"exact_match": 0.75}}])
    reg.register(pid, "bot", artifact="hf://o/bot-2", kind="gguf")
    reg.set_alias(pid, "bot", "champion", 1, comment="launch")
    st.ingest.write(IngestBatch(spans=_rows(span(pid, "t1", "s1", model="bot@1"))))
    with _ui(server) as c:
        r = c.get("/registry")
        assert r.status_code == 200 and "champion → v1" in r.text and 'href="/registry"' in r.text
        r = c.get("/registry/bot")
        assert r.status_code == 200 and 'data-version="2"' in r.text and "launch" in r.text
        r = c.post("/registry/bot/aliases/champion/move", data={"version": "2", "comment": "better"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/registry/bot?done=move"
        assert st.models.get_alias(pid, "bot", "champion")["version"] == 2
        r = c.post("/registry/bot/aliases/champion/rollback", data={"comment": "regressed"}, follow_redirects=False)
        assert r.status_code == 303
        assert st.models.get_alias(pid, "bot", "champion")["version"] == 1
        page = c.get("/registry/bot").text
        assert "regressed" in page and "rollback" in page
        r = c.post("/registry/bot/aliases", data={"alias": "challenger", "version": "2"}, follow_redirects=False)
        assert r.status_code == 303 and st.models.get_alias(pid, "bot", "challenger")["version"] == 2
        bad = c.post("/registry/bot/aliases", data={"alias": "Bad Name", "version": "2"})
        assert bad.status_code == 400 and "is not valid" in bad.text
        assert c.post("/registry/bot/aliases/champion/move", data={"version": "9"}).status_code == 404
        assert c.post("/registry/bot/aliases/champion/move", data={"version": "x"}).status_code == 400
        r = c.get("/registry/bot/versions/1")
        assert r.status_code == 200
        for text in ("sft</a> v1", "run run-7", "exact_match", "1 traces (1 spans)", "/traces?model=bot%401",
                     'data-kind="dataset"', "hf://o/bot-1"):
            assert text in r.text, text
        assert c.get("/registry/nope").status_code == 404
        assert c.get("/registry/bot/versions/5").status_code == 404
    k = st.projects.create_key(pid, role="viewer")
    viewer = ProjectKeys(pid, k.key.public_key, k.secret_key)
    with _ui(server, viewer) as c:
        assert c.get("/registry/bot").status_code == 200
        assert "Roll back" not in c.get("/registry/bot").text
        assert c.post("/registry/bot/aliases/champion/rollback", data={}).status_code == 403
