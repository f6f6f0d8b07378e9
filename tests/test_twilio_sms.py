"""The Twilio SMS notifier, driven through the real twilio SDK against a local fake of the API.

The SDK is never mocked: every test sends real HTTP to notifiers/twilio/fake.py, so the SDK's
own request encoding and error parsing are part of what is tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError

from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus
from notifiers.registry import get_notifier
from notifiers.twilio.fake import (
    FakeTwilio,
    error,
    rate_limited,
    server_error,
    slow,
    unused_base_url,
)
from notifiers.twilio.transport import TwilioSmsNotifier

from .support import hanging_up_after

FROM = "+15005550006"
TO = "+8613800138000"
BODY = "【居住证提醒】您的上海市居住证将于 2025-07-01 到期，请及时办理签注。"
SERVICE = "MG" + "0" * 32
CALLBACK = "https://permit.example.com/webhooks/twilio/status"

NotifierFactory = Callable[..., TwilioSmsNotifier]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def make_notifier(fake: FakeTwilio) -> NotifierFactory:
    def build(**overrides: Any) -> TwilioSmsNotifier:
        settings: dict[str, Any] = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_number": FROM,
            "base_url": fake.base_url,
            "status_callback_url": CALLBACK,
            "timeout_seconds": 2.0,
        }
        return TwilioSmsNotifier(**{**settings, **overrides})

    return build


def sms(body: str = BODY, to: str = TO, valid_until: datetime | None = None) -> Message:
    return Message(channel="sms", to=to, body=body, idempotency_key="outbox-1", valid_until=valid_until)


def env_for(fake: FakeTwilio, **extra: str) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM_NUMBER": FROM,
        "PERMIT_TWILIO_BASE_URL": fake.base_url,
        **extra,
    }


def assert_no_credentials(result: SendResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in (result.error or "")


# -- sending ------------------------------------------------------------------------------------


def test_an_accepted_message_is_sent_with_twilios_sid(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    result = make_notifier().send(sms())

    assert result.status is SendStatus.SENT
    assert len(fake.accepted) == 1 and result.provider_message_id == fake.accepted[0]["sid"]
    assert result.provider_message_id is not None and result.provider_message_id.startswith("SM")
    form = fake.requests[0].params
    assert form["To"] == TO and form["From"] == FROM and form["Body"] == BODY
    assert form["StatusCallback"] == CALLBACK
    assert form["ValidityPeriod"] == "36000"  # no valid_until: Twilio's maximum
    assert "MessagingServiceSid" not in form


def test_a_messaging_service_is_used_instead_of_the_from_number(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    # Both set: the service wins and From is not sent (the service picks the sender).
    result = make_notifier(messaging_service_sid=SERVICE).send(sms())

    assert result.status is SendStatus.SENT
    form = fake.requests[0].params
    assert form["MessagingServiceSid"] == SERVICE and "From" not in form


def test_no_status_callback_is_sent_when_none_is_configured(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    make_notifier(status_callback_url=None).send(sms())

    assert "StatusCallback" not in fake.requests[0].params


def test_validity_period_counts_down_to_the_end_of_the_send_window(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    make_notifier().send(sms(valid_until=datetime.now(UTC) + timedelta(seconds=90)))

    assert 89 <= int(fake.requests[0].params["ValidityPeriod"]) <= 91


def test_validity_period_is_clamped_to_the_configured_maximum(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier(max_validity_seconds=3600)
    notifier.send(sms(valid_until=datetime.now(UTC) + timedelta(days=2)))
    notifier.send(sms(valid_until=None))

    assert [r.params["ValidityPeriod"] for r in fake.requests] == ["3600", "3600"]


def test_a_naive_valid_until_is_taken_as_utc(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    naive = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=600)

    make_notifier().send(sms(valid_until=naive))

    assert 599 <= int(fake.requests[0].params["ValidityPeriod"]) <= 601


def test_a_closed_send_window_sends_nothing(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    result = make_notifier().send(sms(valid_until=datetime.now(UTC) - timedelta(seconds=1)))

    assert result.status is SendStatus.TRANSIENT and result.error == "send window closed before sending"
    assert fake.requests == []


# -- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (21211, "Invalid 'To' Phone Number"),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21614, "'To' number is not a valid mobile number"),
        (21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    ],
)
def test_twilio_rejecting_the_message_is_permanent_with_its_code(
    fake: FakeTwilio, make_notifier: NotifierFactory, code: int, text: str
) -> None:
    fake.script(error(400, code, text))

    result = make_notifier().send(sms())

    assert result.status is SendStatus.PERMANENT
    assert result.error_code == str(code)
    assert result.error == f"twilio {code}: {text}"  # Twilio's message, without the SDK's prefix
    assert result.opted_out is (code == 21610)  # the recipient replied STOP: recorded as an opt-out


def test_rate_limiting_is_transient_and_keeps_retry_after(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    fake.script(rate_limited(7))

    result = make_notifier().send(sms())

    assert result.status is SendStatus.TRANSIENT and result.retry_after_seconds == 7
    assert fake.accepted == []


def test_retry_after_is_not_carried_over_to_a_later_failure(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    # Headers are remembered per request, so a later 429 without Retry-After gets no stale hint.
    notifier = make_notifier()
    fake.script(rate_limited(7), error(429, 20429, "Too Many Requests"), rate_limited("soon"))
    assert notifier.send(sms()).retry_after_seconds == 7
    assert notifier.send(sms()).retry_after_seconds is None
    assert notifier.send(sms()).retry_after_seconds is None  # unparseable: no hint rather than a wrong one


def test_wrong_credentials_are_transient_not_permanent(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    # A bad token is a configuration problem: it must not burn every message in the outbox.
    notifier = make_notifier(auth_token="0123456789abcdef0123456789abcdef")

    result = notifier.send(sms())

    assert result.status is SendStatus.TRANSIENT
    assert result.error is not None and "authentication failed" in result.error
    assert "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN" in result.error
    assert fake.accepted == []


def test_connection_refused_is_transient() -> None:
    notifier = TwilioSmsNotifier(
        account_sid="AC" + "1" * 32, auth_token="t" * 32, from_number=FROM, base_url=unused_base_url()
    )

    result = notifier.send(sms())

    assert result.status is SendStatus.TRANSIENT
    assert result.error is not None and "nothing was sent" in result.error


@pytest.mark.parametrize("accepted", [True, False])
def test_a_server_error_is_ambiguous_whether_or_not_twilio_kept_it(
    fake: FakeTwilio, make_notifier: NotifierFactory, accepted: bool
) -> None:
    # From the client's side both look the same: only reconcile can tell them apart.
    fake.script(server_error(accept=accepted))

    assert make_notifier().send(sms()).status is SendStatus.AMBIGUOUS


def test_a_slow_answer_past_the_timeout_is_ambiguous(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    fake.script(slow(2.0))
    started = time.monotonic()

    result = make_notifier(timeout_seconds=0.5).send(sms())

    assert result.status is SendStatus.AMBIGUOUS
    assert time.monotonic() - started < 1.5  # the read timeout fired; we did not wait for the answer
    assert len(fake.accepted) == 1  # Twilio did take it: resending blindly would duplicate


def test_global_latency_slows_every_answer(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    fake.latency_seconds = 2.0

    assert make_notifier(timeout_seconds=0.5).send(sms()).status is SendStatus.AMBIGUOUS


def test_a_connection_dropped_after_sending_is_ambiguous() -> None:
    with hanging_up_after(b"Body=") as url:  # the whole request has left when its body has
        notifier = TwilioSmsNotifier(account_sid="AC" + "2" * 32, auth_token="t" * 32, from_number=FROM, base_url=url)
        result = notifier.send(sms())

    assert result.status is SendStatus.AMBIGUOUS
    assert result.error is not None and "dropped after sending" in result.error


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), SendStatus.TRANSIENT),
        (
            requests.exceptions.ConnectionError(
                MaxRetryError(None, "/x", NameResolutionError("api.twilio.com", None, OSError("no such host")))  # type: ignore[arg-type]
            ),
            SendStatus.TRANSIENT,
        ),
        (requests.exceptions.ReadTimeout("read timed out"), SendStatus.AMBIGUOUS),
        (RuntimeError("boom"), SendStatus.TRANSIENT),
    ],
)
def test_failures_that_loopback_cannot_produce_are_classified_by_cause(
    make_notifier: NotifierFactory, failure: Exception, expected: SendStatus
) -> None:
    # Connect timeouts and DNS failures cannot be produced reliably on 127.0.0.1, so the
    # classifier is given the exceptions requests would raise for them.
    assert make_notifier()._classify(failure).status is expected


def test_no_credential_appears_in_any_error(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    fake.script(error(400, 21211, "Invalid 'To' Phone Number"), rate_limited(3), server_error(True), slow(2.0))
    results = [notifier.send(sms()) for _ in range(4)]
    results.append(make_notifier(auth_token="f" * 32).send(sms()))
    dead = TwilioSmsNotifier(
        account_sid=fake.account_sid, auth_token=fake.auth_token, from_number=FROM, base_url=unused_base_url()
    )
    results += [dead.send(sms()), dead.reconcile(sms(), datetime.now(UTC)) or SendResult.sent()]

    assert all(result.error for result in results)
    for result in results:
        assert_no_credentials(result, fake.account_sid, fake.auth_token, "f" * 32)
    assert fake.auth_token not in repr(notifier)


# -- reconciling --------------------------------------------------------------------------------


def test_reconcile_finds_a_message_accepted_before_a_server_error(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()
    since = datetime.now(UTC)
    fake.script(server_error(accept=True))
    assert notifier.send(sms()).status is SendStatus.AMBIGUOUS

    found = notifier.reconcile(sms(), since)

    assert found is not None and found.status is SendStatus.SENT
    assert len(fake.accepted) == 1 and found.provider_message_id == fake.accepted[0]["sid"]


def test_reconcile_finds_a_message_accepted_before_a_timeout(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    since = datetime.now(UTC)
    fake.script(slow(2.0))
    assert notifier.send(sms()).status is SendStatus.AMBIGUOUS

    found = notifier.reconcile(sms(), since)

    assert found == SendResult.sent(fake.accepted[0]["sid"])


def test_reconcile_finds_nothing_when_the_server_error_kept_nothing(
    fake: FakeTwilio, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()
    since = datetime.now(UTC)
    fake.script(server_error(accept=False))
    notifier.send(sms())

    assert notifier.reconcile(sms(), since) is None


def test_reconcile_ignores_a_message_with_another_body(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier()
    since = datetime.now(UTC)
    notifier.send(sms(body="【居住证提醒】另一条提醒"))

    assert notifier.reconcile(sms(), since) is None


def test_reconcile_ignores_the_same_text_sent_long_before(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    # Yesterday's identical reminder is not the lost send of today.
    fake.add_accepted(TO, BODY, created=datetime.now(UTC) - timedelta(days=1))

    assert make_notifier().reconcile(sms(), datetime.now(UTC)) is None


def test_reconcile_filters_by_recipient_only(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    # A DateSent> filter would hide queued messages, which have no DateSent yet.
    make_notifier().reconcile(sms(), datetime.now(UTC))

    listing = fake.requests[-1]
    assert listing.method == "GET" and listing.params["To"] == TO
    assert not any(key.startswith("DateSent") for key in listing.params)


def test_reconcile_against_a_dead_server_is_transient() -> None:
    notifier = TwilioSmsNotifier(
        account_sid="AC" + "3" * 32, auth_token="t" * 32, from_number=FROM, base_url=unused_base_url()
    )

    result = notifier.reconcile(sms(), datetime.now(UTC))

    assert result is not None and result.status is SendStatus.TRANSIENT


def test_reconcile_with_wrong_credentials_is_transient(fake: FakeTwilio, make_notifier: NotifierFactory) -> None:
    result = make_notifier(auth_token="e" * 32).reconcile(sms(), datetime.now(UTC))

    assert result is not None and result.status is SendStatus.TRANSIENT
    assert result.error == "reconcile lookup failed: HTTP 401 from Twilio"


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"])
@pytest.mark.parametrize("unset", ["absent", "empty"])
def test_a_missing_credential_is_named(fake: FakeTwilio, missing: str, unset: str) -> None:
    env = env_for(fake)
    if unset == "absent":
        del env[missing]
    else:
        env[missing] = ""  # empty counts as unset

    with pytest.raises(NotifierConfigError, match=f"^{missing} is not set$"):
        TwilioSmsNotifier.from_env(env)


def test_a_missing_sender_names_both_variables(fake: FakeTwilio) -> None:
    env = env_for(fake, TWILIO_FROM_NUMBER="", TWILIO_MESSAGING_SERVICE_SID="")

    with pytest.raises(NotifierConfigError, match="TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        TwilioSmsNotifier.from_env(env)


def test_a_bad_timeout_is_a_config_error(fake: FakeTwilio) -> None:
    for value in ["soon", "0", "-1", "nan"]:
        with pytest.raises(NotifierConfigError, match="PERMIT_TWILIO_TIMEOUT_SECONDS"):
            TwilioSmsNotifier.from_env(env_for(fake, PERMIT_TWILIO_TIMEOUT_SECONDS=value))


def test_config_errors_never_echo_the_token(fake: FakeTwilio) -> None:
    with pytest.raises(NotifierConfigError) as caught:
        TwilioSmsNotifier.from_env(env_for(fake, TWILIO_FROM_NUMBER=""))

    assert fake.auth_token not in str(caught.value)


def test_public_url_gives_the_status_callback(fake: FakeTwilio) -> None:
    notifier = TwilioSmsNotifier.from_env(env_for(fake, PERMIT_PUBLIC_URL="https://permit.example.com/"))

    assert notifier.send(sms()).status is SendStatus.SENT
    assert fake.requests[0].params["StatusCallback"] == "https://permit.example.com/webhooks/twilio/status"


def test_an_explicit_status_callback_wins_over_the_public_url(fake: FakeTwilio) -> None:
    env = env_for(
        fake,
        PERMIT_PUBLIC_URL="https://permit.example.com",
        PERMIT_TWILIO_STATUS_CALLBACK_URL="https://hooks.example.com/twilio",
    )

    TwilioSmsNotifier.from_env(env).send(sms())

    assert fake.requests[0].params["StatusCallback"] == "https://hooks.example.com/twilio"


def test_without_public_url_no_status_callback_is_sent(fake: FakeTwilio) -> None:
    TwilioSmsNotifier.from_env(env_for(fake)).send(sms())

    assert "StatusCallback" not in fake.requests[0].params


def test_the_registry_builds_it_from_the_environment(fake: FakeTwilio) -> None:
    notifier = get_notifier("twilio", env=env_for(fake, TWILIO_MESSAGING_SERVICE_SID=SERVICE))

    assert notifier.name == "twilio" and notifier.channels == {"sms"}
    assert notifier.send(sms()).status is SendStatus.SENT
    assert fake.requests[0].params["MessagingServiceSid"] == SERVICE


def test_every_request_goes_to_the_base_url_even_with_sdk_edge_variables(
    fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK reads TWILIO_EDGE/TWILIO_REGION from os.environ and would rewrite the host with them.
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    notifier = TwilioSmsNotifier.from_env(env_for(fake))

    assert notifier.send(sms()).status is SendStatus.SENT
    assert notifier.reconcile(sms(), datetime.now(UTC)) is not None
    assert [r.method for r in fake.requests] == ["POST", "GET"]
