"""Writing a validated roster into the registry: create, update, renew, never undo by accident.

`worker.registry.roster` turns a file into valid rows; this module decides what each row does to the
registry and says so, field by field (old → new), so a preview or a dry run can show HR exactly
what confirming will do. Rows that would do harm are row errors, and a file with any is
rejected whole, like a file with a bad cell:
- an `expires_on` earlier than the one on file (re-importing last month's roster must not undo
  a confirmed renewal); `allow_earlier_expiry` lets HR correct a mistyped date on purpose;
- an update that would leave the holder with neither phone nor email.

Everything happens in the caller's transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from schedules.vocabulary import reason_text
from worker.planning.events import Event, HolderRegistered, HolderUpdated, RenewalConfirmed
from worker.registry.fingerprint import fingerprint, fingerprint_key
from worker.registry.records import cancel_pending, start_new_cycle
from worker.registry.roster import RosterRow, RowError, RowErrors
from worker.store.bulk import any_of, insert_many, is_postgresql, table_of
from worker.store.models import DUE_NOW, Holder, Team

# Rows written per round trip: big enough for few statements, small enough that a chunk's rows,
# ORM objects and events stay a few MB.
IMPORT_CHUNK = 2000
# Updated rows whose changes a report keeps in full (a preview or dry run lists them); the
# counts cover the rest, so a million-row import keeps a bounded report.
KEEP_CHANGES = 10_000

EARLIER_EXPIRY = "earlier than the expiry on file"
EARLIER_EXPIRY_HINT = ("a roster never moves an expiry back by itself: to correct a mistyped date, import with "
                       "--allow-earlier-expiry (API: ?allow_earlier_expiry=true)")
WECOM_ONLY_REASON = ("a WeCom account alone needs the team's channels to include wecom "
                     "(teams update SLUG --channels wecom,sms,email); or give a phone or email")
# Fields whose change since the last endorsement makes auto-renewal unlikely (RULES.md).
TRACKED = ("address", "employer", "phone")
POINTS_COLUMNS = ("accumulation_started_on", "points_basis", "points_valid_until", "labor_contract_ends_on",
                  "labor_contract_starts_on")
_PLAIN = ("name", "email", "housing_type", "rental_registration_ends_on", "locale", *POINTS_COLUMNS, "wecom_userid")


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str | None
    new: str | None
    # The address is kept only as a fingerprint: that it changed is all anyone can know.
    hidden: bool = False

    def __str__(self) -> str:
        if self.hidden:
            return f"{self.field}: changed"
        return f"{self.field}: {self.old or '—'} → {self.new or '—'}"


@dataclass(frozen=True)
class RowChange:
    """What importing one row does to an existing holder."""

    row: int
    external_id: str
    name: str | None
    changes: tuple[FieldChange, ...]
    renewed: bool = False  # expires_on moved later: a new cycle
    # Tracked fields newly changed in this cycle: auto-renewal is now unlikely for the holder.
    loses_auto_renewal: tuple[str, ...] = ()


@dataclass
class ImportSummary:
    """One chunk's (or a whole small file's) outcome, row by row."""

    created: list[str] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)  # the new holders' ids, in `created`'s order
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)
    changes: list[RowChange] = field(default_factory=list)  # one per updated row
    # What happened, for the handlers that act on it at once (re-evaluation, enqueue).
    events: list[Event] = field(default_factory=list)


@dataclass
class ImportReport:
    """A whole import as counts, plus the updated rows' changes up to KEEP_CHANGES."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    renewed: int = 0
    enqueued: int = 0  # reminders due now, enqueued by the import (dry: that would be)
    changes: list[RowChange] = field(default_factory=list)
    losing_auto_renewal: int = 0

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged

    @property
    def more_changes(self) -> int:
        return self.updated - len(self.changes)

    def add(self, part: ImportSummary) -> None:
        self.created += len(part.created)
        self.updated += len(part.updated)
        self.unchanged += len(part.unchanged)
        self.renewed += len(part.renewed)
        self.losing_auto_renewal += sum(1 for c in part.changes if c.loses_auto_renewal)
        self.changes.extend(part.changes[:max(0, KEEP_CHANGES - len(self.changes))])


def import_roster(session: Session, team: Team, rows: Iterable[RosterRow], key_setting: str | None, *,
                  allow_earlier_expiry: bool = False) -> ImportSummary:
    """Create or update holders from validated rows; one summary for the whole file (small files:
    an API body, a web form). A changed address, employer or phone on an existing holder makes
    it ineligible for auto-renewal for the rest of this cycle; a later expires_on is a renewal."""
    total = ImportSummary()

    def collect(part: ImportSummary) -> None:
        for name in ("created", "created_ids", "updated", "unchanged", "renewed", "changes", "events"):
            getattr(total, name).extend(getattr(part, name))

    import_roster_chunked(session, team, rows, key_setting, collect, allow_earlier_expiry=allow_earlier_expiry)
    # Registrations after updates, as before chunking: handlers see the same event order.
    total.events.sort(key=lambda e: isinstance(e, HolderRegistered))
    return total


