"""Tencent's status report and reply pushes, read into the core's Receipt and Reply.

Status report (短信下发状态通知, https://cloud.tencent.com/document/product/382/37809 and
https://www.tencentcloud.com/document/product/382/43547): items of
{"user_receive_time", "nationcode", "mobile", "report_status": "SUCCESS"|"FAIL", "errmsg": the
carrier's code ("DELIVRD", "UNDELIV", ...), "description", "sid": the SerialNo SendSms returned,
"session_context"}. Reply (短信回复, .../382/43548): {"extend", "mobile", "nationcode", "sign",
"text", "time": unix seconds}; it has no id, so its id is a hash of its fields (a replay of the
same push hashes the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from notifiers.base import Receipt, Reply

PROVIDER = "tencent"
DELIVERED, UNDELIVERED = "delivered", "undelivered"
# Tencent reports final states only; "delivered" outranks "undelivered", so a late failure
# report cannot undo a delivery, while a delivery after a failure (a retried carrier hop) wins.
RANK: Mapping[str, int] = {"sent": 1, UNDELIVERED: 4, DELIVERED: 5}
# Carrier verdicts that retrying cannot change. Tencent's receipt codes
# (https://www.tencentcloud.com/document/product/382/35462): SUBFAIL = the carrier refused the
# number (wrong format), REJECTD = the content or sender was refused (filtered). China Mobile's
# gateway codes for an invalid or vacant number (号码无效或者空号): CB:0001, CB:0053, DB:0101.
# UNDELIV, EXPIRED, DELETED, UNKNOWN, COMFAIL, WTNFAIL (phone off, weak signal, network) may pass.
PERMANENT_REPORT_CODES = frozenset({"SUBFAIL", "REJECTD", "CB:0001", "CB:0053", "DB:0101"})
VACANT_WORDS = ("空号", "号码不存在")  # in Tencent's description of a failed report


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else str(value).strip()


def receipt_from(item: Mapping[str, Any]) -> Receipt | None:
    """One status report as a Receipt; None when it lacks the sid or the report status."""
    sid, report = _text(item, "sid"), _text(item, "report_status").upper()
    if not sid or report not in ("SUCCESS", "FAIL"):
        return None
    delivered = report == "SUCCESS"
    code = _text(item, "errmsg") or None
    description = _text(item, "description")
    permanent = not delivered and (code in PERMANENT_REPORT_CODES or any(w in description for w in VACANT_WORDS))
    return Receipt(provider=PROVIDER, message_id=sid, status=DELIVERED if delivered else UNDELIVERED,
                   error_code=None if delivered else code, order=RANK, undelivered=not delivered,
                   permanent=permanent)


def e164(nationcode: str, mobile: str) -> str:
    """+<country><number>; an 11-digit mainland number without a country code gets +86."""
    digits = mobile.replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        return digits
    country = nationcode.lstrip("+0") or ("86" if len(digits) == 11 and digits.startswith("1") else "")
    if country and digits.startswith(country) and len(digits) > 11:
        return f"+{digits}"  # the number already carries its country code
    return f"+{country}{digits}"


def reply_id(nationcode: str, mobile: str, time: str, text: str) -> str:
    joined = "\x1f".join((nationcode, mobile, time, text))  # unit separator: fields cannot run together
    return hashlib.sha256(joined.encode()).hexdigest()


def reply_from(item: Mapping[str, Any]) -> Reply | None:
    """One reply push as a Reply; None when it lacks the number or the text."""
    mobile, nationcode, time = _text(item, "mobile"), _text(item, "nationcode"), _text(item, "time")
    if not mobile or "text" not in item or not isinstance(item.get("text"), str):
        return None
    text = str(item["text"])
    return Reply(provider=PROVIDER, from_number=e164(nationcode, mobile), body=text,
                 message_id=reply_id(nationcode, mobile, time, text))
