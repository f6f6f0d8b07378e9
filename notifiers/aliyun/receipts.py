"""Aliyun's SmsReport (delivery receipts) and SmsUp (replies) pushes, read into the core's Receipt and Reply.

Both pushes are JSON arrays of flat objects (one request may carry many). A receipt's `biz_id` is
documented as the very `BizId` SendSms returned (e.g. "932702304080415357^0", suffix included), so it
is used as is, only trimmed: it is what the send recorded as provider_message_id. A reply has no
message id of its own besides `sequence_id`; without one, a sha256 of its fields stands in, so a
replayed copy still dedupes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from notifiers.aliyun.codes import receipt_is_permanent
from notifiers.base import Receipt, Reply

PROVIDER = "aliyun"

# SmsReport only pushes final verdicts: both end the story, neither may be overwritten by the
# other's late copy, and "sent" (what the send itself means) ranks below both.
RANK: Mapping[str, int] = {"sent": 0, "delivered": 1, "undelivered": 1}

# Receipt codes (回执错误码) meaning the person blocked us: the number is in the carrier's or the
# user's blacklist, or the user rejected the message.
OPTED_OUT_CODES = frozenset({"MOBILE_IN_BLACK", "USER_REJECT"})
_MAINLAND = re.compile(r"^1\d{10}$")
_DIGITS = re.compile(r"^\+?(\d{6,15})$")


class PushError(ValueError):
    """The push is not the shape Aliyun documents (the webhook answers 400)."""


def items(payload: Any) -> list[Mapping[str, Any]]:
    """The objects of a push: a JSON array of objects (a single object is accepted too)."""
    batch = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(item, dict) for item in batch):
        raise PushError("expected a JSON array of objects")
    return batch


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else str(value).strip()


def _success(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise PushError("success must be true or false")


def receipt_from(item: Mapping[str, Any]) -> Receipt:
    biz_id = _text(item, "biz_id")
    if not biz_id:
        raise PushError("biz_id is required")
    if "success" not in item:
        raise PushError("success is required")
    delivered = _success(item["success"])
    code = _text(item, "err_code") or None
    return Receipt(provider=PROVIDER, message_id=biz_id, status="delivered" if delivered else "undelivered",
                   error_code=code, order=RANK, undelivered=not delivered,
                   permanent=not delivered and receipt_is_permanent(code),
                   opted_out=not delivered and code in OPTED_OUT_CODES,
                   idempotency_key=_text(item, "out_id") or None)


def e164(number: str) -> str:
    """An 11-digit mainland number gets +86; a number with its country code gets its "+"."""
    number = re.sub(r"[\s-]", "", number)
    if number.startswith("0086"):
        number = "+86" + number[4:]
    if _MAINLAND.match(number):
        return "+86" + number
    if number.startswith("86") and _MAINLAND.match(number[2:]):
        return "+" + number
    match = _DIGITS.match(number)
    if match is None:
        raise PushError("phone_number is not a phone number")
    return "+" + match.group(1)


def reply_from(item: Mapping[str, Any]) -> Reply:
    phone = _text(item, "phone_number")
    if not phone:
        raise PushError("phone_number is required")
    sequence = _text(item, "sequence_id")
    body = "" if item.get("content") is None else str(item["content"])
    if not sequence:
        fields = [phone, _text(item, "send_time"), body, _text(item, "dest_code"), _text(item, "sign_name")]
        sequence = "sha256:" + hashlib.sha256("\x1f".join(fields).encode()).hexdigest()
    return Reply(provider=PROVIDER, from_number=e164(phone), body=body, message_id=sequence)
