"""HR accounts: users of one team with a role, their passwords (argon2id), one-time links
(invitation, password reset), sign-in with throttling, and their sessions.

A password is set only through a link: `users add` prints (and, with email configured, sends)
an invitation valid 72 hours; a reset link is valid 2 hours. Links and sessions are random
256-bit secrets kept only as SHA-256. Sign-in fails the same way for an unknown email, a wrong
password and an account not yet activated, and is throttled per account and per address.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.registry import audit
from worker.registry.errors import BadInput, NotFound
from worker.registry.records import EMAIL
from worker.registry.tokens import token_hash
from worker.store.models import SignInFailure, Team, User, UserLink, UserSession

ROLES = ("viewer", "editor", "admin")
RANK = {role: n for n, role in enumerate(ROLES)}
LINK_HOURS = {"invite": 72, "reset": 2}
MIN_PASSWORD = 10
SESSION_HOURS = 12
# Throttling: failures counted over the window; past the limit, sign-in is refused until the
# oldest failure leaves it (a locked account does not tell the attacker the password was right).
WINDOW = timedelta(minutes=15)
PER_ACCOUNT, PER_ADDRESS = 5, 20
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


def normalize_email(email: str) -> str:
    text = email.strip().lower()
    if not EMAIL.match(text):
        raise BadInput(f"{email!r} is not an email address", "bad_email")
    return text


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str) -> str | None:
    """Why a password cannot be used (a code for the pages), else None."""
    if len(password) < MIN_PASSWORD:
        return "password_short"
    if len(password) > 200:
        return "password_long"
    lowered = password.lower()
    if lowered in _common_passwords() or lowered == email.lower() or lowered == email.split("@")[0].lower():
        return "password_common"
    return None


def add_user(session: Session, team: Team, email: str, role: str, created_by: str) -> User:
    if role not in ROLES:
        raise BadInput(f"--role must be one of {', '.join(ROLES)}")
    address = normalize_email(email)
    # One message whoever the account belongs to: an admin learns nothing of another team's users.
    taken = BadInput(f"{address} already has an account", "user_exists")
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise taken
    user = User(team_id=team.id, email=address, role=role, created_by=created_by, created_at=datetime.now(UTC))
    try:
        with session.begin_nested():  # two admins inviting the same person at once: one wins
            session.add(user)
    except IntegrityError:
        raise taken from None
    audit.record(session, team.id, created_by, "user.added", changes={"email": address, "role": role})
    return user


def get_user(session: Session, team: Team, email: str) -> User:
    user = session.scalar(select(User).where(User.team_id == team.id, User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"team {team.slug!r} has no user {email.strip()!r}")
    return user


def users_of(session: Session, team: Team) -> list[User]:
    return list(session.scalars(select(User).where(User.team_id == team.id).order_by(User.email)))


def set_role(session: Session, user: User, role: str, actor: str) -> str:
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}")
    old, user.role = user.role, role
    if old != role:
        audit.record(session, user.team_id, actor, "user.role_changed", changes={"email": user.email,
                                                                                  "role": [old, role]})
    return old


def remove_user(session: Session, user: User, actor: str) -> None:
    """Delete the account; its sessions and links go with it (ON DELETE CASCADE, and explicitly
    for SQLite connections without foreign keys), so any browser signed in is out at once."""
    audit.record(session, user.team_id, actor, "user.removed", changes={"email": user.email, "role": user.role})
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(delete(UserLink).where(UserLink.user_id == user.id))
    session.delete(user)
    session.flush()


def issue_link(session: Session, user: User, purpose: str, now: datetime | None = None) -> str:
    """A one-time link secret for the user (earlier unused links of the same purpose stop working)."""
    now = now or datetime.now(UTC)
    session.execute(delete(UserLink).where(UserLink.user_id == user.id, UserLink.purpose == purpose))
    secret = secrets.token_urlsafe(32)
    session.add(UserLink(user_id=user.id, purpose=purpose, token_hash=token_hash(secret), created_at=now,
                         expires_at=now + timedelta(hours=LINK_HOURS[purpose])))
    session.flush()
    return secret


def link_user(session: Session, secret: str, now: datetime | None = None) -> tuple[UserLink, User] | None:
    """The link and its user if the secret is a fresh, unused link; else None (expired, used,
    made up: all look alike)."""
    now = now or datetime.now(UTC)
    link = session.scalar(select(UserLink).where(UserLink.token_hash == token_hash(secret)))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    user = session.get(User, link.user_id)
    return (link, user) if user is not None else None


def use_link(session: Session, secret: str, password: str, now: datetime | None = None) -> User:
    """Set the password through a link (BadInput with a code: gone, or a weak password) and end
    the user's other sessions (a reset is often after a stolen password)."""
    now = now or datetime.now(UTC)
    found = link_user(session, secret, now)
    if found is None:
        raise BadInput("this link has expired or was already used", "link_gone")
    link, user = found
    problem = password_problem(password, user.email)
    if problem:
        raise BadInput(problem.replace("_", " "), problem)
    user.password_hash = _HASHER.hash(password)
    link.used_at = now
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    audit.record(session, user.team_id, user.email,
                 "user.activated" if link.purpose == "invite" else "user.password_reset", at=now)
    session.flush()
    return user


