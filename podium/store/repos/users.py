"""People: organisations, users, project memberships, sign-in sessions and invitations.

Passwords arrive here already hashed (podium.governance.passwords); session and invitation
tokens arrive as their sha256 (the raw tokens live only in cookies and links).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from podium.core.roles import USER_ROLES
from podium.errors import Conflict, NotFound, ValidationFailed
from podium.store import tables as t

__all__ = ["Invitation", "Member", "Membership", "Organisation", "SessionRow", "User", "UserRepo"]


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str | None
    password_hash: str | None
    oidc_subject: str | None
    created_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Member:
    """A user as a member of one project."""

    user: User
    role: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    """One project a user belongs to."""

    project_id: str
    project_name: str
    role: str


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: str
    project_id: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    ip: str | None
    user_agent: str | None
    method: str


@dataclass(frozen=True, slots=True)
class Invitation:
    id: str
    project_id: str
    email: str
    role: str
    invited_by: str | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: str | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """``pending``, ``accepted``, ``revoked`` or ``expired``."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "pending"


def normalise_email(email: str) -> str:
    e = (email or "").strip().lower()
    if len(e) > 320 or "@" not in e or e.startswith("@") or e.endswith("@") or any(c.isspace() for c in e):
        raise ValidationFailed(f"{email!r} is not an email address; give one like ana@example.com")
    return e


def check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise ValidationFailed(f"unknown role {role!r}; a member's role is one of {', '.join(USER_ROLES)}")
    return role


def _now() -> datetime:
    return datetime.now(UTC)


class UserRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- organisations ------------------------------------------------------------------------
    def ensure_organisation(self, name: str) -> Organisation:
        """The organisation named ``name``, made on first use."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed("an organisation name has 1-200 characters")
        with self._engine.connect() as conn:
            r = conn.execute(select(t.organisation).where(t.organisation.c.name == name)).first()
        if r is not None:
            return Organisation(r.id, r.name, r.created_at)
        org = Organisation(str(uuid.uuid4()), name, _now())
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(t.organisation).values(id=org.id, name=org.name, created_at=org.created_at))
        except IntegrityError:  # made meanwhile
            return self.ensure_organisation(name)
        return org

    def attach_project(self, project_id: str, organisation_id: str) -> None:
        """Put a project in an organisation (moving it when it was in another)."""
        with self._engine.begin() as conn:
            conn.execute(delete(t.organisation_project).where(t.organisation_project.c.project_id == project_id))
            conn.execute(insert(t.organisation_project).values(project_id=project_id,
                                                               organisation_id=organisation_id))

    def organisation_of(self, project_id: str) -> Organisation | None:
        with self._engine.connect() as conn:
            r = conn.execute(
                select(t.organisation).join(t.organisation_project,
                                            t.organisation_project.c.organisation_id == t.organisation.c.id)
                .where(t.organisation_project.c.project_id == project_id)
            ).first()
        return Organisation(r.id, r.name, r.created_at) if r is not None else None

    # --- users --------------------------------------------------------------------------------
    def count_users(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.app_user)).scalar_one())

    def create_user(self, email: str, *, password_hash: str | None = None, name: str | None = None,
                    oidc_subject: str | None = None) -> User:
        u = User(str(uuid.uuid4()), normalise_email(email), (name or "").strip()[:200] or None, password_hash,
                 oidc_subject, _now(), None, None)
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(t.app_user).values(
                    id=u.id, email=u.email, name=u.name, password_hash=u.password_hash,
                    oidc_subject=u.oidc_subject, created_at=u.created_at))
        except IntegrityError:
            raise Conflict(f"a user with the email {u.email!r} already exists; `podium users set-role` "
                           "changes their role, `podium users invite` adds them to another project")
        return u

    def get_user(self, user_id: str) -> User:
        with self._engine.connect() as conn:
            r = conn.execute(select(t.app_user).where(t.app_user.c.id == user_id)).first()
        if r is None:
            raise NotFound(f"no user {user_id!r}; `podium users list` shows them")
        return _user(r)

    def by_email(self, email: str) -> User | None:
        try:
            e = normalise_email(email)
        except ValidationFailed:
            return None
        with self._engine.connect() as conn:
            r = conn.execute(select(t.app_user).where(t.app_user.c.email == e)).first()
        return _user(r) if r is not None else None

    def by_oidc_subject(self, subject: str) -> User | None:
        with self._engine.connect() as conn:
            r = conn.execute(select(t.app_user).where(t.app_user.c.oidc_subject == subject)).first()
        return _user(r) if r is not None else None

    def list_users(self) -> list[User]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.app_user).order_by(t.app_user.c.created_at)).all()
        return [_user(r) for r in rows]

    def update_user(self, user_id: str, **values: Any) -> User:
        """Set ``password_hash``, ``name``, ``oidc_subject``, ``disabled_at`` or ``last_login_at``."""
        allowed = {"password_hash", "name", "oidc_subject", "disabled_at", "last_login_at"}
        bad = set(values) - allowed
        if bad:
            raise ValueError(f"cannot set {bad}")
        with self._engine.begin() as conn:
            n = conn.execute(update(t.app_user).where(t.app_user.c.id == user_id).values(**values)).rowcount
        if not n:
            raise NotFound(f"no user {user_id!r}; `podium users list` shows them")
        return self.get_user(user_id)

    # --- memberships --------------------------------------------------------------------------
    def set_member(self, project_id: str, user_id: str, role: str) -> str | None:
        """Add the user to the project with ``role``, or change their role; returns the old role."""
        check_role(role)
        with self._engine.begin() as conn:
            old = conn.execute(select(t.project_member.c.role).where(
                t.project_member.c.project_id == project_id, t.project_member.c.user_id == user_id)).scalar()
            if old is None:
                conn.execute(insert(t.project_member).values(project_id=project_id, user_id=user_id, role=role,
                                                             created_at=_now()))
            else:
                conn.execute(update(t.project_member).where(
                    t.project_member.c.project_id == project_id, t.project_member.c.user_id == user_id,
                ).values(role=role))
        return old

    def remove_member(self, project_id: str, user_id: str) -> str:
        """Remove the user from the project (their sessions on it lose it); returns their role."""
        with self._engine.begin() as conn:
            old = conn.execute(select(t.project_member.c.role).where(
                t.project_member.c.project_id == project_id, t.project_member.c.user_id == user_id)).scalar()
            if old is None:
                raise NotFound(f"user {user_id!r} is not a member of this project")
            conn.execute(delete(t.project_member).where(
                t.project_member.c.project_id == project_id, t.project_member.c.user_id == user_id))
            conn.execute(update(t.user_session).where(
                t.user_session.c.user_id == user_id, t.user_session.c.project_id == project_id,
            ).values(project_id=None))
        return str(old)

    def role_of(self, project_id: str, user_id: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.execute(select(t.project_member.c.role).where(
                t.project_member.c.project_id == project_id, t.project_member.c.user_id == user_id)).scalar()

    def list_members(self, project_id: str) -> list[Member]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.app_user, t.project_member.c.role, t.project_member.c.created_at.label("since"))
                .join(t.project_member, t.project_member.c.user_id == t.app_user.c.id)
                .where(t.project_member.c.project_id == project_id)
                .order_by(t.app_user.c.email)
            ).all()
        return [Member(_user(r), r.role, r.since) for r in rows]

    def count_owners(self, project_id: str) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t.project_member.join(
                    t.app_user, t.app_user.c.id == t.project_member.c.user_id))
                .where(t.project_member.c.project_id == project_id, t.project_member.c.role == "owner",
                       t.app_user.c.disabled_at.is_(None))
            ).scalar_one())

    def memberships(self, user_id: str) -> list[Membership]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t.project_member.c.project_id, t.project.c.name, t.project_member.c.role)
                .join(t.project, t.project.c.id == t.project_member.c.project_id)
                .where(t.project_member.c.user_id == user_id)
                .order_by(t.project.c.created_at)
            ).all()
        return [Membership(r.project_id, r.name, r.role) for r in rows]

    # --- sessions -----------------------------------------------------------------------------
    def create_session(self, session_id: str, *, user_id: str, project_id: str | None, expires_at: datetime,
                       ip: str | None, user_agent: str | None, method: str) -> SessionRow:
        now = _now()
        row = SessionRow(session_id, user_id, project_id, now, now, expires_at, None, (ip or None) and ip[:64],
                         (user_agent or None) and user_agent[:300], method)
        with self._engine.begin() as conn:
            conn.execute(insert(t.user_session).values(
                id=row.id, user_id=user_id, project_id=project_id, created_at=now, last_seen_at=now,
                expires_at=expires_at, ip=row.ip, user_agent=row.user_agent, method=method))
            conn.execute(update(t.app_user).where(t.app_user.c.id == user_id).values(last_login_at=now))
        return row

    def session_principal(self, session_id: str) -> tuple[SessionRow, User, str | None] | None:
        """The session, its user and the user's role in the session's project (None: not a member), in one query."""
        s, u, m = t.user_session, t.app_user, t.project_member
        with self._engine.connect() as conn:
            r = conn.execute(
                select(s, u.c.email, u.c.name, u.c.password_hash, u.c.oidc_subject, u.c.created_at.label("u_created"),
                       u.c.disabled_at, u.c.last_login_at, m.c.role)
                .join(u, u.c.id == s.c.user_id)
                .outerjoin(m, and_(m.c.user_id == s.c.user_id, m.c.project_id == s.c.project_id))
                .where(s.c.id == session_id)
            ).first()
        if r is None:
            return None
        user = User(r.user_id, r.email, r.name, r.password_hash, r.oidc_subject, r.u_created, r.disabled_at,
                    r.last_login_at)
        return _session(r), user, r.role

    def touch_session(self, session_id: str, when: datetime) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(t.user_session).where(t.user_session.c.id == session_id).values(last_seen_at=when))

    def set_session_project(self, session_id: str, project_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(t.user_session).where(t.user_session.c.id == session_id).values(project_id=project_id))

    def revoke_session(self, session_id: str) -> bool:
        with self._engine.begin() as conn:
            return bool(conn.execute(update(t.user_session).where(
                t.user_session.c.id == session_id, t.user_session.c.revoked_at.is_(None)).values(revoked_at=_now())
            ).rowcount)

    def revoke_user_sessions(self, user_id: str) -> int:
        """Sign the user out everywhere; returns how many sessions ended."""
        with self._engine.begin() as conn:
            return int(conn.execute(update(t.user_session).where(
                t.user_session.c.user_id == user_id, t.user_session.c.revoked_at.is_(None)).values(revoked_at=_now())
            ).rowcount)

    def list_sessions(self, user_id: str, *, active_at: datetime | None = None) -> list[SessionRow]:
        q = select(t.user_session).where(t.user_session.c.user_id == user_id)
        if active_at is not None:
            q = q.where(t.user_session.c.revoked_at.is_(None), t.user_session.c.expires_at > active_at)
        with self._engine.connect() as conn:
            rows = conn.execute(q.order_by(t.user_session.c.created_at.desc())).all()
        return [_session(r) for r in rows]

    def purge_sessions(self, before: datetime) -> int:
        """Delete sessions that expired or were revoked before ``before`` (housekeeping)."""
        s = t.user_session
        with self._engine.begin() as conn:
            return int(conn.execute(delete(s).where(
                (s.c.expires_at < before) | (s.c.revoked_at < before))).rowcount)

    # --- invitations --------------------------------------------------------------------------
    def create_invitation(self, *, project_id: str, email: str, role: str, token_hash: str,
                          invited_by: str | None, expires_at: datetime) -> Invitation:
        inv = Invitation(str(uuid.uuid4()), project_id, normalise_email(email), check_role(role),
                         (invited_by or None) and invited_by[:400], _now(), expires_at, None, None, None)
        with self._engine.begin() as conn:
            conn.execute(insert(t.invitation).values(
                id=inv.id, project_id=project_id, email=inv.email, role=inv.role, token_hash=token_hash,
                invited_by=inv.invited_by, created_at=inv.created_at, expires_at=expires_at))
        return inv

    def invitation_by_token(self, token_hash: str) -> Invitation | None:
        with self._engine.connect() as conn:
            r = conn.execute(select(t.invitation).where(t.invitation.c.token_hash == token_hash)).first()
        return _invitation(r) if r is not None else None

    def list_invitations(self, project_id: str) -> list[Invitation]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.invitation).where(t.invitation.c.project_id == project_id)
                                .order_by(t.invitation.c.created_at.desc())).all()
        return [_invitation(r) for r in rows]

    def claim_invitation(self, invitation_id: str, user_id: str, now: datetime) -> bool:
        """Mark a pending, unexpired invitation accepted by ``user_id``: True for exactly one caller."""
        i = t.invitation
        with self._engine.begin() as conn:
            return bool(conn.execute(update(i).where(
                i.c.id == invitation_id, i.c.accepted_at.is_(None), i.c.revoked_at.is_(None), i.c.expires_at > now,
            ).values(accepted_at=now, accepted_by=user_id)).rowcount)

    def set_invitation_acceptor(self, invitation_id: str, user_id: str) -> None:
        """Name the account made by accepting (claimed before the account existed)."""
        with self._engine.begin() as conn:
            conn.execute(update(t.invitation).where(t.invitation.c.id == invitation_id).values(accepted_by=user_id))

    def revoke_invitation(self, project_id: str, invitation_id: str) -> Invitation:
        i = t.invitation
        with self._engine.begin() as conn:
            n = conn.execute(update(i).where(
                i.c.id == invitation_id, i.c.project_id == project_id, i.c.accepted_at.is_(None),
                i.c.revoked_at.is_(None)).values(revoked_at=_now())).rowcount
            r = conn.execute(select(i).where(i.c.id == invitation_id, i.c.project_id == project_id)).first()
        if r is None:
            raise NotFound(f"no invitation {invitation_id!r} in this project; GET /api/v1/invitations lists them")
        if not n:
            raise Conflict("this invitation was already accepted or revoked")
        return _invitation(r)


def _user(r: Row[Any]) -> User:
    return User(r.id, r.email, r.name, r.password_hash, r.oidc_subject, r.created_at, r.disabled_at, r.last_login_at)


def _session(r: Row[Any]) -> SessionRow:
    return SessionRow(r.id, r.user_id, r.project_id, r.created_at, r.last_seen_at, r.expires_at, r.revoked_at, r.ip,
                      r.user_agent, r.method)


def _invitation(r: Row[Any]) -> Invitation:
    return Invitation(r.id, r.project_id, r.email, r.role, r.invited_by, r.created_at, r.expires_at, r.accepted_at,
                      r.accepted_by, r.revoked_at)
