"""After an ambiguous send: did Tencent accept it? Answered from the number's status reports.

PullSmsSendStatusByPhoneNumber lists the status reports (回执) of one number since BeginTime (at
most 7 days back, Offset fixed at 0, Limit at most 100). Two limits shape what it can prove:

* A report carries SessionContext, the key we sent, only when Tencent has enabled that echo for
  the account (PullSmsSendStatus.SessionContext: "默认为空，如需开通请联系腾讯云短信小助手"). A
  report whose SessionContext is empty cannot be tied to this row, so it is never taken as
  ours: a SerialNo that is someone else's (yesterday's reminder, another row for the same number)
  would mark an unsent message sent. Such reports make the answer TRANSIENT (cannot tell yet).
* Only messages whose carrier report has come back are listed; a message accepted a few seconds
  ago is not, so "nothing found" means "not sent" only after `report_wait` has passed since the
  send. Before that the answer is TRANSIENT too, with the remaining wait as retry_after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tencentcloud.sms.v20210111 import models  # type: ignore[import-untyped]

from notifiers.base import SendResult

# How far before `since` a report still counts (clock skew between hosts).
RECONCILE_SLACK = timedelta(minutes=5)
MAX_LOOKBACK = timedelta(days=7) - timedelta(minutes=1)
PULL_LIMIT = 100


def pull_request(sdk_app_id: str, to: str, since: datetime, now: datetime) -> Any:
    """The lookup: this number's reports from a little before `since` until now."""
    begin = max(since - RECONCILE_SLACK, now - MAX_LOOKBACK)
    request = models.PullSmsSendStatusByPhoneNumberRequest()
    request.BeginTime = int(begin.timestamp())
    request.EndTime = int(now.timestamp()) + 60  # a report stamped by a clock slightly ahead of ours
    request.Offset = 0
    request.Limit = PULL_LIMIT
    request.PhoneNumber = to
    request.SmsSdkAppId = sdk_app_id
    return request


@dataclass(frozen=True)
class ReportMatcher:
    report_wait: timedelta  # how long after a send its report may still be missing

    def match(self, reports: Sequence[Any], key: str, since: datetime, now: datetime) -> SendResult | None:
        """SENT for a report carrying `key`; None when nothing could be ours; else TRANSIENT."""
        if key:
            for report in reports:
                if report.SessionContext == key and report.SerialNo:
                    return SendResult.sent(report.SerialNo)
        untied = sum(1 for report in reports if not report.SessionContext)
        if untied:
            return SendResult.transient(
                f"reconcile cannot tell: {untied} status report(s) for this number carry no SessionContext "
                "(ask Tencent to enable the SessionContext echo)", retry_after_seconds=self._remaining(since, now))
        remaining = self._remaining(since, now)
        if remaining:
            return SendResult.transient("reconcile found no status report yet: it may still come",
                                        retry_after_seconds=remaining)
        return None

    def _remaining(self, since: datetime, now: datetime) -> float | None:
        left = (since + self.report_wait - now).total_seconds()
        return left if left > 0 else None
