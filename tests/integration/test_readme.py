"""The README's quickstart code runs as printed and produces the trace it describes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def test_quickstart_app_runs_against_a_live_server(server: LiveServer, tmp_path: Path) -> None:
    code = re.search(r"```python\n# app.py\n(.*?)```", README.read_text(), re.S)
    assert code, "README lost its app.py quickstart block"
    (tmp_path / "app.py").write_text(code.group(1))
    env = {
        **os.environ,
        "PODIUM_BASE_URL": server.url,
        "PODIUM_PUBLIC_KEY": server.keys.public_key,
        "PODIUM_SECRET_KEY": server.keys.secret_key,
    }
    out = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "dropped=0, failed=0" in out.stdout
    with server.client() as c:
        traces = c.get("/api/v1/traces").json()["data"]
        assert [t["name"] for t in traces] == ["qa"]
        t = c.get(f"/api/v1/traces/{traces[0]['id']}").json()
    assert t["user_id"] == "alice" and t["session_id"] == "chat-1" and t["tags"] == ["demo"]
    assert {s["name"] for s in t["spans"]} == {"qa", "retrieve", "answer"} and t["total_tokens"] == 16


@pytest.mark.slow
def test_gateway_example_runs_against_the_local_model(server: LiveServer, tmp_path: Path) -> None:
    code = re.search(r"```python\n# gateway.py\n(.*?)```", README.read_text(), re.S)
    assert code, "README lost its gateway.py block"
    (tmp_path / "gateway.py").write_text(code.group(1))
    env = {**os.environ, "PODIUM_BASE_URL": server.url, "PODIUM_SECRET_KEY": server.keys.secret_key}
    out = subprocess.run([sys.executable, "gateway.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "384" and len(lines) >= 3 and lines[0].strip()
    with server.client() as c:
        for _ in range(50):
            traces = c.get("/api/v1/traces", params={"user_id": "alice"}).json()["data"]
            if traces:
                break
            time.sleep(0.1)
    assert traces and traces[0]["name"] == "gateway local"
