"""Personal data in free text: masked before it is logged or stored.

Phones, emails, names and ID-card numbers reach the worker as free text too: in a holder's SMS
reply, in a provider's error message ("The 'To' number +8613800138000 is not valid"), in an
exception. Every such text passes through `mask_text` before it is written anywhere, a log line
or a database row, so nothing downstream has to remember to.

Also the input side of the same promise: `control_characters` finds the characters (NUL and the
rest of the C0 set) that no field we store may hold, so every way data comes in can refuse them
with the same rule.
"""

from __future__ import annotations

import re

__all__ = ["CONTROL_REASON", "control_characters", "mask_text", "strip_control"]

# Order matters: IDs are the longest digit runs, so they go first; the digit lookarounds stop a
# phone pattern from matching 11 digits inside an 18-digit ID (or an ID pattern from matching
# inside a longer number).
_ID18_RE = re.compile(r"(?<!\d)(\d{3})\d{13}(\d[\dXx])(?![\dXx])")
_ID15_RE = re.compile(r"(?<!\d)(\d{3})\d{10}(\d{2})(?!\d)")
# Mainland mobiles: 1[3-9]x, optional +86/86 prefix and the usual space/dash grouping
# (138-1234-5678). Short numbers, dates and times cannot match.
_PHONE_RE = re.compile(r"(?<!\d)(\+?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")
# Any other number in E.164 form (a provider's error can quote one): +, country code, the rest.
_E164_RE = re.compile(r"(?<![\w+])\+(\d{2})\d{4,11}(\d{2})(?!\d)")
_EMAIL_RE = re.compile(r"([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")

# C0 controls and DEL. Tab, newline and carriage return are the only ones a multi-line field
# (an address typed with line breaks) may keep.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_BREAK_RE = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_REASON = "contains a control character (such as NUL); remove it"


def mask_text(text: str) -> str:
    """Mask phones, e-mails and ID-card numbers embedded in free text."""
    text = _ID18_RE.sub(lambda m: m[1] + "*" * 13 + m[2], text)
    text = _ID15_RE.sub(lambda m: m[1] + "*" * 10 + m[2], text)
    text = _PHONE_RE.sub(lambda m: (m[1] or "").replace(" ", "").replace("-", "") + m[2] + "****" + m[3], text)
    text = _E164_RE.sub(lambda m: f"+{m[1]}****{m[2]}", text)
    return _EMAIL_RE.sub(r"\1***@\2", text)


def control_characters(text: str, *, multiline: bool = False) -> bool:
    """Whether `text` holds a character no stored field may hold (NUL, other C0 controls, DEL).

    `multiline` fields may keep tab, newline and carriage return."""
    return bool((_CONTROL_RE if multiline else _CONTROL_OR_BREAK_RE).search(text))


def strip_control(text: str) -> str:
    """`text` without control characters, line breaks kept: for free text we must keep but
    cannot refuse (a holder's SMS reply)."""
    return _CONTROL_RE.sub("", text)
