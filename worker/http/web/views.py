"""What the pages show, read from the registry: stage counts, who needs attention, search, detail.

Every query here is scoped to one team id taken from the signed session, never from the URL,
so another team's holder is "not found", exactly as in the API.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from schedules.stages import (
    ACCUMULATION_RESET,
    EXPIRED_GRACE,
    LAPSED,
    RENEW_IN_PERSON,
    STAGES,
    key_dates,
)
from worker.ops.runtime import Runtime
from worker.planning.evaluation import evaluate_holder, holder_today
from worker.store.models import Holder, Notification
from worker.store.statuses import NoteStatus

# An opt-out stays on the attention list this long (HR should notice it and maybe collect an
# email); a holder who opted out and has no email stays on it for good: nothing reaches them.
OPT_OUT_NOTICE = timedelta(days=30)
_FAILED_DELIVERY = ("undelivered", "failed")
# Ties on the deadline: the worse situation first.
_SEVERITY = {"overdue": 0, "renew_in_person": 1, "failed": 2, "opted_out": 3}
PAGE_SIZE = 50


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


def view_of(holder: Holder, runtime: Runtime, now: datetime) -> HolderView:
    ev = evaluate_holder(holder, holder_today(holder, now, runtime.settings.tz), runtime.policy)
    return HolderView(holder.external_id, holder.name, holder.phone, holder.email, ev.stage, holder.expires_on,
                      ev.days_left, ev.eligibility.eligible, ev.eligibility.reasons, ev.auto_renewal)


def _failed_holders(session: Session, team_id: int) -> set[int]:
    """Holders whose latest attempted reminder of the current cycle did not arrive."""
    rows = session.execute(
        select(Notification.holder_id, Notification.status, Notification.delivery_status)
        .join(Holder, Holder.id == Notification.holder_id)
        .where(Holder.team_id == team_id, Notification.cycle_expires_on == Holder.expires_on,
               Notification.status.in_((NoteStatus.SENT, NoteStatus.FAILED)))
        .order_by(Notification.holder_id, Notification.created_at, Notification.id))
    latest: dict[int, bool] = {}
    for holder_id, status, delivery in rows:  # later rows overwrite: the last one counts
        latest[holder_id] = status == NoteStatus.FAILED or delivery in _FAILED_DELIVERY
    return {holder_id for holder_id, failed in latest.items() if failed}


def _deadline(view: HolderView, runtime: Runtime) -> tuple[date, str]:
    """The date HR must act by: expiry, else the end of grace or of the accumulation reset."""
    kind = {EXPIRED_GRACE: "grace_ends_on", ACCUMULATION_RESET: "reset_ends_on"}.get(view.stage, "expires_on")
    dates = key_dates(view.expires_on, runtime.policy)
    return (dates[kind], kind) if kind in dates else (view.expires_on, "expires_on")


def overview(session: Session, team_id: int, runtime: Runtime, now: datetime) -> Overview:
    today = now.astimezone(runtime.settings.tz).date()
    failed = _failed_holders(session, team_id)
    counts: Counter[str] = Counter({s: 0 for s in STAGES})
    result = Overview(today=today, total=0, counts={})
    for holder in session.scalars(select(Holder).where(Holder.team_id == team_id)):
        view = view_of(holder, runtime, now)
        counts[view.stage] += 1
        why = []
        if view.stage in (EXPIRED_GRACE, ACCUMULATION_RESET):
            why.append("overdue")
        elif view.stage == RENEW_IN_PERSON:
            why.append("renew_in_person")
        if holder.id in failed and view.stage != LAPSED:
            why.append("failed")
        opted = holder.sms_opted_out_at
        if opted is not None and view.stage != LAPSED and (not holder.email or now - opted <= OPT_OUT_NOTICE):
            why.append("opted_out")
        if why:
            deadline, kind = _deadline(view, runtime)
            result.attention.append(AttentionItem(view, why, deadline, kind, (deadline - today).days))
    result.counts = dict(counts)
    result.total = sum(counts.values())
    result.attention.sort(key=lambda a: (a.days_to_deadline, min(_SEVERITY[w] for w in a.why), a.holder.external_id))
    result.this_week = sum(1 for a in result.attention if a.days_to_deadline <= 7)
    return result


@dataclass
class SearchPage:
    items: list[HolderView]
    total: int
    page: int
    pages: int


def search(session: Session, team_id: int, runtime: Runtime, now: datetime, q: str, stage: str | None,
           page: int) -> SearchPage:
    query = select(Holder).where(Holder.team_id == team_id).order_by(Holder.expires_on, Holder.external_id)
    q = q.strip()
    if q:
        # LIKE wildcards in the search text are taken literally.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches: list[ColumnElement[bool]] = [column.ilike(like, escape="\\") for column in
                   (Holder.external_id, Holder.name, Holder.phone, Holder.email)]
        digits = re.sub(r"[\s-]", "", q)
        if re.fullmatch(r"[0-9]+", digits):  # "138 0013 8000" as HR writes it; phones are stored as +86...
            matches.append(Holder.phone.contains(digits))
        query = query.where(or_(*matches))
    views = [view_of(h, runtime, now) for h in session.scalars(query)]
    if stage in STAGES:
        views = [v for v in views if v.stage == stage]
    pages = max(1, -(-len(views) // PAGE_SIZE))
    page = min(max(1, page), pages)
    return SearchPage(views[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], len(views), page, pages)


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
