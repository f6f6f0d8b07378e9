"""Fault injection: real `permit-worker` processes killed with SIGKILL, a provider that fails for a
while, replicas racing for one queue, the database restarted under a running daemon, and a worker
that was down for days. Each test checks that nothing is lost and nothing goes out twice (beyond
what the ambiguous-outcome rule allows: a send in flight at a kill is reconciled against the
provider's message list before any resend, so here too each message must arrive exactly once).

Everything runs through the installed CLI in subprocesses, with the real Twilio SDK talking to a
fake Twilio API over HTTP (notifiers/twilio/faulty.py), on SQLite and, when
PERMIT_TEST_POSTGRES_URL is set, PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.twilio.fake import rate_limited, server_error, slow
from notifiers.twilio.faulty import FaultyTwilio
from schedules.policy import Policy
from worker.planning.evaluation import evaluate_holder
from worker.planning.scan import scan
from worker.store.bulk import table_of
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, Notification, ScanRun, Team, utcnow

from .conftest import TEST_SECRETS
from .test_cli import CMD

# Subprocesses (the installed CLI, daemons): seconds each; `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


SHANGHAI = ZoneInfo("Asia/Shanghai")


def today() -> date:
    return datetime.now(SHANGHAI).date()


def phone(i: int) -> str:
    return f"+86139{i:08d}"


# -- the registry -------------------------------------------------------------------------------
def seed_holders(factory: sessionmaker[Session], team: Team, expiries: list[date], *,
                 next_due_on: list[date] | None = None, prefix: str = "F") -> None:
    """Insert holders straight into the table with Core executemany (tens of thousands a second).

    No registration events run, so nothing is enqueued here: next_due_on defaults to DUE_NOW,
    and the next scan evaluates every one of them, as after a bulk load or a policy change.
    """
    stamp = utcnow()
    rows: list[dict[str, Any]] = []
    for i, expires_on in enumerate(expiries):
        row = {"team_id": team.id, "external_id": f"{prefix}{i}", "name": f"持证人{i}", "phone": phone(i),
               "email": None, "expires_on": expires_on, "housing_type": "own", "locale": "zh-CN",
               "changed_since_endorsement": "", "created_at": stamp, "updated_at": stamp}
        if next_due_on is not None:
            row["next_due_on"] = next_due_on[i]
        rows.append(row)
    with unit_of_work(factory) as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(table_of(Holder)), rows[start:start + 5000])


def enqueue_now(factory: sessionmaker[Session], policy: Policy) -> int:
    """Today's scan, in-process (the registry setup, not what is under test)."""
    return len(scan(factory, policy, SHANGHAI, record=False).enqueued)


def outbox(factory: sessionmaker[Session]) -> list[tuple[int, str, int, str, int]]:
    """(holder_id, stage, touch_day, status, attempts) of every outbox row."""
    with unit_of_work(factory) as session:
        return [tuple(r) for r in session.execute(select(  # type: ignore[misc]
            Notification.holder_id, Notification.stage, Notification.touch_day, Notification.status,
            Notification.attempts))]


def statuses(factory: sessionmaker[Session]) -> Counter[str]:
    with unit_of_work(factory) as session:
        return Counter(session.scalars(select(Notification.status)))


def attempt_outcomes(factory: sessionmaker[Session]) -> Counter[str]:
    with unit_of_work(factory) as session:
        return Counter(session.scalars(select(DeliveryAttempt.outcome)))


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


# -- processes ----------------------------------------------------------------------------------
@dataclass
class Worker:
    """A `permit-worker` subprocess, its JSON log going to a file (no pipe to fill up)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append({"event": "<not json>", "line": line})
        return found

    def event_names(self) -> list[str]:
        return [e.get("event", "") for e in self.events()]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def worker_env(db_url: str, fake: FaultyTwilio, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERMIT_", "TWILIO_"))}
    env.update({
        "PERMIT_DATABASE_URL": db_url, "PERMIT_LOG_FORMAT": "json", "PERMIT_TIMEZONE": "Asia/Shanghai",
        "PERMIT_SEND_WINDOW": "00:00-24:00", "PERMIT_DISPATCH_INTERVAL_SECONDS": "0.5",
        "PERMIT_SMS_BACKEND": "twilio", "PERMIT_EMAIL_BACKEND": "console",
        "TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM_NUMBER": "+15005550006", "PERMIT_TWILIO_BASE_URL": fake.base_url,
        "PERMIT_TWILIO_TIMEOUT_SECONDS": "10",
        # The daily cron must not fire during a test: only the start-up catch-up scans.
        "PERMIT_SCAN_TIME": "03:17", "PERMIT_DIGEST_TIME": "23:59",
        **TEST_SECRETS,
    })
    env.update(extra)
    return env


@contextmanager
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers with `start(env, *args)`; whatever is still running at the end is killed."""
    started: list[Worker] = []

    def start(env: dict[str, str], *args: str) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([*CMD, *args], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=sink)
        started.append(Worker(proc, log))
        return started[-1]

    try:
        yield start
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(timeout=10)


