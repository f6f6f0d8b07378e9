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

import requests
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # type: ignore[import-untyped]

from notifiers.base import SendResult
from notifiers.net_errors import exception_chain, failed_before_sending, root_reason

# Raised by the SDK itself before any request is built or sent.
_LOCAL_CODES = frozenset({"ClientError", "ClientParamsError", "InvalidCredential"})




def _reason(exc: BaseException) -> str:
    return root_reason(exc, (TencentCloudSDKException,))


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
        return SendResult.transient(f"TLS handshake with {what} failed ({_reason(exc)}): nothing was sent")
    if isinstance(network, requests.exceptions.ConnectionError):
        if failed_before_sending(network):
            return SendResult.transient(f"could not connect to {what} ({_reason(exc)}): nothing was sent")
        return SendResult.ambiguous(f"connection to {what} dropped after sending ({_reason(exc)})")
    if network is not None:  # ChunkedEncodingError, ContentDecodingError: the answer had begun
        return SendResult.ambiguous(f"{what}'s answer broke off ({_reason(exc)})")
    if isinstance(exc, TencentCloudSDKException):
        code = exc.get_code() or ""
        if code == "ServerNetworkError":
            return SendResult.ambiguous(f"{what} answered with an HTTP status other than 200: may have been accepted")
        if code in _LOCAL_CODES:
            return SendResult.transient(f"the SDK refused the request ({code}): nothing was sent")
        # JSONDecodeError, KeyError, ...: a 200 whose body we could not read.
        return SendResult.ambiguous(f"{what} answered 200 with an unreadable body ({code})")
    return SendResult.transient(f"unexpected {type(exc).__name__} while calling {what}")
