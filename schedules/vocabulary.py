"""The words HR reads for the domain's codes, in zh-CN and en: one table, used by the web pages,
the digest, the CLI and `explain`, so every surface says the same thing.

(The holder's own messages are in templates/<locale>.yaml, written for one person; these are
labels about a person, for HR.) Pure: no I/O.
"""

from __future__ import annotations

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

CHANNEL_LABELS: dict[str, Pair] = {"sms": ("短信", "SMS"), "email": ("邮件", "email")}


def label(table: dict[str, Pair], code: str, lang: int | str = ZH) -> str:
    """The code's words in `lang` (ZH/EN, or a locale such as "en"); an unknown code as itself."""
    index = lang if isinstance(lang, int) else (EN if str(lang).lower().startswith("en") else ZH)
    pair = table.get(code)
    return pair[index] if pair else code
