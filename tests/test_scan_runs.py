"""One scan a day across replicas: the claim, its takeover when stale, and the heartbeat that
keeps a long scan's claim from looking stale."""

from __future__ import annotations

import time
from datetime import date, timedelta

from sqlalchemy.orm import Session, sessionmaker

from worker.planning.scan_runs import STALE_AFTER, claim_scan_day, heartbeat, keeping_claim
from worker.store.db import unit_of_work
from worker.store.models import ScanRun, utcnow

DAY = date(2026, 12, 1)


def claimant(factory: sessionmaker[Session]) -> tuple[str | None, str]:
    with unit_of_work(factory) as session:
        run = session.get(ScanRun, DAY)
        assert run is not None
        return run.claimed_by, run.status


def age_claim(factory: sessionmaker[Session], by: timedelta) -> None:
    with unit_of_work(factory) as session:
        run = session.get(ScanRun, DAY)
        assert run is not None and run.heartbeat_at is not None
        run.heartbeat_at = run.heartbeat_at - by


def test_the_first_replica_wins_the_day_and_the_second_is_refused(factory) -> None:
    assert claim_scan_day(factory, DAY, "a:1")
    assert not claim_scan_day(factory, DAY, "b:1")
    assert claimant(factory) == ("a:1", "running")


def test_a_claim_just_inside_the_stale_limit_is_kept(factory) -> None:
    assert claim_scan_day(factory, DAY, "a:1")
    age_claim(factory, STALE_AFTER - timedelta(seconds=30))
    assert not claim_scan_day(factory, DAY, "b:1")
    assert claimant(factory)[0] == "a:1"


def test_a_claim_past_the_stale_limit_is_taken_over_by_one_replica(factory) -> None:
    assert claim_scan_day(factory, DAY, "a:1")
    age_claim(factory, STALE_AFTER + timedelta(seconds=30))
    assert claim_scan_day(factory, DAY, "b:1")
    assert not claim_scan_day(factory, DAY, "c:1")  # the takeover refreshed the heartbeat
    assert claimant(factory)[0] == "b:1"


def test_a_replica_whose_claim_was_taken_over_is_told_by_its_heartbeat(factory) -> None:
    assert claim_scan_day(factory, DAY, "a:1")
    assert heartbeat(factory, DAY, "a:1")
    age_claim(factory, STALE_AFTER + timedelta(seconds=30))
    assert claim_scan_day(factory, DAY, "b:1")
    assert not heartbeat(factory, DAY, "a:1")


def test_a_long_scan_keeps_its_claim_fresh_while_it_runs(factory) -> None:
    assert claim_scan_day(factory, DAY, "a:1")
    age_claim(factory, STALE_AFTER + timedelta(seconds=30))  # as if the scan had run for 5.5 min
    with keeping_claim(factory, DAY, "a:1", every=timedelta(seconds=0.05)):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with unit_of_work(factory) as session:
                run = session.get(ScanRun, DAY)
                assert run is not None and run.heartbeat_at is not None
                if utcnow() - run.heartbeat_at < timedelta(seconds=5):
                    break
            time.sleep(0.02)
        assert not claim_scan_day(factory, DAY, "b:1")
    assert claimant(factory)[0] == "a:1"


def test_without_the_heartbeat_the_same_long_scan_would_be_taken_over(factory) -> None:
    assert claim_scan_day(factory, DAY, "a:1")
    age_claim(factory, STALE_AFTER + timedelta(seconds=30))
    with keeping_claim(factory, DAY, "a:1", every=timedelta(hours=1)):  # no beat within the block
        assert claim_scan_day(factory, DAY, "b:1")
