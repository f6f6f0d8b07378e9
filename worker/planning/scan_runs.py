"""One daily scan per day across replicas, decided by the database, not the scheduler.

The daemon claims the day by inserting its scan_runs row ("running", with a heartbeat); the
primary key means one replica wins. A finished or freshly running day is skipped by the others;
a day whose heartbeat went stale (its scanner was killed) is taken over with a conditional
UPDATE. The scan itself is idempotent, so a takeover repeats nothing that was done. While it
scans, the claimant beats the heartbeat (`keeping_claim`), so a long scan is not mistaken for a
dead one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from worker.store.db import rows_changed, unit_of_work
from worker.store.models import ScanRun, utcnow
from worker.store.statuses import ScanRunStatus

STALE_AFTER = timedelta(minutes=5)
# Well inside STALE_AFTER: a few missed beats (a slow database) still do not look like a death.
BEAT_EVERY = timedelta(minutes=1)

log = structlog.get_logger("worker.scan_runs")


def claim_scan_day(factory: sessionmaker[Session], day: date, worker_id: str, now: datetime | None = None) -> bool:
    """True if this worker should scan `day` now."""
    now = now or utcnow()
    try:
        with unit_of_work(factory) as session:
            session.add(ScanRun(scan_date=day, status=ScanRunStatus.RUNNING, claimed_by=worker_id, heartbeat_at=now,
                                started_at=now, holders_seen=0, enqueued=0, runs=0))
        return True
    except IntegrityError:
        pass
    with unit_of_work(factory) as session:
        taken = rows_changed(session.execute(
            update(ScanRun)
            .where(ScanRun.scan_date == day, ScanRun.status == ScanRunStatus.RUNNING,
                   or_(ScanRun.heartbeat_at.is_(None), ScanRun.heartbeat_at < now - STALE_AFTER))
            .values(claimed_by=worker_id, heartbeat_at=now)
        ))
    return taken == 1


def heartbeat(factory: sessionmaker[Session], day: date, worker_id: str) -> bool:
    """Refresh our claim on `day`; False when the row is no longer ours (or is gone)."""
    with unit_of_work(factory) as session:
        beaten = rows_changed(session.execute(
            update(ScanRun).where(ScanRun.scan_date == day, ScanRun.claimed_by == worker_id)
            .values(heartbeat_at=utcnow())))
    return beaten == 1


@contextmanager
def keeping_claim(factory: sessionmaker[Session], day: date, worker_id: str,
                  every: timedelta = BEAT_EVERY) -> Iterator[None]:
    """Beat the day's heartbeat from a side thread for as long as the block runs.

    A thread rather than a beat between batches: one slow batch (a locked table, a slow disk)
    must not let the claim go stale while the scan is still alive.
    """
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every.total_seconds()):
            try:
                if not heartbeat(factory, day, worker_id):
                    log.warning("scan.claim_lost", scan_date=day.isoformat())
            except Exception as error:  # the scan goes on; the next beat may reach the database
                log.warning("scan.heartbeat_failed", scan_date=day.isoformat(), error=str(error))

    thread = threading.Thread(target=beat, name=f"scan-heartbeat-{day}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def record_scan_run(factory: sessionmaker[Session], day: date, holders_seen: int, enqueued: int,
                    now: datetime) -> None:
    """Mark the day's scan finished (creating the row for a manual `permit-worker scan`)."""
    for _ in range(2):  # a replica may insert the same day between our look and our insert
        try:
            with unit_of_work(factory) as session:
                run = session.get(ScanRun, day)
                if run is None:
                    session.add(ScanRun(scan_date=day, status=ScanRunStatus.FINISHED, started_at=now,
                                        finished_at=utcnow(), holders_seen=holders_seen, enqueued=enqueued, runs=1))
                else:
                    run.status, run.finished_at, run.heartbeat_at = ScanRunStatus.FINISHED, utcnow(), utcnow()
                    run.holders_seen = holders_seen
                    run.enqueued += enqueued
                    run.runs += 1
            return
        except IntegrityError:
            continue


def scan_ran_on(factory: sessionmaker[Session], day: date) -> bool:
    with unit_of_work(factory) as session:
        run = session.get(ScanRun, day)
        return run is not None and run.status == ScanRunStatus.FINISHED


def last_finished_before(factory: sessionmaker[Session], day: date) -> date | None:
    """The latest day before `day` whose scan finished: what a scan "since the last one" covers."""
    with unit_of_work(factory) as session:
        return session.scalar(select(func.max(ScanRun.scan_date)).where(ScanRun.scan_date < day,
                                                                         ScanRun.status == ScanRunStatus.FINISHED))
