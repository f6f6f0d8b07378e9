"""Pure stage evaluation: where a holder stands on a date and which touch is due.

Nothing here reads a clock or a database: callers pass `today` (already in the holder's time
zone) and the facts they hold, so every boundary can be tested day by day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from schedules.deadlines import last_working_day_on_or_before, working_days_before
from schedules.policy import Policy, WorkingDayTouch

# Stage names, exactly as in RULES.md (the policy file must use the same).
VALID = "valid"
UPCOMING = "upcoming"
AUTO_RENEWAL_WINDOW = "auto_renewal_window"
RENEW_IN_PERSON = "renew_in_person"
EXPIRED_GRACE = "expired_grace"
ACCUMULATION_RESET = "accumulation_reset"
LAPSED = "lapsed"
STAGES = (VALID, UPCOMING, AUTO_RENEWAL_WINDOW, RENEW_IN_PERSON, EXPIRED_GRACE, ACCUMULATION_RESET, LAPSED)

# Why a holder is not eligible for auto-renewal (codes; templates and the CLI put them in words).
ADDRESS_CHANGED = "address_changed"
EMPLOYER_CHANGED = "employer_changed"
PHONE_CHANGED = "phone_changed"
RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY = "rental_registration_ends_before_expiry"


AutoRenewal = Literal["eligible", "not_eligible", "not_applicable"]


@dataclass(frozen=True)
class HolderFacts:
    """What the stage engine needs to know about one holder in the current cycle."""

    expires_on: date
    housing_type: str | None = None
    rental_registration_ends_on: date | None = None
    # Fields changed since the last endorsement ("address", "employer", "phone").
    changed_since_endorsement: frozenset[str] = field(default_factory=frozenset)
    has_phone: bool = True
    has_email: bool = False
    has_wecom: bool = False
    # The team's channel order (teams update --channels); empty: the policy's.
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Eligibility:
    """Auto-renewal eligibility. Eligible means "likely": the city checks records we cannot see."""

    eligible: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Touch:
    stage: str
    day: int  # relative to expires_on: -30 is thirty days before
    on: date


@dataclass(frozen=True)
class Evaluation:
    today: date
    expires_on: date
    days_left: int
    stage: str
    eligibility: Eligibility
    due_touch: Touch | None
    channel: str | None  # where the due touch would go; None when the holder has no contact

    @property
    def overdue(self) -> int:
        return -self.days_left

    @property
    def auto_renewal(self) -> AutoRenewal:
        """"eligible" (likely: the city checks records we cannot see), "not_eligible", or, once
        the permit has expired, "not_applicable": the city's auto-renewal no longer happens."""
        if self.days_left < 0:
            return "not_applicable"
        return "eligible" if self.eligibility.eligible else "not_eligible"


def eligibility(facts: HolderFacts, policy: Policy) -> Eligibility:
    rules = policy.eligibility
    reasons: list[str] = []
    for changed, reason in (("address", ADDRESS_CHANGED), ("employer", EMPLOYER_CHANGED), ("phone", PHONE_CHANGED)):
        if changed in rules.breaking_changes and changed in facts.changed_since_endorsement:
            reasons.append(reason)
    if (
        rules.rental_registration_must_cover_expiry
        and facts.housing_type in rules.rental_housing_types
        and facts.rental_registration_ends_on is not None
        and facts.rental_registration_ends_on < facts.expires_on
    ):
        # An unknown registration end date is not a known failure, so it does not count.
        reasons.append(RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY)
    return Eligibility(not reasons, tuple(reasons))


def stage_for(days_left: int, eligible: bool, policy: Policy) -> str:
    for stage in policy.stages:
        if stage.matches(days_left, eligible):
            return stage.name
    raise AssertionError("policy validation guarantees one stage per day")  # pragma: no cover


@lru_cache(maxsize=4096)
def _working_day_touch_day(expires_on: date, rule: WorkingDayTouch) -> int | None:
    # Cached per expiry date: a scan evaluates ~11k holders but only a few hundred expiry dates.
    last = last_working_day_on_or_before(expires_on)
    if (last - expires_on).days >= rule.when_last_working_day_before:
        return None
    return (working_days_before(last, rule.working_days_before) - expires_on).days


def working_day_touch_day(expires_on: date, policy: Policy) -> int | None:
    """The extra touch day (relative to expires_on) a holiday adds before expiry, or None.

    Policy `working_day_touch`: when the last working day on or before expiry falls before the
    -3 touch, one touch goes out 3 working days before that last working day. The day is the
    same for every holder with this expiry; whether it is sent depends on their stage that day.
    """
    rule = policy.working_day_touch
    return None if rule is None else _working_day_touch_day(expires_on, rule)


