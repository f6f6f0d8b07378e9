"""The daily scan: enqueue each holder's due touch, once.

Idempotent by construction: the outbox's unique key and INSERT ... ON CONFLICT DO NOTHING mean a
second scan, or a scan on another replica, enqueues nothing new.

It costs O(due), not O(registry): every holder carries `next_due_on`, the next day a touch falls
due (the scan keeps it; a write to a holder resets it to DUE_NOW), so a day's scan reads only the
holders due that day: their ids in one index range, then their rows in id-ordered batches, with
set-based writes (worker/store/bulk.py). The full path evaluates every holder the same way: after a
policy change (next_due_on was planned with the old one), or on demand. `naive=True` is the
straightforward ORM scan, the benchmark's baseline (benchmarks/README.md).
"""

from __future__ import annotations

import os
import socket
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy, policy_digest
from schedules.workdays import calendar_version
from worker.planning.evaluation import holder_today
from worker.planning.outbox import (
    DUE_COLUMNS,
    Candidate,
    EnqueuedTouch,
    TouchPlanner,
    enqueue_due,
    enqueue_many,
    next_due_on,
)
from worker.planning.scan_runs import record_scan_run
from worker.planning.scan_slices import (
    PLAN_WAIT,
    Slice,
    close_scan,
    finish_slice,
    help_with_slices,
    plan_slices,
    wait_for_slices,
    work_slices,
)
from worker.store.bulk import any_of, set_next_due_on
from worker.store.db import unit_of_work
from worker.store.models import AppMeta, Holder, Team, utcnow

log = structlog.get_logger("worker.scan")

BATCH = 2000
# The furthest ahead of UTC any zone is (Pacific/Kiritimati, UTC+14).
_FURTHEST_AHEAD = timedelta(hours=14)


@dataclass
class ScanReport:
    scan_date: date
    dry_run: bool
    holders_seen: int = 0
    no_contact: int = 0
    enqueued: list[EnqueuedTouch] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    # Holders re-planned on the full path because the policy changed (or on demand); None when
    # the scan did not take that path.
    replanned: int | None = None
    # What other scheduler replicas did of this scan (its slices they worked).
    shared_seen: int = 0
    shared_enqueued: int = 0


_DIGEST_KEY = "planned_policy_digest"


def current_digest(policy: Policy) -> str:
    return policy_digest(policy, calendar_version())


def planned_digest(factory: sessionmaker[Session]) -> str | None:
    """The digest of the policy the registry's next_due_on values were planned with."""
    with unit_of_work(factory) as session:
        return session.scalar(select(AppMeta.value).where(AppMeta.key == _DIGEST_KEY))


def _store_digest(factory: sessionmaker[Session], digest: str) -> None:
    with unit_of_work(factory) as session:
        row = session.get(AppMeta, _DIGEST_KEY)
        if row is None:
            session.add(AppMeta(key=_DIGEST_KEY, value=digest))
        else:
            row.value = digest


def scan(
    factory: sessionmaker[Session],
    policy: Policy,
    default_zone: ZoneInfo,
    *,
    today: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    full: bool = False,
    naive: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    record: bool = True,
    worker_id: str | None = None,
) -> ScanReport:
    """Scan the registry. `today` pins every holder's day (CLI --today); otherwise each holder's
    today is `now` in their own time zone.

    The O(due) path trusts next_due_on, which was planned with some policy: when the loaded
    policy (or the working-day calendar) differs from the one the registry last planned with,
    every holder is re-planned first on the full path, once. `full` takes that path on demand
    (`scan --full`); `naive` is the straightforward ORM scan, kept as the benchmarks' and tests'
    reference."""
    now = now or utcnow()
    # Every log line of this scan (the planner's, the outbox's, the events') names its day.
    with structlog.contextvars.bound_contextvars(scan=(today or now.astimezone(default_zone).date()).isoformat()):
        return _scan(factory, policy, default_zone, today=today, now=now, dry_run=dry_run, full=full, naive=naive,
                     should_stop=should_stop, record=record, worker_id=worker_id or default_worker_id())


