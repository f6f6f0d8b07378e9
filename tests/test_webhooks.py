"""Twilio webhooks over real HTTP (uvicorn on 127.0.0.1) against a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator

from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, HrEvent, Notification

from .support import add_holder, serve

TOKEN = "test-auth-token-0123456789abcdef"
EXPIRES = date(2027, 1, 20)


@pytest.fixture
def server(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    runtime = Runtime(Settings(database_url=db_url, public_url="https://worker.example.com"))
    yield from serve(create_app(runtime))
    runtime.engine.dispose()


def post(base: str, path: str, form: dict[str, str], sign: bool = True, token: str = TOKEN) -> httpx.Response:
    headers = {}
    if sign:
        # Twilio signs the public URL it called, not the address the worker listens on.
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(
            f"https://worker.example.com{path}", form)
    return httpx.post(f"{base}{path}", data=form, headers=headers, timeout=10)


@pytest.fixture
def sent_sms(factory, team) -> tuple[int, int]:
    """A holder with phone and email whose -10 touch went out as SMS SM123."""
    holder_id = add_holder(factory, team, "E1", EXPIRES, phone="+8613800138000", email="e1@example.com")
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        note = Notification(holder_id=holder_id, cycle_expires_on=EXPIRES, stage="renew_in_person", touch_day=-10,
                            touch_on=EXPIRES - timedelta(days=10), channel="sms", status="sent", attempts=1,
                            next_attempt_at=now, sent_at=now)
        session.add(note)
        session.flush()
        session.add(DeliveryAttempt(notification_id=note.id, attempt_no=1, notifier="twilio", started_at=now,
                                    finished_at=now, outcome="sent", provider_message_id="SM123"))
        return holder_id, note.id


def notes(factory) -> list[tuple[str, str, str | None]]:
    with unit_of_work(factory) as session:
        return [(n.channel, n.status, n.delivery_status)
                for n in session.scalars(select(Notification).order_by(Notification.id))]


def hr_kinds(factory) -> list[str]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(HrEvent.kind).order_by(HrEvent.id)))


@pytest.mark.parametrize("sign", ["missing", "wrong-token", "tampered"])
def test_a_request_without_a_valid_signature_gets_403_and_changes_nothing(server, factory, sent_sms, sign) -> None:
    form = {"MessageSid": "SM123", "MessageStatus": "undelivered", "ErrorCode": "30006"}
    if sign == "missing":
        response = post(server, "/webhooks/twilio/status", form, sign=False)
    elif sign == "wrong-token":
        response = post(server, "/webhooks/twilio/status", form, token="another-token")
    else:
        headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
            "https://worker.example.com/webhooks/twilio/status", {**form, "ErrorCode": "30001"})}
        response = httpx.post(f"{server}/webhooks/twilio/status", data=form, headers=headers)
    assert response.status_code == 403
    assert notes(factory) == [("sms", "sent", None)]
    reply = post(server, "/webhooks/twilio/inbound", {"From": "+8613800138000", "Body": "TD"}, sign=False)
    assert reply.status_code == 403
    assert hr_kinds(factory) == []


def test_delivered_callbacks_are_recorded_and_late_ones_do_not_go_backwards(server, factory, sent_sms) -> None:
    assert post(server, "/webhooks/twilio/status", {"MessageSid": "SM123", "MessageStatus": "delivered"}).status_code == 204
    post(server, "/webhooks/twilio/status", {"MessageSid": "SM123", "MessageStatus": "sent"})
    assert notes(factory) == [("sms", "sent", "delivered")]


def test_a_permanent_carrier_failure_falls_back_to_email(server, factory, sent_sms) -> None:
    form = {"MessageSid": "SM123", "MessageStatus": "undelivered", "ErrorCode": "30006"}
    assert post(server, "/webhooks/twilio/status", form).status_code == 204
    assert notes(factory) == [("sms", "failed", "undelivered"), ("email", "pending", None)]


def test_a_permanent_failure_with_no_email_tells_hr(server, factory, sent_sms) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(Holder).values(email=None))
    post(server, "/webhooks/twilio/status", {"MessageSid": "SM123", "MessageStatus": "failed", "ErrorCode": "30005"})
    assert notes(factory) == [("sms", "failed", "failed")]
    assert hr_kinds(factory) == ["unreachable"]


def test_a_passing_carrier_failure_is_tried_once_more_later(server, factory, sent_sms) -> None:
    post(server, "/webhooks/twilio/status", {"MessageSid": "SM123", "MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert notes(factory) == [("sms", "pending", "undelivered")]


def test_a_callback_for_an_unknown_message_is_accepted_and_ignored(server, factory, sent_sms) -> None:
    assert post(server, "/webhooks/twilio/status", {"MessageSid": "SMnope", "MessageStatus": "failed"}).status_code == 204
    assert notes(factory) == [("sms", "sent", None)]


@pytest.mark.parametrize("word", ["TD", "t", "退订", "STOP", "ＴＤ"])
def test_an_opt_out_reply_stops_sms_but_not_email_and_hr_is_told(server, factory, sent_sms, word) -> None:
    response = post(server, "/webhooks/twilio/inbound", {"From": "+8613800138000", "Body": word, "MessageSid": "SMin"})
    assert response.status_code == 200 and "<Response>" in response.text
    with unit_of_work(factory) as session:
        holder = session.get(Holder, sent_sms[0])
        assert holder.sms_opted_out_at is not None and holder.email == "e1@example.com"
    assert hr_kinds(factory) == ["opted_out"]


@pytest.mark.parametrize("word", ["1", "已续签"])
def test_a_renewed_reply_moves_the_cycle_a_year_and_hr_sees_it(server, factory, sent_sms, word) -> None:
    with unit_of_work(factory) as session:
        session.add(Notification(holder_id=sent_sms[0], cycle_expires_on=EXPIRES, stage="renew_in_person",
                                 touch_day=-3, touch_on=EXPIRES - timedelta(days=3), channel="sms",
                                 status="pending", attempts=0, next_attempt_at=datetime.now(UTC)))
    post(server, "/webhooks/twilio/inbound", {"From": "+8613800138000", "Body": word})
    with unit_of_work(factory) as session:
        assert session.get(Holder, sent_sms[0]).expires_on == date(2028, 1, 20)
    assert notes(factory) == [("sms", "sent", None), ("sms", "cancelled", None)]
    assert hr_kinds(factory) == ["renewal_reported"]


def test_a_renewed_reply_without_a_reminder_this_cycle_changes_nothing(server, factory, team) -> None:
    # Nobody messaged this number in the current cycle: the reply is logged and dropped
    # (tests/test_inbound_trust.py has the shared-number cases).
    add_holder(factory, team, "E9", EXPIRES, phone="+8613800138009")
    post(server, "/webhooks/twilio/inbound", {"From": "+8613800138009", "Body": "1"})
    with unit_of_work(factory) as session:
        assert session.scalar(select(Holder.expires_on).where(Holder.external_id == "E9")) == EXPIRES
    assert hr_kinds(factory) == []


def test_a_reply_from_an_unknown_number_changes_nothing(server, factory, sent_sms) -> None:
    assert post(server, "/webhooks/twilio/inbound", {"From": "+8613999999999", "Body": "TD"}).status_code == 200
    assert hr_kinds(factory) == []


def test_healthz_reports_the_database(server) -> None:
    body = httpx.get(f"{server}/healthz").json()
    assert (body["status"], body["database"]) == ("ok", "ok")
