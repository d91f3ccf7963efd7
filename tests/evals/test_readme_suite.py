"""The README's evaluation example runs as printed against a live server and the bundled local
model: the suite's gate passes with its prompt and fails with the deliberately worse one."""

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

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


@pytest.mark.slow
def test_readme_suite_gate_passes_then_fails_with_the_worse_prompt(server: LiveServer, tmp_path: Path) -> None:
    text = README.read_text()
    m = re.search(r"```bash\n(\.venv/bin/podium eval run examples/eval/suite\.yaml.*?)```", text, re.S)
    assert m, "README lost its `podium eval run examples/eval/suite.yaml` block"
    lines = [ln for ln in m.group(1).splitlines() if ln.strip()]
    env = {**os.environ, "PODIUM_BASE_URL": server.url, "PODIUM_PUBLIC_KEY": server.keys.public_key,
           "PODIUM_SECRET_KEY": server.keys.secret_key, "COLUMNS": "200"}
    seen = []
    for line in lines:
        cmd, _, comment = line.partition("#")
        want = re.search(r"exit (\d)", comment)
        assert want, f"say the expected exit code in the README line's comment: {line}"
        args = shlex.split(cmd.replace(".venv/bin/podium", "", 1))
        args = [str(tmp_path / a) if a.endswith((".html", ".json", ".xml")) else a for a in args]
        r = subprocess.run([sys.executable, "-m", "podium.cli", *args, "--no-progress", "-o",
                            str(tmp_path / f"run{len(seen)}.json")], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == int(want.group(1)), (line, r.stdout, r.stderr)
        seen.append(json.loads((tmp_path / f"run{len(seen)}.json").read_text()))
    good, bad = seen[0], seen[1]
    assert good["passed"] and good["experiments"][0]["experiment"]["labels"] == ["main"]
    assert good["experiments"][0]["experiment"]["summary"]["pass_rate"]["mean"] >= 0.75
    gates = bad["experiments"][0]["gates"]
    assert [g["status"] for g in gates] == ["failed", "failed"]          # the threshold and the regression
    assert gates[1]["comparison"]["metrics"]["pass_rate"]["regressed"] is True
    report = next(tmp_path.glob("*.html"), None)
    assert report is not None and "PASSED" in report.read_text()


@pytest.mark.parametrize("recorded", [False, True])
def test_readme_evaluate_example(server: LiveServer, tmp_path: Path, recorded: bool) -> None:
    code = re.search(r"```python\n# evaluate.py\n(.*?)```", README.read_text(), re.S)
    assert code, "README lost its evaluate.py block"
    (tmp_path / "evaluate.py").write_text(code.group(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    if recorded:
        env.update(PODIUM_BASE_URL=server.url, PODIUM_PUBLIC_KEY=server.keys.public_key,
                   PODIUM_SECRET_KEY=server.keys.secret_key)
    out = subprocess.run([sys.executable, "evaluate.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'arithmetic'" in out.stdout and "pass_rate  0.667" in out.stdout and "equals" in out.stdout
    with server.client() as c:
        rows = c.get("/api/v1/experiments", params={"name": "arithmetic"}).json()["data"]
    assert len(rows) == (1 if recorded else 0)