def _scan(factory: sessionmaker[Session], policy: Policy, default_zone: ZoneInfo, *, today: date | None,
          now: datetime, dry_run: bool, full: bool, naive: bool, should_stop: Callable[[], bool],
          record: bool, worker_id: str) -> ScanReport:
    started = perf_counter()
    real_today = now.astimezone(default_zone).date()
    report = ScanReport(scan_date=today or real_today, dry_run=dry_run)
    # A scan of a future day (a simulation) must not move next_due_on past days still to come.
    keep_schedule = dry_run or (today is not None and today > real_today)
    planner = TouchPlanner(policy, default_zone, now, today)
    if naive:
        _naive_scan(factory, policy, default_zone, today, now, report, keep_schedule, should_stop)
    else:
        digest = current_digest(policy)
        stale = not keep_schedule and planned_digest(factory) != digest
        if full or stale:
            _full_scan(factory, planner, report, keep_schedule, should_stop)
            if stale and not report.interrupted:
                _store_digest(factory, digest)
            log.info("scan.replanned", reason="policy changed" if stale else "requested", holders=report.replanned,
                     enqueued=len(report.enqueued), interrupted=report.interrupted)
        if not report.interrupted:
            _due_scan(factory, planner, _due_filter(today, now, real_today), report, keep_schedule, should_stop,
                      worker_id)
    if record and not dry_run and not report.interrupted:
        record_scan_run(factory, report.scan_date, report.holders_seen + report.shared_seen,
                        len(report.enqueued) + report.shared_enqueued, now)
    report.seconds = perf_counter() - started
    return report


def default_worker_id() -> str:
    """Names this process in the slices it works (the daemon passes its dispatcher's id)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _due_filter(today: date | None, now: datetime, real_today: date) -> ColumnElement[bool]:
    """Who needs the scan's attention. A pinned `today` is every holder's day. Otherwise holders
    without a zone of their own are due by `real_today`, and only a holder with a zone of their
    own can already be a day ahead; and only if somewhere on Earth it is tomorrow already."""
    if today is not None:
        return Holder.next_due_on <= today
    if (now.astimezone(UTC) + _FURTHEST_AHEAD).date() <= real_today:
        # E.g. the daemon's 08:30 Shanghai scan: nobody anywhere is a day ahead. A pure index
        # range, and a quiet day reads nothing at all.
        return Holder.next_due_on <= real_today
    # The range alone picks the index; the OR only filters the rows it yields.
    return and_(Holder.next_due_on <= real_today + timedelta(days=1),
                or_(Holder.next_due_on <= real_today, Holder.timezone.is_not(None)))


def _due_scan(factory: sessionmaker[Session], planner: TouchPlanner, due: ColumnElement[bool], report: ScanReport,
              keep_schedule: bool, should_stop: Callable[[], bool], worker_id: str) -> None:
    """The O(due) path: who is due, from the next_due_on index in one query; then their rows in
    id-ordered batches. A real scan files the batches as slices (worker/planning/scan_slices.py)
    that other scheduler replicas help to work; a dry run or a simulated day works them here.

    Paging with `id > last ORDER BY id LIMIT n` instead let the planner walk the primary key
    (SQLite: the whole table for a day with nothing due) or redo the whole index range and a
    sort for every batch (PostgreSQL). The ids are kept in a compact array: 8 bytes a holder.
    """
    work = _slice_worker(planner, due, report, keep_schedule, None if report.dry_run or keep_schedule else worker_id)
    if not (report.dry_run or keep_schedule):
        # A slice left by a claimant that died is still due work: taken before the new read.
        work_slices(factory, report.scan_date, work, should_stop)
    with unit_of_work(factory) as session:
        # No ORDER BY: it would tempt SQLite into the primary key again. Sorted here instead.
        due_ids = array("q", sorted(session.scalars(select(Holder.id).where(due))))
    if report.dry_run or keep_schedule:
        for start in range(0, len(due_ids), BATCH):
            if should_stop():
                report.interrupted = True
                return
            with unit_of_work(factory) as session:
                work(session, Slice("", start, due_ids[start:start + BATCH].tolist()))
                if report.dry_run:
                    session.rollback()
    elif due_ids:  # an empty day files nothing, so there is nothing to wait for or to close
        scan_id = plan_slices(factory, report.scan_date, due_ids, BATCH)
        seen_here, enqueued_here = report.holders_seen, len(report.enqueued)
        work_slices(factory, report.scan_date, work, should_stop)
        if not wait_for_slices(factory, report.scan_date, scan_id, work, should_stop):
            report.interrupted = True
            return
        seen, enqueued = close_scan(factory, scan_id)
        # What other replicas did of this scan's slices (this process may also have worked
        # another scan's leftovers, so never below zero).
        report.shared_seen = max(0, seen - (report.holders_seen - seen_here))
        report.shared_enqueued = max(0, enqueued - (len(report.enqueued) - enqueued_here))
    if should_stop():  # as before: a stop requested during the last batch still counts
        report.interrupted = True


def _slice_worker(planner: TouchPlanner, due: ColumnElement[bool], report: ScanReport, keep_schedule: bool,
                  worker_id: str | None) -> Callable[[Session, Slice], bool]:
    """Plan one slice of due holders in the caller's transaction, and (with a `worker_id`) mark
    it done there too. False when another replica finished it first: the caller rolls back, and
    the report forgets what this attempt counted."""

    def work(session: Session, piece: Slice) -> bool:
        seen, enqueued = report.holders_seen, len(report.enqueued)
        # `due` again: another replica (or a holder's write) may have moved some of them meanwhile.
        batch = session.execute(select(*DUE_COLUMNS).join(Team).where(any_of(session, Holder.id, piece.ids), due)
                                .order_by(Holder.id)).all()
        _due_batch(session, batch, planner, report, keep_schedule)
        if worker_id is None or finish_slice(session, piece, worker_id, report.holders_seen - seen,
                                             len(report.enqueued) - enqueued):
            return True
        report.holders_seen = seen
        del report.enqueued[enqueued:]
        return False

    return work


def help_with_scan(factory: sessionmaker[Session], policy: Policy, default_zone: ZoneInfo, worker_id: str, *,
                   now: datetime | None = None, should_stop: Callable[[], bool] = lambda: False,
                   plan_wait: timedelta = PLAN_WAIT) -> ScanReport:
    """A scheduler replica that lost today's scan to another: help work its slices."""
    now = now or utcnow()
    real_today = now.astimezone(default_zone).date()
    report = ScanReport(scan_date=real_today, dry_run=False)
    started = perf_counter()
    planner = TouchPlanner(policy, default_zone, now)
    work = _slice_worker(planner, _due_filter(None, now, real_today), report, False, worker_id)
    with structlog.contextvars.bound_contextvars(scan=real_today.isoformat()):
        help_with_slices(factory, real_today, work, should_stop, plan_wait)
    report.seconds = perf_counter() - started
    return report


