"""What providers tell us after the fact: delivery receipts and holders' SMS replies.

Both arrive from outside, retried by the provider or replayed by anyone holding a signed copy:
each provider message acts at most once (`seen_before`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Receipt, Reply
from schedules.policy import Policy
from schedules.replies import OPT_OUT, RENEWED, classify_reply
from schedules.vocabulary import reason_text
from worker.delivery.fallback import fall_back, record_opt_out
from worker.delivery.hr_events import record_hr_event
from worker.planning.outbox import POINTS_STAGE as POINTS_RENEWAL
from worker.planning.outbox import insert_dialect
from worker.registry import audit
from worker.registry.records import start_new_cycle
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, InboundEvent, Notification, utcnow
from worker.store.privacy import mask_text, strip_control
from worker.store.statuses import NoteStatus

log = structlog.get_logger("worker.inbound")


def seen_before(session: Session, provider: str, kind: str, message_id: str, status: str = "") -> bool:
    """Record a provider message as acted on; True when it was already (a retry or a replay).

    The unique key decides, so two copies arriving at once on two replicas act once."""
    stmt = insert_dialect(session)(InboundEvent).values(
        provider=provider, kind=kind, message_id=message_id[:100], status=status[:32], received_at=utcnow(),
    ).on_conflict_do_nothing(index_elements=["provider", "kind", "message_id", "status"]).returning(InboundEvent.id)
    return session.execute(stmt).scalar_one_or_none() is None


def _reconciled_attempt(session: Session, provider: str, key: str, sid: str) -> DeliveryAttempt | None:
    """The attempt a receipt is about when only the echoed key names it: the notification's
    latest attempt, if it was sent without a provider id (found by reconciling); it takes the
    receipt's id from now on. Anything else (a malformed key, an attempt with an id) is unknown."""
    holder_id, cycle, stage, day, channel = (key.split(":") + [""] * 5)[:5]
    try:
        found = session.scalar(select(Notification).where(
            Notification.holder_id == int(holder_id), Notification.cycle_expires_on == date.fromisoformat(cycle),
            Notification.stage == stage, Notification.touch_day == int(day), Notification.channel == channel))
    except ValueError:
        return None
    if found is None:
        return None
    attempt = session.scalar(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == found.id)
                             .order_by(DeliveryAttempt.attempt_no.desc()).limit(1))
    if attempt is None or attempt.provider_message_id is not None or attempt.notifier != provider \
            or attempt.outcome != "sent":
        return None
    attempt.provider_message_id = sid[:100]
    return attempt


def apply_receipt(session: Session, receipt: Receipt, now: datetime, *, max_attempts: int = 6,
                  retry_after: timedelta = timedelta(minutes=10), policy: Policy | None = None) -> str:
    """Record a delivery receipt; a permanent carrier failure falls back to email or HR.

    Idempotent: the same (message id, status) twice changes nothing, and only a receipt for the
    notification's latest attempt acts (an older attempt's late receipt is history). A passing
    carrier failure is retried, and the retry counts toward `max_attempts` like any other, so
    replaying receipts can never send more than one more message."""
    sid, status = receipt.message_id, receipt.status[:16]
    error_code = receipt.error_code[:64] if receipt.error_code else None
    attempt = session.scalar(select(DeliveryAttempt).where(DeliveryAttempt.provider_message_id == sid)
                             .order_by(DeliveryAttempt.attempt_no.desc()).limit(1))
    if attempt is None and receipt.idempotency_key:
        attempt = _reconciled_attempt(session, receipt.provider, receipt.idempotency_key, sid)
    note = session.get(Notification, attempt.notification_id) if attempt is not None else None
    if attempt is None or note is None:
        return "unknown_message"
    if seen_before(session, receipt.provider, "receipt", sid, status):
        return "duplicate"
    latest = session.scalar(select(func.max(DeliveryAttempt.attempt_no))
                            .where(DeliveryAttempt.notification_id == note.id))
    if attempt.attempt_no != latest:
        return "stale_attempt"  # the message was sent again since: this receipt is about the old one
    if receipt.rank(status) < receipt.rank(note.delivery_status):
        return "out_of_order"
    note.delivery_status, note.delivery_error_code, note.delivery_updated_at = status, error_code, now
    if not receipt.undelivered or note.status != NoteStatus.SENT:
        return status
    holder = session.get(Holder, note.holder_id)
    if receipt.permanent or note.attempts >= max_attempts:
        note.status = NoteStatus.FAILED
        note.status_reason = (reason_text("carrier_failed", status=status, code=error_code) if receipt.permanent
                              else reason_text("gave_up_carrier", attempts=note.attempts, status=status,
                                               code=error_code))
        if holder is not None:
            if receipt.opted_out and note.channel == "sms":
                record_opt_out(session, holder, now, f"the carrier says the number blocked our SMS ({error_code})")
            fall_back(session, note, holder, f"carrier {status} {error_code}", now, policy)
        return "failed"
    # Not delivered for a reason that may pass (handset off, queue overflow): one more try later.
    note.status = NoteStatus.PENDING
    note.status_reason = reason_text("carrier_retrying", status=status, code=error_code)
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
                                      Notification.status == NoteStatus.SENT).limit(1)
    ) is not None


