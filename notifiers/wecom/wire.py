"""HTTP for both WeCom notifiers: a pooled session without retries, UTF-8 JSON, and exact
classification of what went wrong on the wire.

* Retries are off (requests' default of 0, set explicitly): urllib3 must never re-send a POST by
  itself; the dispatcher owns retries.
* Bodies are UTF-8 JSON with `ensure_ascii=False`: WeCom documents 40033 (不合法的请求字符, "must
  not contain \\uxxxx") and its byte limits count UTF-8 bytes, so Chinese text goes out as is. The
  encoding is deterministic, which WeCom's duplicate check (same request JSON) relies on.
* Exception text is never used in errors: requests puts the full URL in it, and WeCom URLs carry
  the access token, the corp secret (gettoken) or the robot key. Only type names and errno are kept.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from notifiers.base import SendResult

# One reading of failed HTTP calls for every provider: the cause chain, "did a byte leave?", and
# a short cause with type names and errno only (never the text: it holds the URL and its token).
from notifiers.net_errors import failed_before_sending, root_reason

# Kept-alive connections per host: at least the number of concurrent sending threads.
POOL_SIZE = 32


def make_session() -> requests.Session:
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=0))
    return session


def encode_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def request_failure(exc: Exception, service: str, timeout: float, *, side_effect: bool = True) -> SendResult:
    """Classify an exception from a request. `side_effect=False` (gettoken): nothing can have been
    delivered whatever happened, so everything is TRANSIENT."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return SendResult.transient(f"could not connect to {service} within {timeout:g}s: nothing was sent")
    if isinstance(exc, requests.exceptions.SSLError):
        return SendResult.transient(f"TLS handshake with {service} failed ({root_reason(exc)}): nothing was sent")
    before = isinstance(exc, requests.exceptions.ConnectionError) and failed_before_sending(exc)
    if before:
        return SendResult.transient(f"could not connect to {service} ({root_reason(exc)}): nothing was sent")
    if not side_effect:
        return SendResult.transient(f"{service} request failed ({root_reason(exc)})")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return SendResult.ambiguous(f"no answer from {service} within {timeout:g}s after sending")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return SendResult.ambiguous(f"connection to {service} dropped after sending ({root_reason(exc)})")
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return SendResult.ambiguous(f"{service}'s answer broke off ({root_reason(exc)})")
    return SendResult.transient(f"unexpected {type(exc).__name__} while calling {service}")


def read_answer(response: requests.Response, service: str, *, side_effect: bool = True) -> dict[str, Any] | SendResult:
    """The JSON object WeCom answered, or the SendResult for an answer that is not one."""
    status = response.status_code
    if status >= 500:
        text = f"{service} answered HTTP {status}"
        return SendResult.ambiguous(f"{text}: may have been delivered") if side_effect else SendResult.transient(text)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("errcode"), int):
        return answer
    if status != 200:
        # No WeCom errcode: a proxy, a gateway, or a wrong base URL answered.
        return SendResult.transient(f"unexpected HTTP {status} without a WeCom errcode: check the configured URL")
    if side_effect:
        return SendResult.ambiguous(f"{service} answered 200 with an unreadable body: may have been delivered")
    return SendResult.transient(f"{service} answered 200 with an unreadable body")
