"""Several dispatchers, each with many senders, on one outbox: every message goes out exactly
once, a replica that died mid-send is reconciled rather than repeated, a warm stop leaves nothing
claimed, and the rate ceiling holds. Through the real Twilio SDK to the fake Twilio API, on
SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, SendResult
from notifiers.twilio.fake import FakeTwilio
from notifiers.twilio.transport import TwilioSmsNotifier
from schedules.policy import Policy
from worker.delivery.dispatch import Dispatcher, Prepared, RetryPolicy
from worker.delivery.ratelimit import RateLimits
from worker.planning.scan import scan
from worker.registry import roster_import
from worker.registry.roster import RosterRow
from worker.store.db import make_engine, session_factory, unit_of_work
from worker.store.models import DeliveryAttempt, Notification, Team

from .support import RecordingNotifier

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXPIRES = date(2027, 1, 20)
TOUCH_DAY = EXPIRES - timedelta(days=30)
LEASE = timedelta(minutes=5)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(TOUCH_DAY, datetime.min.time(), SHANGHAI).replace(hour=hour, minute=minute)


def phone(i: int) -> str:
    return f"+86138{i:08d}"


def enqueue(factory: sessionmaker[Session], team: Team, policy: Policy, count: int) -> None:
    """`count` holders with their -30 SMS touch due, in one roster import (fast even for hundreds)."""
    present = frozenset({"external_id", "expires_on", "name", "phone", "housing_type"})
    rows = [RosterRow(row=i + 2, external_id=f"C{i}", expires_on=EXPIRES, name="张三", phone=phone(i),
                      housing_type="own", present=present) for i in range(count)]
    with unit_of_work(factory) as session:
        roster_import.import_roster(session, session.merge(team), rows, "test-key")
    scan(factory, policy, SHANGHAI, today=TOUCH_DAY, now=at(8, 30))


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def sms_notifier(twilio: FakeTwilio) -> TwilioSmsNotifier:
    return TwilioSmsNotifier(account_sid=twilio.account_sid, auth_token=twilio.auth_token,
                             from_number="+15005550006", base_url=twilio.base_url, timeout_seconds=5)


class StoppedClock:
    """A monotonic clock that stands still, for the rate buckets: each sleep is recorded, not slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)


def make_dispatcher(factory: sessionmaker[Session], policy: Policy, twilio: FakeTwilio, worker_id: str, *,
                    concurrency: int = 8, rates: dict[str, float] | None = None,
                    rate_limits: RateLimits | None = None) -> Dispatcher:
    # A notifier of its own per dispatcher, as each replica process would have.
    sms = sms_notifier(twilio)
    return Dispatcher(factory, {"sms": sms, "email": sms}, policy, SHANGHAI, worker_id=worker_id, lease=LEASE,
                      retry=RetryPolicy(max_attempts=4), rng=random.Random(3), concurrency=concurrency,
                      rate_limits=rate_limits or RateLimits(rates or {}))


def statuses(factory: sessionmaker[Session]) -> Counter[str]:
    with unit_of_work(factory) as session:
        return Counter(session.scalars(select(Notification.status)))


def attempts(factory: sessionmaker[Session]) -> list[tuple[str, str | None, str | None]]:
    with unit_of_work(factory) as session:
        return [(a.outcome, a.provider_message_id, a.error)
                for a in session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id))]


def posts(twilio: FakeTwilio) -> list[float]:
    return [r.at for r in twilio.requests if r.method == "POST"]


