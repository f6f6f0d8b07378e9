"""Turning what the Aliyun SDK raises or answers into a SendResult, by what may have reached Aliyun.

The SDK (darabonba) hides transport failures: `requests`' exception is re-raised as a bare RetryError
(the original is its __context__) and wrapped in an UnretryableException (`inner_exception`). HTTP
answers >= 400 come back as Client/Server/ThrottlingException with Aliyun's `code`. So the chain is
walked to find the real cause:

* nothing left (connection refused, DNS, connect timeout, TLS handshake): TRANSIENT;
* the request left and the answer was lost, was a 5xx, or was unreadable: AMBIGUOUS;
* Aliyun answered with a code: the table in codes.py decides.
"""

from __future__ import annotations

import re
import socket

import requests
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException  # type: ignore[import-untyped]
from urllib3.exceptions import ConnectTimeoutError

from notifiers.aliyun.codes import Rule, Verdict, api_rule
from notifiers.base import SendResult, SendStatus
from notifiers.net_errors import exception_chain, root_reason

_SDK_PREFIX = re.compile(r"^code: \d+, ")
_REQUEST_ID = re.compile(r" request id: \S*$")


def _reason(exc: BaseException) -> str:
    # darabonba's own wrappers say nothing: the innermost cause does (its messages carry the
    # whole query string, phone numbers and template values, so no message is quoted).
    return root_reason(exc, wrapper_names=("UnretryableException", "RetryError"), innermost=True)


def _aliyun_message(text: str) -> str:
    """Aliyun's own message, without the SDK's "code: 400, " prefix and " request id: ..." suffix."""
    return _REQUEST_ID.sub("", _SDK_PREFIX.sub("", text, count=1)).strip()


def _first(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    return next((e for e in exception_chain(exc) if isinstance(e, kind)), None)


def from_rule(code: str, rule: Rule, detail: str, retry_after: float | None = None) -> SendResult:
    text = f"aliyun {code}: {detail or rule.meaning}"
    if rule.verdict is Verdict.PERMANENT:
        suffix = " (console configuration: every message fails the same way)" if rule.config else ""
        return SendResult.permanent(text + suffix, error_code=code)
    if rule.verdict is Verdict.AMBIGUOUS:
        return SendResult.ambiguous(f"{text}: may have been accepted")
    if rule.verdict is Verdict.AUTH:
        return SendResult(SendStatus.TRANSIENT, error=f"{text}: check ALIBABA_CLOUD_ACCESS_KEY_ID/"
                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET and the RAM policy", error_code=code)
    wait = retry_after if retry_after is not None else rule.retry_after_seconds
    return SendResult(SendStatus.TRANSIENT, error=text, retry_after_seconds=wait, error_code=code)


def classify_exception(exc: BaseException, timeout: float) -> tuple[SendResult, Rule | None]:
    """The result for an exception out of the SDK, and the code's rule when Aliyun answered one."""
    answered = _first(exc, AlibabaCloudException)
    if isinstance(answered, AlibabaCloudException):
        status = int(answered.status_code or 0)
        code = str(answered.code or "")
        detail = _aliyun_message(str(answered.message or ""))
        if status >= 500:
            return SendResult.ambiguous(f"aliyun {code or status} (HTTP {status}): may have been accepted"), None
        rule = api_rule(code)
        wait = None
        if isinstance(answered, ThrottlingException) and answered.retry_after:
            wait = float(answered.retry_after) / 1000  # the SDK keeps x-acs-retry-after in milliseconds
        return from_rule(code or f"HTTP {status}", rule, f"{detail} (HTTP {status})", wait), rule
    if _first(exc, requests.exceptions.ConnectTimeout) is not None:
        return SendResult.transient(f"could not connect to Aliyun within {timeout:g}s: nothing was sent"), None
    if _first(exc, requests.exceptions.ReadTimeout) is not None:
        return SendResult.ambiguous(f"no answer from Aliyun within {timeout:g}s after sending"), None
    if _first(exc, requests.exceptions.SSLError) is not None:
        return SendResult.transient(f"TLS handshake with Aliyun failed ({_reason(exc)}): nothing was sent"), None
    if _first(exc, requests.exceptions.ConnectionError) is not None:
        before = (ConnectTimeoutError, ConnectionRefusedError, socket.gaierror)
        if _first(exc, before) is not None:
            return SendResult.transient(f"could not connect to Aliyun ({_reason(exc)}): nothing was sent"), None
        return SendResult.ambiguous(f"connection to Aliyun dropped after sending ({_reason(exc)})"), None
    if _first(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return SendResult.ambiguous(f"Aliyun's answer broke off ({_reason(exc)})"), None
    if _first(exc, ValueError) is not None:  # JSONDecodeError: an answer came that cannot be read
        return SendResult.ambiguous("Aliyun answered with an unreadable body: may have been accepted"), None
    return SendResult.transient(f"unexpected {_reason(exc)} while calling Aliyun"), None
