"""A team's holders as plain rows with their stage: what the HR list, search, overview, export and
the CLI read, for teams of 100k holders.

A SELECT of columns (SQLAlchemy Row objects, attribute access like an ORM Holder) costs a small
fraction of loading ORM objects, and many holders share the facts that decide a stage, so each
distinct (facts, today) is evaluated once. The paging reads only ids and the columns a stage
needs, then loads the one page asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.orm import Session

from schedules.policy import Policy
from schedules.stages import Evaluation, HolderFacts, evaluate
from worker.planning.evaluation import facts_from
from worker.store.models import Holder

# Every column a list, an export or a view shows; the address is only a fingerprint and stays out.
ROW_COLUMNS = (
    Holder.id, Holder.external_id, Holder.name, Holder.phone, Holder.email, Holder.wecom_userid,
    Holder.expires_on, Holder.housing_type, Holder.rental_registration_ends_on, Holder.employer, Holder.locale,
    Holder.timezone, Holder.changed_since_endorsement, Holder.accumulation_started_on, Holder.points_basis,
    Holder.points_valid_until, Holder.labor_contract_ends_on, Holder.labor_contract_starts_on,
    Holder.sms_opted_out_at, Holder.paused_until, Holder.created_at,
)
# What a stage depends on, and what says whether a holder can be reached: enough to filter a page
# by stage and to sort an attention list, without the names.
STAGE_COLUMNS = (Holder.id, Holder.external_id, Holder.expires_on, Holder.housing_type,
                 Holder.rental_registration_ends_on, Holder.changed_since_endorsement, Holder.timezone,
                 Holder.email, Holder.sms_opted_out_at)
BATCH = 2000

# A Holder or a Row of ROW_COLUMNS / _STAGE_COLUMNS: both are read by attribute name.
HolderLike = Any


class Evaluator:
    """Stages of one team's holders at one moment: each time zone's "today" and each distinct set
    of facts worked out once."""

    def __init__(self, policy: Policy, default_zone: ZoneInfo, now: datetime, channels: str | None = None) -> None:
        self.policy, self.default_zone, self.now, self.channels = policy, default_zone, now, channels
        self._days: dict[str | None, date] = {}
        self._memo: dict[tuple[HolderFacts, date], Evaluation] = {}
        self._by_stage_facts: dict[tuple[Any, ...], Evaluation] = {}

    def today(self, tz: str | None = None) -> date:
        if tz not in self._days:
            self._days[tz] = self.now.astimezone(ZoneInfo(tz) if tz else self.default_zone).date()
        return self._days[tz]

    def of(self, row: HolderLike, today: date | None = None) -> Evaluation:
        """A holder's (or a row's) evaluation on their own "today", or on `today` when given."""
        facts = facts_from(row.expires_on, row.housing_type, row.rental_registration_ends_on,
                           row.changed_since_endorsement or "", row.phone, row.email, row.sms_opted_out_at,
                           row.wecom_userid, self.channels)
        return self.evaluate(facts, today or self.today(row.timezone))

    def stage_only(self, expires: date, housing: str | None, rental: date | None, changed: str | None,
                   tz: str | None, today: date | None = None) -> Evaluation:
        """The evaluation from only the facts that decide a stage (contacts pick a channel, not a
        stage): for counts and for tuples read without contacts. Its `channel` means nothing."""
        key = (expires, housing, rental, changed, tz, today)
        found = self._by_stage_facts.get(key)
        if found is None:
            facts = facts_from(expires, housing, rental, changed or "", None, None, None)
            found = self._by_stage_facts[key] = self.evaluate(facts, today or self.today(tz))
        return found

    def stage_of_row(self, row: HolderLike, today: date | None = None) -> Evaluation:
        return self.stage_only(row.expires_on, row.housing_type, row.rental_registration_ends_on,
                               row.changed_since_endorsement, row.timezone, today)

    def evaluate(self, facts: HolderFacts, today: date) -> Evaluation:
        key = (facts, today)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = evaluate(facts, today, self.policy)
        return found


def expiry_window(policy: Policy, stage: str, today: date) -> ColumnElement[bool]:
    """Holders whose expiry can put them in `stage` around `today` (a day's slack either side for
    holders in other time zones): the exact stage is checked on the rows this selects."""
    spec = next(s for s in policy.stages if s.name == stage)
    ranges = []
    for window in spec.windows:
        conditions = []
        if window.min_days_left is not None:
            conditions.append(Holder.expires_on >= today + timedelta(days=window.min_days_left - 1))
        if window.max_days_left is not None:
            conditions.append(Holder.expires_on <= today + timedelta(days=window.max_days_left + 1))
        ranges.append(and_(*conditions) if conditions else Holder.id.is_not(None))
    return or_(*ranges)


def stream_rows(session: Session, team_id: int, where: ColumnElement[bool] | None = None) -> Iterator[HolderLike]:
    """Every holder of the team as a Row, soonest expiry first, read in batches (memory flat)."""
    query = (select(*ROW_COLUMNS).where(Holder.team_id == team_id, where if where is not None else true())
             .order_by(Holder.expires_on, Holder.external_id)
             .execution_options(yield_per=BATCH))
    yield from session.execute(query)


def rows_by_id(session: Session, ids: Sequence[int]) -> list[HolderLike]:
    """Rows for `ids`, in that order (ids of other teams must not be passed: callers scope them)."""
    found: dict[int, HolderLike] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        found.update((r.id, r) for r in session.execute(select(*ROW_COLUMNS).where(Holder.id.in_(chunk))))
    return [found[i] for i in ids if i in found]


def page_ids(session: Session, team_id: int, evaluator: Evaluator, *, stage: str | None = None,
             where: ColumnElement[bool] | None = None, offset: int = 0, limit: int | None = 50,
             today: date | None = None) -> tuple[int, list[int]]:
    """(how many match, the page's holder ids), soonest expiry first; `limit=None`: all of them.
    Without a stage this is a COUNT and a LIMIT; with one, only holders whose expiry can put them
    in the stage are read (ids and facts), and the stage is checked on those."""
    mine = and_where = Holder.team_id == team_id
    if where is not None:
        and_where = mine & where
    order = (Holder.expires_on, Holder.external_id)
    if stage is None:
        total = session.scalar(select(func.count()).select_from(Holder).where(and_where)) or 0
        ids = list(session.scalars(select(Holder.id).where(and_where).order_by(*order).offset(offset).limit(limit)))
        return total, ids
    matching = [r.id for r, _ in in_stage(session, team_id, evaluator, stage, where, today)]
    return len(matching), matching[offset:None if limit is None else offset + limit]


def in_stage(session: Session, team_id: int, evaluator: Evaluator, stage: str,
             where: ColumnElement[bool] | None = None,
             today: date | None = None) -> list[tuple[HolderLike, Evaluation]]:
    """The team's holders in `stage` as STAGE_COLUMNS rows with their evaluation, soonest expiry
    first: only holders whose expiry can put them in the stage are read."""
    window = expiry_window(evaluator.policy, stage, today or evaluator.today())
    query = (select(*STAGE_COLUMNS).where(Holder.team_id == team_id, window, where if where is not None else true())
             .order_by(Holder.expires_on, Holder.external_id))
    found = []
    for row in session.execute(query):
        ev = evaluator.stage_of_row(row, today)
        if ev.stage == stage:
            found.append((row, ev))
    return found
