"""The daily HR digest: at most one email per team and working day, only when something needs HR.

Every run (the daemon calls this every 30 minutes) looks at each team with an HR address. Once
the digest time has passed on a working day, it gathers what needs attention; when there is
something, a DigestRun row for (team, day) is inserted before sending. That unique key, not
the scheduler, is what keeps it to one email a day across any number of replicas: whoever
inserts the row sends, everyone else skips. A failed send deletes the row again (and releases
the HR events), so a later run the same day retries; an empty day records nothing, so an
event arriving in the afternoon still produces that day's digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, false, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from notifiers.base import Message, Notifier, SendResult, SendStatus
from schedules.digest import (
    DigestContent,
    DigestFailure,
    DigestLine,
    HrNoticeItem,
    PointsDigestLine,
    render_digest,
)
from schedules.points import points_touch_day, points_touch_due
from schedules.policy import Policy
from schedules.stages import (
    ACCUMULATION_RESET,
    EXPIRED_GRACE,
    LAPSED,
    RENEW_IN_PERSON,
    key_dates,
)
from schedules.workdays import has_official_data, is_working_day
from worker.delivery.hr_events import claim_hr_events, settle_hr_events
from worker.planning.evaluation import evaluate_holder, holder_today
from worker.store.db import unit_of_work
from worker.store.models import DigestRun, Holder, Notification, Team, utcnow
from worker.store.statuses import DigestStatus, NoteStatus

log = structlog.get_logger("worker.digest")

FIRST_DIGEST_LOOKBACK = timedelta(hours=24)
_OVERDUE = (EXPIRED_GRACE, ACCUMULATION_RESET)
# Provider errors can quote the recipient; the digest names holders by external_id only.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d[\d\s-]{6,}\d")


@dataclass(frozen=True)
class _Previous:
    """Where the last digest that went out leaves off: "new since then" is measured from here."""

    day: date
    at: datetime


def send_digests(factory: sessionmaker[Session], email: Notifier, policy: Policy, default_zone: ZoneInfo,
                 now: datetime | None = None, digest_time: time = time(9, 30), robot: Notifier | None = None) -> int:
    """Send today's digest to every team that needs one, by email and, where the team has one,
    to its WeCom group robot; returns how many teams' digests went out."""
    now = now or utcnow()
    local = now.astimezone(default_zone)
    day = local.date()
    if local.time() < digest_time or not is_working_day(day):
        return 0
    with unit_of_work(factory) as session:
        has_email = Team.hr_email.is_not(None) & (Team.hr_email != "")
        has_robot = Team.hr_wecom_webhook.is_not(None) if robot is not None else false()
        team_ids = list(session.scalars(select(Team.id).where(has_email | has_robot).order_by(Team.id)))
    return sum(_digest_team(factory, email, policy, default_zone, team_id, day, now, robot) == "sent"
               for team_id in team_ids)


