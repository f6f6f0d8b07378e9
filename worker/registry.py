"""Registry operations: teams, roster import, renewal confirmation, deletion.

Each function works inside the caller's session (unit of work); nothing here commits.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from schedules.accumulation import accumulation_after_renewal, held_since
from worker.bulk import any_of, insert_many, is_postgresql, table_of
from worker.db import rows_changed
from worker.events import Event, HolderRegistered, HolderUpdated, RenewalConfirmed
from worker.fingerprint import fingerprint, fingerprint_key
from worker.models import DUE_NOW, Holder, Notification, Team, utcnow
from worker.roster import RosterRow

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the renewal day, as the permit office counts it
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BadInput(ValueError):
    """Input a user can fix: the CLI prints it as one line and exits 2."""


class NotFound(BadInput):
    pass


# Rows written per round trip in an import: big enough for few statements, small enough that a
# chunk's rows, ORM objects and events stay a few MB.
IMPORT_CHUNK = 2000


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)  # expires_on moved later: a new cycle
    # What happened, for the handlers that act on it at once (re-evaluation, enqueue).
    events: list[Event] = field(default_factory=list)


@dataclass
class ImportCounts:
    """What a chunked import did, as counts only (no per-row lists: memory stays flat)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    renewed: int = 0

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged

    def add(self, part: ImportSummary, on_chunk: Callable[[ImportSummary], object]) -> None:
        self.created += len(part.created)
        self.updated += len(part.updated)
        self.unchanged += len(part.unchanged)
        self.renewed += len(part.renewed)
        on_chunk(part)


def create_team(session: Session, slug: str, name: str, hr_email: str | None) -> Team:
    if not SLUG.match(slug):
        raise BadInput(f"team slug {slug!r} must be lowercase letters, digits and dashes (max 63)")
    if not name.strip():
        raise BadInput("team name must not be empty")
    if hr_email is not None and not EMAIL.match(hr_email):
        raise BadInput(f"--hr-email {hr_email!r} is not an email address")
    if session.scalar(select(Team.id).where(Team.slug == slug)) is not None:
        raise BadInput(f"team {slug!r} already exists")
    team = Team(slug=slug, name=name.strip(), hr_email=hr_email)
    session.add(team)
    session.flush()
    return team


def get_team(session: Session, slug: str) -> Team:
    team = session.scalar(select(Team).where(Team.slug == slug))
    if team is None:
        raise NotFound(f"no team {slug!r} (create it with: permit-worker teams create {slug} --name NAME)")
    return team


def get_holder(session: Session, team: Team, external_id: str) -> Holder:
    holder = session.scalar(select(Holder).where(Holder.team_id == team.id, Holder.external_id == external_id))
    if holder is None:
        raise NotFound(f"no holder {external_id!r} in team {team.slug!r}")
    return holder


def cancel_pending(session: Session, holder_id: int, reason: str, keep_cycle: date | None = None) -> int:
    """Cancel the holder's unsent notifications (all, or all but those of `keep_cycle`)."""
    stmt = (
        update(Notification)
        .where(Notification.holder_id == holder_id, Notification.status == "pending")
        .values(status="cancelled", status_reason=reason, updated_at=utcnow())
    )
    if keep_cycle is not None:
        stmt = stmt.where(Notification.cycle_expires_on != keep_cycle)
    return rows_changed(session.execute(stmt))


def start_new_cycle(session: Session, holder: Holder, new_expires_on: date, reason: str,
                    renewed_on: date | None = None) -> None:
    """A confirmed endorsement: the holder is valid again and nothing more goes out for the old cycle.

    Endorsed more than 60 days late, the accumulated years restart on the renewal day (RULES.md).
    """
    renewed_on = renewed_on or datetime.now(SHANGHAI).date()
    started = held_since(holder.accumulation_started_on, holder.created_at.date() if holder.created_at else None)
    if started is not None:
        holder.accumulation_started_on = accumulation_after_renewal(started, holder.expires_on, renewed_on)
    holder.expires_on = new_expires_on
    holder.changed_since_endorsement = ""  # the endorsement brought the permit's data up to date
    holder.next_due_on = DUE_NOW
    session.flush()
    cancel_pending(session, holder.id, reason, keep_cycle=new_expires_on)


def issue_token(session: Session, team: Team) -> str:
    """A new API bearer token for the team; only its hash is kept, so show it once."""
    token = f"pwt_{secrets.token_urlsafe(32)}"
    team.token_hash = token_hash(token)
    session.flush()
    return token


def token_hash(token: str) -> str:
    # Tokens are 256 random bits: a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def team_for_token(session: Session, token: str) -> Team | None:
    return session.scalar(select(Team).where(Team.token_hash == token_hash(token)))


def confirm_renewal(session: Session, team: Team, external_id: str, new_expires_on: date) -> Holder:
    holder = get_holder(session, team, external_id)
    if new_expires_on <= holder.expires_on:
        raise BadInput(
            f"--expires-on {new_expires_on} must be after the current expiry {holder.expires_on} "
            "(an endorsement extends the permit)"
        )
    start_new_cycle(session, holder, new_expires_on, "renewal confirmed")
    return holder


def delete_holder(session: Session, team: Team, external_id: str) -> None:
    """Deletion really deletes: the holder row, and with it every notification and attempt."""
    holder = get_holder(session, team, external_id)
    session.execute(delete(Notification).where(Notification.holder_id == holder.id))
    session.delete(holder)


def _with_change(holder: Holder, field_name: str) -> None:
    changed = holder.changed_fields | {field_name}
    holder.changed_since_endorsement = ",".join(sorted(changed))


