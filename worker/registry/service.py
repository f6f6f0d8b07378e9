"""The registry's use cases, one function each, and the unit of work they run in.

Every entry point (CLI, API, web pages) calls these and nothing below them: a use case writes,
collects the domain events its writes raise, and the unit of work handles them before it
commits, so a change acts at once (what is due today is enqueued now) the same way whichever
door it came in by. No entry point calls `handle` or builds a `Context` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from types import TracebackType
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schedules.policy import Policy
from worker.planning.evaluation import holder_today
from worker.planning.events import Context, Event, HolderUpdated, RenewalConfirmed, handle
from worker.planning.outbox import EnqueuedTouch
from worker.registry import audit, records
from worker.registry.insurance import MonthRow, import_months
from worker.registry.roster import RosterRow
from worker.registry.roster_import import ImportReport, ImportSummary, import_roster, import_roster_chunked
from worker.store.models import Holder, Team

# Touches kept for the caller to show (an API answer names one holder's); the count is exact.
_KEEP_TOUCHES = 1000


class UnitOfWork:
    """One use case's transaction. `collect` events as writes raise them; `commit` handles them
    (in batches, see planning/events.py) and commits; leaving the block without a commit, or by
    an exception, rolls everything back. Log lines inside carry what `bind` named."""

    def __init__(self, factory: sessionmaker[Session], policy: Policy, zone: ZoneInfo,
                 now: datetime | None = None, actor: str = audit.SYSTEM) -> None:
        self._factory = factory
        self.actor = actor  # who the audit trail names for this unit's changes
        self._ctx = Context(policy, zone, now or datetime.now(UTC))
        self._events: list[Event] = []
        self._bound: list[str] = []
        self.session: Session
        self.enqueued: list[EnqueuedTouch] = []  # the first _KEEP_TOUCHES touches handled
        self.enqueued_count = 0

    @property
    def zone(self) -> ZoneInfo:
        return self._ctx.zone

    @property
    def now(self) -> datetime:
        return self._ctx.now

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.session.rollback()  # a no-op after commit
        finally:
            self.session.close()
            if self._bound:
                structlog.contextvars.unbind_contextvars(*self._bound)

    def bind(self, **ids: object) -> None:
        """Name what this unit works on (team, holder) in every log line it writes."""
        structlog.contextvars.bind_contextvars(**ids)
        self._bound.extend(ids)

    def collect(self, events: Iterable[Event]) -> None:
        self._events.extend(events)

    def handle_events(self) -> int:
        """Act on the events collected so far (a big import does this once per chunk, so its
        memory stays flat). Returns how many touches were enqueued."""
        events, self._events = self._events, []
        touches = list(handle(self.session, events, self._ctx)) if events else []
        self._ctx.enqueued.clear()  # the context's own list: counted here, not kept twice
        self.enqueued.extend(touches[:max(0, _KEEP_TOUCHES - len(self.enqueued))])
        self.enqueued_count += len(touches)
        return len(touches)

    def commit(self) -> None:
        self.handle_events()
        self.session.commit()
        self._ctx.log.emit()  # what was enqueued, now that it is


def team_of(uow: UnitOfWork, team: Team | str | int) -> Team:
    """The team by slug or id (NotFound), or a Team of another session, in this unit's session."""
    if isinstance(team, Team):
        found = uow.session.get(Team, team.id)
    elif isinstance(team, int):
        found = uow.session.get(Team, team)
    else:
        found = records.get_team(uow.session, team)
    if found is None:
        raise records.NotFound("team gone")
    uow.bind(team=found.slug)
    return found


def import_rows(uow: UnitOfWork, team: Team, rows: Iterable[RosterRow], key_setting: str | None, *,
                allow_earlier_expiry: bool = False) -> ImportReport:
    """Import a roster chunk by chunk, acting on each chunk's changes; RosterError (nothing
    written) if any row is refused. The caller commits, or leaves the unit for a dry run."""

    def act(part: ImportSummary) -> None:
        uow.collect(part.events)
        uow.handle_events()
        _audit_rows(uow, team, part)

    report = import_roster_chunked(uow.session, team, rows, key_setting, act,
                                   allow_earlier_expiry=allow_earlier_expiry)
    report.enqueued = uow.enqueued_count
    audit.record(uow.session, team.id, uow.actor, "roster.imported", changes={
        "rows": report.rows, "created": report.created, "updated": report.updated, "unchanged": report.unchanged,
        "renewed": report.renewed, "enqueued": report.enqueued})
    return report