@pytest.fixture
def fake() -> Iterator[FaultyTwilio]:
    with FaultyTwilio() as twilio:
        yield twilio


def assert_each_accepted_once(fake: FaultyTwilio, expected_phones: set[str]) -> None:
    pairs = fake.accepted_pairs()
    twice = {pair: n for pair, n in Counter(pairs).items() if n > 1}
    assert not twice, f"{len(twice)} messages accepted more than once, e.g. {list(twice.items())[:3]}"
    by_phone = Counter(to for to, _ in pairs)
    assert set(by_phone) == expected_phones, (
        f"missing: {sorted(expected_phones - set(by_phone))[:5]}, unexpected: {sorted(set(by_phone) - expected_phones)[:5]}")
    assert max(by_phone.values()) == 1, "some holder got two different texts"


def holder_phones(factory: sessionmaker[Session], holder_ids: set[int]) -> set[str]:
    with unit_of_work(factory) as session:
        return set(session.scalars(select(Holder.phone).where(Holder.id.in_(holder_ids))))


def reconciled_phones(factory: sessionmaker[Session]) -> list[str | None]:
    """Phones of the rows whose sent attempt was found by reconciliation (no resend)."""
    with unit_of_work(factory) as session:
        return list(session.scalars(
            select(Holder.phone).join(Notification, Notification.holder_id == Holder.id)
            .join(DeliveryAttempt, DeliveryAttempt.notification_id == Notification.id)
            .where(DeliveryAttempt.outcome == "sent", DeliveryAttempt.error.like("reconciled%"))))


def post_count(fake: FaultyTwilio) -> int:
    return sum(1 for r in fake.requests if r.method == "POST")


# -- 1. kill -9 in the middle of the daily scan ----------------------------------------------------
SCAN_HOLDERS = 150_000  # a 3-5 s scan (75 batches of 2,000): wide enough to land a kill inside it


@pytest.mark.slow
def test_a_scan_killed_midway_is_taken_over_after_restart_and_enqueues_each_touch_once(
        tmp_path: Path, db_url: str, factory, team, policy, fake) -> None:
    day = today()
    # One holder in 1,000 has a touch due today (upcoming -30, 20 days left); the others are
    # valid for 40-539 more days: evaluated and rescheduled by the scan, but nothing to send.
    expiries = [day + timedelta(days=20 if i % 1000 == 0 else 40 + i % 500) for i in range(SCAN_HOLDERS)]
    seed_holders(factory, team, expiries)
    due = scan(factory, policy, SHANGHAI, dry_run=True, record=False).enqueued
    expected = {(t.holder_id, t.stage, t.touch_day) for t in due}
    assert len(expected) == SCAN_HOLDERS // 1000

    env = worker_env(db_url, fake)
    with workers(tmp_path) as start:
        first = start(env, "run")

        def scanned() -> int:  # holders the scan has rescheduled so far (committed per batch)
            with unit_of_work(factory) as session:
                return session.scalar(select(func.count()).select_from(Holder)
                                      .where(Holder.next_due_on > date(1900, 1, 1))) or 0

        wait_for(lambda: scanned() > 0, timeout=60, interval=0.02, what="the scan to commit a first batch")
        first.kill9()
        progress = scanned()
        assert 0 < progress < SCAN_HOLDERS, f"the kill did not land inside the scan ({progress} scanned)"
        with unit_of_work(factory) as session:
            run = session.get(ScanRun, day)
            assert run is not None and run.status == "running"  # the dead scanner's claim
            partial = session.scalar(select(func.count()).select_from(Notification)) or 0
        assert partial < len(expected) or progress > SCAN_HOLDERS * 0.99

        # The restarted daemon sees a "running" claim with a fresh heartbeat and, rightly, leaves
        # it alone: it cannot tell a dead scanner from a live one on another host until
        # STALE_AFTER (5 min) has passed; its scan-watch job then takes the day over. Rather than
        # wait five minutes, age the dead claim's heartbeat as those minutes would have.
        with unit_of_work(factory) as session:
            session.execute(update(ScanRun).where(ScanRun.scan_date == day)
                            .values(heartbeat_at=utcnow() - timedelta(minutes=6)))

        second = start(env, "run")
        wait_for(lambda: statuses(factory)["sent"] == len(expected), timeout=60,
                 what="the restarted daemon to finish the scan and send everything")
        assert second.proc.poll() is None
        assert second.stop() == 0
    events = second.event_names()
    assert "scan.catch_up" in events and "scan.finished" in events
    assert "scan.claimed_elsewhere" not in events

    rows = outbox(factory)
    assert Counter((h, s, d) for h, s, d, _, _ in rows) == Counter(expected)  # each touch once, no other
    assert len({h for h, *_ in rows}) == len(rows)  # one row per holder
    with unit_of_work(factory) as session:
        runs = session.scalars(select(ScanRun)).all()
        assert [(r.scan_date, r.status) for r in runs] == [(day, "finished")]
        assert session.scalar(select(func.count()).select_from(Holder)
                              .where(Holder.next_due_on <= day)) == 0  # every holder scanned
    assert_each_accepted_once(fake, holder_phones(factory, {h for h, *_ in expected}))


