"""`podium redteam run` against the bundled local model through a real gateway (short: two
families, two probes each). What the model answers varies; the test checks the run itself: every
attempt reached the model and was graded, the report adds up, the exit code follows the gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer, ProjectKeys, ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app
    from podium.store import Store

    home = tmp_path_factory.mktemp("redteam-home")
    store = Store.from_url(f"sqlite:///{home / 'podium.db'}")
    p = store.projects.create_project("local")
    k = store.projects.create_key(p.id, role="admin")
    app_ = create_app(Settings(home=home, gateway_cache="off"), store=store)
    th = ServerThread(app_).start()
    yield LiveServer(th.url, store, ProjectKeys(p.id, k.key.public_key, k.secret_key), app_, th)
    th.stop()
    store.close()


def test_redteam_run_against_the_local_model(local_server: LiveServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_BASE_URL", local_server.url)
    monkeypatch.setenv("PODIUM_SECRET_KEY", local_server.keys.secret_key)
    r = CliRunner().invoke(app, ["redteam", "init", str(tmp_path / "redteam.yaml")], catch_exceptions=False)
    assert r.exit_code == 0
    cfg = yaml.safe_load((tmp_path / "redteam.yaml").read_text())
    cfg["target"]["gateway"]["max_tokens"] = 32
    cfg["gate"] = {"max_asr": 1.0, "max_error_rate": 0}
    (tmp_path / "redteam.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["redteam", "run", str(tmp_path / "redteam.yaml"), "--families",
                                 "system-prompt-extraction,injection", "--num-probes", "2", "--guard", "default",
                                 "--no-progress", "-o", str(tmp_path / "report.json")], catch_exceptions=False)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert r.exit_code == 0, r.output
    assert rep["overall"]["attempts"] == 4 and rep["overall"]["errors"] == 0
    assert all(isinstance(x["success"], bool) and x["answers"] and x["answers"][0] for x in rep["results"])
    assert rep["target"] == {"kind": "gateway", "model": "local", "base_url": local_server.url}
    for s in rep["families"].values():
        assert s["successes"] == sum(1 for x in rep["results"] if x["family"] in rep["families"] and x["success"]
                                     and s is rep["families"][x["family"]])
        assert s["successes_after_guard"] <= s["successes"]
