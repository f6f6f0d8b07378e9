"""The outbox dispatcher: claim due rows, check each is still right to send, send, record.

Rows are claimed in batches (worker/delivery/claims.py: SKIP LOCKED on PostgreSQL, conditional UPDATEs on
SQLite), so two dispatchers never send the same row. A claim carries a lease: a row whose
claimant died mid-send is claimed again once the lease runs out, and reconciled before any
resend. Sending happens outside any transaction, on a bounded pool of sender threads
(worker/delivery/sender_pool.py), so the database is never locked while a provider is slow; results are
recorded in batches, and only by the row's claimant.
"""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, Notifier, Reconciler, SendResult, SendStatus
from schedules.points import POINTS_RENEWAL
from schedules.policy import Policy, SendWindow
from schedules.sms_templates import TemplateSet, load_sms_templates
from schedules.vocabulary import reason_text
from schedules.window import next_window_opening, window_closes
from worker.delivery.claims import RenderStamp, claim_rows, release_unsent, stamp_rendered
from worker.delivery.deliveries import Delivery, Prepared, RetryPolicy
from worker.delivery.fallback import fall_back
from worker.delivery.ratelimit import RateLimits
from worker.delivery.recording import Recorder, Unresolved, last_ambiguous_attempts, release_note
from worker.delivery.rendering import render_touch
from worker.delivery.sender_pool import run_batch
from worker.planning.evaluation import contact_for, evaluate_holder, holder_zone
from worker.planning.points import points_check
from worker.store.db import unit_of_work
from worker.store.models import Holder, Notification, utcnow
from worker.store.statuses import NoteStatus, Outcome

__all__ = ["DEFAULT_CONCURRENCY", "Delivery", "Dispatcher", "Prepared", "RetryPolicy", "default_worker_id"]

log = structlog.get_logger("worker.dispatch")

