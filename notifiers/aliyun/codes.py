"""What Aliyun's SMS codes mean for the dispatcher: one table, so the verdicts can be read and reviewed.

Two kinds of codes exist. API codes come back from SendSms (in a 200 whose `Code` is not "OK", or in
an HTTP error from the OpenAPI gateway); receipt codes arrive later in SmsReport pushes and in
QuerySendDetails' `ErrCode`. Sources: 国内消息API错误码 (help.aliyun.com/document_detail/101346.html),
回执错误码 (help.aliyun.com/document_detail/101347.html), 短信发送频率限制 (knowledge_detail/44335.html).

Verdicts for API codes:

* PERMANENT: retrying this message cannot help. `config=True` marks codes that are "permanent for
  everyone": a template or signature that is not approved, a blocked source IP. Every message fails
  the same way until an operator fixes the console, so those are also logged as errors.
* RATE_LIMITED: transient with a fixed wait. isv.BUSINESS_LIMIT_CONTROL is the per-number flow
  control (1/min, 5/hour for codes; 50/day per signature+template+number for notices, counted over a
  rolling 24 h): an hour clears the minute and hour limits, and the dispatcher's attempt cap keeps a
  day-limit hit from looping; sooner would only burn attempts.
* ACCOUNT_STOP: the whole account cannot send (balance, suspension, the console's own daily/monthly
  quota, product not subscribed): transient with a long wait, and the notifier stops calling the API
  for a cool-down (see transport.py).
* AUTH: credentials or RAM permissions: a configuration problem that must not burn messages: transient.
* AMBIGUOUS: Aliyun's side failed after taking the request (isp.SYSTEM_ERROR): reconcile first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Verdict(enum.Enum):
    PERMANENT = "permanent"
    RATE_LIMITED = "rate_limited"
    ACCOUNT_STOP = "account_stop"
    AUTH = "auth"
    AMBIGUOUS = "ambiguous"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class Rule:
    verdict: Verdict
    meaning: str
    retry_after_seconds: float | None = None
    config: bool = False  # permanent for every message, not just this one


# One hour: see the module docstring (BUSINESS_LIMIT_CONTROL's minute/hour windows, rolling day).
FLOW_CONTROL_RETRY_SECONDS = 3600.0
# Balance and suspension need a person (a top-up, a ticket): look again in half an hour.
ACCOUNT_STOP_RETRY_SECONDS = 1800.0

_P, _R, _S, _A, _M = Verdict.PERMANENT, Verdict.RATE_LIMITED, Verdict.ACCOUNT_STOP, Verdict.AUTH, Verdict.AMBIGUOUS

API_CODES: Mapping[str, Rule] = {
    # This message: the number, the parameters or the content (doc 101346).
    "isv.MOBILE_NUMBER_ILLEGAL": Rule(_P, "invalid mobile number"),
    "isv.MOBILE_COUNT_OVER_LIMIT": Rule(_P, "too many numbers in one request"),
    "isv.TEMPLATE_MISSING_PARAMETERS": Rule(_P, "a template variable has no value"),
    "isv.INVALID_JSON_PARAM": Rule(_P, "TemplateParam is not a JSON object of strings"),
    "isv.INVALID_PARAMETERS": Rule(_P, "invalid parameters"),
    "isv.PARAM_LENGTH_LIMIT": Rule(_P, "a parameter value is too long"),
    "isv.PARAM_NOT_SUPPORT_URL": Rule(_P, "URLs are not allowed in template variables"),
    "isv.BLACK_KEY_CONTROL_LIMIT": Rule(_P, "a template variable holds a blocked keyword"),
    "isv.SMS_CONTENT_ILLEGAL": Rule(_P, "the content is not allowed"),
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": Rule(_P, "an international template cannot go to a mainland number"),
    # Everyone: console configuration (doc 101346).
    "isv.SMS_TEMPLATE_ILLEGAL": Rule(_P, "template not approved or not this account's", config=True),
    "isv.SMS_SIGNATURE_ILLEGAL": Rule(_P, "signature not approved or not this account's", config=True),
    "isv.SMS_SIGN_ILLEGAL": Rule(_P, "signature forbidden", config=True),
    "isv.SIGN_STATE_ILLEGAL": Rule(_P, "signature is in the unusable state", config=True),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": Rule(_P, "signature and template types do not match", config=True),
    "isv.EXTEND_CODE_ERROR": Rule(_P, "extension code shared between signatures", config=True),
    "isv.DENY_IP_RANGE": Rule(_P, "the source IP is outside mainland China", config=True),
    # Flow control (doc 101346, knowledge_detail 44335).
    "isv.BUSINESS_LIMIT_CONTROL": Rule(_R, "flow control for this number", FLOW_CONTROL_RETRY_SECONDS),
    # The account (doc 101346).
    "isv.AMOUNT_NOT_ENOUGH": Rule(_S, "account balance too low", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.OUT_OF_SERVICE": Rule(_S, "service suspended (balance)", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.DAY_LIMIT_CONTROL": Rule(_S, "the console's daily send quota is reached", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.MONTH_LIMIT_CONTROL": Rule(_S, "the console's monthly send quota is reached", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.PRODUCT_UN_SUBSCRIPT": Rule(_S, "SMS is not activated for this account", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.PRODUCT_UNSUBSCRIBE": Rule(_S, "the product is not activated", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.ACCOUNT_NOT_EXISTS": Rule(_S, "the account does not exist", ACCOUNT_STOP_RETRY_SECONDS),
    "isv.ACCOUNT_ABNORMAL": Rule(_S, "the account is abnormal", ACCOUNT_STOP_RETRY_SECONDS),
    # Credentials and permissions (OpenAPI gateway; isp.RAM_PERMISSION_DENY from doc 101346).
    "InvalidAccessKeyId.NotFound": Rule(_A, "unknown AccessKeyId"),
    "InvalidAccessKeyId.Inactive": Rule(_A, "the AccessKey is disabled"),
    "SignatureDoesNotMatch": Rule(_A, "the signature does not match (wrong AccessKey secret)"),
    "IncompleteSignature": Rule(_A, "the request signature is incomplete"),
    "InvalidTimeStamp.Expired": Rule(_A, "the request time is off (check the clock)"),
    "Forbidden.RAM": Rule(_A, "the RAM user may not call this API"),
    "Forbidden.AccessKeyDisabled": Rule(_A, "the AccessKey is disabled"),
    "isp.RAM_PERMISSION_DENY": Rule(_A, "the RAM user lacks AliyunDysmsFullAccess"),
    # Aliyun's side.
    "isp.SYSTEM_ERROR": Rule(_M, "Aliyun system error"),
    "isp.GATEWAY_ERROR": Rule(_M, "Aliyun gateway error"),
    "isp.UNKNOWN": Rule(_M, "Aliyun unknown error"),
}


def api_rule(code: str) -> Rule:
    """The rule for an API code. Unknown codes: an unknown platform error (isp.*) may have been taken,
    so reconcile; throttling waits; anything else was refused and is retried later, within the
    dispatcher's attempt cap, rather than burning the message on a code nobody reviewed."""
    if code in API_CODES:
        return API_CODES[code]
    if code.startswith("Throttling"):
        return Rule(_R, "the OpenAPI gateway throttled the request")
    if code.startswith("isp."):
        return Rule(_M, "unlisted Aliyun platform error")
    return Rule(Verdict.TRANSIENT, "unlisted error code")


