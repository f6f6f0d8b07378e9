"""Recording what sends came to: the attempt log and each row's next state, a batch at a time.

Only the claimant may finish a row: every path checks `claimed_by` in the same statement that
takes the row (a conditional UPDATE), so a row another replica reclaimed after our lease ran out
is reported as "claim_lost" and left to it.

Sent messages, nearly every result, take a set-based path: one UPDATE ... RETURNING moves all of
a batch's rows to "sent" (the claimant check included) and one INSERT logs their attempts, so a
batch costs a few statements instead of a few per row. Anything else (retry, failure, fallback)
goes through the ORM one row at a time, as it needs the holder and may enqueue an email.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import SendResult, SendStatus
from schedules.policy import Policy
from schedules.vocabulary import reason_text
from worker.delivery.claims import lock_own
from worker.delivery.deliveries import Delivery, RetryPolicy
from worker.delivery.fallback import fall_back, record_opt_out
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, Notification, utcnow
from worker.store.statuses import NoteStatus, Outcome

log = structlog.get_logger("worker.dispatch")

_NOTES = cast(Table, Notification.__table__)
_REASON_LENGTH = 200  # notifications.status_reason


def _clip(reason: str) -> str:
    return reason if len(reason) <= _REASON_LENGTH else reason[:_REASON_LENGTH - 1] + "…"
@dataclass(frozen=True)
class Unresolved:
    """A row whose latest attempt was ambiguous: that attempt, and since when it is unresolved."""

    attempt: DeliveryAttempt
    # The start of the first of the trailing ambiguous attempts: a lookup that could not tell,
    # or an abandoned claim, must not move the moment the message may have left.
    since: datetime


def last_ambiguous_attempts(session: Session, row_ids: Sequence[int]) -> dict[int, Unresolved]:
    """Rows whose latest attempt was ambiguous, with since when (one query for a batch; a row has
    a handful of attempts)."""
    if not row_ids:
        return {}
    by_row: dict[int, list[DeliveryAttempt]] = {}
    for a in session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(row_ids))
                             .order_by(DeliveryAttempt.notification_id, DeliveryAttempt.attempt_no)):
        by_row.setdefault(a.notification_id, []).append(a)
    out = {}
    for row_id, attempts in by_row.items():
        streak = []
        for a in reversed(attempts):
            if a.outcome != SendStatus.AMBIGUOUS.value:
                break
            streak.append(a)
        if streak:
            out[row_id] = Unresolved(streak[0], min(a.started_at for a in streak))
    return out


def release_note(note: Notification, *, status: str, reason: str | None = None,
                 next_attempt_at: datetime | None = None) -> None:
    """Let go of a claimed row: its next status, and why (when a reason is given)."""
    note.status = status
    note.claimed_by = None
    note.claimed_until = None
    if reason is not None:
        note.status_reason = reason
    if next_attempt_at is not None:
        note.next_attempt_at = next_attempt_at


class Recorder:
    """Writes down what sends came to. Only the claimant `worker_id` may finish a row."""

    def __init__(self, factory: sessionmaker[Session], worker_id: str, retry: RetryPolicy,
                 rng: random.Random, policy: Policy | None = None) -> None:
        self.factory = factory
        self.worker_id = worker_id
        self.retry = retry
        self.rng = rng
        self.policy = policy  # its channel order is where a permanent failure falls back to

    def finish(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Record a batch of deliveries in one transaction. Returns each one's outcome, in order."""
        try:
            with unit_of_work(self.factory) as session:
                sent = [d for d in deliveries if d.result.status is SendStatus.SENT]
                others = [d for d in deliveries if d.result.status is not SendStatus.SENT]
                outcomes = self._finish_sent(session, sent) if sent else {}
                if others:
                    mine = lock_own(session, [d.row_id for d in others], self.worker_id)
                    notes = {n.id: n for n in session.scalars(select(Notification).where(Notification.id.in_(mine)))}
                    for d in others:
                        outcomes[d.row_id] = self._record(session, notes.get(d.row_id), d)
                return [outcomes[d.row_id] for d in deliveries]
        except Exception as exc:
            if len(deliveries) > 1:
                # A row whose recording fails (e.g. its fallback) must not lose the others' results.
                return [outcome for d in deliveries for outcome in self.finish([d])]
            return [self._unrecordable(deliveries[0], exc)]

    def _finish_sent(self, session: Session, deliveries: Sequence[Delivery]) -> dict[int, str]:
        by_id = {d.row_id: d for d in deliveries}
        finished = utcnow()
        rows = session.execute(
            update(_NOTES).where(_NOTES.c.id.in_(by_id), _NOTES.c.claimed_by == self.worker_id)
            # A resend (after a carrier's passing failure) starts with no receipt: the old
            # message's delivery status is not this one's.
            .values(status=NoteStatus.SENT, claimed_by=None, claimed_until=None, sent_at=finished, updated_at=finished,
                    attempts=_NOTES.c.attempts + 1, delivery_status=None, delivery_error_code=None,
                    delivery_updated_at=None)
            .returning(_NOTES.c.id, _NOTES.c.holder_id, _NOTES.c.stage, _NOTES.c.touch_day, _NOTES.c.channel,
                       _NOTES.c.attempts, _NOTES.c.segments)
        ).all()
        if rows:
            # RETURNING makes SQLAlchemy send one multi-row INSERT ("insertmanyvalues") instead of
            # one statement per row.
            session.scalars(insert(DeliveryAttempt).returning(DeliveryAttempt.id), [{
                "notification_id": row.id, "attempt_no": row.attempts, "notifier": by_id[row.id].notifier,
                "started_at": by_id[row.id].started, "finished_at": finished, "outcome": SendStatus.SENT.value,
                "error": by_id[row.id].error, "provider_message_id": by_id[row.id].result.provider_message_id,
            } for row in rows])
        outcomes: dict[int, str] = {row_id: Outcome.CLAIM_LOST for row_id in by_id}
        for row in rows:
            d = by_id[row.id]
            self._log_delivery(d, row.id, row.holder_id, row.stage, row.touch_day, row.channel, Outcome.SENT,
                               row.attempts, row.segments)
            outcomes[row.id] = Outcome.ERROR if d.unexpected else Outcome.SENT
        for row_id in outcomes.keys() - {row.id for row in rows}:
            log.warning("dispatch.claim_lost", notification_id=row_id)
        return outcomes

    def _record(self, session: Session, note: Notification | None, delivery: Delivery) -> str:
        if note is None:
            log.warning("dispatch.claim_lost", notification_id=delivery.row_id)
            return Outcome.CLAIM_LOST
        result = delivery.result
        if delivery.restore is not None:
            note.rendered_on, note.segments = delivery.restore.rendered_on, delivery.restore.segments
        note.attempts += 1
        session.add(DeliveryAttempt(
            notification_id=note.id, attempt_no=note.attempts, notifier=delivery.notifier,
            started_at=delivery.started, finished_at=utcnow(), outcome=result.status.value, error=delivery.error,
            provider_message_id=result.provider_message_id,
        ))
        outcome = self._next_state(session, note, delivery.now, result, delivery.error)
        self._log_delivery(delivery, note.id, note.holder_id, note.stage, note.touch_day, note.channel, outcome,
                           note.attempts, note.segments)
        return Outcome.ERROR if delivery.unexpected else outcome

    @staticmethod
    def _log_delivery(delivery: Delivery, row_id: int, holder_id: int, stage: str, touch_day: int, channel: str,
                      outcome: str, attempt: int, segments: int | None) -> None:
        result = delivery.result
        log.info("delivery", notification_id=row_id, holder_id=holder_id, stage=stage, touch_day=touch_day,
                 channel=channel, notifier=delivery.notifier, outcome=outcome, attempt=attempt,
                 error=delivery.error, error_code=result.error_code, segments=segments,
                 provider_message_id=result.provider_message_id, reconciled=delivery.reconciled)

    def _unrecordable(self, delivery: Delivery, exc: Exception) -> str:
        log.exception("dispatch.unexpected_error", notification_id=delivery.row_id, stage="record")
        if delivery.result.status is SendStatus.SENT or delivery.unexpected:
            # Leave it claimed: once the lease runs out, a reclaim reconciles (finding a sent
            # message instead of sending it twice), and each reclaim spends an attempt, so a row
            # that keeps failing here ends in "failed" instead of looping.
            return Outcome.ERROR
        [outcome] = self.finish([Delivery(delivery.row_id, delivery.now, SendResult.transient(
            f"unexpected error: {type(exc).__name__}: {exc}"), "-", delivery.started, unexpected=True)])
        return outcome

    def _next_state(self, session: Session, note: Notification, now: datetime, result: SendResult,
                    error: str | None) -> str:
        # SENT never gets here: _finish_sent records it set-based. `error` is result.error, masked.
        holder = session.get(Holder, note.holder_id)
        if result.status is SendStatus.PERMANENT:
            release_note(note, status=NoteStatus.FAILED, reason=_clip(reason_text("permanent", error=error)))
            if holder is not None:
                if result.opted_out and note.channel == "sms":
                    record_opt_out(session, holder, now,
                                   f"the SMS provider says the number unsubscribed ({result.error_code or 'opt-out'})")
                fall_back(session, note, holder, f"permanent failure: {result.error_code or error}", now, self.policy)
            return Outcome.FAILED
        if note.attempts >= self.retry.max_attempts:
            return self.give_up(session, note, holder, error, now)
        delay = self.retry.delay(note.attempts, result.retry_after_seconds, self.rng)
        reason = reason_text("retrying", status=result.status.value, error=error)
        release_note(note, status=NoteStatus.PENDING, reason=_clip(reason),
                     next_attempt_at=now + timedelta(seconds=delay))
        return Outcome.RETRY

    def give_up(self, session: Session, note: Notification, holder: Holder | None, error: str | None,
                 now: datetime) -> str:
        reason = reason_text("gave_up", attempts=note.attempts, error=error)
        release_note(note, status=NoteStatus.FAILED, reason=_clip(reason))
        if holder is not None:
            fall_back(session, note, holder, f"gave up after {note.attempts} attempts", now, self.policy)
        return Outcome.FAILED