# -- 2. kill -9 in the middle of a dispatch batch --------------------------------------------------
@pytest.mark.slow
def test_a_dispatcher_killed_mid_batch_loses_nothing_and_resends_nothing(
        tmp_path: Path, db_url: str, factory, team, policy, fake) -> None:
    count = 300
    seed_holders(factory, team, [today() + timedelta(days=20)] * count)
    assert enqueue_now(factory, policy) == count
    # Each POST takes 0.5 s: half before the fake accepts the message, half after. A kill leaves
    # sends in flight both ways: accepted but unanswered, and accepted only after the sender died.
    fake.latency_seconds = 0.25
    fake.script(*[slow(0.25)] * count)

    env = worker_env(db_url, fake, PERMIT_CLAIM_LEASE_SECONDS="2", PERMIT_RETRY_BASE_SECONDS="1")
    with workers(tmp_path) as start:
        first = start(env, "run", "--role", "dispatcher")
        wait_for(lambda: len(fake.accepted) >= 60, timeout=60, interval=0.05, what="60 messages accepted")
        first.kill9()
        time.sleep(1.0)  # the fake finishes the requests it had already received
        accepted_at_kill = {to for to, _ in fake.accepted_pairs()}
        with unit_of_work(factory) as session:
            in_flight = set(session.scalars(select(Holder.phone).join(Notification)
                                            .where(Notification.status == "sending")))
        assert in_flight, "the kill left nothing claimed: it did not land inside a batch"
        assert statuses(factory)["sent"] < count
        sent_but_unrecorded = in_flight & accepted_at_kill  # the ambiguous ones
        assert sent_but_unrecorded, "no send was in flight at the kill"

        second = start(env, "run", "--role", "dispatcher")
        wait_for(lambda: statuses(factory) == Counter(sent=count), timeout=60, what="every row sent")
        assert second.stop() == 0

    assert_each_accepted_once(fake, {phone(i) for i in range(count)})
    # Each message the dead process had sent but not recorded was found by reconciliation, not
    # sent again; and every row it left claimed got an AMBIGUOUS "abandoned" attempt.
    # (Supersets, not equalities: with a 2 s lease a loaded machine can let a live process's own
    # claim run out before it records the result; it then reclaims and reconciles its own row,
    # harmlessly, since recording checks the claimant.)
    assert sent_but_unrecorded <= set(reconciled_phones(factory))
    with unit_of_work(factory) as session:
        abandoned = set(session.scalars(
            select(Holder.phone).join(Notification).join(DeliveryAttempt)
            .where(DeliveryAttempt.outcome == "ambiguous", DeliveryAttempt.error.like("abandoned%"))))
    assert in_flight <= abandoned
    assert "dispatch.reclaimed_abandoned" in second.event_names()


