"""Receipts and replies from outside, as an attacker or a retrying provider sends them: a replay
changes nothing, an old attempt's receipt is history, a carrier retry counts toward the limit,
and a reply reaches only the team that messaged the number. Over real HTTP, both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from schedules.policy import default_policy, parse_send_window
from worker.delivery.dispatch import Dispatcher, RetryPolicy
from worker.delivery.inbound import seen_before
from worker.planning.scan import scan
from worker.registry import records as registry
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, HrEvent, InboundEvent, Notification

from .support import RecordingNotifier, add_holder
from .test_webhooks import hr_kinds, notes, post, server  # noqa: F401  (server: a fixture)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SOON = datetime.now(SHANGHAI).date() + timedelta(days=10)  # renew_in_person, its -10 touch due today
PHONE = "+8613800138000"


def _dispatcher(factory, notifier: RecordingNotifier, max_attempts: int = 6) -> Dispatcher:
    return Dispatcher(factory, {"sms": notifier, "email": notifier}, default_policy(), SHANGHAI,
                      send_window=parse_send_window("00:00-24:00"), retry=RetryPolicy(max_attempts=max_attempts))


def _sent_touch(factory, team, notifier: RecordingNotifier, **fields: object) -> int:
    """A holder whose -10 touch went out through the real dispatcher; returns the holder id."""
    holder_id = add_holder(factory, team, "E1", SOON, phone=PHONE, email="e1@example.com", **fields)
    scan(factory, default_policy(), SHANGHAI)
    assert _dispatcher(factory, notifier).dispatch_one() == "sent"
    return holder_id


def _sids(factory) -> list[str]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(DeliveryAttempt.provider_message_id).order_by(DeliveryAttempt.id)))


def _undelivered(sid: str, code: str = "30003") -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": code}


def test_a_replayed_undelivered_receipt_sends_at_most_one_more_message(server, factory, team) -> None:
    notifier = RecordingNotifier()
    _sent_touch(factory, team, notifier)
    [first] = _sids(factory)
    for _ in range(6):  # the provider's own retries, or an attacker with one signed copy
        assert post(server, "/webhooks/twilio/status", _undelivered(first)).status_code == 204
    assert notes(factory) == [("sms", "pending", "undelivered")]
    later = datetime.now(UTC) + timedelta(minutes=11)
    assert _dispatcher(factory, notifier).dispatch_one(now=later) == "sent"
    assert notes(factory) == [("sms", "sent", None)]  # the resent message has no receipt yet
    for _ in range(5):  # the old message's receipt, replayed after the resend: history
        post(server, "/webhooks/twilio/status", _undelivered(first))
    assert _dispatcher(factory, notifier).dispatch_one(now=later + timedelta(hours=1)) is None
    assert len(notifier.sent) == 2
    assert notes(factory) == [("sms", "sent", None)]


def test_a_receipt_for_an_older_attempt_does_not_overwrite_the_latest(server, factory, team) -> None:
    notifier = RecordingNotifier()
    _sent_touch(factory, team, notifier)
    post(server, "/webhooks/twilio/status", _undelivered(_sids(factory)[0]))
    _dispatcher(factory, notifier).dispatch_one(now=datetime.now(UTC) + timedelta(minutes=11))
    old, new = _sids(factory)
    post(server, "/webhooks/twilio/status", {"MessageSid": new, "MessageStatus": "delivered"})
    post(server, "/webhooks/twilio/status", {"MessageSid": old, "MessageStatus": "failed", "ErrorCode": "30006"})
    assert notes(factory) == [("sms", "sent", "delivered")]  # no fallback for a message that arrived


def test_a_carrier_retry_counts_toward_the_attempt_limit(server, factory, team) -> None:
    notifier = RecordingNotifier()
    _sent_touch(factory, team, notifier)
    with unit_of_work(factory) as session:
        session.execute(update(Notification).values(attempts=6))  # this send was the last allowed
    post(server, "/webhooks/twilio/status", _undelivered(_sids(factory)[0]))
    assert notes(factory) == [("sms", "failed", "undelivered"), ("email", "pending", None)]
    with unit_of_work(factory) as session:
        assert session.scalar(select(Notification.status_reason).where(Notification.channel == "sms")).startswith(
            "gave up after 6 attempts")


def test_one_attempt_short_of_the_limit_the_carrier_retry_still_happens(server, factory, team) -> None:
    notifier = RecordingNotifier()
    _sent_touch(factory, team, notifier)
    with unit_of_work(factory) as session:
        session.execute(update(Notification).values(attempts=5))
    post(server, "/webhooks/twilio/status", _undelivered(_sids(factory)[0]))
    assert notes(factory) == [("sms", "pending", "undelivered")]


def test_the_same_message_and_status_twice_is_recorded_once(factory, team) -> None:
    with unit_of_work(factory) as session:
        assert seen_before(session, "twilio", "receipt", "SM1", "delivered") is False
        assert seen_before(session, "twilio", "receipt", "SM1", "delivered") is True
        assert seen_before(session, "twilio", "receipt", "SM1", "undelivered") is False
        assert seen_before(session, "twilio", "reply", "SM1") is False
    with unit_of_work(factory) as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 3


# -- replies ------------------------------------------------------------------------------------

@pytest.fixture
def shared_phone(factory, team) -> tuple[int, int]:
    """Two employers registered one person's phone; only acme has messaged it this cycle."""
    notifier = RecordingNotifier()
    acme = _sent_touch(factory, team, notifier)
    with unit_of_work(factory) as session:
        beta = registry.create_team(session, "beta", "Beta", "hr@beta.example")
    beta_holder = add_holder(factory, beta, "B7", SOON + timedelta(days=200), phone=PHONE)
    return acme, beta_holder