def test_three_dispatchers_draining_one_queue_send_every_message_exactly_once(
        db_url, factory, team, policy, twilio) -> None:
    enqueue(factory, team, policy, 300)
    # A provider that takes 30 ms per message, so no replica can drain the queue alone before the
    # others are up (one would need >= 1.1 s; three together about a third of that).
    twilio.latency_seconds = 0.03
    engines = [make_engine(db_url) for _ in range(3)]  # one engine each, like separate replicas
    dispatchers = [make_dispatcher(session_factory(engine), policy, twilio, f"replica-{i}")
                   for i, engine in enumerate(engines)]
    counts: list[Counter[str]] = [Counter() for _ in dispatchers]

    def drain_together(now: datetime) -> None:
        start = threading.Barrier(len(dispatchers))

        def drain(i: int) -> None:
            start.wait()
            counts[i] += dispatchers[i].run_batch(now=now, limit=10**6)

        threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(dispatchers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    drain_together(at(10))
    # Two dozen senders connecting at once can overflow the fake's small listen backlog: such a
    # reset is ambiguous and retried later (after reconciling), so drain those retries too.
    for hour in (12, 14):
        if statuses(factory)["pending"]:
            drain_together(at(hour))
    for engine in engines:
        engine.dispose()

    accepted = twilio.accepted
    assert len(accepted) == 300
    assert sorted(m["to"] for m in accepted) == [phone(i) for i in range(300)]  # each holder once
    assert statuses(factory) == {"sent": 300}
    logged = attempts(factory)
    assert {sid for outcome, sid, _ in logged if outcome == "sent"} == {m["sid"] for m in accepted}
    assert Counter(outcome for outcome, _, _ in logged)["sent"] == 300
    assert {outcome for outcome, _, _ in logged} <= {"sent", "ambiguous", "transient"}
    total = sum(counts, Counter())
    assert total["sent"] == 300 and set(total) <= {"sent", "retry"}
    # All three took part (a replica whose only sends met a reset has retries, not sends, to show).
    assert all(sum(c.values()) > 0 for c in counts), counts


def test_on_sqlite_a_claim_keeps_exactly_the_rows_it_won_when_a_rival_takes_some_meanwhile(
        db_url, factory, team, policy) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the conditional claim is SQLite's; PostgreSQL skips rows another claim has locked")
    enqueue(factory, team, policy, 6)
    notifier = RecordingNotifier()
    rival_engine = make_engine(db_url)
    rival = Dispatcher(session_factory(rival_engine), {"sms": notifier}, policy, SHANGHAI, worker_id="rival")
    mine = Dispatcher(factory, {"sms": notifier}, policy, SHANGHAI, worker_id="mine")
    rival_took: list[int] = []

    def rival_strikes(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # Between our read of the candidates and our conditional UPDATE, the rival claims the
        # two oldest of them.
        if statement.startswith("UPDATE notifications SET status") and not rival_took:
            rival_took.extend(rival.claim(at(10), 2))

    bind = factory.kw["bind"]
    event.listen(bind, "before_cursor_execute", rival_strikes)
    try:
        claimed = mine.claim(at(10), 6)
    finally:
        event.remove(bind, "before_cursor_execute", rival_strikes)
        rival_engine.dispose()
    assert len(rival_took) == 2 and len(claimed) == 4 and not set(claimed) & set(rival_took)
    with unit_of_work(factory) as session:
        owners = {row.id: row.claimed_by for row in session.execute(select(Notification.id, Notification.claimed_by))}
    assert owners == {**{i: "mine" for i in claimed}, **{i: "rival" for i in rival_took}}


def die_mid_send(factory: sessionmaker[Session], policy: Policy, twilio: FakeTwilio, *, sent: bool) -> None:
    """A replica claims the row and, if `sent`, gets it accepted; then dies before recording."""
    dead = make_dispatcher(factory, policy, twilio, "dead-replica")
    claimed, [prepared] = dead.claim_and_prepare(at(10), 1)
    assert claimed == 1 and isinstance(prepared, Prepared)
    if sent:
        dead.deliver(prepared)  # the result never reaches the database
    assert statuses(factory) == {"sending": 1}


def test_a_reclaimed_abandoned_row_whose_message_was_accepted_is_reconciled_not_resent(
        factory, team, policy, twilio) -> None:
    enqueue(factory, team, policy, 1)
    die_mid_send(factory, policy, twilio, sent=True)
    [accepted] = twilio.accepted
    survivor = make_dispatcher(factory, policy, twilio, "survivor")
    assert survivor.run_batch(now=at(10, 4)) == {}  # the lease has not run out yet
    assert survivor.run_batch(now=at(10, 6)) == {"sent": 1}
    assert len(twilio.accepted) == len(posts(twilio)) == 1  # looked it up, sent nothing again
    assert any(r.method == "GET" for r in twilio.requests)
    [(lost, _, why), (found, sid, note)] = attempts(factory)
    assert (lost, found, sid) == ("ambiguous", "sent", accepted["sid"])
    assert why and "abandoned" in why and "dead-replica" in why
    assert note and note.startswith("reconciled")
    assert statuses(factory) == {"sent": 1}


def test_a_reclaimed_abandoned_row_whose_message_never_left_is_sent(factory, team, policy, twilio) -> None:
    enqueue(factory, team, policy, 1)
    die_mid_send(factory, policy, twilio, sent=False)
    survivor = make_dispatcher(factory, policy, twilio, "survivor")
    assert survivor.run_batch(now=at(10, 6)) == {"sent": 1}
    [accepted] = twilio.accepted
    methods = [r.method for r in twilio.requests]
    assert methods.index("GET") < methods.index("POST")  # reconciled before sending
    assert [(outcome, sid) for outcome, sid, _ in attempts(factory)] == [("ambiguous", None), ("sent", accepted["sid"])]
    assert statuses(factory) == {"sent": 1}


def test_an_abandoned_claim_on_the_last_attempt_gives_up_as_an_ambiguous_last_attempt_would(
        factory, team, policy) -> None:
    enqueue(factory, team, policy, 1)
    with unit_of_work(factory) as session:
        session.scalars(select(Notification)).one().attempts = 3  # three tries already spent
    notifier = RecordingNotifier()
    dead = Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI, worker_id="dead",
                      retry=RetryPolicy(max_attempts=4))
    dead.claim_next(at(10))  # the fourth and last attempt, then the replica dies
    survivor = Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI, worker_id="survivor",
                          retry=RetryPolicy(max_attempts=4))
    assert survivor.run_batch(now=at(10, 6)) == {"failed": 1}
    assert notifier.sent == []  # no fifth attempt
    with unit_of_work(factory) as session:
        row = session.scalars(select(Notification)).one()
        assert (row.status, row.attempts, row.claimed_by) == ("failed", 4, None)
        assert (row.status_reason or "").startswith("gave up after 4 attempts: abandoned")


