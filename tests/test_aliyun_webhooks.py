"""Aliyun's SmsReport/SmsUp pushes: parsing, the routes with a recording sink, and one pass through
the real app (uvicorn on 127.0.0.1, the Inbox on a real SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from notifiers.aliyun.receipts import PushError, receipt_from, reply_from
from notifiers.aliyun.webhooks import REPLY_PATH, REPORT_PATH, webhook_router
from notifiers.base import Receipt, Reply
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Notification

from .support import add_holder, serve

TOKEN = "aliyun-callback-token-0123456789"
BIZ_ID = "932702304080415357^0"
EXPIRES = date(2027, 1, 20)
ACCEPTED = {"code": 0, "msg": "成功"}


def report(**fields: Any) -> dict[str, Any]:
    item = {"phone_number": "13800138000", "send_time": "2017-01-01 00:00:00", "report_time": "2017-01-01 00:00:05",
            "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": BIZ_ID,
            "out_id": "outbox-1"}
    return {**item, **fields}


def up(**fields: Any) -> dict[str, Any]:
    item = {"phone_number": "13800138000", "send_time": "2017-01-01 00:00:00", "content": "已续签",
            "sign_name": "居住证提醒", "dest_code": "1234", "sequence_id": 1234567}
    return {**item, **fields}


# -- parsing ------------------------------------------------------------------------------------


def test_a_delivered_report_keeps_the_biz_id_exactly() -> None:
    receipt = receipt_from(report())

    assert (receipt.provider, receipt.message_id, receipt.status) == ("aliyun", BIZ_ID, "delivered")
    assert not receipt.undelivered and not receipt.permanent and receipt.error_code == "DELIVERED"


@pytest.mark.parametrize(("err", "permanent"), [("MOBILE_NOT_ON_SERVICE", True), ("MOBILE_ACCOUNT_ABNORMAL", True),
                                                ("INVALID_NUMBER", True), ("MOBILE_IN_BLACK", True),
                                                ("MOBLLE_TERMINAL_ERROR", False), ("MOBILE_SEND_LIMIT", False),
                                                ("UNKNOWN", False)])
def test_an_undelivered_report_is_permanent_by_its_code(err: str, permanent: bool) -> None:
    receipt = receipt_from(report(success=False, err_code=err))

    assert receipt.status == "undelivered" and receipt.undelivered and receipt.permanent is permanent


def test_a_late_copy_does_not_outrank_the_final_status() -> None:
    receipt = receipt_from(report())

    assert receipt.rank("delivered") == receipt.rank("undelivered") > receipt.rank("sent") > receipt.rank(None)


@pytest.mark.parametrize("item", [report(biz_id=""), {k: v for k, v in report().items() if k != "success"},
                                  report(success="yes")])
def test_a_report_without_id_or_verdict_is_refused(item: dict[str, Any]) -> None:
    with pytest.raises(PushError):
        receipt_from(item)


def test_a_reply_uses_its_sequence_id_and_an_e164_number() -> None:
    reply = reply_from(up())

    assert reply == Reply(provider="aliyun", from_number="+8613800138000", body="已续签", message_id="1234567")


def test_a_reply_without_sequence_id_gets_a_stable_hash() -> None:
    first, again = reply_from(up(sequence_id=None)), reply_from(up(sequence_id=None))
    other = reply_from(up(sequence_id=None, content="TD"))

    assert first.message_id == again.message_id != other.message_id
    assert first.message_id is not None and first.message_id.startswith("sha256:")


@pytest.mark.parametrize(("number", "expected"), [("13800138000", "+8613800138000"), ("8613800138000", "+8613800138000"),
                                                  ("+8613800138000", "+8613800138000"), ("85261234567", "+85261234567")])
def test_reply_numbers_become_e164(number: str, expected: str) -> None:
    assert reply_from(up(phone_number=number)).from_number == expected


# -- the routes, with a recording sink ----------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.replies: list[Reply] = []

    def receipt(self, receipt: Receipt) -> str:
        self.receipts.append(receipt)
        return receipt.status

    def reply(self, reply: Reply) -> str:
        self.replies.append(reply)
        return "reply"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def client_for(sink: RecordingSink, env: dict[str, str]) -> TestClient:
    app = FastAPI()
    app.include_router(webhook_router(sink, env, None))
    return TestClient(app)


@pytest.fixture
def client(sink: RecordingSink) -> TestClient:
    return client_for(sink, {"PERMIT_ALIYUN_CALLBACK_TOKEN": TOKEN})


def test_a_batch_report_is_handed_over_item_by_item_and_answered_as_aliyun_expects(client: TestClient,
                                                                                    sink: RecordingSink) -> None:
    batch = [report(), report(biz_id="1^0", success=False, err_code="MOBILE_NOT_ON_SERVICE")]
    response = client.post(f"{REPORT_PATH}?token={TOKEN}", json=batch)

    assert response.status_code == 200 and response.json() == ACCEPTED
    assert [(r.message_id, r.status, r.permanent) for r in sink.receipts] == [
        (BIZ_ID, "delivered", False), ("1^0", "undelivered", True)]


def test_a_single_object_is_accepted_too(client: TestClient, sink: RecordingSink) -> None:
    assert client.post(f"{REPLY_PATH}?token={TOKEN}", json=up()).json() == ACCEPTED
    assert [r.body for r in sink.replies] == ["已续签"]


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong", f"?token={TOKEN}x"])
@pytest.mark.parametrize("path", [REPORT_PATH, REPLY_PATH])
def test_a_wrong_or_missing_token_is_403_and_hands_nothing_over(client: TestClient, sink: RecordingSink,
                                                                query: str, path: str) -> None:
    response = client.post(f"{path}{query}", json=[report()] if path == REPORT_PATH else [up()])

    assert response.status_code == 403 and "error" in response.json()
    assert sink.receipts == [] and sink.replies == []


def test_without_the_token_variable_every_push_is_403(sink: RecordingSink) -> None:
    client = client_for(sink, {})

    assert client.post(f"{REPORT_PATH}?token=", json=[report()]).status_code == 403
    assert client.post(f"{REPORT_PATH}?token=None", json=[report()]).status_code == 403
    assert sink.receipts == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'[{"biz_id": "1^0"}]', b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_the_documented_json_is_400_and_nothing_is_applied(client: TestClient, sink: RecordingSink,
                                                                              body: bytes) -> None:
    response = client.post(f"{REPORT_PATH}?token={TOKEN}", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400 and sink.receipts == []


def test_one_bad_item_refuses_the_whole_batch(client: TestClient, sink: RecordingSink) -> None:
    response = client.post(f"{REPORT_PATH}?token={TOKEN}", json=[report(), report(biz_id="")])

    assert response.status_code == 400 and sink.receipts == []


# -- through the real app -----------------------------------------------------------------------


@pytest.fixture
def server(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PERMIT_ALIYUN_CALLBACK_TOKEN", TOKEN)
    runtime = Runtime(Settings(database_url=db_url))
    yield from serve(create_app(runtime))
    runtime.engine.dispose()


def test_a_receipt_pushed_twice_acts_once_and_a_wrong_token_changes_nothing(server: str, factory: Any,
                                                                           team: Any) -> None:
    holder_id = add_holder(factory, team, "E1", EXPIRES, phone="+8613800138000", email="e1@example.com")
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        note = Notification(holder_id=holder_id, cycle_expires_on=EXPIRES, stage="renew_in_person", touch_day=-10,
                            touch_on=EXPIRES - timedelta(days=10), channel="sms", status="sent", attempts=1,
                            next_attempt_at=now, sent_at=now)
        session.add(note)
        session.flush()
        session.add(DeliveryAttempt(notification_id=note.id, attempt_no=1, notifier="aliyun", started_at=now,
                                    finished_at=now, outcome="sent", provider_message_id=BIZ_ID))

    def notes() -> list[tuple[str, str, str | None]]:
        with unit_of_work(factory) as session:
            return [(n.channel, n.status, n.delivery_status)
                    for n in session.scalars(select(Notification).order_by(Notification.id))]

    failed = [report(success=False, err_code="MOBILE_NOT_ON_SERVICE", err_msg="停机")]
    wrong = httpx.post(f"{server}{REPORT_PATH}?token=nope", json=failed, timeout=10)
    assert wrong.status_code == 403 and notes() == [("sms", "sent", None)]

    answers = [httpx.post(f"{server}{REPORT_PATH}?token={TOKEN}", json=failed, timeout=10) for _ in range(2)]

    assert [(a.status_code, a.json()) for a in answers] == [(200, ACCEPTED), (200, ACCEPTED)]
    # Acted once: failed, with one email fallback (a second act would have changed nothing more,
    # but would have planned a second fallback).
    assert notes() == [("sms", "failed", "undelivered"), ("email", "pending", None)]
