"""What happens after a channel gives up on a holder: fall back to the next channel, else tell HR.

The next channel is the one after the failed one in the team's order (teams update --channels;
default the policy's: sms, email) that the holder has a contact for: a WeCom member unknown to
WeCom gets the SMS, an unreachable number the email. Used by the dispatcher (a permanent failure
at send time, an SMS opt-out) and by the providers' receipts (undelivered after the provider
accepted the message).
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from schedules.policy import Policy
from schedules.stages import channel_for
from worker.delivery.hr_events import record_hr_event
from worker.planning.evaluation import facts_of
from worker.planning.outbox import insert_touch, outbox_row
from worker.registry import audit
from worker.store.models import DUE_NOW, Holder, Notification
from worker.store.privacy import mask_text

log = structlog.get_logger("worker.delivery")


def fall_back(session: Session, note: Notification, holder: Holder, reason: str, now: datetime,
              policy: Policy | None = None) -> str:
    """Send the same touch on the next channel in the team's order; with none left, tell HR.

    Returns "fallback_<channel>" or "hr_notified". The new row has the same key but another
    channel, so it too is enqueued at most once however many times this runs.
    """
    following = channel_for(facts_of(holder), policy or _default_policy(), after=note.channel)
    if following is not None:
        inserted = insert_touch(session, outbox_row(holder.id, note.cycle_expires_on, note.stage, note.touch_day,
                                                    note.touch_on, following, now))
        log.info(f"delivery.fallback_{following}", notification_id=note.id, holder_id=holder.id, reason=reason,
                 enqueued=inserted)
        return f"fallback_{following}"
    record_hr_event(
        session, holder.team_id, holder.id, "unreachable",
        f"{holder.external_id}: {note.stage} {note.touch_day:+d} reminder could not be delivered ({reason})",
    )
    log.warning("delivery.unreachable", notification_id=note.id, holder_id=holder.id, reason=reason)
    return "hr_notified"


def record_opt_out(session: Session, holder: Holder, now: datetime, how: str) -> None:
    """The holder unsubscribed from SMS (a reply, or the provider saying so at send time): no SMS
    is planned for them again, and HR hears of it once."""
    if holder.sms_opted_out_at is None:
        holder.sms_opted_out_at = now
        holder.next_due_on = DUE_NOW  # the channel changed: re-evaluate at the next scan
        record_hr_event(session, holder.team_id, holder.id, "opted_out", f"{holder.external_id}: {how}")
        audit.record(session, holder.team_id, audit.SYSTEM, "holder.opted_out", holder_id=holder.id,
                     holder=holder.external_id, changes={"how": audit.masked("how", mask_text(how))}, at=now)


def _default_policy() -> Policy:
    # Only the channel order is read from it: a team without its own order uses the policy's.
    from schedules.policy import load_policy
    return load_policy(None)
