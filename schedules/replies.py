"""What a holder's SMS reply means. Carriers expect 退订/TD/T to opt out (RULES.md)."""

from __future__ import annotations

import unicodedata

OPT_OUT = "opt_out"
RENEWED = "renewed"

_OPT_OUT_WORDS = frozenset({"TD", "T", "退订", "STOP", "UNSUBSCRIBE", "取消"})
_RENEWED_WORDS = frozenset({"1", "已续签", "已签注", "RENEWED"})


def classify_reply(text: str) -> str | None:
    """OPT_OUT, RENEWED or None for anything else. Full-width forms and case are folded."""
    word = unicodedata.normalize("NFKC", text).strip().strip("。.!！").upper()
    if word in _OPT_OUT_WORDS:
        return OPT_OUT
    if word in _RENEWED_WORDS:
        return RENEWED
    return None
