"""The README's step 10 runs as printed against a live server and the bundled local model: a sweep
of the capitals suite over system prompts and max_tokens, a rule that picks the cheapest
configuration that is not significantly worse, and its promotion to a new prompt version that the
suite's gates let into `production` (the issue-19 "done when" path)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.one_db, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def _podium(line: str, env: dict[str, str], tmp: Path, *extra: str) -> str:
    args = shlex.split(line.split("#")[0].replace(".venv/bin/podium", "", 1))
    args = [str(tmp / a) if a.endswith(".html") else a for a in args]
    r = subprocess.run([sys.executable, "-m", "podium.cli", *args, *extra], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, (line, r.stdout[-6000:], r.stderr[-3000:])
    return r.stdout


def test_readme_sweep_decide_and_promote(server: LiveServer, tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"\*\*10\. Find the cheapest.*?```bash\n(.*?)```", text, re.S)
    assert m, "README lost step 10's bash block"
    sweep_line, decide_line, promote_line = [ln for ln in m.group(1).splitlines() if ln.strip()]
    env = {**os.environ, "PODIUM_BASE_URL": server.url, "PODIUM_PUBLIC_KEY": server.keys.public_key,
           "PODIUM_SECRET_KEY": server.keys.secret_key, "COLUMNS": "80", "TERM": "dumb"}

    # step 6 ran first: its passing run is labelled `main`, the baseline of the suite's no-regression gate
    _podium(".venv/bin/podium eval run examples/eval/suite.yaml --label main", env, tmp_path, "--no-progress")
    out = json.loads(_podium(sweep_line, env, tmp_path, "--json"))
    assert out["status"] == "completed" and out["recorded"] and len(out["trials"]) == 4, out["summary"]
    assert out["front"] and all(t["status"] == "complete" for t in out["trials"])
    assert "<svg" in (tmp_path / "sweep.html").read_text()
    sweep_id = out["id"]

    decision = json.loads(_podium(decide_line.replace("SWEEP_ID", sweep_id), env, tmp_path, "--json"))
    trial = decision["trial"]["number"]
    assert decision["rule"] == "cheapest_not_worse" and decision["evidence"]["reason"], decision

    promoted = json.loads(_podium(promote_line.replace("SWEEP_ID", sweep_id).replace("--trial N", f"--trial {trial}"),
                                  env, tmp_path, "--json"))
    assert promoted["passed"] and promoted["label"] == "production", promoted
    chosen = decision["trial"]["config"]
    with server.client() as c:
        v = c.get(f"/api/v1/prompts/capitals/versions/{promoted['version']}").json()
    assert "production" in v["labels"] and v["config"]["model"] == chosen["model"], v
    assert all(v["config"][k] == val for k, val in (chosen.get("params") or {}).items()), (v, chosen)
    assert v["config"]["temperature"] == 0  # the suite provider's settings the trial ran with, kept
