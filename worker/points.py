"""Points (积分) status and accumulated holding, read from the registry for the pure domain.

The points touches (60 and 30 days before `points_valid_until`) go through the same outbox as
permit reminders, as stage "points_renewal" with the points validity date as their cycle, and
only when the holder can act on a finding; HR sees every finding in the digest and the API.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schedules.points import (
    POINTS_RENEWAL,
    Finding,
    InsuranceMonth,
    PointsFacts,
    PointsPolicy,
    default_points_policy,
    points_findings,
    points_touch_due,
)
from worker.db import unit_of_work
from worker.evaluation import holder_today, holder_zone
from worker.models import Holder, Team
from worker.models import InsuranceMonth as InsuranceRow
from worker.outbox import EnqueuedTouch, existing_touches, insert_touch, supersede_older

# How far ahead of points_valid_until the earliest points touch can fall (policy: 60 days).
_WINDOW = timedelta(days=90)


def points_facts(session: Session, holder: Holder) -> PointsFacts:
    months = tuple(InsuranceMonth(r.month, r.paid, r.base_multiple) for r in session.scalars(
        select(InsuranceRow).where(InsuranceRow.holder_id == holder.id).order_by(InsuranceRow.month)))
    return PointsFacts(basis=holder.points_basis, points_valid_until=holder.points_valid_until,
                       labor_contract_ends_on=holder.labor_contract_ends_on,
                       labor_contract_starts_on=holder.labor_contract_starts_on,
                       employer_changed="employer" in holder.changed_fields, months=months)


def findings_of(session: Session, holder: Holder, today: date, policy: PointsPolicy | None = None) -> list[Finding]:
    return points_findings(points_facts(session, holder), today, policy or default_points_policy())


def scan_points(factory: sessionmaker[Session], zone: ZoneInfo, *, today: date | None = None,
                now: datetime, dry_run: bool = False, policy: PointsPolicy | None = None) -> list[EnqueuedTouch]:
    """Enqueue the points touches due today for holders who can act on a finding. Reads only
    holders whose points expire within the touch window (an indexed range), so it is O(due)."""
    policy = policy or default_points_policy()
    start = (today or now.astimezone(zone).date()) - timedelta(days=1)
    enqueued: list[EnqueuedTouch] = []
    with unit_of_work(factory) as session:
        rows = session.execute(select(Holder, Team.slug).join(Team).where(
            Holder.points_valid_until >= start, Holder.points_valid_until <= start + _WINDOW)).all()
        for holder, slug in rows:
            day = today or holder_today(holder, now, zone)
            touch = points_touch_due(points_facts(session, holder), day, policy)
            channel = "sms" if holder.phone and holder.sms_opted_out_at is None else ("email" if holder.email else None)
            if touch is None or not touch.holder_findings or channel is None:
                continue
            key = (holder.id, touch.points_valid_until, POINTS_RENEWAL, touch.day)
            if key in existing_touches(session, [holder.id]):
                continue
            values = {"holder_id": holder.id, "cycle_expires_on": touch.points_valid_until, "stage": POINTS_RENEWAL,
                      "touch_day": touch.day, "touch_on": touch.on, "channel": channel, "status": "pending",
                      "attempts": 0, "next_attempt_at": datetime.combine(day, time.min, holder_zone(holder, zone))}
            if not dry_run:
                if not insert_touch(session, values):
                    continue
                supersede_older(session, holder.id, key[1:])
            enqueued.append(EnqueuedTouch(slug, holder.external_id, holder.id, POINTS_RENEWAL, touch.day, touch.on,
                                          channel, holder.expires_on, (holder.expires_on - day).days))
        if dry_run:
            session.rollback()
    return enqueued


def points_check(session: Session, holder: Holder, cycle: date, touch_day: int, today: date,
                 policy: PointsPolicy | None = None) -> tuple[str | None, tuple[str, ...]]:
    """For a points touch about to go out: why it is stale (or None), and the finding codes the
    holder can act on, which the message names."""
    if holder.points_valid_until != cycle:
        return "points validity changed since this reminder was enqueued", ()
    touch = points_touch_due(points_facts(session, holder), today, policy or default_points_policy())
    if touch is None or touch.day != touch_day:
        return "points reminder no longer due", ()
    codes = tuple(dict.fromkeys(f.code for f in touch.holder_findings))
    if not codes:
        return "no points risk the holder can act on any more", ()
    return None, codes
