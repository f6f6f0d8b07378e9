"""Failures that carry no Tencent error code: did the request leave, and was it answered?

The SDK folds every transport problem into TencentCloudSDKException: "ClientNetworkError"
(requests raised while sending: the original is the exception's __context__), "ServerNetworkError"
(an HTTP status other than 200), or the name of whatever broke while the answer was read or
parsed ("ChunkedEncodingError", "JSONDecodeError", "KeyError": SendSms re-raises those under
their class name). Only an answer that Tencent itself produced carries a RequestId.

* before the request left (connection refused, DNS, connect timeout, TLS handshake): TRANSIENT;
* after it left (read timeout, dropped connection, non-200, unreadable 200): AMBIGUOUS. Tencent's
  API answers 200 for its own errors, so any other status came from a gateway in front of it,
  which may have forwarded the request.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Iterator

import requests
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # type: ignore[import-untyped]
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from notifiers.base import SendResult

# Raised by the SDK itself before any request is built or sent.
_LOCAL_CODES = frozenset({"ClientError", "ClientParamsError", "InvalidCredential"})


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: __cause__/__context__, exception args, urllib3's .reason."""
    seen: set[int] = set()
    pending: deque[BaseException] = deque([exc])
    while pending:
        current = pending.popleft()  # breadth first: outer wrappers before their causes
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def root_reason(exc: BaseException) -> str:
    """A short cause like "NewConnectionError: [Errno 111] Connection refused", without URLs."""
    chain = list(exception_chain(exc))
    wrappers = (requests.exceptions.RequestException, MaxRetryError, TencentCloudSDKException)
    names = [type(item).__name__ for item in chain if not isinstance(item, wrappers)]
    errno_text = next((f"[Errno {e.errno}] {e.strerror}" for e in chain if isinstance(e, OSError) and e.strerror), "")
    name = names[0] if names else type(exc).__name__
    return f"{name}: {errno_text}" if errno_text else name


def _failed_before_sending(exc: BaseException) -> bool:
    # urllib3's NewConnectionError and NameResolutionError both subclass ConnectTimeoutError:
    # all three mean no connection was made, so no byte of the request left.
    before = (ConnectTimeoutError, ConnectionRefusedError, socket.gaierror)
    return any(isinstance(item, before) for item in exception_chain(exc))


def is_tencents_answer(exc: TencentCloudSDKException) -> bool:
    """True when the error came from Tencent's JSON answer (Response.Error with a RequestId)."""
    return bool(exc.get_request_id())


def classify_transport(exc: BaseException, timeout: float, what: str = "Tencent Cloud") -> SendResult:
    """TRANSIENT or AMBIGUOUS for an exception that is not Tencent's own verdict."""
    chain = list(exception_chain(exc))
    network = next((item for item in chain if isinstance(item, requests.exceptions.RequestException)), None)
    if isinstance(network, requests.exceptions.ConnectTimeout):
        return SendResult.transient(f"could not connect to {what} within {timeout:g}s: nothing was sent")
    if isinstance(network, requests.exceptions.ReadTimeout):
        return SendResult.ambiguous(f"no answer from {what} within {timeout:g}s after sending")
    if isinstance(network, requests.exceptions.SSLError):
        return SendResult.transient(f"TLS handshake with {what} failed ({root_reason(exc)}): nothing was sent")
    if isinstance(network, requests.exceptions.ConnectionError):
        if _failed_before_sending(network):
            return SendResult.transient(f"could not connect to {what} ({root_reason(exc)}): nothing was sent")
        return SendResult.ambiguous(f"connection to {what} dropped after sending ({root_reason(exc)})")
    if network is not None:  # ChunkedEncodingError, ContentDecodingError: the answer had begun
        return SendResult.ambiguous(f"{what}'s answer broke off ({root_reason(exc)})")
    if isinstance(exc, TencentCloudSDKException):
        code = exc.get_code() or ""
        if code == "ServerNetworkError":
            return SendResult.ambiguous(f"{what} answered with an HTTP status other than 200: may have been accepted")
        if code in _LOCAL_CODES:
            return SendResult.transient(f"the SDK refused the request ({code}): nothing was sent")
        # JSONDecodeError, KeyError, ...: a 200 whose body we could not read.
        return SendResult.ambiguous(f"{what} answered 200 with an unreadable body ({code})")
    return SendResult.transient(f"unexpected {type(exc).__name__} while calling {what}")