def import_roster(
    session: Session, team: Team, rows: Iterable[RosterRow], key_setting: str | None
) -> ImportSummary:
    """Create or update holders from validated roster rows; one summary for the whole file.

    A changed address, employer or phone on an existing holder is recorded: it makes the holder
    ineligible for auto-renewal for the rest of this cycle. A later expires_on is a renewal.
    """
    total = ImportSummary()

    def collect(part: ImportSummary) -> None:
        total.created.extend(part.created)
        total.updated.extend(part.updated)
        total.unchanged.extend(part.unchanged)
        total.renewed.extend(part.renewed)
        total.events.extend(part.events)

    import_roster_chunked(session, team, rows, key_setting, collect)
    # Registrations after updates, as before chunking: handlers see the same event order.
    total.events.sort(key=lambda e: isinstance(e, HolderRegistered))
    return total


def import_roster_chunked(
    session: Session,
    team: Team,
    rows: Iterable[RosterRow],
    key_setting: str | None,
    on_chunk: Callable[[ImportSummary], object],
    chunk_size: int = IMPORT_CHUNK,
) -> ImportCounts:
    """`import_roster` for files of any size: rows are written `chunk_size` at a time, and each
    chunk's summary goes to `on_chunk` (e.g. to act on its events) and is then dropped, so
    memory stays flat however many rows stream in. Everything happens in the caller's
    transaction: a file is still all-or-nothing."""
    if is_postgresql(session):
        # The rows this transaction writes are invisible to the planner's statistics, and psycopg
        # prepares statements it runs often; PostgreSQL's generic plan for "these ids, from an
        # array parameter" then filtered every row of the table per chunk (seconds a chunk,
        # growing as the import went). Plans made for the actual values stay on the indexes.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    key = fingerprint_key(session, key_setting)
    # A team's first import has nobody to look up: its rows go straight in. Otherwise existing
    # holders are looked up first, not found by a failed insert: on PostgreSQL every insert that
    # hits ON CONFLICT still uses up a sequence number, and a daily re-import would burn ids.
    look_first = session.scalar(select(Holder.id).where(Holder.team_id == team.id).limit(1)) is not None
    counts = ImportCounts()
    chunk: list[RosterRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_size:
            counts.add(_import_chunk(session, team, chunk, key, look_first), on_chunk)
            chunk = []
    if chunk:
        counts.add(_import_chunk(session, team, chunk, key, look_first), on_chunk)
    return counts


def _holders_by_external_id(session: Session, team: Team, external_ids: list[str]) -> dict[str, Holder]:
    """ORM objects, so changes to them are tracked (and flushed) as usual."""
    return {h.external_id: h for h in session.scalars(
        select(Holder).where(Holder.team_id == team.id, any_of(session, Holder.external_id, external_ids)))}


def _import_chunk(session: Session, team: Team, rows: list[RosterRow], key: bytes,
                  look_first: bool) -> ImportSummary:
    summary = ImportSummary()
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
            registered.append(created[row.external_id])
            continue
        holder = existing.get(row.external_id)
        if holder is None:  # it conflicted, then vanished: deleted meanwhile by someone else
            raise BadInput(f"row {row.row}: external_id: {row.external_id!r} changed while importing; try again")
        before = holder.changed_fields
        if _apply_row(session, holder, row, fingerprints[row.external_id]):
            holder.next_due_on = DUE_NOW  # facts changed: the next scan re-evaluates, at the latest
            summary.updated.append(row.external_id)
            summary.events.append(HolderUpdated(holder.id, holder.changed_fields - before))
        else:
            summary.unchanged.append(row.external_id)
        if row.expires_on > holder.expires_on:
            start_new_cycle(session, holder, row.expires_on, "renewed (roster import)")
            summary.renewed.append(row.external_id)
            summary.events.append(RenewalConfirmed(holder.id))
        elif row.expires_on != holder.expires_on:  # a correction: the old cycle's touches are wrong
            holder.expires_on = row.expires_on
            session.flush()
            cancel_pending(session, holder.id, "expiry corrected (roster import)", keep_cycle=row.expires_on)
    session.flush()
    summary.events.extend(HolderRegistered(holder_id) for holder_id in registered)
    return summary


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
        "name": row.name,
        "phone": row.phone,
        "email": row.email,
        "expires_on": row.expires_on,
        "housing_type": row.housing_type,
        "rental_registration_ends_on": row.rental_registration_ends_on,
        "address_fingerprint": address_fp,
        "employer": row.employer,
        "locale": row.locale,
        "changed_since_endorsement": "",
        **{c: getattr(row, c) for c in _POINTS_COLUMNS},
    }


_POINTS_COLUMNS = ("accumulation_started_on", "points_basis", "points_valid_until", "labor_contract_ends_on",
                   "labor_contract_starts_on")


def _apply_row(session: Session, holder: Holder, row: RosterRow, address_fp: str | None) -> bool:
    """Copy the columns present in the file onto the holder; True if anything changed."""
    changed = holder.expires_on != row.expires_on
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
                _with_change(holder, column)
            setattr(holder, attr, new)
            changed = True
    plain = {"name": row.name, "email": row.email, "housing_type": row.housing_type,
             "rental_registration_ends_on": row.rental_registration_ends_on, "locale": row.locale,
             **{c: getattr(row, c) for c in _POINTS_COLUMNS}}
    for column, new in plain.items():
        if column in row.present and getattr(holder, column) != new:
            setattr(holder, column, new)
            changed = True
    if not holder.phone and not holder.email:
        raise BadInput(f"row {row.row}: phone: phone or email is required")
    return changed


def holders_of(session: Session, team: Team) -> list[Holder]:
    return list(session.scalars(select(Holder).where(Holder.team_id == team.id).order_by(Holder.expires_on, Holder.id)))
