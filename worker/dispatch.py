"""The outbox dispatcher: claim a due row, check it is still right to send, send, record.

A row is claimed with a conditional UPDATE whose row count says whether this process won it, so
two dispatchers never send the same row. A claim carries a lease: a process that dies mid-send
leaves a row that another claims once the lease runs out. Sending happens outside any
transaction, so the database is never locked while a provider is slow.
"""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, Notifier, SendResult, SendStatus
from schedules.messages import render_message
from schedules.policy import Policy, SendWindow
from schedules.window import next_window_opening
from worker.db import unit_of_work
from worker.evaluation import evaluate_holder, holder_zone, message_context
from worker.models import DeliveryAttempt, Holder, Notification, utcnow

log = structlog.get_logger("worker.dispatch")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Exponential backoff with jitter; a provider's Retry-After is a floor."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        jittered = backoff * rng.uniform(0.8, 1.2)
        return max(jittered, retry_after or 0.0)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    def __init__(
        self,
        factory: sessionmaker[Session],
        notifiers: dict[str, Notifier],
        policy: Policy,
        default_zone: ZoneInfo,
        *,
        send_window: SendWindow | None = None,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(minutes=5),
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.factory = factory
        self.notifiers = notifiers  # by channel
        self.policy = policy
        self.zone = default_zone
        self.window = send_window or policy.send_window
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.worker_id = worker_id or default_worker_id()
        self.rng = rng or random.Random()

    # -- claiming -------------------------------------------------------------------------
    def _claimable(self, now: datetime) -> object:
        due = and_(Notification.status == "pending", Notification.next_attempt_at <= now)
        abandoned = and_(Notification.status == "sending", Notification.claimed_until < now)
        return or_(due, abandoned)

    def claim_next(self, now: datetime) -> int | None:
        """Claim one due row; None when nothing is due. Skips rows another process wins."""
        with unit_of_work(self.factory) as session:
            candidates = session.scalars(
                select(Notification.id).where(self._claimable(now)).order_by(Notification.next_attempt_at).limit(10)
            ).all()
            for row_id in candidates:
                won = session.execute(
                    update(Notification)
                    .where(Notification.id == row_id, self._claimable(now))
                    .values(status="sending", claimed_by=self.worker_id, claimed_until=now + self.lease)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if won == 1:
                    return row_id
        return None

    # -- one row --------------------------------------------------------------------------
    def dispatch_one(self, now: datetime | None = None) -> str | None:
        """Claim and handle one row. Returns what happened, or None when nothing was due."""
        now = now or utcnow()
        row_id = self.claim_next(now)
        if row_id is None:
            return None
        try:
            return self._handle(row_id, now)
        except Exception as exc:  # one bad row must not crash-loop the daemon
            log.exception("dispatch.unexpected_error", notification_id=row_id)
            self._finish(row_id, now, SendResult.transient(f"unexpected error: {type(exc).__name__}: {exc}"),
                         notifier="-")
            return "error"

    def _handle(self, row_id: int, now: datetime) -> str:
        with unit_of_work(self.factory) as session:
            note = session.get(Notification, row_id)
            holder = session.get(Holder, note.holder_id) if note else None
            if note is None or holder is None:
                return "gone"  # deleted while claimed
            zone = holder_zone(holder, self.zone)
            today = now.astimezone(zone).date()
            stale = self._stale_reason(note, holder, today)
            if stale:
                self._release(session, note, status="cancelled", reason=stale)
                log.info("dispatch.cancelled", notification_id=note.id, reason=stale)
                return "cancelled"
            opening = next_window_opening(now, self.window, zone)
            if opening > now:
                # Quiet hours: wait for the window without spending an attempt.
                self._release(session, note, status="pending", next_attempt_at=opening)
                return "deferred"
            message = self._message(note, holder, today)
        notifier = self.notifiers[note.channel]
        try:
            result = notifier.send(message)
        except Exception as exc:  # an adapter bug is treated as transient, and logged in full
            log.exception("dispatch.notifier_raised", notification_id=row_id, notifier=notifier.name)
            result = SendResult.transient(f"notifier raised {type(exc).__name__}: {exc}")
        return self._finish(row_id, now, result, notifier=notifier.name)

    def _stale_reason(self, note: Notification, holder: Holder, today: object) -> str | None:
        if note.cycle_expires_on != holder.expires_on:
            return "cycle ended: permit renewed or expiry corrected"
        evaluation = evaluate_holder(holder, today, self.policy)  # type: ignore[arg-type]
        if evaluation.stage != note.stage:
            return f"stage left: holder is now {evaluation.stage}"
        if evaluation.due_touch is not None and evaluation.due_touch.day > note.touch_day:
            return f"superseded by {evaluation.due_touch.stage} {evaluation.due_touch.day:+d}"
        if (note.channel == "sms" and not holder.phone) or (note.channel == "email" and not holder.email):
            return f"no {note.channel} contact on file any more"
        return None

    def _message(self, note: Notification, holder: Holder, today: object) -> Message:
        ctx = message_context(holder, note.stage, note.touch_day, today, self.policy)  # type: ignore[arg-type]
        rendered = render_message(note.channel, holder.locale, ctx)
        return Message(
            channel=note.channel,
            to=holder.phone if note.channel == "sms" else holder.email,  # type: ignore[arg-type]
            body=rendered.body,
            subject=rendered.subject,
            locale=holder.locale,
            idempotency_key=note.key,
        )

    def _release(self, session: Session, note: Notification, *, status: str, reason: str | None = None,
                 next_attempt_at: datetime | None = None) -> None:
        note.status = status
        note.claimed_by = None
        note.claimed_until = None
        if reason is not None:
            note.status_reason = reason
        if next_attempt_at is not None:
            note.next_attempt_at = next_attempt_at

    def _finish(self, row_id: int, now: datetime, result: SendResult, *, notifier: str) -> str:
        """Record the attempt and move the row on; only the claimant may do so."""
        with unit_of_work(self.factory) as session:
            note = session.get(Notification, row_id)
            if note is None or note.claimed_by != self.worker_id:
                log.warning("dispatch.claim_lost", notification_id=row_id)
                return "claim_lost"
            note.attempts += 1
            session.add(DeliveryAttempt(
                notification_id=note.id, attempt_no=note.attempts, notifier=notifier, started_at=now,
                finished_at=utcnow(), outcome=result.status.value, error=result.error,
                provider_message_id=result.provider_message_id,
            ))
            outcome = self._next_state(session, note, now, result)
            log.info("delivery", notification_id=note.id, holder_id=note.holder_id, stage=note.stage,
                     touch_day=note.touch_day, channel=note.channel, notifier=notifier, outcome=outcome,
                     attempt=note.attempts, error=result.error, provider_message_id=result.provider_message_id)
            return outcome

    def _next_state(self, session: Session, note: Notification, now: datetime, result: SendResult) -> str:
        if result.status is SendStatus.SENT:
            self._release(session, note, status="sent", reason=None)
            note.sent_at = utcnow()
            return "sent"
        if result.status is SendStatus.PERMANENT:
            self._release(session, note, status="failed", reason=f"permanent: {result.error}")
            return "failed"
        if note.attempts >= self.retry.max_attempts:
            self._release(session, note, status="failed", reason=f"gave up after {note.attempts} attempts: {result.error}")
            return "failed"
        delay = self.retry.delay(note.attempts, result.retry_after_seconds, self.rng)
        self._release(session, note, status="pending", reason=f"retrying: {result.error}",
                      next_attempt_at=now + timedelta(seconds=delay))
        return "retry"

    # -- a batch --------------------------------------------------------------------------
    def run_batch(self, now: datetime | None = None, limit: int = 200,
                  should_stop: Callable[[], bool] = lambda: False,
                  clock: Callable[[], datetime] = utcnow) -> Counter[str]:
        """Dispatch until nothing is due, `limit` rows were handled, or a stop is requested.
        A warm stop finishes the row in hand and leaves the rest for the next run."""
        counts: Counter[str] = Counter()
        while counts.total() < limit and not should_stop():
            outcome = self.dispatch_one(now or clock())
            if outcome is None:
                break
            counts[outcome] += 1
        return counts