# -- 3. three replicas draining one queue ----------------------------------------------------------
@pytest.mark.slow
def test_three_dispatcher_processes_drain_5000_messages_each_exactly_once(
        tmp_path: Path, db_url: str, factory, team, policy, fake) -> None:
    count = 5000
    seed_holders(factory, team, [today() + timedelta(days=20)] * count)
    assert enqueue_now(factory, policy) == count
    env = worker_env(db_url, fake, PERMIT_RETRY_BASE_SECONDS="1", PERMIT_RETRY_MAX_SECONDS="2",
                     PERMIT_DISPATCH_BATCH_SIZE="500")
    started = time.monotonic()
    with workers(tmp_path) as start:
        replicas = [start(env, "run", "--role", "dispatcher") for _ in range(3)]
        wait_for(lambda: statuses(factory) == Counter(sent=count), timeout=90, interval=0.5,
                 what="all 5,000 rows sent")
        assert [w.stop() for w in replicas] == [0, 0, 0]
    elapsed = time.monotonic() - started

    assert_each_accepted_once(fake, {phone(i) for i in range(count)})
    # Every message Twilio accepted is recorded, on exactly one row, with its SID.
    with unit_of_work(factory) as session:
        sids = Counter(session.scalars(select(DeliveryAttempt.provider_message_id)
                                       .where(DeliveryAttempt.outcome == "sent")))
    assert sids == Counter(m["sid"] for m in fake.accepted)
    per_replica = [sum(1 for e in w.events() if e.get("event") == "delivery" and e.get("outcome") == "sent")
                   for w in replicas]
    assert sum(per_replica) == count
    assert all(n > 0 for n in per_replica), f"a replica sent nothing: {per_replica} in {elapsed:.1f}s"


# -- 4. the provider failing for a while, then recovering ----------------------------------------
@pytest.mark.slow
def test_a_provider_outage_is_ridden_out_and_every_message_goes_out_once(
        tmp_path: Path, db_url: str, factory, team, policy, fake) -> None:
    count = 40
    seed_holders(factory, team, [today() + timedelta(days=20)] * count)
    assert enqueue_now(factory, policy) == count
    outage = 20.0
    # 500 without accepting, 429 with Retry-After: 1, and now and then a 500 after accepting
    # (Twilio took it, the answer failed): that one must be reconciled, not sent again.
    fake.outage(outage, server_error(), rate_limited(1), server_error(), server_error(accept=True))
    outage_ends = time.monotonic() + outage
    env = worker_env(db_url, fake, PERMIT_RETRY_BASE_SECONDS="1", PERMIT_RETRY_MAX_SECONDS="4",
                     PERMIT_MAX_ATTEMPTS="30")
    with workers(tmp_path) as start:
        w = start(env, "run", "--role", "dispatcher")
        wait_for(lambda: statuses(factory) == Counter(sent=count), timeout=outage + 40, interval=0.5,
                 what="every row sent after the outage")
        assert w.stop() == 0
    assert time.monotonic() >= outage_ends - 0.5

    assert_each_accepted_once(fake, {phone(i) for i in range(count)})
    rows = outbox(factory)
    assert all(attempts >= 2 for *_, attempts in rows), "every first attempt fell in the outage"
    outcomes = attempt_outcomes(factory)
    assert outcomes["transient"] > 0 and outcomes["ambiguous"] > 0 and outcomes["sent"] == count
    assert sum(attempts for *_, attempts in rows) == sum(outcomes.values())  # attempts counted = logged
    # Every POST is one logged attempt; the attempts that made none are those found by
    # reconciliation (the accepted 500s).
    reconciled = reconciled_phones(factory)
    assert post_count(fake) == sum(outcomes.values()) - len(reconciled)
    assert reconciled, "no accepted-then-500 message was reconciled"


