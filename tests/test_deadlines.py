"""Working-day deadlines over China's 2025 and 2026 holidays, and the fallback for other years.

2025 Spring Festival: off 1/28–2/4, Sunday 1/26 and Saturday 2/8 worked.
2025 National Day (with Mid-Autumn): off 10/1–10/8, Sunday 9/28 and Saturday 10/11 worked.
2026 Spring Festival: off 2/15–2/23, Saturday 2/14 and Saturday 2/28 worked.
2026 National Day: off 10/1–10/7, Sunday 9/20 and Saturday 10/10 worked; Mid-Autumn is Friday 9/25.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from schedules.deadlines import (
    Deadlines,
    calendar_note,
    deadlines,
    last_working_day_on_or_before,
    working_days_before,
)
from schedules.policy import default_policy, policy_from_mapping
from schedules.workdays import has_official_data

POLICY = default_policy()


@pytest.mark.parametrize(("day", "expected"), [
    # 2025 Spring Festival
    (date(2025, 1, 27), date(2025, 1, 27)),  # Monday before the holiday: a working day
    (date(2025, 1, 28), date(2025, 1, 27)),
    (date(2025, 2, 4), date(2025, 1, 27)),  # last day off
    (date(2025, 2, 5), date(2025, 2, 5)),
    (date(2025, 1, 26), date(2025, 1, 26)),  # Sunday worked (调休)
    (date(2025, 2, 8), date(2025, 2, 8)),  # Saturday worked
    (date(2025, 2, 9), date(2025, 2, 8)),  # Sunday after it
    # 2025 National Day
    (date(2025, 9, 30), date(2025, 9, 30)),
    (date(2025, 10, 1), date(2025, 9, 30)),
    (date(2025, 10, 8), date(2025, 9, 30)),
    (date(2025, 10, 9), date(2025, 10, 9)),
    (date(2025, 9, 28), date(2025, 9, 28)),  # Sunday worked
    (date(2025, 10, 11), date(2025, 10, 11)),  # Saturday worked
    (date(2025, 10, 12), date(2025, 10, 11)),
    # 2026 Spring Festival
    (date(2026, 2, 13), date(2026, 2, 13)),
    (date(2026, 2, 14), date(2026, 2, 14)),  # Saturday worked
    (date(2026, 2, 15), date(2026, 2, 14)),
    (date(2026, 2, 23), date(2026, 2, 14)),  # last day off: nine days back, to the Saturday
    (date(2026, 2, 24), date(2026, 2, 24)),
    (date(2026, 2, 28), date(2026, 2, 28)),  # Saturday worked
    (date(2026, 3, 1), date(2026, 2, 28)),
    # 2026 National Day
    (date(2026, 9, 20), date(2026, 9, 20)),  # Sunday worked
    (date(2026, 9, 27), date(2026, 9, 24)),  # Sunday, Saturday and Mid-Autumn Friday back
    (date(2026, 9, 30), date(2026, 9, 30)),
    (date(2026, 10, 1), date(2026, 9, 30)),
    (date(2026, 10, 5), date(2026, 9, 30)),
    (date(2026, 10, 7), date(2026, 9, 30)),
    (date(2026, 10, 8), date(2026, 10, 8)),
    (date(2026, 10, 10), date(2026, 10, 10)),  # Saturday worked
    (date(2026, 10, 11), date(2026, 10, 10)),
])
def test_last_working_day_on_or_before(day: date, expected: date) -> None:
    assert last_working_day_on_or_before(day) == expected


@pytest.mark.parametrize(("day", "n", "expected"), [
    (date(2025, 1, 27), 1, date(2025, 1, 26)),  # the worked Sunday counts
    (date(2025, 1, 27), 3, date(2025, 1, 23)),  # Sunday 1/26, Friday 1/24, Thursday 1/23
    (date(2025, 2, 5), 1, date(2025, 1, 27)),  # across the whole Spring Festival
    (date(2025, 9, 30), 3, date(2025, 9, 26)),  # 9/29, Sunday 9/28 worked, Friday 9/26
    (date(2025, 10, 9), 1, date(2025, 9, 30)),
    (date(2025, 10, 13), 1, date(2025, 10, 11)),  # the worked Saturday
    (date(2026, 2, 14), 3, date(2026, 2, 11)),
    (date(2026, 2, 24), 1, date(2026, 2, 14)),
    (date(2026, 3, 2), 1, date(2026, 2, 28)),
    (date(2026, 9, 30), 3, date(2026, 9, 24)),  # 9/29, 9/28, then past the weekend and Mid-Autumn
    (date(2026, 9, 21), 1, date(2026, 9, 20)),  # the worked Sunday
    (date(2026, 10, 8), 1, date(2026, 9, 30)),
    (date(2026, 10, 12), 1, date(2026, 10, 10)),
    (date(2026, 12, 4), 0, date(2026, 12, 4)),
    (date(2026, 12, 5), 0, date(2026, 12, 5)),  # n=0 is the day itself, working or not
    (date(2026, 12, 7), 5, date(2026, 11, 30)),  # an ordinary week
])
def test_working_days_before(day: date, n: int, expected: date) -> None:
    assert working_days_before(day, n) == expected


def test_working_days_before_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError):
        working_days_before(date(2026, 1, 5), -1)


@pytest.mark.parametrize(("expires_on", "in_person", "in_grace", "before_lapse"), [
    # 2026 Spring Festival: grace ends Friday 4/24; day 90 is Sunday 5/24.
    (date(2026, 2, 23), date(2026, 2, 14), date(2026, 4, 24), date(2026, 5, 22)),
    # 2025 National Day: grace ends Sunday 12/7; day 90 is Tuesday 2026-01-06.
    (date(2025, 10, 8), date(2025, 9, 30), date(2025, 12, 5), date(2026, 1, 6)),
    # 2025 Spring Festival: expiry on the last day off; day 60 is the Qingming weekend (4/4–4/6) and
    # day 90 is Monday 5/5, the last day of the Labour Day holiday (5/1–5/5).
    (date(2025, 2, 4), date(2025, 1, 27), date(2025, 4, 3), date(2025, 4, 30)),
    # Grace ends inside the 2025 National Day holiday (10/1–10/8): back to 9/30.
    (date(2025, 8, 7), date(2025, 8, 7), date(2025, 9, 30), date(2025, 11, 5)),
    # Day 90 inside the 2026 Spring Festival (2/15–2/23): back to the worked Saturday 2/14.
    (date(2025, 11, 23), date(2025, 11, 21), date(2026, 1, 22), date(2026, 2, 14)),
])
def test_deadlines_over_the_official_holidays(
    expires_on: date, in_person: date, in_grace: date, before_lapse: date
) -> None:
    d = deadlines(expires_on, POLICY)
    assert (d.last_day_in_person, d.last_day_in_grace, d.last_day_before_lapse) == (in_person, in_grace, before_lapse)
    assert d.calendar_official and d.fallback_years == ()
    assert calendar_note(d) is None


def test_a_2026_national_day_expiry_whose_reset_window_runs_into_2027() -> None:
    d = deadlines(date(2026, 10, 5), POLICY)
    assert d.last_day_in_person == date(2026, 9, 30)
    assert d.last_day_in_grace == date(2026, 12, 4)  # day 60, a Friday
    assert d.last_day_before_lapse == date(2026, 12, 31)  # day 90 is Sunday 2027-01-03, after New Year
    # 2027's arrangement is not in the holidays package (only its fixed holidays are).
    assert not has_official_data(2027)
    assert not d.calendar_official and d.fallback_years == (2027,)


def test_an_uncovered_year_falls_back_to_weekdays_minus_statutory_holidays_and_says_so() -> None:
    assert not has_official_data(2031)
    d = deadlines(date(2031, 10, 3), POLICY)  # a Friday, National Day
    assert d.last_day_in_person == date(2031, 9, 30)  # 10/1–10/3 statutory, nothing moved
    assert d.last_day_in_grace == date(2031, 12, 2)
    assert d.last_day_before_lapse == date(2031, 12, 31)  # day 90 is 2032-01-01, New Year's Day
    assert not d.calendar_official and d.fallback_years == (2031, 2032)
    note = calendar_note(d)
    assert note is not None and "2031, 2032" in note and "Monday-Friday" in note
    # No guessed substitute days: the Monday after National Day 2031 counts as a working day.
    assert last_working_day_on_or_before(date(2031, 10, 6)) == date(2031, 10, 6)
    assert working_days_before(date(2031, 10, 6), 3) == date(2031, 9, 26)


def test_the_last_helpful_day_moves_on_as_each_window_passes() -> None:
    d = deadlines(date(2026, 10, 5), POLICY)
    assert d.last_helpful_day(date(2026, 9, 30)) == date(2026, 9, 30)
    assert d.last_helpful_day(date(2026, 10, 1)) == date(2026, 12, 4)
    assert d.last_helpful_day(date(2026, 12, 5)) == date(2026, 12, 31)
    assert d.last_helpful_day(date(2027, 1, 1)) is None


def test_a_policy_without_grace_windows_has_only_the_in_person_day() -> None:
    policy = policy_from_mapping({
        "name": "t", "send_window": {"start": "09:00", "end": "20:00"},
        "stages": [
            {"name": "a", "windows": [{"days_left": [0, None]}], "touches": [-5]},
            {"name": "b", "windows": [{"days_left": [None, -1]}], "touches": [1]},
        ],
    })
    d = deadlines(date(2026, 10, 5), policy)
    assert d == Deadlines(date(2026, 10, 5), date(2026, 9, 30), date(2026, 9, 30), date(2026, 9, 30), True, ())


def test_every_day_of_2025_and_2026_has_a_working_day_within_two_weeks() -> None:
    day = date(2025, 1, 1)
    while day.year < 2027:
        last = last_working_day_on_or_before(day)
        assert timedelta(0) <= day - last <= timedelta(days=14)
        day += timedelta(days=1)
