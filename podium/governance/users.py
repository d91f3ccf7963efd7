"""People: accounts, password sign-in, and who may change whose role.

Rules (``podium.core.roles``): an admin manages members and viewers; only an owner
(:attr:`Action.OWN`) makes, unmakes or removes owners and admins. A project always keeps
one active owner once it has one: the last owner cannot be demoted or removed.
"""

from __future__ import annotations

import logging

from podium.core.roles import Action, allowed
from podium.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from podium.governance.login_limits import LoginLimiter
from podium.governance.oidc import Identity, OidcError
from podium.governance.passwords import hash_password, needs_rehash, verify_password
from podium.store import Store
from podium.store.repos.users import User, check_role

__all__ = ["DEFAULT_ORGANISATION", "change_password", "check_may_manage", "create_user", "ensure_in_organisation", "oidc_user", "password_login",
           "remove_member", "set_role"]

logger = logging.getLogger("podium.governance")

#: The organisation projects join unless told otherwise.
DEFAULT_ORGANISATION = "default"
_PRIVILEGED = frozenset({"owner", "admin"})


def ensure_in_organisation(store: Store, project_id: str, organisation: str | None = None) -> None:
    """Put the project in ``organisation`` (default: ``default``) unless it is in one already."""
    if organisation is None and store.users.organisation_of(project_id) is not None:
        return
    org = store.users.ensure_organisation(organisation or DEFAULT_ORGANISATION)
    store.users.attach_project(project_id, org.id)


def create_user(store: Store, email: str, *, password: str | None, role: str, project_id: str,
                name: str | None = None) -> User:
    """A new account (password hashed with argon2id) that is a member of ``project_id`` with ``role``."""
    check_role(role)
    pw_hash = hash_password(password) if password is not None else None
    user = store.users.create_user(email, password_hash=pw_hash, name=name)
    store.users.set_member(project_id, user.id, role)
    ensure_in_organisation(store, project_id)
    return user


def password_login(store: Store, limiter: LoginLimiter, email: str, password: str, ip: str | None) -> User:
    """The user these credentials sign in, or 401 (the same message for a wrong password, an unknown
    email and a disabled account) or 429 when this account or address failed too often lately."""
    limiter.check(email, ip)
    user = store.users.by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled_at is not None:
        limiter.failed(email, ip)
        logger.warning("login.failed email=%r ip=%s reason=%s", email[:320], ip,
                       "disabled" if ok and user is not None else "bad credentials")
        raise Unauthorized("wrong email or password; ask an admin of your project for an invitation, or "
                           "reset it with `podium users set-password EMAIL`")
    limiter.succeeded(email)
    if user.password_hash and needs_rehash(user.password_hash):
        store.users.update_user(user.id, password_hash=hash_password(password))
    return user


def change_password(store: Store, user: User, current: str | None, new: str) -> None:
    """Set a new password; ``current`` must match when the account has one."""
    if user.password_hash and not verify_password(user.password_hash, current or ""):
        raise ValidationFailed("the current password is wrong; type it again (or ask an admin to run "
                               "`podium users set-password`)")
    store.users.update_user(user.id, password_hash=hash_password(new))


def check_may_manage(actor_role: str, target_role: str | None) -> None:
    """403 unless ``actor_role`` may act on a member with ``target_role`` (owners and admins: owners only)."""
    _owner_rule(actor_role, target_role, None)


def _owner_rule(actor_role: str, old: str | None, new: str | None) -> None:
    if ({old, new} & _PRIVILEGED) and not allowed(actor_role, Action.OWN):
        raise Forbidden(f"only an owner may make, unmake or remove owners and admins (your role: {actor_role}); "
                        "ask an owner of this project")


def set_role(store: Store, project_id: str, user_id: str, role: str, *, actor_role: str,
             add: bool = False) -> str | None:
    """Change a member's role (with ``add``, also add a user who is not a member: the CLI); returns the old role."""
    check_role(role)
    store.users.get_user(user_id)  # 404 for an unknown user
    old = store.users.role_of(project_id, user_id)
    if old is None and not add:
        raise NotFound(f"user {user_id!r} is not a member of this project; invite them instead")
    _owner_rule(actor_role, old, role)
    if old == "owner" and role != "owner" and store.users.count_owners(project_id) <= 1:
        raise Conflict("this is the project's last owner; make someone else an owner first")
    store.users.set_member(project_id, user_id, role)
    return old


def remove_member(store: Store, project_id: str, user_id: str, *, actor_role: str) -> str:
    """Remove a member from the project; returns their role."""
    old = store.users.role_of(project_id, user_id)
    if old is None:
        raise NotFound(f"user {user_id!r} is not a member of this project; GET /api/v1/members lists them")
    _owner_rule(actor_role, old, None)
    if old == "owner" and store.users.count_owners(project_id) <= 1:
        raise Conflict("this is the project's last owner; make someone else an owner first")
    return store.users.remove_member(project_id, user_id)


def oidc_user(store: Store, identity: Identity, *, allowed_domains: str, default_role: str,
              project: str | None) -> User:
    """The account an OIDC identity signs in: the one linked to it; else the account with its
    (provider-verified) email, which gets linked; else, for an email of an allowed domain, a new
    account that joins ``project`` (default: ``default``) with ``default_role``. Anyone else is
    refused (ask for an invitation)."""
    user = store.users.by_oidc_subject(identity.key)
    if user is None and identity.email:
        if not identity.email_verified:
            raise OidcError(f"the identity provider has not verified the email {identity.email}; verify it there, "
                            "or ask an admin to invite you")
        user = store.users.by_email(identity.email)
        if user is not None:
            if user.oidc_subject and user.oidc_subject != identity.key:
                raise OidcError(f"{identity.email} is linked to another single sign-on identity; ask an admin")
            user = store.users.update_user(user.id, oidc_subject=identity.key)
        else:
            domains = {d.strip().lower().lstrip("@") for d in allowed_domains.split(",") if d.strip()}
            domain = identity.email.rsplit("@", 1)[-1]
            if domain not in domains:
                raise OidcError(f"there is no account for {identity.email}, and {domain} is not an allowed domain "
                                "(PODIUM_OIDC_ALLOWED_DOMAINS); ask an admin of a project to invite you")
            target = store.projects.get_project(project or "default")
            user = store.users.create_user(identity.email, name=identity.name, oidc_subject=identity.key)
            store.users.set_member(target.id, user.id, check_role(default_role))
            ensure_in_organisation(store, target.id)
            logger.info("user.create (oidc auto-provisioning) email=%s project=%s role=%s", identity.email,
                        target.name, default_role)
    if user is None:
        raise OidcError("the identity provider sent no email and this identity is linked to no account; ask an "
                        "admin to invite you")
    if user.disabled_at is not None:
        raise OidcError(f"the account {user.email} is disabled; ask an owner of your project")
    if not store.users.memberships(user.id):
        raise OidcError(f"{user.email} is not a member of any project yet; ask an admin of a project to invite you")
    return user
