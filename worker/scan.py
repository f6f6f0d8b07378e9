"""The daily scan: evaluate every holder and enqueue the touch that is due, once.

Idempotent by construction: the outbox's unique key (holder, cycle, stage, touch, channel) and
an INSERT ... ON CONFLICT DO NOTHING mean a second scan, or a scan on another replica, enqueues
nothing new. Holders are streamed in id order in batches, so memory stays flat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy
from worker.db import unit_of_work
from worker.evaluation import evaluate_holder, holder_today, holder_zone
from worker.models import Holder, Notification, ScanRun, Team, utcnow

BATCH = 500


@dataclass(frozen=True)
class EnqueuedTouch:
    team: str
    external_id: str
    holder_id: int
    stage: str
    touch_day: int
    touch_on: date
    channel: str
    expires_on: date
    days_left: int

    def as_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "external_id": self.external_id,
            "stage": self.stage,
            "touch_day": self.touch_day,
            "touch_on": self.touch_on.isoformat(),
            "channel": self.channel,
            "expires_on": self.expires_on.isoformat(),
            "days_left": self.days_left,
        }


@dataclass
class ScanReport:
    scan_date: date
    dry_run: bool
    holders_seen: int = 0
    no_contact: int = 0
    enqueued: list[EnqueuedTouch] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


def insert_touch(session: Session, values: dict[str, Any]) -> bool:
    """Insert one outbox row unless its key exists; True if this call inserted it."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(Notification).values(**values).on_conflict_do_nothing(
        index_elements=["holder_id", "cycle_expires_on", "stage", "touch_day", "channel"]
    )
    return (session.execute(stmt).rowcount or 0) == 1


def _supersede_older(session: Session, holder_id: int, keep: tuple[date, str, int]) -> None:
    """A newer touch makes every older unsent one stale: never send two reminders at once."""
    cycle, stage, day = keep
    session.execute(
        update(Notification)
        .where(
            Notification.holder_id == holder_id,
            Notification.status == "pending",
            ~((Notification.cycle_expires_on == cycle) & (Notification.stage == stage) & (Notification.touch_day == day)),
        )
        .values(status="cancelled", status_reason=f"superseded by {stage} {day:+d}", updated_at=utcnow())
    )


def _existing_touches(session: Session, holder_ids: list[int]) -> set[tuple[int, date, str, int]]:
    rows = session.execute(
        select(Notification.holder_id, Notification.cycle_expires_on, Notification.stage, Notification.touch_day)
        .where(Notification.holder_id.in_(holder_ids))
    )
    return {tuple(r) for r in rows}  # type: ignore[misc]


def scan(
    factory: sessionmaker[Session],
    policy: Policy,
    default_zone: ZoneInfo,
    *,
    today: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> ScanReport:
    """Scan the whole registry. `today` pins every holder's day (CLI --today); otherwise each
    holder's today is `now` in their own time zone."""
    started = perf_counter()
    now = now or utcnow()
    report = ScanReport(scan_date=today or now.astimezone(default_zone).date(), dry_run=dry_run)
    last_id = 0
    while not should_stop():
        with unit_of_work(factory) as session:
            batch = session.execute(
                select(Holder, Team.slug).join(Team).where(Holder.id > last_id).order_by(Holder.id).limit(BATCH)
            ).all()
            if not batch:
                break
            last_id = batch[-1][0].id
            _scan_batch(session, batch, policy, default_zone, today, now, report)
            if dry_run:
                session.rollback()
    else:
        report.interrupted = True
    if not dry_run and not report.interrupted:
        record_scan_run(factory, report, now)
    report.seconds = perf_counter() - started
    return report


def _scan_batch(session: Session, batch: list[Any], policy: Policy, zone: ZoneInfo, today: date | None,
                now: datetime, report: ScanReport) -> None:
    existing = _existing_touches(session, [holder.id for holder, _ in batch])
    for holder, team_slug in batch:
        report.holders_seen += 1
        holder_day = today or holder_today(holder, now, zone)
        outcome = enqueue_due(session, holder, team_slug, holder_day, policy, zone, existing, report.dry_run)
        if outcome == "no_contact":
            report.no_contact += 1
        elif isinstance(outcome, EnqueuedTouch):
            report.enqueued.append(outcome)


def enqueue_due(session: Session, holder: Holder, team_slug: str, day: date, policy: Policy, zone: ZoneInfo,
                existing: set[tuple[int, date, str, int]] | None = None,
                dry_run: bool = False) -> EnqueuedTouch | str | None:
    """Enqueue the holder's due touch for `day`, once; the scan and registration both use this.

    Returns the touch enqueued (or, dry, that would be), "no_contact", or None when nothing new.
    """
    evaluation = evaluate_holder(holder, day, policy)
    touch = evaluation.due_touch
    if touch is None:
        return None
    if evaluation.channel is None:
        return "no_contact"
    key = (holder.id, holder.expires_on, touch.stage, touch.day)
    if key in (existing if existing is not None else _existing_touches(session, [holder.id])):
        return None
    values = {"holder_id": holder.id, "cycle_expires_on": holder.expires_on, "stage": touch.stage,
              "touch_day": touch.day, "touch_on": touch.on, "channel": evaluation.channel,
              "status": "pending", "attempts": 0,
              # Due from the start of the day evaluated, in the holder's zone: a scan run ahead
              # of time (--today) enqueues nothing that goes out before that day.
              "next_attempt_at": datetime.combine(day, time.min, holder_zone(holder, zone))}
    if not dry_run:
        if not insert_touch(session, values):
            return None  # another scan (another replica) got there first
        _supersede_older(session, holder.id, key[1:])
    return EnqueuedTouch(team_slug, holder.external_id, holder.id, touch.stage, touch.day, touch.on,
                         evaluation.channel, holder.expires_on, evaluation.days_left)


def record_scan_run(factory: sessionmaker[Session], report: ScanReport, now: datetime) -> None:
    try:
        _record_scan_run(factory, report, now)
    except IntegrityError:  # a replica recorded the same day a moment ago: add to its row
        _record_scan_run(factory, report, now)


def _record_scan_run(factory: sessionmaker[Session], report: ScanReport, now: datetime) -> None:
    with unit_of_work(factory) as session:
        run = session.get(ScanRun, report.scan_date)
        if run is None:
            session.add(ScanRun(scan_date=report.scan_date, started_at=now, finished_at=utcnow(),
                                holders_seen=report.holders_seen, enqueued=len(report.enqueued), runs=1))
        else:
            run.finished_at = utcnow()
            run.holders_seen = report.holders_seen
            run.enqueued += len(report.enqueued)
            run.runs += 1


def scan_ran_on(factory: sessionmaker[Session], day: date) -> bool:
    with unit_of_work(factory) as session:
        return session.get(ScanRun, day) is not None