def throttled(session: Session, email: str, address: str, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    since = now - WINDOW
    session.execute(delete(SignInFailure).where(SignInFailure.at < now - timedelta(hours=1)))

    def failures(key: str) -> int:
        return session.scalar(select(func.count()).select_from(SignInFailure)
                              .where(SignInFailure.key == key, SignInFailure.at >= since)) or 0

    return failures(f"account:{email.strip().lower()}") >= PER_ACCOUNT or failures(f"address:{address}") >= PER_ADDRESS


def authenticate(session: Session, email: str, password: str, address: str,
                 now: datetime | None = None) -> User | None:
    """The user, if the password is theirs and neither the account nor the address is
    throttled; every failure is counted. The caller commits either way."""
    now = now or datetime.now(UTC)
    if throttled(session, email, address, now):
        return None
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    ok = False
    try:
        ok = user is not None and user.password_hash is not None and _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if user is None or not ok:
        if user is None or user.password_hash is None:
            _HASHER.hash(password)  # about as slow as a wrong password: no timing tells who exists
        session.add_all([SignInFailure(key=f"account:{email.strip().lower()}", at=now),
                         SignInFailure(key=f"address:{address}", at=now)])
        return None
    assert user.password_hash is not None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    user.last_sign_in_at = now
    return user


def open_session(session: Session, user: User, sid: str, user_agent: str, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    session.add(UserSession(sid=sid, user_id=user.id, created_at=now, last_seen_at=now,
                            expires_at=now + timedelta(hours=SESSION_HOURS), user_agent=user_agent[:200]))


def live_session(session: Session, sid: str, user_id: int, now: datetime | None = None) -> User | None:
    """The session's user if the session is still on file and fresh; notes it was seen."""
    now = now or datetime.now(UTC)
    row = session.get(UserSession, sid)
    if row is None or row.user_id != user_id or row.expires_at <= now:
        return None
    if now - row.last_seen_at > timedelta(minutes=5):
        row.last_seen_at = now
    return session.get(User, user_id)


def sessions_of(session: Session, user: User) -> list[UserSession]:
    return list(session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                          UserSession.expires_at > datetime.now(UTC))
                                .order_by(UserSession.last_seen_at.desc())))


def end_session(session: Session, user: User, sid: str | None = None) -> int:
    """End one session of the user (sid), or all of them; returns how many."""
    query = delete(UserSession).where(UserSession.user_id == user.id)
    if sid is not None:
        query = query.where(UserSession.sid == sid)
    return session.execute(query).rowcount or 0  # type: ignore[attr-defined]