# Receipt codes (回执错误码, doc 101347) after which sending the same message again cannot arrive:
# the number is void or suspended, the account behind it is abnormal, the holder or carrier
# blocked it, or the carrier filters the content/signature (the same text would be filtered again).
# Passing ones (MOBILE_SEND_LIMIT, MOBLLE_TERMINAL_ERROR [sic], IS_CLOSE, SP_UNKNOWN_ERROR,
# REQUEST_SUCCESS: no carrier answer in time, UNKNOWN) are undelivered but retried by the core.
PERMANENT_RECEIPT_CODES = frozenset({
    "MOBILE_NOT_ON_SERVICE",  # 停机、空号、暂停服务、关机、不在服务区
    "MOBILE_ACCOUNT_ABNORMAL",  # 用户账户异常、携号转网、欠费
    "INVALID_NUMBER",  # 号码状态异常或格式错误
    "MOBILE_IN_BLACK",  # 手机号在黑名单 (usually the holder unsubscribed from this signature)
    "USER_REJECT",  # 用户手机退订此业务
    "CONTENT_KEYWORD",  # 内容关键字拦截
    "CONTENT_ERROR",  # 推广短信内容中必须带退订信息
    "SIGNATURE_BLACKLIST",  # 签名黑名单
    "PARAMS_ILLEGAL",  # 参数错误 (signature, text or number)
    "SP_NOT_BY_INTER_SMS",  # the recipient has no international SMS
})


def receipt_is_permanent(code: str | None) -> bool:
    return (code or "").strip().upper() in PERMANENT_RECEIPT_CODES
