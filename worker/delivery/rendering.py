"""The text of one touch, as the dispatcher sends it and as the holder page shows it afterwards.

One function, so the page cannot drift from what went out: the same context (message_context),
the same approved SMS template and fallback, WeCom's textcard (the email's subject as its title,
the SMS text without its signature as the card). A sent touch is shown as rendered on its
`rendered_on` day, from the holder's current details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifiers.base import SmsTemplate
from schedules.messages import normalize_locale, render_message
from schedules.points import POINTS_RENEWAL
from schedules.policy import Policy
from schedules.sms_templates import TemplateSet
from worker.planning.evaluation import message_context
from worker.planning.points import points_check
from worker.store.models import Holder, Notification
from worker.store.statuses import NoteStatus


@dataclass(frozen=True)
class RenderedTouch:
    subject: str | None
    body: str
    segments: int
    template: SmsTemplate | None  # what a template provider is sent (kind, ids, parameters)


def render_touch(channel: str, stage: str, touch_day: int, holder: Holder, today: date, policy: Policy,
                 sms_templates: TemplateSet, *, sign_name: str | None = None, provider: str | None = None,
                 findings: tuple[str, ...] = ()) -> RenderedTouch:
    ctx = message_context(holder, stage, touch_day, today, policy, findings)
    if channel == "wecom":
        email = render_message("email", holder.locale, ctx)
        sms = render_message("sms", holder.locale, ctx, sms_templates=sms_templates)
        shown = sms.template.locale if sms.template is not None else holder.locale
        return RenderedTouch(email.subject, sms.body.removeprefix(sms_templates.prefix(normalize_locale(shown))),
                             0, None)
    rendered = render_message(channel, holder.locale, ctx, sms_templates=sms_templates, sign_name=sign_name,
                              provider=provider)
    template = None
    if rendered.template is not None:
        template = SmsTemplate(rendered.template.kind, dict(rendered.template.ids), rendered.params,
                               rendered.template.text)
    return RenderedTouch(rendered.subject, rendered.body, rendered.segments, template)


def texts_sent(session: Session, holder: Holder, policy: Policy, sms_templates: TemplateSet,
               zone: ZoneInfo, provider: str | None = None) -> dict[int, RenderedTouch]:
    """What each of the holder's attempted touches said, by notification id: rendered again on
    the day it was rendered for sending (`rendered_on`), from the holder's current details. For
    a points touch, the findings are those of that day."""
    out: dict[int, RenderedTouch] = {}
    notes = session.scalars(select(Notification).where(
        Notification.holder_id == holder.id, Notification.attempts > 0,
        Notification.status.in_((NoteStatus.SENT, NoteStatus.FAILED))))
    for note in notes:
        sent = note.sent_at.astimezone(zone).date() if note.sent_at is not None else None
        day = note.rendered_on or sent or note.touch_on
        findings: tuple[str, ...] = ()
        if note.stage == POINTS_RENEWAL:
            findings = points_check(session, holder, note.cycle_expires_on, note.touch_day, day)[1]
        try:
            out[note.id] = render_touch(note.channel, note.stage, note.touch_day, holder, day, policy, sms_templates,
                                        provider=provider, findings=findings)
        except ValueError:  # a channel or stage this version no longer renders: no text, not an error page
            continue
    return out
