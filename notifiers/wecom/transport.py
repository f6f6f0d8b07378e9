"""WeCom (企业微信) app messages to one member, as a textcard (or plain text), over its HTTP API.

`POST /cgi-bin/message/send?access_token=...` with `touser` = the member's userid
(https://developer.work.weixin.qq.com/document/path/90236). The access token is cached and
refreshed by token.py; codes.py decides what every errcode means; limits.py keeps sizes and the
per-member frequency inside WeCom's limits (over them WeCom drops messages without saying so).

What each outcome means for the dispatcher:
* SENT: errcode 0 and the member was reachable (msgid is the provider id).
* PERMANENT: the member cannot be reached by this app (`invaliduser` / `unlicenseduser` not empty,
  60111, 81013, 40003, ...), or the message is one WeCom refuses: the core falls back to the next
  channel.
* TRANSIENT: nothing was delivered: rate limits (45009/45033, or our own per-member window, with
  retry_after), system busy (-1), connection failures before sending, and our own configuration
  (corp id, secret, agent id, trusted IP: codes.py), which must delay messages, not burn them.
* AMBIGUOUS: the request left and the answer was lost or was a 5xx.

Ambiguous outcomes: WeCom has no API to look up sent app messages, so this notifier has no
`reconcile`. The safety net is WeCom's duplicate check: every send sets `enable_duplicate_check`
with DUPLICATE_CHECK_SECONDS, and WeCom drops a request whose JSON is identical to one it took in
that interval. The payload is built only from the message (no timestamps, no attempt counter), so a
resend after an ambiguous outcome within the interval is not delivered twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from notifiers.base import Message, NotifierConfigError, SendResult, SendStatus
from notifiers.wecom import codes, limits, settings, wire
from notifiers.wecom.token import AccessTokens, TokenUnavailable

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"
# A textcard must link somewhere (its `url` is required). We have no page of our own for a holder,
# so the card opens where a holder checks their own residence permit: Shanghai's citizen
# information site.
DEFAULT_CARD_URL = "https://www.962222.net"
BUTTON_TEXT = "详情"  # at most 4 characters (WeCom's btntxt rule); WeCom's own default
# Resends of the same request JSON within this many seconds are dropped by WeCom (max 4 hours).
DUPLICATE_CHECK_SECONDS = 1800
SERVICE = "WeCom"
# WeCom's userid rule, as the roster checks it (40003 in the error-code table): 1-64 letters,
# digits and "_-@.", starting with a letter or digit. That also keeps out "|" (several
# recipients) and "@all" (everyone in the app's visible range).
_USERID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_REFRESH = codes.Verdict.REFRESH


class WeComNotifier:
    name = "wecom"
    channels = frozenset({"wecom"})

    def __init__(
        self,
        *,
        corp_id: str,
        agent_id: int,
        secret: str,
        base_url: str = DEFAULT_BASE_URL,
        card_url: str = DEFAULT_CARD_URL,
        timeout_seconds: float = 10.0,
        duplicate_check_seconds: int = DUPLICATE_CHECK_SECONDS,
        member_limits: tuple[tuple[float, int], ...] = limits.PER_MEMBER_LIMITS,
    ) -> None:
        if not corp_id:
            raise NotifierConfigError("PERMIT_WECOM_CORP_ID is not set")
        if isinstance(agent_id, bool) or not isinstance(agent_id, int) or agent_id <= 0:
            raise NotifierConfigError("PERMIT_WECOM_AGENT_ID must be a positive integer (the app's AgentId)")
        if not secret:
            raise NotifierConfigError("PERMIT_WECOM_SECRET is not set")
        settings.check_api_url(base_url, "PERMIT_WECOM_BASE_URL")
        settings.check_card_url(card_url, "PERMIT_WECOM_CARD_URL")
        settings.check_timeout(timeout_seconds, "PERMIT_WECOM_TIMEOUT_SECONDS")
        if not 1 <= duplicate_check_seconds <= 4 * 3600:
            raise NotifierConfigError("duplicate_check_seconds must be between 1 and 14400 (4 hours)")
        self._corp_id = corp_id
        self._agent_id = agent_id
        self._secret = secret
        self._base_url = base_url.rstrip("/")
        self._card_url = card_url
        self._timeout = float(timeout_seconds)
        self._duplicate_check = int(duplicate_check_seconds)
        self._session = wire.make_session()
        self._tokens = AccessTokens(self._session, self._base_url, corp_id, secret, self._timeout)
        self._window = limits.MemberWindow(member_limits)

    def __repr__(self) -> str:  # never show the secret
        return f"<WeComNotifier corp_id={self._corp_id} agent_id={self._agent_id} base_url={self._base_url}>"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WeComNotifier:
        get = settings.getter(env)
        raw_agent = get("PERMIT_WECOM_AGENT_ID")
        if raw_agent is None:
            raise NotifierConfigError("PERMIT_WECOM_AGENT_ID is not set")
        try:
            agent_id = int(raw_agent)
        except ValueError:
            raise NotifierConfigError(f"PERMIT_WECOM_AGENT_ID must be an integer, got {raw_agent!r}") from None
        return cls(
            corp_id=get("PERMIT_WECOM_CORP_ID") or "",
            agent_id=agent_id,
            secret=get("PERMIT_WECOM_SECRET") or "",
            base_url=get("PERMIT_WECOM_BASE_URL") or DEFAULT_BASE_URL,
            card_url=get("PERMIT_WECOM_CARD_URL") or DEFAULT_CARD_URL,
            timeout_seconds=settings.timeout_from(get, "PERMIT_WECOM_TIMEOUT_SECONDS"),
        )

    # -- sending -------------------------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        try:
            return self._send(message)
        except Exception as exc:  # never raise out of send
            return SendResult.transient(f"unexpected {type(exc).__name__} while sending through WeCom")

    def _send(self, message: Message) -> SendResult:
        if message.channel not in self.channels:
            return SendResult.permanent(f"wecom carries wecom only, not {message.channel!r}")
        if not _USERID.match(message.to):
            return SendResult.permanent("recipient is not a WeCom userid (1-64 of A-Z a-z 0-9 - _ .)",
                                        error_code="invalid_userid")
        if message.valid_until is not None and _as_utc(message.valid_until) <= datetime.now(UTC):
            return SendResult.transient("send window closed before sending")
        if not message.body.strip():
            return SendResult.permanent("message body is empty", error_code="empty_body")
        wait = self._window.acquire(message.to)
        if wait is not None:
            return SendResult.transient(
                "per-member limit of WeCom app messages reached (30/min, 1000/h): WeCom would drop it",
                retry_after_seconds=math.ceil(wait))
        result, token = self._deliver(self._payload(message))
        if result.status not in (SendStatus.SENT, SendStatus.AMBIGUOUS):
            self._window.release(message.to)  # nothing reached the member: the slot is free again
        return self._redact(result, token)

    def _payload(self, message: Message) -> dict[str, Any]:
        body = message.body.strip()
        payload: dict[str, Any] = {"touser": message.to, "agentid": self._agent_id}
        if message.metadata.get("wecom_msgtype") == "text":
            payload.update(msgtype="text", text={"content": limits.truncate_utf8(body, limits.TEXT_MAX_BYTES)})
        else:
            title = (message.subject or "").strip() or next(line.strip() for line in body.splitlines() if line.strip())
            payload.update(msgtype="textcard", textcard={
                "title": limits.truncate_utf8(title, limits.TITLE_MAX_BYTES),
                "description": limits.truncate_utf8(body, limits.DESCRIPTION_MAX_BYTES),
                "url": self._card_url,
                "btntxt": BUTTON_TEXT,
            })
        payload.update(enable_duplicate_check=1, duplicate_check_interval=self._duplicate_check)
        return payload

    def _deliver(self, payload: dict[str, Any]) -> tuple[SendResult, str | None]:
        """One send, and one more with a fresh token if WeCom refused the cached one."""
        token: str | None = None
        for attempt in (1, 2):
            try:
                token = self._tokens.get()
            except TokenUnavailable as unavailable:
                return unavailable.result, token
            answer = self._post(token, payload)
            if isinstance(answer, SendResult):
                return answer, token
            errcode = answer["errcode"]
            code = codes.lookup(errcode)
            if code is not None and code.verdict is _REFRESH:
                self._tokens.invalidate(token)
                if attempt == 1:
                    continue  # the send was refused, so nothing was delivered: one retry is safe
                return self._refused_twice(errcode, answer.get("errmsg")), token
            return self._verdict(answer), token
        raise AssertionError("unreachable")

    def _post(self, token: str, payload: dict[str, Any]) -> dict[str, Any] | SendResult:
        url = f"{self._base_url}/cgi-bin/message/send?access_token={token}"
        try:
            response = self._session.post(url, data=wire.encode_json(payload), headers=wire.JSON_HEADERS,
                                          timeout=(self._timeout, self._timeout))
        except Exception as exc:
            return wire.request_failure(exc, SERVICE, self._timeout)
        return wire.read_answer(response, SERVICE)

    def _verdict(self, answer: dict[str, Any]) -> SendResult:
        # With one recipient, an unreachable member comes back in these lists (with errcode 0 when
        # WeCom treats it as a partial failure, 81013 when all recipients failed).
        for field in ("invaliduser", "unlicenseduser"):
            if str(answer.get(field) or "").strip():
                why = "not a member this app can reach" if field == "invaliduser" else "has no WeCom API licence"
                return SendResult.permanent(f"wecom {answer['errcode']}: the recipient is {why} ({field})",
                                            error_code=field)
        if answer["errcode"] == 0:
            msgid = answer.get("msgid")
            return SendResult.sent(str(msgid) if msgid else None)
        return codes.result_for(answer["errcode"], answer.get("errmsg"))

    def _refused_twice(self, errcode: int, errmsg: object) -> SendResult:
        detail = codes.short_errmsg(errmsg)
        return SendResult(SendStatus.TRANSIENT, error_code=str(errcode), error=(
            f"configuration problem: WeCom refused a freshly fetched access token ({errcode}: {detail}): "
            "check PERMIT_WECOM_SECRET and PERMIT_WECOM_AGENT_ID (the same app's)"))

    def _redact(self, result: SendResult, token: str | None) -> SendResult:
        if result.error is None:
            return result
        error = result.error.replace(self._secret, "[redacted]")
        if token:
            error = error.replace(token, "[token]")
        return SendResult(status=result.status, provider_message_id=result.provider_message_id, error=error,
                          retry_after_seconds=result.retry_after_seconds, error_code=result.error_code,
                          opted_out=result.opted_out)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