DEFAULT_CONCURRENCY = 16  # sender threads; PERMIT_DISPATCH_CONCURRENCY


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
        concurrency: int = DEFAULT_CONCURRENCY,
        sms_templates: TemplateSet | None = None,
        wecom_teams: frozenset[str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
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
        self.concurrency = concurrency
        self.sms_templates = sms_templates or load_sms_templates()
        self.wecom_teams = wecom_teams  # teams whose members are in this WeCom enterprise; None: all
        self.recorder = Recorder(factory, self.worker_id, self.retry, self.rng, policy)
        self.finish = self.recorder.finish  # the sender pool's third step

    # -- claiming -------------------------------------------------------------------------
    def claim(self, now: datetime, n: int) -> list[int]:
        """Claim up to `n` due rows (one transaction); abandoned ones get an ambiguous attempt."""
        with unit_of_work(self.factory) as session:
            return self._claim_in(session, now, n)

    def _claim_in(self, session: Session, now: datetime, n: int) -> list[int]:
        names = {channel: notifier.name for channel, notifier in self.notifiers.items()}
        return claim_rows(session, now, n, self.worker_id, self.lease, names)

    def claim_and_prepare(self, now: datetime, n: int) -> tuple[int, list[Prepared | str]]:
        """Claim up to `n` rows and prepare them, in one transaction when all goes well (the
        hot path: one commit per wave, not two). Returns how many were claimed, and each one's
        Prepared or what happened instead."""
        try:
            with unit_of_work(self.factory) as session:
                claimed = self._claim_in(session, now, n)
                return len(claimed), self._prepare_in(session, claimed, now)
        except Exception:
            claimed = self.claim(now, n)
            return len(claimed), self.prepare(claimed, now)

    def claim_next(self, now: datetime) -> int | None:
        """Claim one due row; None when nothing is due. Skips rows another process wins."""
        claimed = self.claim(now, 1)
        return claimed[0] if claimed else None

    def release(self, rows: Sequence[Prepared]) -> int:
        """Hand claimed rows that were never sent back to "pending" (a warm stop)."""
        if not rows:
            return 0
        with unit_of_work(self.factory) as session:
            released = release_unsent(session, [p.unsent for p in rows], self.worker_id)
        log.info("dispatch.released_unsent", rows=released)
        return released

    # -- one row --------------------------------------------------------------------------
    def dispatch_one(self, now: datetime | None = None) -> str | None:
        """Claim and handle one row. Returns what happened, or None when nothing was due."""
        now = now or utcnow()
        claimed, prepared_rows = self.claim_and_prepare(now, 1)
        if not claimed:
            return None
        [prepared] = prepared_rows
        if isinstance(prepared, str):
            return prepared
        [outcome] = self.finish([self.deliver(prepared)])
        return outcome

    # -- preparing ------------------------------------------------------------------------
    def prepare(self, row_ids: Sequence[int], now: datetime) -> list[Prepared | str]:
        """Check and render claimed rows in one transaction: a Prepared to send, or what
        happened instead (cancelled, deferred, gone, error). Same order as `row_ids`."""
        try:
            with unit_of_work(self.factory) as session:
                return self._prepare_in(session, row_ids, now)
        except Exception as exc:
            if len(row_ids) == 1:
                log.exception("dispatch.unexpected_error", notification_id=row_ids[0])
                [outcome] = self.finish([Delivery(row_ids[0], now, SendResult.transient(
                    f"unexpected error: {type(exc).__name__}: {exc}"), "-", utcnow(), unexpected=True)])
                return [outcome]
            # One bad row must not sink the batch (nor the daemon): redo them one by one.
            return [item for row_id in row_ids for item in self.prepare([row_id], now)]

    def _prepare_in(self, session: Session, row_ids: Sequence[int], now: datetime) -> list[Prepared | str]:
        if not row_ids:
            return []
        notes = {n.id: n for n in session.scalars(select(Notification).where(Notification.id.in_(row_ids)))}
        holders = {h.id: h for h in session.scalars(
            select(Holder).where(Holder.id.in_({n.holder_id for n in notes.values()})))}
        ambiguous = last_ambiguous_attempts(session, [n.id for n in notes.values() if n.attempts])
        prepared = [self._prepare_row(session, notes.get(i), holders, ambiguous, now) for i in row_ids]
        # Written before the send (committed with this transaction): if we die mid-send, whoever
        # reclaims the row reconciles against exactly the text that may have gone out.
        stamp_rendered(session, [p.rendered for p in prepared if isinstance(p, Prepared)])
        return prepared

    def _prepare_row(self, session: Session, note: Notification | None, holders: dict[int, Holder],
                     ambiguous: dict[int, Unresolved], now: datetime) -> Prepared | str:
        if note is None:
            return Outcome.GONE  # deleted while claimed
        with structlog.contextvars.bound_contextvars(notification_id=note.id, holder_id=note.holder_id):
            return self._prepare_claimed(session, note, holders, ambiguous, now)

    def _prepare_claimed(self, session: Session, note: Notification, holders: dict[int, Holder],
                         ambiguous: dict[int, Unresolved], now: datetime) -> Prepared | str:
        holder = holders.get(note.holder_id)
        if holder is None:
            return Outcome.GONE  # deleted while claimed
        unresolved = ambiguous.get(note.id)
        earlier_attempt = unresolved.attempt if unresolved is not None else None
        if earlier_attempt is not None and note.attempts >= self.retry.max_attempts:
            # Only a reclaim gets here (a recorded ambiguous last attempt fails the row at once):
            # the abandoned claim was the last attempt allowed, so give up just as then.
            return self.recorder.give_up(session, note, holder, earlier_attempt.error, now)
        zone = holder_zone(holder, self.zone)
        today = now.astimezone(zone).date()
        findings: tuple[str, ...] = ()
        if note.stage == POINTS_RENEWAL:  # a points (积分) touch: its own cycle and staleness rules
            stale, findings = points_check(session, holder, note.cycle_expires_on, note.touch_day, today)
            stale = stale or self._contact_gone(note, holder)
        else:
            stale = self._stale_reason(note, holder, today)
        if stale:
            release_note(note, status=NoteStatus.CANCELLED, reason=stale)
            if stale == self._contact_gone(note, holder):
                # Opted out, or the contact was removed since planning: the touch is still due,
                # on the next channel the holder can be reached on.
                fall_back(session, note, holder, stale, now, self.policy)
            log.info("dispatch.cancelled", notification_id=note.id, reason=stale)
            return Outcome.CANCELLED
        if note.channel not in self.notifiers or not self._serves(note.channel, holder):
            # A team's order names a channel this worker has no backend for (e.g. wecom without
            # PERMIT_WECOM_*): retrying cannot help, the next channel can.
            release_note(note, status=NoteStatus.FAILED, reason=reason_text("no_backend", channel=note.channel))
            fall_back(session, note, holder, f"no {note.channel} backend", now, self.policy)
            log.warning("dispatch.no_backend", notification_id=note.id, channel=note.channel)
            return Outcome.FAILED
        if holder.paused_until is not None and today <= holder.paused_until:
            # Held, not dropped: at the pause's end the row is checked again like any other (a
            # touch the holder has moved past by then is cancelled and the newer one goes).
            resume_at = datetime.combine(holder.paused_until + timedelta(days=1), time.min, zone)
            release_note(note, status=NoteStatus.PENDING, next_attempt_at=resume_at)
            log.info("dispatch.paused", notification_id=note.id, until=holder.paused_until)
            return Outcome.DEFERRED
        opening = next_window_opening(now, self.window, zone)
        if opening > now:
            # Quiet hours: wait for the window without spending an attempt.
            release_note(note, status=NoteStatus.PENDING, next_attempt_at=opening)
            return Outcome.DEFERRED
        message, segments = self._message(note, holder, today, valid_until=window_closes(now, self.window, zone),
                                          findings=findings)
        earlier = None
        if earlier_attempt is not None:  # reconcile against the text exactly as it was sent
            earlier, _ = self._message(note, holder, note.rendered_on or today, None, findings=findings)
        rendered = RenderStamp(note.id, today, segments if note.channel == "sms" else None)
        return Prepared(note.id, message, earlier, unresolved.since if unresolved else None,
                        now, rendered, RenderStamp(note.id, note.rendered_on, note.segments))

    def _serves(self, channel: str, holder: Holder) -> bool:
        # One WeCom enterprise serves the teams PERMIT_WECOM_TEAMS names: another team's userid
        # would be looked up among a different employer's members.
        return channel != "wecom" or self.wecom_teams is None or holder.team.slug in self.wecom_teams

    def _stale_reason(self, note: Notification, holder: Holder, today: date) -> str | None:
        if note.cycle_expires_on != holder.expires_on:
            return reason_text("cycle_ended")
        evaluation = evaluate_holder(holder, today, self.policy)
        if evaluation.stage != note.stage:
            return reason_text("stage_left", stage=evaluation.stage)
        if evaluation.due_touch is not None and evaluation.due_touch.day > note.touch_day:
            return reason_text("superseded", stage=evaluation.due_touch.stage, day=evaluation.due_touch.day)
        return self._contact_gone(note, holder)

    @staticmethod
    def _contact_gone(note: Notification, holder: Holder) -> str | None:
        if note.channel == "sms" and holder.phone and holder.sms_opted_out_at is not None:
            return reason_text("opted_out")
        if contact_for(holder, note.channel) is None:
            return reason_text("no_contact", channel=note.channel)
        return None

    def _message(self, note: Notification, holder: Holder, today: date,
                 valid_until: datetime | None, findings: tuple[str, ...] = ()) -> tuple[Message, int]:
        sender = self.notifiers.get(note.channel)
        touch = render_touch(note.channel, note.stage, note.touch_day, holder, today, self.policy, self.sms_templates,
                             sign_name=getattr(sender, "sign_name", None),
                             provider=sender.name if sender is not None else None, findings=findings)
        message = Message(
            channel=note.channel,
            to=contact_for(holder, note.channel) or "",
            body=touch.body,
            subject=touch.subject,
            locale=holder.locale,
            idempotency_key=note.key,
            valid_until=valid_until,
            template=touch.template,
        )
        return message, touch.segments

    # -- sending (on a sender thread; touches no database) -----------------------------------
    def deliver(self, prepared: Prepared) -> Delivery:
        """Reconcile if the last try may have been accepted, else wait for a rate slot and send."""
        with structlog.contextvars.bound_contextvars(notification_id=prepared.row_id):
            return self._deliver(prepared)

    def _deliver(self, prepared: Prepared) -> Delivery:
        # Attempts record wall-clock time (not the logical `now` of `dispatch --now`): the
        # provider's own timestamps are wall-clock, and reconciliation compares against them.
        started = utcnow()
        try:
            notifier = self.notifiers[prepared.message.channel]
            if prepared.reconcile_since is not None and isinstance(notifier, Reconciler):
                # The last try may have been accepted: look before sending again.
                found = notifier.reconcile(prepared.reconcile_message or prepared.message, prepared.reconcile_since)
                if found is not None and found.status is SendStatus.TRANSIENT:
                    # The lookup could not tell: the earlier send is still unresolved (the next try
                    # looks again, from the streak's first ambiguous attempt, rather than send).
                    still = SendResult(SendStatus.AMBIGUOUS, error=found.error,
                                       retry_after_seconds=found.retry_after_seconds)
                    return Delivery(prepared.row_id, prepared.now, still, notifier.name, started,
                                    restore=prepared.unsent)
                if found is not None:
                    return Delivery(prepared.row_id, prepared.now, found, notifier.name, started, reconciled=True)
            self.rate_limits.acquire(notifier.name)
            try:
                result = notifier.send(prepared.message)
            except Exception as exc:  # an adapter bug is treated as transient, and logged in full
                log.exception("dispatch.notifier_raised", notification_id=prepared.row_id, notifier=notifier.name)
                result = SendResult.transient(f"notifier raised {type(exc).__name__}: {exc}")
            return Delivery(prepared.row_id, prepared.now, result, notifier.name, started)
        except Exception as exc:  # one bad row must not crash-loop the daemon
            log.exception("dispatch.unexpected_error", notification_id=prepared.row_id)
            return Delivery(prepared.row_id, prepared.now,
                            SendResult.transient(f"unexpected error: {type(exc).__name__}: {exc}"), "-", started,
                            unexpected=True)

    # -- a batch --------------------------------------------------------------------------
    def run_batch(self, now: datetime | None = None, limit: int = 200,
                  should_stop: Callable[[], bool] = lambda: False,
                  clock: Callable[[], datetime] = utcnow) -> Counter[str]:
        """Dispatch until nothing is due, `limit` rows were claimed, or a stop is requested, with
        up to `concurrency` sends in flight. A warm stop finishes the messages in hand and hands
        rows claimed ahead back unsent."""
        return run_batch(self, now=now, limit=limit, should_stop=should_stop, clock=clock)