def import_roster_chunked(session: Session, team: Team, rows: Iterable[RosterRow], key_setting: str | None,
                          on_chunk: Callable[[ImportSummary], object], chunk_size: int | None = None, *,
                          allow_earlier_expiry: bool = False) -> ImportReport:
    """Write rows `chunk_size` at a time; each chunk's summary goes to `on_chunk` (e.g. to act on
    its events) and is then dropped, so memory stays flat however many rows stream in (the
    report keeps counts and a bounded list of changes). Refused
    rows are collected over the whole file and raised at the end as one RosterError; the caller's
    transaction then rolls everything back: a file is all-or-nothing."""
    chunk_size = chunk_size or IMPORT_CHUNK  # read at call time, so a test can make chunks small
    if is_postgresql(session):
        # The rows this transaction writes are invisible to the planner's statistics, which still
        # say the table is as small as before the import (on a team's first import, empty), so
        # the planner read back each chunk's new rows by scanning the whole table: every chunk
        # slower than the last (a 1M-row file took minutes more than ten times a 100k one).
        # Every read here is by a key with an index.
        session.execute(text("SET LOCAL enable_seqscan = off"))
    with planned_for_each_execution(session):
        return _import_chunks(session, team, rows, key_setting, on_chunk, chunk_size, allow_earlier_expiry)


@contextmanager
def planned_for_each_execution(session: Session) -> Iterator[None]:
    """PostgreSQL: no server-side prepared statements on this connection for a while. psycopg
    prepares a statement it has run five times, and PostgreSQL's generic plan for "these ids, from
    an array parameter" filtered every row of the table per chunk (seconds a chunk, growing as the
    import went). Not `plan_cache_mode = force_custom_plan`: that setting also re-plans every
    foreign-key check, which more than doubled the cost of each inserted row."""
    driver = session.connection().connection.driver_connection if is_postgresql(session) else None
    if driver is None:
        yield
        return
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold


def _import_chunks(session: Session, team: Team, rows: Iterable[RosterRow], key_setting: str | None,
                   on_chunk: Callable[[ImportSummary], object], chunk_size: int,
                   allow_earlier_expiry: bool) -> ImportReport:
    key = fingerprint_key(session, key_setting)
    # A team's first import has nobody to look up: its rows go straight in. Otherwise existing
    # holders are looked up first, not found by a failed insert: on PostgreSQL every insert that
    # hits ON CONFLICT still uses up a sequence number, and a daily re-import would burn ids.
    look_first = session.scalar(select(Holder.id).where(Holder.team_id == team.id).limit(1)) is not None
    errors = RowErrors()
    report = ImportReport()
    chunk: list[RosterRow] = []

    def write(rows_: list[RosterRow]) -> None:
        part = _import_chunk(session, team, rows_, key, look_first, errors, allow_earlier_expiry)
        if not errors:  # once the file is refused, nothing more is acted on (it all rolls back)
            report.add(part)
            on_chunk(part)

    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_size:
            write(chunk)
            chunk = []
    if chunk:
        write(chunk)
    if errors:
        raise errors.error()
    return report


def _holders_by_external_id(session: Session, team: Team, external_ids: list[str]) -> dict[str, Holder]:
    """ORM objects, so changes to them are tracked (and flushed) as usual."""
    return {h.external_id: h for h in session.scalars(
        select(Holder).where(Holder.team_id == team.id, any_of(session, Holder.external_id, external_ids)))}


def _import_chunk(session: Session, team: Team, rows: list[RosterRow], key: bytes, look_first: bool,
                  errors: RowErrors, allow_earlier_expiry: bool) -> ImportSummary:
    summary = ImportSummary()
    if "wecom" not in (team.channels or "").split(","):
        # A WeCom account is reached only where the team's order has wecom: a holder with nothing
        # else would silently get no reminder at all.
        rows = [r for r in rows if not _only_wecom(r, errors)]
    fingerprints = {r.external_id: fingerprint(r.address, key) if r.address else None for r in rows}
    existing = _holders_by_external_id(session, team, [r.external_id for r in rows]) if look_first else {}
    new = [r for r in rows if r.external_id not in existing]
    created = _insert_new(session, [_new_holder(team, r, fingerprints[r.external_id]) for r in new])
    # Taken meanwhile by a concurrent import (ON CONFLICT skipped them): update them instead.
    taken = [r.external_id for r in new if r.external_id not in created]
    if taken:
        existing.update(_holders_by_external_id(session, team, taken))
    registered: list[int] = []
    for row in rows:
        if row.external_id in created:
            summary.created.append(row.external_id)
            summary.created_ids.append(created[row.external_id])
            registered.append(created[row.external_id])
            continue
        holder = existing.get(row.external_id)
        if holder is None:  # it conflicted, then vanished: deleted meanwhile by someone else
            errors.add(RowError(row.row, "external_id", f"{row.external_id!r} changed while importing; try again",
                                "changed while importing; try again"))
            continue
        if row.expires_on < holder.expires_on and not allow_earlier_expiry:
            errors.add(RowError(row.row, "expires_on",
                                f"{EARLIER_EXPIRY} ({holder.expires_on.isoformat()}); {EARLIER_EXPIRY_HINT}",
                                EARLIER_EXPIRY))
            continue
        _update(session, holder, row, fingerprints[row.external_id], summary, errors)
    session.flush()
    summary.events.extend(HolderRegistered(holder_id) for holder_id in registered)
    return summary


