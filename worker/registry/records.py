"""Registry operations: teams, renewal confirmation, deletion (roster import: worker.registry.roster_import).

Each function works inside the caller's session (unit of work); nothing here commits.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifiers.registry import address_problem
from schedules.accumulation import accumulation_after_renewal, held_since
from schedules.policy import CHANNELS
from schedules.vocabulary import reason_text
from worker.registry import audit
from worker.registry.errors import BadInput, NotFound
from worker.registry.tokens import find_token, rotate_default
from worker.store.db import rows_changed, unit_of_work
from worker.store.maintenance import checkpoint_after_erasure
from worker.store.models import DUE_NOW, Holder, Notification, Team, utcnow
from worker.store.privacy import CONTROL_REASON, control_characters
from worker.store.statuses import NoteStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the renewal day, as the permit office counts it
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
__all__ = ["EMAIL", "BadInput", "NotFound"]  # the errors live in errors.py; most callers import them here


def create_team(session: Session, slug: str, name: str, hr_email: str | None, channels: str | None = None) -> Team:
    if not SLUG.match(slug):
        raise BadInput(f"team slug {slug!r} must be lowercase letters, digits and dashes (max 63)")
    if not name.strip():
        raise BadInput("team name must not be empty")
    if control_characters(name):
        raise BadInput(f"team name: {CONTROL_REASON}")
    if hr_email is not None and not EMAIL.match(hr_email):
        raise BadInput(f"--hr-email {hr_email!r} is not an email address")
    if session.scalar(select(Team.id).where(Team.slug == slug)) is not None:
        raise BadInput(f"team {slug!r} already exists")
    team = Team(slug=slug, name=name.strip(), hr_email=hr_email,
                channels=parse_channels(channels) if channels else None)
    session.add(team)
    session.flush()
    return team


def parse_channels(text: str, option: str = "--channels") -> str:
    """A channel order as typed ("wecom,sms,email"), checked and stored as a comma list."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in CHANNELS]
    if not names or unknown:
        raise BadInput(f"{option} {text!r}: expected a comma-separated list of {', '.join(CHANNELS)}")
    if len(set(names)) != len(names):
        raise BadInput(f"{option} {text!r}: a channel is listed twice")
    return ",".join(names)


def check_robot_url(url: str) -> str:
    """A WeCom group robot's webhook URL, as the robot notifier will accept it."""
    problem = address_problem("wecom_robot", url)
    if problem is not None:
        raise BadInput(f"--hr-wecom-webhook: {problem} (e.g. https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...)")
    return url.strip()


def update_team(session: Session, team: Team, *, name: str | None = None, hr_email: str | None = None,
                channels: str | None = None, hr_wecom_webhook: str | None = None) -> list[str]:
    """Change a team's settings; returns what changed, by field (an empty string clears
    hr_email, channels or the robot). A new channel order applies to touches planned from now on."""
    changed: list[str] = []
    if name is not None:
        if not name.strip() or control_characters(name):
            raise BadInput("team name must not be empty or hold control characters")
        team.name, changed = name.strip(), [*changed, "name"]
    if hr_email is not None:
        if hr_email and not EMAIL.match(hr_email):
            raise BadInput(f"--hr-email {hr_email!r} is not an email address")
        team.hr_email, changed = hr_email or None, [*changed, "hr_email"]
    if channels is not None:
        team.channels, changed = (parse_channels(channels) if channels else None), [*changed, "channels"]
    if hr_wecom_webhook is not None:
        team.hr_wecom_webhook = check_robot_url(hr_wecom_webhook) if hr_wecom_webhook else None
        changed.append("hr_wecom_webhook")
    return changed


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
        .where(Notification.holder_id == holder_id, Notification.status == NoteStatus.PENDING)
        .values(status=NoteStatus.CANCELLED, status_reason=reason, updated_at=utcnow())
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


def issue_token(session: Session, team: Team, created_by: str = "teams create") -> str:
    """The team's `default` write API token, new or replacing the old; only its hash is kept."""
    return rotate_default(session, team, created_by)


def team_for_token(session: Session, token: str) -> Team | None:
    row = find_token(session, token)
    return row.team if row is not None else None


# An endorsement extends a permit by a year; a new expiry further out than this is likely a typo.
FAR_RENEWAL_MONTHS = 13


def far_renewal(current: date, new: date) -> bool:
    """The new expiry is more than 13 months after the current one: ask before recording it."""
    months = current.month - 1 + FAR_RENEWAL_MONTHS
    year, month = current.year + months // 12, months % 12 + 1
    limit = date(year, month, min(current.day, monthrange(year, month)[1]))
    return new > limit


