"""The dispatcher through the real Twilio SDK and smtplib, to a fake Twilio API and a real SMTP
server on 127.0.0.1: retries, ambiguity, fallback, the HR digest and the rate ceiling."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from notifiers.smtp.fake import FakeSmtp
from notifiers.smtp.transport import SmtpEmailNotifier
from notifiers.twilio.fake import FakeTwilio, error, rate_limited, server_error
from notifiers.twilio.transport import TwilioSmsNotifier
from schedules.workdays import is_working_day
from worker.delivery.digest import send_digests
from worker.delivery.dispatch import Dispatcher, RetryPolicy
from worker.delivery.ratelimit import RateLimits
from worker.planning.scan import scan
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, HrEvent, Notification

from .support import add_holder
from .test_dispatch_concurrency import StoppedClock

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXPIRES = date(2027, 1, 20)
TOUCH_DAY = EXPIRES - timedelta(days=10)


# The touch day is a Sunday, so HR hears about it in the next working day's digest.
DIGEST_DAY = TOUCH_DAY + timedelta(days=1)



def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(TOUCH_DAY, datetime.min.time(), SHANGHAI).replace(hour=hour, minute=minute)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def make_dispatcher(factory, policy, twilio: FakeTwilio, smtp: FakeSmtp, rates: dict[str, float] | None = None,
                    rate_limits: RateLimits | None = None):
    sms = TwilioSmsNotifier(account_sid=twilio.account_sid, auth_token=twilio.auth_token, from_number="+15005550006",
                            base_url=twilio.base_url, status_callback_url="https://worker.example.com/webhooks/twilio/status",
                            timeout_seconds=2)
    email = SmtpEmailNotifier(host="127.0.0.1", port=smtp.port, tls="none", from_address="reminders@acme.example")
    return Dispatcher(factory, {"sms": sms, "email": email}, policy, SHANGHAI, worker_id="w1",
                      retry=RetryPolicy(max_attempts=4, base_seconds=60), rng=random.Random(1),
                      rate_limits=rate_limits or RateLimits(rates or {}))


def enqueue(factory, team, policy, external_id: str = "E1", **fields: object) -> None:
    fields.setdefault("phone", "+8613800138000")
    add_holder(factory, team, external_id, EXPIRES, **fields)
    scan(factory, policy, SHANGHAI, today=TOUCH_DAY, now=at(8, 30))


def rows(factory) -> list[tuple[str, str]]:
    with unit_of_work(factory) as session:
        return [(n.channel, n.status) for n in session.scalars(select(Notification).order_by(Notification.id))]


def attempts(factory) -> list[tuple[str, str | None]]:
    with unit_of_work(factory) as session:
        return [(a.outcome, a.provider_message_id)
                for a in session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id))]


def test_an_sms_goes_out_through_twilio_with_its_sid_segments_and_validity(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy)
    assert make_dispatcher(factory, policy, twilio, smtp).dispatch_one(at(10)) == "sent"
    [accepted] = twilio.accepted
    request = twilio.requests[-1].params
    assert request["To"] == "+8613800138000" and "2027年1月20日" in request["Body"]
    assert request["StatusCallback"] == "https://worker.example.com/webhooks/twilio/status"
    assert int(request["ValidityPeriod"]) == 10 * 3600  # until the 20:00 window close
    assert attempts(factory) == [("sent", accepted["sid"])]
    with unit_of_work(factory) as session:
        segments = session.scalar(select(Notification.segments))
    assert segments == int(accepted["num_segments"]) == 2  # our count agrees with the provider


def test_an_ambiguous_500_that_twilio_accepted_is_reconciled_not_resent(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy)
    twilio.script(server_error(accept=True))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    assert dispatcher.dispatch_one(at(10)) == "retry"
    with unit_of_work(factory) as session:
        retry_at = session.scalar(select(Notification.next_attempt_at))
    assert dispatcher.dispatch_one(retry_at) == "sent"
    assert len(twilio.accepted) == 1  # no second SMS
    assert len([r for r in twilio.requests if r.method == "POST"]) == 1
    sid = twilio.accepted[0]["sid"]
    assert attempts(factory) == [("ambiguous", None), ("sent", sid)]


def test_an_ambiguous_500_that_twilio_did_not_accept_is_sent_again(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy)
    twilio.script(server_error(accept=False))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    dispatcher.dispatch_one(at(10))
    assert dispatcher.dispatch_one(at(11)) == "sent"
    assert len(twilio.accepted) == 1
    assert [a[0] for a in attempts(factory)] == ["ambiguous", "sent"]


def test_a_429_is_retried_after_retry_after_and_then_succeeds(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy)
    twilio.script(rate_limited(300))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    assert dispatcher.dispatch_one(at(10)) == "retry"
    with unit_of_work(factory) as session:
        assert session.scalar(select(Notification.next_attempt_at)) >= at(10, 5)
    assert dispatcher.dispatch_one(at(10, 4)) is None
    assert dispatcher.dispatch_one(at(10, 6)) == "sent"
    assert [a[0] for a in attempts(factory)] == ["transient", "sent"]


def test_a_permanent_sms_failure_falls_back_to_email(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy, email="zhang@example.com")
    twilio.script(error(400, 21211, "The 'To' number is not a valid phone number."))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    assert dispatcher.dispatch_one(at(10)) == "failed"
    assert rows(factory) == [("sms", "failed"), ("email", "pending")]
    assert dispatcher.dispatch_one(at(10)) == "sent"
    [mail] = smtp.messages
    assert mail.rcpt_tos == ("zhang@example.com",)
    assert "2027年1月20日" in mail.message.get_body(("plain",)).get_content()


def digest_at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DIGEST_DAY, datetime.min.time(), SHANGHAI).replace(hour=hour, minute=minute)


def test_when_no_channel_works_hr_gets_it_in_one_digest(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy, "E1")
    enqueue(factory, team, policy, "E2", phone="+8613800138002")
    twilio.script(error(400, 21610, "Attempt to send to unsubscribed recipient"),
                  error(400, 21614, "'To' number is not a valid mobile number"))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    assert dispatcher.run_batch(now=at(10)) == {"failed": 2}
    assert not is_working_day(TOUCH_DAY) and is_working_day(DIGEST_DAY)
    email = dispatcher.notifiers["email"]
    assert send_digests(factory, email, policy, SHANGHAI, now=digest_at(10)) == 1
    [notice] = smtp.messages
    assert notice.rcpt_tos == ("hr@acme.example",)
    text = notice.message.get_body(("plain",)).get_content()
    assert "E1" in text and "E2" in text and "21610" in text and "13800138000" not in text
    assert send_digests(factory, email, policy, SHANGHAI, now=digest_at(10, 30)) == 0  # one a day
    with unit_of_work(factory) as session:
        assert all(e.reported_at for e in session.scalars(select(HrEvent)))


def test_a_digest_that_fails_to_send_is_sent_by_a_later_run_that_day(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy)
    twilio.script(error(400, 21211, "invalid"))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    dispatcher.dispatch_one(at(10))
    smtp.handler.reject("hr@acme.example", "451 4.3.0 Try again later")
    email = dispatcher.notifiers["email"]
    assert send_digests(factory, email, policy, SHANGHAI, now=digest_at(10)) == 0
    smtp.handler.reject("hr@acme.example", "")  # accept again
    assert send_digests(factory, email, policy, SHANGHAI, now=digest_at(10, 30)) == 1
    [digest] = smtp.messages
    assert "E1" in digest.message.get_body(("plain",)).get_content()


def test_an_opted_out_holder_gets_the_touch_by_email_instead(factory, team, policy, twilio, smtp) -> None:
    enqueue(factory, team, policy, email="zhang@example.com")
    with unit_of_work(factory) as session:
        session.execute(update(Holder).values(sms_opted_out_at=at(9)))
    dispatcher = make_dispatcher(factory, policy, twilio, smtp)
    assert dispatcher.dispatch_one(at(10)) == "cancelled"
    assert dispatcher.dispatch_one(at(10)) == "sent"
    assert twilio.accepted == [] and len(smtp.messages) == 1


def test_the_rate_ceiling_is_held(factory, team, policy, twilio, smtp) -> None:
    for i in range(6):
        enqueue(factory, team, policy, f"R{i}", phone=f"+861380013810{i}")
    clock = StoppedClock()
    dispatcher = make_dispatcher(factory, policy, twilio, smtp,
                                 rate_limits=RateLimits({"twilio": 5, "smtp": 1}, clock=clock, sleep=clock.sleep))
    assert dispatcher.run_batch(now=at(10)) == {"sent": 6}
    # Each Twilio send took the next slot of the twilio bucket, 1/5 s after the one before.
    assert sorted(clock.slept) == pytest.approx([i * 0.2 for i in range(1, 6)])  # the first goes at once
    assert len([r for r in twilio.requests if r.method == "POST"]) == 6
