"""Twilio SMS delivery on the official `twilio` SDK, with exact failure classification.

What each failure means for the dispatcher (see notifiers.base.SendStatus):

* PERMANENT: Twilio answered 4xx with its own error code about this message (21211 invalid
  number, 21610 unsubscribed, 21614 not a mobile number, 21408 region not enabled, ...).
* TRANSIENT: nothing was accepted: 429 (with Retry-After), 401/403 (credentials or account:
  a configuration problem that must not burn every message), a 4xx that did not come from
  Twilio (no Twilio error code: a proxy or a wrong PERMIT_TWILIO_BASE_URL), and failures before
  the request left (connection refused, DNS, connect timeout, TLS handshake).
* AMBIGUOUS: the request left and the answer was lost or was a 5xx (read timeout, connection
  dropped after sending, 5xx, an unreadable 2xx): Twilio may have accepted it, so the
  dispatcher must call `reconcile` before sending again.

Settings come from the environment through `from_env` (credentials never come from code). If
both TWILIO_MESSAGING_SERVICE_SID and TWILIO_FROM_NUMBER are set, the messaging service is
used and the from number is ignored (the service picks the sender from its own pool).
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import math
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notifiers.base import Message, NotifierConfigError, SendResult
from notifiers.net_errors import failed_before_sending, root_reason
from notifiers.twilio.webhooks import webhook_router

# Twilio's own limit for ValidityPeriod (seconds).
TWILIO_MAX_VALIDITY_SECONDS = 36000
# How far before `since` a listed message still counts as "ours" (clock skew between hosts).
RECONCILE_SLACK = timedelta(minutes=5)
# One page of the newest messages to that number is plenty: the lost send is minutes old.
RECONCILE_PAGE_LIMIT = 50
# Kept-alive connections per host: at least the number of concurrent sending threads.
_POOL_SIZE = 32
_SDK_PREFIX = re.compile(r"^Unable to [a-z ]+ record: ")

# The SDK logs every request URL (it contains the Account SID) and query parameters (phone
# numbers) at INFO. Give it its own logger, quiet by default, that operators can turn up.
_SDK_LOGGER = logging.getLogger("notifiers.twilio.transport.sdk")
_SDK_LOGGER.setLevel(logging.WARNING)


class _HeaderKeepingHttpClient(TwilioHttpClient):
    """TwilioHttpClient that remembers, per thread, the headers of the last answer it got.

    TwilioRestException carries no headers, so a 429's Retry-After is read from here right after
    the SDK raises. Thread-local because one notifier is shared by the dispatcher's workers.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_SDK_LOGGER)
        self._local = threading.local()
        if self.session is not None:
            # The SDK sizes the https pool by CPU count (6 on a 2-CPU box) and leaves plain http
            # (a local fake, a staging proxy) at 10; sending is I/O-bound, so keep enough
            # connections for the dispatcher's workers on both. Retries stay at requests'
            # default of 0: urllib3 must never re-send a POST by itself.
            for prefix in ("https://", "http://"):
                self.session.mount(prefix, HTTPAdapter(pool_maxsize=_POOL_SIZE))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._local.headers = None  # a failure must not leave the previous answer's headers
        response = super().request(method, url, *args, **kwargs)
        self._local.headers = response.headers  # requests' case-insensitive dict
        return response

    def last_headers(self) -> Mapping[str, str]:
        return getattr(self._local, "headers", None) or {}


