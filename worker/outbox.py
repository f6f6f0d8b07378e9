"""The outbox's write side: enqueue a holder's due touch exactly once, supersede older ones.

Both the daily scan and registration events go through here, so they share one idempotency
key: (holder, cycle, stage, touch, channel), inserted with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schedules.policy import Policy
from schedules.stages import next_touch_on
from worker.evaluation import evaluate_holder, facts_of, holder_zone
from worker.models import Holder, Notification, utcnow

# "Nothing more to send in this cycle": far enough that no scan reaches it.
NEVER = date(9999, 12, 31)


def insert_dialect(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


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


def insert_touch(session: Session, values: dict[str, Any]) -> bool:
    """Insert one outbox row unless its key exists; True if this call inserted it."""
    stmt = insert_dialect(session)(Notification).values(**values).on_conflict_do_nothing(
        index_elements=["holder_id", "cycle_expires_on", "stage", "touch_day", "channel"]
    ).returning(Notification.id)
    # RETURNING, not rowcount: PostgreSQL drivers report -1 for INSERT ... ON CONFLICT.
    return session.execute(stmt).scalar_one_or_none() is not None


def supersede_older(session: Session, holder_id: int, keep: tuple[date, str, int]) -> None:
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


def existing_touches(session: Session, holder_ids: list[int]) -> set[tuple[int, date, str, int]]:
    rows = session.execute(
        select(Notification.holder_id, Notification.cycle_expires_on, Notification.stage, Notification.touch_day)
        .where(Notification.holder_id.in_(holder_ids))
    )
    return {tuple(r) for r in rows}  # type: ignore[misc]


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
    if key in (existing if existing is not None else existing_touches(session, [holder.id])):
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
        supersede_older(session, holder.id, key[1:])
    return EnqueuedTouch(team_slug, holder.external_id, holder.id, touch.stage, touch.day, touch.on,
                         evaluation.channel, holder.expires_on, evaluation.days_left)


def next_due_on(holder: Holder, day: date, policy: Policy) -> date:
    return next_touch_on(facts_of(holder), day, policy) or NEVER
