"""After an AMBIGUOUS send: did Aliyun accept it? QuerySendDetails by number and day, matched on OutId.

The BizId of a lost answer is unknown, so every record Aliyun holds for the number on each day from
`since` (minus a slack for clock skew) to today is paged through, days as Aliyun counts them
(SendDate is yyyyMMdd in Asia/Shanghai; at most the last 30 days can be queried). A record counts
only if it carries our OutId and was sent at or after that moment: an earlier attempt of the same
outbox row (same key) that Aliyun failed to deliver is not the lost send.

What a matching record means (SendStatus: 1 waiting for the carrier, 2 failed, 3 delivered):
1 or 3: SENT (nothing to send again). 2 with a permanent receipt code: PERMANENT (sending again
cannot arrive either). 2 otherwise: nothing reached the holder, so it does not count and a resend
is safe. QuerySendDetails does not return BizId, so a reconciled SENT has no provider message id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alibabacloud_dysmsapi20170525.client import Client  # type: ignore[import-untyped]
from alibabacloud_dysmsapi20170525.models import QuerySendDetailsRequest  # type: ignore[import-untyped]
from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]

from notifiers.aliyun.codes import receipt_is_permanent
from notifiers.aliyun.errors import classify_exception
from notifiers.base import SendResult, SendStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")
SLACK = timedelta(minutes=5)
PAGE_SIZE = 50  # Aliyun's maximum
MAX_PAGES = 20  # per day: 1,000 records to one number in a day is far past any flow control
MAX_DAYS = 30  # how far back QuerySendDetails reaches


class LookupFailed(Exception):
    def __init__(self, result: SendResult) -> None:
        super().__init__(result.error)
        self.result = result


@dataclass(frozen=True)
class Lookup:
    client: Client
    runtime: RuntimeOptions
    timeout: float

    def page(self, number: str, day: date, page: int) -> tuple[list[Any], int]:
        """One page of the day's records for the number, and Aliyun's total count for the day."""
        request = QuerySendDetailsRequest(phone_number=number, send_date=day.strftime("%Y%m%d"),
                                          page_size=PAGE_SIZE, current_page=page)
        try:
            body = self.client.query_send_details_with_options(request, self.runtime).body
        except Exception as exc:  # the lookup failed: neither resend nor give up yet
            result, _ = classify_exception(exc, self.timeout)
            raise LookupFailed(SendResult(SendStatus.TRANSIENT, error=f"reconcile lookup failed: {result.error}",
                                          retry_after_seconds=result.retry_after_seconds,
                                          error_code=result.error_code)) from None
        code = str(getattr(body, "code", "") or "")
        if code != "OK":
            raise LookupFailed(SendResult(SendStatus.TRANSIENT, error=f"reconcile lookup failed: aliyun {code}: "
                                          f"{getattr(body, 'message', '') or ''}", error_code=code or None))
        holder = getattr(body, "sms_send_detail_dtos", None)
        records = list(getattr(holder, "sms_send_detail_dto", None) or [])
        try:
            total = int(getattr(body, "total_count", None) or 0)
        except (TypeError, ValueError):
            total = 0
        return records, total


def _sent_at(record: Any) -> datetime | None:
    try:
        return datetime.strptime(str(record.send_date), "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    except (TypeError, ValueError):
        return None


def _days(since: datetime, now: datetime) -> list[date]:
    first = since.astimezone(SHANGHAI).date()
    last = now.astimezone(SHANGHAI).date()
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    return [last - timedelta(days=n) for n in range((last - first).days + 1)]  # newest first


def _verdict(record: Any) -> SendResult | None:
    status = getattr(record, "send_status", None)
    code = str(getattr(record, "err_code", "") or "") or None
    if str(status) in ("1", "3"):
        return SendResult.sent(None)
    if str(status) == "2" and receipt_is_permanent(code):
        return SendResult.permanent(f"aliyun receipt {code}: the earlier attempt was not delivered", error_code=code)
    return None  # failed for a passing reason (or unknown): nothing arrived, a resend is safe


def reconcile_by_out_id(lookup: Lookup, number: str, out_id: str, since: datetime,
                        now: datetime | None = None) -> SendResult | None:
    since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
    earliest = since - SLACK
    try:
        for day in _days(earliest, now or datetime.now(UTC)):
            for page in range(1, MAX_PAGES + 1):
                records, total = lookup.page(number, day, page)
                for record in records:
                    sent_at = _sent_at(record)
                    if getattr(record, "out_id", None) != out_id or (sent_at is not None and sent_at < earliest):
                        continue
                    verdict = _verdict(record)
                    if verdict is not None:
                        return verdict
                if len(records) < PAGE_SIZE or (total and page * PAGE_SIZE >= total):
                    break
            else:  # more records than we page through: we cannot say it is absent
                return SendResult.transient(f"reconcile: more than {MAX_PAGES * PAGE_SIZE} records on {day}")
    except LookupFailed as failed:
        return failed.result
    return None
