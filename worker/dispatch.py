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
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, Notifier, Reconciler, SendResult, SendStatus
from schedules.messages import render_message
from schedules.policy import Policy, SendWindow
from schedules.window import next_window_opening, window_closes
from worker.db import unit_of_work
from worker.delivery import fall_back, sms_usable
from worker.evaluation import evaluate_holder, holder_zone, message_context
from worker.models import DeliveryAttempt, Holder, Notification, utcnow
from worker.ratelimit import RateLimits

log = structlog.get_logger("worker.dispatch")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 60.0
    max_seconds: float = 6 * 3600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Exponential backoff with jitter; a provider's Retry-After is a floor."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return max(backoff * rng.uniform(0.8, 1.2), retry_after or 0.0)


@dataclass(frozen=True)
class Prepared:
    """A claimed row ready to go: the message, plus what reconciliation needs."""

    row_id: int
    message: Message
    reconcile_message: Message | None  # the earlier, ambiguous attempt's message
    reconcile_since: datetime | None


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
        rate_limits: RateLimits | None = None,
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
        self.rate_limits = rate_limits or RateLimits({})

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
            prepared = self._prepare(row_id, now)
            if isinstance(prepared, str):
                return prepared
            return self._deliver(prepared, now)
        except Exception as exc:  # one bad row must not crash-loop the daemon
            log.exception("dispatch.unexpected_error", notification_id=row_id)
            self._finish(row_id, now, SendResult.transient(f"unexpected error: {type(exc).__name__}: {exc}"), "-",
                         utcnow())
            return "error"

    def _prepare(self, row_id: int, now: datetime) -> Prepared | str:
        with unit_of_work(self.factory) as session:
            note = session.get(Notification, row_id)
            holder = session.get(Holder, note.holder_id) if note else None
            if note is None or holder is None:
                return "gone"  # deleted while claimed
            zone = holder_zone(holder, self.zone)
            today = now.astimezone(zone).date()
            stale = self._stale_reason(note, holder, today)
            if stale:
                self._release(note, status="cancelled", reason=stale)
                if note.channel == "sms" and holder.sms_opted_out_at is not None:
                    fall_back(session, note, holder, "opted out of SMS", now)
                log.info("dispatch.cancelled", notification_id=note.id, reason=stale)
                return "cancelled"
            opening = next_window_opening(now, self.window, zone)
            if opening > now:
                # Quiet hours: wait for the window without spending an attempt.
                self._release(note, status="pending", next_attempt_at=opening)
                return "deferred"
            message, segments = self._message(note, holder, today, valid_until=window_closes(now, self.window, zone))
            ambiguous = self._last_ambiguous_attempt(session, note.id)
            earlier = None
            if ambiguous is not None:  # reconcile against the text exactly as it was sent
                earlier, _ = self._message(note, holder, note.rendered_on or today, None)
            note.segments = segments if note.channel == "sms" else None
            note.rendered_on = today
            return Prepared(row_id, message, earlier, ambiguous.started_at if ambiguous else None)

    def _deliver(self, prepared: Prepared, now: datetime) -> str:
        notifier = self.notifiers[prepared.message.channel]
        # Attempts record wall-clock time (not the logical `now` of `dispatch --now`): the
        # provider's own timestamps are wall-clock, and reconciliation compares against them.
        started = utcnow()
        if prepared.reconcile_since is not None and isinstance(notifier, Reconciler):
            # The last try may have been accepted: look before sending again.
            found = notifier.reconcile(prepared.reconcile_message or prepared.message, prepared.reconcile_since)
            if found is not None:
                return self._finish(prepared.row_id, now, found, notifier.name, started, reconciled=True)
        self.rate_limits.acquire(notifier.name)
        try:
            result = notifier.send(prepared.message)
        except Exception as exc:  # an adapter bug is treated as transient, and logged in full
            log.exception("dispatch.notifier_raised", notification_id=prepared.row_id, notifier=notifier.name)
            result = SendResult.transient(f"notifier raised {type(exc).__name__}: {exc}")
        return self._finish(prepared.row_id, now, result, notifier.name, started)

    def _stale_reason(self, note: Notification, holder: Holder, today: date) -> str | None:
        if note.cycle_expires_on != holder.expires_on:
            return "cycle ended: permit renewed or expiry corrected"
        evaluation = evaluate_holder(holder, today, self.policy)
        if evaluation.stage != note.stage:
            return f"stage left: holder is now {evaluation.stage}"
        if evaluation.due_touch is not None and evaluation.due_touch.day > note.touch_day:
            return f"superseded by {evaluation.due_touch.stage} {evaluation.due_touch.day:+d}"
        if note.channel == "sms" and holder.phone and holder.sms_opted_out_at is not None:
            return "holder opted out of SMS"
        if (note.channel == "sms" and not sms_usable(holder)) or (note.channel == "email" and not holder.email):
            return f"no {note.channel} contact on file any more"
        return None

    def _message(self, note: Notification, holder: Holder, today: date,
                 valid_until: datetime | None) -> tuple[Message, int]:
        ctx = message_context(holder, note.stage, note.touch_day, today, self.policy)
        rendered = render_message(note.channel, holder.locale, ctx)
        message = Message(
            channel=note.channel,
            to=holder.phone if note.channel == "sms" else holder.email,  # type: ignore[arg-type]
            body=rendered.body,
            subject=rendered.subject,
            locale=holder.locale,
            idempotency_key=note.key,
            valid_until=valid_until,
        )
        return message, rendered.segments

    @staticmethod
    def _last_ambiguous_attempt(session: Session, row_id: int) -> DeliveryAttempt | None:
        last = session.scalar(
            select(DeliveryAttempt).where(DeliveryAttempt.notification_id == row_id)
            .order_by(DeliveryAttempt.attempt_no.desc()).limit(1)
        )
        return last if last is not None and last.outcome == SendStatus.AMBIGUOUS.value else None

    @staticmethod
    def _release(note: Notification, *, status: str, reason: str | None = None,
                 next_attempt_at: datetime | None = None) -> None:
        note.status = status
        note.claimed_by = None
        note.claimed_until = None
        if reason is not None:
            note.status_reason = reason
        if next_attempt_at is not None:
            note.next_attempt_at = next_attempt_at

    def _finish(self, row_id: int, now: datetime, result: SendResult, notifier: str, started: datetime,
                reconciled: bool = False) -> str:
        """Record the attempt and move the row on; only the claimant may do so."""
        with unit_of_work(self.factory) as session:
            note = session.get(Notification, row_id)
            if note is None or note.claimed_by != self.worker_id:
                log.warning("dispatch.claim_lost", notification_id=row_id)
                return "claim_lost"
            note.attempts += 1
            error = "reconciled: an earlier attempt was accepted" if reconciled and result.status is SendStatus.SENT \
                else result.error
            session.add(DeliveryAttempt(
                notification_id=note.id, attempt_no=note.attempts, notifier=notifier, started_at=started,
                finished_at=utcnow(), outcome=result.status.value, error=error,
                provider_message_id=result.provider_message_id,
            ))
            outcome = self._next_state(session, note, now, result)
            log.info("delivery", notification_id=note.id, holder_id=note.holder_id, stage=note.stage,
                     touch_day=note.touch_day, channel=note.channel, notifier=notifier, outcome=outcome,
                     attempt=note.attempts, error=error, error_code=result.error_code, segments=note.segments,
                     provider_message_id=result.provider_message_id, reconciled=reconciled)
            return outcome

    def _next_state(self, session: Session, note: Notification, now: datetime, result: SendResult) -> str:
        if result.status is SendStatus.SENT:
            self._release(note, status="sent")
            note.sent_at = utcnow()
            return "sent"
        holder = session.get(Holder, note.holder_id)
        if result.status is SendStatus.PERMANENT:
            self._release(note, status="failed", reason=f"permanent: {result.error}")
            if holder is not None:
                fall_back(session, note, holder, f"permanent failure: {result.error_code or result.error}", now)
            return "failed"
        if note.attempts >= self.retry.max_attempts:
            self._release(note, status="failed", reason=f"gave up after {note.attempts} attempts: {result.error}")
            if holder is not None:
                fall_back(session, note, holder, f"gave up after {note.attempts} attempts", now)
            return "failed"
        delay = self.retry.delay(note.attempts, result.retry_after_seconds, self.rng)
        self._release(note, status="pending", reason=f"retrying ({result.status.value}): {result.error}",
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
