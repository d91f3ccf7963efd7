"""The one role matrix (podium.core.roles): its rules, and docs/api.md rendering it."""

from __future__ import annotations

from pathlib import Path

from podium.core.roles import (
    MATRIX,
    ROLES,
    USER_ROLES,
    Action,
    Role,
    allowed,
    describe,
    key_roles_for,
    roles_for,
    user_roles_for,
)
from podium.store.repos.projects import ROLES as STORE_ROLES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_action_has_a_row_and_only_known_roles() -> None:
    assert set(MATRIX) == set(Action)
    assert all(rs <= set(Role) for rs in MATRIX.values())
    assert STORE_ROLES == ROLES == ("admin", "member", "ingest", "viewer", "gateway")


def test_the_rules() -> None:
    assert key_roles_for(Action.ADMIN) == ("admin",)
    assert key_roles_for(Action.READ) == ("admin", "member", "viewer")
    assert key_roles_for(Action.INGEST) == ("admin", "member", "ingest")
    assert key_roles_for(Action.WRITE) == ("admin", "member")
    assert key_roles_for(Action.CALL_MODELS) == ("admin", "member", "gateway")
    # Membership checks (`role in roles_for(...)`) admit owners wherever admins are admitted.
    assert roles_for(Action.ADMIN) == ("owner", "admin")
    assert roles_for(Action.READ) == ("owner", "admin", "member", "viewer")
    # Apps running with an ingest key fetch their prompts: deliberate.
    assert allowed("ingest", Action.USE_PROMPTS) and not allowed("ingest", Action.READ)
    assert not allowed("gateway", Action.READ) and not allowed("viewer", Action.WRITE)
    assert not allowed("root", Action.READ) and not allowed("", Action.USE_PROMPTS)
    for action in Action:  # admin may do everything but make owners; owner everything
        assert allowed(Role.ADMIN, action) == (action is not Action.OWN)
        assert allowed(Role.OWNER, action)
    assert key_roles_for(Action.OWN) == () and roles_for(Action.OWN) == ("owner",)  # no key is an owner
    assert user_roles_for(Action.OWN) == ("owner",)
    assert user_roles_for(Action.ADMIN) == ("owner", "admin")
    assert USER_ROLES == ("owner", "admin", "member", "viewer")


def test_docs_render_the_matrix() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert describe() in text, "docs/api.md's Roles section is stale: paste podium.core.roles.describe() into it"