def _latest_sent(session: Session, holders: list[Holder]) -> Notification | None:
    """The newest SMS sent to any of these holders (all registered with one phone)."""
    return session.scalar(
        select(Notification).where(Notification.holder_id.in_([h.id for h in holders]), Notification.channel == "sms",
                                   Notification.sent_at.is_not(None))
        .order_by(Notification.sent_at.desc(), Notification.id.desc()).limit(1))


def _in_current_cycle(note: Notification, holder: Holder) -> bool:
    current = holder.points_valid_until if note.stage == POINTS_RENEWAL else holder.expires_on
    return note.cycle_expires_on == current


def reply_targets(session: Session, holders: list[Holder]) -> list[Holder]:
    """Who a reply from a number is for: the team that messaged the number last, and of its
    holders with that number those whose latest message belongs to their current cycle. One
    phone may be registered by several employers; each only hears what was meant for it."""
    latest = _latest_sent(session, holders)
    if latest is None:
        return []
    team_id = next(h.team_id for h in holders if h.id == latest.holder_id)
    targets = []
    for holder in (h for h in holders if h.team_id == team_id):
        own = _latest_sent(session, [holder])
        if own is not None and _in_current_cycle(own, holder):
            targets.append(holder)
    return targets


def apply_reply(session: Session, reply: Reply, now: datetime) -> str:
    """Act on a holder's reply: opt out of SMS, or report a renewal; anything else goes to HR.

    Acts only for the team that messaged the number (`reply_targets`); a reply nobody messaged
    for is logged and dropped. A provider message id seen before is a no-op. The text is stored
    only with ID-card and phone numbers masked."""
    if reply.message_id and seen_before(session, reply.provider, "reply", reply.message_id):
        return "duplicate"
    text = mask_text(strip_control(reply.body)).strip()
    holders = list(session.scalars(select(Holder).where(Holder.phone == reply.from_number.strip())))
    if not holders:
        return "unknown_sender"
    targets = reply_targets(session, holders)
    kind = classify_reply(text)
    if not targets:
        log.info("inbound.reply_dropped", kind=kind or "other", holders=len(holders),
                 reason="no message of a current cycle was sent to this number")
        return "dropped"
    for holder in targets:
        if kind == OPT_OUT:
            record_opt_out(session, holder, now, f"replied {text[:20]!r}")
        elif kind == RENEWED and _was_reminded_this_cycle(session, holder):
            new_expiry = _one_year_later(holder.expires_on)
            old_expiry = holder.expires_on
            start_new_cycle(session, holder, new_expiry, reason_text("renewal_reported"))
            audit.record(session, holder.team_id, audit.SYSTEM, "holder.renewal_reported", holder_id=holder.id,
                         holder=holder.external_id,
                         changes={"expires_on": [old_expiry.isoformat(), new_expiry.isoformat()]}, at=now)
            record_hr_event(session, holder.team_id, holder.id, "renewal_reported",
                            f"{holder.external_id}: expiry {old_expiry} -> {new_expiry} (holder's word)")
        else:
            record_hr_event(session, holder.team_id, holder.id, "reply", f"{holder.external_id}: {text[:120]}")
    log.info("inbound.reply", kind=kind or "other", holders=len(targets))
    return kind or "reply"


class Inbox:
    """Where providers' webhooks hand receipts and replies (notifiers.base.InboundSink): each is
    applied in its own transaction."""

    def __init__(self, factory: sessionmaker[Session], max_attempts: int,
                 clock: Callable[[], datetime] = utcnow, policy: Policy | None = None) -> None:
        self.factory = factory
        self.max_attempts = max_attempts
        self.clock = clock
        self.policy = policy

    def receipt(self, receipt: Receipt) -> str:
        with unit_of_work(self.factory) as session:
            return apply_receipt(session, receipt, self.clock(), max_attempts=self.max_attempts, policy=self.policy)

    def reply(self, reply: Reply) -> str:
        with unit_of_work(self.factory) as session:
            return apply_reply(session, reply, self.clock())
