"""What providers tell us after the fact: delivery receipts and holders' SMS replies."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from schedules.replies import OPT_OUT, RENEWED, classify_reply
from worker.delivery import fall_back
from worker.hr_events import record_hr_event
from worker.models import DUE_NOW, DeliveryAttempt, Holder, Notification
from worker.registry import start_new_cycle

log = structlog.get_logger("worker.inbound")

# Twilio status order: a late "sent" callback must not overwrite "delivered".
_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
         "delivered": 4, "undelivered": 4, "failed": 4, "read": 5}
# Carrier verdicts that retrying cannot change (RULES.md / issue 3): unknown or unreachable
# destination, landline or unreachable carrier, message filtered as spam.
PERMANENT_DELIVERY_CODES = frozenset({"30005", "30006", "30007"})


def apply_status_callback(session: Session, sid: str, status: str, error_code: str | None, now: datetime,
                          retry_after: timedelta = timedelta(minutes=10)) -> str:
    """Record a delivery receipt; a permanent carrier failure falls back to email or HR."""
    attempt = session.scalar(select(DeliveryAttempt).where(DeliveryAttempt.provider_message_id == sid))
    if attempt is None:
        return "unknown_message"
    note = session.get(Notification, attempt.notification_id)
    if note is None:
        return "unknown_message"
    status = status.lower()
    if _RANK.get(status, -1) < _RANK.get(note.delivery_status or "", -1):
        return "out_of_order"
    note.delivery_status, note.delivery_error_code, note.delivery_updated_at = status, error_code, now
    if status not in ("undelivered", "failed") or note.status != "sent":
        return status
    holder = session.get(Holder, note.holder_id)
    if error_code in PERMANENT_DELIVERY_CODES:
        note.status, note.status_reason = "failed", f"carrier reported {status} ({error_code})"
        if holder is not None:
            fall_back(session, note, holder, f"carrier {status} {error_code}", now)
        return "failed"
    # Not delivered for a reason that may pass (handset off, queue overflow): one more try later.
    note.status, note.status_reason = "pending", f"carrier reported {status} ({error_code}); retrying"
    note.next_attempt_at = now + retry_after
    return "retry"


def _one_year_later(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _was_reminded_this_cycle(session: Session, holder: Holder) -> bool:
    return session.scalar(
        select(Notification.id).where(Notification.holder_id == holder.id,
                                      Notification.cycle_expires_on == holder.expires_on,
                                      Notification.status == "sent").limit(1)
    ) is not None


def handle_sms_reply(session: Session, from_number: str, body: str, now: datetime) -> str:
    """Act on a holder's reply: opt out of SMS, or report a renewal; anything else goes to HR."""
    holders = list(session.scalars(select(Holder).where(Holder.phone == from_number.strip())))
    if not holders:
        return "unknown_sender"
    kind = classify_reply(body)
    for holder in holders:  # one phone may be registered by more than one employer
        if kind == OPT_OUT:
            if holder.sms_opted_out_at is None:
                holder.sms_opted_out_at = now
                holder.next_due_on = DUE_NOW  # the channel changed: re-evaluate at the next scan
                record_hr_event(session, holder.team_id, holder.id, "opted_out",
                                f"{holder.external_id}: replied {body.strip()[:20]!r}")
        elif kind == RENEWED and _was_reminded_this_cycle(session, holder):
            new_expiry = _one_year_later(holder.expires_on)
            old_expiry = holder.expires_on
            start_new_cycle(session, holder, new_expiry, "holder replied that the permit was renewed")
            record_hr_event(session, holder.team_id, holder.id, "renewal_reported",
                            f"{holder.external_id}: expiry {old_expiry} -> {new_expiry} (holder's word)")
        else:
            record_hr_event(session, holder.team_id, holder.id, "reply",
                            f"{holder.external_id}: {body.strip()[:120]}")
    log.info("inbound.reply", kind=kind or "other", holders=len(holders))
    return kind or "reply"
