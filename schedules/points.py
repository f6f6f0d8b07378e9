"""Points (积分) renewal risks: named findings with the date each one bites, and their touches.

RULES.md, "Points (积分) renewal risks". The thresholds are data (policies/shanghai_points.yaml,
loaded by schedules.points_policy); this module applies them to one holder's facts.

How each check reads the facts (decisions, also noted in the policy file):
- Renewal is judged as of `points_valid_until`, the latest day a renewal can be done.
- Labour contract: `labor_contract_under_one_year` when its term (start → end) is under a year
  (start date known only); `labor_contract_ending` when on the renewal day 2 months or less are
  left. The latter bites on the first day a renewal would fail, which may be before the points
  expire: renewing earlier, or extending the contract, avoids it.
- Social insurance: the 12 calendar months before the month of `points_valid_until`. A month is
  judged once over (before today's month); the rest of the window is assumed paid normally, so
  only what is already broken is reported. Once any month is imported, a missing ended month
  counts as a gap; no months at all means "not imported" and nothing is judged. A paid month
  without a base multiple is not a known short month. Duplicate months: the later entry wins.
- social_insurance_multiple compares with `PointsFacts.reference_multiple` (the multiple the
  points were granted at) or, unknown, the policy's default (2.0, the lowest multiple tier).
- Unknown is never a known failure: no contract date, no basis (or an unknown one), no findings.

Pure: no clock, no I/O. `today` is the holder's calendar day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from schedules.accumulation import add_months
from schedules.points_policy import (
    BASES,
    EMPLOYER_RENAMED,
    FINDING_CODES,
    LABOR_CONTRACT_ENDING,
    LABOR_CONTRACT_UNDER_ONE_YEAR,
    REFERENCE,
    SOCIAL_INSURANCE_GAP,
    SOCIAL_INSURANCE_LOW_BASE,
    PointsPolicy,
    default_points_policy,
    load_points_policy,
)

__all__ = [
    "BASES", "FINDING_CODES", "POINTS_RENEWAL", "Finding", "InsuranceMonth", "PointsFacts", "PointsPolicy",
    "PointsTouch", "default_points_policy", "load_points_policy", "next_points_touch_on", "points_findings",
    "points_touch_due",
]

POINTS_RENEWAL = "points_renewal"  # the message kind of a points touch (templates, outbox stage)
_EPSILON = 1e-9  # base multiples are imported floats: 0.99999999 is 1x


@dataclass(frozen=True)
class InsuranceMonth:
    month: date  # any day of the month; read as its first day
    paid: bool
    base_multiple: float | None = None  # the contribution base / the city's average wage


@dataclass(frozen=True)
class PointsFacts:
    basis: str | None  # "education" | "title" | "social_insurance_multiple" | None
    points_valid_until: date | None  # None: the holder has no points, nothing to check
    labor_contract_ends_on: date | None
    employer_changed: bool = False  # the employer was renamed (new business licence) since grant
    months: tuple[InsuranceMonth, ...] = ()
    labor_contract_starts_on: date | None = None  # for the one-year term check; None: not judged
    reference_multiple: float | None = None  # social_insurance_multiple: the granted multiple


@dataclass(frozen=True)
class Finding:
    code: str  # one of FINDING_CODES
    bites_on: date  # the first day a renewal fails because of it
    holder_can_act: bool  # else HR only
    detail: dict[str, Any] = field(default_factory=dict)  # JSON-ready: str, int, float, bool, lists


@dataclass(frozen=True)
class PointsTouch:
    """A points touch: to HR with every finding, to the holder with holder_findings (if any)."""

    day: int  # relative to points_valid_until: -60 = sixty days before
    on: date
    points_valid_until: date  # with `day`, the idempotency key of the touch
    findings: tuple[Finding, ...]

    @property
    def holder_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.holder_can_act)


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _first_failing_day(ends_on: date, months: int) -> date:
    """The first renewal day d with `months` or fewer months left: ends_on <= add_months(d, months).

    add_months is monotonic, so start from the inverse and step over month-end clamping.
    """
    day = add_months(ends_on, -months)
    while add_months(day - timedelta(days=1), months) >= ends_on:
        day -= timedelta(days=1)
    while add_months(day, months) < ends_on:
        day += timedelta(days=1)
    return day


def _contract_findings(facts: PointsFacts, renewal_on: date, policy: PointsPolicy) -> list[Finding]:
    ends_on, rule = facts.labor_contract_ends_on, policy.contract
    out: list[Finding] = []
    if ends_on is None:
        return out
    base = {"labor_contract_ends_on": ends_on.isoformat(), "renewal_on": renewal_on.isoformat()}
    starts_on = facts.labor_contract_starts_on
    # A one-year contract runs from 1 September to 31 August: the term ends the day before.
    if starts_on is not None and ends_on < add_months(starts_on, rule.min_term_months) - timedelta(days=1):
        detail = {**base, "labor_contract_starts_on": starts_on.isoformat(), "required_months": rule.min_term_months}
        out.append(_finding(LABOR_CONTRACT_UNDER_ONE_YEAR, renewal_on, detail, policy))
    bites_on = _first_failing_day(ends_on, rule.must_exceed_months)
    if bites_on <= renewal_on:
        detail = {**base, "required_months": rule.must_exceed_months, "renew_before": bites_on.isoformat()}
        out.append(_finding(LABOR_CONTRACT_ENDING, bites_on, detail, policy))
    return out


def _insurance_findings(facts: PointsFacts, renewal_on: date, today: date, policy: PointsPolicy) -> list[Finding]:
    rule = policy.bases.get(facts.basis or "")
    if rule is None or not facts.months:
        return []
    minimum: float | None
    if rule.min_base_multiple == REFERENCE:
        minimum = facts.reference_multiple or policy.default_reference_multiple
    else:
        minimum = None if rule.min_base_multiple is None else float(rule.min_base_multiple)
    by_month = {m.month.replace(day=1): m for m in facts.months}
    first = add_months(renewal_on.replace(day=1), -policy.window_months)
    window = [add_months(first, i) for i in range(policy.window_months)]
    current = today.replace(day=1)
    gaps: list[str] = []
    low: list[str] = []
    qualifying: list[bool] = []
    for month in window:
        entry = by_month.get(month)
        if month >= current:
            qualifying.append(True)  # not over yet: assumed paid normally
        elif entry is None or not entry.paid:
            gaps.append(_month(month))
            qualifying.append(False)
        elif minimum is not None and entry.base_multiple is not None and entry.base_multiple < minimum - _EPSILON:
            low.append(_month(month))
            qualifying.append(False)
        else:
            qualifying.append(True)
    if _meets(qualifying, rule.months, rule.continuous):
        return []
    detail = {
        "basis": facts.basis, "renewal_on": renewal_on.isoformat(), "window_from": _month(window[0]),
        "window_to": _month(window[-1]), "required_months": rule.months, "continuous": rule.continuous,
        "min_base_multiple": minimum, "qualifying_months": sum(qualifying), "gap_months": gaps,
        "low_base_months": low,
    }
    # Name every kind of month that broke the requirement; each is someone's job to fix.
    codes = [code for code, months in ((SOCIAL_INSURANCE_GAP, gaps), (SOCIAL_INSURANCE_LOW_BASE, low)) if months]
    return [_finding(code, renewal_on, dict(detail), policy) for code in codes]


def _meets(qualifying: list[bool], needed: int, continuous: bool) -> bool:
    if not continuous:
        return sum(qualifying) >= needed
    run = best = 0
    for ok in qualifying:
        run = run + 1 if ok else 0
        best = max(best, run)
    return best >= needed


def _finding(code: str, bites_on: date, detail: dict[str, Any], policy: PointsPolicy) -> Finding:
    return Finding(code, bites_on, code in policy.holder_can_act, {**detail, "bites_on": bites_on.isoformat()})


def points_findings(facts: PointsFacts, today: date, policy: PointsPolicy | None = None) -> list[Finding]:
    """Every known risk to the holder's next points renewal, by bites_on then code order."""
    policy = policy or default_points_policy()
    renewal_on = facts.points_valid_until
    if renewal_on is None:
        return []
    found = _contract_findings(facts, renewal_on, policy) + _insurance_findings(facts, renewal_on, today, policy)
    if facts.employer_changed:
        found.append(_finding(EMPLOYER_RENAMED, renewal_on, {"renewal_on": renewal_on.isoformat()}, policy))
    return sorted(found, key=lambda f: (f.bites_on, FINDING_CODES.index(f.code)))