def _update(session: Session, holder: Holder, row: RosterRow, address_fp: str | None, summary: ImportSummary,
            errors: RowErrors) -> None:
    before = holder.changed_fields
    changes = _apply_row(holder, row, address_fp)
    if not holder.phone and not holder.email and not holder.wecom_userid:
        errors.add(RowError(row.row, "phone", "phone or email is required"))
        return
    if not holder.phone and not holder.email and "wecom" not in (holder.team.channels or "").split(","):
        errors.add(RowError(row.row, "wecom_userid", WECOM_ONLY_REASON))
        return
    renewed = row.expires_on > holder.expires_on
    if row.expires_on != holder.expires_on:
        changes.append(FieldChange("expires_on", holder.expires_on.isoformat(), row.expires_on.isoformat()))
    if not changes:
        summary.unchanged.append(row.external_id)
        return
    holder.next_due_on = DUE_NOW  # facts changed: the next scan re-evaluates, at the latest
    summary.updated.append(row.external_id)
    summary.events.append(HolderUpdated(holder.id, holder.changed_fields - before))
    if renewed:
        start_new_cycle(session, holder, row.expires_on, reason_text("renewed_by_roster"))
        summary.renewed.append(row.external_id)
        summary.events.append(RenewalConfirmed(holder.id))
    elif row.expires_on != holder.expires_on:  # a correction, on purpose: the old cycle's touches are wrong
        holder.expires_on = row.expires_on
        session.flush()
        cancel_pending(session, holder.id, reason_text("expiry_corrected"), keep_cycle=row.expires_on)
    # After a renewal the new cycle starts with nothing changed, so nothing is lost.
    lost = tuple(f for f in TRACKED if f in holder.changed_fields and f not in before)
    summary.changes.append(RowChange(row.row, row.external_id, holder.name, tuple(changes), renewed, lost))


def _only_wecom(row: RosterRow, errors: RowErrors) -> bool:
    if row.wecom_userid and not row.phone and not row.email:
        errors.add(RowError(row.row, "wecom_userid", WECOM_ONLY_REASON))
        return True
    return False


def _insert_new(session: Session, values: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the holders whose (team, external_id) is not taken; external_id -> id of those
    inserted. Set-based, never one ORM object per row: the bulk of a large first import."""
    inserted = insert_many(session, table_of(Holder), values, ("team_id", "external_id"), ("external_id", "id"),
                           stamped=("created_at", "updated_at"))
    return {external_id: holder_id for external_id, holder_id in inserted}


def _new_holder(team: Team, row: RosterRow, address_fp: str | None) -> dict[str, Any]:
    """INSERT values for a new holder; next_due_on keeps its default (DUE_NOW): the next scan
    evaluates the holder unless registration handlers already did."""
    return {
        "team_id": team.id,
        "external_id": row.external_id,
        "phone": row.phone,
        "expires_on": row.expires_on,
        "address_fingerprint": address_fp,
        "employer": row.employer,
        "changed_since_endorsement": "",
        **{c: getattr(row, c) for c in _PLAIN},
    }


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _apply_row(holder: Holder, row: RosterRow, address_fp: str | None) -> list[FieldChange]:
    """Copy the columns present in the file onto the holder (not expires_on); what changed."""
    changes: list[FieldChange] = []
    tracked = {"address": ("address_fingerprint", address_fp), "employer": ("employer", row.employer),
               "phone": ("phone", row.phone)}
    for column, (attr, new) in tracked.items():
        if column not in row.present:
            continue
        old = getattr(holder, attr)
        if old != new:
            # Only a known value replaced by another known value is a change of circumstances;
            # filling in a blank, or leaving a cell empty, is not.
            if old is not None and new is not None:
                holder.changed_since_endorsement = ",".join(sorted(holder.changed_fields | {column}))
            setattr(holder, attr, new)
            changes.append(FieldChange(column, None, None, hidden=True) if column == "address"
                           else FieldChange(column, _text(old), _text(new)))
    for column in _PLAIN:
        new = getattr(row, column)
        if column in row.present and getattr(holder, column) != new:
            changes.append(FieldChange(column, _text(getattr(holder, column)), _text(new)))
            setattr(holder, column, new)
    return changes
