"""Docs promises: every setting is documented; the README leads with the two commands."""

from __future__ import annotations

from pathlib import Path

from podium.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f"PODIUM_{n.upper()}" for n in Settings.model_fields if f"`PODIUM_{n.upper()}`" not in doc]
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()][-2:] == ["make up", "make test"]