def stage_touches(stage: str, expires_on: date, policy: Policy) -> tuple[int, ...]:
    """The stage's touch days for this expiry date, ascending: the policy's own, plus the
    working-day touch when it belongs to this stage and is not already a touch day.

    Every function here reads touch days through this, so evaluate, planned_touches and
    next_touch_on agree on them.
    """
    touches = policy.stage(stage).touches
    rule = policy.working_day_touch
    if rule is None or rule.stage != stage:
        return touches
    extra = _working_day_touch_day(expires_on, rule)
    if extra is None or extra in touches:
        return touches
    return tuple(sorted((*touches, extra)))


def latest_due_touch(stage: str, expires_on: date, today: date, policy: Policy) -> Touch | None:
    """The stage's latest touch on or before today.

    A holder first seen mid-stage gets this at once; later scans find the same touch (and the
    outbox key makes it a no-op) until the next touch day comes round.
    """
    offset = (today - expires_on).days
    due = [day for day in stage_touches(stage, expires_on, policy) if day <= offset]
    if not due:
        return None
    day = max(due)
    return Touch(stage, day, expires_on + timedelta(days=day))


def reachable_on(facts: HolderFacts) -> dict[str, bool]:
    return {"wecom": facts.has_wecom, "sms": facts.has_phone, "email": facts.has_email}


def channel_order(facts: HolderFacts, policy: Policy) -> tuple[str, ...]:
    return facts.channels or policy.channels


def channel_for(facts: HolderFacts, policy: Policy, after: str | None = None) -> str | None:
    """The first channel in the team's order (else the policy's) the holder has a contact for;
    with `after`, the first one after that channel (the fallback when it gave up; if the order
    no longer has that channel, any other in the order)."""
    order = channel_order(facts, policy)
    if after is not None:
        order = order[order.index(after) + 1:] if after in order else tuple(c for c in order if c != after)
    available = reachable_on(facts)
    for channel in order:
        if available.get(channel):
            return channel
    return None


def evaluate(facts: HolderFacts, today: date, policy: Policy) -> Evaluation:
    days_left = (facts.expires_on - today).days
    elig = eligibility(facts, policy)
    stage = stage_for(days_left, elig.eligible, policy)
    return Evaluation(
        today=today,
        expires_on=facts.expires_on,
        days_left=days_left,
        stage=stage,
        eligibility=elig,
        due_touch=latest_due_touch(stage, facts.expires_on, today, policy),
        channel=channel_for(facts, policy),
    )


def planned_touches(facts: HolderFacts, today: date, policy: Policy) -> list[Touch]:
    """Touches still ahead in this cycle, assuming nothing about the holder changes."""
    elig = eligibility(facts, policy).eligible
    planned: list[Touch] = []
    for stage in policy.stages:
        for day in stage_touches(stage.name, facts.expires_on, policy):
            on = facts.expires_on + timedelta(days=day)
            if on > today and stage_for(-day, elig, policy) == stage.name:
                planned.append(Touch(stage.name, day, on))
    return sorted(planned, key=lambda t: t.on)


def next_touch_on(facts: HolderFacts, today: date, policy: Policy) -> date | None:
    """The first day after `today` on which a touch falls due, if the holder's facts stay as
    they are; None when the cycle has nothing left to send. The scan stores it as
    `next_due_on`, so a day's scan reads only the holders it concerns."""
    offset = (today - facts.expires_on).days
    eligible = eligibility(facts, policy).eligible
    # A touch day counts only when the holder is in that touch's stage on it, as in evaluate.
    days = {
        day
        for stage in policy.stages
        for day in stage_touches(stage.name, facts.expires_on, policy)
        if day > offset and stage.name == stage_for(-day, eligible, policy)
    }
    return facts.expires_on + timedelta(days=min(days)) if days else None


def key_dates(expires_on: date, policy: Policy) -> dict[str, date]:
    """The dates messages name: expiry, the last day of grace, the last day before lapse."""
    dates = {"expires_on": expires_on}
    for stage, label in ((EXPIRED_GRACE, "grace_ends_on"), (ACCUMULATION_RESET, "reset_ends_on")):
        if stage in policy.stage_names:
            last = policy.last_overdue_day(stage)
            if last is not None:
                dates[label] = expires_on + timedelta(days=last)
    return dates
