"""Stages of a whole team without loading it: set-based reads for the HR API's list and summary.

A stage depends only on the expiry, the facts that decide auto-renewal (housing, rental
registration, what changed) and the holder's "today" (their time zone). Many holders share
those, so the summary evaluates each distinct combination once (GROUP BY), and the list reads
plain column tuples, not ORM objects, and only holders whose expiry can fall in the stage asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from schedules.policy import Policy
from schedules.stages import evaluate
from worker.planning.evaluation import facts_from
from worker.store.models import Holder

_FACTS = (Holder.expires_on, Holder.housing_type, Holder.rental_registration_ends_on,
          Holder.changed_since_endorsement, Holder.timezone)


class _Days:
    """Each time zone's "today", worked out once."""

    def __init__(self, now: datetime, default_zone: ZoneInfo) -> None:
        self.now, self.default_zone = now, default_zone
        self._days: dict[str | None, date] = {}

    def of(self, tz: str | None) -> date:
        if tz not in self._days:
            self._days[tz] = self.now.astimezone(ZoneInfo(tz) if tz else self.default_zone).date()
        return self._days[tz]


def _stage(row: tuple[date, str | None, date | None, str, str | None], days: _Days,
           policy: Policy) -> tuple[str, int]:
    expires, housing, rental, changed, tz = row
    ev = evaluate(facts_from(expires, housing, rental, changed or "", None, None, None), days.of(tz), policy)
    return ev.stage, ev.days_left


def stage_counts(session: Session, team_id: int, policy: Policy, default_zone: ZoneInfo,
                 now: datetime) -> Counter[str]:
    """How many of the team's holders are in each stage. Outside the days where auto-renewal
    eligibility decides the stage, only the expiry and time zone matter, so those are counted by
    (expires_on, timezone); inside, by every fact that decides eligibility."""
    days = _Days(now, default_zone)
    band = _eligibility_band(policy, days.of(None))
    mine = Holder.team_id == team_id
    counts: Counter[str] = Counter()
    by_day = select(Holder.expires_on, Holder.timezone, func.count()).where(mine, ~band) \
        .group_by(Holder.expires_on, Holder.timezone)
    for expires, tz, n in session.execute(by_day):
        counts[_stage((expires, None, None, "", tz), days, policy)[0]] += n
    for *facts, n in session.execute(select(*_FACTS, func.count()).where(mine, band).group_by(*_FACTS)):
        counts[_stage(tuple(facts), days, policy)[0]] += n  # type: ignore[arg-type]
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


def expiry_window(policy: Policy, stage: str, today: date) -> ColumnElement[bool]:
    """Holders whose expiry can put them in `stage` around `today` (a day's slack either side for
    holders in other time zones): the exact stage is checked on the rows this selects."""
    spec = next(s for s in policy.stages if s.name == stage)
    ranges = []
    for window in spec.windows:
        conditions = []
        if window.min_days_left is not None:
            conditions.append(Holder.expires_on >= today + timedelta(days=window.min_days_left - 1))
        if window.max_days_left is not None:
            conditions.append(Holder.expires_on <= today + timedelta(days=window.max_days_left + 1))
        ranges.append(and_(*conditions) if conditions else Holder.id.is_not(None))
    return or_(*ranges)


def ids_in_stage(session: Session, team_id: int, policy: Policy, default_zone: ZoneInfo, now: datetime,
                 stage: str, expires_before: date | None = None) -> Iterator[int]:
    """The ids of the team's holders in `stage`, soonest expiry first (plain tuples, a bounded read)."""
    days = _Days(now, default_zone)
    query = (select(Holder.id, *_FACTS).where(Holder.team_id == team_id,
                                              expiry_window(policy, stage, days.of(None)))
             .order_by(Holder.expires_on, Holder.id))
    if expires_before is not None:
        query = query.where(Holder.expires_on < expires_before)
    memo: dict[tuple[object, ...], str] = {}
    for holder_id, *facts in session.execute(query):
        key = tuple(facts)
        if key not in memo:
            memo[key] = _stage(key, days, policy)[0]  # type: ignore[arg-type]
        if memo[key] == stage:
            yield holder_id


def expiring_within(session: Session, team_id: int, policy: Policy, default_zone: ZoneInfo, now: datetime,
                    days_ahead: int = 30) -> list[tuple[str, str | None, date, int, str]]:
    """(external_id, name, expires_on, days_left, stage) of holders with 0..days_ahead days left,
    soonest first: only that month of the registry is read, as tuples."""
    days = _Days(now, default_zone)
    today = days.of(None)
    out: list[tuple[str, str | None, date, int, str]] = []
    for external_id, name, *facts in session.execute(
            select(Holder.external_id, Holder.name, *_FACTS)
            .where(Holder.team_id == team_id, Holder.expires_on >= today - timedelta(days=1),
                   Holder.expires_on <= today + timedelta(days=days_ahead + 1))
            .order_by(Holder.expires_on, Holder.id)):
        expires: date = facts[0]  # type: ignore[assignment]
        stage, days_left = _stage(tuple(facts), days, policy)  # type: ignore[arg-type]
        if 0 <= days_left <= days_ahead:
            out.append((external_id, name, expires, days_left, stage))
    return out
