"""One daily scan per day across replicas, decided by the database, not the scheduler.

The daemon claims the day by inserting its scan_runs row ("running", with a heartbeat); the
primary key means one replica wins. A finished or freshly running day is skipped by the others;
a day whose heartbeat went stale (its scanner was killed) is taken over with a conditional
UPDATE. The scan itself is idempotent, so a takeover repeats nothing that was done.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from worker.db import unit_of_work
from worker.models import ScanRun, utcnow

STALE_AFTER = timedelta(minutes=5)


def claim_scan_day(factory: sessionmaker[Session], day: date, worker_id: str, now: datetime | None = None) -> bool:
    """True if this worker should scan `day` now."""
    now = now or utcnow()
    try:
        with unit_of_work(factory) as session:
            session.add(ScanRun(scan_date=day, status="running", claimed_by=worker_id, heartbeat_at=now,
                                started_at=now, holders_seen=0, enqueued=0, runs=0))
        return True
    except IntegrityError:
        pass
    with unit_of_work(factory) as session:
        taken = session.execute(
            update(ScanRun)
            .where(ScanRun.scan_date == day, ScanRun.status == "running",
                   or_(ScanRun.heartbeat_at.is_(None), ScanRun.heartbeat_at < now - STALE_AFTER))
            .values(claimed_by=worker_id, heartbeat_at=now)
        ).rowcount
    return taken == 1


def heartbeat(factory: sessionmaker[Session], day: date, worker_id: str) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(ScanRun).where(ScanRun.scan_date == day, ScanRun.claimed_by == worker_id)
                        .values(heartbeat_at=utcnow()))


def record_scan_run(factory: sessionmaker[Session], day: date, holders_seen: int, enqueued: int,
                    now: datetime) -> None:
    """Mark the day's scan finished (creating the row for a manual `permit-worker scan`)."""
    for _ in range(2):  # a replica may insert the same day between our look and our insert
        try:
            with unit_of_work(factory) as session:
                run = session.get(ScanRun, day)
                if run is None:
                    session.add(ScanRun(scan_date=day, status="finished", started_at=now, finished_at=utcnow(),
                                        holders_seen=holders_seen, enqueued=enqueued, runs=1))
                else:
                    run.status, run.finished_at, run.heartbeat_at = "finished", utcnow(), utcnow()
                    run.holders_seen = holders_seen
                    run.enqueued += enqueued
                    run.runs += 1
            return
        except IntegrityError:
            continue


def scan_ran_on(factory: sessionmaker[Session], day: date) -> bool:
    with unit_of_work(factory) as session:
        run = session.get(ScanRun, day)
        return run is not None and run.status == "finished"