def test_a_reply_from_a_shared_number_acts_only_for_the_team_that_messaged_it(server, factory, shared_phone) -> None:
    acme, beta = shared_phone
    post(server, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "退订", "MessageSid": "SMr1"})
    with unit_of_work(factory) as session:
        assert session.get(Holder, acme).sms_opted_out_at is not None
        assert session.get(Holder, beta).sms_opted_out_at is None
        assert [(e.holder_id, e.kind) for e in session.scalars(select(HrEvent))] == [(acme, "opted_out")]


def test_a_renewal_reply_moves_only_the_messaging_teams_expiry(server, factory, shared_phone) -> None:
    acme, beta = shared_phone
    post(server, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "已续签", "MessageSid": "SMr2"})
    with unit_of_work(factory) as session:
        assert session.get(Holder, acme).expires_on == SOON.replace(year=SOON.year + 1)
        assert session.get(Holder, beta).expires_on == SOON + timedelta(days=200)


def test_a_reply_with_an_id_number_is_stored_masked_and_only_for_one_team(server, factory, shared_phone) -> None:
    post(server, "/webhooks/twilio/inbound", {"From": PHONE, "MessageSid": "SMr3",
                                              "Body": "我的身份证110105199001011234，电话13912345678"})
    with unit_of_work(factory) as session:
        [event] = session.scalars(select(HrEvent)).all()
    assert event.kind == "reply" and "110105199001011234" not in event.detail and "13912345678" not in event.detail
    assert "110*************34" in event.detail and "139****5678" in event.detail


def test_a_replayed_reply_acts_once(server, factory, shared_phone) -> None:
    for _ in range(3):
        post(server, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "你好", "MessageSid": "SMr4"})
    assert hr_kinds(factory) == ["reply"]


def test_a_reply_to_a_message_of_an_earlier_cycle_is_dropped(server, factory, team) -> None:
    notifier = RecordingNotifier()
    holder_id = _sent_touch(factory, team, notifier)
    with unit_of_work(factory) as session:  # renewed since the message went out
        registry.confirm_renewal(session, session.merge(team), "E1", SOON + timedelta(days=365))
    post(server, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "TD", "MessageSid": "SMr5"})
    with unit_of_work(factory) as session:
        assert session.get(Holder, holder_id).sms_opted_out_at is None
    assert hr_kinds(factory) == []


def test_a_reply_to_a_number_never_messaged_is_dropped(server, factory, team) -> None:
    add_holder(factory, team, "E2", SOON + timedelta(days=200), phone=PHONE)
    post(server, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "TD", "MessageSid": "SMr6"})
    assert hr_kinds(factory) == []


def test_a_nul_in_a_webhook_form_is_never_a_500(server, factory, team) -> None:
    notifier = RecordingNotifier()
    _sent_touch(factory, team, notifier)
    reply = post(server, "/webhooks/twilio/inbound", {"From": PHONE, "Body": "你\x00好", "MessageSid": "SM\x00x"})
    assert reply.status_code < 500
    status = post(server, "/webhooks/twilio/status", {"MessageSid": "SM\x00", "MessageStatus": "delivered"})
    assert status.status_code < 500


def test_a_provider_error_is_stored_masked(factory, team) -> None:
    from notifiers.base import SendResult

    notifier = RecordingNotifier(script=[SendResult.permanent(
        "twilio 21211: The 'To' number +8613800138000 is not a valid phone number.", "21211")])
    add_holder(factory, team, "E1", SOON, phone=PHONE, email="e1@example.com")
    scan(factory, default_policy(), SHANGHAI)
    assert _dispatcher(factory, notifier).dispatch_one() == "failed"
    with unit_of_work(factory) as session:
        note = session.scalar(select(Notification).where(Notification.channel == "sms"))
        attempt = session.scalar(select(DeliveryAttempt))
    assert "13800138000" not in (note.status_reason or "") and "13800138000" not in (attempt.error or "")
    assert "+86138****8000" in attempt.error
