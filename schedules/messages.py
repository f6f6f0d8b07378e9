"""Reminder texts: render a stage touch as an SMS or an email, in zh-CN (default) or English.

The words live in templates/<locale>.yaml (package data) so they can be corrected without code
changes; this module only computes the fields (dates, counts, materials, reasons) and fills them
in with str.format_map. Nothing here reads a clock: the caller passes `today`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from schedules.stages import STAGES

SUPPORTED_LOCALES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
CHANNELS: tuple[str, ...] = ("sms", "email")
HOUSING_TYPES: tuple[str, ...] = ("own", "relative", "rental", "dormitory")
_FALLBACK_HOUSING = "default"  # templates key for an unknown housing type
_STAGE_KEYS = ("sms", "email_subject", "email_body")

# GSM 03.38: the basic table costs one septet a character, the extension table two (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_SINGLE, _GSM_PART = 160, 153  # a split message loses 7 septets a part to the UDH
_UCS2_SINGLE, _UCS2_PART = 70, 67


@dataclass(frozen=True)
class MessageContext:
    stage: str
    touch_day: int  # relative to expires_on: -30 = 30 days before, +1 = day after
    today: date  # the day the message is rendered (holder's time zone)
    expires_on: date
    grace_ends_on: date  # last day of expired_grace
    reset_ends_on: date  # last day of accumulation_reset
    name: str | None = None
    housing_type: str | None = None  # own | relative | rental | dormitory | None
    eligibility_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None  # None for sms
    body: str
    segments: int  # SMS segments; 0 for email


def normalize_locale(locale: str | None) -> str:
    """Map "zh", "zh_cn", "en-US", "EN"... to a supported locale; anything else to the default."""
    if not locale or not locale.strip():
        return DEFAULT_LOCALE
    tag = locale.strip().split(".")[0].replace("_", "-").lower()
    for supported in SUPPORTED_LOCALES:
        if tag == supported.lower():
            return supported
    language = tag.split("-")[0]
    for supported in SUPPORTED_LOCALES:
        if language == supported.split("-")[0].lower():
            return supported
    return DEFAULT_LOCALE


@lru_cache(maxsize=None)
def _templates(locale: str) -> dict[str, Any]:
    text = resources.files("schedules").joinpath(f"templates/{locale}.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    # Fail on first load, not on the first holder who reaches a stage with a hole in it.
    stages = data.get("stages") or {}
    missing = [f"{s}.{k}" for s in STAGES for k in _STAGE_KEYS if k not in (stages.get(s) or {})]
    if missing:
        raise ValueError(f"templates/{locale}.yaml is missing {', '.join(missing)}")
    return data


def _format_date(day: date, t: dict[str, Any]) -> str:
    names: list[str] = t.get("month_names") or []
    month_name = names[day.month - 1] if names else str(day.month)
    return str(t["date_format"]).format(year=day.year, month=day.month, day=day.day, month_name=month_name)


def _count(forms: dict[str, str], n: int) -> str:
    key = "zero" if n == 0 and "zero" in forms else "one" if n == 1 else "other"
    return forms[key].format(n=n)


def _join(items: list[str], t: dict[str, Any]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return str(t["list_separator"]).join(items[:-1]) + str(t["list_last_separator"]) + items[-1]


def _reason_phrases(codes: tuple[str, ...], phrases: dict[str, str]) -> list[str]:
    # Unknown codes still mean "go in person", so they get the generic phrase (once).
    out: list[str] = []
    for code in codes:
        phrase = phrases.get(code, phrases["other"])
        if phrase not in out:
            out.append(phrase)
    return out


def _housing_key(housing_type: str | None) -> str:
    key = (housing_type or "").strip().lower()
    return key if key in HOUSING_TYPES else _FALLBACK_HOUSING


def materials(housing_type: str | None, locale: str | None) -> list[str]:
    """The in-person materials for a housing type (unknown type: a list naming every proof)."""
    t = _templates(normalize_locale(locale))
    return list(t["materials"][_housing_key(housing_type)])


def _fields(ctx: MessageContext, t: dict[str, Any]) -> dict[str, Any]:
    name = (ctx.name or "").strip()
    days_left = (ctx.expires_on - ctx.today).days
    housing = _housing_key(ctx.housing_type)
    fields: dict[str, Any] = {
        "name": name,
        "hello": t["greeting"]["named" if name else "anonymous"].format(name=name),
        "expires_on": _format_date(ctx.expires_on, t),
        "grace_ends_on": _format_date(ctx.grace_ends_on, t),
        "reset_ends_on": _format_date(ctx.reset_ends_on, t),
        "today": _format_date(ctx.today, t),
        "days_left": days_left,
        "overdue": -days_left,
        # Clamped so a message rendered on the "wrong" side of expiry never says "-3 days".
        "countdown": _count(t["countdown"], max(days_left, 0)),
        "overdue_text": _count(t["overdue_count"], max(-days_left, 0)),
        "reasons": _join(_reason_phrases(ctx.eligibility_reasons, t["reasons"]), t),
        "reasons_short": _join(_reason_phrases(ctx.eligibility_reasons, t["reasons_short"]), t),
        "materials_sms": t["materials_sms"][housing],
        "materials_list": "\n".join(f"- {item}" for item in t["materials"][housing]),
    }
    # Shared phrases are filled first, so templates use them like any other field.
    for key, phrase in (t.get("phrases") or {}).items():
        fields[key] = str(phrase).format_map(fields)
    return fields


def render_message(channel: str, locale: str | None, ctx: MessageContext) -> RenderedMessage:
    """Render one touch. Unknown stage or channel is a caller bug: ValueError."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    t = _templates(normalize_locale(locale))
    spec: dict[str, Any] | None = t["stages"].get(ctx.stage)
    if spec is None:
        raise ValueError(f"unknown stage {ctx.stage!r}; expected one of {STAGES}")
    if ctx.eligibility_reasons:
        # Known not eligible for auto-renewal: the stage's in-person wording, with the reasons.
        spec = {**spec, **(spec.get("when_reasons") or {})}
    fields = _fields(ctx, t)
    if channel == "sms":
        body = str(spec["sms"]).format_map(fields).strip()
        return RenderedMessage(None, body, sms_segments(body))
    subject = str(spec["email_subject"]).format_map(fields).strip()
    # Empty optional paragraphs must not leave gaps of blank lines behind.
    body = re.sub(r"\n{3,}", "\n\n", str(spec["email_body"]).format_map(fields)).strip() + "\n"
    return RenderedMessage(subject, body, 0)


def sms_segments(text: str) -> int:
    """How many SMS parts `text` takes: GSM-7 if every character fits, else UCS-2.

    Empty text is 0 (nothing to send); any other text is at least 1.
    """
    if not text:
        return 0
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        units = [2 if c in _GSM_EXTENSION else 1 for c in text]
        single, part = _GSM_SINGLE, _GSM_PART
    else:
        units = [len(c.encode("utf-16-le")) // 2 for c in text]  # UTF-16 code units
        single, part = _UCS2_SINGLE, _UCS2_PART
    if sum(units) <= single:
        return 1
    # Split as handsets do: an escape pair or a surrogate pair never straddles two parts.
    parts, used = 1, 0
    for unit in units:
        if used + unit > part:
            parts, used = parts + 1, 0
        used += unit
    return parts
