"""Stages of a whole team without loading it: set-based reads for the HR API's list and summary.

A stage depends only on the expiry, the facts that decide auto-renewal (housing, rental
registration, what changed) and the holder's "today" (their time zone). Many holders share
those, so the summary evaluates each distinct combination once (GROUP BY) and the month ahead
is read as plain tuples. Lists and pages are in team_rows.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from schedules.policy import Policy
from worker.planning.team_rows import Evaluator
from worker.store.models import Holder

_FACTS = (Holder.expires_on, Holder.housing_type, Holder.rental_registration_ends_on,
          Holder.changed_since_endorsement, Holder.timezone)


def stage_counts(session: Session, team_id: int, policy: Policy, default_zone: ZoneInfo,
                 now: datetime) -> Counter[str]:
    """How many of the team's holders are in each stage. Outside the days where auto-renewal
    eligibility decides the stage, only the expiry and time zone matter, so those are counted by
    (expires_on, timezone); inside, by every fact that decides eligibility."""
    evaluator = Evaluator(policy, default_zone, now)
    band = _eligibility_band(policy, evaluator.today())
    mine = Holder.team_id == team_id
    counts: Counter[str] = Counter()
    by_day = select(Holder.expires_on, Holder.timezone, func.count()).where(mine, ~band) \
        .group_by(Holder.expires_on, Holder.timezone)
    for expires, tz, n in session.execute(by_day):
        counts[evaluator.stage_only(expires, None, None, "", tz).stage] += n
    for expires, housing, rental, changed, tz, n in session.execute(
            select(*_FACTS, func.count()).where(mine, band).group_by(*_FACTS)):
        counts[evaluator.stage_only(expires, housing, rental, changed, tz).stage] += n
    return counts


def _eligibility_band(policy: Policy, today: date) -> ColumnElement[bool]:
    """Expiries whose stage may depend on eligibility around today (a day's slack each side)."""
    ranges = []
    for spec in policy.stages:
        for window in spec.windows:
            if window.eligible is None:
                continue
            low = window.min_days_left if window.min_days_left is not None else -100_000
            high = window.max_days_left if window.max_days_left is not None else 100_000
            ranges.append(and_(Holder.expires_on >= today + timedelta(days=max(low, -100_000) - 1),
                               Holder.expires_on <= today + timedelta(days=min(high, 100_000) + 1)))
    return or_(*ranges) if ranges else false()


def expiring_within(session: Session, team_id: int, policy: Policy, default_zone: ZoneInfo, now: datetime,
                    days_ahead: int = 30) -> list[tuple[str, str | None, date, int, str]]:
    """(external_id, name, expires_on, days_left, stage) of holders with 0..days_ahead days left,
    soonest first: only that month of the registry is read, as tuples."""
    evaluator = Evaluator(policy, default_zone, now)
    today = evaluator.today()
    out: list[tuple[str, str | None, date, int, str]] = []
    for external_id, name, expires, housing, rental, changed, tz in session.execute(
            select(Holder.external_id, Holder.name, *_FACTS)
            .where(Holder.team_id == team_id, Holder.expires_on >= today - timedelta(days=1),
                   Holder.expires_on <= today + timedelta(days=days_ahead + 1))
            .order_by(Holder.expires_on, Holder.id)):
        ev = evaluator.stage_only(expires, housing, rental, changed, tz)
        if 0 <= ev.days_left <= days_ahead:
            out.append((external_id, name, expires, ev.days_left, ev.stage))
    return out
