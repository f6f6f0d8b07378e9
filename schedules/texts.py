"""Shared text plumbing for messages and finding phrases: locales, template files, dates, counts,
and SMS segment counting.

The words live in templates/<locale>.yaml (package data); this module loads and checks them once
and formats the small pieces (dates, counted nouns, lists) the same way everywhere.
"""

from __future__ import annotations

from datetime import date
from functools import cache
from importlib import resources
from typing import Any

import yaml

from schedules.points import POINTS_RENEWAL
from schedules.stages import STAGES

SUPPORTED_LOCALES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
MESSAGE_KINDS: tuple[str, ...] = (*STAGES, POINTS_RENEWAL)
_STAGE_KEYS = ("email_subject", "email_body")  # SMS: sms_templates.yaml

# GSM 03.38: the basic table costs one septet a character, the extension table two (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_SINGLE, _GSM_PART = 160, 153  # a split message loses 7 septets a part to the UDH
_UCS2_SINGLE, _UCS2_PART = 70, 67

# Top-level sections every locale must have (beyond the stages), checked at first load.
_SECTIONS = ("findings_short", "findings_holder", "findings_hr", "bases", "years_months", "insurance_requirement",
             "points_materials", "points_materials_renamed")


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


@cache
def templates(locale: str) -> dict[str, Any]:
    """The parsed templates of a supported locale (normalize first)."""
    text = resources.files("schedules").joinpath(f"templates/{locale}.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    # Fail on first load, not on the first holder who reaches a stage with a hole in it.
    stages = data.get("stages") or {}
    missing = [f"{s}.{k}" for s in MESSAGE_KINDS for k in _STAGE_KEYS if k not in (stages.get(s) or {})]
    missing += [section for section in _SECTIONS if section not in data]
    if missing:
        raise ValueError(f"templates/{locale}.yaml is missing {', '.join(missing)}")
    return data


def format_date(day: date, t: dict[str, Any]) -> str:
    names: list[str] = t.get("month_names") or []
    month_name = names[day.month - 1] if names else str(day.month)
    return str(t["date_format"]).format(year=day.year, month=day.month, day=day.day, month_name=month_name)


def count(forms: dict[str, str], n: int) -> str:
    key = "zero" if n == 0 and "zero" in forms else "one" if n == 1 else "other"
    return forms[key].format(n=n)


def join(items: list[str], t: dict[str, Any]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return str(t["list_separator"]).join(items[:-1]) + str(t["list_last_separator"]) + items[-1]


def years_months(years: int, months: int, t: dict[str, Any]) -> str:
    """"4年2个月" / "4 years 2 months"; a zero part is left out ("4年", "2个月")."""
    forms = t["years_months"]
    parts = [count(forms[unit], n) for unit, n in (("years", years), ("months", months)) if n]
    return str(forms.get("separator", "")).join(parts)


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
