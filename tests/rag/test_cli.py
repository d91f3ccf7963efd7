"""`podium collections` against a real server: create, load a folder, list, search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer
from tests.rag.test_documents import tiny_pdf

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


@pytest.mark.one_db
def test_collections_cli(cli_env: LiveServer, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "guides").mkdir(parents=True)
    (docs / "install.md").write_text("# Install\n\nRun pip install podium then podium up.")
    (docs / "guides" / "scale.html").write_text("<h1>Scale</h1><p>Use PostgreSQL and Redis.</p>")
    (docs / "guides" / "paper.pdf").write_bytes(tiny_pdf(["Retrieval with citations"]))
    (docs / "ignored.bin").write_bytes(b"\x00")
    assert "created collection docs" in run("collections", "create", "docs", "--chunking", "heading")
    out = run("collections", "add", "docs", str(docs), "--metadata", '{"team": "core"}')
    assert "docs v1: 3 added" in out and "3 documents" in out
    assert "nothing changed" in run("collections", "add", "docs", str(docs), "-m", '{"team": "core"}')
    listing = run("collections", "list")
    assert "docs" in listing
    assert "guides/paper.pdf" in run("collections", "list", "docs")
    hits = json.loads(run("collections", "search", "docs", "PostgreSQL Redis", "--json", "-k", "2"))
    assert hits["data"][0]["document_id"] == "guides/scale.html"
    assert hits["data"][0]["metadata"] == {"team": "core"}
    text = run("collections", "search", "docs", "citations", "--mode", "keyword")
    assert "guides/paper.pdf#0" in text
    run("collections", "search", "nope", "x", code=1)
    run("collections", "add", "docs", str(tmp_path / "missing"), code=2)
