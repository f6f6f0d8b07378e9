"""The Tencent Cloud SMS notifier, driven through the real tencentcloud SDK against a local fake.

The SDK is never mocked: every test sends real, TC3-signed HTTP to notifiers/tencent/fake.py,
so the SDK's request building, signing and error parsing are part of what is tested.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from structlog.testing import capture_logs
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)

from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus, SmsTemplate
from notifiers.tencent import transport
from notifiers.tencent.failures import classify_transport
from notifiers.tencent.fake import FakeTencentSms, api_error, garbled, refused, server_error, slow
from notifiers.tencent.transport import TencentSmsNotifier

from .support import hanging_up_after

TO = "+8613800138000"
SIGN = "居住证提醒"
TEMPLATE = SmsTemplate(kind="renew_in_person.closed", ids={"tencent": "1234567", "aliyun": "SMS_1"},
                       params=(("name", "张三"), ("date", "2025-07-01"), ("office", "浦东")))
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

NotifierFactory = Callable[..., TencentSmsNotifier]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK routes 127.0.0.1 through HTTP_PROXY even with NO_PROXY set.
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeTencentSms]:
    with FakeTencentSms() as server:
        yield server


@pytest.fixture
def make_notifier(fake: FakeTencentSms) -> NotifierFactory:
    def build(**overrides: Any) -> TencentSmsNotifier:
        settings: dict[str, Any] = {"secret_id": fake.secret_id, "secret_key": fake.secret_key,
                                    "sdk_app_id": fake.sdk_app_id, "sign_name": SIGN, "endpoint": fake.endpoint,
                                    "timeout_seconds": 2.0}
        return TencentSmsNotifier(**{**settings, **overrides})

    return build


def sms(key: str = "outbox-1", template: SmsTemplate | None = TEMPLATE, valid_until: datetime | None = None) -> Message:
    return Message(channel="sms", to=TO, body="【居住证提醒】张三，您的居住证将于 2025-07-01 到期", idempotency_key=key,
                   template=template, valid_until=valid_until)


def env_for(fake: FakeTencentSms, **extra: str) -> dict[str, str]:
    return {"TENCENTCLOUD_SECRET_ID": fake.secret_id, "TENCENTCLOUD_SECRET_KEY": fake.secret_key,
            "PERMIT_TENCENT_SMS_SDK_APP_ID": fake.sdk_app_id, "PERMIT_TENCENT_SMS_SIGN_NAME": SIGN,
            "PERMIT_TENCENT_SMS_ENDPOINT": fake.endpoint, **extra}


def actions(fake: FakeTencentSms) -> list[str]:
    return [r.action for r in fake.requests]


# -- sending ------------------------------------------------------------------------------------


def test_a_send_carries_signature_template_params_and_key_and_is_signed(
    fake: FakeTencentSms, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()
    result = notifier.send(sms())

    assert result == SendResult.sent(fake.accepted[0]["SerialNo"])
    [request] = fake.requests
    assert request.action == "SendSms" and request.headers["X-TC-Version"] == "2021-01-11"
    assert request.headers["X-TC-Region"] == "ap-guangzhou"
    assert request.secret_id == fake.secret_id and request.signature_ok  # full TC3 signature checked
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {"PhoneNumberSet": [TO], "SmsSdkAppId": fake.sdk_app_id, "TemplateId": "1234567",
                            "SignName": SIGN, "TemplateParamSet": ["张三", "2025-07-01", "浦东"],
                            "SessionContext": "outbox-1"}
    assert notifier.sign_name == SIGN and notifier.name == "tencent" and notifier.channels == {"sms"}


@pytest.mark.parametrize("template", [None, SmsTemplate(kind="renew.open", ids={"aliyun": "SMS_1"}, params=())])
def test_without_a_tencent_template_nothing_is_sent(
    fake: FakeTencentSms, make_notifier: NotifierFactory, template: SmsTemplate | None
) -> None:
    result = make_notifier().send(sms(template=template))

    assert result.status is SendStatus.PERMANENT and result.error_code == "no_template"
    assert template is None or "renew.open" in (result.error or "")
    assert fake.requests == []


def test_a_closed_send_window_sends_nothing(fake: FakeTencentSms, make_notifier: NotifierFactory) -> None:
    result = make_notifier().send(sms(valid_until=datetime.now(UTC) - timedelta(seconds=1)))

    assert result.status is SendStatus.TRANSIENT and fake.requests == []


# -- classification -----------------------------------------------------------------------------

PERMANENT_CODES = [
    "InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.TemplateIncorrectOrUnapproved",
    "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.ContainSensitiveWord",
    "InvalidParameterValue.TemplateParameterFormatError", "InvalidParameterValue.TemplateParameterLengthLimit",
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber", "FailedOperation.PhoneNumberParseFail",
]


@pytest.mark.parametrize("code", PERMANENT_CODES)
@pytest.mark.parametrize("where", ["per-number", "top-level"])
def test_refusals_of_this_message_are_permanent_with_the_code(
    fake: FakeTencentSms, make_notifier: NotifierFactory, code: str, where: str
) -> None:
    fake.script(refused(code, "refused") if where == "per-number" else api_error(code, "refused"))

    result = make_notifier().send(sms())

    assert (result.status, result.error_code, result.opted_out) == (SendStatus.PERMANENT, code, False)
    assert result.error == f"tencent {code}: refused"


def test_a_number_in_the_blacklist_is_an_opt_out(fake: FakeTencentSms, make_notifier: NotifierFactory) -> None:
    fake.script(refused("FailedOperation.PhoneNumberInBlacklist", "phone number in blacklist"))

    result = make_notifier().send(sms())

    assert result.status is SendStatus.PERMANENT and result.opted_out
    assert result.error_code == "FailedOperation.PhoneNumberInBlacklist"


@pytest.mark.parametrize(("code", "wait"), [("LimitExceeded.PhoneNumberThirtySecondLimit", 30.0),
                                            ("LimitExceeded.PhoneNumberOneHourLimit", 3600.0),
                                            ("LimitExceeded.DeliveryFrequencyLimit", 60.0),
                                            ("RequestLimitExceeded", 1.0)])
def test_rate_limits_are_transient_with_retry_after(
    fake: FakeTencentSms, make_notifier: NotifierFactory, code: str, wait: float
) -> None:
    fake.script(refused(code))

    result = make_notifier().send(sms())

    assert (result.status, result.retry_after_seconds, result.error_code) == (SendStatus.TRANSIENT, wait, code)


def test_a_daily_limit_waits_until_just_after_midnight_in_beijing(
    fake: FakeTencentSms, make_notifier: NotifierFactory
) -> None:
    fake.script(refused("LimitExceeded.PhoneNumberDailyLimit"))

    result = make_notifier().send(sms())

    assert result.status is SendStatus.TRANSIENT and result.retry_after_seconds is not None
    retry_at = (datetime.now(UTC) + timedelta(seconds=result.retry_after_seconds)).astimezone(ZoneInfo("Asia/Shanghai"))
    assert (retry_at.hour, retry_at.minute) in ((0, 4), (0, 5))
    assert 0 < result.retry_after_seconds <= 24 * 3600 + 300


@pytest.mark.parametrize("code", ["InternalError.Timeout", "InternalError.SendAndRecvFail", "InternalError"])
def test_tencents_internal_errors_are_ambiguous(
    fake: FakeTencentSms, make_notifier: NotifierFactory, code: str
) -> None:
    fake.script(api_error(code, accept=True))

    assert make_notifier().send(sms()).status is SendStatus.AMBIGUOUS


def test_wrong_credentials_are_transient_not_permanent(fake: FakeTencentSms, make_notifier: NotifierFactory) -> None:
    wrong_key = make_notifier(secret_key="0" * 32).send(sms())
    wrong_id = make_notifier(secret_id="AKID" + "1" * 32).send(sms())

    assert (wrong_key.status, wrong_key.error_code) == (SendStatus.TRANSIENT, "AuthFailure.SignatureFailure")
    assert (wrong_id.status, wrong_id.error_code) == (SendStatus.TRANSIENT, "AuthFailure.SecretIdNotFound")
    assert "TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY" in (wrong_key.error or "")
    assert fake.accepted == []


@pytest.mark.parametrize("code", ["UnauthorizedOperation.SmsSdkAppIdVerifyFail", "InternalError.RequestTimeException",
                                  "FailedOperation.OtherError", "SomethingNew.NeverSeen"])
def test_account_settings_and_unknown_codes_are_transient(
    fake: FakeTencentSms, make_notifier: NotifierFactory, code: str
) -> None:
    fake.script(api_error(code))

    assert make_notifier().send(sms()).status is SendStatus.TRANSIENT


def test_an_empty_sms_package_holds_sends_for_a_while_without_calling_tencent(
    fake: FakeTencentSms, make_notifier: NotifierFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "BALANCE_COOLDOWN_SECONDS", 0.5)
    notifier = make_notifier()
    fake.script(refused("FailedOperation.InsufficientBalanceInSmsPackage"))
    with capture_logs() as logs:
        results = [notifier.send(sms()) for _ in range(3)]

    assert all(r.status is SendStatus.TRANSIENT and r.retry_after_seconds == 3600 for r in results)
    assert all(r.error_code == "FailedOperation.InsufficientBalanceInSmsPackage" for r in results)
    assert len(fake.requests) == 1  # the held sends never reached Tencent
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["tencent.sms_balance_exhausted"]
    time.sleep(0.6)
    assert notifier.send(sms()).status is SendStatus.SENT and len(fake.requests) == 2


def test_a_slow_answer_is_ambiguous_and_is_never_sent_again_elsewhere(
    fake: FakeTencentSms, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    fake.script(slow(2.0))
    started = time.monotonic()

    result = notifier.send(sms())

    assert result.status is SendStatus.AMBIGUOUS and time.monotonic() - started < 1.5
    assert len(fake.accepted) == 1 and actions(fake) == ["SendSms"]  # no SDK retry
    profile = notifier._client.profile
    assert profile.disable_region_breaker and notifier._client.circuit_breaker is None and profile.retryer is None


@pytest.mark.parametrize("outcome", [server_error(502, accept=True), server_error(503), garbled()])
def test_a_gateway_error_or_an_unreadable_answer_is_ambiguous(
    fake: FakeTencentSms, make_notifier: NotifierFactory, outcome: Any
) -> None:
    fake.script(outcome)

    assert make_notifier().send(sms()).status is SendStatus.AMBIGUOUS


def test_connection_refused_is_transient(make_notifier: NotifierFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"

    result = make_notifier(endpoint=dead).send(sms())

    assert result.status is SendStatus.TRANSIENT and "nothing was sent" in (result.error or "")


def test_a_connection_dropped_after_sending_is_ambiguous(make_notifier: NotifierFactory) -> None:
    with hanging_up_after(b"SessionContext") as url:
        result = make_notifier(endpoint=url).send(sms())

    assert result.status is SendStatus.AMBIGUOUS and "dropped after sending" in (result.error or "")


def _wrapped(cause: Exception) -> TencentCloudSDKException:
    # What the SDK's ApiRequest.send_request raises: the requests exception is the __context__.
    wrapped = TencentCloudSDKException("ClientNetworkError", str(cause))
    wrapped.__context__ = cause
    return wrapped


@pytest.mark.parametrize(("cause", "expected"), [
    (requests.exceptions.ConnectTimeout("connect timed out"), SendStatus.TRANSIENT),
    (requests.exceptions.ReadTimeout("read timed out"), SendStatus.AMBIGUOUS),
    (requests.exceptions.SSLError("handshake"), SendStatus.TRANSIENT),
    (requests.exceptions.ChunkedEncodingError("broken"), SendStatus.AMBIGUOUS),
])
def test_failures_that_loopback_cannot_produce_are_classified_by_cause(cause: Exception, expected: SendStatus) -> None:
    assert classify_transport(_wrapped(cause), 2.0).status is expected


def test_no_credential_appears_in_any_error_or_repr(fake: FakeTencentSms, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    fake.script(refused("InvalidParameterValue.IncorrectPhoneNumber"), api_error("InternalError.Timeout"),
                server_error(), slow(2.0))
    results = [notifier.send(sms()) for _ in range(4)]
    results += [make_notifier(secret_key="f" * 32).send(sms()), notifier.reconcile(sms(), datetime.now(UTC))
                or SendResult.transient("none")]

    for result in results:
        assert fake.secret_key not in (result.error or "") and fake.secret_id not in (result.error or "")
    assert fake.secret_key not in repr(notifier)


# -- reconciling --------------------------------------------------------------------------------


@pytest.mark.parametrize("lost", [api_error("InternalError.Timeout", accept=True), slow(2.0)])
def test_reconcile_finds_the_accepted_message_by_its_key(
    fake: FakeTencentSms, make_notifier: NotifierFactory, lost: Any
) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    since = datetime.now(UTC)
    fake.script(lost)
    assert notifier.send(sms()).status is SendStatus.AMBIGUOUS

    found = notifier.reconcile(sms(), since)

    assert found == SendResult.sent(fake.accepted[0]["SerialNo"])
    assert actions(fake) == ["SendSms", "PullSmsSendStatusByPhoneNumber"]  # no second send
    pull = fake.requests[-1].body
    assert pull["PhoneNumber"] == TO and pull["SmsSdkAppId"] == fake.sdk_app_id
    assert (pull["Offset"], pull["Limit"]) == (0, 100)
    assert pull["BeginTime"] == int((since - timedelta(minutes=5)).timestamp())


def test_reconcile_finds_nothing_once_the_report_wait_has_passed(
    fake: FakeTencentSms, make_notifier: NotifierFactory
) -> None:
    fake.script(server_error(accept=False))
    notifier = make_notifier(report_wait_seconds=0)
    since = datetime.now(UTC)
    notifier.send(sms())

    assert notifier.reconcile(sms(), since) is None


def test_reconcile_waits_while_a_report_may_still_come(fake: FakeTencentSms, make_notifier: NotifierFactory) -> None:
    fake.report_on_accept = False  # accepted, but the carrier has not reported yet
    fake.script(server_error(accept=True))
    notifier = make_notifier(report_wait_seconds=600)
    since = datetime.now(UTC)
    notifier.send(sms())

    found = notifier.reconcile(sms(), since)

    assert found is not None and found.status is SendStatus.TRANSIENT
    assert found.retry_after_seconds is not None and 590 < found.retry_after_seconds <= 600


def test_reconcile_ignores_another_rows_report_for_the_same_number(
    fake: FakeTencentSms, make_notifier: NotifierFactory
) -> None:
    make_notifier().send(sms(key="outbox-2"))

    assert make_notifier(report_wait_seconds=0).reconcile(sms(key="outbox-1"), datetime.now(UTC)) is None


def test_a_report_without_session_context_is_never_taken_as_ours(
    fake: FakeTencentSms, make_notifier: NotifierFactory
) -> None:
    fake.echo_session_context = False  # the account has no SessionContext echo
    fake.script(api_error("InternalError.Timeout", accept=True))
    notifier = make_notifier(report_wait_seconds=0)
    since = datetime.now(UTC)
    notifier.send(sms())

    found = notifier.reconcile(sms(), since)

    assert found is not None and found.status is SendStatus.TRANSIENT and "SessionContext" in (found.error or "")


@pytest.mark.parametrize("failure", [api_error("InternalError"), api_error("RequestLimitExceeded"), server_error()])
def test_reconcile_is_transient_when_the_lookup_fails(
    fake: FakeTencentSms, make_notifier: NotifierFactory, failure: Any
) -> None:
    fake.script(failure)

    result = make_notifier().reconcile(sms(), datetime.now(UTC))

    assert result is not None and result.status is SendStatus.TRANSIENT
    assert (result.error or "").startswith("reconcile lookup failed")


def test_reconcile_against_a_dead_server_is_transient(make_notifier: NotifierFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"

    result = make_notifier(endpoint=dead).reconcile(sms(), datetime.now(UTC))

    assert result is not None and result.status is SendStatus.TRANSIENT


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY",
                                     "PERMIT_TENCENT_SMS_SDK_APP_ID", "PERMIT_TENCENT_SMS_SIGN_NAME"])
@pytest.mark.parametrize("unset", ["absent", "empty"])
def test_a_missing_setting_is_named(fake: FakeTencentSms, missing: str, unset: str) -> None:
    env = env_for(fake)
    if unset == "absent":
        del env[missing]
    else:
        env[missing] = "  "

    with pytest.raises(NotifierConfigError, match=f"^{missing} is not set$"):
        TencentSmsNotifier.from_env(env)


@pytest.mark.parametrize(("name", "value"), [
    ("PERMIT_TENCENT_SMS_SDK_APP_ID", "app-1"), ("PERMIT_TENCENT_SMS_REGION", "Guangzhou"),
    ("PERMIT_TENCENT_SMS_ENDPOINT", "http://sms.tencentcloudapi.com"), ("PERMIT_TENCENT_SMS_ENDPOINT", "ftp://x"),
    ("PERMIT_TENCENT_TIMEOUT_SECONDS", "soon"), ("PERMIT_TENCENT_TIMEOUT_SECONDS", "0"),
    ("PERMIT_TENCENT_TIMEOUT_SECONDS", "nan"),
])
def test_a_bad_setting_is_named_on_one_line(fake: FakeTencentSms, name: str, value: str) -> None:
    with pytest.raises(NotifierConfigError, match=f"^{name} ") as caught:
        TencentSmsNotifier.from_env(env_for(fake, **{name: value}))

    assert "\n" not in str(caught.value) and fake.secret_key not in str(caught.value)


def test_from_env_defaults_and_region(fake: FakeTencentSms) -> None:
    env = env_for(fake, PERMIT_TENCENT_SMS_SIGN_NAME="【居住证提醒】", PERMIT_TENCENT_SMS_REGION="ap-beijing")
    notifier = TencentSmsNotifier.from_env(env)

    assert notifier.sign_name == SIGN  # the brackets are Tencent's to add
    assert notifier.send(sms()).status is SendStatus.SENT
    assert fake.requests[0].headers["X-TC-Region"] == "ap-beijing" and fake.requests[0].body["SignName"] == SIGN
    del env["PERMIT_TENCENT_SMS_ENDPOINT"], env["PERMIT_TENCENT_SMS_REGION"]
    public = TencentSmsNotifier.from_env(env)
    http = public._client.profile.httpProfile
    assert (http.scheme, http.endpoint, public._client.region) == ("https", "sms.tencentcloudapi.com", "ap-guangzhou")