def points_touch_due(facts: PointsFacts, today: date, policy: PointsPolicy | None = None) -> PointsTouch | None:
    """The latest points touch on or before today, if there is anything to say.

    Like latest_due_touch: a holder first seen at -45 gets the -60 touch at once, and later
    days find the same touch (the outbox key makes it a no-op) until -30. None when the points
    date is unknown or past, no touch day has come, or nothing was found.
    """
    policy = policy or default_points_policy()
    renewal_on = facts.points_valid_until
    day = points_touch_day(renewal_on, today, policy)
    if renewal_on is None or day is None:
        return None
    findings = tuple(points_findings(facts, today, policy))
    if not findings:
        return None
    return PointsTouch(day, renewal_on + timedelta(days=day), renewal_on, findings)


def points_touch_day(renewal_on: date | None, today: date, policy: PointsPolicy | None = None) -> int | None:
    """The latest points touch day (relative to points_valid_until) on or before today, while
    the points are still valid: from then on the renewal is near and HR prepares its materials.
    None before the first touch day, after points_valid_until, or when it is unknown."""
    policy = policy or default_points_policy()
    if renewal_on is None or today > renewal_on:
        return None
    offset = (today - renewal_on).days
    due = [day for day in policy.touches if day <= offset]
    return max(due) if due else None


def next_points_touch_on(facts: PointsFacts, today: date, policy: PointsPolicy | None = None) -> date | None:
    """The next points touch day after today (on or before points_valid_until), else None.

    A day to look again, not a promise: the touch goes out only if there are findings then.
    Findings change with imported data, so an import should make the holder due again.
    """
    policy = policy or default_points_policy()
    renewal_on = facts.points_valid_until
    if renewal_on is None:
        return None
    offset = (today - renewal_on).days
    later = [day for day in policy.touches if day > offset]
    return renewal_on + timedelta(days=min(later)) if later else None
