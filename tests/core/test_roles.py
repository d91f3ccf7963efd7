"""The one role matrix (podium.core.roles): its rules, and docs/api.md rendering it."""

from __future__ import annotations

from pathlib import Path

from podium.core.roles import MATRIX, ROLES, Action, Role, allowed, describe, roles_for
from podium.store.repos.projects import ROLES as STORE_ROLES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_action_has_a_row_and_only_known_roles() -> None:
    assert set(MATRIX) == set(Action)
    assert all(rs <= set(Role) for rs in MATRIX.values())
    assert STORE_ROLES == ROLES == ("admin", "member", "ingest", "viewer", "gateway")


def test_the_rules() -> None:
    assert roles_for(Action.ADMIN) == ("admin",)
    assert roles_for(Action.READ) == ("admin", "member", "viewer")
    assert roles_for(Action.INGEST) == ("admin", "member", "ingest")
    assert roles_for(Action.WRITE) == ("admin", "member")
    assert roles_for(Action.CALL_MODELS) == ("admin", "member", "gateway")
    # Apps running with an ingest key fetch their prompts: deliberate.
    assert allowed("ingest", Action.USE_PROMPTS) and not allowed("ingest", Action.READ)
    assert not allowed("gateway", Action.READ) and not allowed("viewer", Action.WRITE)
    assert not allowed("root", Action.READ) and not allowed("", Action.USE_PROMPTS)
    for action in Action:  # admin may do everything
        assert allowed(Role.ADMIN, action)


def test_docs_render_the_matrix() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert describe() in text, "docs/api.md's Roles section is stale: paste podium.core.roles.describe() into it"
