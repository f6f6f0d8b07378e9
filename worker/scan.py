"""The daily scan: enqueue each holder's due touch, once.

Idempotent by construction: the outbox's unique key and INSERT ... ON CONFLICT DO NOTHING mean a
second scan, or a scan on another replica, enqueues nothing new.

It costs O(due), not O(registry): every holder carries `next_due_on`, the next day a touch falls
due (kept up to date on every write and by the scan itself), so a day's scan reads only the
holders due that day, through an index, in id-ordered batches with set-based writes. `full=True`
evaluates every holder instead: the repair path after a policy change, and the benchmark's
baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy
from schedules.stages import HolderFacts, evaluate, next_touch_on
from worker.db import unit_of_work
from worker.evaluation import holder_today
from worker.models import Holder, Notification, Team, utcnow
from worker.outbox import NEVER, EnqueuedTouch, enqueue_due, insert_dialect, next_due_on
from worker.scan_runs import record_scan_run

BATCH = 2000
_COLUMNS = (Holder.id, Holder.external_id, Holder.expires_on, Holder.housing_type, Holder.rental_registration_ends_on,
            Holder.changed_since_endorsement, Holder.phone, Holder.email, Holder.sms_opted_out_at, Holder.timezone,
            Team.slug)


@dataclass
class ScanReport:
    scan_date: date
    dry_run: bool
    holders_seen: int = 0
    no_contact: int = 0
    enqueued: list[EnqueuedTouch] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


def scan(
    factory: sessionmaker[Session],
    policy: Policy,
    default_zone: ZoneInfo,
    *,
    today: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    full: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    record: bool = True,
) -> ScanReport:
    """Scan the registry. `today` pins every holder's day (CLI --today); otherwise each holder's
    today is `now` in their own time zone."""
    started = perf_counter()
    now = now or utcnow()
    real_today = now.astimezone(default_zone).date()
    report = ScanReport(scan_date=today or real_today, dry_run=dry_run)
    # A scan of a future day (a simulation) must not move next_due_on past days still to come.
    keep_schedule = dry_run or (today is not None and today > real_today)
    # Holders east of the default zone may already be a day ahead.
    bound = today or real_today + timedelta(days=1)
    last_id = 0
    while not should_stop():
        with unit_of_work(factory) as session:
            if full:
                batch = session.execute(select(Holder, Team.slug).join(Team).where(Holder.id > last_id)
                                        .order_by(Holder.id).limit(BATCH)).all()
            else:
                batch = session.execute(select(*_COLUMNS).join(Team).where(Holder.next_due_on <= bound,
                                                                           Holder.id > last_id)
                                        .order_by(Holder.id).limit(BATCH)).all()
            if not batch:
                break
            last_id = batch[-1][0].id if full else batch[-1][0]
            if full:
                _full_batch(session, batch, policy, default_zone, today, now, report, keep_schedule)
            else:
                _due_batch(session, batch, policy, default_zone, today, now, report, keep_schedule)
            if dry_run:
                session.rollback()
    else:
        report.interrupted = True
    if record and not dry_run and not report.interrupted:
        record_scan_run(factory, report.scan_date, report.holders_seen, len(report.enqueued), now)
    report.seconds = perf_counter() - started
    return report


def _full_batch(session: Session, batch: list[Any], policy: Policy, zone: ZoneInfo, today: date | None,
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


def _due_batch(session: Session, batch: list[Any], policy: Policy, zone: ZoneInfo, today: date | None,
               now: datetime, report: ScanReport, keep_schedule: bool) -> None:
    """The fast path: plain rows in, evaluation in Python, a handful of set-based statements out."""
    zones: dict[str | None, ZoneInfo] = {None: zone}
    candidates: list[tuple[dict[str, Any], EnqueuedTouch]] = []
    schedule: list[dict[str, Any]] = []
    for (hid, ext, expires, housing, rental, changed, phone, email, opted_out, tz, slug) in batch:
        report.holders_seen += 1
        holder_zone = zones.get(tz) or zones.setdefault(tz, ZoneInfo(tz))
        day = today or now.astimezone(holder_zone).date()
        facts = HolderFacts(expires_on=expires, housing_type=housing, rental_registration_ends_on=rental,
                            changed_since_endorsement=frozenset(f for f in changed.split(",") if f),
                            has_phone=bool(phone) and opted_out is None, has_email=bool(email))
        ev = evaluate(facts, day, policy)
        if not keep_schedule:
            schedule.append({"id": hid, "next_due_on": next_touch_on(facts, day, policy) or NEVER})
        touch = ev.due_touch
        if touch is None:
            continue
        if ev.channel is None:
            report.no_contact += 1
            continue
        values = {"holder_id": hid, "cycle_expires_on": expires, "stage": touch.stage, "touch_day": touch.day,
                  "touch_on": touch.on, "channel": ev.channel, "status": "pending", "attempts": 0,
                  "next_attempt_at": datetime.combine(day, time.min, holder_zone)}
        candidates.append((values, EnqueuedTouch(slug, ext, hid, touch.stage, touch.day, touch.on, ev.channel,
                                                 expires, ev.days_left)))
    report.enqueued.extend(_enqueue_many(session, candidates, report.dry_run))
    if schedule:
        session.execute(update(Holder), schedule)  # executemany by primary key


def _enqueue_many(session: Session, candidates: list[tuple[dict[str, Any], EnqueuedTouch]],
                  dry_run: bool) -> list[EnqueuedTouch]:
    """Insert the touches no row exists for (in any channel), then cancel older pending ones."""
    if not candidates:
        return []
    keys = [(v["holder_id"], v["cycle_expires_on"], v["stage"], v["touch_day"]) for v, _ in candidates]
    key_cols = tuple_(Notification.holder_id, Notification.cycle_expires_on, Notification.stage, Notification.touch_day)
    taken: set[tuple[Any, ...]] = set()
    for i in range(0, len(keys), 500):  # bounded IN lists
        taken.update(tuple(r) for r in session.execute(
            select(Notification.holder_id, Notification.cycle_expires_on, Notification.stage,
                   Notification.touch_day).where(key_cols.in_(keys[i:i + 500]))))
    fresh = [(v, e) for (v, e), k in zip(candidates, keys, strict=True) if k not in taken]
    if dry_run or not fresh:
        return [e for _, e in fresh]
    insert = insert_dialect(session)
    stmt = insert(Notification).on_conflict_do_nothing(
        index_elements=["holder_id", "cycle_expires_on", "stage", "touch_day", "channel"]
    ).returning(Notification.id, Notification.holder_id)
    inserted = session.execute(stmt, [v for v, _ in fresh]).all()  # another replica may have won some
    new_by_holder = {holder_id: row_id for row_id, holder_id in inserted}
    holders = sorted(new_by_holder)
    for i in range(0, len(holders), 500):
        chunk = holders[i:i + 500]
        # A newer touch supersedes every older unsent one of the same holder.
        session.execute(update(Notification).where(
            Notification.status == "pending", Notification.holder_id.in_(chunk),
            Notification.id.not_in([new_by_holder[h] for h in chunk]))
            .values(status="cancelled", status_reason="superseded by a newer touch", updated_at=utcnow())
            .execution_options(synchronize_session=False))
    return [e for _, e in fresh if e.holder_id in new_by_holder]
