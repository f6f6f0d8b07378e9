"""The Aliyun SMS notifier, driven through the real dysmsapi SDK against a local fake of the OpenAPI.

The SDK is never mocked: every test sends real HTTP to notifiers/aliyun/fake.py, which checks each
request's ACS3-HMAC-SHA256 signature in full, so the SDK's own signing, request building and error
parsing are part of what is tested.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from structlog.testing import capture_logs

from notifiers.aliyun.fake import FakeAliyun, code, http_error, server_error, slow
from notifiers.aliyun.transport import AliyunSmsNotifier
from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus, SmsTemplate
from notifiers.twilio.fake import unused_base_url

from .support import hanging_up_after

TO = "+8613800138000"
SIGN = "居住证提醒"
TEMPLATE = SmsTemplate(kind="renew_in_person.closed", ids={"aliyun": "SMS_123456789", "tencent": "1234567"},
                       params=(("name", "张三"), ("date", "2025-07-01")),
                       text="${name}您好，您的居住证将于${date}到期，请及时办理签注。")
SHANGHAI = ZoneInfo("Asia/Shanghai")

NotifierFactory = Callable[..., AliyunSmsNotifier]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK sends 127.0.0.1 through HTTP_PROXY even with NO_PROXY set.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAliyun]:
    with FakeAliyun() as server:
        yield server


@pytest.fixture
def make_notifier(fake: FakeAliyun) -> NotifierFactory:
    def build(**overrides: Any) -> AliyunSmsNotifier:
        settings: dict[str, Any] = {"access_key_id": fake.access_key_id, "access_key_secret": fake.access_key_secret,
                                    "sign_name": SIGN, "endpoint": fake.endpoint, "timeout_seconds": 2.0}
        return AliyunSmsNotifier(**{**settings, **overrides})

    return build


def sms(to: str = TO, template: SmsTemplate | None = TEMPLATE, key: str = "outbox-1") -> Message:
    return Message(channel="sms", to=to, body="【居住证提醒】张三您好…", idempotency_key=key, template=template)


def env_for(fake: FakeAliyun, **extra: str) -> dict[str, str]:
    return {"ALIBABA_CLOUD_ACCESS_KEY_ID": fake.access_key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": fake.access_key_secret,
            "PERMIT_ALIYUN_SMS_SIGN_NAME": SIGN, "PERMIT_ALIYUN_SMS_ENDPOINT": fake.endpoint, **extra}


# -- sending ------------------------------------------------------------------------------------


def test_a_send_carries_signature_template_params_and_key(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier()
    result = notifier.send(sms())

    assert result.status is SendStatus.SENT
    assert result.provider_message_id == fake.accepted[0]["BizId"]  # "…^0", exactly as receipts carry it
    [request] = fake.requests
    assert request.action == "SendSms" and request.signature_valid
    assert request.access_key_id == fake.access_key_id
    assert request.headers["authorization"].startswith("ACS3-HMAC-SHA256 ")
    assert request.params == {"PhoneNumbers": "13800138000", "SignName": SIGN, "TemplateCode": "SMS_123456789",
                              "TemplateParam": '{"name": "张三", "date": "2025-07-01"}', "OutId": "outbox-1"}
    assert notifier.sign_name == SIGN and notifier.name == "aliyun" and notifier.channels == {"sms"}


def test_an_international_number_keeps_its_country_code(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    make_notifier().send(sms(to="+85261234567"))

    assert fake.requests[0].params["PhoneNumbers"] == "85261234567"


@pytest.mark.parametrize("template", [None, SmsTemplate(kind="renew_in_person.closed", ids={"tencent": "1"}, params=())])
def test_without_an_aliyun_template_nothing_is_sent(fake: FakeAliyun, make_notifier: NotifierFactory,
                                                    template: SmsTemplate | None) -> None:
    result = make_notifier().send(sms(template=template))

    assert result.status is SendStatus.PERMANENT and result.error_code == "no_template"
    assert result.error is not None and ("renew_in_person.closed" in result.error or template is None)
    assert fake.requests == []


def test_a_number_that_is_not_e164_is_permanent(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    assert make_notifier().send(sms(to="13800138000")).status is SendStatus.PERMANENT
    assert fake.requests == []


# -- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["isv.MOBILE_NUMBER_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL", "isv.SMS_SIGNATURE_ILLEGAL",
                                   "isv.PARAM_NOT_SUPPORT_URL", "isv.DENY_IP_RANGE", "isv.BLACK_KEY_CONTROL_LIMIT",
                                   "isv.TEMPLATE_MISSING_PARAMETERS", "isv.PARAM_LENGTH_LIMIT"])
def test_refusals_of_this_message_are_permanent(fake: FakeAliyun, make_notifier: NotifierFactory, value: str) -> None:
    fake.script(code(value, "非法"))

    result = make_notifier().send(sms())

    assert result.status is SendStatus.PERMANENT and result.error_code == value
    assert result.error == f"aliyun {value}: 非法" or "console configuration" in (result.error or "")
    assert fake.accepted == []


def test_a_template_problem_says_it_is_configuration_and_is_logged(fake: FakeAliyun,
                                                                  make_notifier: NotifierFactory) -> None:
    notifier = make_notifier()
    fake.script(code("isv.SMS_TEMPLATE_ILLEGAL"), code("isv.SMS_TEMPLATE_ILLEGAL"))
    with capture_logs() as logs:
        results = [notifier.send(sms()), notifier.send(sms())]

    assert all("console configuration" in (r.error or "") for r in results)
    assert [e["error_code"] for e in logs if e["event"] == "aliyun.configuration_rejected"] == ["isv.SMS_TEMPLATE_ILLEGAL"]


def test_flow_control_is_transient_for_an_hour(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    fake.script(code("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5"))

    result = make_notifier().send(sms())

    assert result.status is SendStatus.TRANSIENT and result.retry_after_seconds == 3600
    assert result.error_code == "isv.BUSINESS_LIMIT_CONTROL"


def test_gateway_throttling_is_transient(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    fake.script(http_error(400, "Throttling.User", "Request was denied due to user flow control."))

    assert make_notifier().send(sms()).status is SendStatus.TRANSIENT


@pytest.mark.parametrize("value", ["isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE"])
def test_an_account_that_cannot_send_pauses_sending_for_a_cool_down(fake: FakeAliyun, make_notifier: NotifierFactory,
                                                                    value: str) -> None:
    notifier = make_notifier(cool_down_seconds=0.5)
    fake.script(code(value, "账户余额不足"))
    with capture_logs() as logs:
        first = notifier.send(sms())
        paused = [notifier.send(sms(key=f"outbox-{n}")) for n in range(3)]

    assert first.status is SendStatus.TRANSIENT and first.retry_after_seconds == 1800
    assert all(r.status is SendStatus.TRANSIENT and r.error_code == value for r in paused)
    assert all(r.retry_after_seconds == 1800 and "Aliyun not called" in (r.error or "") for r in paused)
    assert len(fake.sends()) == 1  # the paused sends never reached Aliyun
    assert [(e["event"], e["error_code"]) for e in logs if e["log_level"] == "error"] == [
        ("aliyun.account_cannot_send", value)]
    time.sleep(0.6)
    assert notifier.send(sms()).status is SendStatus.SENT  # after the cool-down: tried again
    assert len(fake.sends()) == 2


def test_the_pause_holds_across_threads(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier(cool_down_seconds=30)
    fake.script(code("isv.AMOUNT_NOT_ENOUGH"))
    notifier.send(sms())
    results: list[SendResult] = []
    threads = [threading.Thread(target=lambda: results.append(notifier.send(sms()))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 8 and {r.status for r in results} == {SendStatus.TRANSIENT}
    assert len(fake.sends()) == 1


@pytest.mark.parametrize("secret", ["wrong-secret", None])
def test_wrong_credentials_are_transient_and_burn_nothing(fake: FakeAliyun, make_notifier: NotifierFactory,
                                                          secret: str | None) -> None:
    overrides = {"access_key_secret": secret} if secret else {"access_key_id": "LTAI" + "0" * 20}
    result = make_notifier(**overrides).send(sms())

    assert result.status is SendStatus.TRANSIENT
    assert result.error_code == ("SignatureDoesNotMatch" if secret else "InvalidAccessKeyId.NotFound")
    assert result.error is not None and "ALIBABA_CLOUD_ACCESS_KEY_ID" in result.error
    assert "request id" not in result.error and fake.accepted == []


@pytest.mark.parametrize("accepted", [True, False])
def test_a_server_error_is_ambiguous_and_not_retried_by_the_sdk(fake: FakeAliyun, make_notifier: NotifierFactory,
                                                                accepted: bool) -> None:
    fake.script(server_error(accept=accepted))

    assert make_notifier().send(sms()).status is SendStatus.AMBIGUOUS
    assert len(fake.requests) == 1  # autoretry is off: one request, whatever the answer


def test_an_aliyun_system_error_is_ambiguous(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    fake.script(code("isp.SYSTEM_ERROR", accept=True))

    assert make_notifier().send(sms()).status is SendStatus.AMBIGUOUS


def test_a_slow_answer_past_the_timeout_is_ambiguous(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    fake.script(slow(2.0))
    started = time.monotonic()

    result = make_notifier(timeout_seconds=0.5).send(sms())

    assert result.status is SendStatus.AMBIGUOUS
    assert time.monotonic() - started < 1.5  # the read timeout fired
    assert len(fake.accepted) == 1 and len(fake.requests) == 1  # taken once, never re-sent by the SDK


def test_connection_refused_is_transient() -> None:
    notifier = AliyunSmsNotifier(access_key_id="LTAIx", access_key_secret="s" * 30, sign_name=SIGN,
                                 endpoint=unused_base_url())

    result = notifier.send(sms())

    assert result.status is SendStatus.TRANSIENT
    assert result.error is not None and "nothing was sent" in result.error and "13800138000" not in result.error


def test_a_connection_dropped_after_sending_is_ambiguous() -> None:
    with hanging_up_after(b"\r\n\r\n") as url:
        notifier = AliyunSmsNotifier(access_key_id="LTAIx", access_key_secret="s" * 30, sign_name=SIGN, endpoint=url)
        result = notifier.send(sms())

    assert result.status is SendStatus.AMBIGUOUS and "dropped after sending" in (result.error or "")


def _as_the_sdk_raises(cause: Exception) -> Exception:
    """darabonba re-raises requests' exception as RetryError inside `except`, then wraps it."""
    from darabonba.exceptions import RetryError, UnretryableException
    from darabonba.policy.retry import RetryPolicyContext

    try:
        try:
            raise cause
        except OSError as exc:
            raise RetryError(str(exc))  # noqa: B904 - exactly as darabonba does: the cause is __context__
    except RetryError as wrapped:
        return UnretryableException(RetryPolicyContext(retries_attempted=1, exception=wrapped))