# -- 5. PostgreSQL restarted under a running daemon ---------------------------------------------
@pytest.mark.slow
def test_the_daemon_survives_a_postgresql_restart_and_sends_each_message_once(
        tmp_path: Path, db_url: str, factory, team, policy, fake) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("restarts the PostgreSQL server: nothing to restart on SQLite")
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None:
        pytest.skip("needs root and pg_ctlcluster to restart the PostgreSQL 15 main cluster")
    count = 600
    seed_holders(factory, team, [today() + timedelta(days=20)] * count)
    fake.latency_seconds = 0.2  # 16 senders: ~80 messages/s, so the batch spans the restart
    env = worker_env(db_url, fake, PERMIT_CLAIM_LEASE_SECONDS="3", PERMIT_RETRY_BASE_SECONDS="1")
    with workers(tmp_path) as start:
        w = start(env, "run")  # scans at start-up (catch-up), then dispatches
        wait_for(lambda: len(fake.accepted) >= 100, timeout=60, interval=0.05, what="100 messages accepted")
        factory.kw["bind"].dispose()  # the test's own pooled connections die with the server too
        restart = subprocess.run(["pg_ctlcluster", "15", "main", "restart"], capture_output=True, text=True,
                                 check=False, timeout=60)
        assert restart.returncode == 0, restart.stderr
        accepted_at_restart = len(fake.accepted)
        assert accepted_at_restart < count, "the batch finished before the restart"
        time.sleep(2)
        assert w.proc.poll() is None, "the daemon died with the database"
        wait_for(lambda: statuses(factory) == Counter(sent=count), timeout=60, what="every row sent")
        assert w.proc.poll() is None
        assert w.stop() == 0
    assert_each_accepted_once(fake, {phone(i) for i in range(count)})
    events = w.events()
    # It noticed (errors logged: a failed dispatch run, results it could not record) and went on;
    # rows it could not record stayed claimed, were reclaimed after the lease and reconciled.
    assert any(e.get("level") == "error" for e in events), "the restart went unnoticed: no error logged"
    assert "dispatch.reclaimed_abandoned" in [e.get("event") for e in events]
    assert "daemon.stopped" in [e.get("event") for e in events]


# -- 6. the worker down for ten days ---------------------------------------------------------------
TOUCH_DAYS = (-30, -15, -10, -3, 0, 1, 30, 50, 61, 80, 91)


@pytest.mark.slow
def test_after_ten_days_down_one_scan_enqueues_only_each_holders_current_touch(
        tmp_path: Path, db_url: str, factory, team, policy, fake) -> None:
    day = today()
    # For each of the last ten days (and today), one holder per touch of the policy whose touch
    # fell on that day: the scans that would have enqueued them never ran. The last scan (eleven
    # days ago) scheduled each holder for that day, as next_due_on says.
    expiries: list[date] = []
    scheduled: list[date] = []
    missed: dict[str, int] = {}
    for ago in range(11):
        for touch in TOUCH_DAYS:
            missed[f"F{len(expiries)}"] = touch
            expiries.append(day - timedelta(days=ago) - timedelta(days=touch))
            scheduled.append(day - timedelta(days=ago))
    seed_holders(factory, team, expiries, next_due_on=scheduled)
    with unit_of_work(factory) as session:
        for ago in range(11, 21):  # the daemon ran daily until eleven days ago
            d = day - timedelta(days=ago)
            session.add(ScanRun(scan_date=d, status="finished", started_at=utcnow() - timedelta(days=ago),
                                finished_at=utcnow() - timedelta(days=ago), holders_seen=0, enqueued=0, runs=1))
        holders = session.scalars(select(Holder)).all()
        current = {h.id: evaluate_holder(h, day, policy).due_touch for h in holders}
        stale = {h.id for h in holders if (t := current[h.id]) is None or t.day != missed[h.external_id]}
    expected = {(hid, t.stage, t.day) for hid, t in current.items() if t is not None}
    # Many holders have moved on since their missed touch: a later touch (or stage) is due now,
    # and the missed one must not go out as well.
    assert len(stale) > 10, len(stale)

    env = worker_env(db_url, fake)
    with workers(tmp_path) as start:
        w = start(env, "run")
        wait_for(lambda: statuses(factory)["sent"] == len(expected), timeout=60, what="the catch-up sent")
        time.sleep(1.5)  # a few more dispatch runs: nothing else may go out
        assert w.stop() == 0
    assert w.event_names().count("scan.catch_up") == 1

    rows = outbox(factory)
    assert {(h, s, d) for h, s, d, _, _ in rows} == expected
    assert len(rows) == len(expected)  # at most one row per holder: its single latest due touch
    assert statuses(factory) == Counter(sent=len(expected))
    with unit_of_work(factory) as session:
        recent = session.execute(select(ScanRun.scan_date, ScanRun.status, ScanRun.runs)
                                 .where(ScanRun.scan_date > day - timedelta(days=11))).all()
    assert [tuple(r) for r in recent] == [(day, "finished", 1)]  # one scan, none for the missed days
    assert_each_accepted_once(fake, holder_phones(factory, {h for h, *_ in expected}))
