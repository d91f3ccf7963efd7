"""`podium prompts ...` against a live server (SQLite and PostgreSQL): create, label, roll back,
diff, analytics, compile, run, protect, and pull/push with conflict detection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def cli(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    monkeypatch.setenv("COLUMNS", "200")
    yield server


def run(*args: str) -> str:
    r = runner.invoke(app, ["prompts", *args])
    assert r.exit_code == 0, r.output
    return r.output


def fails(*args: str) -> str:
    r = runner.invoke(app, ["prompts", *args])
    assert r.exit_code != 0, r.output
    return r.output


def test_create_label_rollback_diff_and_compile(cli: LiveServer, tmp_path: Path) -> None:
    out = run("create", "support/qa", "Answer {{question}} briefly.", "--tag", "support", "--label", "production",
              "-m", "first", "--config", '{"model": "local", "temperature": 0.2}')
    assert "created support/qa v1" in out and "question" in out
    chat = tmp_path / "qa.yaml"
    chat.write_text("- role: system\n  content: You are {{tone}}.\n- type: placeholder\n  name: history\n"
                    "- role: user\n  content: '{{question}}'\n")
    bad = fails("create", "support/qa", "--file", str(chat))
    assert "text prompt" in bad and "chat" in bad  # a text prompt cannot become a chat prompt
    run("create", "support/chat", "--file", str(chat), "--label", "staging")
    v2 = json.loads(run("create", "support/qa", "Answer {{question}} in detail.", "-m", "longer", "--json"))
    assert v2["version"] == 2 and v2["tags"] == ["support"]
    listed = json.loads(run("list", "--json"))["data"]
    assert [p["name"] for p in listed] == ["support/chat", "support/qa"]
    table = run("list")
    assert "support/qa" in table and "production=1" in table
    shown = run("show", "support/qa")  # production by default
    assert "v1" in shown and "Answer {{question}} briefly." in shown and "temperature" in shown
    assert json.loads(run("show", "support/qa", "--version", "2", "--json"))["commit_message"] == "longer"
    assert "longer" in run("versions", "support/qa")
    assert "production -> v1 90% / v2 10%" in run("label", "support/qa", "production", "1:90", "2:10")
    assert "production -> 2" in run("label", "support/qa", "production", "2", "-c", "ship")
    assert "rolled back to v1 90% / v2 10%" in run("rollback", "support/qa", "--label", "production")
    assert "rolled back to 1" in run("rollback", "support/qa", "--label", "production")
    hist = json.loads(run("history", "support/qa", "--label", "production", "--json"))["data"]
    assert [e["action"] for e in hist] == ["rollback", "rollback", "set", "set", "set"]
    assert hist[0]["actor"] == cli.keys.public_key
    assert "rollback" in run("history", "support/qa")
    diff = run("diff", "support/qa", "1", "2")
    assert "-Answer {{question}} briefly." in diff and "+Answer {{question}} in detail." in diff
    assert "identical" in run("diff", "support/qa", "1", "production")
    assert run("compile", "support/qa", "-V", "1", "-v", "question=Why?").strip() == "Answer Why? briefly."
    msgs = json.loads(run("compile", "support/chat", "--label", "staging", "-v", "tone=calm", "-v", "question=Hi",
                          "-v", 'history=[{"role": "user", "content": "earlier"}]'))
    assert msgs[1] == {"role": "user", "content": "earlier"} and msgs[0]["content"] == "You are calm."
    missing = fails("compile", "support/chat", "--label", "staging", "-v", "tone=calm")
    assert "missing variables: question, history" in missing
    assert "no version 9" in fails("show", "support/qa", "--version", "9")
    assert "did you mean" in fails("show", "support/qaa")
    assert "line 1, column 7" in fails("create", "x", "Hello {{ name")
    run("unlabel", "support/qa", "production")
    assert "production" not in json.loads(run("show", "support/qa", "-l", "latest", "--json"))["labels"]
    run("delete", "support/chat", "--yes")
    assert [p["name"] for p in json.loads(run("list", "--json"))["data"]] == ["support/qa"]


def test_protect_needs_admin_keys(cli: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    run("create", "qa", "v1", "--label", "production")
    run("create", "qa", "v2")
    assert "protected labels: production" in run("protect", "production")
    member = cli.store.projects.create_key(cli.keys.project_id, role="member")
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", member.key.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", member.secret_key)
    out = fails("label", "qa", "production", "2")
    assert "error 403" in out and "protected" in out
    assert "error 403" in fails("rollback", "qa")
    run("label", "qa", "staging", "2")
    assert "error 403" in fails("unprotect", "production")
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", cli.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", cli.keys.secret_key)
    assert "protected labels: -" in run("unprotect", "production")


def test_run_and_analytics(cli: LiveServer, upstream: FakeUpstream) -> None:
    with cli.client() as c:
        c.put("/api/v1/gateway/models/fake", json={"deployments": [
            {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "k"}]})
    run("create", "qa", "Answer {{question}}", "--config", '{"model": "fake"}', "--label", "production")
    upstream.script("fake-a", Reply("It depends."))
    out = runner.invoke(app, ["prompts", "run", "qa", "-v", "question=Why?", "-p", "max_tokens=5"])
    assert out.exit_code == 0, out.output
    assert "It depends." in out.output and "qa v1 on fake" in out.output and "trace" in out.output
    assert upstream.requests[-1]["body"]["max_tokens"] == 5
    data = json.loads(run("run", "qa", "-V", "1", "-v", "question=Why not?", "--json"))
    assert data["output"] == "Hello from the fake upstream" and data["prompt"] == {"name": "qa", "version": 1}
    assert "missing variable" in fails("run", "qa", "--no-cache")

    def analytics_count() -> int:
        return int(json.loads(run("analytics", "qa", "--json"))["data"][0]["count"])

    import time

    deadline = time.monotonic() + 10
    while analytics_count() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "calls" in run("analytics", "qa")


def test_pull_edit_push_and_conflicts(cli: LiveServer, tmp_path: Path) -> None:
    run("create", "support/qa", "Answer {{question}}.\nBe brief.", "--tag", "s", "--label", "production")
    run("create", "greeting", "Hello {{name}}")
    root = tmp_path / "prompts"
    assert "2 prompt(s)" in run("pull", str(root))
    qa_file = root / "support" / "qa.yaml"
    text = qa_file.read_text()
    assert "version: 1" in text and "prompt: |-\n  Answer {{question}}.\n  Be brief." in text  # readable block
    assert "production: 1" in text
    # Nothing changed: nothing to push.
    out = run("push", str(root))
    assert "support/qa: unchanged (v1)" in out and "greeting: unchanged (v1)" in out
    # Edit a file (keeping a comment) and add a new prompt file.
    qa_file.write_text("# reviewed in PR 12\n" + text.replace("Be brief.", "Be thorough."))
    (root / "support" / "new.json").write_text(json.dumps({"name": "support/new", "prompt": "New {{x}}"}))
    assert "would create v2" in run("push", str(root), "--dry-run")
    out = run("push", str(root), "-m", "from git")
    assert "support/qa: created v2" in out and "support/new: created v1" in out
    assert "version: 2" in qa_file.read_text() and qa_file.read_text().startswith("# reviewed in PR 12")
    assert json.loads((root / "support" / "new.json").read_text())["version"] == 1
    v2 = json.loads(run("show", "support/qa", "-V", "2", "--json"))
    assert v2["prompt"] == "Answer {{question}}.\nBe thorough." and v2["commit_message"] == "from git"
    assert "support/qa: unchanged (v2)" in run("push", str(root))
    # Someone else creates v3 on the server; a local edit based on v2 is refused.
    run("create", "support/qa", "Server-side edit {{question}}")
    qa_file.write_text(qa_file.read_text().replace("Be thorough.", "Be thorough and kind."))
    out = fails("push", str(root))
    assert "support/qa: conflict" in out and "server is at v3" in out and "pulled from v2" in out
    assert json.loads(run("show", "support/qa", "-l", "latest", "--json"))["version"] == 3
    out = run("push", str(root), "--force")
    assert "support/qa: created v4" in out
    # A file that is merely behind is not a conflict.
    run("create", "greeting", "Hi {{name}}")
    assert "greeting: unchanged (the server has v2; pull to update the file)" in run("push", str(root))
    run("pull", str(root), "--format", "json")
    assert not qa_file.exists() and json.loads((root / "support" / "qa.json").read_text())["version"] == 4
    (root / "broken.yaml").write_text("name: broken\nprompt: 'Hi {{ there'\n")
    assert "broken.yaml: invalid template" in fails("push", str(root))
