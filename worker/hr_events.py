"""HR events and the batched HR notice: one email per team with everything new since the last.

Events are claimed with a lease before sending, so two replicas never send the same batch; a
failed send releases them for the next run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, Notifier, SendStatus
from schedules.hr_notice import HrNoticeItem, render_hr_notice
from worker.db import unit_of_work
from worker.models import HrEvent, Team, utcnow

log = structlog.get_logger("worker.hr")

LEASE = timedelta(minutes=10)


def record_hr_event(session: Session, team_id: int, holder_id: int | None, kind: str, detail: str) -> None:
    session.add(HrEvent(team_id=team_id, holder_id=holder_id, kind=kind, detail=detail[:300]))


def _claim(session: Session, team_id: int, now: datetime) -> list[HrEvent]:
    claimable = HrEvent.reported_at.is_(None) & (HrEvent.claimed_until.is_(None) | (HrEvent.claimed_until < now))
    ids = session.scalars(
        select(HrEvent.id).where(HrEvent.team_id == team_id, claimable).order_by(HrEvent.id).limit(500)
    ).all()
    # A conditional UPDATE per row: only rows whose update hit are ours (another replica may
    # have taken some between the select and here).
    won = [i for i in ids
           if session.execute(update(HrEvent).where(HrEvent.id == i, claimable)
                              .values(claimed_until=now + LEASE)).rowcount == 1]
    return list(session.scalars(select(HrEvent).where(HrEvent.id.in_(won)).order_by(HrEvent.id)))


def send_hr_notices(factory: sessionmaker[Session], email: Notifier, now: datetime | None = None) -> int:
    """Email each team's HR address its unreported events; returns how many emails were sent."""
    now = now or utcnow()
    with unit_of_work(factory) as session:
        team_ids = list(session.scalars(select(HrEvent.team_id).where(HrEvent.reported_at.is_(None)).distinct()))
    sent = 0
    for team_id in team_ids:
        with unit_of_work(factory) as session:
            team = session.get(Team, team_id)
            if team is None or not team.hr_email:
                log.warning("hr.no_address", team=team.slug if team else team_id)
                continue
            events = _claim(session, team_id, now)
            items = [HrNoticeItem(e.kind, e.detail, e.created_at) for e in events]
            ids = [e.id for e in events]
            team_name, hr_email = team.name, team.hr_email
        if not items:
            continue
        subject, body = render_hr_notice(team_name, items)
        result = email.send(Message(channel="email", to=hr_email, subject=subject, body=body,
                                    idempotency_key=f"hr-{team_id}-{ids[0]}-{ids[-1]}"))
        with unit_of_work(factory) as session:
            values = {"reported_at": utcnow()} if result.status is SendStatus.SENT else {"claimed_until": None}
            session.execute(update(HrEvent).where(HrEvent.id.in_(ids)).values(**values))
        log.info("hr.notice", team_id=team_id, events=len(ids), outcome=result.status.value, error=result.error)
        sent += result.status is SendStatus.SENT
    return sent
