"""The dispatcher through the real Alibaba Cloud and Tencent Cloud SDKs and a real WeCom HTTP client,
to local fakes of their APIs on 127.0.0.1, with a real SMTP server for the fallback: approved
templates, each error class, fallback along the team's channel order, opt-outs, and receipts and
replies pushed through the app twice."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from notifiers.aliyun import fake as aliyun_fake
from notifiers.aliyun.fake import FakeAliyun
from notifiers.aliyun.transport import AliyunSmsNotifier
from notifiers.base import Notifier
from notifiers.smtp.fake import FakeSmtp
from notifiers.smtp.transport import SmtpEmailNotifier
from notifiers.tencent import outcomes as tencent_fake
from notifiers.tencent.fake import FakeTencentSms
from notifiers.tencent.transport import TencentSmsNotifier
from notifiers.wecom.fake import FakeWeCom
from notifiers.wecom.transport import WeComNotifier
from schedules.sms_templates import TemplateSet, load_sms_templates
from worker.delivery.dispatch import Dispatcher, RetryPolicy
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning.scan import scan
from worker.store.db import unit_of_work
from worker.store.models import DeliveryAttempt, Holder, HrEvent, Notification, Team

from .support import add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXPIRES = date(2027, 1, 20)
TOUCH_DAY = EXPIRES - timedelta(days=10)  # renew_in_person -10
PHONE = "+8613800138000"
SIGN = "居住证提醒"
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
CALLBACK_TOKEN = "callback-token-0123456789abcdef"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(TOUCH_DAY, datetime.min.time(), SHANGHAI).replace(hour=hour, minute=minute)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both SDKs send 127.0.0.1 traffic through HTTP_PROXY even with NO_PROXY set.
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


def approved(provider: str) -> TemplateSet:
    """The packaged templates, as a team's file would be once each one has its approved id."""
    tset = load_sms_templates()
    numbered = {key: dataclasses.replace(t, ids={provider: (f"SMS_{100 + i}" if provider == "aliyun" else str(1000 + i))})
                for i, (key, t) in enumerate(sorted(tset.templates.items()))}
    return dataclasses.replace(tset, templates=numbered)


@dataclasses.dataclass
class Provider:
    name: str
    fake: Any
    notifier: Notifier

    def sends(self) -> list[dict[str, Any]]:
        """What the provider was asked to send: template id, signature, parameters, number."""
        if self.name == "aliyun":
            return [{"template": r.params["TemplateCode"], "sign": r.params["SignName"], "to": r.params["PhoneNumbers"],
                     "params": r.params["TemplateParam"], "echo": r.params.get("OutId")} for r in self.fake.sends()]
        return [{"template": r.body["TemplateId"], "sign": r.body["SignName"], "to": r.body["PhoneNumberSet"][0],
                 "params": r.body["TemplateParamSet"], "echo": r.body.get("SessionContext")}
                for r in self.fake.requests if r.action == "SendSms"]

    def script(self, outcome: str) -> None:
        table = {
            "aliyun": {"permanent": aliyun_fake.code("isv.MOBILE_NUMBER_ILLEGAL"),
                       "transient": aliyun_fake.code("isv.BUSINESS_LIMIT_CONTROL"),
                       "ambiguous": aliyun_fake.server_error(accept=True)},
            "tencent": {"permanent": tencent_fake.refused("InvalidParameterValue.IncorrectPhoneNumber"),
                        "transient": tencent_fake.refused("LimitExceeded.PhoneNumberThirtySecondLimit"),
                        "ambiguous": tencent_fake.server_error(accept=True),
                        "opted_out": tencent_fake.refused("FailedOperation.PhoneNumberInBlacklist")},
        }
        self.fake.script(table[self.name][outcome])


