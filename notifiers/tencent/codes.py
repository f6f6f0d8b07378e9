"""What Tencent Cloud SMS error codes mean for the dispatcher: one table, one lookup.

The same code space appears in two places: a top-level `Response.Error.Code` (the whole request
was refused) and a per-number `SendStatusSet[].Code` (this number was refused; "Ok" when
accepted). Sources: Tencent's SMS 2021-01-11 error code page
(https://cloud.tencent.com/document/api/382/52075: the common codes AuthFailure.*,
RequestLimitExceeded*, InternalError, ... and the SMS codes), the SDK's copy of the SMS codes
with their descriptions (tencentcloud/sms/v20210111/errorcodes.py), and SendStatus.Code's own
pointer (https://cloud.tencent.com/document/product/382/59177, "发送错误码").

Unknown codes are TRANSIENT: nothing is known to have been accepted, and max_attempts bounds the
retries, whereas PERMANENT would give up on the holder for a code we have never seen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

OK = "Ok"
SHANGHAI = ZoneInfo("Asia/Shanghai")  # Tencent's daily quotas are counted per natural day, Beijing time


class Kind(enum.Enum):
    PERMANENT = "permanent"  # about this message, number or template: the same request fails again
    UNSUBSCRIBED = "unsubscribed"  # PERMANENT, and the person opted out
    RATE_LIMITED = "rate_limited"  # TRANSIENT with a retry_after
    CONFIG = "config"  # TRANSIENT: credentials, app or account settings; must not burn messages
    BALANCE = "balance"  # TRANSIENT, long: the SMS package is empty; latches sends off for a while
    AMBIGUOUS = "ambiguous"  # Tencent's side failed mid-way: the message may have gone out
    TRANSIENT = "transient"  # refused before sending, for a reason that may pass


@dataclass(frozen=True)
class Rule:
    kind: Kind
    retry_after: float | None = None  # seconds; None for "next day" rules, computed at lookup
    next_day: bool = False


_PERMANENT = Rule(Kind.PERMANENT)
_CONFIG = Rule(Kind.CONFIG)
_AMBIGUOUS = Rule(Kind.AMBIGUOUS)
_TRANSIENT = Rule(Kind.TRANSIENT)
_NEXT_DAY = Rule(Kind.RATE_LIMITED, next_day=True)

# Exact codes first; then the prefix rules below.
EXACT: dict[str, Rule] = {
    # -- the person unsubscribed (免打扰名单: replied TD, or the carrier's do-not-disturb list)
    "FailedOperation.PhoneNumberInBlacklist": Rule(Kind.UNSUBSCRIBED),
    # -- this number, template, signature or content cannot be sent as it is
    "InvalidParameterValue.IncorrectPhoneNumber": _PERMANENT,
    "FailedOperation.PhoneNumberParseFail": _PERMANENT,
    "FailedOperation.TemplateIncorrectOrUnapproved": _PERMANENT,
    "FailedOperation.TemplateUnapprovedOrNotExist": _PERMANENT,
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": _PERMANENT,
    "FailedOperation.TemplateIdNotExist": _PERMANENT,
    "FailedOperation.MissingTemplateList": _PERMANENT,
    "FailedOperation.SignatureIncorrectOrUnapproved": _PERMANENT,
    "FailedOperation.MissingSignatureList": _PERMANENT,
    "FailedOperation.ContainSensitiveWord": _PERMANENT,
    "InvalidParameter.DirtyWordFound": _PERMANENT,
    "InvalidParameterValue.TemplateParameterFormatError": _PERMANENT,
    "InvalidParameterValue.TemplateParameterLengthLimit": _PERMANENT,
    "InvalidParameterValue.ContentLengthLimit": _PERMANENT,
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": _PERMANENT,
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber": _PERMANENT,
    "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone": _PERMANENT,
    "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone": _PERMANENT,
    "UnsupportedOperation.ContainDomesticPhoneNumber": _PERMANENT,
    "UnsupportedOperation.UnsupportedRegion": _PERMANENT,
    "LimitExceeded.AppCountryOrRegionInBlacklist": _PERMANENT,  # region not allowed for the app (cf. Twilio 21408)
    "LimitExceeded.PhoneNumberCountLimit": _PERMANENT,  # > 200 numbers: our request is wrong, not a rate
    "MissingParameter.EmptyPhoneNumberSet": _PERMANENT,
    # -- rate limits (频率限制): per number, per app, per day
    "LimitExceeded.PhoneNumberThirtySecondLimit": Rule(Kind.RATE_LIMITED, 30.0),
    "LimitExceeded.PhoneNumberOneHourLimit": Rule(Kind.RATE_LIMITED, 3600.0),
    "LimitExceeded.DeliveryFrequencyLimit": Rule(Kind.RATE_LIMITED, 60.0),
    "LimitExceeded.GlobalSmsSendingRateLimit": Rule(Kind.RATE_LIMITED, 5.0),
    "LimitExceeded.PhoneNumberDailyLimit": _NEXT_DAY,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": _NEXT_DAY,
    "LimitExceeded.AppDailyLimit": _NEXT_DAY,
    "LimitExceeded.AppMainlandChinaDailyLimit": _NEXT_DAY,
    "LimitExceeded.AppGlobalDailyLimit": _NEXT_DAY,
    "LimitExceeded.AppCountryOrRegionDailyLimit": _NEXT_DAY,
    "LimitExceeded.DailyLimit": _NEXT_DAY,
    # The API's own request rate (common error codes), not SMS quotas.
    "RequestLimitExceeded": Rule(Kind.RATE_LIMITED, 1.0),
    "RequestLimitExceeded.UinLimitExceeded": Rule(Kind.RATE_LIMITED, 1.0),
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": Rule(Kind.RATE_LIMITED, 1.0),
    "RequestLimitExceeded.IPLimitExceeded": Rule(Kind.RATE_LIMITED, 1.0),
    # -- the account has run dry: a human must top up (套餐包余量不足 / 欠费停服)
    "FailedOperation.InsufficientBalanceInSmsPackage": Rule(Kind.BALANCE, 3600.0),
    "UnauthorizedOperation.ServiceSuspendDueToArrears": Rule(Kind.BALANCE, 3600.0),
    # -- InternalError.* is AMBIGUOUS (below), except these, refused before anything was sent
    "InternalError.RequestTimeException": _CONFIG,  # our clock is > 10 min off
    "InternalError.SigFieldMissing": _CONFIG,
    "InternalError.SigVerificationFail": _CONFIG,
    "InternalError.RestApiInterfaceNotExist": _CONFIG,
    "FailedOperation.MarketingSendTimeConstraint": Rule(Kind.RATE_LIMITED, 3600.0),  # marketing only 8-22 h
    "ServiceUnavailable": _AMBIGUOUS,
    "IpNotInWhitelist": _CONFIG,
    "IpInBlacklist": _CONFIG,
    "InvalidAction": _CONFIG,  # wrong endpoint or API version
    "NoSuchVersion": _CONFIG,
}

# Longest prefix wins. A bare family name (e.g. "InternalError") matches itself too.
PREFIXES: tuple[tuple[str, Rule], ...] = (
    ("AuthFailure", _CONFIG),
    ("UnauthorizedOperation", _CONFIG),  # SdkAppId mismatch, IP whitelist, disabled app
    ("InternalError", _AMBIGUOUS),  # InternalError.Timeout, SendAndRecvFail, OtherError, ...
    ("LimitExceeded", Rule(Kind.RATE_LIMITED, 60.0)),
    ("InvalidParameterValue", _PERMANENT),
    ("InvalidParameter", _PERMANENT),
    ("MissingParameter", _PERMANENT),
    ("UnknownParameter", _PERMANENT),
    ("UnsupportedOperation", _PERMANENT),
)


def rule_for(code: str) -> Rule:
    if code in EXACT:
        return EXACT[code]
    family = code.split(".", 1)[0]
    for prefix, rule in PREFIXES:
        if family == prefix:
            return rule
    return _TRANSIENT


def retry_after_seconds(rule: Rule, now: datetime) -> float | None:
    """The rule's wait; for daily quotas, until a few minutes past the next midnight in Beijing."""
    if not rule.next_day:
        return rule.retry_after
    local = now.astimezone(SHANGHAI)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), SHANGHAI)
    return (midnight - local).total_seconds() + 300.0
