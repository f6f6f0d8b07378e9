"""Registry operations: teams, roster import, renewal confirmation, deletion.

Each function works inside the caller's session (unit of work); nothing here commits.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from worker.events import Event, HolderRegistered, HolderUpdated, RenewalConfirmed
from worker.fingerprint import fingerprint, fingerprint_key
from worker.models import DUE_NOW, Holder, Notification, Team, utcnow
from worker.roster import RosterRow

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BadInput(ValueError):
    """Input a user can fix: the CLI prints it as one line and exits 2."""


class NotFound(BadInput):
    pass


@dataclass
class ImportSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    renewed: list[str] = field(default_factory=list)  # expires_on moved later: a new cycle
    # What happened, for the handlers that act on it at once (re-evaluation, enqueue).
    events: list[Event] = field(default_factory=list)


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
    return session.execute(stmt).rowcount or 0


def start_new_cycle(session: Session, holder: Holder, new_expires_on: date, reason: str) -> None:
    """A confirmed endorsement: the holder is valid again and nothing more goes out for the old cycle."""
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
    session: Session, team: Team, rows: list[RosterRow], key_setting: str | None
) -> ImportSummary:
    """Create or update holders from validated roster rows.

    A changed address, employer or phone on an existing holder is recorded: it makes the holder
    ineligible for auto-renewal for the rest of this cycle. A later expires_on is a renewal.
    """
    key = fingerprint_key(session, key_setting)
    summary = ImportSummary()
    existing = {
        h.external_id: h
        for h in session.scalars(
            select(Holder).where(Holder.team_id == team.id, Holder.external_id.in_([r.external_id for r in rows]))
        )
    }
    created: list[Holder] = []
    for row in rows:
        address_fp = fingerprint(row.address, key) if row.address else None
        holder = existing.get(row.external_id)
        if holder is None:
            holder = _new_holder(team, row, address_fp)
            session.add(holder)
            created.append(holder)
            summary.created.append(row.external_id)
            continue
        before = holder.changed_fields
        if _apply_row(session, holder, row, address_fp):
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
    summary.events.extend(HolderRegistered(h.id) for h in created)
    return summary


def _new_holder(team: Team, row: RosterRow, address_fp: str | None) -> Holder:
    return Holder(
        team_id=team.id,
        external_id=row.external_id,
        name=row.name,
        phone=row.phone,
        email=row.email,
        expires_on=row.expires_on,
        housing_type=row.housing_type,
        rental_registration_ends_on=row.rental_registration_ends_on,
        address_fingerprint=address_fp,
        employer=row.employer,
        locale=row.locale,
        changed_since_endorsement="",
    )


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
             "rental_registration_ends_on": row.rental_registration_ends_on, "locale": row.locale}
    for column, new in plain.items():
        if column in row.present and getattr(holder, column) != new:
            setattr(holder, column, new)
            changed = True
    if not holder.phone and not holder.email:
        raise BadInput(f"row {row.row}: phone: phone or email is required")
    return changed


def holders_of(session: Session, team: Team) -> list[Holder]:
    return list(session.scalars(select(Holder).where(Holder.team_id == team.id).order_by(Holder.expires_on, Holder.id)))
