"""WeCom group robots (群机器人): a markdown message to a group, through the robot's webhook URL.

`message.to` is the robot's webhook URL, `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`
(https://developer.work.weixin.qq.com/document/path/91770). The key is the robot's only credential:
anyone holding it can post to the group, so it never appears in errors or logs (`mask_robot_url`),
and `valid_robot_url` refuses any URL that would send it somewhere other than WeCom.

Outcomes follow codes.py: errcode 0 SENT; 93000 (invalid webhook / robot removed) and 93004
(robot disabled) PERMANENT; 45009 (a robot may send 20 messages a minute) TRANSIENT with
retry_after; 5xx, read timeouts and connections dropped after sending AMBIGUOUS. Robot messages
have no id and no lookup, so there is nothing to reconcile.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from notifiers.base import Message, SendResult
from notifiers.wecom import codes, limits, settings, wire

ROBOT_HOST = "qyapi.weixin.qq.com"
ROBOT_PATH = "/cgi-bin/webhook/send"
SERVICE = "WeCom robot"
TRUNCATED_ZH = "\n\n…（内容过长，已截断）"
TRUNCATED_EN = "\n\n… (message too long: truncated)"
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_KEY_IN_TEXT = re.compile(r"(key=)[^&\s#]*")


def valid_robot_url(url: str) -> str | None:
    """None when `url` is a group robot webhook URL we may post to, else why not (without the key)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "robot webhook URL is not a valid URL"
    host = parts.hostname or ""
    if parts.scheme == "http":
        if host not in settings.LOOPBACK_HOSTS:
            return "robot webhook URL must use https:// (http:// only for 127.0.0.1/localhost)"
    elif parts.scheme != "https":
        return "robot webhook URL must be an https:// URL"
    elif host != ROBOT_HOST or port not in (None, 443):
        return f"robot webhook URL must be on {ROBOT_HOST}"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "robot webhook URL must not carry credentials or a #fragment"
    if parts.path != ROBOT_PATH:
        return f"robot webhook URL must have the path {ROBOT_PATH}"
    keys = parse_qs(parts.query, keep_blank_values=True).get("key", [])
    if len(keys) != 1 or not _KEY.match(keys[0]):
        return "robot webhook URL must have exactly one key=... parameter"
    return None


def mask_robot_url(text: str) -> str:
    """`text` with every key=... value replaced, for errors and logs."""
    return _KEY_IN_TEXT.sub(r"\1***", text)


class WeComRobotNotifier:
    name = "wecom_robot"
    channels = frozenset({"wecom_group"})
    # What `teams update --hr-wecom-webhook` checks before storing a URL (notifiers.registry).
    address_problem = staticmethod(valid_robot_url)

    def __init__(self, *, timeout_seconds: float = settings.DEFAULT_TIMEOUT_SECONDS) -> None:
        settings.check_timeout(timeout_seconds, "PERMIT_WECOM_ROBOT_TIMEOUT_SECONDS")
        self._timeout = float(timeout_seconds)
        self._session = wire.make_session()

    def __repr__(self) -> str:
        return f"<WeComRobotNotifier timeout={self._timeout:g}s>"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WeComRobotNotifier:
        # Nothing else to configure: each group's webhook URL is its message's recipient.
        get = settings.getter(env)
        return cls(timeout_seconds=settings.timeout_from(get, "PERMIT_WECOM_ROBOT_TIMEOUT_SECONDS"))

    def send(self, message: Message) -> SendResult:
        try:
            result = self._send(message)
        except Exception as exc:  # never raise out of send
            result = SendResult.transient(f"unexpected {type(exc).__name__} while sending through a WeCom robot")
        if result.error is None:
            return result
        return SendResult(status=result.status, provider_message_id=result.provider_message_id,
                          error=mask_robot_url(result.error), retry_after_seconds=result.retry_after_seconds,
                          error_code=result.error_code)

    def _send(self, message: Message) -> SendResult:
        if message.channel not in self.channels:
            return SendResult.permanent(f"wecom_robot carries wecom_group only, not {message.channel!r}")
        problem = valid_robot_url(message.to)
        if problem is not None:
            return SendResult.permanent(problem, error_code="invalid_robot_url")
        if not message.body.strip():
            return SendResult.permanent("message body is empty", error_code="empty_body")
        payload = {"msgtype": "markdown", "markdown": {"content": self.content(message)}}
        try:
            response = self._session.post(message.to.strip(), data=wire.encode_json(payload),
                                          headers=wire.JSON_HEADERS, timeout=(self._timeout, self._timeout))
        except Exception as exc:
            return wire.request_failure(exc, SERVICE, self._timeout)
        answer = wire.read_answer(response, SERVICE)
        if isinstance(answer, SendResult):
            return answer
        if answer["errcode"] == 0:
            return SendResult.sent()
        return codes.result_for(answer["errcode"], answer.get("errmsg"), SERVICE)

    @staticmethod
    def content(message: Message) -> str:
        """The markdown content: the body, cut on a character boundary to WeCom's 4096 bytes with a
        last line saying so."""
        notice = TRUNCATED_ZH if message.locale.lower().startswith("zh") else TRUNCATED_EN
        return limits.truncate_utf8(message.body.strip(), limits.MARKDOWN_MAX_BYTES, marker=notice)
