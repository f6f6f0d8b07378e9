"""WeCom in the registry: the roster and API column, the team's channel order in planning, and the
HR digest to a WeCom group robot (a real WeCom HTTP client against the local fake)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from structlog.testing import capture_logs

from notifiers.smtp.fake import FakeSmtp
from notifiers.smtp.transport import SmtpEmailNotifier
from notifiers.wecom.fake import FakeWeCom
from notifiers.wecom.robot import WeComRobotNotifier
from worker.delivery.digest import send_digests
from worker.delivery.hr_events import record_hr_event
from worker.http.app import create_app
from worker.ops.runtime import Runtime
from worker.ops.settings import Settings
from worker.planning.scan import scan
from worker.registry import records as registry
from worker.registry.roster import RosterError, parse_roster
from worker.store.db import unit_of_work
from worker.store.models import DigestRun, Holder, Notification, Team

from .support import add_holder

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 1)  # a Tuesday
EXPIRES = date(2027, 1, 20)
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


def test_a_roster_with_the_chinese_wecom_header_imports_the_userid() -> None:
    data = "工号,姓名,手机,居住证有效期至,企业微信账号\nE1,张三,13800138000,2027-01-20,zhangsan\nE2,李四,,2027-01-20,li.si@acme\n"
    first, second = parse_roster(data.encode("utf-8"))
    assert (first.wecom_userid, second.wecom_userid, second.phone) == ("zhangsan", "li.si@acme", None)


@pytest.mark.parametrize("userid", ["-leading-dash", "has space", "a|b", "x" * 65])
def test_a_bad_wecom_userid_is_a_row_error_naming_the_column(userid: str) -> None:
    data = f"external_id,phone,expires_on,wecom_userid\nE1,13800138000,2027-01-20,{userid}\n"
    with pytest.raises(RosterError) as info:
        parse_roster(data.encode("utf-8"))
    [error] = info.value.errors
    assert error.column == "wecom_userid"


def test_the_team_order_picks_wecom_first_and_the_policy_order_leaves_it_out(factory, team, policy) -> None:
    add_holder(factory, team, "E1", EXPIRES, wecom_userid="zhangsan")
    scan(factory, policy, SHANGHAI, today=EXPIRES - timedelta(days=10))
    with unit_of_work(factory) as session:
        assert session.scalars(select(Notification.channel)).all() == ["sms"]  # policy order: sms, email
        session.execute(update(Team).where(Team.id == team.id).values(channels="wecom,sms,email"))
    team.channels = "wecom,sms,email"
    add_holder(factory, team, "E2", EXPIRES, wecom_userid="lisi")
    scan(factory, policy, SHANGHAI, today=EXPIRES - timedelta(days=10))
    with unit_of_work(factory) as session:
        holder = session.scalars(select(Holder).where(Holder.external_id == "E2")).one()
        assert session.scalars(select(Notification.channel).where(Notification.holder_id == holder.id)).all() == [
            "wecom"]


def test_the_api_takes_and_shows_the_wecom_userid(db_url: str, factory, team) -> None:
    with unit_of_work(factory) as session:
        token = registry.issue_token(session, session.merge(team))
    client = TestClient(create_app(Runtime(Settings(database_url=db_url))))
    headers = {"Authorization": f"Bearer {token}"}
    created = client.post("/v1/holders", headers=headers, json={
        "external_id": "E9", "expires_on": "2027-01-20", "phone": "13800138000", "wecom_userid": "wangwu"})
    assert created.status_code == 201, created.text
    assert client.get("/v1/holders/E9", headers=headers).json()["wecom_userid"] == "wangwu"
    bad = client.post("/v1/holders", headers=headers, json={
        "external_id": "E10", "expires_on": "2027-01-20", "phone": "13800138000", "wecom_userid": "a b"})
    assert bad.status_code == 422 and "wecom_userid" in bad.text


# -- the digest to a group robot ------------------------------------------------------------------
@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    with FakeWeCom() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def test_the_digest_goes_to_the_teams_wecom_group_as_well_as_by_email_once(factory, team, policy, wecom, smtp) -> None:
    robot_url = wecom.add_robot()
    with unit_of_work(factory) as session:
        session.execute(update(Team).where(Team.id == team.id).values(hr_wecom_webhook=robot_url))
        record_hr_event(session, team.id, None, "opted_out", "E4: replied 'T'")
    email = SmtpEmailNotifier(host="127.0.0.1", port=smtp.port, tls="none", from_address="reminders@acme.example")
    robot = WeComRobotNotifier()
    now = datetime.combine(DAY, time(10), SHANGHAI)
    assert send_digests(factory, email, policy, SHANGHAI, now=now, robot=robot) == 1
    assert send_digests(factory, email, policy, SHANGHAI, now=now + timedelta(hours=1), robot=robot) == 0
    [posted] = [d for d in wecom.delivered if d.get("msgtype") == "markdown"]
    assert "E4" in posted["markdown"]["content"] and posted["markdown"]["content"].startswith("### ")
    assert len(smtp.messages) == 1


def test_a_team_with_only_a_robot_gets_its_digest_there(factory, policy, wecom, smtp) -> None:
    robot_url = wecom.add_robot()
    with unit_of_work(factory) as session:
        team = registry.create_team(session, "robots", "Robots", None)
        registry.update_team(session, team, hr_wecom_webhook=robot_url)
        record_hr_event(session, team.id, None, "opted_out", "E5: replied 'T'")
    email = SmtpEmailNotifier(host="127.0.0.1", port=smtp.port, tls="none", from_address="reminders@acme.example")
    now = datetime.combine(DAY, time(10), SHANGHAI)
    assert send_digests(factory, email, policy, SHANGHAI, now=now, robot=WeComRobotNotifier()) == 1
    assert smtp.messages == [] and len(wecom.delivered) == 1
    with unit_of_work(factory) as session:
        assert session.scalars(select(DigestRun.status)).all() == ["sent"]


def test_a_wecom_account_alone_is_refused_unless_the_team_sends_by_wecom(factory, team) -> None:
    with pytest.raises(RosterError) as info:
        add_holder(factory, team, "W1", EXPIRES, phone=None, name="王五", wecom_userid="wangwu")
    [error] = info.value.errors
    assert error.column == "wecom_userid" and "teams update SLUG --channels wecom" in error.reason
    with unit_of_work(factory) as session:
        registry.update_team(session, session.merge(team), channels="wecom,sms,email")
    team.channels = "wecom,sms,email"
    add_holder(factory, team, "W1", EXPIRES, phone=None, name="王五", wecom_userid="wangwu")
    with unit_of_work(factory) as session:
        assert session.scalars(select(Holder.wecom_userid)).all() == ["wangwu"]


def test_wecom_serves_every_team_unless_told_which(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"PERMIT_WECOM_CORP_ID": "ww123", "PERMIT_WECOM_AGENT_ID": "1000002",
                        "PERMIT_WECOM_SECRET": "s" * 30}.items():
        monkeypatch.setenv(name, value)
    with capture_logs() as logs:
        everyone = Runtime(Settings(database_url=db_url)).dispatcher()
    assert everyone.wecom_teams is None and any(e["event"] == "wecom.all_teams" for e in logs)
    monkeypatch.setenv("PERMIT_WECOM_TEAMS", "acme, acme-sh")
    dispatcher = Runtime(Settings(database_url=db_url)).dispatcher()
    assert "wecom" in dispatcher.notifiers and dispatcher.wecom_teams == frozenset({"acme", "acme-sh"})