def _audit_rows(uow: UnitOfWork, team: Team, part: ImportSummary) -> None:
    """One entry per holder a roster (or an API body, a form) created or changed. The created
    ones (all of a first import: a million rows) go in set-based, from the ids the insert returned."""
    audit.record_created(uow.session, team.id, uow.actor, part.created_ids, part.created, uow.now)
    if not part.changes:
        return
    ids = records.holder_ids(uow.session, team, [c.external_id for c in part.changes])
    audit.record_many(uow.session, [
        audit.row(team.id, uow.actor, "holder.updated", holder_id=ids.get(c.external_id), holder=c.external_id,
                  changes=audit.field_changes(c.changes) | ({"renewed": True} if c.renewed else {}), at=uow.now)
        for c in part.changes])


def save_holder(uow: UnitOfWork, team: Team, row: RosterRow, key_setting: str | None, *,
                allow_earlier_expiry: bool = False) -> Holder:
    """Register or update one holder (an API body, a web form) through the roster's checks."""
    summary = import_roster(uow.session, team, [row], key_setting, allow_earlier_expiry=allow_earlier_expiry)
    uow.collect(summary.events)
    uow.handle_events()
    _audit_rows(uow, team, summary)
    holder = records.get_holder(uow.session, team, row.external_id)
    uow.bind(holder=holder.id)
    return holder


def preview_rows(uow: UnitOfWork, team: Team, rows: list[RosterRow], key_setting: str | None, *,
                 allow_earlier_expiry: bool = False) -> ImportSummary:
    """What importing `rows` would do, reminders due at once included; the caller must not
    commit (the web preview leaves the unit, which rolls back)."""
    summary = import_roster(uow.session, team, rows, key_setting, allow_earlier_expiry=allow_earlier_expiry)
    uow.collect(summary.events)
    uow.handle_events()
    _audit_rows(uow, team, summary)  # the API commits this unit: its entries go with it
    audit.record(uow.session, team.id, uow.actor, "roster.imported", changes={
        "rows": len(rows), "created": len(summary.created), "updated": len(summary.updated),
        "unchanged": len(summary.unchanged), "renewed": len(summary.renewed), "enqueued": uow.enqueued_count})
    return summary


def confirm_renewal(uow: UnitOfWork, team: Team, external_id: str, expires_on: date,
                    confirm_far: bool = True) -> Holder:
    """Record an endorsement (BadInput unless later than the expiry on file; with confirm_far
    False, also when more than 13 months later): a new cycle."""
    old = records.get_holder(uow.session, team, external_id).expires_on
    holder = records.confirm_renewal(uow.session, team, external_id, expires_on, confirm_far)
    audit.record(uow.session, team.id, uow.actor, "holder.renewal_confirmed", holder_id=holder.id,
                 holder=external_id, changes={"expires_on": [old.isoformat(), expires_on.isoformat()]})
    uow.bind(holder=holder.id)
    uow.collect([RenewalConfirmed(holder.id)])
    return holder


def pause_holder(uow: UnitOfWork, team: Team, external_id: str, until: date, reason: str | None) -> Holder:
    """Hold every reminder to the holder until `until` (inclusive), in their time zone's today."""
    holder = records.get_holder(uow.session, team, external_id)
    today = holder_today(holder, uow.now, uow.zone)
    holder = records.pause_holder(uow.session, team, external_id, until, reason, today)
    audit.record(uow.session, team.id, uow.actor, "holder.paused", holder_id=holder.id, holder=external_id,
                 changes={"paused_until": [None, until.isoformat()],
                          "pause_reason": [None, audit.masked("pause_reason", holder.pause_reason)]})
    uow.bind(holder=holder.id)
    return holder


def resume_holder(uow: UnitOfWork, team: Team, external_id: str) -> Holder:
    """End the pause: the touch due today is planned at once (HolderUpdated), held ones are due."""
    until = records.get_holder(uow.session, team, external_id).paused_until
    holder = records.resume_holder(uow.session, team, external_id, uow.now)
    audit.record(uow.session, team.id, uow.actor, "holder.resumed", holder_id=holder.id, holder=external_id,
                 changes={"paused_until": [until.isoformat() if until else None, None]})
    uow.bind(holder=holder.id)
    uow.collect([HolderUpdated(holder.id)])
    return holder


def record_insurance(uow: UnitOfWork, team: Team, rows: list[MonthRow]) -> set[int]:
    """Social-insurance months (all or nothing): new months can make a points touch due now."""
    holder_ids = import_months(uow.session, team, rows)
    uow.collect(HolderUpdated(i) for i in sorted(holder_ids))
    return holder_ids


def erase_holder(factory: sessionmaker[Session], engine: Engine, team_id: int, external_id: str,
                 actor: str = audit.SYSTEM) -> None:
    """Delete a holder and everything about them, from the disk too (see records.erase_holder).
    Its own transaction: the WAL checkpoint that makes the erasure real runs after the commit."""
    records.erase_holder(factory, engine, team_id, external_id, actor)
