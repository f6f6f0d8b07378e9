"""Accumulated holding years (累计持有年限): how long a holder has held the permit continuously.

The count starts on `accumulation_started_on` (imported from the centre's records when HR has
it, else the holder's first registration with us) and survives a late endorsement only within
the grace window (RULES.md): endorsed within 60 days late, the years keep counting; 61–90 days
late, they restart from zero; more than 90 days, they restart and the permit must be applied
for anew. The day counts come from the main policy's stage windows, never from code.

Month arithmetic convention (the one people and the centres use, and dateutil's relativedelta):
a month is complete on the same day of a later month, or on that month's last day when it is
shorter. So Jan 31 → Feb 28 (Feb 29 in a leap year) is one month, Jan 31 → Mar 30 is still one
month and Jan 31 → Mar 31 two; Feb 29 2024 → Feb 28 2025 is one year. The start day itself
counts as zero, and a figure is never negative.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Literal, NamedTuple

from schedules.policy import Policy, default_policy

LateEndorsement = Literal["keeps_counting", "reset", "reset_and_reapply"]
KEEPS_COUNTING: LateEndorsement = "keeps_counting"
RESET: LateEndorsement = "reset"
RESET_AND_REAPPLY: LateEndorsement = "reset_and_reapply"

# The stages whose last day bounds each outcome (names as in schedules.stages).
_GRACE_STAGE = "expired_grace"
_RESET_STAGE = "accumulation_reset"


class YearsMonths(NamedTuple):
    """Whole years and months; a tuple, so it is also MessageContext.accumulated as it is."""

    years: int
    months: int

    @property
    def total_months(self) -> int:
        return self.years * 12 + self.months


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months (may be negative), clamped to the month's end."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def accumulated(started_on: date, on: date) -> YearsMonths:
    """Whole years and months held from `started_on` to `on` (see the convention above).

    `on` before `started_on` (a start date typed in the future) is zero, not an error: an
    explain page or a message must still render.
    """
    if on <= started_on:
        return YearsMonths(0, 0)
    months = (on.year - started_on.year) * 12 + on.month - started_on.month
    # The estimate counts a month that is not yet complete when `on` is earlier in its month.
    if add_months(started_on, months) > on:
        months -= 1
    return YearsMonths(*divmod(months, 12))


def held_since(accumulation_started_on: date | None, first_registered_on: date | None) -> date | None:
    """Where the count starts: the imported start date when known, else the first registration."""
    return accumulation_started_on if accumulation_started_on is not None else first_registered_on


def _last_overdue_day(policy: Policy, stage: str) -> int:
    last = policy.last_overdue_day(stage) if stage in policy.stage_names else None
    if last is None:
        raise ValueError(f"policy {policy.name!r} has no closed {stage} window")
    return last


def on_late_endorsement(overdue_days: int, policy: Policy | None = None) -> LateEndorsement:
    """What an endorsement `overdue_days` after expiry does to the accumulated years.

    With the default policy: ≤ 60 (including on time, ≤ 0) keeps counting, 61–90 resets,
    ≥ 91 resets and needs a new application. The 60 and 90 are the last days of the policy's
    `expired_grace` and `accumulation_reset` windows.
    """
    policy = policy or default_policy()
    if overdue_days <= _last_overdue_day(policy, _GRACE_STAGE):
        return KEEPS_COUNTING
    if overdue_days <= _last_overdue_day(policy, _RESET_STAGE):
        return RESET
    return RESET_AND_REAPPLY


def accumulation_after_renewal(
    started_on: date, expires_on: date, renewed_on: date, policy: Policy | None = None
) -> date:
    """The accumulation start after a renewal on `renewed_on` of a permit expiring `expires_on`.

    Renewed within the grace window: unchanged. Later: the count restarts on the renewal day
    (after a lapse the new permit's date is the renewal day too, as far as we know it).
    """
    if on_late_endorsement((renewed_on - expires_on).days, policy) == KEEPS_COUNTING:
        return started_on
    return renewed_on
