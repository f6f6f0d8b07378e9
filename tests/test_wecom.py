"""The WeCom app-message notifier, over real HTTP against notifiers/wecom/fake.py.

Nothing is mocked: `requests` talks to a local fake of gettoken and message/send, so the token
cache, the request encoding and the classification of real answers and socket failures are what
is tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifiers.base import Message, NotifierConfigError, SendStatus
from notifiers.wecom.fake import FakeWeCom, dropped, errcode, http_error, slow, unused_base_url
from notifiers.wecom.limits import DESCRIPTION_MAX_BYTES, TITLE_MAX_BYTES, MemberWindow, truncate_utf8
from notifiers.wecom.token import AccessTokens
from notifiers.wecom.transport import DEFAULT_CARD_URL, WeComNotifier
from notifiers.wecom.wire import make_session

USER = "zhangsan"
BODY = "您的上海市居住证将于 2025-07-01 到期，请在到期前 30 日内办理签注。\n办理地点：社区事务受理服务中心。"
SUBJECT = "居住证到期提醒"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

NotifierFactory = Callable[..., WeComNotifier]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom(users={USER, "lisi"}) as server:
        yield server


@pytest.fixture
def make_notifier(fake: FakeWeCom) -> NotifierFactory:
    def build(**overrides: Any) -> WeComNotifier:
        settings: dict[str, Any] = {"corp_id": fake.corp_id, "agent_id": fake.agent_id, "secret": fake.secret,
                                    "base_url": fake.base_url, "timeout_seconds": 2.0}
        return WeComNotifier(**{**settings, **overrides})

    return build


def card(body: str = BODY, to: str = USER, subject: str | None = SUBJECT, **fields: Any) -> Message:
    return Message(channel="wecom", to=to, body=body, subject=subject, idempotency_key="outbox-1", **fields)


def env_for(fake: FakeWeCom, **extra: str) -> dict[str, str]:
    return {"PERMIT_WECOM_CORP_ID": fake.corp_id, "PERMIT_WECOM_AGENT_ID": str(fake.agent_id),
            "PERMIT_WECOM_SECRET": fake.secret, "PERMIT_WECOM_BASE_URL": fake.base_url, **extra}


# -- sending ------------------------------------------------------------------------------------


def test_a_textcard_goes_to_the_member_with_the_apps_agentid(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    result = make_notifier().send(card())

    assert result.status is SendStatus.SENT and result.provider_message_id
    [sent] = fake.delivered
    assert sent["touser"] == USER and sent["agentid"] == fake.agent_id and sent["msgtype"] == "textcard"
    assert sent["textcard"] == {"title": SUBJECT, "description": BODY, "url": DEFAULT_CARD_URL, "btntxt": "详情"}
    assert sent["enable_duplicate_check"] == 1 and sent["duplicate_check_interval"] == 1800
    assert "居住证" in fake.requests[0]["_raw"]  # UTF-8 as is, no \uXXXX escapes (WeCom's 40033)


def test_without_a_subject_the_title_is_the_first_line(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    make_notifier(card_url="https://permit.example.com/me").send(card(subject=None, body="\n  第一行  \n第二行"))

    assert fake.delivered[0]["textcard"]["title"] == "第一行"
    assert fake.delivered[0]["textcard"]["url"] == "https://permit.example.com/me"


def test_metadata_asks_for_a_plain_text_message(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    make_notifier().send(card(metadata={"wecom_msgtype": "text"}))

    [sent] = fake.delivered
    assert sent["msgtype"] == "text" and sent["text"] == {"content": BODY} and "textcard" not in sent


def test_long_fields_are_cut_on_a_character_boundary(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    body = "居住证签注提醒😀" * 60  # 1380 bytes of 3- and 4-byte characters
    result = make_notifier().send(card(body=body, subject="标题" * 50))

    assert result.status is SendStatus.SENT  # the fake refuses anything over WeCom's limits
    sent = fake.delivered[0]["textcard"]
    for text, limit, original in ((sent["description"], DESCRIPTION_MAX_BYTES, body),
                                  (sent["title"], TITLE_MAX_BYTES, "标题" * 50)):
        assert len(text.encode()) <= limit and text.endswith("…") and original.startswith(text[:-1])
        assert len(text.encode()) > limit - 8  # cut close to the limit, not far before it


def test_truncation_keeps_what_fits_and_never_splits_a_character() -> None:
    assert truncate_utf8("短", 10) == "短"
    assert truncate_utf8("abc", 3) == "abc"
    assert truncate_utf8("一二三四", 10) == "一二…"  # 6 + 3 bytes: a third character would not fit
    assert truncate_utf8("😀😀😀", 9) == "😀…"


def test_a_recipient_that_is_not_a_userid_is_refused_before_sending(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()
    for to in ("zhangsan|lisi", "@all", "", "a" * 65, "+8613800138000"):
        result = notifier.send(card(to=to))
        assert result.status is SendStatus.PERMANENT and result.error_code == "invalid_userid"
    assert fake.requests == [] and fake.gettoken_calls == 0


def test_a_userid_with_an_at_sign_is_sent_as_the_roster_accepts_it(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    fake.users.add("li.si@acme")
    result = make_notifier().send(card(to="li.si@acme"))
    assert result.status is SendStatus.SENT and fake.delivered[-1]["touser"] == "li.si@acme"


def test_a_closed_send_window_sends_nothing(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    result = make_notifier().send(card(valid_until=datetime.now(UTC) - timedelta(seconds=1)))

    assert result.status is SendStatus.TRANSIENT and fake.requests == []


# -- the access token ---------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_reused(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier()
    results = [notifier.send(card(body=f"{BODY} {n}")) for n in range(3)]

    assert [r.status for r in results] == [SendStatus.SENT] * 3
    assert fake.gettoken_calls == 1
    assert len({r["_query"]["access_token"] for r in fake.requests}) == 1


def test_concurrent_senders_share_one_token_and_one_refresh(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()

    def burst(tag: str) -> list[SendStatus]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda n: notifier.send(card(to=f"u{n}", body=f"{tag} {n}")).status, range(8)))

    fake.users.update(f"u{n}" for n in range(8))
    assert burst("first") == [SendStatus.SENT] * 8 and fake.gettoken_calls == 1
    fake.expire_tokens()
    assert burst("second") == [SendStatus.SENT] * 8 and fake.gettoken_calls == 2


def test_the_token_is_replaced_a_little_before_it_expires(fake: FakeWeCom) -> None:
    now = [0.0]
    tokens = AccessTokens(make_session(), fake.base_url, fake.corp_id, fake.secret, 2.0, clock=lambda: now[0])
    first = tokens.get()
    now[0] = 7200 - 301
    assert tokens.get() == first and fake.gettoken_calls == 1
    now[0] = 7200 - 299
    assert tokens.get() != first and fake.gettoken_calls == 2


def test_an_expired_token_is_refreshed_and_the_send_retried_once(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()
    notifier.send(card(body="first"))
    fake.expire_tokens()

    result = notifier.send(card())

    assert result.status is SendStatus.SENT
    assert fake.gettoken_calls == 2
    assert len(fake.requests) == 3 and [d["textcard"]["description"] for d in fake.delivered] == ["first", BODY]


def test_a_fresh_token_refused_again_is_a_configuration_problem(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    fake.script(errcode(40001, "invalid credential"), errcode(40001, "invalid credential"))

    result = make_notifier().send(card())

    assert result.status is SendStatus.TRANSIENT and result.error_code == "40001"
    assert "configuration problem" in (result.error or "") and "PERMIT_WECOM_SECRET" in (result.error or "")
    assert fake.gettoken_calls == 2 and len(fake.requests) == 2 and fake.delivered == []


def test_a_wrong_secret_names_the_variable_and_is_not_retried_at_once(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier(secret="not-the-secret-" + "x" * 20)
    first, second = notifier.send(card()), notifier.send(card())

    for result in (first, second):
        assert result.status is SendStatus.TRANSIENT and result.error_code == "40001"
        assert "PERMIT_WECOM_SECRET" in (result.error or "") and "not-the-secret" not in (result.error or "")
    assert fake.gettoken_calls == 1  # the failure is remembered: a wrong secret gets the IP blocked
    assert fake.requests == []


def test_a_wrong_corp_id_names_the_variable(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    result = make_notifier(corp_id="ww-wrong").send(card())

    assert result.status is SendStatus.TRANSIENT and "PERMIT_WECOM_CORP_ID" in (result.error or "")


# -- classification -----------------------------------------------------------------------------


def test_an_unknown_member_is_permanent_invaliduser(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    result = make_notifier().send(card(to="wangwu"))

    assert result.status is SendStatus.PERMANENT and result.error_code == "invaliduser"
    assert fake.delivered == []


def test_invaliduser_with_errcode_0_is_still_permanent(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    fake.script(errcode(0, "ok", invaliduser=USER))

    result = make_notifier().send(card())

    assert result.status is SendStatus.PERMANENT and result.error_code == "invaliduser"


@pytest.mark.parametrize("code", [60111, 81013, 40003, 45002])
def test_recipient_and_content_errors_are_permanent(
    fake: FakeWeCom, make_notifier: NotifierFactory, code: int
) -> None:
    fake.script(errcode(code))

    result = make_notifier().send(card())

    assert result.status is SendStatus.PERMANENT and result.error_code == str(code)


@pytest.mark.parametrize(("code", "retry_after"), [(45009, 60.0), (45033, 5.0), (-1, None)])
def test_rate_limits_and_busy_are_transient(
    fake: FakeWeCom, make_notifier: NotifierFactory, code: int, retry_after: float | None
) -> None:
    fake.script(errcode(code))

    result = make_notifier().send(card())

    assert result.status is SendStatus.TRANSIENT and result.retry_after_seconds == retry_after
    assert result.error_code == str(code)


@pytest.mark.parametrize(("code", "variable"), [(48002, "permissions"), (60020, "企业可信IP"),
                                                (40013, "PERMIT_WECOM_CORP_ID"), (301002, "PERMIT_WECOM_AGENT_ID")])
def test_configuration_errors_on_send_are_transient_and_say_what_to_check(
    fake: FakeWeCom, make_notifier: NotifierFactory, code: int, variable: str
) -> None:
    fake.script(errcode(code))

    result = make_notifier().send(card())

    assert result.status is SendStatus.TRANSIENT and "configuration problem" in (result.error or "")
    assert variable in (result.error or "") and fake.secret not in (result.error or "")


def test_a_read_timeout_is_ambiguous_and_the_duplicate_check_covers_a_resend(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier(timeout_seconds=0.5)
    fake.script(slow(1.5))

    lost = notifier.send(card())
    again = notifier.send(card())

    assert lost.status is SendStatus.AMBIGUOUS and "0.5s" in (lost.error or "")
    assert again.status is SendStatus.SENT
    assert len(fake.requests) == 2 and len(fake.delivered) == 1  # WeCom dropped the identical resend
    token = fake.requests[0]["_query"]["access_token"]
    assert token not in (lost.error or "")


@pytest.mark.parametrize("outcome", [http_error(502, deliver=True), dropped()], ids=["5xx", "dropped"])
def test_5xx_and_a_dropped_connection_are_ambiguous(
    fake: FakeWeCom, make_notifier: NotifierFactory, outcome: Any
) -> None:
    fake.script(outcome)

    assert make_notifier().send(card()).status is SendStatus.AMBIGUOUS


def test_connection_refused_is_transient() -> None:
    notifier = WeComNotifier(corp_id="ww1", agent_id=1, secret="s" * 20, base_url=unused_base_url())

    result = notifier.send(card())

    assert result.status is SendStatus.TRANSIENT and "Connection refused" in (result.error or "")
    assert "s" * 20 not in (result.error or "")


# -- per-member frequency -----------------------------------------------------------------------


def test_the_31st_message_a_minute_to_one_member_is_held_back(
    fake: FakeWeCom, make_notifier: NotifierFactory
) -> None:
    notifier = make_notifier()
    results = [notifier.send(card(body=f"{BODY} #{n}")) for n in range(31)]

    assert [r.status for r in results[:30]] == [SendStatus.SENT] * 30
    held = results[30]
    assert held.status is SendStatus.TRANSIENT and held.retry_after_seconds is not None
    assert 0 < held.retry_after_seconds <= 60
    assert len(fake.requests) == 30  # never sent: WeCom would have dropped it silently
    assert notifier.send(card(to="lisi")).status is SendStatus.SENT  # other members are unaffected


def test_a_rejected_send_does_not_use_up_a_slot(fake: FakeWeCom, make_notifier: NotifierFactory) -> None:
    notifier = make_notifier(member_limits=((60.0, 1),))
    fake.script(errcode(-1))

    assert notifier.send(card()).status is SendStatus.TRANSIENT
    assert notifier.send(card()).status is SendStatus.SENT
    assert notifier.send(card(body="third")).status is SendStatus.TRANSIENT


def test_the_hourly_limit_counts_across_minutes() -> None:
    now = [0.0]
    window = MemberWindow(((60.0, 30), (3600.0, 1000)), clock=lambda: now[0])
    for n in range(1000):
        now[0] = n * 3.0  # 20 a minute: never over the per-minute limit
        assert window.acquire(USER) is None
    now[0] = 3000.0
    wait = window.acquire(USER)
    assert wait == pytest.approx(600.0)  # the first message leaves the hour window at 3600
    assert window.acquire("lisi") is None


# -- settings -----------------------------------------------------------------------------------


def test_from_env_builds_a_working_notifier(fake: FakeWeCom) -> None:
    notifier = WeComNotifier.from_env(env_for(fake, PERMIT_WECOM_CARD_URL="https://permit.example.com/",
                                              PERMIT_WECOM_TIMEOUT_SECONDS="3"))

    assert notifier.send(card()).status is SendStatus.SENT
    assert fake.delivered[0]["textcard"]["url"] == "https://permit.example.com/"
    assert fake.secret not in repr(notifier)


@pytest.mark.parametrize(("change", "variable"), [
    ({"PERMIT_WECOM_CORP_ID": ""}, "PERMIT_WECOM_CORP_ID"),
    ({"PERMIT_WECOM_AGENT_ID": ""}, "PERMIT_WECOM_AGENT_ID"),
    ({"PERMIT_WECOM_AGENT_ID": "app"}, "PERMIT_WECOM_AGENT_ID"),
    ({"PERMIT_WECOM_AGENT_ID": "-3"}, "PERMIT_WECOM_AGENT_ID"),
    ({"PERMIT_WECOM_SECRET": " "}, "PERMIT_WECOM_SECRET"),
    ({"PERMIT_WECOM_BASE_URL": "http://qyapi.weixin.qq.com"}, "PERMIT_WECOM_BASE_URL"),
    ({"PERMIT_WECOM_BASE_URL": "qyapi.weixin.qq.com"}, "PERMIT_WECOM_BASE_URL"),
    ({"PERMIT_WECOM_CARD_URL": "www.962222.net"}, "PERMIT_WECOM_CARD_URL"),
    ({"PERMIT_WECOM_TIMEOUT_SECONDS": "soon"}, "PERMIT_WECOM_TIMEOUT_SECONDS"),
    ({"PERMIT_WECOM_TIMEOUT_SECONDS": "0"}, "PERMIT_WECOM_TIMEOUT_SECONDS"),
])
def test_from_env_errors_name_the_variable(fake: FakeWeCom, change: dict[str, str], variable: str) -> None:
    with pytest.raises(NotifierConfigError) as raised:
        WeComNotifier.from_env({**env_for(fake), **change})

    assert variable in str(raised.value) and fake.secret not in str(raised.value)
    assert "\n" not in str(raised.value)
