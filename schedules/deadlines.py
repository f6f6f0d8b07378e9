"""Working-day deadlines: the last day a holder can still act at the service centre.

The community affairs service centre (社区事务受理服务中心) endorses permits on working days only,
so a date that matters (expiry, the end of each grace window) is only as good as the last working
day on or before it. Working days come from `schedules.workdays`: China's official holidays and
adjusted working weekends (调休) where the State Council's arrangement is known, else
Monday–Friday minus the statutory holidays. `Deadlines.calendar_official` (and `fallback_years`)
say which was used, so logs and `holders explain` can tell the reader.

Pure: no clock, no I/O. Lookups are cached: a scan asks the same few hundred expiry dates for
thousands of holders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from schedules.policy import Policy
from schedules.workdays import has_official_data, is_working_day

# Stage names as in schedules.stages (imported there from here, so not imported back).
_GRACE_STAGE = "expired_grace"
_RESET_STAGE = "accumulation_reset"

# Longer than any run of days off China has had (Spring Festival: 9 days plus a weekend); a
# calendar that never works would otherwise loop for ever.
_MAX_DAYS_OFF = 40


class CalendarError(ValueError):
    """No working day within _MAX_DAYS_OFF days: the calendar data is broken."""


@lru_cache(maxsize=4096)
def last_working_day_on_or_before(day: date) -> date:
    """`day` itself if it is a working day, else the closest earlier working day."""
    for back in range(_MAX_DAYS_OFF + 1):
        candidate = day - timedelta(days=back)
        if is_working_day(candidate):
            return candidate
    raise CalendarError(f"no working day in the {_MAX_DAYS_OFF} days up to {day}")


@lru_cache(maxsize=4096)
def working_days_before(day: date, n: int) -> date:
    """The working day `n` working days before `day`, not counting `day` itself.

    working_days_before(Friday, 1) is Thursday (when both are plain working days); n=0 gives
    `day` unchanged, whether or not it is a working day.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    current, left, scanned = day, n, 0
    while left:
        current -= timedelta(days=1)
        scanned += 1
        if is_working_day(current):
            left, scanned = left - 1, 0
        elif scanned > _MAX_DAYS_OFF:
            raise CalendarError(f"no working day in the {_MAX_DAYS_OFF} days before {current}")
    return current


def calendar_is_official(*days: date) -> bool:
    """Whether every given day's year has the official arrangement (else Mon–Fri fallback)."""
    return all(has_official_data(d.year) for d in days)


@dataclass(frozen=True)
class Deadlines:
    """The last working day of each window for one expiry date.

    last_day_in_person: last working day on or before expires_on (renew before the permit lapses).
    last_day_in_grace: last working day on or before the last day of `expired_grace` (endorse by
        then and the accumulated years keep counting).
    last_day_before_lapse: last working day on or before the last day of `accumulation_reset`
        (endorse by then, years reset, but no new application).
    calendar_official: False when any of these came from the Monday–Friday fallback.
    fallback_years: the years (of the windows' days) without the official arrangement, ascending.

    A policy without a grace or reset stage (or with an open one) has no such day: the field is
    then last_day_in_person, the only day we know still helps.
    """

    expires_on: date
    last_day_in_person: date
    last_day_in_grace: date
    last_day_before_lapse: date
    calendar_official: bool
    fallback_years: tuple[int, ...] = ()

    def last_helpful_day(self, today: date) -> date | None:
        """The first of the three last days that is still ahead (or today), else None."""
        for day in (self.last_day_in_person, self.last_day_in_grace, self.last_day_before_lapse):
            if day >= today:
                return day
        return None


def _stage_end(policy: Policy, stage: str) -> int | None:
    if stage not in policy.stage_names:
        return None
    return policy.last_overdue_day(stage)


def deadlines(expires_on: date, policy: Policy) -> Deadlines:
    """The working-day deadlines of a permit expiring on `expires_on` under `policy`."""
    return _deadlines(expires_on, _stage_end(policy, _GRACE_STAGE), _stage_end(policy, _RESET_STAGE))


@lru_cache(maxsize=4096)
def _deadlines(expires_on: date, grace_days: int | None, reset_days: int | None) -> Deadlines:
    # Keyed by plain numbers, not the Policy, so the cache key is cheap to hash per holder.
    in_person = last_working_day_on_or_before(expires_on)
    in_grace = in_person if grace_days is None else last_working_day_on_or_before(expires_on + timedelta(grace_days))
    before_lapse = in_grace if reset_days is None else last_working_day_on_or_before(
        expires_on + timedelta(reset_days)
    )
    # Every day looked at lies between the earliest result and the latest window end.
    latest = expires_on + timedelta(days=max(grace_days or 0, reset_days or 0))
    years = range(in_person.year, latest.year + 1)
    fallback = tuple(y for y in years if not has_official_data(y))
    return Deadlines(expires_on, in_person, in_grace, before_lapse, not fallback, fallback)


def calendar_note(d: Deadlines) -> str | None:
    """One English line for logs and `holders explain` when the fallback calendar was used."""
    if d.calendar_official:
        return None
    years = ", ".join(str(y) for y in d.fallback_years)
    return (f"working days for {years} assume Monday-Friday minus statutory holidays: the official "
            "holiday arrangement (调休) for that year is not published in the holidays package yet")
