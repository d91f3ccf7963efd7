"""docs/security.md names the test behind each statement: every named test must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_named_in_security_md_exists() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    named = 0
    for line in doc.splitlines():
        current: str | None = None
        for m in re.finditer(r"`(tests/[\w/]+\.py)?(::\w+)?(?:\[[^\]`]*\])?`", line):
            path, func = m.group(1), m.group(2)
            if path:
                current = path
                assert (ROOT / path).is_file(), f"docs/security.md names {path}, which does not exist"
            if func:
                assert current, f"docs/security.md: {func} follows no test file on its line"
                src = (ROOT / current).read_text()
                assert re.search(rf"def {func[2:]}\(", src), f"docs/security.md: {current}{func} does not exist"
                named += 1
    assert named >= 40
