"""Points (积分) status read from the registry for the pure domain, and the points touches.

The points touches (60 and 30 days before `points_valid_until`, policy data) go through the same
outbox as permit reminders, as stage "points_renewal" with the points validity date as their
cycle, only when the holder can act on a finding, and by the policy's channel order like every
touch. HR sees every finding in the digest and the API.

Who is read, and when (O(due), like the permit scan):
- the daily scan reads only holders whose points touch day fell due since the last scan (an
  index range on points_valid_until per touch day), so days of downtime cost one scan;
- a change to a holder (registration, roster, social-insurance months) plans its points touch
  at once, through the events (worker.planning.events), as for the permit.
Facts for a batch of holders are two queries, not two per holder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select
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
from schedules.policy import Policy
from schedules.stages import channel_for
from schedules.vocabulary import reason_text
from worker.planning.evaluation import facts_from
from worker.planning.outbox import Candidate, EnqueuedTouch, enqueue_many, outbox_row
from worker.store.bulk import any_of
from worker.store.db import unit_of_work
from worker.store.models import Holder, Team
from worker.store.models import InsuranceMonth as InsuranceRow

# What planning a points touch needs, as plain rows.
POINTS_COLUMNS = (Holder.id, Holder.external_id, Holder.expires_on, Holder.points_basis, Holder.points_valid_until,
                  Holder.labor_contract_ends_on, Holder.labor_contract_starts_on, Holder.changed_since_endorsement,
                  Holder.phone, Holder.email, Holder.sms_opted_out_at, Holder.timezone, Team.slug,
                  Holder.wecom_userid, Team.channels)
_BATCH = 2000


def _months_of(session: Session, holder_ids: Sequence[int]) -> dict[int, tuple[InsuranceMonth, ...]]:
    months: dict[int, list[InsuranceMonth]] = defaultdict(list)
    for i in range(0, len(holder_ids), _BATCH):
        for row in session.scalars(select(InsuranceRow).where(any_of(session, InsuranceRow.holder_id,
                                                                     holder_ids[i:i + _BATCH]))
                                   .order_by(InsuranceRow.holder_id, InsuranceRow.month)):
            months[row.holder_id].append(InsuranceMonth(row.month, row.paid, row.base_multiple))
    return {holder_id: tuple(found) for holder_id, found in months.items()}


def _facts(basis: str | None, valid_until: date | None, ends: date | None, starts: date | None, changed: str,
           months: tuple[InsuranceMonth, ...]) -> PointsFacts:
    return PointsFacts(basis=basis, points_valid_until=valid_until, labor_contract_ends_on=ends,
                       labor_contract_starts_on=starts, employer_changed="employer" in changed.split(","),
                       months=months)


def points_facts(session: Session, holder: Holder) -> PointsFacts:
    months = _months_of(session, [holder.id]).get(holder.id, ())
    return _facts(holder.points_basis, holder.points_valid_until, holder.labor_contract_ends_on,
                  holder.labor_contract_starts_on, holder.changed_since_endorsement, months)


def points_facts_many(session: Session, holders: Sequence[Holder]) -> dict[int, PointsFacts]:
    """points_facts for many holders: one query for all their months."""
    months = _months_of(session, [h.id for h in holders])
    return {h.id: _facts(h.points_basis, h.points_valid_until, h.labor_contract_ends_on, h.labor_contract_starts_on,
                         h.changed_since_endorsement, months.get(h.id, ())) for h in holders}


def findings_of(session: Session, holder: Holder, today: date, policy: PointsPolicy | None = None) -> list[Finding]:
    return points_findings(points_facts(session, holder), today, policy or default_points_policy())


def plan_points(session: Session, rows: Sequence[Any], policy: Policy, default_zone: ZoneInfo, now: datetime,
                today: date | None = None, points_policy: PointsPolicy | None = None) -> list[Candidate]:
    """The points touch each `POINTS_COLUMNS` row is due on its own day (or a pinned `today`), when
    the holder can act on a finding and has a contact, as outbox candidates for enqueue_many."""
    points_policy = points_policy or default_points_policy()
    rows = [r for r in rows if r[4] is not None]  # points_valid_until: no points, nothing to check
    months = _months_of(session, [r[0] for r in rows])
    candidates: list[Candidate] = []
    for (hid, ext, expires, basis, valid_until, ends, starts, changed, phone, email, opted_out, tz, slug,
         wecom, channels) in rows:
        zone = ZoneInfo(tz) if tz else default_zone
        day = today or now.astimezone(zone).date()
        touch = points_touch_due(_facts(basis, valid_until, ends, starts, changed, months.get(hid, ())), day,
                                 points_policy)
        if touch is None or not touch.holder_findings:
            continue
        channel = channel_for(facts_from(expires, None, None, "", phone, email, opted_out, wecom, channels), policy)
        if channel is None:
            continue
        values = outbox_row(hid, touch.points_valid_until, POINTS_RENEWAL, touch.day, touch.on, channel, day, zone)
        candidates.append((values, EnqueuedTouch(slug, ext, hid, POINTS_RENEWAL, touch.day, touch.on, channel,
                                                 expires, (expires - day).days)))
    return candidates


def _touch_days_between(since: date, until: date, points_policy: PointsPolicy) -> ColumnElement[bool]:
    """Holders whose points touch day (points_valid_until + touch) lies in (since, until]: one
    index range on points_valid_until per touch day."""
    return or_(*(and_(Holder.points_valid_until > since - timedelta(days=t),
                      Holder.points_valid_until <= until - timedelta(days=t)) for t in points_policy.touches))


def scan_points(factory: sessionmaker[Session], zone: ZoneInfo, *, today: date | None = None, now: datetime,
                dry_run: bool = False, policy: Policy, points_policy: PointsPolicy | None = None,
                since: date | None = None) -> list[EnqueuedTouch]:
    """Enqueue the points touches that fell due since the last scan (`since`, exclusive; default:
    the day before) for holders who can act on a finding. Reads only those holders."""
    points_policy = points_policy or default_points_policy()
    day = today or now.astimezone(zone).date()
    # A holder in a zone ahead of ours may already be on tomorrow (the outbox key makes an early
    # look harmless: their touch is planned on their own day).
    until = day if today is not None else day + timedelta(days=1)
    # Downtime longer than the earliest touch needs no longer look-back: every touch is past then.
    floor = day - timedelta(days=-min(points_policy.touches) + 1)
    since = max(since if since is not None else day - timedelta(days=1), floor)
    enqueued: list[EnqueuedTouch] = []
    with unit_of_work(factory) as session:
        rows = session.execute(select(*POINTS_COLUMNS).join(Team).where(_touch_days_between(since, until,
                                                                                            points_policy))
                               .order_by(Holder.id)).all()
        for i in range(0, len(rows), _BATCH):
            candidates = plan_points(session, rows[i:i + _BATCH], policy, zone, now, today, points_policy)
            enqueued.extend(enqueue_many(session, candidates, dry_run))
        if dry_run:
            session.rollback()
    return enqueued


def points_check(session: Session, holder: Holder, cycle: date, touch_day: int, today: date,
                 policy: PointsPolicy | None = None) -> tuple[str | None, tuple[str, ...]]:
    """For a points touch about to go out: why it is stale (or None), and the finding codes the
    holder can act on, which the message names."""
    if holder.points_valid_until != cycle:
        return reason_text("points_changed"), ()
    touch = points_touch_due(points_facts(session, holder), today, policy or default_points_policy())
    if touch is None or touch.day != touch_day:
        return reason_text("points_not_due"), ()
    codes = tuple(dict.fromkeys(f.code for f in touch.holder_findings))
    if not codes:
        return reason_text("points_no_risk"), ()
    return None, codes


def holders_rows(session: Session, holder_ids: Iterable[int]) -> list[Any]:
    """POINTS_COLUMNS rows of the given holders (those with points), for the events' planning."""
    ids = list(holder_ids)
    return list(session.execute(select(*POINTS_COLUMNS).join(Team).where(
        any_of(session, Holder.id, ids), Holder.points_valid_until.is_not(None))).all()) if ids else []