@pytest.fixture(params=["aliyun", "tencent"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    if request.param == "aliyun":
        with FakeAliyun() as fake:
            yield Provider("aliyun", fake, AliyunSmsNotifier(
                access_key_id=fake.access_key_id, access_key_secret=fake.access_key_secret, sign_name=SIGN,
                endpoint=fake.endpoint, timeout_seconds=2.0))
    else:
        with FakeTencentSms() as fake:
            yield Provider("tencent", fake, TencentSmsNotifier(
                secret_id=fake.secret_id, secret_key=fake.secret_key, sdk_app_id=fake.sdk_app_id, sign_name=SIGN,
                endpoint=fake.endpoint, timeout_seconds=2.0))


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom(users={"zhangsan"}) as fake:
        yield fake


def dispatcher(factory, policy, sms: Notifier, smtp: FakeSmtp, wecom: FakeWeCom | None = None) -> Dispatcher:
    notifiers: dict[str, Notifier] = {
        "sms": sms, "email": SmtpEmailNotifier(host="127.0.0.1", port=smtp.port, tls="none",
                                              from_address="reminders@acme.example")}
    if wecom is not None:
        notifiers["wecom"] = WeComNotifier(corp_id=wecom.corp_id, agent_id=wecom.agent_id, secret=wecom.secret,
                                           base_url=wecom.base_url, timeout_seconds=2.0)
    return Dispatcher(factory, notifiers, policy, SHANGHAI, worker_id="w1", rng=random.Random(1),
                      retry=RetryPolicy(max_attempts=4, base_seconds=60), sms_templates=approved(sms.name))


def set_channels(factory, team: Team, channels: str) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(Team).where(Team.id == team.id).values(channels=channels))
    team.channels = channels  # the fixture's copy is merged into later sessions: keep it in step


def enqueue(factory, team, policy, **fields: object) -> int:
    holder_id = add_holder(factory, team, "E1", EXPIRES, phone=PHONE, **fields)
    scan(factory, policy, SHANGHAI, today=TOUCH_DAY, now=at(8, 30))
    return holder_id


def rows(factory) -> list[tuple[str, str]]:
    with unit_of_work(factory) as session:
        return [(n.channel, n.status) for n in session.scalars(select(Notification).order_by(Notification.id))]


def outcomes(factory) -> list[str]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(DeliveryAttempt.outcome).order_by(DeliveryAttempt.id)))


def drain(d: Dispatcher, until: datetime) -> list[str]:
    """Dispatch every row due by `until`, retries included, as the daemon would over the day."""
    done, moment = [], at(10)
    while moment <= until:
        while (outcome := d.dispatch_one(moment)) is not None:
            done.append(outcome)
        moment += timedelta(minutes=30)
    return done


def test_a_touch_goes_out_as_the_approved_template_with_its_signature_and_parameters(
        factory, team, policy, provider: Provider, smtp) -> None:
    enqueue(factory, team, policy)
    assert dispatcher(factory, policy, provider.notifier, smtp).dispatch_one(at(10)) == "sent"
    [sent] = provider.sends()
    tset = approved(provider.name)
    expected = tset.templates[("renew_in_person", "zh-CN")]
    assert sent["template"] == expected.ids[provider.name] and sent["sign"] == SIGN
    assert sent["to"] in (PHONE, PHONE.removeprefix("+86"))
    values = sent["params"] if isinstance(sent["params"], list) else list(__import__("json").loads(sent["params"]).values())
    assert values[:3] == ["张三您好", "2027年1月20日", "还剩10天"]  # ${hello} ${expires_on} ${countdown}, in order
    assert sent["echo"]  # the outbox key rides along, so receipts and reconciling map back
    with unit_of_work(factory) as session:
        segments = session.scalar(select(Notification.segments))
    assert segments == 2


def test_a_permanent_failure_falls_back_along_the_teams_order_exactly_once(
        factory, team, policy, provider: Provider, smtp) -> None:
    set_channels(factory, team, "sms,email")
    enqueue(factory, team, policy, email="zhang@acme.example")
    provider.script("permanent")
    d = dispatcher(factory, policy, provider.notifier, smtp)
    assert drain(d, at(12)) == ["failed", "sent"]
    assert rows(factory) == [("sms", "failed"), ("email", "sent")]
    assert len(smtp.messages) == 1 and len(provider.sends()) == 1
    assert drain(d, at(19)) == []  # nothing more, however often it runs


def test_a_transient_failure_is_retried_and_then_sent(factory, team, policy, provider: Provider, smtp) -> None:
    enqueue(factory, team, policy)
    provider.script("transient")
    d = dispatcher(factory, policy, provider.notifier, smtp)
    assert d.dispatch_one(at(10)) == "retry"
    assert drain(d, at(19)) == ["sent"]
    assert outcomes(factory) == ["transient", "sent"] and len(provider.sends()) == 2


def test_an_ambiguous_send_the_provider_accepted_is_reconciled_not_sent_twice(
        factory, team, policy, provider: Provider, smtp) -> None:
    enqueue(factory, team, policy)
    provider.script("ambiguous")
    d = dispatcher(factory, policy, provider.notifier, smtp)
    assert d.dispatch_one(at(10)) == "retry"
    assert drain(d, at(19)) == ["sent"]
    assert len(provider.sends()) == 1  # found by the echoed key: no second SMS
    assert outcomes(factory) == ["ambiguous", "sent"]


