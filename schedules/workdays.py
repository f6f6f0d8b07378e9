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
Monday–Friday.

The State Council publishes the next year's arrangement each November, and a `holidays`
release can take weeks. An operator loads the published year from a small file instead
(PERMIT_WORKDAY_CALENDAR, `load_calendar`): its holidays and adjusted working days, validated,
with the notice it comes from; for that year the file wins over the package. Pure apart from
reading that one file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import holidays
import yaml

_SATURDAY = 5


@dataclass(frozen=True)
class _Year:
    days_off: frozenset[date]  # weekdays that are holidays (weekend days off need no listing)
    working_weekends: frozenset[date]  # 调休: Saturdays/Sundays that are working days
    official: bool


class CalendarError(ValueError):
    """A PERMIT_WORKDAY_CALENDAR file that cannot be used: one line naming the problem."""


@dataclass(frozen=True)
class PublishedYear:
    year: int
    days_off: frozenset[date]  # every day off of the arrangement (holidays, weekend days included)
    working_days: frozenset[date]  # 调休: weekend days that are working days
    source: str  # the notice, e.g. 国务院办公厅关于2027年部分节假日安排的通知


_LOADED: dict[int, PublishedYear] = {}
_LOADED_DIGEST = ""


def load_calendar(path: str | Path | None) -> dict[int, PublishedYear]:
    """Read and check an operator's calendar file; its years win over the package. None clears.

        source: 国务院办公厅关于2027年部分节假日安排的通知（国办发明电〔2026〕7号）
        years:
          2027:
            holidays: [2027-01-01, 2027-02-05, ...]      # days off
            working_days: [2027-02-07, ...]               # weekends worked (调休)
    """
    global _LOADED_DIGEST
    _LOADED.clear()
    _LOADED_DIGEST = ""
    _year.cache_clear()
    if path is None:
        return {}
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CalendarError(f"PERMIT_WORKDAY_CALENDAR {file}: cannot read it ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("years"), dict) or not raw["years"]:
        raise CalendarError(f"PERMIT_WORKDAY_CALENDAR {file}: needs `years:` with at least one year")
    default_source = str(raw.get("source") or "").strip()
    loaded = {}
    for key, body in raw["years"].items():
        loaded[int(key)] = _published(file, int(key), body, default_source)
    _LOADED.update(loaded)
    _LOADED_DIGEST = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return dict(loaded)


def _published(file: Path, year: int, body: object, default_source: str) -> PublishedYear:
    where = f"PERMIT_WORKDAY_CALENDAR {file}, {year}"
    if not isinstance(body, dict):
        raise CalendarError(f"{where}: expected `holidays:` and `working_days:` lists")
    source = str(body.get("source") or default_source).strip()
    if not source:
        raise CalendarError(f"{where}: name the notice it comes from (`source:`)")
    days: dict[str, frozenset[date]] = {}
    for field in ("holidays", "working_days"):
        values = body.get(field) or []
        if not isinstance(values, list) or not all(isinstance(v, date) for v in values):
            raise CalendarError(f"{where}: `{field}` must be a list of dates (YYYY-MM-DD)")
        wrong_year = [v for v in values if v.year != year]
        if wrong_year:
            raise CalendarError(f"{where}: `{field}` has {wrong_year[0]}, not in {year}")
        days[field] = frozenset(values)
    if not days["holidays"]:
        raise CalendarError(f"{where}: `holidays` is empty (元旦 alone is one)")
    weekday_worked = sorted(d for d in days["working_days"] if d.weekday() < _SATURDAY)
    if weekday_worked:
        raise CalendarError(f"{where}: {weekday_worked[0]} is a weekday: `working_days` lists weekend days worked")
    both = sorted(days["holidays"] & days["working_days"])
    if both:
        raise CalendarError(f"{where}: {both[0]} is both a holiday and a working day")
    return PublishedYear(year, days["holidays"], days["working_days"], source)


def calendar_source(year: int) -> str:
    """Which calendar a year's working days come from, in words for explain and the ops guide."""
    if year in _LOADED:
        return f"PERMIT_WORKDAY_CALENDAR: {_LOADED[year].source}"
    if _year(year).official:
        return f"holidays {holidays.__version__} (the State Council's arrangement)"
    return "Monday-Friday minus statutory holidays (the arrangement is not published here yet)"


@lru_cache(maxsize=32)
def _year(year: int) -> _Year:
    """The calendar of one year, built once: the package recomputes lunar dates on every call."""
    if year in _LOADED:
        published = _LOADED[year]
        return _Year(days_off=published.days_off, working_weekends=published.working_days, official=True)
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
    loaded = f"; PERMIT_WORKDAY_CALENDAR {_LOADED_DIGEST} ({', '.join(map(str, sorted(_LOADED)))})" if _LOADED else ""
    return f"holidays {holidays.__version__}{loaded}"


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
