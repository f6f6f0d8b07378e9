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


def reachable_by_sms(phone: str | None, sms_opted_out_at: datetime | None) -> bool:
    """The channel rule's one input about SMS: a number on file and no opt-out (opted out, the
    holder is reached by email only). Planning, points, dispatch and fallback all ask this."""
    return bool(phone) and sms_opted_out_at is None


def team_channels(stored: str | None) -> tuple[str, ...]:
    """A team's channel order as stored ("wecom,sms,email"); empty: the policy's order."""
    return tuple(c for c in (stored or "").split(",") if c)


def contact_for(holder: Holder, channel: str) -> str | None:
    """Where a channel reaches the holder, or None: the one rule planning's facts, dispatch and
    fallback share (an opted-out number is no SMS contact)."""
    if channel == "sms":
        return holder.phone if reachable_by_sms(holder.phone, holder.sms_opted_out_at) else None
    if channel == "email":
        return holder.email or None
    if channel == "wecom":
        return holder.wecom_userid or None
    return None


def facts_from(expires_on: date, housing_type: str | None, rental_registration_ends_on: date | None,
               changed_since_endorsement: str, phone: str | None, email: str | None,
               sms_opted_out_at: datetime | None, wecom_userid: str | None = None,
               channels: str | None = None) -> HolderFacts:
    """The stage engine's facts from a holder's columns (an ORM row or a plain SELECT's tuple),
    and their team's channel order."""
    return HolderFacts(
        expires_on=expires_on,
        housing_type=housing_type,
        rental_registration_ends_on=rental_registration_ends_on,
        changed_since_endorsement=frozenset(f for f in (changed_since_endorsement or "").split(",") if f),
        has_phone=reachable_by_sms(phone, sms_opted_out_at),
        has_email=bool(email),
        has_wecom=bool(wecom_userid),
        channels=team_channels(channels),
    )


def facts_of(holder: Holder) -> HolderFacts:
    return facts_from(holder.expires_on, holder.housing_type, holder.rental_registration_ends_on,
                      holder.changed_since_endorsement, holder.phone, holder.email, holder.sms_opted_out_at,
                      holder.wecom_userid, holder.team.channels if holder.team is not None else None)


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


