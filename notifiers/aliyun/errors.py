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
from collections import deque
from collections.abc import Iterator

import requests
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException  # type: ignore[import-untyped]
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from notifiers.aliyun.codes import Rule, Verdict, api_rule
from notifiers.base import SendResult, SendStatus

_SDK_PREFIX = re.compile(r"^code: \d+, ")
_REQUEST_ID = re.compile(r" request id: \S*$")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: __cause__/__context__, inner_exception, urllib3's .reason, args."""
    seen: set[int] = set()
    pending: deque[BaseException] = deque([exc])
    while pending:
        current = pending.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "inner_exception", None),
                  getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def root_reason(exc: BaseException) -> str:
    """A short cause like "ConnectionRefusedError: [Errno 111] Connection refused", without URLs
    (the SDK's messages carry the whole query string: phone numbers and template values)."""
    found = list(chain(exc))
    wrappers = (requests.exceptions.RequestException, MaxRetryError)
    names = [type(e).__name__ for e in found if not isinstance(e, wrappers) and type(e).__name__ not in
             ("UnretryableException", "RetryError")]
    errno_text = next((f"[Errno {e.errno}] {e.strerror}" for e in found if isinstance(e, OSError) and e.strerror), "")
    name = names[-1] if names else type(exc).__name__
    return f"{name}: {errno_text}" if errno_text else name


def _aliyun_message(text: str) -> str:
    """Aliyun's own message, without the SDK's "code: 400, " prefix and " request id: ..." suffix."""
    return _REQUEST_ID.sub("", _SDK_PREFIX.sub("", text, count=1)).strip()


def _first(exc: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    return next((e for e in chain(exc) if isinstance(e, kind)), None)


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
        return SendResult.transient(f"TLS handshake with Aliyun failed ({root_reason(exc)}): nothing was sent"), None
    if _first(exc, requests.exceptions.ConnectionError) is not None:
        before = (ConnectTimeoutError, ConnectionRefusedError, socket.gaierror)
        if _first(exc, before) is not None:
            return SendResult.transient(f"could not connect to Aliyun ({root_reason(exc)}): nothing was sent"), None
        return SendResult.ambiguous(f"connection to Aliyun dropped after sending ({root_reason(exc)})"), None
    if _first(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return SendResult.ambiguous(f"Aliyun's answer broke off ({root_reason(exc)})"), None
    if _first(exc, ValueError) is not None:  # JSONDecodeError: an answer came that cannot be read
        return SendResult.ambiguous("Aliyun answered with an unreadable body: may have been accepted"), None
    return SendResult.transient(f"unexpected {root_reason(exc)} while calling Aliyun"), None