def _full_scan(factory: sessionmaker[Session], planner: TouchPlanner, report: ScanReport, keep_schedule: bool,
               should_stop: Callable[[], bool]) -> None:
    """Every holder, in id-ordered batches, through the same planner and set-based writes as the
    due scan: after a policy change, each holder's due touch is enqueued and next_due_on planned
    anew (to a day after the scan's, so the due pass that follows finds none of them again).
    `replanned` counts them; they are among `holders_seen` too."""
    seen_before = report.holders_seen
    last_id = 0
    while True:
        if should_stop():
            report.interrupted = True
            break
        with unit_of_work(factory) as session:
            batch = session.execute(select(*DUE_COLUMNS).join(Team).where(Holder.id > last_id)
                                    .order_by(Holder.id).limit(BATCH)).all()
            if not batch:
                break
            last_id = batch[-1][0]
            _due_batch(session, batch, planner, report, keep_schedule)
            if report.dry_run:
                session.rollback()
    report.replanned = report.holders_seen - seen_before


def _naive_scan(factory: sessionmaker[Session], policy: Policy, zone: ZoneInfo, today: date | None, now: datetime,
                report: ScanReport, keep_schedule: bool, should_stop: Callable[[], bool]) -> None:
    """Every holder, id-ordered batches of ORM objects, one at a time: the reference."""
    last_id = 0
    while not should_stop():
        with unit_of_work(factory) as session:
            batch = session.execute(select(Holder, Team.slug).join(Team).where(Holder.id > last_id)
                                    .order_by(Holder.id).limit(BATCH)).all()
            if not batch:
                return
            last_id = batch[-1][0].id
            _full_batch(session, batch, policy, zone, today, now, report, keep_schedule)
            if report.dry_run:
                session.rollback()
    report.interrupted = True


def _full_batch(session: Session, batch: Sequence[Any], policy: Policy, zone: ZoneInfo, today: date | None,
                now: datetime, report: ScanReport, keep_schedule: bool) -> None:
    """The straightforward path: ORM objects, one holder at a time."""
    for holder, team_slug in batch:
        report.holders_seen += 1
        day = today or holder_today(holder, now, zone)
        outcome = enqueue_due(session, holder, team_slug, day, policy, zone, None, report.dry_run)
        if outcome == "no_contact":
            report.no_contact += 1
        elif isinstance(outcome, EnqueuedTouch):
            report.enqueued.append(outcome)
        if not keep_schedule:
            holder.next_due_on = next_due_on(holder, day, policy)


def _due_batch(session: Session, batch: Sequence[Any], planner: TouchPlanner, report: ScanReport,
               keep_schedule: bool) -> None:
    """The fast path: plain rows in, evaluation in Python, a handful of set-based statements out."""
    candidates: list[Candidate] = []
    schedule: list[dict[str, Any]] = []
    for row in batch:
        report.holders_seen += 1
        following, outcome = planner.plan(row)
        if not keep_schedule:
            schedule.append({"id": row[0], "next_due_on": following})  # a date: the planner schedules
        if outcome == "no_contact":
            report.no_contact += 1
        elif isinstance(outcome, tuple):
            candidates.append(outcome)
    report.enqueued.extend(enqueue_many(session, candidates, report.dry_run))
    set_next_due_on(session, schedule)