def _digest_team(factory: sessionmaker[Session], email: Notifier, policy: Policy, zone: ZoneInfo,
                 team_id: int, day: date, now: datetime, robot: Notifier | None = None) -> str:
    official = has_official_data(day.year)
    try:
        with unit_of_work(factory) as session:
            team = session.get(Team, team_id)
            if team is None or not (team.hr_email or (robot is not None and team.hr_wecom_webhook)):
                return "no_address"
            if session.scalar(select(DigestRun.status).where(DigestRun.team_id == team_id,
                                                             DigestRun.digest_date == day)) is not None:
                # "sending" too: another process is on it, or crashed mid-send, in which case the
                # email may have left; a second one would break the one-a-day promise.
                log.debug("digest.skipped", team_id=team_id, day=day.isoformat(), outcome="already_done")
                return "already_done"
            content, event_ids = _gather(session, team, policy, zone, day, now)
            if content.is_empty:
                log.debug("digest.skipped", team_id=team_id, day=day.isoformat(), outcome="nothing")
                return "nothing"
            session.add(DigestRun(team_id=team_id, digest_date=day, status=DigestStatus.SENDING,
                                  items=content.item_count, created_at=now))
            session.flush()  # the unique (team, day) key decides here who sends
            hr_email, hr_robot = team.hr_email, team.hr_wecom_webhook if robot is not None else None
    except IntegrityError:
        # Another replica inserted the row first; our claims rolled back with the transaction.
        log.info("digest.skipped", team_id=team_id, day=day.isoformat(), outcome="taken")
        return "taken"

    subject, body = render_digest(content)
    key = f"digest-{team_id}-{day.isoformat()}"
    results: list[SendResult] = []
    if hr_email:
        results.append(_send(email, Message(channel="email", to=hr_email, subject=subject, body=body,
                                            idempotency_key=key), team_id))
    if hr_robot and robot is not None:
        # The group robot's markdown: the subject as a heading, the same lines below it.
        robot_result = _send(robot, Message(channel="wecom_group", to=hr_robot, subject=subject,
                                            body=f"### {subject}\n{body}", idempotency_key=key), team_id)
        (log.info if robot_result.status is SendStatus.SENT else log.warning)(
            "digest.wecom_group", team_id=team_id, status=robot_result.status.value, error=_scrub(robot_result.error))
        results.append(robot_result)
    # Sent if it reached HR anywhere: a retry would repeat it where it did arrive. The email's
    # own failure is said, so an operator sees it even when the group got the digest.
    result = next((r for r in results if r.status is SendStatus.SENT), results[0])
    if hr_email and hr_robot and results[0].status is not SendStatus.SENT and result.status is SendStatus.SENT:
        log.warning("digest.email_failed", team_id=team_id, status=results[0].status.value,
                    error=_scrub(results[0].error), delivered_to="wecom_group")
    sent = result.status is SendStatus.SENT
    this_run = (DigestRun.team_id == team_id) & (DigestRun.digest_date == day)
    with unit_of_work(factory) as session:
        if sent:
            session.execute(update(DigestRun).where(this_run).values(status=DigestStatus.SENT))
        else:
            session.execute(delete(DigestRun).where(this_run, DigestRun.status == DigestStatus.SENDING))
        settle_hr_events(session, event_ids, now if sent else None)
    (log.info if sent else log.warning)(
        "digest", team_id=team_id, day=day.isoformat(), outcome="sent" if sent else "retry_later",
        status=result.status.value, error=_scrub(result.error), items=content.item_count,
        entering_in_person=len(content.entering_in_person), overdue=len(content.overdue),
        newly_lapsed=len(content.newly_lapsed), failed=len(content.failed), events=len(content.events),
        official_calendar=official,
    )
    return "sent" if sent else "failed"


def _send(notifier: Notifier, message: Message, team_id: int) -> SendResult:
    try:
        return notifier.send(message)
    except Exception as exc:  # a notifier bug must not leave the day's row stuck in "sending"
        log.exception("digest.notifier_error", team_id=team_id, notifier=notifier.name)
        return SendResult.transient(f"notifier raised {type(exc).__name__}")


def _previous(session: Session, team_id: int, day: date, now: datetime) -> _Previous:
    run = session.scalar(
        select(DigestRun).where(DigestRun.team_id == team_id, DigestRun.status == DigestStatus.SENT,
                                DigestRun.digest_date < day)
        .order_by(DigestRun.digest_date.desc()).limit(1))
    if run is None:  # first digest: compare with yesterday and the last day's failures
        return _Previous(day - timedelta(days=1), now - FIRST_DIGEST_LOOKBACK)
    return _Previous(run.digest_date, run.created_at)


def _gather(session: Session, team: Team, policy: Policy, zone: ZoneInfo, day: date,
            now: datetime) -> tuple[DigestContent, list[int]]:
    """Today's content for one team, and the ids of the HR events claimed for it.

    Reads first and claims last: on SQLite the claim starts the write lock, so the holder scan
    does not hold it.
    """
    previous = _previous(session, team.id, day, now)
    entering, overdue, lapsed = _holder_lines(session, team.id, policy, zone, day, previous.day, now)
    failures = _failures(session, team.id, previous.at)
    events = claim_hr_events(session, team.id, now)
    # An unreachable holder is already an event ("contact them directly"); listing the same
    # failed reminder again under failures would only repeat it.
    unreachable = {e.holder_id for e in events if e.kind == "unreachable"}
    failed = [f for holder_id, f in failures if holder_id not in unreachable]
    at_risk, coming_up = _points_lines(session, team.id, day, previous.day)
    content = DigestContent(
        team_name=team.name, day=day, entering_in_person=entering, overdue=overdue, newly_lapsed=lapsed,
        failed=failed, events=[HrNoticeItem(e.kind, e.detail, e.created_at) for e in events],
        points=at_risk, points_coming_up=coming_up,
    )
    return content, [e.id for e in events]


