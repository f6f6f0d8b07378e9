"""Tencent Cloud SMS delivery (SendSms, API 2021-01-11) on the official SDK, classified exactly.

Tencent sends by approved template: TemplateId is `message.template.ids["tencent"]`, and
TemplateParamSet the template's parameter values in its order (Tencent's {1}, {2}, ... are
positional). SessionContext carries the outbox row's idempotency key; Tencent echoes it in
status reports, so `reconcile` can tie a report to the row.

What Tencent's codes mean is notifiers/tencent/codes.py; failures without a code are
notifiers/tencent/failures.py. The SDK's own retries and its region breaker (which, after read
timeouts, sends the next requests to a backup domain) are off: the dispatcher owns retries, and
a request that timed out must never be re-sent elsewhere behind its back.

When the SMS package runs dry (FailedOperation.InsufficientBalanceInSmsPackage, or the account
is suspended for arrears), one error line is logged and further sends answer TRANSIENT at once,
without calling Tencent, for BALANCE_COOLDOWN_SECONDS: a top-up takes a human.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from requests.adapters import HTTPAdapter
from tencentcloud.common.credential import Credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException  # type: ignore[import-untyped]
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]
from tencentcloud.sms.v20210111 import models, sms_client  # type: ignore[import-untyped]

from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus
from notifiers.tencent import codes
from notifiers.tencent.failures import classify_transport, is_tencents_answer
from notifiers.tencent.reconcile import ReportMatcher, pull_request
from notifiers.tencent.settings import (
    DEFAULT_REGION,
    DEFAULT_TIMEOUT_SECONDS,
    TencentSettings,
    check,
    parse_endpoint,
    settings_from_env,
)
from notifiers.tencent.webhooks import webhook_router

BALANCE_COOLDOWN_SECONDS = 600.0
log = structlog.get_logger("notifiers.tencent")
# At DEBUG the SDK logs whole requests (numbers, texts, signatures): keep it quiet by default.
logging.getLogger("tencentcloud_sdk_common").setLevel(logging.WARNING)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # naive is UTC


# Kept-alive connections per host: at least the dispatcher's sending threads (PERMIT_DISPATCH_CONCURRENCY).
_POOL_SIZE = 32


def _size_connection_pool(client: Any) -> None:
    """Keep a kept-alive connection per sending thread. The SDK's requests.Session keeps requests'
    default of 10 per host, so with the dispatcher's 32 senders most answers throw their connection
    away and the next send opens a new one (measured: 25% fewer messages a second at 100 ms).
    Retries stay at 0: urllib3 must never re-send a POST by itself."""
    session = getattr(getattr(getattr(client, "request", None), "conn", None), "_session", None)
    if session is not None:
        for prefix in ("https://", "http://"):
            session.mount(prefix, HTTPAdapter(pool_maxsize=_POOL_SIZE, max_retries=0))


class TencentSmsNotifier:
    name = "tencent"
    channels = frozenset({"sms"})
    # Status reports and replies (notifiers/tencent/webhooks.py), for the HTTP app.
    webhook_router = staticmethod(webhook_router)

    def __init__(self, *, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str,
                 region: str = DEFAULT_REGION, endpoint: str | None = None,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, report_wait_seconds: float = 600.0) -> None:
        scheme, host = parse_endpoint(endpoint) if endpoint else ("https", "sms.tencentcloudapi.com")
        settings = TencentSettings(secret_id=secret_id, secret_key=secret_key, sdk_app_id=sdk_app_id,
                                   sign_name=sign_name, region=region, endpoint=host, scheme=scheme,
                                   timeout_seconds=timeout_seconds)
        check(settings)
        self._settings = settings
        self.sign_name = settings.sign_name
        self._timeout = float(timeout_seconds)
        self._matcher = ReportMatcher(timedelta(seconds=report_wait_seconds))
        self._lock = threading.Lock()
        self._cooldown_until = 0.0  # time.monotonic() before which sends are short-circuited
        self._cooldown_code = ""
        try:
            credential = Credential(settings.secret_id, settings.secret_key)
        except TencentCloudSDKException:
            raise NotifierConfigError(
                "TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY must not contain spaces") from None
        http = HttpProfile(protocol=scheme, endpoint=host, reqMethod="POST", reqTimeout=self._timeout)
        profile = ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=http, language="en-US",
                                disable_region_breaker=True, retryer=None)
        self._client = sms_client.SmsClient(credential, settings.region, profile)
        _size_connection_pool(self._client)

    def __repr__(self) -> str:  # never show the key
        s = self._settings
        return f"<TencentSmsNotifier app={s.sdk_app_id} region={s.region} endpoint={s.scheme}://{s.endpoint}>"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TencentSmsNotifier:
        s = settings_from_env(env)
        return cls(secret_id=s.secret_id, secret_key=s.secret_key, sdk_app_id=s.sdk_app_id, sign_name=s.sign_name,
                   region=s.region, endpoint=f"{s.scheme}://{s.endpoint}", timeout_seconds=s.timeout_seconds)

    # -- sending -------------------------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        if message.channel not in self.channels:
            return SendResult.permanent(f"tencent carries sms only, not {message.channel!r}")
        template_id = message.template.ids.get(self.name) if message.template is not None else None
        if not template_id:
            kind = message.template.kind if message.template is not None else "(none)"
            return SendResult.permanent(f"no approved Tencent SMS template for {kind!r}: file one and add its id",
                                        error_code="no_template")
        if message.valid_until is not None and _as_utc(message.valid_until) <= datetime.now(UTC):
            return SendResult.transient("send window closed before sending")
        latched = self._latched()
        if latched is not None:
            return latched
        assert message.template is not None
        request = models.SendSmsRequest()
        request.SmsSdkAppId = self._settings.sdk_app_id
        request.SignName = self.sign_name
        request.TemplateId = template_id
        request.TemplateParamSet = [value for _, value in message.template.params]
        request.PhoneNumberSet = [message.to]
        request.SessionContext = message.idempotency_key
        try:
            response = self._client.SendSms(request)
            result = self._from_response(response, message.to)
        except Exception as exc:  # never raise out of send: classify everything
            result = self._from_exception(exc)
        return self._redact(result)

    def _from_response(self, response: Any, to: str) -> SendResult:
        statuses = list(response.SendStatusSet or [])
        status = next((item for item in statuses if item.PhoneNumber == to), statuses[0] if statuses else None)
        if status is None:
            return SendResult.ambiguous("Tencent answered without a SendStatusSet: may have been accepted")
        if status.Code == codes.OK:
            return SendResult.sent(status.SerialNo or None)
        return self._verdict(status.Code or "", status.Message or "")

    def _from_exception(self, exc: Exception) -> SendResult:
        if isinstance(exc, TencentCloudSDKException) and is_tencents_answer(exc):
            return self._verdict(exc.get_code() or "", exc.get_message() or "")
        return classify_transport(exc, self._timeout)

    def _verdict(self, code: str, detail: str) -> SendResult:
        rule = codes.rule_for(code)
        text = f"tencent {code}: {detail}".rstrip(": ")
        if rule.kind is codes.Kind.PERMANENT:
            return SendResult.permanent(text, error_code=code)
        if rule.kind is codes.Kind.UNSUBSCRIBED:
            return SendResult.unsubscribed(f"{text} (the number unsubscribed)", error_code=code)
        if rule.kind is codes.Kind.AMBIGUOUS:
            return SendResult(SendStatus.AMBIGUOUS, error=f"{text}: may have been accepted", error_code=code)
        if rule.kind is codes.Kind.BALANCE:
            self._latch(code)
        if rule.kind is codes.Kind.CONFIG:
            text = (f"{text}: check TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY" if code.startswith("AuthFailure")
                    else f"{text}: check PERMIT_TENCENT_SMS_SDK_APP_ID and the account's settings")
        retry_after = codes.retry_after_seconds(rule, datetime.now(UTC))
        return SendResult(SendStatus.TRANSIENT, error=text, retry_after_seconds=retry_after, error_code=code)

    def _latch(self, code: str) -> None:
        with self._lock:
            first = time.monotonic() >= self._cooldown_until
            self._cooldown_until = time.monotonic() + BALANCE_COOLDOWN_SECONDS
            self._cooldown_code = code
        if first:
            log.error("tencent.sms_balance_exhausted", code=code, cooldown_seconds=BALANCE_COOLDOWN_SECONDS,
                      action="top up the SMS package; sends are held without calling Tencent meanwhile")

    def _latched(self) -> SendResult | None:
        with self._lock:
            remaining, code = self._cooldown_until - time.monotonic(), self._cooldown_code
        if remaining <= 0:
            return None
        return SendResult(SendStatus.TRANSIENT, error=f"tencent {code}: held for {remaining:.0f}s more, not sent",
                          retry_after_seconds=codes.EXACT[code].retry_after, error_code=code)

    def _redact(self, result: SendResult) -> SendResult:
        # Belt and braces: no error string may carry a credential.
        if result.error is None:
            return result
        error = result.error.replace(self._settings.secret_key, "[redacted]")
        return replace(result, error=error.replace(self._settings.secret_id, "[secret-id]"))

    # -- reconciling ---------------------------------------------------------------------------
    def reconcile(self, message: Message, since: datetime) -> SendResult | None:
        """Look for a status report carrying this row's key (see notifiers/tencent/reconcile.py)."""
        now = datetime.now(UTC)
        request = pull_request(self._settings.sdk_app_id, message.to, _as_utc(since), now)
        try:
            response = self._client.PullSmsSendStatusByPhoneNumber(request)
        except Exception as exc:  # the lookup failed: neither resend nor give up yet
            return self._redact(self._lookup_failed(exc))
        return self._matcher.match(list(response.PullSmsSendStatusSet or []), message.idempotency_key,
                                   _as_utc(since), now)

    def _lookup_failed(self, exc: Exception) -> SendResult:
        if isinstance(exc, TencentCloudSDKException) and is_tencents_answer(exc):
            code = exc.get_code() or ""
            retry_after = codes.retry_after_seconds(codes.rule_for(code), datetime.now(UTC))
            return SendResult(SendStatus.TRANSIENT, error=f"reconcile lookup failed: tencent {code}",
                              retry_after_seconds=retry_after, error_code=code)
        reason = classify_transport(exc, self._timeout).error
        return SendResult.transient(f"reconcile lookup failed: {reason}")
