"""Domain events and their handlers, wired in one dict (a small message bus).

A change to a holder acts at once: registering, importing, updating or renewing re-evaluates
the holder and enqueues what is due today, through the same function and outbox key as the
daily scan, so the scan never sends it a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.orm import Session

from schedules.policy import Policy
from worker.evaluation import holder_today
from worker.models import Holder, Team
from worker.outbox import EnqueuedTouch, enqueue_due, next_due_on

log = structlog.get_logger("worker.events")


@dataclass(frozen=True)
class HolderRegistered:
    holder_id: int


@dataclass(frozen=True)
class HolderUpdated:
    holder_id: int
    changed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RenewalConfirmed:
    holder_id: int


Event = HolderRegistered | HolderUpdated | RenewalConfirmed


@dataclass
class Context:
    policy: Policy
    zone: ZoneInfo
    now: datetime
    enqueued: list[EnqueuedTouch] = field(default_factory=list)


def reevaluate(session: Session, event: Event, ctx: Context) -> None:
    holder = session.get(Holder, event.holder_id)
    if holder is None:
        return
    team_slug = session.get(Team, holder.team_id).slug  # type: ignore[union-attr]
    day = holder_today(holder, ctx.now, ctx.zone)
    outcome = enqueue_due(session, holder, team_slug, day, ctx.policy, ctx.zone)
    holder.next_due_on = next_due_on(holder, day, ctx.policy)  # the scan need not look again before then
    if isinstance(outcome, EnqueuedTouch):
        ctx.enqueued.append(outcome)
        log.info("events.enqueued", cause=type(event).__name__, holder_id=holder.id, stage=outcome.stage,
                 touch_day=outcome.touch_day, channel=outcome.channel)


HANDLERS: dict[type, list[Callable[[Session, Event, Context], None]]] = {
    HolderRegistered: [reevaluate],
    HolderUpdated: [reevaluate],
    RenewalConfirmed: [reevaluate],
}


def handle(session: Session, events: list[Event], ctx: Context) -> list[EnqueuedTouch]:
    """Run every handler of every event inside the caller's unit of work."""
    for event in events:
        for handler in HANDLERS[type(event)]:
            handler(session, event, ctx)
    return ctx.enqueued
