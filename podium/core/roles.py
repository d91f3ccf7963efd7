"""The one role matrix: which role (of an API key, or of a signed-in user in a project) may perform which action.

Every permission check in Podium (the REST API, the Langfuse-compatible API, OTLP over
HTTP and gRPC, the web UI and the OpenAI-compatible gateway) asks this module; nothing
else spells out a set of roles. ``docs/api.md`` renders :func:`describe` (checked by
``tests/core/test_roles.py``).

Keys carry one of :data:`ROLES` (admin, member, ingest, viewer, gateway); people are members of
a project with one of :data:`USER_ROLES` (owner, admin, member, viewer). ``owner`` may do all an
admin may, plus manage owners and admins (:attr:`Action.OWN`).

Pure and stdlib-only, so every layer may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = ["MATRIX", "ROLES", "USER_ROLES", "Action", "Role", "allowed", "describe", "key_roles_for", "roles_for", "user_roles_for"]


class Role(StrEnum):
    """A key's or a project member's role (stored as its string value)."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    INGEST = "ingest"
    VIEWER = "viewer"
    GATEWAY = "gateway"


class Action(StrEnum):
    """A named thing a key may do; each route's check names exactly one."""

    READ = "read"
    INGEST = "ingest"
    USE_PROMPTS = "use_prompts"
    WRITE = "write"
    ADMIN = "admin"
    CALL_MODELS = "call_models"
    GUARD_SCAN = "guard_scan"
    FEEDBACK = "feedback"
    OWN = "own"


#: Every role an API key may have, in the order the UI and error messages list them.
ROLES: tuple[str, ...] = ("admin", "member", "ingest", "viewer", "gateway")
#: Every role a person may have in a project (``podium users set-role``, /settings/members).
USER_ROLES: tuple[str, ...] = ("owner", "admin", "member", "viewer")

_O, _A, _M, _I, _V, _G = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.INGEST, Role.VIEWER, Role.GATEWAY

#: THE table. Change permissions here and nowhere else.
MATRIX: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.READ: frozenset({_O, _A, _M, _V}),
        Action.INGEST: frozenset({_O, _A, _M, _I}),
        # Apps running with an ingest key fetch and compile their prompts: deliberate.
        Action.USE_PROMPTS: frozenset({_O, _A, _M, _V, _I}),
        Action.WRITE: frozenset({_O, _A, _M}),
        Action.ADMIN: frozenset({_O, _A}),
        Action.CALL_MODELS: frozenset({_O, _A, _M, _G}),
        # Apps check their own text before and after their model calls, with the key they have.
        Action.GUARD_SCAN: frozenset({_O, _A, _M, _I, _G}),
        # End users' thumbs up/down, sent from browsers and apps with the public key alone.
        Action.FEEDBACK: frozenset({_O, _A, _M, _I}),
        # Owners only: make or unmake owners and admins, disable users.
        Action.OWN: frozenset({_O}),
    }
)

_DESCRIPTIONS: Mapping[Action, str] = MappingProxyType(
    {
        Action.READ: "read traces, sessions, scores, prompts, datasets and experiments",
        Action.INGEST: "send telemetry: traces, spans, logs, scores and feedback (OTLP, Langfuse ingestion)",
        Action.USE_PROMPTS: "fetch and compile prompts (apps running with an ingest key may)",
        Action.WRITE: "change prompts, labels, datasets and experiments",
        Action.ADMIN: "manage keys, settings, limits, aliases, score configs, deletions and protected labels",
        Action.CALL_MODELS: "call models through the OpenAI-compatible gateway",
        Action.GUARD_SCAN: "scan text with a guardrail policy (`POST /api/v1/guard/scan`; with `trace_id`, "
        "record the decision on that trace)",
        Action.FEEDBACK: "send end-user feedback (`POST /api/v1/feedback`) with the key's public key alone: "
        "write-only, rate-limited; the public key grants nothing else",
        Action.OWN: "make, unmake or remove owners and admins, invite them, disable a user (people only: no key "
        "has the owner role)",
    }
)


def _role(role: str | Role) -> Role | None:
    try:
        return Role(role)
    except ValueError:
        return None


def allowed(role: str | Role, action: Action) -> bool:
    """Whether a key or member with ``role`` may perform ``action`` (unknown roles may do nothing)."""
    r = _role(role)
    return r is not None and r in MATRIX[action]


def roles_for(action: Action) -> tuple[str, ...]:
    """Every role (of a key or a member) allowed ``action``, in :class:`Role` order: what ``role in
    roles_for(...)`` checks use. Messages about keys name :func:`key_roles_for`."""
    return tuple(r.value for r in Role if r in MATRIX[action])


def key_roles_for(action: Action) -> tuple[str, ...]:
    """The key roles allowed ``action``, in :data:`ROLES` order (for messages about keys)."""
    return tuple(r for r in ROLES if Role(r) in MATRIX[action])


def user_roles_for(action: Action) -> tuple[str, ...]:
    """The member roles allowed ``action``, in :data:`USER_ROLES` order (for messages to people)."""
    return tuple(r for r in USER_ROLES if Role(r) in MATRIX[action])


def describe() -> str:
    """The matrix as a Markdown table (rendered into docs/api.md's "Roles" section)."""
    head = "| action | " + " | ".join(r.value for r in Role) + " | what it covers |"
    rule = "|---|" + "---|" * len(Role) + "---|"
    rows = [
        f"| `{a.value}` | " + " | ".join("yes" if r in MATRIX[a] else "—" for r in Role) + f" | {_DESCRIPTIONS[a]} |"
        for a in Action
    ]
    return "\n".join([head, rule, *rows]) + "\n"
