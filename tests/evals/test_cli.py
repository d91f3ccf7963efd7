"""`podium datasets ...` and `podium eval list|show|label|compare|judges push` against a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import podium
from podium.cli.main import app
from tests.conftest import LiveServer


@pytest.fixture
def live(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    monkeypatch.setenv("COLUMNS", "200")
    yield server
    podium.shutdown(timeout=2)


def cli(*args: str, code: int = 0) -> Any:
    r = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r


def test_datasets_commands(live: LiveServer, tmp_path: Path) -> None:
    f = tmp_path / "qa.jsonl"
    f.write_text('{"id": "a", "input": "2+2", "expected": "4"}\n{"id": "b", "input": "3+3", "expected": "6"}\n')
    assert "qa v1: 2 items" in cli("datasets", "create", "qa", str(f), "--description", "sums").output
    csv = tmp_path / "more.csv"
    csv.write_text("id,input,expected\nc,4+4,8\n")
    assert "qa v2: +1 added" in cli("datasets", "add", "qa", str(csv), "-m", "one more").output
    assert "nothing changed (still v2)" in cli("datasets", "add", "qa", str(csv)).output
    assert "qa v3" in cli("datasets", "add", "qa", str(f), "--replace").output
    out = cli("datasets", "list").output
    assert "qa" in out and "sums" in out
    assert "4+4" in cli("datasets", "show", "qa", "--version", "2").output
    assert "one more" in cli("datasets", "versions", "qa").output
    versions = json.loads(cli("datasets", "versions", "qa", "--json").output)
    assert [v["version"] for v in versions] == [3, 2, 1] and versions[1]["message"] == "one more"
    export = tmp_path / "export.jsonl"
    cli("datasets", "export", "qa", "--version", "2", "-o", str(export))
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"] and rows[0] == {"id": "a", "input": "2+2", "expected": "4"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": 1}\nnot json\n')
    r = cli("datasets", "add", "qa", str(bad), code=2)
    assert "bad.jsonl line 2: not valid JSON" in r.output
    r = cli("datasets", "show", "nope", code=1)
    assert "no dataset 'nope'" in r.output
    cli("datasets", "delete", "qa", "--yes")
    assert "qa" not in cli("datasets", "list").output


def test_datasets_from_traces_command(live: LiveServer) -> None:
    batch = [{"type": "span", "body": {"id": f"s{i}", "trace_id": f"t{i}", "name": "chat", "input": f"q{i}",
                                       "output": f"a{i}", "start_time": "2026-01-05T10:00:00Z", "user_id": "u1"}}
             for i in range(3)]
    with live.client() as c:
        c.post("/api/v1/ingest", json={"batch": batch})
    out = cli("datasets", "from-traces", "golden", "--user", "u1", "--split", "prod").output
    assert "golden v1: 3 traces matched, +3 added" in out


def test_eval_list_show_label_compare(live: LiveServer) -> None:
    items = [{"id": f"q{i}", "input": i, "expected": i} for i in range(25)]
    podium.configure(base_url=live.url, public_key=live.keys.public_key, secret_key=live.keys.secret_key)
    good = podium.evaluate(dataset=items, task=lambda x: x, scorers=["equals"], name="ident", progress=False)
    bad = podium.evaluate(dataset=items, task=lambda x: x if x < 5 else -1, scorers=["equals"], name="ident",
                          progress=False)
    listed = json.loads(cli("eval", "list", "--json").output)["data"]
    assert [e["id"] for e in listed] == [bad.id, good.id]
    out = cli("eval", "show", bad.id, "--items").output
    assert "equals" in out and "0.200" in out and "q7" in out
    assert "labels main" in cli("eval", "label", good.id, "main").output
    assert [e["id"] for e in json.loads(cli("eval", "list", "--label", "main", "--json").output)["data"]] == [good.id]
    r = cli("eval", "compare", good.id, bad.id)
    assert "regressed" in r.output and "equals regressed: q5 (-1)" in r.output
    cli("eval", "compare", good.id, bad.id, "--fail-on-regression", code=1)
    data = json.loads(cli("eval", "compare", good.id, good.id, "--json").output)
    assert data["candidates"][0]["metrics"]["equals"]["diff"] == 0.0


def test_judges_push_writes_the_builtin_templates(live: LiveServer) -> None:
    out = cli("eval", "judges", "push").output
    assert "podium/judge/factuality v1 (production)" in out
    assert "exists; kept" in cli("eval", "judges", "push").output
    with live.client() as c:
        v = c.get("/api/v1/prompts/podium/judge/factuality/labels/production").json()
    assert v["versions"][0]["config"]["score_range"] == [1, 5]
