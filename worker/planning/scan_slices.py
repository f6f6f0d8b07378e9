"""One day's scan shared by several scheduler replicas: the due holders cut into slices of ids.

The replica that claims the day (scan_runs) reads the day's due ids once, in id order, and files
them as slices of `SLICE` holders, each a contiguous id range (first_id .. last_id) carrying its
ids. Any scheduler replica then takes a slice, plans it, and marks it done in the same
transaction: on PostgreSQL it locks the row (FOR UPDATE SKIP LOCKED), so two replicas never
work one slice and a replica killed mid-slice leaves it pending (its transaction rolls back). On
SQLite (one writer at a time anyway) the done-marking is conditional, and a replica that lost
the race rolls its whole slice back. The work itself is idempotent (the outbox's unique key), so
even a slice worked twice enqueues each touch once.

The claimant waits until its slices are all done before it records the day finished; the
others help while there is something to take (`help_with_slices`).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from uuid import uuid4

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from worker.store.bulk import is_postgresql, table_of
from worker.store.db import rows_changed, unit_of_work
from worker.store.models import ScanRun, ScanSlice, utcnow
from worker.store.statuses import ScanRunStatus, ScanSliceStatus

log = structlog.get_logger("worker.scan_slices")

# Holders per slice: one scan batch, so a slice is one transaction of a few hundred milliseconds.
SLICE = 2000
# How long a replica that lost the day waits for the claimant to file its slices (a normal day
# takes well under a second; after a policy change the claimant re-plans everyone first).
PLAN_WAIT = timedelta(seconds=30)
POLL_SECONDS = 0.05
PENDING, DONE = ScanSliceStatus.PENDING, ScanSliceStatus.DONE


@dataclass(frozen=True)
class Slice:
    scan_id: str
    slice_no: int
    ids: list[int]


def plan_slices(factory: sessionmaker[Session], day: date, due_ids: array[int], size: int = SLICE) -> str:
    """File `due_ids` (sorted) as the day's slices; returns the new scan's id. Slices of earlier
    days (a scan killed for good) go at the same time."""
    scan_id = str(uuid4())
    now = utcnow()
    rows = [{"scan_id": scan_id, "slice_no": n, "scan_date": day, "first_id": due_ids[start],
             "last_id": due_ids[min(start + size, len(due_ids)) - 1],
             "holder_ids": due_ids[start:start + size].tobytes(), "status": PENDING, "holders_seen": 0,
             "enqueued": 0, "created_at": now}
            for n, start in enumerate(range(0, len(due_ids), size))]
    with unit_of_work(factory) as session:
        session.execute(delete(ScanSlice).where(ScanSlice.scan_date < day))
        if rows:
            session.execute(insert(table_of(ScanSlice)), rows)
    return scan_id


def take_slice(session: Session, day: date) -> Slice | None:
    """A pending slice of `day` that nobody else is working, locked to this transaction on
    PostgreSQL; None when there is none to take right now."""
    query = (select(ScanSlice.scan_id, ScanSlice.slice_no, ScanSlice.holder_ids)
             .where(ScanSlice.scan_date == day, ScanSlice.status == PENDING)
             .order_by(ScanSlice.scan_id, ScanSlice.slice_no).limit(1))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    row = session.execute(query).first()
    if row is None:
        return None
    ids = array("q")
    ids.frombytes(row.holder_ids)
    return Slice(row.scan_id, row.slice_no, ids.tolist())


def finish_slice(session: Session, piece: Slice, worker_id: str, holders_seen: int, enqueued: int) -> bool:
    """Mark the slice done in the transaction that worked it; False if another replica did
    first (SQLite only: the caller then rolls its work back)."""
    return rows_changed(session.execute(
        update(ScanSlice).where(ScanSlice.scan_id == piece.scan_id, ScanSlice.slice_no == piece.slice_no,
                                ScanSlice.status == PENDING)
        .values(status=DONE, done_by=worker_id, holders_seen=holders_seen, enqueued=enqueued,
                finished_at=utcnow()))) == 1


def work_slices(factory: sessionmaker[Session], day: date, work: Callable[[Session, Slice], bool],
                should_stop: Callable[[], bool]) -> int:
    """Take and work the day's slices until none is left to take; returns how many this process
    did. `work(session, slice)` plans one and marks it done (`finish_slice`), False when another
    replica had (the work is rolled back)."""
    done = 0
    while not should_stop():
        with unit_of_work(factory) as session:
            piece = take_slice(session, day)
            if piece is None:
                return done
            if not work(session, piece):
                session.rollback()
                continue
        done += 1
    return done


def pending_slices(factory: sessionmaker[Session], scan_id: str) -> int:
    with unit_of_work(factory) as session:
        return session.scalar(select(func.count()).select_from(ScanSlice)
                              .where(ScanSlice.scan_id == scan_id, ScanSlice.status == PENDING)) or 0


def close_scan(factory: sessionmaker[Session], scan_id: str) -> tuple[int, int]:
    """The scan's slices are all done: their totals (holders seen, enqueued), and the rows go."""
    with unit_of_work(factory) as session:
        seen, enqueued = session.execute(
            select(func.coalesce(func.sum(ScanSlice.holders_seen), 0), func.coalesce(func.sum(ScanSlice.enqueued), 0))
            .where(ScanSlice.scan_id == scan_id)).one()
        session.execute(delete(ScanSlice).where(ScanSlice.scan_id == scan_id))
    return int(seen), int(enqueued)


def slices_filed(factory: sessionmaker[Session], day: date) -> bool:
    with unit_of_work(factory) as session:
        return session.scalar(select(ScanSlice.slice_no).where(ScanSlice.scan_date == day).limit(1)) is not None


def day_running(factory: sessionmaker[Session], day: date) -> bool:
    with unit_of_work(factory) as session:
        return session.scalar(select(ScanRun.status).where(ScanRun.scan_date == day)) == ScanRunStatus.RUNNING


def help_with_slices(factory: sessionmaker[Session], day: date, work: Callable[[Session, Slice], bool],
                     should_stop: Callable[[], bool], plan_wait: timedelta = PLAN_WAIT) -> int:
    """A replica that lost the day to another: work its slices while any are left to take,
    waiting up to `plan_wait` for them to be filed. Returns how many slices this process did."""
    deadline = time.monotonic() + plan_wait.total_seconds()
    done = 0
    while not should_stop() and day_running(factory, day):
        filed = slices_filed(factory, day)  # before taking: filed later, they are taken next round
        done += work_slices(factory, day, work, should_stop)
        if filed or time.monotonic() >= deadline:
            break  # the rest is locked by others (or there was nothing to share)
        time.sleep(POLL_SECONDS)
    if done:
        log.info("scan.helped", scan_date=day.isoformat(), slices=done)
    return done


def wait_for_slices(factory: sessionmaker[Session], day: date, scan_id: str,
                    work: Callable[[Session, Slice], bool], should_stop: Callable[[], bool]) -> bool:
    """The claimant, after its last slice: wait for the ones other replicas are still working,
    taking over any whose replica died (its lock is released). False if asked to stop first."""
    while pending_slices(factory, scan_id):
        if should_stop():
            return False
        if not work_slices(factory, day, work, should_stop):
            time.sleep(POLL_SECONDS)
    return True
