"""What happens after a channel gives up on a holder: fall back to email, else tell HR.

Used by the dispatcher (a permanent failure at send time, an SMS opt-out) and by the Twilio
status callback (undelivered/failed after the provider accepted the message).
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from worker.delivery.hr_events import record_hr_event
from worker.planning.outbox import insert_touch, outbox_row
from worker.store.models import Holder, Notification

log = structlog.get_logger("worker.delivery")


def fall_back(session: Session, note: Notification, holder: Holder, reason: str, now: datetime) -> str:
    """Send the same touch by email when SMS cannot reach the holder; else tell HR.

    Returns "fallback_email" or "hr_notified". The email row has the same key but another
    channel, so it too is enqueued at most once however many times this runs.
    """
    if note.channel == "sms" and holder.email:
        inserted = insert_touch(session, outbox_row(holder.id, note.cycle_expires_on, note.stage, note.touch_day,
                                                    note.touch_on, "email", now))
        log.info("delivery.fallback_email", notification_id=note.id, holder_id=holder.id, reason=reason,
                 enqueued=inserted)
        return "fallback_email"
    record_hr_event(
        session, holder.team_id, holder.id, "unreachable",
        f"{holder.external_id}: {note.stage} {note.touch_day:+d} reminder could not be delivered ({reason})",
    )
    log.warning("delivery.unreachable", notification_id=note.id, holder_id=holder.id, reason=reason)
    return "hr_notified"
