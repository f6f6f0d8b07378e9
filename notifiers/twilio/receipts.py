"""Twilio's status callbacks and inbound messages, read into the core's Receipt and Reply."""

from __future__ import annotations

from collections.abc import Mapping

from notifiers.base import Receipt, Reply

PROVIDER = "twilio"

# Twilio's status order: a late "sent" callback must not overwrite "delivered".
RANK: Mapping[str, int] = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
                           "delivered": 4, "undelivered": 4, "failed": 4, "read": 5}
# Carrier verdicts that retrying cannot change (RULES.md / issue 3): unknown or unreachable
# destination, landline or unreachable carrier, message filtered as spam.
PERMANENT_DELIVERY_CODES = frozenset({"30005", "30006", "30007"})


def receipt_from(form: Mapping[str, str]) -> Receipt | None:
    """A status callback's form as a Receipt; None when it lacks the message id or status."""
    sid, status = form.get("MessageSid", "").strip(), form.get("MessageStatus", "").strip().lower()
    if not sid or not status:
        return None
    code = form.get("ErrorCode") or None
    return Receipt(provider=PROVIDER, message_id=sid, status=status, error_code=code, order=RANK,
                   undelivered=status in ("undelivered", "failed"), permanent=code in PERMANENT_DELIVERY_CODES)


def reply_from(form: Mapping[str, str]) -> Reply:
    return Reply(provider=PROVIDER, from_number=form.get("From", ""), body=form.get("Body", ""),
                 message_id=form.get("MessageSid") or None)