def test_a_number_tencent_says_unsubscribed_is_recorded_as_opted_out_and_falls_back(factory, team, policy, smtp) -> None:
    with FakeTencentSms() as fake:
        provider = Provider("tencent", fake, TencentSmsNotifier(
            secret_id=fake.secret_id, secret_key=fake.secret_key, sdk_app_id=fake.sdk_app_id, sign_name=SIGN,
            endpoint=fake.endpoint, timeout_seconds=2.0))
        holder_id = enqueue(factory, team, policy, email="zhang@acme.example")
        provider.script("opted_out")
        assert drain(dispatcher(factory, policy, provider.notifier, smtp), at(12)) == ["failed", "sent"]
    with unit_of_work(factory) as session:
        holder = session.get(Holder, holder_id)
        assert holder is not None and holder.sms_opted_out_at is not None
        assert [e.kind for e in session.scalars(select(HrEvent))] == ["opted_out"]
    assert rows(factory) == [("sms", "failed"), ("email", "sent")]


def test_a_wecom_member_gets_one_textcard_and_no_sms(factory, team, policy, provider: Provider, smtp, wecom) -> None:
    set_channels(factory, team, "wecom,sms,email")
    enqueue(factory, team, policy, wecom_userid="zhangsan", email="zhang@acme.example")
    assert drain(dispatcher(factory, policy, provider.notifier, smtp, wecom), at(19)) == ["sent"]
    [card] = wecom.delivered
    assert card["touser"] == "zhangsan" and card["msgtype"] == "textcard"
    assert "2027年1月20日" in card["textcard"]["title"] and "最迟于" in card["textcard"]["description"]
    assert provider.sends() == [] and smtp.messages == []
    assert rows(factory) == [("wecom", "sent")]


def test_an_unknown_wecom_userid_falls_back_to_sms_once(factory, team, policy, provider: Provider, smtp, wecom) -> None:
    set_channels(factory, team, "wecom,sms,email")
    enqueue(factory, team, policy, wecom_userid="nobody", email="zhang@acme.example")
    d = dispatcher(factory, policy, provider.notifier, smtp, wecom)
    assert drain(d, at(19)) == ["failed", "sent"]
    assert rows(factory) == [("wecom", "failed"), ("sms", "sent")]
    assert len(provider.sends()) == 1 and smtp.messages == [] and wecom.delivered == []


def test_without_a_wecom_backend_a_wecom_touch_falls_back_to_the_next_channel(
        factory, team, policy, provider: Provider, smtp) -> None:
    set_channels(factory, team, "wecom,sms")
    enqueue(factory, team, policy, wecom_userid="zhangsan")
    assert drain(dispatcher(factory, policy, provider.notifier, smtp), at(19)) == ["failed", "sent"]
    assert rows(factory) == [("wecom", "failed"), ("sms", "sent")]


# -- receipts and replies, through the app ------------------------------------------------------
ROUTES = {"aliyun": ("/webhooks/aliyun/report", "/webhooks/aliyun/reply", "PERMIT_ALIYUN_CALLBACK_TOKEN"),
          "tencent": ("/webhooks/tencent/status", "/webhooks/tencent/reply", "PERMIT_TENCENT_CALLBACK_TOKEN")}


def report_body(provider: str, message_id: str, key: str) -> list[dict[str, Any]]:
    if provider == "aliyun":
        return [{"phone_number": "13800138000", "send_time": "2027-01-10 10:00:00", "report_time": "2027-01-10 10:00:05",
                 "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "2", "biz_id": message_id,
                 "out_id": key}]
    return [{"user_receive_time": "2027-01-10 10:00:05", "nationcode": "86", "mobile": "13800138000",
             "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": message_id,
             "session_context": key}]


def reply_body(provider: str, text: str) -> Any:
    if provider == "aliyun":
        return [{"phone_number": "13800138000", "send_time": "2027-01-10 11:00:00", "content": text,
                 "sign_name": SIGN, "dest_code": "1234", "sequence_id": 98765}]
    return {"extend": "", "mobile": "13800138000", "nationcode": "86", "sign": SIGN, "text": text, "time": 1799550000}


