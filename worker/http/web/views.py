"""What the pages show, read from the registry: stage counts, who needs attention, search, detail.

Every query here is scoped to one team id taken from the signed session, never from the URL,
so another team's holder is "not found", exactly as in the API.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from schedules.policy import Policy
from schedules.stages import (
    ACCUMULATION_RESET,
    EXPIRED_GRACE,
    LAPSED,
    RENEW_IN_PERSON,
    STAGES,
    Evaluation,
    key_dates,
)
from worker.ops.runtime import Runtime
from worker.planning.evaluation import evaluate_holder, holder_today
from worker.planning.stage_counts import stage_counts
from worker.planning.team_rows import STAGE_COLUMNS, Evaluator, HolderLike, in_stage, page_ids, rows_by_id
from worker.store.models import Holder, Notification
from worker.store.statuses import NoteStatus

# An opt-out stays on the attention list this long (HR should notice it and maybe collect an
# email); a holder who opted out and has no email stays on it for good: nothing reaches them.
OPT_OUT_NOTICE = timedelta(days=30)
_FAILED_DELIVERY = ("undelivered", "failed")
# Ties on the deadline: the worse situation first.
_SEVERITY = {"overdue": 0, "renew_in_person": 1, "failed": 2, "opted_out": 3}
PAGE_SIZE = 50
# The overview lists this many of the nearest deadlines; the rest are a click away (by stage).
ATTENTION_SHOWN = 200


@dataclass(frozen=True)
class HolderView:
    external_id: str
    name: str | None
    phone: str | None
    email: str | None
    stage: str
    expires_on: date
    days_left: int
    eligible: bool
    reasons: tuple[str, ...]
    auto_renewal: str = "eligible"  # eligible | not_eligible | not_applicable (expired)


@dataclass
class AttentionItem:
    holder: HolderView
    why: list[str]
    deadline: date
    deadline_kind: str  # expires_on | grace_ends_on | reset_ends_on: what the date is
    days_to_deadline: int


@dataclass
class Overview:
    today: date
    total: int
    counts: dict[str, int]
    attention: list[AttentionItem] = field(default_factory=list)
    this_week: int = 0  # attention items whose deadline is at most 7 days away (or past)
    attention_total: int = 0  # how many need attention; `attention` holds the first ATTENTION_SHOWN


def view_from(row: HolderLike, ev: Evaluation) -> HolderView:
    """A holder (ORM object or plain row) and their evaluation, as the pages show them."""
    return HolderView(row.external_id, row.name, row.phone, row.email, ev.stage, row.expires_on,
                      ev.days_left, ev.eligibility.eligible, ev.eligibility.reasons, ev.auto_renewal)


def view_of(holder: Holder, runtime: Runtime, now: datetime) -> HolderView:
    ev = evaluate_holder(holder, holder_today(holder, now, runtime.settings.tz), runtime.policy)
    return view_from(holder, ev)


def _failed_holders(session: Session, team_id: int) -> set[int]:
    """Holders whose latest attempted reminder of the current cycle did not arrive. Only holders
    with a failure in the current cycle are read (indexed: a failure is rare), then their cycle's
    attempts, to see whether a later one got through."""
    failures = (select(Notification.holder_id).join(Holder, Holder.id == Notification.holder_id)
                .where(Holder.team_id == team_id, Notification.cycle_expires_on == Holder.expires_on,
                       or_(Notification.status == NoteStatus.FAILED,
                           Notification.delivery_status.in_(_FAILED_DELIVERY))))
    rows = session.execute(
        select(Notification.holder_id, Notification.status, Notification.delivery_status)
        .join(Holder, Holder.id == Notification.holder_id)
        .where(Notification.holder_id.in_(failures), Notification.cycle_expires_on == Holder.expires_on,
               Notification.status.in_((NoteStatus.SENT, NoteStatus.FAILED)))
        .order_by(Notification.holder_id, Notification.created_at, Notification.id))
    latest: dict[int, bool] = {}
    for holder_id, status, delivery in rows:  # later rows overwrite: the last one counts
        latest[holder_id] = status == NoteStatus.FAILED or delivery in _FAILED_DELIVERY
    return {holder_id for holder_id, failed in latest.items() if failed}


def _deadline(stage: str, expires_on: date, policy: Policy) -> tuple[date, str]:
    """The date HR must act by: expiry, else the end of grace or of the accumulation reset."""
    kind = {EXPIRED_GRACE: "grace_ends_on", ACCUMULATION_RESET: "reset_ends_on"}.get(stage, "expires_on")
    dates = key_dates(expires_on, policy)
    return (dates[kind], kind) if kind in dates else (expires_on, "expires_on")


def _candidates(session: Session, team_id: int, evaluator: Evaluator, now: datetime,
                failed: set[int]) -> dict[int, tuple[HolderLike, Evaluation]]:
    """Who may need attention, by bounded reads (STAGE_COLUMNS rows): holders in the overdue and
    in-person stages (only their expiry windows are read), failed deliveries, opt-outs."""
    found: dict[int, tuple[HolderLike, Evaluation]] = {}
    for stage in (EXPIRED_GRACE, ACCUMULATION_RESET, RENEW_IN_PERSON):
        found.update((row.id, (row, ev)) for row, ev in in_stage(session, team_id, evaluator, stage))
    no_email = or_(Holder.email.is_(None), Holder.email == "")
    others = session.execute(select(*STAGE_COLUMNS).where(Holder.team_id == team_id, or_(
        Holder.id.in_(failed),
        and_(Holder.sms_opted_out_at.is_not(None), or_(no_email, Holder.sms_opted_out_at >= now - OPT_OUT_NOTICE)))))
    for row in others:
        if row.id not in found:
            found[row.id] = (row, evaluator.stage_of_row(row))
    return found


def overview(session: Session, team_id: int, runtime: Runtime, now: datetime) -> Overview:
    """Counts by stage (GROUP BY) and who needs attention (bounded reads), never the whole team:
    the candidates are read with only the columns that decide and sort the list, and only the
    ATTENTION_SHOWN nearest deadlines are then read in full; `attention_total` says how many."""
    evaluator = Evaluator(runtime.policy, runtime.settings.tz, now)
    today = evaluator.today()
    failed = _failed_holders(session, team_id)
    counts: Counter[str] = Counter({s: 0 for s in STAGES})
    counts.update(stage_counts(session, team_id, runtime.policy, runtime.settings.tz, now))
    result = Overview(today=today, total=sum(counts.values()), counts=dict(counts))
    deadlines: dict[tuple[str, date], tuple[date, str]] = {}
    pending: list[tuple[int, int, str, int, list[str], date, str]] = []
    for holder_id, (row, ev) in _candidates(session, team_id, evaluator, now, failed).items():
        why = []
        if ev.stage in (EXPIRED_GRACE, ACCUMULATION_RESET):
            why.append("overdue")
        elif ev.stage == RENEW_IN_PERSON:
            why.append("renew_in_person")
        if holder_id in failed and ev.stage != LAPSED:
            why.append("failed")
        opted = row.sms_opted_out_at
        if opted is not None and ev.stage != LAPSED and (not row.email or now - opted <= OPT_OUT_NOTICE):
            why.append("opted_out")
        if why:
            key = (ev.stage, row.expires_on)
            if key not in deadlines:
                deadlines[key] = _deadline(ev.stage, row.expires_on, runtime.policy)
            deadline, kind = deadlines[key]
            days = (deadline - today).days
            pending.append((days, min(_SEVERITY[w] for w in why), row.external_id, holder_id, why, deadline, kind))
    pending.sort(key=itemgetter(0, 1, 2))
    result.attention_total = len(pending)
    result.this_week = sum(1 for p in pending if p[0] <= 7)
    shown = pending[:ATTENTION_SHOWN]
    full = {row.id: row for row in rows_by_id(session, [p[3] for p in shown])}
    for days, _, _, holder_id, why, deadline, kind in shown:
        if holder_id in full:  # else deleted in between
            row = full[holder_id]
            result.attention.append(AttentionItem(view_from(row, evaluator.of(row)), why, deadline, kind, days))
    return result


@dataclass
class SearchPage:
    items: list[HolderView]
    total: int
    page: int
    pages: int


def search(session: Session, team_id: int, runtime: Runtime, now: datetime, q: str, stage: str | None,
           page: int) -> SearchPage:
    """One page of the team's holders matching `q` (id, name, phone, email) and `stage`: a count
    and a LIMIT through SQL (team_rows.page_ids), as the API's list."""
    where: ColumnElement[bool] | None = None
    q = q.strip()
    if q:
        # LIKE wildcards in the search text are taken literally.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches: list[ColumnElement[bool]] = [column.ilike(like, escape="\\") for column in
                   (Holder.external_id, Holder.name, Holder.phone, Holder.email)]
        digits = re.sub(r"[\s-]", "", q)
        if re.fullmatch(r"[0-9]+", digits):  # "138 0013 8000" as HR writes it; phones are stored as +86...
            matches.append(Holder.phone.contains(digits))
        where = or_(*matches)
    evaluator = Evaluator(runtime.policy, runtime.settings.tz, now)
    stage = stage if stage in STAGES else None
    page = max(1, page)
    total, ids = page_ids(session, team_id, evaluator, stage=stage, where=where,
                          offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    if page > pages:  # past the end (a stale link): the last page instead
        page = pages
        _, ids = page_ids(session, team_id, evaluator, stage=stage, where=where,
                          offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return SearchPage([view_from(r, evaluator.of(r)) for r in rows_by_id(session, ids)], total, page, pages)


def holder_of(session: Session, team_id: int, external_id: str) -> Holder | None:
    return session.scalar(select(Holder).where(Holder.team_id == team_id, Holder.external_id == external_id))


def accumulated_years(holder: Holder, today: date) -> float | None:
    """Years held since `accumulation_started_on`, one decimal; None when not known."""
    start = holder.accumulation_started_on
    if start is None or start > today:
        return None
    return round((today - start).days / 365.25, 1)


def national_phone(phone: str | None) -> str:
    """+8613800138000 -> 138 0013 8000: how HR writes and reads a mainland mobile."""
    if not phone:
        return ""
    digits = phone.removeprefix("+86")
    return f"{digits[:3]} {digits[3:7]} {digits[7:]}" if len(digits) == 11 else phone
