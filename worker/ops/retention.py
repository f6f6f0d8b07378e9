"""Retention: what is kept how long, applied daily by the daemon and by `permit-worker prune`.

Deleting an outbox row could let its touch go out again (the row's unique key is what makes a
touch once-only), so only notifications of cycles long over are pruned: older than the
retention, for a cycle (expiry or points date) more than CYCLE_OVER days in the past, and never
of the holder's current cycle: a lapsed holder's "+91" touch stays due for as long as nobody
renews, and without its row any re-evaluation would send it again. Their delivery attempts go
with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from worker.ops.settings import Settings
from worker.registry import audit
from worker.store.db import unit_of_work
from worker.store.models import (
    DeliveryAttempt,
    Holder,
    HrEvent,
    InboundEvent,
    Notification,
    SignInFailure,
    UserLink,
)

# The last touch of a cycle is the reset's end (90 days after expiry); a month's margin.
CYCLE_OVER = timedelta(days=120)


@dataclass(frozen=True)
class Pruned:
    table: str
    rows: int


def _count_or_delete(session: Session, model: type, where: ColumnElement[bool], dry_run: bool) -> int:
    if dry_run:
        return session.scalar(select(func.count()).select_from(model).where(where)) or 0
    return session.execute(delete(model).where(where)).rowcount or 0  # type: ignore[attr-defined]


def prune(factory: sessionmaker[Session], settings: Settings, now: datetime | None = None,
          dry_run: bool = False) -> list[Pruned]:
    """Delete (or, dry, count) what is past its retention, table by table, in one transaction."""
    now = now or datetime.now(UTC)
    day = now.astimezone(settings.tz).date()
    out: list[Pruned] = []
    with unit_of_work(factory) as session:
        cycle = Notification.cycle_expires_on
        current = exists().where(Holder.id == Notification.holder_id,
                                 or_(Holder.expires_on == cycle, Holder.points_valid_until == cycle))
        old_notes = (Notification.created_at < now - timedelta(days=settings.notification_retention_days)) & \
                    (Notification.cycle_expires_on < day - CYCLE_OVER) & ~current
        ids = select(Notification.id).where(old_notes)
        out.append(Pruned("delivery_attempts", _count_or_delete(
            session, DeliveryAttempt, DeliveryAttempt.notification_id.in_(ids), dry_run)))
        out.append(Pruned("notifications", _count_or_delete(session, Notification, old_notes, dry_run)))
        out.append(Pruned("hr_events", _count_or_delete(session, HrEvent, HrEvent.reported_at.is_not(None) & (
            HrEvent.reported_at < now - timedelta(days=settings.hr_event_retention_days)), dry_run)))
        out.append(Pruned("inbound_events", _count_or_delete(
            session, InboundEvent, InboundEvent.received_at < now - timedelta(days=settings.inbound_retention_days),
            dry_run)))
        out.append(Pruned("audit_entries", audit.prune(session, settings.audit_retention_days, now, dry_run)))
        out.append(Pruned("user_links", _count_or_delete(session, UserLink, UserLink.expires_at < now - timedelta(
            days=7), dry_run)))
        out.append(Pruned("sign_in_failures", _count_or_delete(
            session, SignInFailure, SignInFailure.at < now - timedelta(hours=1), dry_run)))
        if dry_run:
            session.rollback()
    return out
