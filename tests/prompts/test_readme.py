"""The README's prompt example runs as printed against a live server and the local model."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_prompt_example(server: LiveServer, tmp_path: Path) -> None:
    text = README.read_text()
    code = re.search(r"```python\n# prompts.py\n(.*?)```", text, re.S)
    assert code, "README lost its prompts.py block"
    (tmp_path / "prompts.py").write_text(code.group(1))
    env = {**os.environ, "PODIUM_BASE_URL": server.url, "PODIUM_PUBLIC_KEY": server.keys.public_key,
           "PODIUM_SECRET_KEY": server.keys.secret_key, "PODIUM_FLUSH_INTERVAL": "0.05"}
    outputs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "prompts.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        outputs.append(out.stdout)
    assert outputs[0].startswith("v1: ") and outputs[1].startswith("v2: ")
    # The shell lines after it, as printed (the podium CLI from this interpreter).
    block = text[code.end():].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands[0] == ".venv/bin/podium prompts list"
    for cmd in commands:
        args = shlex.split(cmd.replace(".venv/bin/podium", "", 1))
        r = subprocess.run([sys.executable, "-m", "podium.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    assert (tmp_path / "prompts" / "qa.yaml").exists()
    with server.client() as c:
        deadline = time.monotonic() + 10
        while True:
            rows = {r["version"]: r for r in c.get("/api/v1/prompts/qa/analytics").json()["data"]}
            if rows[1]["count"] == 1 and rows[2]["count"] == 1:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
        # label 1:90 2:10, then rollback: production is back on v2 alone.
        assert c.get("/api/v1/prompts/qa/labels/production").json()["targets"] == [{"version": 2, "weight": 1.0}]
        history = c.get("/api/v1/prompts/qa/labels/production/history").json()["data"]
        assert [e["action"] for e in history] == ["rollback", "set", "set", "set"]
