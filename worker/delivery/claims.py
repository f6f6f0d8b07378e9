"""Claiming due outbox rows in batches, safely across any number of dispatcher replicas.

PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED LIMIT n` picks rows no other transaction holds,
and the UPDATE to "sending" runs in the same transaction, so replicas neither wait for each other
nor claim a row twice. SQLite has no row locks (one writer at a time): each candidate is claimed
with a conditional UPDATE that repeats the state we read, and its row count says whether we won.

A claim carries a lease. A "sending" row whose lease ran out was abandoned by a claimant that died
mid-send, so it is claimable again. Whether the dead claimant's send reached the provider is
unknown: the reclaim records an AMBIGUOUS attempt for it *in the claiming transaction* (a crash
right after the reclaim must not lose the older claim's start), and the dispatcher then
reconciles before sending, exactly as after any ambiguous answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

import structlog
from sqlalchemy import ColumnElement, Table, and_, bindparam, or_, select, true, update
from sqlalchemy.orm import Session

from notifiers.base import SendStatus
from worker.store.db import rows_changed
from worker.store.models import DeliveryAttempt, Notification, utcnow
from worker.store.statuses import NoteStatus

log = structlog.get_logger("worker.claims")

# SQLite: rounds of read-then-claim before settling for fewer rows than asked. The second round
# already runs under the write lock the first round's UPDATEs took, so it cannot lose a row.
_SQLITE_ROUNDS = 3


# Core statements (no ORM bookkeeping): these run once per batch, on the hot path.
_TABLE = cast(Table, Notification.__table__)


def claimable(now: datetime) -> ColumnElement[bool]:
    """Due and pending, or "sending" with a lease that ran out (its claimant died)."""
    due = and_(_TABLE.c.status == NoteStatus.PENDING, _TABLE.c.next_attempt_at <= now)
    abandoned = and_(_TABLE.c.status == NoteStatus.SENDING, _TABLE.c.claimed_until < now)
    return or_(due, abandoned)


@dataclass(frozen=True)
class Candidate:
    """What a claimer read of a claimable row: enough to claim it conditionally and, for an
    abandoned row, to record the dead claimant's attempt."""

    id: int
    status: str
    attempts: int
    channel: str
    claimed_by: str | None
    claimed_until: datetime | None
    updated_at: datetime | None

    @property
    def abandoned(self) -> bool:
        return self.status == NoteStatus.SENDING


@dataclass(frozen=True)
class RenderStamp:
    """The day a row's text was rendered for, and its SMS segments: written before each send
    (a reclaim reconciles against that text), restored if the send never happened."""

    row_id: int
    rendered_on: date | None
    segments: int | None


_COLUMNS = (Notification.id, Notification.status, Notification.attempts, Notification.channel,
            Notification.claimed_by, Notification.claimed_until, Notification.updated_at)


def claim_rows(session: Session, now: datetime, n: int, worker_id: str, lease: timedelta,
               notifier_names: Mapping[str, str]) -> list[int]:
    """Claim up to `n` due rows for `worker_id` (oldest due first); the caller commits."""
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        won = _claim_skip_locked(session, now, n, worker_id, lease)
    else:
        won = _claim_conditionally(session, now, n, worker_id, lease)
    _record_abandoned(session, [c for c in won if c.abandoned], lease, notifier_names)
    return [c.id for c in won]


def _claim_values(now: datetime, worker_id: str, lease: timedelta) -> dict[str, object]:
    # updated_at is wall-clock on purpose (now may be a logical `dispatch --now`): if this claim
    # is abandoned, the reclaimer reconciles from it against the provider's wall-clock stamps.
    # It is also this claim's stamp: unique to this call, so SQLite can tell which rows it won.
    return {"status": NoteStatus.SENDING, "claimed_by": worker_id, "claimed_until": now + lease, "updated_at": utcnow()}


def _claim_skip_locked(session: Session, now: datetime, n: int, worker_id: str,
                       lease: timedelta) -> list[Candidate]:
    rows = session.execute(
        select(*_COLUMNS).where(claimable(now)).order_by(Notification.next_attempt_at).limit(n)
        .with_for_update(skip_locked=True)
    ).all()
    won = [Candidate(*row) for row in rows]
    if won:  # every row read is locked by this transaction: all of them are ours
        session.execute(update(_TABLE).where(_TABLE.c.id.in_([c.id for c in won]))
                        .values(**_claim_values(now, worker_id, lease)))
    return won