def test_a_warm_stop_mid_batch_leaves_nothing_in_sending(factory, team, policy, twilio) -> None:
    enqueue(factory, team, policy, 30)
    twilio.latency_seconds = 0.2  # slow enough that the stop lands with a wave in flight
    # Four senders: no more simultaneous connections than the fake's listen backlog takes.
    dispatcher = make_dispatcher(factory, policy, twilio, "stopping", concurrency=4)
    stop = threading.Event()

    def stop_after_first_sends() -> None:
        deadline = time.monotonic() + 30
        while len(posts(twilio)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()  # what the daemon's SIGTERM handler does

    watcher = threading.Thread(target=stop_after_first_sends)
    watcher.start()
    counts = dispatcher.run_batch(now=at(10), limit=10**6, should_stop=stop.is_set)
    watcher.join()

    accepted = len(twilio.accepted)
    left = statuses(factory)
    assert "sending" not in left  # nothing stays claimed by the stopped dispatcher
    assert counts == {"sent": accepted} and left["sent"] == accepted
    # The sends in flight finished (a wave handed out just before the stop was seen included);
    # nothing after that was started.
    assert 2 <= accepted <= 2 * 4
    assert left["pending"] == 30 - accepted
    with unit_of_work(factory) as session:
        unsent = session.scalars(select(Notification).where(Notification.status == "pending")).all()
        # Rows claimed ahead went back as they were: unclaimed, due, no trace of a render.
        assert all(n.claimed_by is None and n.rendered_on is None and n.attempts == 0 for n in unsent)
    twilio.latency_seconds = 0
    assert dispatcher.run_batch(now=at(10), limit=10**6) == {"sent": 30 - accepted}  # the rest, later


class CountingNotifier(RecordingNotifier):
    """Takes a moment per send and remembers the most sends it ever had in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.now_in_flight = 0
        self.most_in_flight = 0

    def send(self, message: Message) -> SendResult:
        with self.lock:
            self.now_in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.now_in_flight)
        time.sleep(0.02)
        try:
            with self.lock:
                return super().send(message)
        finally:
            with self.lock:
                self.now_in_flight -= 1


def test_sends_run_concurrently_but_never_more_than_the_configured_senders(factory, team, policy) -> None:
    enqueue(factory, team, policy, 40)
    notifier = CountingNotifier()
    dispatcher = Dispatcher(factory, {"sms": notifier, "email": notifier}, policy, SHANGHAI, worker_id="pool",
                            concurrency=4)
    assert dispatcher.run_batch(now=at(10)) == {"sent": 40}
    assert notifier.most_in_flight == 4
    assert len({m.to for m in notifier.sent}) == 40


def test_the_rate_ceiling_holds_with_eight_senders(factory, team, policy, twilio) -> None:
    enqueue(factory, team, policy, 16)
    clock = StoppedClock()
    dispatcher = make_dispatcher(factory, policy, twilio, "limited", concurrency=8,
                                 rate_limits=RateLimits({"twilio": 5}, clock=clock, sleep=clock.sleep))
    assert dispatcher.run_batch(now=at(10)) == {"sent": 16}
    # However many senders wait at once, each send got its own slot 1/5 s after the one before:
    # on a clock that stands still, the waits are exactly 0.2, 0.4, ... (no wall-clock gaps).
    assert sorted(clock.slept) == pytest.approx([i * 0.2 for i in range(1, 16)])  # the first goes at once
    assert len(posts(twilio)) == 16
