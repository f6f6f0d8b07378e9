"""The words HR reads for the domain's codes, in zh-CN and en: one table, used by the web pages,
the digest, the CLI and `explain`, so every surface says the same thing.

(The holder's own messages are in templates/<locale>.yaml, written for one person; these are
labels about a person, for HR.) Pure: no I/O.
"""

from __future__ import annotations

import re

from schedules.stages import (
    ACCUMULATION_RESET,
    ADDRESS_CHANGED,
    AUTO_RENEWAL_WINDOW,
    EMPLOYER_CHANGED,
    EXPIRED_GRACE,
    LAPSED,
    PHONE_CHANGED,
    RENEW_IN_PERSON,
    RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY,
    UPCOMING,
    VALID,
)

ZH, EN = 0, 1
Pair = tuple[str, str]

# 61-90 days overdue the accumulated years are already lost (RULES.md: endorsed more than 60 days
# late, they restart from zero), so no surface may say they "will" reset.
STAGE_LABELS: dict[str, Pair] = {
    VALID: ("有效", "valid"),
    UPCOMING: ("即将到期", "expiring soon"),
    AUTO_RENEWAL_WINDOW: ("自动签注期", "auto-renewal window"),
    RENEW_IN_PERSON: ("需本人办理", "renew in person"),
    EXPIRED_GRACE: ("已过期（宽限期内）", "overdue (grace period)"),
    ACCUMULATION_RESET: ("已过期（累计年限已清零）", "overdue (accumulated years lost)"),
    LAPSED: ("已失效", "lapsed"),
}

# Why a holder is not eligible for auto-renewal.
REASON_LABELS: dict[str, Pair] = {
    ADDRESS_CHANGED: ("居住地址已变更", "address changed"),
    EMPLOYER_CHANGED: ("用人单位已变更", "employer changed"),
    PHONE_CHANGED: ("联系电话已变更", "phone changed"),
    RENTAL_REGISTRATION_ENDS_BEFORE_EXPIRY: ("租赁备案在居住证到期前失效",
                                             "rental registration ends before the permit"),
}

# Auto-renewal as HR reads it (schedules.stages.auto_renewal_status).
AUTO_RENEWAL_LABELS: dict[str, Pair] = {
    "eligible": ("可能自动签注（登记信息未变更）", "likely (details unchanged)"),
    "not_eligible": ("不会自动签注，须本人办理", "not eligible: renew in person"),
    "not_applicable": ("不适用（居住证已过期）", "not applicable (the permit has expired)"),
}

# The date that matters in each overdue stage, and what it is.
DEADLINE_LABELS: dict[str, Pair] = {
    "expires_on": ("居住证到期", "permit expires"),
    "grace_ends_on": ("宽限期最后一天", "last day of grace"),
    "reset_ends_on": ("失效前最后一天", "last day before the permit lapses"),
}

CHANNEL_LABELS: dict[str, Pair] = {"sms": ("短信", "SMS"), "email": ("邮件", "email"), "wecom": ("企业微信", "WeCom")}


def label(table: dict[str, Pair], code: str, lang: int | str = ZH) -> str:
    """The code's words in `lang` (ZH/EN, or a locale such as "en"); an unknown code as itself."""
    index = lang if isinstance(lang, int) else (EN if str(lang).lower().startswith("en") else ZH)
    pair = table.get(code)
    return pair[index] if pair else code


# Why a reminder was cancelled, retried or given up: each reason once, as (code, the English text
# the registry stores, the words HR reads in zh-CN). The stored text stays English because the
# API returns it as `status_reason`; it is always written by `reason_text` from this table, and
# read back by `reason_code` from the same table, so a reason cannot be written in a form the
# pages do not know. `{…}` fields carry the detail (a stage, a provider's error).
STATUS_REASONS: tuple[tuple[str, str, str], ...] = (
    ("renewal_confirmed", "renewal confirmed", "已确认签注"),
    ("renewed_by_roster", "renewed (roster import)", "花名册显示已续签"),
    ("expiry_corrected", "expiry corrected (roster import)", "有效期已更正"),
    ("renewal_reported", "holder replied that the permit was renewed", "本人回复已续签"),
    ("cycle_ended", "cycle ended: permit renewed or expiry corrected", "已续签或有效期已更正"),
    ("stage_left", "stage left: holder is now {stage}", "阶段已变化"),
    ("superseded", "superseded by {stage} {day:+d}", "已被新的提醒取代"),
    ("opted_out", "holder opted out of SMS", "已退订短信"),
    ("no_contact", "no {channel} contact on file any more", "已无可用的联系方式"),
    ("no_backend", "no {channel} backend is configured on this worker", "未配置该发送渠道"),
    ("points_changed", "points validity changed since this reminder was enqueued", "积分有效期已变化"),
    ("points_not_due", "points reminder no longer due", "积分提醒已不需要"),
    ("points_no_risk", "no points risk the holder can act on any more", "已无需本人处理的积分风险"),
    ("permanent", "permanent: {error}", "无法送达"),
    ("retrying", "retrying ({status}): {error}", "稍后重试"),
    ("gave_up_carrier", "gave up after {attempts} attempts: carrier reported {status} ({code})", "多次重试失败"),
    ("gave_up", "gave up after {attempts} attempts: {error}", "多次重试失败"),
    ("carrier_retrying", "carrier reported {status} ({code}); retrying", "运营商回执未送达，稍后重试"),
    ("carrier_failed", "carrier reported {status} ({code})", "运营商回执：无法送达"),
)
_REASONS = {code: (text, zh) for code, text, zh in STATUS_REASONS}
# Reasons whose detail is worth showing HR as it came (a provider's error, a carrier's code).
_DETAIL_SHOWN = frozenset({"permanent", "carrier_failed", "carrier_retrying"})


def reason_text(reason: str, /, **detail: object) -> str:
    """The stored (English) text of the reason coded `reason`; KeyError for a code not in the table."""
    return _REASONS[reason][0].format(**detail)


def _pattern(template: str) -> re.Pattern[str]:
    """A template as a regex: its fixed words literally, each {field} as some text."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile("(.+?)".join(re.escape(part) for part in parts), re.S)


_PATTERNS = tuple((code, _pattern(template)) for code, template, _ in STATUS_REASONS)


def reason_code(text: str | None) -> tuple[str, str] | None:
    """(code, detail) of a stored reason, the detail being its fields' text; None for a text
    `reason_text` did not write (a row older than this table, a reason cut at 200 characters)."""
    if not text:
        return None
    for code, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return code, " ".join(match.groups())
    return None


def reason_label(text: str | None, lang: int | str = ZH) -> str:
    """What HR reads for a stored reason, in their language; unknown text is shown as it is."""
    found = reason_code(text)
    if found is None or lang in (EN, "en"):
        return text or ""
    code, detail = found
    zh = _REASONS[code][1]
    return f"{zh}（{detail}）" if detail and code in _DETAIL_SHOWN else zh
