"""HR events: things HR must hear about, reported in the team's daily digest (worker.delivery.digest).

Events are claimed with a lease before the digest goes out, so two replicas never report the
same event; a failed send releases them for a later run. `reported_at` marks one done.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.store.db import rows_changed
from worker.store.models import HrEvent

LEASE = timedelta(minutes=10)


def record_hr_event(session: Session, team_id: int, holder_id: int | None, kind: str, detail: str) -> None:
    session.add(HrEvent(team_id=team_id, holder_id=holder_id, kind=kind, detail=detail[:300]))


def claim_hr_events(session: Session, team_id: int, now: datetime, limit: int = 500) -> list[HrEvent]:
    """Lease the team's unreported events to this process; returns the ones it won."""
    claimable = HrEvent.reported_at.is_(None) & (HrEvent.claimed_until.is_(None) | (HrEvent.claimed_until < now))
    ids = session.scalars(
        select(HrEvent.id).where(HrEvent.team_id == team_id, claimable).order_by(HrEvent.id).limit(limit)
    ).all()
    # A conditional UPDATE per row: only rows whose update hit are ours (another replica may
    # have taken some between the select and here).
    won = [i for i in ids
           if rows_changed(session.execute(update(HrEvent).where(HrEvent.id == i, claimable)
                                           .values(claimed_until=now + LEASE))) == 1]
    return list(session.scalars(select(HrEvent).where(HrEvent.id.in_(won)).order_by(HrEvent.id)))


def settle_hr_events(session: Session, ids: Sequence[int], reported_at: datetime | None) -> None:
    """Mark claimed events reported (reported_at given) or release them for a later run (None)."""
    if not ids:
        return
    values = {"reported_at": reported_at} if reported_at is not None else {"claimed_until": None}
    session.execute(update(HrEvent).where(HrEvent.id.in_(list(ids))).values(**values))