def _as_utc(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = _as_utc(email.utils.parsedate_to_datetime(value))
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _twilio_detail(exc: TwilioRestException | TwilioServiceException) -> str:
    if isinstance(exc, TwilioServiceException):
        return exc.detail or exc.title or ""
    # The SDK prefixes Twilio's message with its own "Unable to create record: ".
    return _SDK_PREFIX.sub("", str(exc.msg), count=1)


def _same_body(listed: str | None, sent: str) -> bool:
    # Twilio may normalise line endings and trailing whitespace; anything else is another message.
    def norm(text: str) -> str:
        return text.replace("\r\n", "\n").strip()

    return listed is not None and norm(listed) == norm(sent)


def _is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


class TwilioSmsNotifier:
    name = "twilio"
    channels = frozenset({"sms"})
    # Its status callbacks and inbound replies (notifiers/twilio/webhooks.py), for the HTTP app.
    webhook_router = staticmethod(webhook_router)

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        status_callback_url: str | None = None,
        timeout_seconds: float = 10.0,
        max_validity_seconds: int = TWILIO_MAX_VALIDITY_SECONDS,
    ) -> None:
        if not account_sid:
            raise NotifierConfigError("TWILIO_ACCOUNT_SID is not set")
        if not account_sid.startswith("AC"):
            raise NotifierConfigError("TWILIO_ACCOUNT_SID must start with AC (an Account SID, not an API key)")
        if not auth_token:
            raise NotifierConfigError("TWILIO_AUTH_TOKEN is not set")
        if not from_number and not messaging_service_sid:
            raise NotifierConfigError("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID must be set")
        if messaging_service_sid and not messaging_service_sid.startswith("MG"):
            raise NotifierConfigError("TWILIO_MESSAGING_SERVICE_SID must start with MG")
        if base_url and not _is_http_url(base_url):
            raise NotifierConfigError("PERMIT_TWILIO_BASE_URL must be an http:// or https:// URL")
        if status_callback_url and not _is_http_url(status_callback_url):
            raise NotifierConfigError("PERMIT_TWILIO_STATUS_CALLBACK_URL must be an http:// or https:// URL")
        if not (isinstance(timeout_seconds, (int, float)) and math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise NotifierConfigError("PERMIT_TWILIO_TIMEOUT_SECONDS must be a positive number of seconds")
        if not 1 <= max_validity_seconds <= TWILIO_MAX_VALIDITY_SECONDS:
            raise NotifierConfigError(f"max_validity_seconds must be between 1 and {TWILIO_MAX_VALIDITY_SECONDS}")

        self._account_sid = account_sid
        self._auth_token = auth_token
        # A messaging service wins over a from number (documented above).
        self._messaging_service_sid = messaging_service_sid or None
        self._from_number = None if messaging_service_sid else from_number
        self._status_callback_url = status_callback_url or None
        self._timeout = float(timeout_seconds)
        self._max_validity = int(max_validity_seconds)
        self._http = _HeaderKeepingHttpClient(timeout=self._timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # The SDK reads TWILIO_EDGE/TWILIO_REGION from os.environ behind our back and rewrites
        # hostnames with them (which would mangle a 127.0.0.1 base URL): settings come only
        # from the env given to from_env.
        self._client.edge = None
        self._client.region = None
        if base_url:
            # Every request to the api domain, including paging links, is built from this.
            self._client.api.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:  # never show the token
        sender = self._messaging_service_sid or self._from_number
        return f"<TwilioSmsNotifier sender={sender} base_url={self._client.api.base_url}>"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TwilioSmsNotifier:
        def get(name: str) -> str | None:
            value = (env.get(name) or "").strip()
            return value or None  # empty counts as unset

        timeout = 10.0
        raw_timeout = get("PERMIT_TWILIO_TIMEOUT_SECONDS")
        if raw_timeout is not None:
            try:
                timeout = float(raw_timeout)
            except ValueError:
                raise NotifierConfigError(
                    f"PERMIT_TWILIO_TIMEOUT_SECONDS must be a number of seconds, got {raw_timeout!r}"
                ) from None
        callback = get("PERMIT_TWILIO_STATUS_CALLBACK_URL")
        public_url = get("PERMIT_PUBLIC_URL")
        if callback is None and public_url is not None:
            if not _is_http_url(public_url):
                raise NotifierConfigError("PERMIT_PUBLIC_URL must be an http:// or https:// URL")
            callback = f"{public_url.rstrip('/')}/webhooks/twilio/status"
        return cls(
            account_sid=get("TWILIO_ACCOUNT_SID") or "",
            auth_token=get("TWILIO_AUTH_TOKEN") or "",
            from_number=get("TWILIO_FROM_NUMBER"),
            messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
            base_url=get("PERMIT_TWILIO_BASE_URL"),
            status_callback_url=callback,
            timeout_seconds=timeout,
        )

    # -- sending -------------------------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        if message.channel not in self.channels:
            return SendResult.permanent(f"twilio carries sms only, not {message.channel!r}")
        validity = self._validity_period(message.valid_until)
        if validity is None:
            return SendResult.transient("send window closed before sending")
        params: dict[str, Any] = {"to": message.to, "body": message.body, "validity_period": validity}
        if self._messaging_service_sid:
            params["messaging_service_sid"] = self._messaging_service_sid
        else:
            params["from_"] = self._from_number
        if self._status_callback_url:
            params["status_callback"] = self._status_callback_url
        try:
            created = self._client.messages.create(**params)
        except Exception as exc:  # never raise out of send: classify everything
            return self._classify(exc)
        return SendResult.sent(created.sid)

    def _validity_period(self, valid_until: datetime | None) -> int | None:
        """Seconds Twilio may keep trying; None when the window has already closed."""
        if valid_until is None:
            return self._max_validity
        remaining = (_as_utc(valid_until) - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return None
        return max(1, min(self._max_validity, math.ceil(remaining)))

    def _classify(self, exc: Exception) -> SendResult:
        result = self._classify_unredacted(exc)
        return dataclasses.replace(result, error=self._redact(result.error))

    def _classify_unredacted(self, exc: Exception) -> SendResult:
        if isinstance(exc, (TwilioRestException, TwilioServiceException)):
            return self._classify_answer(int(exc.status), exc.code, _twilio_detail(exc))
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return SendResult.transient(f"could not connect to Twilio within {self._timeout:g}s: nothing was sent")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return SendResult.ambiguous(f"no answer from Twilio within {self._timeout:g}s after sending")
        if isinstance(exc, requests.exceptions.SSLError):
            return SendResult.transient(f"TLS handshake with Twilio failed ({root_reason(exc)}): nothing was sent")
        if isinstance(exc, requests.exceptions.ConnectionError):
            if failed_before_sending(exc):
                return SendResult.transient(f"could not connect to Twilio ({root_reason(exc)}): nothing was sent")
            return SendResult.ambiguous(f"connection to Twilio dropped after sending ({root_reason(exc)})")
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            # Twilio had started answering, so it had the whole request.
            return SendResult.ambiguous(f"Twilio's answer broke off ({root_reason(exc)})")
        if isinstance(exc, json.JSONDecodeError):
            # The SDK only parses the body of a 2xx: Twilio accepted something we cannot read.
            return SendResult.ambiguous("Twilio answered 2xx with an unreadable body")
        return SendResult.transient(f"unexpected {type(exc).__name__} while sending through Twilio")

    def _classify_answer(self, status: int, code: int | None, detail: str) -> SendResult:
        # Without a JSON body the SDK reports the HTTP status as the code: not Twilio's verdict.
        twilio_code = code if code is not None and code != status else None
        if status >= 500:
            return SendResult.ambiguous(
                f"twilio {twilio_code or status}: {detail} (HTTP {status}): may have been accepted")
        if status == 429 or twilio_code == 20429:
            retry_after = _parse_retry_after(self._http.last_headers().get("Retry-After"))
            return SendResult.transient(f"twilio {twilio_code or 429}: rate limited: {detail}", retry_after)
        if status in (401, 403) or twilio_code == 20003:
            return SendResult.transient(
                "authentication failed: check TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN "
                f"(twilio {twilio_code or status}, HTTP {status})"
            )
        if 400 <= status < 500 and status != 408 and twilio_code is not None:
            if twilio_code == 21610:  # the recipient replied STOP: Twilio will not deliver to them again
                return SendResult.unsubscribed(f"twilio 21610: {detail}", error_code="21610")
            return SendResult.permanent(f"twilio {twilio_code}: {detail}", error_code=str(twilio_code))
        return SendResult.transient(
            f"unexpected HTTP {status} without a Twilio error code: check PERMIT_TWILIO_BASE_URL ({detail})"
        )

    def _redact(self, text: str | None) -> str | None:
        # Belt and braces: no error string may carry a credential (the SID is in every URL).
        if text is None:
            return None
        return text.replace(self._auth_token, "[redacted]").replace(self._account_sid, "[account]")

    # -- reconciling ---------------------------------------------------------------------------
    def reconcile(self, message: Message, since: datetime) -> SendResult | None:
        """Find a message Twilio accepted for this (to, body) since `since`, minus a slack.

        Filters by To only: a queued or accepted message has no DateSent yet, so a DateSent>
        filter would hide exactly the message we look for. date_created is checked here, and a
        message without one (just queued) counts by to and body.
        """
        earliest = _as_utc(since) - RECONCILE_SLACK
        try:
            listed = self._client.messages.list(to=message.to, limit=RECONCILE_PAGE_LIMIT)
        except Exception as exc:  # the lookup failed: neither resend nor give up yet
            return self._lookup_failed(exc)
        for item in listed:
            if item.to != message.to or not _same_body(item.body, message.body):
                continue
            created = item.date_created
            if isinstance(created, datetime) and _as_utc(created) < earliest:
                continue  # an older message with the same text (e.g. yesterday's reminder)
            return SendResult.sent(item.sid)
        return None

    def _lookup_failed(self, exc: Exception) -> SendResult:
        if isinstance(exc, (TwilioRestException, TwilioServiceException)):
            status: int | None = int(exc.status)
        else:
            # A list answer other than 200 surfaces as a bare TwilioException("...", response).
            answer = next((arg for arg in exc.args if isinstance(arg, Response)), None)
            status = answer.status_code if isinstance(exc, TwilioException) and answer is not None else None
        if status is None:
            return SendResult.transient(self._redact(f"reconcile lookup failed: {root_reason(exc)}") or "")
        retry_after = _parse_retry_after(self._http.last_headers().get("Retry-After")) if status == 429 else None
        return SendResult.transient(f"reconcile lookup failed: HTTP {status} from Twilio", retry_after)
