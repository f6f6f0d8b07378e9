"""Reminder texts: render a stage touch as an SMS or an email, in zh-CN (default) or English.

Emails' words live in templates/<locale>.yaml, SMS texts are the approved templates of
sms_templates.yaml (package data, or the operator's own file), so both can be corrected without
code changes; this module only computes the fields (dates, counts, materials, reasons, the last
working days, the accumulated figure, points findings) and fills them in with str.format_map.
Nothing here reads a clock: the caller passes `today`.

Besides the permit stages, `render_message` renders a points touch (stage POINTS_RENEWAL).
In-person and overdue messages name the last working day that still helps (schedules.deadlines);
renew_in_person switches to its `when_closed` wording once that day has passed before expiry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from schedules.deadlines import calendar_is_official, last_working_day_on_or_before
from schedules.findings_text import holder_findings_text, holder_phrases
from schedules.points import POINTS_RENEWAL
from schedules.sms_templates import KINDS, ApprovedTemplate, TemplateSet, load_sms_templates
from schedules.stages import ACCUMULATION_RESET, EXPIRED_GRACE, RENEW_IN_PERSON
from schedules.texts import (
    DEFAULT_LOCALE,
    MESSAGE_KINDS,
    SUPPORTED_LOCALES,
    count,
    format_date,
    join,
    normalize_locale,
    sms_segments,
    templates,
    years_months,
)

__all__ = [
    "CHANNELS", "DEFAULT_LOCALE", "HOUSING_TYPES", "MESSAGE_KINDS", "POINTS_RENEWAL", "SUPPORTED_LOCALES",
    "MessageContext", "RenderedMessage", "materials", "normalize_locale", "render_message", "sms_segments",
]

CHANNELS: tuple[str, ...] = ("sms", "email")
HOUSING_TYPES: tuple[str, ...] = ("own", "relative", "rental", "dormitory")
_FALLBACK_HOUSING = "default"  # templates key for an unknown housing type

@dataclass(frozen=True)
class MessageContext:
    """Everything a message says. The optional fields have defaults so older callers still work.

    For stage `points_renewal` (a points touch) `touch_day` is relative to points_valid_until,
    which must be given, and `findings` are the holder-actionable finding codes to name; the
    permit dates are still the holder's (templates may mention them).
    """

    stage: str  # a stage of schedules.stages, or POINTS_RENEWAL
    touch_day: int  # relative to expires_on: -30 = 30 days before, +1 = day after
    today: date  # the day the message is rendered (holder's time zone)
    expires_on: date
    grace_ends_on: date  # last day of expired_grace
    reset_ends_on: date  # last day of accumulation_reset
    name: str | None = None
    housing_type: str | None = None  # own | relative | rental | dormitory | None
    eligibility_reasons: tuple[str, ...] = ()
    # The last working day on or before expires_on / grace_ends_on / reset_ends_on
    # (schedules.deadlines). None: worked out here from the same calendar.
    last_day_in_person: date | None = None
    last_day_in_grace: date | None = None
    last_day_before_lapse: date | None = None
    # Accumulated holding (years, months) as of `today` (schedules.accumulation.accumulated);
    # None when unknown. Overdue messages name it as what is at stake.
    accumulated: tuple[int, int] | None = None
    findings: tuple[str, ...] = ()  # points_renewal: finding codes the holder can act on
    points_valid_until: date | None = None  # points_renewal: last valid day of the points


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None  # None for sms
    body: str
    segments: int  # SMS segments; 0 for email
    # SMS: the approved template the body is, and its filled parameters, for providers that send
    # by template id (Aliyun, Tencent). None for email and WeCom.
    template: ApprovedTemplate | None = None
    params: tuple[tuple[str, str], ...] = ()


def _reason_phrases(codes: tuple[str, ...], phrases: dict[str, str]) -> list[str]:
    # Unknown codes still mean "go in person", so they get the generic phrase (once).
    out: list[str] = []
    for code in codes:
        phrase = phrases.get(code, phrases["other"])
        if phrase not in out:
            out.append(phrase)
    return out


def _short_reasons(codes: tuple[str, ...], t: dict[str, Any]) -> str:
    phrases = _reason_phrases(codes, t["reasons_short"])
    limit = t.get("reasons_short_max")
    if limit is not None and len(phrases) > int(limit):
        # A two-segment SMS has no room for every reason: name the first ones and say "etc.".
        return join(phrases[: int(limit)], t) + str(t["reasons_more"])
    return join(phrases, t)


def _housing_key(housing_type: str | None) -> str:
    key = (housing_type or "").strip().lower()
    return key if key in HOUSING_TYPES else _FALLBACK_HOUSING


def materials(housing_type: str | None, locale: str | None) -> list[str]:
    """The in-person materials for a housing type (unknown type: a list naming every proof)."""
    t = templates(normalize_locale(locale))
    return list(t["materials"][_housing_key(housing_type)])


def points_materials(locale: str | None) -> list[str]:
    """What the employer's HR prepares for a points renewal, then what a renamed employer must do
    first (RULES.md, "Points renewal materials")."""
    t = templates(normalize_locale(locale))
    return [*t["points_materials"], str(t["points_materials_renamed"])]


def _last_days(ctx: MessageContext) -> tuple[date, date, date]:
    """The last working day on or before expiry, the end of grace and the end of the reset window."""
    return (
        ctx.last_day_in_person or last_working_day_on_or_before(ctx.expires_on),
        ctx.last_day_in_grace or last_working_day_on_or_before(ctx.grace_ends_on),
        ctx.last_day_before_lapse or last_working_day_on_or_before(ctx.reset_ends_on),
    )


def _deadline_fields(ctx: MessageContext, t: dict[str, Any]) -> dict[str, Any]:
    in_person, in_grace, before_lapse = _last_days(ctx)
    fields: dict[str, Any] = {}
    for day_field, note_field, calendar_day, last in (
        ("last_day_in_person", "in_person_note", ctx.expires_on, in_person),
        ("last_day_in_grace", "grace_note", ctx.grace_ends_on, in_grace),
        ("last_day_before_lapse", "lapse_note", ctx.reset_ends_on, before_lapse),
    ):
        fields[day_field] = format_date(last, t)
        # Emails say why the day named is earlier than the date itself (a weekend or holiday).
        note = str(t["workday_note"]).format(date=format_date(calendar_day, t), last=format_date(last, t))
        fields[note_field] = note if last != calendar_day else ""
    # The note concerns only the days this message names (a December expiry's grace runs into
    # a year that may have no arrangement yet, which an in-person reminder does not mention).
    named = {
        RENEW_IN_PERSON: (ctx.expires_on, in_person, *((ctx.grace_ends_on,) if ctx.today > in_person else ())),
        EXPIRED_GRACE: (ctx.grace_ends_on, in_grace),
        ACCUMULATION_RESET: (ctx.reset_ends_on, before_lapse),
    }.get(ctx.stage, ())
    fields["calendar_note"] = "" if calendar_is_official(*named) else str(t["calendar_note"])
    fields["grace_days"] = (ctx.grace_ends_on - ctx.expires_on).days
    years, months = ctx.accumulated or (0, 0)
    fields["accumulated"] = years_months(years, months, t) if _accumulated_known(ctx) else ""
    return fields


def _accumulated_known(ctx: MessageContext) -> bool:
    # (0, 0) is nothing at stake: the messages then use their general words about the years.
    return ctx.accumulated is not None and any(ctx.accumulated)


def _points_fields(ctx: MessageContext, t: dict[str, Any], locale: str) -> dict[str, Any]:
    if ctx.points_valid_until is None:
        raise ValueError("a points_renewal message needs points_valid_until")
    days_left = (ctx.points_valid_until - ctx.today).days
    return {
        "points_valid_until": format_date(ctx.points_valid_until, t),
        "points_countdown": count(t["countdown"], max(days_left, 0)),
        "findings_short": holder_findings_text(ctx.findings, locale, short=True),
        "findings_text": holder_findings_text(ctx.findings, locale, short=False),
        "findings_list": "\n".join(f"- {p}" for p in holder_phrases(ctx.findings, locale, short=False)),
    }


def _fields(ctx: MessageContext, t: dict[str, Any], locale: str) -> dict[str, Any]:
    name = (ctx.name or "").strip()
    days_left = (ctx.expires_on - ctx.today).days
    housing = _housing_key(ctx.housing_type)
    fields: dict[str, Any] = {
        "name": name,
        "hello": t["greeting"]["named" if name else "anonymous"].format(name=name),
        "expires_on": format_date(ctx.expires_on, t),
        "grace_ends_on": format_date(ctx.grace_ends_on, t),
        "reset_ends_on": format_date(ctx.reset_ends_on, t),
        "today": format_date(ctx.today, t),
        "days_left": days_left,
        "overdue": -days_left,
        # Clamped so a message rendered on the "wrong" side of expiry never says "-3 days".
        "countdown": count(t["countdown"], max(days_left, 0)),
        "overdue_text": count(t["overdue_count"], max(-days_left, 0)),
        "reasons": join(_reason_phrases(ctx.eligibility_reasons, t["reasons"]), t),
        "reasons_short": _short_reasons(ctx.eligibility_reasons, t),
        "materials_sms": t["materials_sms"][housing],
        "materials_list": "\n".join(f"- {item}" for item in t["materials"][housing]),
        **_deadline_fields(ctx, t),
    }
    if ctx.stage == POINTS_RENEWAL:
        fields.update(_points_fields(ctx, t, locale))
    # Shared phrases are filled first, so templates use them like any other field.
    for key, phrase in (t.get("phrases") or {}).items():
        fields[key] = str(phrase).format_map(fields)
    return fields


def _closed(ctx: MessageContext) -> bool:
    """The last working day the stage's remedy needs has passed (a weekend or holiday, or a
    message rendered late): the message must say what still helps, never a day already gone.
    renew_in_person then points at the grace period, expired_grace at the last day before the
    lapse, and accumulation_reset says the permit lapses."""
    closes = {RENEW_IN_PERSON: 0, EXPIRED_GRACE: 1, ACCUMULATION_RESET: 2}.get(ctx.stage)
    return closes is not None and ctx.today > _last_days(ctx)[closes]


def sms_kind(ctx: MessageContext) -> str:
    """Which approved SMS template a touch is (schedules/sms_templates.py, KINDS): the stage, its
    closed or not-eligible variant, and whether it names the accumulated years."""
    kind = ctx.stage
    if _closed(ctx) and f"{kind}.closed" in KINDS:
        kind = f"{kind}.closed"
    elif ctx.eligibility_reasons and f"{kind}.reasons" in KINDS:
        kind = f"{kind}.reasons"
    if _accumulated_known(ctx) and f"{kind}.accumulated" in KINDS:
        kind = f"{kind}.accumulated"
    return kind


def _spec(ctx: MessageContext, t: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] | None = t["stages"].get(ctx.stage)
    if spec is None:
        raise ValueError(f"unknown stage {ctx.stage!r}; expected one of {MESSAGE_KINDS}")
    if ctx.eligibility_reasons:
        # Known not eligible for auto-renewal: the stage's in-person wording, with the reasons.
        spec = {**spec, **(spec.get("when_reasons") or {})}
    if _closed(ctx):  # say what still helps, never a day already gone
        spec = {**spec, **(spec.get("when_closed") or {})}
    return spec


def _years_phrases(spec: dict[str, Any], fields: dict[str, Any], known: bool) -> dict[str, str]:
    # What happens to the accumulated years, with the figure when it is known (overdue stages).
    # (SMS templates are fixed texts: their `.accumulated` kinds say it in words.)
    forms = spec.get("years_email") or {}
    return {"years_email": str(forms.get("known" if known else "unknown", "")).format_map(fields)}


def message_fields(ctx: MessageContext, locale: str | None) -> dict[str, Any]:
    """Every field a template may use, as text: what SMS parameters are filled from."""
    loc = normalize_locale(locale)
    t = templates(loc)
    return _fields(ctx, t, loc)


def render_sms(locale: str | None, ctx: MessageContext, sms_templates: TemplateSet | None = None,
               sign_name: str | None = None, provider: str | None = None) -> RenderedMessage:
    """The touch as its approved SMS template, filled in, after the signature: 【sign_name】 when
    the provider signs (Aliyun, Tencent), else the file's prefix for the locale. With a template
    provider, only a template filed with it is used (TemplateSet.get)."""
    loc = normalize_locale(locale)
    tset = sms_templates or load_sms_templates()
    template = tset.get(sms_kind(ctx), loc, provider)
    text, params = template.fill(message_fields(ctx, template.locale))
    body = tset.prefix(template.locale, sign_name) + text.strip()
    return RenderedMessage(None, body, sms_segments(body), template, params)


def render_message(channel: str, locale: str | None, ctx: MessageContext, *, sms_templates: TemplateSet | None = None,
                   sign_name: str | None = None, provider: str | None = None) -> RenderedMessage:
    """Render one touch. Unknown stage or channel is a caller bug: ValueError.

    SMS comes from the approved templates (render_sms); email from templates/<locale>.yaml."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    if ctx.stage not in MESSAGE_KINDS:
        raise ValueError(f"unknown stage {ctx.stage!r}; expected one of {MESSAGE_KINDS}")
    if channel == "sms":
        return render_sms(locale, ctx, sms_templates, sign_name, provider)
    loc = normalize_locale(locale)
    t = templates(loc)
    spec = _spec(ctx, t)
    fields = _fields(ctx, t, loc)
    fields.update(_years_phrases(spec, fields, _accumulated_known(ctx)))
    subject = str(spec["email_subject"]).format_map(fields).strip()
    # Empty optional paragraphs must not leave gaps of blank lines behind.
    body = re.sub(r"\n{3,}", "\n\n", str(spec["email_body"]).format_map(fields)).strip() + "\n"
    return RenderedMessage(subject, body, 0)
