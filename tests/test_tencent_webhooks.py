"""Tencent's status report and reply pushes: parsing, the routes over real HTTP (uvicorn on
127.0.0.1), and one pass through the worker's app and Inbox against a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from notifiers.base import Receipt, Reply
from notifiers.tencent.receipts import RANK, receipt_from, reply_from, reply_id
from notifiers.tencent.webhooks import REPLY_PATH, STATUS_PATH, webhook_router
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Notification

from .support import add_holder, serve

TOKEN = "tencent-callback-token-0123456789"
SID = "2433:1045710669157053657849499619"
EXPIRES = date(2027, 1, 20)
OK = {"result": 0, "errmsg": "OK"}


def report(status: str = "SUCCESS", errmsg: str = "DELIVRD", description: str = "用户短信送达成功",
           sid: str = SID) -> dict[str, Any]:
    return {"user_receive_time": "2015-10-17 08:03:04", "nationcode": "86", "mobile": "13800138000",
            "report_status": status, "errmsg": errmsg, "description": description, "sid": sid,
            "session_context": "outbox-1"}


REPLY = {"extend": "", "mobile": "13800138000", "nationcode": "86", "sign": "居住证提醒", "text": "已续签",
         "time": 1470724880}


# -- parsing ------------------------------------------------------------------------------------


def test_a_delivered_report_is_a_delivered_receipt_keyed_by_the_serial_no() -> None:
    receipt = receipt_from(report())

    assert receipt == Receipt(provider="tencent", message_id=SID, status="delivered", error_code=None, order=RANK,
                              undelivered=False, permanent=False)


@pytest.mark.parametrize(("errmsg", "description", "permanent"), [
    ("UNDELIV", "用户关机", False), ("EXPIRED", "", False), ("UNKNOWN", "", False),
    ("SUBFAIL", "", True), ("REJECTD", "", True), ("DB:0101", "", True), ("MK:0001", "空号", True),
])
def test_a_failed_report_is_undelivered_and_permanent_only_for_dead_numbers(
    errmsg: str, description: str, permanent: bool
) -> None:
    receipt = receipt_from(report("FAIL", errmsg, description))

    assert receipt is not None and (receipt.status, receipt.undelivered) == ("undelivered", True)
    assert (receipt.error_code, receipt.permanent) == (errmsg, permanent)


def test_delivered_outranks_undelivered() -> None:
    receipt = receipt_from(report())
    assert receipt is not None and receipt.rank("delivered") > receipt.rank("undelivered") > receipt.rank(None)


@pytest.mark.parametrize("broken", [{"report_status": "SUCCESS"}, report(sid=""), report(status="MAYBE")])
def test_a_report_without_sid_or_status_is_not_a_receipt(broken: dict[str, Any]) -> None:
    assert receipt_from(broken) is None


@pytest.mark.parametrize(("nationcode", "mobile", "expected"), [
    ("86", "13800138000", "+8613800138000"), ("", "13800138000", "+8613800138000"),
    ("852", "61234567", "+85261234567"), ("86", "+8613800138000", "+8613800138000"),
    ("86", "8613800138000", "+8613800138000"),
])
def test_a_reply_comes_from_an_e164_number(nationcode: str, mobile: str, expected: str) -> None:
    reply = reply_from({**REPLY, "nationcode": nationcode, "mobile": mobile})
    assert reply is not None and reply.from_number == expected


def test_a_reply_has_a_stable_id_from_its_fields() -> None:
    first, again = reply_from(REPLY), reply_from(dict(REPLY))
    other = reply_from({**REPLY, "text": "TD"})

    assert first == again == Reply(provider="tencent", from_number="+8613800138000", body="已续签",
                                   message_id=reply_id("86", "13800138000", "1470724880", "已续签"))
    assert other is not None and first is not None and other.message_id != first.message_id


# -- the routes, with a recording sink ------------------------------------------------------------


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


@pytest.fixture
def base(sink: RecordingSink) -> Iterator[str]:
    app = FastAPI()
    app.include_router(webhook_router(sink, {"PERMIT_TENCENT_CALLBACK_TOKEN": TOKEN}, None))
    yield from serve(app)


def post(base: str, path: str, body: Any, token: str | None = TOKEN) -> httpx.Response:
    params = {"token": token} if token is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return httpx.post(f"{base}{path}", params=params, content=content,
                      headers={"Content-Type": "application/json"}, timeout=10)


def test_a_batch_of_reports_is_handed_over_and_answered_as_tencent_expects(base: str, sink: RecordingSink) -> None:
    response = post(base, STATUS_PATH, [report(), report("FAIL", "UNDELIV", sid="2433:2")])

    assert response.status_code == 200 and response.json() == OK
    assert response.headers["content-type"] == "application/json"
    assert [(r.message_id, r.status) for r in sink.receipts] == [(SID, "delivered"), ("2433:2", "undelivered")]


def test_a_single_object_is_accepted_too(base: str, sink: RecordingSink) -> None:
    assert post(base, STATUS_PATH, report()).json() == OK
    assert post(base, REPLY_PATH, REPLY).json() == OK
    assert post(base, REPLY_PATH, [REPLY, {**REPLY, "text": "TD"}]).json() == OK
    assert len(sink.receipts) == 1 and [r.body for r in sink.replies] == ["已续签", "已续签", "TD"]


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
@pytest.mark.parametrize("path", [STATUS_PATH, REPLY_PATH])
def test_a_wrong_or_missing_token_is_403_and_hands_over_nothing(
    base: str, sink: RecordingSink, token: str | None, path: str
) -> None:
    response = post(base, path, [report()] if path == STATUS_PATH else REPLY, token=token)

    assert response.status_code == 403 and response.json()["result"] != 0
    assert sink.receipts == [] and sink.replies == []


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", json.dumps([report(), {"sid": "x"}]).encode(),
                                  b'"a string"', b"[1, 2]"])
def test_a_malformed_body_is_400_and_nothing_of_it_is_applied(base: str, sink: RecordingSink, body: bytes) -> None:
    assert post(base, STATUS_PATH, body).status_code == 400
    assert post(base, REPLY_PATH, body).status_code == 400
    assert sink.receipts == [] and sink.replies == []


def test_without_a_token_configured_every_request_is_403(sink: RecordingSink) -> None:
    app = FastAPI()
    app.include_router(webhook_router(sink, {}, None))
    for url in serve(app):
        assert post(url, STATUS_PATH, [report()]).status_code == 403
        assert post(url, STATUS_PATH, [report()], token="").status_code == 403
    assert sink.receipts == []


# -- one pass through the worker's app and Inbox ----------------------------------------------------


@pytest.fixture
def app_url(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PERMIT_TENCENT_CALLBACK_TOKEN", TOKEN)
    runtime = Runtime(Settings(database_url=db_url))
    yield from serve(create_app(runtime))
    runtime.engine.dispose()


def test_through_the_app_a_report_pushed_twice_acts_once_and_a_wrong_token_changes_nothing(
    app_url: str, factory: Any, team: Any
) -> None:
    holder_id = add_holder(factory, team, "E1", EXPIRES, phone="+8613800138000", email="e1@example.com")
    now = datetime.now(UTC)
    with unit_of_work(factory) as session:
        note = Notification(holder_id=holder_id, cycle_expires_on=EXPIRES, stage="renew_in_person", touch_day=-10,
                            touch_on=EXPIRES - timedelta(days=10), channel="sms", status="sent", attempts=1,
                            next_attempt_at=now, sent_at=now)
        session.add(note)
        session.flush()
        session.add(DeliveryAttempt(notification_id=note.id, attempt_no=1, notifier="tencent", started_at=now,
                                    finished_at=now, outcome="sent", provider_message_id=SID))

    def notes() -> list[tuple[str, str, str | None]]:
        with unit_of_work(factory) as session:
            return [(n.channel, n.status, n.delivery_status)
                    for n in session.scalars(select(Notification).order_by(Notification.id))]

    dead_number = [report("FAIL", "SUBFAIL", "号码错误")]
    assert post(app_url, STATUS_PATH, dead_number, token="wrong").status_code == 403
    assert notes() == [("sms", "sent", None)]
    for _ in range(2):
        response = post(app_url, STATUS_PATH, dead_number)
        assert response.status_code == 200 and response.json() == OK
    # Failed once, one email fallback: the replay was recognised as a duplicate.
    assert notes() == [("sms", "failed", "undelivered"), ("email", "pending", None)]
