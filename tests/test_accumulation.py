"""Accumulated holding years: calendar-month arithmetic and the late-endorsement reset rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedules.accumulation import (
    KEEPS_COUNTING,
    RESET,
    RESET_AND_REAPPLY,
    YearsMonths,
    accumulated,
    accumulation_after_renewal,
    add_months,
    held_since,
    on_late_endorsement,
)
from schedules.policy import default_policy, policy_from_mapping

POLICY = default_policy()


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
    (date(2025, 1, 31), 1, date(2025, 2, 28)),
    (date(2025, 1, 31), 2, date(2025, 3, 31)),  # clamping does not carry over
    (date(2024, 3, 31), -1, date(2024, 2, 29)),
    (date(2025, 12, 15), 1, date(2026, 1, 15)),
    (date(2026, 1, 15), -1, date(2025, 12, 15)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 2, 29), 48, date(2028, 2, 29)),
    (date(2025, 5, 31), -3, date(2025, 2, 28)),
    (date(2025, 5, 20), 0, date(2025, 5, 20)),
])
def test_add_months_clamps_to_the_end_of_a_shorter_month(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(("started_on", "on", "expected"), [
    # Month ends: a month is complete on the same day, or the last day of a shorter month.
    (date(2025, 1, 31), date(2025, 2, 27), (0, 0)),
    (date(2025, 1, 31), date(2025, 2, 28), (0, 1)),
    (date(2025, 1, 31), date(2025, 3, 30), (0, 1)),
    (date(2025, 1, 31), date(2025, 3, 31), (0, 2)),
    (date(2025, 3, 31), date(2025, 4, 29), (0, 0)),
    (date(2025, 3, 31), date(2025, 4, 30), (0, 1)),
    (date(2020, 8, 31), date(2020, 9, 30), (0, 1)),
    (date(2025, 12, 31), date(2026, 1, 30), (0, 0)),  # across a year end
    (date(2025, 12, 31), date(2026, 1, 31), (0, 1)),
    # Leap years.
    (date(2024, 1, 31), date(2024, 2, 28), (0, 0)),
    (date(2024, 1, 31), date(2024, 2, 29), (0, 1)),
    (date(2024, 2, 29), date(2025, 2, 27), (0, 11)),
    (date(2024, 2, 29), date(2025, 2, 28), (1, 0)),
    (date(2024, 2, 29), date(2028, 2, 28), (3, 11)),
    (date(2024, 2, 29), date(2028, 2, 29), (4, 0)),
    (date(2023, 2, 28), date(2024, 2, 27), (0, 11)),
    (date(2023, 2, 28), date(2024, 2, 28), (1, 0)),
    (date(2023, 3, 1), date(2024, 2, 29), (0, 11)),
    (date(2023, 3, 1), date(2024, 3, 1), (1, 0)),
    # The example figure, and plain cases.
    (date(2021, 11, 15), date(2026, 1, 14), (4, 1)),
    (date(2021, 11, 15), date(2026, 1, 15), (4, 2)),
    (date(2026, 1, 15), date(2026, 1, 15), (0, 0)),
    (date(2026, 1, 15), date(2026, 1, 1), (0, 0)),  # a start in the future is zero, not negative
])
def test_accumulated_counts_whole_calendar_months(started_on: date, on: date, expected: tuple[int, int]) -> None:
    result = accumulated(started_on, on)
    assert result == expected
    assert isinstance(result, YearsMonths) and result.total_months == expected[0] * 12 + expected[1]


DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


@given(DAYS, st.integers(min_value=0, max_value=600))
def test_adding_k_months_accumulates_exactly_k_months(started_on: date, k: int) -> None:
    assert accumulated(started_on, add_months(started_on, k)).total_months == k


@given(DAYS, st.integers(min_value=0, max_value=3000))
def test_the_figure_grows_by_at_most_one_month_a_day(started_on: date, days: int) -> None:
    on = started_on + timedelta(days=days)
    today, tomorrow = accumulated(started_on, on), accumulated(started_on, on + timedelta(days=1))
    assert 0 <= tomorrow.total_months - today.total_months <= 1
    assert 0 <= today.months < 12


def test_held_since_prefers_the_imported_start() -> None:
    assert held_since(date(2019, 5, 1), date(2024, 3, 1)) == date(2019, 5, 1)
    assert held_since(None, date(2024, 3, 1)) == date(2024, 3, 1)
    assert held_since(None, None) is None


@pytest.mark.parametrize(("overdue", "outcome"), [
    (-30, KEEPS_COUNTING),  # endorsed early
    (0, KEEPS_COUNTING),
    (1, KEEPS_COUNTING),
    (59, KEEPS_COUNTING),
    (60, KEEPS_COUNTING),
    (61, RESET),
    (89, RESET),
    (90, RESET),
    (91, RESET_AND_REAPPLY),
    (400, RESET_AND_REAPPLY),
])
def test_late_endorsement_rules(overdue: int, outcome: str) -> None:
    assert on_late_endorsement(overdue, POLICY) == outcome
    assert on_late_endorsement(overdue) == outcome  # the default policy


def test_the_reset_days_come_from_the_policy_windows() -> None:
    raw = {
        "name": "t", "send_window": {"start": "09:00", "end": "20:00"},
        "stages": [
            {"name": "valid", "windows": [{"days_left": [0, None]}]},
            {"name": "expired_grace", "windows": [{"days_left": [-30, -1]}]},
            {"name": "accumulation_reset", "windows": [{"days_left": [-45, -31]}]},
            {"name": "lapsed", "windows": [{"days_left": [None, -46]}]},
        ],
    }
    policy = policy_from_mapping(raw)
    assert [on_late_endorsement(d, policy) for d in (30, 31, 45, 46)] == [
        KEEPS_COUNTING, RESET, RESET, RESET_AND_REAPPLY]


EXPIRES = date(2026, 10, 5)
STARTED = date(2021, 11, 15)


@pytest.mark.parametrize(("overdue", "expected"), [
    (-20, STARTED),  # renewed before expiry
    (0, STARTED),
    (60, STARTED),
    (61, EXPIRES + timedelta(days=61)),
    (90, EXPIRES + timedelta(days=90)),
    (91, EXPIRES + timedelta(days=91)),
])
def test_the_accumulation_start_after_a_renewal(overdue: int, expected: date) -> None:
    renewed_on = EXPIRES + timedelta(days=overdue)
    assert accumulation_after_renewal(STARTED, EXPIRES, renewed_on, POLICY) == expected


def test_a_renewal_within_grace_keeps_the_whole_figure() -> None:
    renewed_on = EXPIRES + timedelta(days=60)
    start = accumulation_after_renewal(STARTED, EXPIRES, renewed_on)
    assert accumulated(start, renewed_on) == (5, 0)  # 2021-11-15 → 2026-12-04
    reset = accumulation_after_renewal(STARTED, EXPIRES, renewed_on + timedelta(days=1))
    assert accumulated(reset, renewed_on + timedelta(days=1)) == (0, 0)
