"""Domain events and their handlers, wired in one dict (a small message bus).

A change to a holder acts at once: registering, importing, updating or renewing re-evaluates
the holder and enqueues what is due today, through the same planner and outbox key as the
daily scan, so the scan never sends it a second time. Handlers take their events in batches, so
a large import is handled with set-based statements.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from schedules.policy import Policy
from worker.planning.outbox import (
    DUE_COLUMNS,
    Candidate,
    EnqueuedTouch,
    TouchPlanner,
    enqueue_many,
)
from worker.planning.points import holders_rows, plan_points
from worker.store.bulk import any_of
from worker.store.models import Holder, Team

log = structlog.get_logger("worker.events")
# Holders read per round trip: one import chunk's worth.
_CHUNK = 2000
# Above this many touches enqueued at once, one summary log line instead of one per touch.
_LOG_EACH = 50


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
class EnqueueLog:
    """What a unit of work enqueued, logged once it has committed (a dry run logs nothing): one
    line per touch, as an operator follows a holder, or past _LOG_EACH one line with counts for
    the whole unit, so a 50,000-row import writes one line, not one per chunk."""

    each: list[tuple[EnqueuedTouch, str]] = field(default_factory=list)
    by_touch: Counter[str] = field(default_factory=Counter)
    causes: set[str] = field(default_factory=set)

    def add(self, enqueued: list[EnqueuedTouch], causes: dict[int, str]) -> None:
        for touch in enqueued:
            if len(self.each) <= _LOG_EACH:
                self.each.append((touch, causes[touch.holder_id]))
            self.by_touch[f"{touch.stage} {touch.touch_day:+d} {touch.channel}"] += 1
            self.causes.add(causes[touch.holder_id])

    def emit(self) -> None:
        total = self.by_touch.total()
        if total <= _LOG_EACH:
            for touch, cause in self.each:
                log.info("events.enqueued", cause=cause, holder_id=touch.holder_id, stage=touch.stage,
                         touch_day=touch.touch_day, channel=touch.channel)
        else:
            log.info("events.enqueued_many", count=total, causes=sorted(self.causes),
                     by_touch=dict(sorted(self.by_touch.items())))
        self.each.clear()
        self.by_touch.clear()
        self.causes.clear()


@dataclass
class Context:
    policy: Policy
    zone: ZoneInfo
    now: datetime
    enqueued: list[EnqueuedTouch] = field(default_factory=list)
    log: EnqueueLog = field(default_factory=EnqueueLog)
    _planner: TouchPlanner | None = field(default=None, repr=False)

    def planner(self) -> TouchPlanner:
        """One planner per context, so its memo of evaluations spans every chunk of an import."""
        if self._planner is None:
            # No next_due_on here (see reevaluate): skip working it out.
            self._planner = TouchPlanner(self.policy, self.zone, self.now, schedule=False)
        return self._planner


def reevaluate(session: Session, events: list[Event], ctx: Context) -> None:
    """Enqueue at once the touch each holder named by the events is due on their own today,
    through the same planner and outbox writes as the daily scan.

    Set-based: a 100,000-row import costs one read and one insert per `_CHUNK` holders, and only
    holders with a touch due today get an outbox row. `next_due_on` is left as the registry set
    it (DUE_NOW for anything new or changed): the next scan evaluates those holders once more
    and schedules them, which keeps this handler free of a write per holder.
    """
    causes: dict[int, str] = {}
    for event in events:  # each holder once; the first event names the cause in the log
        causes.setdefault(event.holder_id, type(event).__name__)
    # Created in this transaction: they cannot have outbox rows, so there is nothing to look up
    # or supersede for them.
    registered = frozenset(e.holder_id for e in events if isinstance(e, HolderRegistered))
    planner = ctx.planner()
    ids = list(causes)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        rows = {row[0]: row for row in session.execute(  # autoflush: pending ORM changes are read
            select(*DUE_COLUMNS).join(Team).where(any_of(session, Holder.id, chunk)))}
        candidates: list[Candidate] = []
        for holder_id in chunk:  # event order, not the database's
            row = rows.get(holder_id)
            if row is None:
                continue  # deleted since
            _, outcome = planner.plan(row)
            if isinstance(outcome, tuple):
                candidates.append(outcome)
        # The points (积分) touch too: a change (a new contract date, a renamed employer, months
        # of social insurance) can make it due today, on its own clock.
        candidates += plan_points(session, holders_rows(session, [h for h in chunk if h in rows]), ctx.policy,
                                  ctx.zone, ctx.now)
        enqueued = enqueue_many(session, candidates, without_rows=registered)
        ctx.enqueued.extend(enqueued)
        ctx.log.add(enqueued, causes)


HANDLERS: dict[type, list[Callable[[Session, list[Event], Context], None]]] = {
    HolderRegistered: [reevaluate],
    HolderUpdated: [reevaluate],
    RenewalConfirmed: [reevaluate],
}


def handle(session: Session, events: list[Event], ctx: Context) -> list[EnqueuedTouch]:
    """Run every handler inside the caller's unit of work. Handlers take their events in
    batches, in order: each handler once, with every event it subscribes to."""
    batches: dict[Callable[[Session, list[Event], Context], None], list[Event]] = {}
    for event in events:
        for handler in HANDLERS[type(event)]:
            batches.setdefault(handler, []).append(event)
    for handler, batch in batches.items():
        handler(session, batch, ctx)
    return ctx.enqueued