@pytest.mark.parametrize(("cause", "expected"), [
    (requests.exceptions.ConnectTimeout("connect timed out"), SendStatus.TRANSIENT),
    (requests.exceptions.ReadTimeout("read timed out"), SendStatus.AMBIGUOUS),
    (requests.exceptions.SSLError("handshake"), SendStatus.TRANSIENT),
])
def test_failures_loopback_cannot_produce_are_classified_by_cause(cause: Exception, expected: SendStatus) -> None:
    from notifiers.aliyun.errors import classify_exception

    assert classify_exception(_as_the_sdk_raises(cause), 1.0)[0].status is expected


def test_no_credential_appears_in_any_error(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    fake.script(code("isv.MOBILE_NUMBER_ILLEGAL"), server_error(True), slow(2.0))
    results = [notifier.send(sms()) for _ in range(3)]
    results.append(make_notifier(access_key_secret="f" * 30).send(sms()))
    fake.script_query(server_error())
    results.append(notifier.reconcile(sms(), datetime.now(UTC)) or SendResult.sent())

    assert all(result.error for result in results)
    for result in results:
        assert fake.access_key_secret not in (result.error or "") and fake.access_key_id not in (result.error or "")
    assert fake.access_key_secret not in repr(notifier)


# -- reconciling --------------------------------------------------------------------------------


def test_reconcile_finds_a_message_accepted_before_a_timeout(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    since = datetime.now(UTC)
    fake.script(slow(2.0))
    assert notifier.send(sms()).status is SendStatus.AMBIGUOUS

    found = notifier.reconcile(sms(), since)

    assert found is not None and found.status is SendStatus.SENT
    assert len(fake.sends()) == 1  # found, not sent again
    query = next(r for r in fake.requests if r.action == "QuerySendDetails")
    assert query.signature_valid and query.params["PhoneNumber"] == "13800138000"
    assert query.params["SendDate"] == datetime.now(SHANGHAI).strftime("%Y%m%d") and query.params["PageSize"] == "50"


def test_reconcile_finds_nothing_when_the_server_error_kept_nothing(fake: FakeAliyun,
                                                                    make_notifier: NotifierFactory) -> None:
    notifier = make_notifier()
    since = datetime.now(UTC)
    fake.script(server_error(accept=False))
    notifier.send(sms())

    assert notifier.reconcile(sms(), since) is None


def test_reconcile_pages_through_the_day_and_matches_the_out_id(fake: FakeAliyun,
                                                                make_notifier: NotifierFactory) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    fake.add_accepted("13800138000", "outbox-1", status=1)  # the newest record sorts first: ours is oldest
    for n in range(120):
        fake.add_accepted("13800138000", f"other-{n}")

    found = make_notifier().reconcile(sms(), since)

    assert found == SendResult.sent(None)
    pages = [r.params["CurrentPage"] for r in fake.requests if r.action == "QuerySendDetails"]
    assert pages == ["1", "2", "3"]


def test_reconcile_looks_at_every_day_since_the_attempt(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    since = datetime.now(UTC) - timedelta(days=1, minutes=30)
    fake.add_accepted("13800138000", "outbox-1", sent_at=since + timedelta(minutes=1))

    assert make_notifier().reconcile(sms(), since) == SendResult.sent(None)
    days = [r.params["SendDate"] for r in fake.requests]
    assert days[0] == datetime.now(SHANGHAI).strftime("%Y%m%d")
    assert days[-1] == (since + timedelta(minutes=1)).astimezone(SHANGHAI).strftime("%Y%m%d")


def test_reconcile_ignores_an_earlier_attempt_of_the_same_row(fake: FakeAliyun,
                                                              make_notifier: NotifierFactory) -> None:
    # The same outbox key, sent (and not delivered) long before this attempt began.
    fake.add_accepted("13800138000", "outbox-1", sent_at=datetime.now(UTC) - timedelta(hours=2))

    assert make_notifier().reconcile(sms(), datetime.now(UTC)) is None


@pytest.mark.parametrize(("err", "expected"), [("MOBILE_NOT_ON_SERVICE", SendStatus.PERMANENT),
                                               ("MOBLLE_TERMINAL_ERROR", None)])
def test_a_failed_record_is_permanent_or_resendable_by_its_code(fake: FakeAliyun, make_notifier: NotifierFactory,
                                                                err: str, expected: SendStatus | None) -> None:
    fake.add_accepted("13800138000", "outbox-1", status=2, err_code=err)

    found = make_notifier().reconcile(sms(), datetime.now(UTC) - timedelta(minutes=1))

    assert (found.status if found else None) is expected


@pytest.mark.parametrize("failure", [server_error(), code("isv.INVALID_PARAMETERS"), http_error(400, "Throttling")])
def test_a_failed_lookup_is_transient(fake: FakeAliyun, make_notifier: NotifierFactory, failure: Any) -> None:
    fake.script_query(failure)

    result = make_notifier().reconcile(sms(), datetime.now(UTC))

    assert result is not None and result.status is SendStatus.TRANSIENT
    assert result.error is not None and result.error.startswith("reconcile lookup failed")


def test_reconcile_against_a_dead_server_is_transient() -> None:
    notifier = AliyunSmsNotifier(access_key_id="LTAIx", access_key_secret="s" * 30, sign_name=SIGN,
                                 endpoint=unused_base_url())

    result = notifier.reconcile(sms(), datetime.now(UTC))

    assert result is not None and result.status is SendStatus.TRANSIENT


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                                     "PERMIT_ALIYUN_SMS_SIGN_NAME"])
@pytest.mark.parametrize("unset", ["absent", "empty"])
def test_a_missing_setting_is_named(fake: FakeAliyun, missing: str, unset: str) -> None:
    env = env_for(fake)
    if unset == "absent":
        del env[missing]
    else:
        env[missing] = " "

    with pytest.raises(NotifierConfigError, match=f"^{missing} is not set$"):
        AliyunSmsNotifier.from_env(env)


@pytest.mark.parametrize(("name", "value"), [
    ("PERMIT_ALIYUN_TIMEOUT_SECONDS", "soon"), ("PERMIT_ALIYUN_TIMEOUT_SECONDS", "0"),
    ("PERMIT_ALIYUN_TIMEOUT_SECONDS", "nan"), ("PERMIT_ALIYUN_SMS_ENDPOINT", "ftp://dysmsapi.aliyuncs.com"),
    ("PERMIT_ALIYUN_SMS_ENDPOINT", "http://dysmsapi.aliyuncs.com"), ("PERMIT_ALIYUN_SMS_ENDPOINT", "https://x/path"),
])
def test_a_bad_setting_is_a_one_line_config_error_naming_it(fake: FakeAliyun, name: str, value: str) -> None:
    with pytest.raises(NotifierConfigError, match=name) as caught:
        AliyunSmsNotifier.from_env(env_for(fake, **{name: value}))

    assert "\n" not in str(caught.value) and fake.access_key_secret not in str(caught.value)


def test_from_env_reaches_the_endpoint_and_strips_the_signature_brackets(fake: FakeAliyun) -> None:
    notifier = AliyunSmsNotifier.from_env(env_for(fake, PERMIT_ALIYUN_SMS_SIGN_NAME="【居住证提醒】",
                                                  PERMIT_ALIYUN_TIMEOUT_SECONDS="3"))

    assert notifier.sign_name == SIGN
    assert notifier.send(sms()).status is SendStatus.SENT
    assert fake.requests[0].params["SignName"] == SIGN


def test_the_default_endpoint_is_aliyuns_public_one_over_https(fake: FakeAliyun) -> None:
    env = env_for(fake)
    del env["PERMIT_ALIYUN_SMS_ENDPOINT"]

    assert "https://dysmsapi.aliyuncs.com" in repr(AliyunSmsNotifier.from_env(env))


def test_the_fake_checks_the_whole_signature(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    from notifiers.aliyun.signing import check

    make_notifier().send(sms())
    [sent] = fake.requests
    query = list(sent.params.items())
    assert check("POST", "/", query, sent.headers, b"", fake.access_key_secret).valid
    tampered = [(k, "13900000000" if k == "PhoneNumbers" else v) for k, v in query]
    assert not check("POST", "/", tampered, sent.headers, b"", fake.access_key_secret).valid
    assert not check("POST", "/", query, {**sent.headers, "x-acs-action": "QuerySendDetails"}, b"",
                     fake.access_key_secret).valid


def test_a_closed_send_window_sends_nothing(fake: FakeAliyun, make_notifier: NotifierFactory) -> None:
    closed = Message(channel="sms", to=TO, body="x", idempotency_key="k", template=TEMPLATE,
                     valid_until=datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1))

    assert make_notifier().send(closed).status is SendStatus.TRANSIENT
    assert fake.requests == []
