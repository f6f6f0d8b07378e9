"""The audit trail: every change to a team's data, who made it and when.

An actor is a user's email, "token NAME" for an API token, or "system" for the daemon's own
acts (an opt-out or a renewal a holder reported by reply). Changes are `{field: [old, new]}` with
personal data masked (a name to its first character, phones and emails as the logs mask them,
the address only as "changed"); erasing a holder scrubs those values from their entries and
keeps the entries (what was done, by whom, stays on record; about whom, no longer).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from worker.store.bulk import insert_many, table_of
from worker.store.models import AuditEntry
from worker.store.privacy import mask_text

SYSTEM = "system"
# Fields that are personal data: masked when recorded, scrubbed when the holder is erased.
PERSONAL = frozenset({"name", "phone", "email", "wecom_userid", "address", "pause_reason", "how"})
ERASED = "[erased]"
PAGE = 100


def token_actor(name: str) -> str:
    return f"token {name}"


def masked(field: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if field == "name":
        return text[:1] + "*" * max(1, len(text) - 1)
    if field == "address":
        return "changed"
    if field in ("pause_reason", "how"):  # free text: a reason can say more than a phone number
        return text[:2] + "***"
    if field in PERSONAL:
        return mask_text(text) if text != mask_text(text) else text[:2] + "***"
    return text


def field_changes(changes: Iterable[Any]) -> dict[str, list[str | None]]:
    """A roster import's FieldChange list as {field: [old, new]}, masked."""
    return {c.field: ["changed", "changed"] if c.hidden else [masked(c.field, c.old), masked(c.field, c.new)]
            for c in changes}


def row(team_id: int, actor: str, action: str, *, holder_id: int | None = None, holder: str | None = None,
        changes: dict[str, Any] | None = None, at: datetime | None = None) -> dict[str, Any]:
    return {"team_id": team_id, "at": at or datetime.now(UTC), "actor": actor, "action": action,
            "holder_id": holder_id, "holder": holder,
            "changes": json.dumps(changes or {}, ensure_ascii=False, default=str, sort_keys=True)}


def record(session: Session, team_id: int, actor: str, action: str, **fields: Any) -> None:
    session.execute(insert(AuditEntry), [row(team_id, actor, action, **fields)])


def record_many(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(AuditEntry), rows)


def record_created(session: Session, team_id: int, actor: str, holder_ids: list[int], external_ids: list[str],
                   at: datetime) -> None:
    """`holder.created` for each new holder (ids and external ids as the insert returned them), in
    one set-based insert: no read of the holders (the rows of an import's own transaction are
    unknown to PostgreSQL's statistics, and a lookup of them planned as a scan of the table)."""
    if holder_ids:
        insert_many(session, table_of(AuditEntry), [
            {"team_id": team_id, "actor": actor, "action": "holder.created", "holder_id": holder_id,
             "holder": external_id, "changes": "{}"}
            for holder_id, external_id in zip(holder_ids, external_ids, strict=True)], ("id",), ("id",),
            stamped=("at",), at=at)


def scrub_holder(session: Session, holder_id: int) -> int:
    """Remove the holder's personal data from their entries (before the holder row goes: the
    foreign key then sets holder_id to NULL, keeping the external id)."""
    n = 0
    for entry in session.scalars(select(AuditEntry).where(AuditEntry.holder_id == holder_id)):
        changes = json.loads(entry.changes or "{}")
        scrubbed = {k: (([ERASED, ERASED] if isinstance(v, list) else ERASED) if k in PERSONAL else v)
                    for k, v in changes.items()}
        if scrubbed != changes:
            entry.changes = json.dumps(scrubbed, ensure_ascii=False, sort_keys=True)
            n += 1
    session.execute(update(AuditEntry).where(AuditEntry.holder_id == holder_id).values(holder_id=None))
    return n


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    holder: str | None
    changes: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "actor": self.actor, "action": self.action, "holder": self.holder,
                "changes": self.changes}


def entries(session: Session, team_id: int, *, limit: int = PAGE, before: int | None = None,
            actor: str | None = None, action: str | None = None, holder: str | None = None,
            since: datetime | None = None, until: datetime | None = None) -> list[Entry]:
    """Newest first; `before` is the id of the last entry of the previous page."""
    query = select(AuditEntry).where(AuditEntry.team_id == team_id)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if holder:
        query = query.where(AuditEntry.holder == holder)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit))
    return [Entry(e.id, e.at, e.actor, e.action, e.holder, json.loads(e.changes or "{}")) for e in rows]


def actors(session: Session, team_id: int) -> list[str]:
    return sorted(session.scalars(select(AuditEntry.actor).where(AuditEntry.team_id == team_id).distinct()))


def prune(session: Session, days: int, now: datetime | None = None, dry_run: bool = False) -> int:
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    if dry_run:
        from sqlalchemy import func

        return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.at < cutoff)) or 0
    return session.execute(delete(AuditEntry).where(AuditEntry.at < cutoff)).rowcount or 0  # type: ignore[attr-defined]
