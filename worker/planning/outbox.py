"""The outbox's write side: enqueue a holder's due touch exactly once, supersede older ones.

Both the daily scan and registration events go through here, so they share one idempotency
key: (holder, cycle, stage, touch, channel), inserted with ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schedules.policy import Policy
from schedules.stages import HolderFacts, Touch, evaluate, next_touch_on
from schedules.vocabulary import reason_text
from worker.planning.evaluation import evaluate_holder, facts_from, facts_of, holder_zone, reachable_by_sms
from worker.store.bulk import any_of, insert_many, table_of
from worker.store.models import Holder, Notification, Team, utcnow
from worker.store.statuses import NoteStatus

POINTS_STAGE = "points_renewal"  # schedules.points.POINTS_RENEWAL

# "Nothing more to send in this cycle": far enough that no scan reaches it.
NEVER = date(9999, 12, 31)
# What evaluating a holder needs, read as plain rows (no ORM objects): the set-based paths (the
# daily scan, bulk registration) select these, joined to Team, and hand them to `TouchPlanner`.
DUE_COLUMNS = (Holder.id, Holder.external_id, Holder.expires_on, Holder.housing_type,
               Holder.rental_registration_ends_on, Holder.changed_since_endorsement, Holder.phone, Holder.email,
               Holder.sms_opted_out_at, Holder.timezone, Team.slug, Holder.wecom_userid, Team.channels,
               Holder.paused_until)
# The outbox's idempotency key (its unique constraint).
_TOUCH_KEY = ("holder_id", "cycle_expires_on", "stage", "touch_day", "channel")
# Bound on IN lists: a scan batch's worth, well under SQLite's 32,766 variables.
_IN_CHUNK = 2000
# Distinct (facts, day) evaluations a TouchPlanner keeps.
# (About 200 bytes each: a few MB at most.)
_MEMO_LIMIT = 20_000


def insert_dialect(session: Session) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert
        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    return sqlite_insert


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


class OutboxRow(TypedDict):
    """The values of one new notifications row, exactly as inserted."""

    holder_id: int
    cycle_expires_on: date
    stage: str
    touch_day: int
    touch_on: date
    channel: str
    status: str
    attempts: int
    next_attempt_at: datetime


def outbox_row(holder_id: int, cycle: date, stage: str, touch_day: int, touch_on: date, channel: str,
               due_from: date | datetime, zone: ZoneInfo | None = None) -> OutboxRow:
    """The values of one new outbox row: every path that enqueues (scan, events, points, fallback)
    builds it here. `due_from` is a moment, or a day whose start in `zone` (the holder's) it is
    due from: a scan run ahead of time (--today) enqueues nothing that goes out before that day."""
    if not isinstance(due_from, datetime):
        assert zone is not None, "a day needs the holder's zone"
        due_from = datetime.combine(due_from, time.min, zone)
    return OutboxRow(holder_id=holder_id, cycle_expires_on=cycle, stage=stage, touch_day=touch_day,
                     touch_on=touch_on, channel=channel, status=NoteStatus.PENDING, attempts=0,
                     next_attempt_at=due_from)


def insert_touch(session: Session, values: OutboxRow) -> bool:
    """Insert one outbox row unless its key exists; True if this call inserted it."""
    stmt = insert_dialect(session)(Notification).values(**values).on_conflict_do_nothing(
        index_elements=["holder_id", "cycle_expires_on", "stage", "touch_day", "channel"]
    ).returning(Notification.id)
    # RETURNING, not rowcount: PostgreSQL drivers report -1 for INSERT ... ON CONFLICT.
    return session.execute(stmt).scalar_one_or_none() is not None


def supersede_older(session: Session, holder_id: int, keep: tuple[date, str, int]) -> None:
    """A newer touch makes every older unsent one stale: never send two reminders at once.

    Permit and points (积分) touches run on separate clocks: each supersedes only its own kind."""
    cycle, stage, day = keep
    same_kind = Notification.stage == POINTS_STAGE if stage == POINTS_STAGE else Notification.stage != POINTS_STAGE
    session.execute(
        update(Notification)
        .where(
            Notification.holder_id == holder_id,
            Notification.status == NoteStatus.PENDING,
            same_kind,
            ~((Notification.cycle_expires_on == cycle) & (Notification.stage == stage)
              & (Notification.touch_day == day)),
        )
        .values(status=NoteStatus.CANCELLED, status_reason=reason_text("superseded", stage=stage, day=day),
                updated_at=utcnow())
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
    if is_paused(holder, day):
        return None
    evaluation = evaluate_holder(holder, day, policy)
    touch = evaluation.due_touch
    if touch is None:
        return None
    if evaluation.channel is None:
        return "no_contact"
    key = (holder.id, holder.expires_on, touch.stage, touch.day)
    if key in (existing if existing is not None else existing_touches(session, [holder.id])):
        return None
    values = outbox_row(holder.id, holder.expires_on, touch.stage, touch.day, touch.on, evaluation.channel, day,
                        holder_zone(holder, zone))
    if not dry_run:
        if not insert_touch(session, values):
            return None  # another scan (another replica) got there first
        supersede_older(session, holder.id, key[1:])
    return EnqueuedTouch(team_slug, holder.external_id, holder.id, touch.stage, touch.day, touch.on,
                         evaluation.channel, holder.expires_on, evaluation.days_left)


def next_due_on(holder: Holder, day: date, policy: Policy) -> date:
    if holder.paused_until is not None and day <= holder.paused_until:
        return holder.paused_until + timedelta(days=1)
    return next_touch_on(facts_of(holder), day, policy) or NEVER


def is_paused(holder: Holder, day: date) -> bool:
    """The holder's reminders are paused on `day` (holders pause ... --until, inclusive)."""
    return holder.paused_until is not None and day <= holder.paused_until


# -- set-based: many holders at once ------------------------------------------------------------
Candidate = tuple[OutboxRow, EnqueuedTouch]  # outbox row values, and what to report if inserted


class TouchPlanner:
    """Evaluates plain `DUE_COLUMNS` rows, as `enqueue_due` evaluates an ORM holder: each holder
    on their own day (or a pinned `today`), with time zones looked up once. `schedule=False`
    skips working out next_due_on, for callers that do not store it."""

    def __init__(self, policy: Policy, default_zone: ZoneInfo, now: datetime, today: date | None = None,
                 *, schedule: bool = True) -> None:
        self.policy = policy
        self.now = now
        self.today = today
        self.schedule = schedule
        self.default_zone = default_zone
        # Per time zone (None: the default): the zone, the holder's day, and when that day starts.
        self._days: dict[str | None, tuple[ZoneInfo, date, datetime]] = {}
        # The stage engine is pure (facts and day in, evaluation out), and a registry holds few
        # distinct fact sets per day (an expiry date, housing, changes, contacts): memoised on
        # the raw column values, most holders cost a dict lookup instead of an evaluation.
        # Only what planning needs is kept (the due touch, channel, days left, next_due_on), not
        # the whole Evaluation: a 100,000-row import has tens of thousands of distinct keys.
        self._memo: dict[tuple[Any, ...], tuple[Touch | None, str | None, int, date | None]] = {}

    def plan(self, row: Sequence[Any]) -> tuple[date | None, Candidate | str | None]:
        """(next_due_on after the holder's day, None when not scheduling; then the touch due
        that day: a candidate, or "no_contact", or None)."""
        (hid, ext, expires, housing, rental, changed, phone, email, opted_out, tz, slug, wecom, channels,
         paused_until) = row
        _, day, day_starts = self._days.get(tz) or self._day_of(tz)
        if paused_until is not None and day <= paused_until:
            # Paused: nothing is planned; the day after the pause the holder is looked at again and
            # gets the touch due then, the latest one, never the backlog.
            return paused_until + timedelta(days=1), None
        # Memoised on the raw columns, reduced to what the facts keep of the contacts.
        key = (expires, housing, rental, changed, reachable_by_sms(phone, opted_out), bool(email), bool(wecom),
               channels, day)
        known = self._memo.get(key)
        if known is None:
            known = self._memo[key] = self._evaluate(
                facts_from(expires, housing, rental, changed, phone, email, opted_out, wecom, channels), day)
        touch, channel, days_left, following = known
        if touch is None:
            return following, None
        if channel is None:
            return following, "no_contact"
        values = outbox_row(hid, expires, touch.stage, touch.day, touch.on, channel, day_starts)
        return following, (values, EnqueuedTouch(slug, ext, hid, touch.stage, touch.day, touch.on, channel,
                                                 expires, days_left))

    def _day_of(self, tz: str | None) -> tuple[ZoneInfo, date, datetime]:
        zone = ZoneInfo(tz) if tz else self.default_zone
        day = self.today or self.now.astimezone(zone).date()
        self._days[tz] = (zone, day, datetime.combine(day, time.min, zone))
        return self._days[tz]

    def _evaluate(self, facts: HolderFacts, day: date) -> tuple[Touch | None, str | None, int, date | None]:
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()  # bounded memory: the next rows refill it
        following = (next_touch_on(facts, day, self.policy) or NEVER) if self.schedule else None
        ev = evaluate(facts, day, self.policy)
        return ev.due_touch, ev.channel, ev.days_left, following


def enqueue_many(session: Session, candidates: list[Candidate], dry_run: bool = False,
                 without_rows: AbstractSet[int] = frozenset()) -> list[EnqueuedTouch]:
    """`enqueue_due` for many holders in a few statements: insert the touches no row exists for
    (in any channel), then cancel each holder's older pending ones. Returns what was inserted
    (dry: what would be), in candidate order.

    `without_rows`: holders known to have no outbox rows at all (created in this transaction),
    for whom there is nothing to look up or supersede.
    """
    if not candidates:
        return []
    keys = [(v["holder_id"], v["cycle_expires_on"], v["stage"], v["touch_day"]) for v, _ in candidates]
    holder_ids = sorted({k[0] for k in keys if k[0] not in without_rows})
    taken: set[tuple[Any, ...]] = set()
    # (holder, is a points touch) -> their unsent rows of that kind, before ours: permit and points
    # touches run on separate clocks, so each supersedes only its own kind.
    pending: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for i in range(0, len(holder_ids), _IN_CHUNK):
        # Every row of these holders (a handful each), in one read that answers both questions:
        # which touches exist, and what is still pending to supersede (usually nothing, so the
        # UPDATEs below are usually skipped).
        for holder_id, cycle, stage, day, status, row_id in session.execute(
                select(Notification.holder_id, Notification.cycle_expires_on, Notification.stage,
                       Notification.touch_day, Notification.status, Notification.id)
                .where(any_of(session, Notification.holder_id, holder_ids[i:i + _IN_CHUNK]))):
            taken.add((holder_id, cycle, stage, day))
            if status == NoteStatus.PENDING:
                pending[(holder_id, stage == POINTS_STAGE)].append(row_id)
    fresh = [(v, e) for (v, e), k in zip(candidates, keys, strict=True) if k not in taken]
    if dry_run or not fresh:
        return [e for _, e in fresh]
    inserted = insert_many(  # another replica may have won some: those are not returned
        session, table_of(Notification), [v for v, _ in fresh], _TOUCH_KEY,
        ("holder_id", "cycle_expires_on", "stage", "touch_day"), stamped=("created_at", "updated_at"))
    won = {tuple(row) for row in inserted}
    mine = [(v, e) for v, e in fresh if (v["holder_id"], v["cycle_expires_on"], v["stage"], v["touch_day"]) in won]
    # A newer touch supersedes every older unsent one of the same holder and kind; grouped by
    # touch so the reason names it, as supersede_older does for one holder. Rows another process
    # claimed or sent since the read above stay as they are (status is checked again).
    by_touch: dict[tuple[str, int], list[int]] = defaultdict(list)
    for values, _ in mine:
        kind = (values["holder_id"], values["stage"] == POINTS_STAGE)
        by_touch[(values["stage"], values["touch_day"])].extend(pending.get(kind, ()))
    for (stage, day), stale in by_touch.items():
        for i in range(0, len(stale), _IN_CHUNK):
            session.execute(update(Notification).where(
                Notification.status == NoteStatus.PENDING, any_of(session, Notification.id, stale[i:i + _IN_CHUNK]))
                .values(status=NoteStatus.CANCELLED, status_reason=reason_text("superseded", stage=stage, day=day),
                        updated_at=utcnow())
                .execution_options(synchronize_session=False))
    return [e for _, e in mine]