def test_a_receipt_and_a_reply_pushed_twice_act_once_and_a_wrong_token_changes_nothing(
        db_url, factory, team, policy, provider: Provider, smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    holder_id = enqueue(factory, team, policy)
    assert dispatcher(factory, policy, provider.notifier, smtp).dispatch_one(at(10)) == "sent"
    with unit_of_work(factory) as session:
        message_id = session.scalar(select(DeliveryAttempt.provider_message_id))
        key = session.scalars(select(Notification)).one().key
    report_path, reply_path, variable = ROUTES[provider.name]
    monkeypatch.setenv(variable, CALLBACK_TOKEN)
    client = TestClient(create_app(Runtime(Settings(database_url=db_url))))

    wrong = client.post(f"{report_path}?token=not-the-token", json=report_body(provider.name, message_id, key))
    assert wrong.status_code == 403
    assert client.post(f"{reply_path}?token=x", json=reply_body(provider.name, "已续签")).status_code == 403
    with unit_of_work(factory) as session:
        assert session.scalar(select(Notification.delivery_status)) is None
        assert session.get(Holder, holder_id).expires_on == EXPIRES  # type: ignore[union-attr]

    for _ in range(2):
        answer = client.post(f"{report_path}?token={CALLBACK_TOKEN}", json=report_body(provider.name, message_id, key))
        assert answer.status_code == 200
        assert answer.json() == ({"code": 0, "msg": "成功"} if provider.name == "aliyun" else {"result": 0, "errmsg": "OK"})
        assert client.post(f"{reply_path}?token={CALLBACK_TOKEN}",
                           json=reply_body(provider.name, "已续签")).status_code == 200
    with unit_of_work(factory) as session:
        assert session.scalar(select(Notification.delivery_status)) == "delivered"
        holder = session.get(Holder, holder_id)
        assert holder is not None and holder.expires_on == date(2028, 1, 20)  # moved once, not twice
        assert [e.kind for e in session.scalars(select(HrEvent))] == ["renewal_reported"]


def test_a_send_tencent_cannot_confirm_is_never_sent_twice(factory, team, policy, smtp) -> None:
    """Without the SessionContext echo a status report cannot be tied to our row: every reconcile
    says "cannot tell", the row stays ambiguous instead of being resent, and after the last
    attempt the touch falls back to email rather than risk a second SMS."""
    with FakeTencentSms() as fake:
        fake.echo_session_context = False
        provider = Provider("tencent", fake, TencentSmsNotifier(
            secret_id=fake.secret_id, secret_key=fake.secret_key, sdk_app_id=fake.sdk_app_id, sign_name=SIGN,
            endpoint=fake.endpoint, timeout_seconds=2.0))
        enqueue(factory, team, policy, email="zhang@acme.example")
        provider.script("ambiguous")
        d = dispatcher(factory, policy, provider.notifier, smtp)
        drain(d, at(19))
        assert len(provider.sends()) == 1
    assert outcomes(factory) == ["ambiguous"] * 4 + ["sent"]  # four SMS attempts that only looked, one email
    assert rows(factory) == [("sms", "failed"), ("email", "sent")]


def test_a_team_outside_the_wecom_enterprise_gets_the_next_channel_not_a_strangers_inbox(
        factory, team, policy, provider: Provider, smtp, wecom) -> None:
    set_channels(factory, team, "wecom,sms")
    enqueue(factory, team, policy, wecom_userid="zhangsan")  # a member of *another* employer's WeCom
    d = dispatcher(factory, policy, provider.notifier, smtp, wecom)
    d.wecom_teams = frozenset({"someone-else"})
    assert drain(d, at(19)) == ["failed", "sent"]
    assert wecom.delivered == [] and rows(factory) == [("wecom", "failed"), ("sms", "sent")]


def test_a_wecom_account_removed_after_planning_sends_the_touch_on_the_next_channel(
        factory, team, policy, provider: Provider, smtp, wecom) -> None:
    set_channels(factory, team, "wecom,sms")
    holder_id = enqueue(factory, team, policy, wecom_userid="zhangsan")
    with unit_of_work(factory) as session:
        session.execute(update(Holder).where(Holder.id == holder_id).values(wecom_userid=None))
    assert drain(dispatcher(factory, policy, provider.notifier, smtp, wecom), at(19)) == ["cancelled", "sent"]
    assert rows(factory) == [("wecom", "cancelled"), ("sms", "sent")]


def test_a_failed_channel_the_team_has_since_dropped_still_falls_back_to_one_it_has(
        factory, team, policy, provider: Provider, smtp) -> None:
    set_channels(factory, team, "sms,email")
    enqueue(factory, team, policy, email="zhang@acme.example")
    set_channels(factory, team, "email")  # sms left the order after the touch was planned
    provider.script("permanent")
    assert drain(dispatcher(factory, policy, provider.notifier, smtp), at(12)) == ["failed", "sent"]
    assert rows(factory) == [("sms", "failed"), ("email", "sent")]


def test_a_lookup_that_cannot_tell_keeps_the_text_of_the_send_really_made(factory, team, policy, smtp) -> None:
    """The next day's reconcile must look for the first day's text (its countdown), not for a
    rendering that was never sent."""
    with FakeTencentSms() as fake:
        fake.echo_session_context = False
        notifier = TencentSmsNotifier(secret_id=fake.secret_id, secret_key=fake.secret_key,
                                      sdk_app_id=fake.sdk_app_id, sign_name=SIGN, endpoint=fake.endpoint,
                                      timeout_seconds=2.0)
        enqueue(factory, team, policy)
        fake.script(tencent_fake.server_error(accept=True))
        d = dispatcher(factory, policy, notifier, smtp)
        assert d.dispatch_one(at(10)) == "retry"
        assert d.dispatch_one(at(10) + timedelta(days=1)) == "retry"  # looked, could not tell, sent nothing
        assert len([r for r in fake.requests if r.action == "SendSms"]) == 1
    with unit_of_work(factory) as session:
        assert session.scalar(select(Notification.rendered_on)) == TOUCH_DAY
        first, second = session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
        assert (first.outcome, second.outcome) == ("ambiguous", "ambiguous")


def test_an_aliyun_receipt_for_a_reconciled_send_finds_it_by_the_echoed_out_id(
        db_url, factory, team, policy, smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeAliyun() as fake:
        provider = Provider("aliyun", fake, AliyunSmsNotifier(
            access_key_id=fake.access_key_id, access_key_secret=fake.access_key_secret, sign_name=SIGN,
            endpoint=fake.endpoint, timeout_seconds=2.0))
        holder_id = enqueue(factory, team, policy, email="zhang@acme.example")
        provider.script("ambiguous")
        assert drain(dispatcher(factory, policy, provider.notifier, smtp), at(19)) == ["retry", "sent"]
        biz_id = fake.accepted[0]["BizId"]
    with unit_of_work(factory) as session:
        assert session.scalars(select(DeliveryAttempt.provider_message_id)).all() == [None, None]  # lookup has no id
        key = session.scalars(select(Notification)).one().key
    monkeypatch.setenv("PERMIT_ALIYUN_CALLBACK_TOKEN", CALLBACK_TOKEN)
    client = TestClient(create_app(Runtime(Settings(database_url=db_url))))
    blocked = [{**report_body("aliyun", biz_id, key)[0], "success": False, "err_code": "MOBILE_IN_BLACK"}]
    assert client.post(f"/webhooks/aliyun/report?token={CALLBACK_TOKEN}", json=blocked).status_code == 200
    with unit_of_work(factory) as session:
        assert session.scalars(select(DeliveryAttempt.provider_message_id)).all() == [None, biz_id]
        assert session.get(Holder, holder_id).sms_opted_out_at is not None  # type: ignore[union-attr]
    assert rows(factory) == [("sms", "failed"), ("email", "pending")]


def test_a_test_message_uses_the_approved_fallback_and_reports_what_aliyun_said(factory, team) -> None:
    from datetime import date as day_type

    from worker.delivery.test_message import send_test

    with FakeAliyun() as fake:
        sms = AliyunSmsNotifier(access_key_id=fake.access_key_id, access_key_secret=fake.access_key_secret,
                                sign_name=SIGN, endpoint=fake.endpoint, timeout_seconds=2.0)
        tset = approved("aliyun")
        sent = send_test({"sms": sms}, "13800138000", "Acme 上海", tset, day_type(2026, 12, 3))
        assert sent.result.status.value == "sent" and sent.notifier == "aliyun"
        [request] = fake.sends()
        assert request.params["TemplateCode"] == tset.templates[("fallback", "zh-CN")].ids["aliyun"]
        assert '"hello": "测试消息"' in request.params["TemplateParam"]
        fake.script(aliyun_fake.code("isv.SMS_SIGNATURE_ILLEGAL"))
        refused = send_test({"sms": sms}, "13800138000", "Acme 上海", tset, day_type(2026, 12, 3))
        assert refused.result.status.value == "permanent" and "isv.SMS_SIGNATURE_ILLEGAL" in (refused.result.error or "")