def _claim_conditionally(session: Session, now: datetime, n: int, worker_id: str,
                         lease: timedelta) -> list[Candidate]:
    won: list[Candidate] = []
    for _ in range(_SQLITE_ROUNDS):
        taken = [c.id for c in won]
        rows = session.execute(
            select(*_COLUMNS).where(claimable(now), _TABLE.c.id.not_in(taken) if taken else true())
            .order_by(Notification.next_attempt_at).limit(n - len(won))
        ).all()
        candidates = [Candidate(*row) for row in rows]
        if not candidates:
            break
        values = _claim_values(now, worker_id, lease)
        # One statement per candidate, sent as one executemany. The WHERE repeats the state we
        # read, so a row another process claimed (or claimed and finished) since our read no
        # longer matches and is left alone.
        stmt = update(_TABLE).where(
            _TABLE.c.id == bindparam("c_id"), claimable(now),
            _TABLE.c.status == bindparam("c_status"), _TABLE.c.attempts == bindparam("c_attempts"),
            _TABLE.c.claimed_until.is_not_distinct_from(bindparam("c_until")),
        ).values(**values)
        params = [{"c_id": c.id, "c_status": c.status, "c_attempts": c.attempts, "c_until": c.claimed_until}
                  for c in candidates]
        matched = rows_changed(session.execute(stmt, params))
        if matched == len(candidates):
            won += candidates
            break  # won all we read: enough, or all that is due
        # Some were lost: the ones we won carry this claim's unique stamp. We hold the write lock
        # now (our UPDATEs took it), so this read and the next round cannot race anyone.
        mine = set(session.scalars(select(_TABLE.c.id).where(
            _TABLE.c.id.in_([c.id for c in candidates]), _TABLE.c.claimed_by == worker_id,
            _TABLE.c.updated_at == values["updated_at"])))
        won += [c for c in candidates if c.id in mine]
        if len(won) >= n:
            break
    return won


def _record_abandoned(session: Session, rows: Sequence[Candidate], lease: timedelta,
                      notifier_names: Mapping[str, str]) -> None:
    """Record each reclaimed row's lost attempt as AMBIGUOUS, starting when its claim started.

    The claim start is derived (no column holds it): the row's last write (wall clock, by the
    dead claimant: its claim, then its pre-send render) and claimed_until - lease. The earlier
    of the two wins, so a claimant with a longer lease than ours, or a logical clock, only
    widens the reconciliation window, never hides the message it may have sent.
    """
    if not rows:
        return
    reclaimed_at = utcnow()
    for row in rows:
        starts = [t for t in (row.updated_at, row.claimed_until and row.claimed_until - lease) if t is not None]
        since = min(starts, default=reclaimed_at)
        session.add(DeliveryAttempt(
            notification_id=row.id, attempt_no=row.attempts + 1, notifier=notifier_names.get(row.channel, "-"),
            started_at=since, finished_at=reclaimed_at, outcome=SendStatus.AMBIGUOUS.value,
            error=f"abandoned: the claim by {row.claimed_by} ran out before a result was recorded; "
                  "the message may have been sent",
        ))
        log.warning("dispatch.reclaimed_abandoned", notification_id=row.id, claimed_by=row.claimed_by,
                    claimed_until=row.claimed_until.isoformat() if row.claimed_until else None)
    session.execute(update(_TABLE).where(_TABLE.c.id.in_([r.id for r in rows])).values(attempts=_TABLE.c.attempts + 1))
    session.flush()


def lock_own(session: Session, row_ids: Sequence[int], worker_id: str) -> set[int]:
    """Of `row_ids`, those still claimed by `worker_id`, now write-locked until the caller commits.

    A conditional UPDATE (not a read) so the claimant check and the lock are one step on both
    backends: no other replica can reclaim a row between our check and our write.
    """
    if not row_ids:
        return set()
    return set(session.scalars(
        update(_TABLE).where(_TABLE.c.id.in_(row_ids), _TABLE.c.claimed_by == worker_id)
        .values(updated_at=utcnow()).returning(_TABLE.c.id)
    ))


def stamp_rendered(session: Session, rows: Sequence[RenderStamp]) -> None:
    """Set each row's rendered_on and segments: one UPDATE per distinct pair (a batch has a few:
    one day, one to three segment counts), not one per row."""
    groups: dict[tuple[date | None, int | None], list[int]] = {}
    for row in rows:
        groups.setdefault((row.rendered_on, row.segments), []).append(row.row_id)
    for (rendered_on, segments), row_ids in groups.items():
        session.execute(update(_TABLE).where(_TABLE.c.id.in_(row_ids))
                        .values(rendered_on=rendered_on, segments=segments))


def release_unsent(session: Session, rows: Sequence[RenderStamp], worker_id: str) -> int:
    """Hand rows claimed but never sent back to "pending", due as before; the caller commits.

    Restores what preparing wrote ahead of the send (rendered_on, segments): a later
    reconciliation must look for the text of the last attempt really made, not of one that
    never left.
    """
    if not rows:
        return 0
    stmt = update(_TABLE).where(_TABLE.c.id == bindparam("r_id"), _TABLE.c.claimed_by == worker_id).values(
        status=NoteStatus.PENDING, claimed_by=None, claimed_until=None, rendered_on=bindparam("r_rendered_on"),
        segments=bindparam("r_segments"))
    params = [{"r_id": r.row_id, "r_rendered_on": r.rendered_on, "r_segments": r.segments} for r in rows]
    return rows_changed(session.execute(stmt, params))
