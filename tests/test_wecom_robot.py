"""The WeCom group-robot notifier, over real HTTP against notifiers/wecom/fake.py, and the check
that keeps a robot key from being sent anywhere but WeCom."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifiers.base import Message, NotifierConfigError, SendStatus
from notifiers.wecom.fake import FakeWeCom, errcode, http_error, slow, unused_base_url
from notifiers.wecom.limits import MARKDOWN_MAX_BYTES
from notifiers.wecom.robot import TRUNCATED_EN, TRUNCATED_ZH, WeComRobotNotifier, mask_robot_url, valid_robot_url

BODY = "**居住证到期提醒**\n> 本周有 3 位居民的居住证将在 30 日内到期，请安排签注。"
KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeWeCom]:
    with FakeWeCom() as server:
        yield server


@pytest.fixture
def robot() -> WeComRobotNotifier:
    return WeComRobotNotifier(timeout_seconds=2.0)


def group(url: str, body: str = BODY, locale: str = "zh-CN") -> Message:
    return Message(channel="wecom_group", to=url, body=body, locale=locale, idempotency_key="outbox-9")


def key_of(url: str) -> str:
    return url.rsplit("key=", 1)[1]


# -- sending ------------------------------------------------------------------------------------


def test_markdown_is_posted_to_the_robot(fake: FakeWeCom, robot: WeComRobotNotifier) -> None:
    url = fake.add_robot()

    result = robot.send(group(url))

    assert result.status is SendStatus.SENT
    [sent] = fake.delivered
    assert sent == {"msgtype": "markdown", "markdown": {"content": BODY}}
    assert fake.requests[0]["_query"]["key"] == key_of(url)


def test_a_removed_robot_is_permanent_and_the_key_stays_out_of_the_error(
    fake: FakeWeCom, robot: WeComRobotNotifier
) -> None:
    url = f"{fake.base_url}/cgi-bin/webhook/send?key={KEY}"  # not a robot the fake knows: 93000

    result = robot.send(group(url))

    assert result.status is SendStatus.PERMANENT and result.error_code == "93000"
    assert KEY not in (result.error or "")


def test_the_robot_rate_limit_is_transient_with_retry_after(fake: FakeWeCom, robot: WeComRobotNotifier) -> None:
    fake.script(errcode(45009, "api freq out of limit"), kind="robot")

    result = robot.send(group(fake.add_robot()))

    assert result.status is SendStatus.TRANSIENT and result.retry_after_seconds == 60.0


@pytest.mark.parametrize(("locale", "notice"), [("zh-CN", TRUNCATED_ZH), ("en", TRUNCATED_EN)])
def test_long_markdown_is_cut_with_a_last_line_saying_so(
    fake: FakeWeCom, robot: WeComRobotNotifier, locale: str, notice: str
) -> None:
    body = "- 张三 居住证 2025-07-01 到期\n" * 200  # ~7 KB

    result = robot.send(group(fake.add_robot(), body=body, locale=locale))

    assert result.status is SendStatus.SENT  # the fake refuses over 4096 bytes, as WeCom does (40058)
    content = fake.delivered[0]["markdown"]["content"]
    assert len(content.encode()) <= MARKDOWN_MAX_BYTES and content.endswith(notice)
    assert body.startswith(content.removesuffix(notice))


def test_an_invalid_url_is_refused_without_a_request(fake: FakeWeCom, robot: WeComRobotNotifier) -> None:
    result = robot.send(group(f"https://evil.example.com/cgi-bin/webhook/send?key={KEY}"))

    assert result.status is SendStatus.PERMANENT and result.error_code == "invalid_robot_url"
    assert KEY not in (result.error or "") and fake.requests == []


def test_a_read_timeout_is_ambiguous(fake: FakeWeCom) -> None:
    fake.script(slow(1.5), kind="robot")

    result = WeComRobotNotifier(timeout_seconds=0.5).send(group(fake.add_robot()))

    assert result.status is SendStatus.AMBIGUOUS and len(fake.delivered) == 1


def test_a_5xx_is_ambiguous(fake: FakeWeCom, robot: WeComRobotNotifier) -> None:
    fake.script(http_error(503), kind="robot")

    assert robot.send(group(fake.add_robot())).status is SendStatus.AMBIGUOUS


def test_connection_refused_is_transient_and_masks_the_key(robot: WeComRobotNotifier) -> None:
    result = robot.send(group(f"{unused_base_url()}/cgi-bin/webhook/send?key={KEY}"))

    assert result.status is SendStatus.TRANSIENT and KEY not in (result.error or "")


# -- the webhook URL ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}",
    f"https://qyapi.weixin.qq.com:443/cgi-bin/webhook/send?key={KEY}",
    f"http://127.0.0.1:8765/cgi-bin/webhook/send?key={KEY}",
    f"http://localhost/cgi-bin/webhook/send?key={KEY}",
])
def test_robot_urls_that_are_accepted(url: str) -> None:
    assert valid_robot_url(url) is None


@pytest.mark.parametrize("url", [
    f"http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}",  # key in clear text
    f"https://qyapi.weixin.qq.com.evil.example/cgi-bin/webhook/send?key={KEY}",
    f"https://evil.example/cgi-bin/webhook/send?key={KEY}",
    f"https://qyapi.weixin.qq.com:8443/cgi-bin/webhook/send?key={KEY}",
    f"https://user:pw@qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}",
    f"https://qyapi.weixin.qq.com/cgi-bin/message/send?key={KEY}",
    "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
    "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=",
    f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}&key=other",
    f"ftp://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}",
    "not a url",
])
def test_robot_urls_that_are_refused(url: str) -> None:
    problem = valid_robot_url(url)

    assert problem is not None and KEY not in problem


def test_the_key_is_masked() -> None:
    masked = mask_robot_url(f"POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY} failed")

    assert KEY not in masked and "key=***" in masked


def test_from_env_needs_nothing_but_checks_the_timeout() -> None:
    assert isinstance(WeComRobotNotifier.from_env({}), WeComRobotNotifier)
    with pytest.raises(NotifierConfigError, match="PERMIT_WECOM_ROBOT_TIMEOUT_SECONDS"):
        WeComRobotNotifier.from_env({"PERMIT_WECOM_ROBOT_TIMEOUT_SECONDS": "-1"})
