"""The outbox dispatcher against a real SQLite file, with a small recording notifier."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import SendResult
from schedules.policy import Policy
from worker.delivery.dispatch import Dispatcher, RetryPolicy
from worker.planning.scan import scan
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Notification, Team

from .support import RecordingNotifier, add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXPIRES = date(2027, 1, 20)
TOUCH_DAY = EXPIRES - timedelta(days=30)  # the upcoming -30 touch


def at(hour: int, minute: int = 0, second: int = 0, days: int = 0) -> datetime:
    """A moment on the touch day (plus `days`), Shanghai wall clock."""
    return datetime.combine(TOUCH_DAY + timedelta(days=days), datetime.min.time(), SHANGHAI).replace(
        hour=hour, minute=minute, second=second
    )


def make_dispatcher(factory: sessionmaker[Session], policy: Policy, notifier: RecordingNotifier,
                    worker_id: str = "w1", max_attempts: int = 4, concurrency: int = 16) -> Dispatcher:
    return Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI,
                      retry=RetryPolicy(max_attempts=max_attempts, base_seconds=60, max_seconds=3600),
                      worker_id=worker_id, rng=random.Random(7), concurrency=concurrency)


@pytest.fixture
def enqueued(factory: sessionmaker[Session], team: Team, policy: Policy) -> int:
    add_holder(factory, team, "E1", EXPIRES, phone="+8613800138000", name="张三")
    scan(factory, policy, SHANGHAI, today=TOUCH_DAY, now=at(8, 30))
    with unit_of_work(factory) as session:
        return session.scalar(select(Notification.id))


def note(factory: sessionmaker[Session], row_id: int) -> Notification:
    with unit_of_work(factory) as session:
        return session.get(Notification, row_id)


def attempts(factory: sessionmaker[Session], row_id: int) -> list[DeliveryAttempt]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == row_id)))


def test_a_due_message_is_sent_rendered_and_recorded(factory, policy, enqueued) -> None:
    notifier = RecordingNotifier()
    assert make_dispatcher(factory, policy, notifier).dispatch_one(at(10)) == "sent"
    [message] = notifier.sent
    assert message.channel == "sms" and message.to == "+8613800138000"
    assert "2027年1月20日" in message.body
    row = note(factory, enqueued)
    assert (row.status, row.attempts, row.claimed_by) == ("sent", 1, None)
    assert [(a.outcome, a.provider_message_id) for a in attempts(factory, enqueued)] == [("sent", "rec-1")]
    assert make_dispatcher(factory, policy, notifier).dispatch_one(at(10, 1)) is None  # never twice


def test_before_nine_the_message_waits_for_the_window_without_spending_an_attempt(factory, policy, enqueued) -> None:
    notifier = RecordingNotifier()
    dispatcher = make_dispatcher(factory, policy, notifier)
    assert dispatcher.dispatch_one(at(8, 59, 59)) == "deferred"
    row = note(factory, enqueued)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, at(9))
    assert dispatcher.dispatch_one(at(8, 59, 59)) is None  # not due again before 09:00
    assert dispatcher.dispatch_one(at(9)) == "sent"
    assert len(notifier.sent) == 1


def test_one_second_before_eight_pm_the_message_still_goes(factory, policy, enqueued) -> None:
    dispatcher = make_dispatcher(factory, policy, RecordingNotifier())
    assert dispatcher.dispatch_one(at(19, 59, 59)) == "sent"


def test_a_message_due_at_eight_pm_goes_out_at_nine_the_next_day(factory, policy, enqueued) -> None:
    dispatcher = make_dispatcher(factory, policy, RecordingNotifier())
    assert dispatcher.dispatch_one(at(20)) == "deferred"
    assert note(factory, enqueued).next_attempt_at == at(9, days=1)


def test_transient_failures_back_off_exponentially_then_give_up(factory, policy, enqueued) -> None:
    notifier = RecordingNotifier(script=[SendResult.transient("provider busy")] * 4)
    dispatcher = make_dispatcher(factory, policy, notifier, max_attempts=4)
    now = at(10)
    delays = []
    for expected in ("retry", "retry", "retry"):
        assert dispatcher.dispatch_one(now) == expected
        row = note(factory, enqueued)
        delays.append((row.next_attempt_at - now).total_seconds())
        assert dispatcher.dispatch_one(now) is None  # not before its backoff
        now = row.next_attempt_at
    assert dispatcher.dispatch_one(now) == "failed"
    # 60 s, 120 s, 240 s, each within ±20 % jitter.
    for delay, base in zip(delays, (60, 120, 240), strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    row = note(factory, enqueued)
    assert row.status == "failed" and "gave up after 4 attempts" in row.status_reason
    assert [a.outcome for a in attempts(factory, enqueued)] == ["transient"] * 4


def test_retry_after_from_the_provider_is_respected(factory, policy, enqueued) -> None:
    notifier = RecordingNotifier(script=[SendResult.transient("429", retry_after_seconds=900)])
    make_dispatcher(factory, policy, notifier).dispatch_one(at(10))
    assert note(factory, enqueued).next_attempt_at == at(10, 15)


def test_a_permanent_failure_is_not_retried(factory, policy, enqueued) -> None:
    notifier = RecordingNotifier(script=[SendResult.permanent("21211 invalid number")])
    dispatcher = make_dispatcher(factory, policy, notifier)
    assert dispatcher.dispatch_one(at(10)) == "failed"
    assert dispatcher.dispatch_one(at(23, days=5)) is None
    row = note(factory, enqueued)
    assert row.status == "failed" and row.status_reason == "permanent: 21211 invalid number"


def test_it_skips_a_row_claimed_elsewhere_until_the_lease_runs_out(factory, policy, enqueued) -> None:
    other = make_dispatcher(factory, policy, RecordingNotifier(), worker_id="other")
    assert other.claim_next(at(10)) == enqueued  # claimed, then "crashed" before sending
    mine = make_dispatcher(factory, policy, RecordingNotifier(), worker_id="mine")
    assert mine.dispatch_one(at(10, 4)) is None
    assert mine.dispatch_one(at(10, 5, 1)) == "sent"  # default lease: 5 minutes


def test_a_notifier_that_raises_pushes_the_row_forward_instead_of_crashing(factory, policy, enqueued) -> None:
    class Exploding(RecordingNotifier):
        def send(self, message):  # type: ignore[no-untyped-def]
            raise RuntimeError("adapter bug")

    dispatcher = make_dispatcher(factory, policy, Exploding())
    assert dispatcher.dispatch_one(at(10)) == "retry"
    row = note(factory, enqueued)
    assert row.status == "pending" and row.next_attempt_at > at(10)
    assert "adapter bug" in attempts(factory, enqueued)[0].error


def test_a_touch_whose_stage_the_holder_has_left_is_cancelled_not_sent(factory, policy, enqueued) -> None:
    notifier = RecordingNotifier()
    # Sixteen days later the holder is no longer "upcoming" and the scan has not run yet.
    assert make_dispatcher(factory, policy, notifier).dispatch_one(at(10, days=16)) == "cancelled"
    assert notifier.sent == []
    assert note(factory, enqueued).status_reason.startswith("stage left")


def test_a_touch_of_an_ended_cycle_is_cancelled(factory, policy, enqueued) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(Notification).values(cycle_expires_on=date(2026, 1, 20)))
    notifier = RecordingNotifier()
    assert make_dispatcher(factory, policy, notifier).dispatch_one(at(10)) == "cancelled"
    assert notifier.sent == []


def test_a_batch_stops_when_asked_and_leaves_the_rest_pending(factory, team, policy) -> None:
    for i in range(3):
        add_holder(factory, team, f"B{i}", EXPIRES)
    scan(factory, policy, SHANGHAI, today=TOUCH_DAY, now=at(8))
    notifier = RecordingNotifier()
    calls = iter([False, True])
    # One sender, so "the message in hand" is exactly one (with more, a wave of them is in hand:
    # see test_dispatch_concurrency.py).
    dispatcher = make_dispatcher(factory, policy, notifier, concurrency=1)
    counts = dispatcher.run_batch(now=at(10), should_stop=lambda: next(calls))
    assert counts == {"sent": 1}
    with unit_of_work(factory) as session:
        statuses = sorted(session.scalars(select(Notification.status)))
    assert statuses == ["pending", "pending", "sent"]


def test_the_message_is_in_the_holders_language(factory, team, policy) -> None:
    add_holder(factory, team, "EN", EXPIRES, phone=None, email="emma@example.com", locale="en", name="Emma")
    scan(factory, policy, SHANGHAI, today=TOUCH_DAY, now=at(8))
    notifier = RecordingNotifier()
    make_dispatcher(factory, policy, notifier).dispatch_one(at(10))
    [message] = notifier.sent
    assert message.channel == "email" and message.to == "emma@example.com"
    assert message.subject and "20 January 2027" in message.body


def test_now_is_utc_aware_everywhere(factory, policy, enqueued) -> None:
    make_dispatcher(factory, policy, RecordingNotifier()).dispatch_one(at(10))
    assert note(factory, enqueued).sent_at.tzinfo == UTC
