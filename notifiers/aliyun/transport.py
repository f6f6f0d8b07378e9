"""Alibaba Cloud SMS (dysmsapi 2017-05-25) on the official SDK: template sends, exact classification.

SendSms sends an approved template (`message.template.ids["aliyun"]`) with its parameters as a JSON
object of strings, under the filed signature PERMIT_ALIYUN_SMS_SIGN_NAME; the outbox row's
idempotency key rides in OutId, which Aliyun echoes in receipts and QuerySendDetails. A 200 whose
Code is not "OK" is a refusal the SDK returns normally, so `body.code` is checked. What each failure
means is in codes.py (Aliyun's codes) and errors.py (transport failures).

SendSms is not idempotent (Aliyun says so), so the SDK's own retries stay off (no retry options, and
RuntimeOptions autoretry=False) and a lost answer is AMBIGUOUS: `reconcile` pages through
QuerySendDetails for the number and matches OutId. When the account cannot send at all (balance,
suspension, quota), further sends are refused here, without calling Aliyun, for a cool-down.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import structlog
from alibabacloud_dysmsapi20170525.client import Client  # type: ignore[import-untyped]
from alibabacloud_dysmsapi20170525.models import SendSmsRequest  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.utils_models import Config  # type: ignore[import-untyped]
from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]

from notifiers.aliyun.codes import Rule, Verdict, api_rule
from notifiers.aliyun.errors import classify_exception, from_rule
from notifiers.aliyun.reconcile import Lookup, reconcile_by_out_id
from notifiers.aliyun.webhooks import webhook_router
from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus

log = structlog.get_logger("notifiers.aliyun")

DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"
ACCOUNT_COOL_DOWN_SECONDS = 600.0
OUT_ID_MAX = 256  # longer keys travel as their sha256 (the same in send and reconcile)
_POOL_SIZE = 32  # kept-alive connections: at least the dispatcher's sending threads
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_E164 = re.compile(r"^\+(\d{6,15})$")


def out_id(key: str) -> str:
    return key if len(key) <= OUT_ID_MAX else hashlib.sha256(key.encode()).hexdigest()


def aliyun_number(to: str) -> str | None:
    """E.164 as Aliyun takes it: a mainland number as its 11 digits, others as country code + number."""
    match = _E164.match(to.strip())
    if match is None:
        return None
    digits = match.group(1)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def _endpoint(value: str) -> tuple[str, str]:
    """(protocol, host[:port]) from PERMIT_ALIYUN_SMS_ENDPOINT; plain http only to this machine."""
    parts = urlsplit(value if "://" in value else f"https://{value}")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise NotifierConfigError("PERMIT_ALIYUN_SMS_ENDPOINT must be https://host[:port] (or http://127.0.0.1:PORT)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise NotifierConfigError("PERMIT_ALIYUN_SMS_ENDPOINT may use plain http only for 127.0.0.1/localhost")
    return parts.scheme, parts.netloc


class AliyunSmsNotifier:
    name = "aliyun"
    channels = frozenset({"sms"})
    # SmsReport receipts and SmsUp replies (notifiers/aliyun/webhooks.py), for the HTTP app.
    webhook_router = staticmethod(webhook_router)

    def __init__(self, *, access_key_id: str, access_key_secret: str, sign_name: str,
                 endpoint: str = DEFAULT_ENDPOINT, timeout_seconds: float = 10.0,
                 cool_down_seconds: float = ACCOUNT_COOL_DOWN_SECONDS) -> None:
        if not access_key_id:
            raise NotifierConfigError("ALIBABA_CLOUD_ACCESS_KEY_ID is not set")
        if not access_key_secret:
            raise NotifierConfigError("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set")
        sign_name = sign_name.strip().removeprefix("【").removesuffix("】").strip()
        if not sign_name:
            raise NotifierConfigError("PERMIT_ALIYUN_SMS_SIGN_NAME is not set")
        if not (isinstance(timeout_seconds, (int, float)) and math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise NotifierConfigError("PERMIT_ALIYUN_TIMEOUT_SECONDS must be a positive number of seconds")
        protocol, host = _endpoint(endpoint)
        self.sign_name = sign_name
        self._key_id, self._secret = access_key_id, access_key_secret
        self._timeout = float(timeout_seconds)
        self._cool_down = float(cool_down_seconds)
        millis = max(1, int(self._timeout * 1000))
        # No retry_options: the SDK then makes exactly one attempt (darabonba's should_retry).
        self._client = Client(Config(access_key_id=access_key_id, access_key_secret=access_key_secret,
                                     endpoint=host, protocol=protocol, read_timeout=millis, connect_timeout=millis,
                                     max_idle_conns=_POOL_SIZE, user_agent="permit-worker"))
        self._runtime = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=millis, connect_timeout=millis,
                                       max_idle_conns=_POOL_SIZE)
        self._lock = threading.Lock()
        self._paused_until = 0.0  # time.monotonic() before which no send calls Aliyun
        self._paused_code = ""
        self._config_codes_logged: set[str] = set()
        self._endpoint_text = f"{protocol}://{host}"

    def __repr__(self) -> str:  # never show the secret
        return f"<AliyunSmsNotifier sign_name={self.sign_name} endpoint={self._endpoint_text}>"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AliyunSmsNotifier:
        def get(name: str) -> str:
            return (env.get(name) or "").strip()  # empty counts as unset

        timeout = 10.0
        raw = get("PERMIT_ALIYUN_TIMEOUT_SECONDS")
        if raw:
            try:
                timeout = float(raw)
            except ValueError:
                raise NotifierConfigError(
                    f"PERMIT_ALIYUN_TIMEOUT_SECONDS must be a number of seconds, got {raw!r}") from None
        return cls(access_key_id=get("ALIBABA_CLOUD_ACCESS_KEY_ID"), access_key_secret=get(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET"), sign_name=get("PERMIT_ALIYUN_SMS_SIGN_NAME"),
            endpoint=get("PERMIT_ALIYUN_SMS_ENDPOINT") or DEFAULT_ENDPOINT, timeout_seconds=timeout)

    # -- sending -------------------------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        if message.channel not in self.channels:
            return SendResult.permanent(f"aliyun carries sms only, not {message.channel!r}")
        template = message.template
        code = template.ids.get(self.name) if template is not None else None
        if template is None or not code:
            kind = template.kind if template is not None else "(none)"
            return SendResult.permanent(f"no approved Aliyun template for {kind}: file one and set its code",
                                        error_code="no_template")
        number = aliyun_number(message.to)
        if number is None:
            return SendResult.permanent("the number is not E.164", error_code="invalid_number")
        until = message.valid_until
        if until is not None and (until.replace(tzinfo=UTC) if until.tzinfo is None else until) <= datetime.now(UTC):
            return SendResult.transient("send window closed before sending")
        paused = self._paused()
        if paused is not None:
            return paused
        params = template.param_map
        request = SendSmsRequest(phone_numbers=number, sign_name=self.sign_name, template_code=code,
                                 template_param=json.dumps(params, ensure_ascii=False) if params else None,
                                 out_id=out_id(message.idempotency_key) if message.idempotency_key else None)
        try:
            body = self._client.send_sms_with_options(request, self._runtime).body
        except Exception as exc:  # never raise out of send: classify everything
            result, rule = classify_exception(exc, self._timeout)
            return self._after(result, rule)
        answer = str(getattr(body, "code", None) or "")
        if answer == "OK" and getattr(body, "biz_id", None):
            return SendResult.sent(str(body.biz_id))
        if answer == "OK":  # accepted, but we cannot tell which message it is
            return self._after(SendResult.ambiguous("aliyun answered OK without a BizId"), None)
        rule = api_rule(answer or "(no code)")
        return self._after(from_rule(answer or "(no code)", rule, str(getattr(body, "message", "") or "")), rule)

    def _paused(self) -> SendResult | None:
        with self._lock:
            if time.monotonic() >= self._paused_until:
                return None
            code = self._paused_code
        rule = api_rule(code)
        return SendResult(status=SendStatus.TRANSIENT, error=f"aliyun {code}: the account cannot send "
                          "(paused here, Aliyun not called)", retry_after_seconds=rule.retry_after_seconds,
                          error_code=code)

    def _after(self, result: SendResult, rule: Rule | None) -> SendResult:
        code = result.error_code or ""
        if rule is not None and rule.verdict is Verdict.ACCOUNT_STOP:
            with self._lock:
                self._paused_until, self._paused_code = time.monotonic() + self._cool_down, code
            log.error("aliyun.account_cannot_send", error_code=code, paused_seconds=self._cool_down)
        elif rule is not None and rule.config and self._first_time(code):
            log.error("aliyun.configuration_rejected", error_code=code, sign_name=self.sign_name)
        return self._redacted(result)

    def _first_time(self, code: str) -> bool:
        with self._lock:
            seen = code in self._config_codes_logged
            self._config_codes_logged.add(code)
        return not seen

    def _redacted(self, result: SendResult) -> SendResult:
        # Belt and braces: no error string may carry a credential.
        error = result.error
        if error is not None:
            error = error.replace(self._secret, "[redacted]").replace(self._key_id, "[access-key-id]")
        return SendResult(status=result.status, provider_message_id=result.provider_message_id, error=error,
                          retry_after_seconds=result.retry_after_seconds, error_code=result.error_code,
                          opted_out=result.opted_out)

    # -- reconciling ---------------------------------------------------------------------------
    def reconcile(self, message: Message, since: datetime) -> SendResult | None:
        """Whether Aliyun accepted this message (matched by OutId) since `since`; see reconcile.py."""
        number = aliyun_number(message.to)
        if number is None:
            return None  # such a send is refused before calling Aliyun: nothing can exist
        if not message.idempotency_key:
            return SendResult.transient("cannot reconcile a message without an idempotency key")
        lookup = Lookup(self._client, self._runtime, self._timeout)
        found = reconcile_by_out_id(lookup, number, out_id(message.idempotency_key), since)
        return None if found is None else self._redacted(found)