def _points_lines(session: Session, team_id: int, day: date,
                  previous_day: date) -> tuple[list[PointsDigestLine], list[PointsDigestLine]]:
    """Holders whose points touch day (60 and 30 days before points_valid_until) came since the
    last digest: (at risk, with every finding for HR to act on; no risk found). Both need HR to
    prepare the renewal's materials. Reads the holders through the points_valid_until index, and
    their months in one query."""
    from worker.planning.points import points_facts_many

    window_end = day + timedelta(days=90)
    holders = list(session.scalars(select(Holder).where(
        Holder.team_id == team_id, Holder.points_valid_until >= previous_day,
        Holder.points_valid_until <= window_end).order_by(Holder.points_valid_until)))
    facts = points_facts_many(session, holders)
    at_risk: list[PointsDigestLine] = []
    coming_up: list[PointsDigestLine] = []
    for holder in holders:
        renewal_on = holder.points_valid_until
        touch_day = points_touch_day(renewal_on, day)
        if renewal_on is None or touch_day is None or renewal_on + timedelta(days=touch_day) <= previous_day:
            continue
        touch = points_touch_due(facts[holder.id], day)
        if touch is not None and touch.findings:
            at_risk.append(PointsDigestLine(holder.external_id, holder.name, renewal_on, touch.findings))
        else:
            coming_up.append(PointsDigestLine(holder.external_id, holder.name, renewal_on, ()))
    return at_risk, coming_up


def _holder_lines(session: Session, team_id: int, policy: Policy, zone: ZoneInfo, day: date, previous_day: date,
                  now: datetime) -> tuple[list[DigestLine], list[DigestLine], list[DigestLine]]:
    """(entering renew_in_person, overdue, newly lapsed), each in order of expiry."""
    entering: list[DigestLine] = []
    overdue: list[DigestLine] = []
    lapsed: list[DigestLine] = []
    gap = day - previous_day
    holders = session.scalars(select(Holder).where(Holder.team_id == team_id)
                              .order_by(Holder.expires_on, Holder.external_id))
    for holder in holders:
        # Each holder's own calendar day; "previous" is the same distance back for them.
        today = holder_today(holder, now, zone)
        stage = evaluate_holder(holder, today, policy).stage
        if stage not in (RENEW_IN_PERSON, LAPSED, *_OVERDUE):
            continue  # most holders: no second evaluation needed
        before = evaluate_holder(holder, today - gap, policy).stage
        if stage == RENEW_IN_PERSON and before != RENEW_IN_PERSON:
            entering.append(_line(holder, stage, today, policy))
        elif stage in _OVERDUE:
            overdue.append(_line(holder, stage, today, policy))
        elif stage == LAPSED and before != LAPSED:
            lapsed.append(_line(holder, stage, today, policy))
    return entering, overdue, lapsed


def _line(holder: Holder, stage: str, today: date, policy: Policy) -> DigestLine:
    dates = key_dates(holder.expires_on, policy)
    deadline = {RENEW_IN_PERSON: holder.expires_on, EXPIRED_GRACE: dates.get("grace_ends_on"),
                ACCUMULATION_RESET: dates.get("reset_ends_on")}.get(stage)
    return DigestLine(external_id=holder.external_id, name=holder.name, stage=stage, expires_on=holder.expires_on,
                      days_left=(holder.expires_on - today).days, deadline=deadline)


def _failures(session: Session, team_id: int, since: datetime) -> list[tuple[int, DigestFailure]]:
    rows = session.execute(
        select(Notification, Holder.external_id).join(Holder, Holder.id == Notification.holder_id)
        .where(Holder.team_id == team_id, Notification.status == NoteStatus.FAILED, Notification.updated_at >= since)
        .order_by(Notification.updated_at, Notification.id)
    ).all()
    return [(note.holder_id, DigestFailure(external_id=external_id, stage=note.stage, touch_day=note.touch_day,
                                           channel=note.channel, reason=_scrub(note.status_reason)))
            for note, external_id in rows]


def _scrub(reason: str | None) -> str | None:
    if not reason:
        return None
    return _PHONE.sub("[number]", _EMAIL.sub("[address]", reason))[:160]
