"""China's official working-day calendar (工作日), for the HR digest.

HR offices in Shanghai follow the State Council's yearly holiday arrangement (国务院办公厅关于
…部分节假日安排的通知): public holidays are days off, and some weekends become working days
(调休) to make the holidays consecutive. The `holidays` package carries that arrangement for
every year it has been published (2001 onwards, up to the next year once it is announced in
November). For a year it does not carry yet we only know what the law fixes:

- the statutory holidays themselves (元旦, 春节, 清明, 劳动节, 端午, 中秋, 国庆) are still days
  off, since their dates follow from the law and the lunar calendar;
- the moved days (the extra days off and the working weekends) are not known, so otherwise
  Monday–Friday is assumed. `has_official_data(year)` tells callers (and logs) when that is so.

Outside the package's range (before 1950, after 2100) it knows nothing and this is plain
Monday–Friday. Pure: no clock, no I/O beyond the package's own tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import holidays

_SATURDAY = 5


@dataclass(frozen=True)
class _Year:
    days_off: frozenset[date]  # weekdays that are holidays (weekend days off need no listing)
    working_weekends: frozenset[date]  # 调休: Saturdays/Sundays that are working days
    official: bool


@lru_cache(maxsize=32)
def _year(year: int) -> _Year:
    """The calendar of one year, built once: the package recomputes lunar dates on every call."""
    full = holidays.country_holidays("CN", years=year)
    # weekend_workdays also holds a few dates of other years (the package keeps them per
    # instance, not per year), so keep only this year's.
    working_weekends = frozenset(d for d in full.weekend_workdays if d.year == year)
    # Every published arrangement since 2001 has at least one working weekend, so an empty set
    # means the arrangement for this year is not in the package (yet).
    official = bool(working_weekends)
    if official:
        days_off = frozenset(full)
    else:
        # Without the arrangement the package's "observed" days are guesses (a Sunday holiday
        # moved to Monday, as in other countries); China moves days by decree instead, so keep
        # only the statutory dates.
        days_off = frozenset(holidays.country_holidays("CN", years=year, observed=False))
    return _Year(days_off=days_off, working_weekends=working_weekends, official=official)


def calendar_version() -> str:
    """Which calendar data the working days come from: part of the policy digest, so a newer
    package (the next year's arrangement published) re-plans the working-day touches."""
    return f"holidays {holidays.__version__}"


def has_official_data(year: int) -> bool:
    """Whether the State Council's holiday arrangement for `year` is known here."""
    return _year(year).official


def is_working_day(day: date) -> bool:
    """A working day in mainland China: 调休 weekends count, public holidays do not."""
    calendar = _year(day.year)
    if day in calendar.working_weekends:
        return True
    if day in calendar.days_off:
        return False
    return day.weekday() < _SATURDAY
