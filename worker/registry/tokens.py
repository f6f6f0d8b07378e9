"""Scoped API tokens: several named tokens per team, each `read` or `write`, stored hashed and
shown once. `default` is the write token `teams create` prints (and `teams rotate-token`
replaces); revoking a token ends the web sessions signed in with it."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.registry import audit
from worker.registry.errors import BadInput, NotFound
from worker.store.models import ApiToken, Team

SCOPES = ("read", "write")
DEFAULT = "default"
PREFIX = "pwt_"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# last_used_at is written at most this often per token: not a write on every API request.
_TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    # Tokens are 256 random bits: a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, team: Team, name: str, scope: str, created_by: str) -> tuple[ApiToken, str]:
    """A new named token (BadInput: bad name or scope, or the name is taken); returns the row and
    the token, which is never shown again."""
    if not _NAME.fullmatch(name):
        raise BadInput(f"token name {name!r} must be lowercase letters, digits, '.', '_' or '-' (max 64)")
    if scope not in SCOPES:
        raise BadInput(f"--scope must be one of {', '.join(SCOPES)}")
    if session.scalar(select(ApiToken.id).where(ApiToken.team_id == team.id, ApiToken.name == name)) is not None:
        raise BadInput(f"team {team.slug!r} already has a token named {name!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(team_id=team.id, name=name, scope=scope, token_hash=token_hash(token), created_by=created_by,
                   created_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    audit.record(session, team.id, created_by, "token.created", changes={"name": name, "scope": scope})
    return row, token


def rotate_default(session: Session, team: Team, created_by: str = "teams create") -> str:
    """The team's `default` write token, created or replaced: the old one stops working."""
    row = session.scalar(select(ApiToken).where(ApiToken.team_id == team.id, ApiToken.name == DEFAULT))
    if row is None:
        return create_token(session, team, DEFAULT, "write", created_by)[1]
    token = PREFIX + secrets.token_urlsafe(32)
    row.token_hash, row.created_by, row.created_at, row.last_used_at = token_hash(token), created_by, \
        datetime.now(UTC), None
    session.flush()
    audit.record(session, team.id, created_by, "token.rotated", changes={"name": DEFAULT})
    return token


def revoke_token(session: Session, team: Team, name: str, actor: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.team_id == team.id, ApiToken.name == name))
    if row is None:
        raise NotFound(f"team {team.slug!r} has no token named {name!r}")
    audit.record(session, team.id, actor, "token.revoked", changes={"name": name, "scope": row.scope})
    session.delete(row)
    session.flush()
    return row


def tokens_of(session: Session, team: Team) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.team_id == team.id).order_by(ApiToken.name)))


def find_token(session: Session, token: str, now: datetime | None = None) -> ApiToken | None:
    """The token's row (with its team), noting when it was last used; None if unknown."""
    if not token.startswith(PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is not None:
        now = now or datetime.now(UTC)
        if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
            # Conditional, so concurrent requests do not fight over the row.
            session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return row
