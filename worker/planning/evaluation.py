"""Bridge from registry rows to the pure stage engine: facts, time zone, "today"."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from schedules.accumulation import YearsMonths, accumulated, held_since
from schedules.messages import MessageContext
from schedules.policy import Policy
from schedules.stages import Evaluation, HolderFacts, evaluate, key_dates
from worker.store.models import Holder


def holder_zone(holder: Holder, default: ZoneInfo) -> ZoneInfo:
    return ZoneInfo(holder.timezone) if holder.timezone else default


def holder_today(holder: Holder, now: datetime, default: ZoneInfo) -> date:
    """Every "today" is the holder's calendar day, not the server's."""
    return now.astimezone(holder_zone(holder, default)).date()


def facts_of(holder: Holder) -> HolderFacts:
    return HolderFacts(
        expires_on=holder.expires_on,
        housing_type=holder.housing_type,
        rental_registration_ends_on=holder.rental_registration_ends_on,
        changed_since_endorsement=holder.changed_fields,
        has_phone=bool(holder.phone) and holder.sms_opted_out_at is None,  # opted out: email only
        has_email=bool(holder.email),
    )


def evaluate_holder(holder: Holder, today: date, policy: Policy) -> Evaluation:
    return evaluate(facts_of(holder), today, policy)


def accumulated_of(holder: Holder, today: date) -> YearsMonths | None:
    """Continuous holding as of today, from accumulation_started_on (else the first registration)."""
    started = held_since(holder.accumulation_started_on, holder.created_at.date() if holder.created_at else None)
    if started is None or started > today:
        return None
    return accumulated(started, today)


def message_context(holder: Holder, stage: str, touch_day: int, today: date, policy: Policy,
                    findings: tuple[str, ...] = ()) -> MessageContext:
    """What a message needs. `findings` are the holder-actionable points finding codes (points
    touches only); the cycle date of a points touch is the holder's points_valid_until."""
    dates = key_dates(holder.expires_on, policy)
    reasons = evaluate_holder(holder, today, policy).eligibility.reasons
    held = accumulated_of(holder, today)
    return MessageContext(
        stage=stage,
        touch_day=touch_day,
        today=today,
        expires_on=holder.expires_on,
        grace_ends_on=dates.get("grace_ends_on", holder.expires_on),
        reset_ends_on=dates.get("reset_ends_on", holder.expires_on),
        name=holder.name,
        housing_type=holder.housing_type,
        eligibility_reasons=reasons,
        accumulated=held if held and (held.years or held.months) else None,
        findings=findings,
        points_valid_until=holder.points_valid_until,
    )


