"""Package READMEs cannot drift silently: every direct subpackage of ``podium/`` has a
README.md, and every file or folder a README names in backticks (``ingest.py``,
``routes/langfuse.py``, ``core/prompts.py``, ``providers/``, ``docs/gateway.md``) exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PODIUM = ROOT / "podium"

#: A backticked file path: `x.py`, `routes/x.py`, `docs/x.md`, or a folder: `providers/`.
#: Anything with spaces, ``:``, ``$``, ``*`` or ``<...>`` (commands, URLs, globs) is not a path.
PATH = re.compile(r"`([A-Za-z0-9_][\w./-]*(?:\.(?:py|md|json|html|js|css|mako)|/))`")


def packages() -> list[Path]:
    return sorted(p for p in PODIUM.iterdir() if p.is_dir() and (p / "__init__.py").is_file())


def resolve(package: Path, name: str) -> Path | None:
    """Where a README's path points: a bare name is a file of the package itself; a path
    with folders is relative to the package, to ``podium/`` or to the repository root."""
    bases = [package] if "/" not in name.rstrip("/") else [package, PODIUM, ROOT]
    for base in bases:
        path = base / name
        if path.is_dir() if name.endswith("/") else path.is_file():
            return path
    return None


def test_every_package_has_a_readme() -> None:
    missing = [p.name for p in packages() if not (p / "README.md").is_file()]
    assert not missing, (
        f"write podium/<package>/README.md for {missing}: what it owns, its modules, its data flow, "
        "what it may import (docs/architecture.md lists the layers)"
    )


def test_readme_paths_exist() -> None:
    broken = []
    for package in packages():
        readme = package / "README.md"
        if not readme.is_file():
            continue
        for lineno, line in enumerate(readme.read_text().splitlines(), 1):
            for name in PATH.findall(line):
                if resolve(package, name) is None:
                    broken.append(f"podium/{package.name}/README.md:{lineno}: `{name}`")
    assert not broken, (
        "these READMEs name files that do not exist (a bare name is a file of that package; "
        "write `routes/x.py`, `core/x.py` or `docs/x.md` for others); fix the README or the name:\n"
        + "\n".join(broken)
    )


def test_the_checker_sees_a_missing_file() -> None:
    server = PODIUM / "server"
    assert resolve(server, "ingest.py") == server / "ingest.py"
    assert resolve(server, "routes/langfuse.py") == server / "routes" / "langfuse.py"
    assert resolve(server, "core/records.py") == PODIUM / "core" / "records.py"
    assert resolve(server, "routes/") == server / "routes"
    assert resolve(server, "langfuse.py") is None  # bare names are the package's own files
    assert resolve(server, "routes/nope.py") is None
    assert PATH.findall("`a.py`, `routes/b.py`, `podium up`, `$PODIUM_HOME/x.yaml`, `docs/c.md`") == [
        "a.py",
        "routes/b.py",
        "docs/c.md",
    ]