def confirm_renewal(session: Session, team: Team, external_id: str, new_expires_on: date,
                    confirm_far: bool = True) -> Holder:
    holder = get_holder(session, team, external_id)
    if not confirm_far and far_renewal(holder.expires_on, new_expires_on):
        raise BadInput(
            f"--expires-on {new_expires_on} is more than {FAR_RENEWAL_MONTHS} months after the current expiry "
            f"{holder.expires_on} (an endorsement extends the permit by a year): check the date, or pass --yes")
    if new_expires_on <= holder.expires_on:
        raise BadInput(
            f"--expires-on {new_expires_on} must be after the current expiry {holder.expires_on} "
            "(an endorsement extends the permit)"
        )
    start_new_cycle(session, holder, new_expires_on, reason_text("renewal_confirmed"))
    return holder


# The longest pause: a parental leave or a secondment; anything longer is a typo or a leaver.
MAX_PAUSE_DAYS = 2 * 366


def pause_holder(session: Session, team: Team, external_id: str, until: date, reason: str | None,
                 today: date) -> Holder:
    """Send the holder nothing up to and including `until` (BadInput: not in the future, too far,
    or a reason that cannot be stored). Unsent reminders wait for the pause's end."""
    holder = get_holder(session, team, external_id)
    if until < today:
        raise BadInput(f"--until {until} is in the past (today is {today})", "pause_past",
                       until=until.isoformat(), today=today.isoformat())
    if (until - today).days > MAX_PAUSE_DAYS:
        raise BadInput(f"--until {until} is more than two years away: for someone who left, delete them instead",
                       "pause_too_far", until=until.isoformat())
    text = (reason or "").strip() or None
    if text is not None and (len(text) > 200 or control_characters(text)):
        raise BadInput(f"--reason must be at most 200 characters of text ({CONTROL_REASON.split(' (')[0]} or too long)",
                       "pause_reason")
    holder.paused_until, holder.pause_reason = until, text
    holder.next_due_on = until + timedelta(days=1)  # planning looks again the day after
    return holder


def resume_holder(session: Session, team: Team, external_id: str, now: datetime) -> Holder:
    """End a pause now: what is due today goes out (the latest touch, never the backlog), and
    reminders held for the pause's end are due at once."""
    holder = get_holder(session, team, external_id)
    if holder.paused_until is None:
        raise BadInput(f"{external_id} is not paused", "not_paused")
    holder.paused_until, holder.pause_reason = None, None
    holder.next_due_on = DUE_NOW
    session.execute(update(Notification).where(
        Notification.holder_id == holder.id, Notification.status == NoteStatus.PENDING,
        Notification.next_attempt_at > now).values(next_attempt_at=now, updated_at=utcnow()))
    return holder


def delete_holder(session: Session, team: Team, external_id: str, actor: str = "system",
                  why: str | None = None) -> None:
    """Deletion really deletes: the holder row, and with it every notification and attempt; the
    audit trail keeps its entries without the holder's personal data. Callers go through
    `erase_holder`, which also clears the data from SQLite's WAL."""
    holder = get_holder(session, team, external_id)
    audit.scrub_holder(session, holder.id)
    audit.record(session, team.id, actor, "holder.deleted", holder=external_id,
                 changes={"reason": why} if why else None)
    session.execute(delete(Notification).where(Notification.holder_id == holder.id))
    session.delete(holder)


def holder_ids(session: Session, team: Team, external_ids: list[str]) -> dict[str, int]:
    """external_id -> id for those of the team's holders, read 500 at a time."""
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), 500):
        found.update((e, i) for e, i in session.execute(select(Holder.external_id, Holder.id).where(
            Holder.team_id == team.id, Holder.external_id.in_(external_ids[start:start + 500]))))
    return found


def erase_holder(factory: sessionmaker[Session], engine: Engine, team_id: int, external_id: str,
                 actor: str = "system") -> None:
    """Delete a holder (NotFound if not the team's) and, once committed, checkpoint SQLite's WAL
    so the deleted rows are gone from the disk, not only from the table."""
    with unit_of_work(factory) as session:
        team = session.get(Team, team_id)
        if team is None:
            raise NotFound("no such team")
        delete_holder(session, team, external_id, actor)
    checkpoint_after_erasure(engine)


def leavers(session: Session, team: Team, in_file: set[str]) -> list[str]:
    """The team's holders a complete roster no longer lists (external ids, in order)."""
    return sorted(set(session.scalars(select(Holder.external_id).where(Holder.team_id == team.id))) - in_file)


def delete_leavers(session: Session, team: Team, external_ids: list[str], actor: str = "system") -> int:
    """Delete them (and their notifications and attempts) in the caller's transaction; the caller
    checkpoints the WAL after commit (checkpoint_after_erasure), as for one erasure."""
    for external_id in external_ids:
        delete_holder(session, team, external_id, actor, why="not in a complete roster")
    return len(external_ids)


def holders_of(session: Session, team: Team, expires_before: date | None = None) -> list[Holder]:
    query = select(Holder).where(Holder.team_id == team.id)
    if expires_before is not None:
        query = query.where(Holder.expires_on < expires_before)
    return list(session.scalars(query.order_by(Holder.expires_on, Holder.id)))
