"""Invitations: an owner or admin invites an email with a role; a one-time link with an expiry.

The link carries 32 random bytes; the ``invitation`` row keeps their sha256. Accepting claims
the row atomically (``accepted_at`` set only while it is pending and unexpired), then either
adds the membership to the signed-in user whose email matches, or creates the account with
the password given on the accept page. Only an owner may invite owners or admins.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from podium.core.roles import Action, allowed
from podium.errors import Conflict, Forbidden, NotFound
from podium.governance.passwords import check_policy, hash_password
from podium.governance.sessions import token_hash
from podium.governance.users import ensure_in_organisation
from podium.store import Store
from podium.store.repos.users import Invitation, User, check_role

__all__ = ["accept", "invite", "pending"]


def invite(store: Store, project_id: str, email: str, role: str, *, invited_by: str | None, ttl: timedelta,
           actor_role: str) -> tuple[Invitation, str]:
    """A new invitation and its one-time token (shown once: the link is ``/invite/<token>``)."""
    check_role(role)
    if role in ("owner", "admin") and not allowed(actor_role, Action.OWN):
        raise Forbidden(f"only an owner may invite owners or admins (your role: {actor_role}); invite as member "
                        "or viewer, or ask an owner")
    token = secrets.token_urlsafe(32)
    inv = store.users.create_invitation(project_id=project_id, email=email, role=role, token_hash=token_hash(token),
                                        invited_by=invited_by, expires_at=datetime.now(UTC) + ttl)
    return inv, token


def pending(store: Store, token: str, *, now: datetime | None = None) -> Invitation:
    """The invitation behind this token while it can still be accepted (else a clear error)."""
    inv = store.users.invitation_by_token(token_hash(token)) if token and len(token) < 200 else None
    if inv is None:
        raise NotFound("this invitation link is unknown; ask whoever invited you for a new one")
    state = inv.state(now or datetime.now(UTC))
    if state != "pending":
        raise Conflict(f"this invitation was {state}; ask whoever invited you for a new one")
    return inv


def accept(store: Store, token: str, *, user: User | None = None, password: str | None = None,
           name: str | None = None) -> tuple[User, Invitation]:
    """Accept: as the signed-in ``user`` (their email must be the invited one), or by creating the
    account with ``password``. One-time: a second accept gets 409."""
    now = datetime.now(UTC)
    inv = pending(store, token, now=now)
    if user is None:
        existing = store.users.by_email(inv.email)
        if existing is not None:
            raise Conflict(f"{inv.email} already has an account: sign in first, then open this link again")
        check_policy(password or "")
    elif user.email != inv.email:
        raise Forbidden(f"this invitation is for {inv.email}, and you are signed in as {user.email}; sign out and "
                        "open the link again")
    # Claim first (atomic), so a link used twice at once adds one membership.
    claimant = user.id if user is not None else "new-account"
    if not store.users.claim_invitation(inv.id, claimant, now):
        raise Conflict("this invitation was just used or expired; ask whoever invited you for a new one")
    if user is None:
        user = store.users.create_user(inv.email, password_hash=hash_password(password or ""), name=name)
        store.users.set_invitation_acceptor(inv.id, user.id)
    store.users.set_member(inv.project_id, user.id, inv.role)
    ensure_in_organisation(store, inv.project_id)
    return user, inv
